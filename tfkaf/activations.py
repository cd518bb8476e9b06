# Copyright The tfkaf authors. Licensed under the same terms as the project.
"""Fixed (non-trainable) activation functions: `tfkaf.activations`.

Every activation is a plain function ``f(x, **params)`` written with
TensorFlow ops (no call into ``keras.activations``), registered under a name
so that `get` can find it and Keras can serialize it.  The library holds

* the activations of Keras 3 (with the same names and parameters; note that
  ``leaky_relu`` defaults to a slope of 0.01 and ``hard_shrink`` /
  ``soft_shrink`` take ``lambd``),
* the extras of Kaun (``gelu_approx``, a parameterised ``hard_sigmoid``),
* the names of theanets (``logistic``, ``trel``, ``trec``, ``tlin``,
  ``rect:min``, ``rect:max``, ``norm:mean``, ``norm:max``, ``norm:std``,
  ``norm:z``).

Lookup and composition::

    from tfkaf import activations
    activations.get("mish")                         # the function
    activations.get("tanh+norm:z")                  # tanh, then norm:z
    activations.get({"name": "leaky_relu", "negative_slope": 0.2})
    keras.layers.Dense(8, activation=activations.get("tanh+norm:z"))

Custom activations either subclass `Activation` (registered by name when the
class is created) or decorate a function with `register`::

    @activations.register("scaled_tanh")
    def scaled_tanh(x, scale=2.0):
        return scale * tf.tanh(x)

    class SwishBeta(activations.Activation, name="swish_beta"):
        def __init__(self, beta=1.0):
            self.beta = beta
        def __call__(self, x):
            return x * tf.sigmoid(self.beta * x)

Every registered activation, plain, parameterised (`Partial`) or composed
(`Composed`), survives a ``.keras`` save/load round trip when passed as
``activation=`` to a Keras layer, because all of them are registered with
``keras.saving.register_keras_serializable(package="tfkaf")``.

The table of all activations (docs/activations.md) is generated from the
registry by tools/gen_activation_table.py.
"""

import dataclasses
import difflib
import functools
import inspect
import math
import re

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _backend
from tfkaf import _portable

__all__ = [
    # Registry, lookup and serialization.
    "Activation",
    "ActivationInfo",
    "Composed",
    "Partial",
    "deserialize",
    "get",
    "info",
    "names",
    "register",
    "serialize",
    # Keras 3.
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "linear",
    "gelu",
    "silu",
    "swish",
    "mish",
    "selu",
    "elu",
    "leaky_relu",
    "softplus",
    "softsign",
    "exponential",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "relu6",
    "hard_shrink",
    "soft_shrink",
    "tanh_shrink",
    "threshold",
    "sparsemax",
    "sparse_plus",
    "sparse_sigmoid",
    "squareplus",
    "glu",
    "celu",
    "log_sigmoid",
    "log_softmax",
    # Kaun.
    "gelu_approx",
    # theanets.
    "logistic",
    "trel",
    "trec",
    "tlin",
    "rect_min",
    "rect_max",
    "norm_mean",
    "norm_max",
    "norm_std",
    "norm_z",
]

KERAS_PACKAGE = "tfkaf"
"""Package under which activations are registered for Keras serialization."""

KERAS3 = "Keras 3"
KAUN = "Kaun"
THEANETS = "theanets"
CUSTOM = "custom"

# Denominator guard of the theanets normalisations (theanets uses 1e-7 too).
NORM_EPSILON = 1e-7

# SELU constants (Klambauer et al. 2017), full precision.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_HALF_TYPES = (tf.float16, tf.bfloat16)
_NAME_RE = re.compile(r"^[^\s+>]+$")


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ActivationInfo:
  """What the registry knows about one activation.

  Attributes:
      name: canonical name, as accepted by `get`.
      obj: the function, or the `Activation` subclass.
      formula: the formula, in plain text.
      origin: the libraries it comes from, e.g. ``("Keras 3", "Kaun")``.
      aliases: other names `get` accepts for it.
      builtin: True for the activations shipped with tfkaf.
  """

  name: str
  obj: object
  formula: str
  origin: tuple
  aliases: tuple = ()
  builtin: bool = False

  @property
  def parameters(self):
    """Ordered dict ``{parameter: default}`` (the input ``x`` excluded)."""
    target = self.obj.__init__ if isinstance(self.obj, type) else self.obj
    params = list(inspect.signature(target).parameters.values())
    params = params[1:]  # `x` for functions, `self` for classes
    return {
        p.name: p.default
        for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


_REGISTRY = {}  # canonical name -> ActivationInfo
_ALIASES = {}  # alias -> canonical name
_NAME_OF = {}  # id(function or class) -> canonical name
_BUILTIN_PHASE = [True]  # True while this module registers its own


def _check_name(name):
  if not isinstance(name, str) or not _NAME_RE.match(name):
    raise ValueError(
        f"Invalid activation name {name!r}: a name is a non-empty string "
        "without whitespace, '+' (used for composition) or '>'."
    )


def _same_definition(a, b):
  return (
      getattr(a, "__module__", None) == getattr(b, "__module__", None)
      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
  )


def _unregister(name):
  """Removes a name (and its aliases) from the registry; for tests."""
  name = _ALIASES.get(name, name)
  entry = _REGISTRY.pop(name, None)
  if entry is None:
    return
  for alias in entry.aliases:
    _ALIASES.pop(alias, None)
  if _NAME_OF.get(id(entry.obj)) == name:
    del _NAME_OF[id(entry.obj)]


def _add(name, obj, formula, origin, aliases=(), override=False):
  _check_name(name)
  for alias in aliases:
    _check_name(alias)
  if isinstance(origin, str):
    origin = (origin,)
  builtin = _BUILTIN_PHASE[0]
  for key in (name, *aliases):
    owner = _ALIASES.get(key, key)
    previous = _REGISTRY.get(owner)
    if previous is None:
      continue
    if override or (
        not previous.builtin and _same_definition(previous.obj, obj)
    ):
      _unregister(owner)  # re-definition (notebook, reload) or override
    else:
      raise ValueError(
          f"An activation named {key!r} is already registered "
          f"({previous.obj!r}). Choose another name or pass "
          "override=True."
      )
  if formula is None:
    formula = _first_line(getattr(obj, "__doc__", None)) or name
  entry = ActivationInfo(
      name=name,
      obj=obj,
      formula=formula,
      origin=tuple(origin),
      aliases=tuple(aliases),
      builtin=builtin,
  )
  _REGISTRY[name] = entry
  for alias in aliases:
    _ALIASES[alias] = name
  _NAME_OF[id(obj)] = name
  keras.saving.register_keras_serializable(package=KERAS_PACKAGE, name=name)(
      obj
  )
  return entry


def _first_line(doc):
  doc = inspect.cleandoc(doc or "")
  return doc.splitlines()[0].strip() if doc else ""


def _document(fn, name, formula, origin, aliases):
  """Puts the formula and origin into the docstring, after its summary."""
  doc = inspect.cleandoc(fn.__doc__ or name)
  summary, _, rest = doc.partition("\n\n")
  lines = [summary, "", f"Formula: `{name}(x) = {formula}`"]
  lines += ["", "Origin: " + ", ".join(origin) + "."]
  if aliases:
    also = ", ".join(f"`{a}`" for a in aliases)
    lines += ["", f"Also known as: {also}."]
  if rest:
    lines += ["", rest]
  fn.__doc__ = "\n".join(lines)


def _builtin(name, formula, origin, aliases=()):
  """Registers one of the activations defined in this module."""
  origin = (origin,) if isinstance(origin, str) else tuple(origin)

  def decorator(fn):
    _document(fn, name, formula, origin, aliases)
    _add(name, fn, formula, origin, aliases)
    return fn

  return decorator


def register(
    name=None, *, formula=None, origin=CUSTOM, aliases=(), override=False
):
  """Registers a custom activation so `get` (and composition) finds it by name.

  Use it as a decorator on a function ``f(x, **params)`` or on an
  `Activation` subclass (which is otherwise registered automatically under
  its ``name=`` class keyword or its snake_case class name)::

      @tfkaf.activations.register("scaled_tanh")
      def scaled_tanh(x, scale=2.0):
          return scale * tf.tanh(x)

      tfkaf.activations.get("scaled_tanh+norm:z")

  The object is also registered for Keras serialization as
  ``"tfkaf>" + name``, so a layer using it can be saved to a ``.keras`` file
  and loaded back (in a process where the registration has run).

  Args:
      name: the name; defaults to the function's ``__name__``. No
          whitespace, ``+`` or ``>``.
      formula: the formula for the table of activations; defaults to the
          first line of the docstring.
      origin: where the activation comes from.
      aliases: further names for it.
      override: replace an existing registration of the same name.

  Returns:
      The decorator (or, used as ``@register`` without parentheses, the
      registered object).
  """
  if callable(name) and not isinstance(name, str):  # bare @register
    return register()(name)

  def decorator(obj):
    if isinstance(obj, type):
      if not issubclass(obj, Activation):
        raise TypeError(
            "register() takes a function or a subclass of "
            f"tfkaf.activations.Activation, got the class {obj!r}."
        )
      auto = obj.__dict__.get("_tfkaf_auto_name")
      if auto is not None and _NAME_OF.get(id(obj)) == auto:
        _unregister(auto)
      obj._tfkaf_auto_name = None
      key = name or _snake_case(obj.__name__)
      _add(key, obj, formula, origin, aliases, override)
      return obj
    if not callable(obj):
      raise TypeError(f"register() takes a callable, got {obj!r}.")
    fn_name = name or getattr(obj, "__name__", None)
    if not fn_name or fn_name == "<lambda>":
      raise ValueError("register() needs a name for this callable.")
    _add(fn_name, obj, formula, origin, aliases, override)
    return obj

  return decorator


def names(aliases=False):
  """Names of the registered activations, in registration order.

  Args:
      aliases: include the aliases (``swish``, ``logistic``, ...) too.
  """
  result = list(_REGISTRY)
  if aliases:
    result += list(_ALIASES)
  return result


def info(name):
  """The `ActivationInfo` (formula, parameters, origin) of a name or alias."""
  if not isinstance(name, str):
    name = _canonical_name_of(name)
    if name is None:
      raise ValueError("Not a registered activation.")
  canonical = _ALIASES.get(name, name)
  if canonical not in _REGISTRY:
    raise _unknown(name)
  return _REGISTRY[canonical]


def _canonical_name_of(obj):
  name = _NAME_OF.get(id(obj))
  if name is not None and _REGISTRY[name].obj is obj:
    return name
  return None


def _snake_case(name):
  name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
  return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _unknown(name):
  known = names(aliases=True)
  close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
  if close:
    hint = "Did you mean " + ", ".join(repr(c) for c in close) + "?"
  else:
    hint = "Known activations: " + ", ".join(sorted(known)) + "."
  return ValueError(f"Unknown activation {name!r}. {hint}")


# --------------------------------------------------------------------------
# Activation objects
# --------------------------------------------------------------------------


class Activation:
  """Base class of activations that are objects (with a configuration).

  Subclass it and implement ``__call__(self, x)``. The subclass is
  registered by name when it is created: under the ``name=`` class keyword
  (``class Foo(Activation, name="foo")``) or else its snake_case class name;
  pass ``register=False`` to skip that. `get` turns the name into an
  instance built with the default arguments, and
  ``get({"name": "foo", "p": 2})`` into ``Foo(p=2)``.

  Keras serializes an instance through ``get_config()``/``from_config()``.
  The default ``get_config()`` returns the constructor's arguments read back
  from attributes of the same name; override it if they are not stored so.
  """

  def __init_subclass__(
      cls, name=None, register=True, formula=None, origin=CUSTOM, aliases=(),
      **kwargs
  ):
    super().__init_subclass__(**kwargs)
    cls._tfkaf_auto_name = None
    if register:
      key = name or _snake_case(cls.__name__)
      _add(key, cls, formula, origin, aliases)
      if name is None:
        cls._tfkaf_auto_name = key

  def __call__(self, x):
    raise NotImplementedError(
        f"{type(self).__name__} must implement __call__(self, x)."
    )

  def get_config(self):
    """The constructor's arguments, as a JSON-friendly dict."""
    init = type(self).__init__
    if init is object.__init__:
      return {}
    config = {}
    params = list(inspect.signature(init).parameters.values())[1:]
    for p in params:
      if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
        raise NotImplementedError(
            f"{type(self).__name__}.__init__ takes *args/**kwargs: "
            "implement get_config()."
        )
      if not hasattr(self, p.name):
        raise NotImplementedError(
            f"{type(self).__name__}: store the constructor argument "
            f"{p.name!r} as self.{p.name}, or implement get_config()."
        )
      config[p.name] = getattr(self, p.name)
    return config

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  @property
  def __name__(self):
    name = _canonical_name_of(type(self))
    return name or _snake_case(type(self).__name__)

  def __repr__(self):
    config = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({config})"


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE, name="Partial")
class Partial(Activation, register=False):
  """A registered activation with some parameters fixed.

  ``Partial("leaky_relu", negative_slope=0.2)(x)`` is
  ``leaky_relu(x, negative_slope=0.2)``. This is what
  ``get({"name": "leaky_relu", "negative_slope": 0.2})`` and
  ``get(functools.partial(leaky_relu, negative_slope=0.2))`` return: unlike
  a ``functools.partial`` it has a config, so Keras can save it.

  Args:
      activation: a registered name (or alias) or registered function.
      **params: keyword parameters of that function.
  """

  def __init__(self, activation, **params):
    if isinstance(activation, str):
      name = activation
    else:
      name = _canonical_name_of(activation)
    if name is None:
      raise ValueError(
          f"Partial needs a registered activation, got {activation!r}; "
          "register it with tfkaf.activations.register()."
      )
    entry = info(name)
    if isinstance(entry.obj, type):
      raise TypeError(
          f"{name!r} is an Activation class: build it with "
          f"get({{'name': {name!r}, ...}}) instead of Partial."
      )
    try:
      inspect.signature(entry.obj).bind(None, **params)
    except TypeError as e:
      allowed = ", ".join(entry.parameters) or "none"
      raise TypeError(
          f"Bad parameters {params} for activation {name!r} "
          f"(its parameters: {allowed}): {e}"
      ) from None
    self.name = entry.name
    self.params = dict(params)
    self._fn = entry.obj

  def __call__(self, x):
    return self._fn(x, **self.params)

  def get_config(self):
    return {"name": self.name, **self.params}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    name = config.pop("name")
    return cls(name, **config)

  @property
  def __name__(self):
    return self.name

  def __repr__(self):
    params = "".join(f", {k}={v!r}" for k, v in self.params.items())
    return f"Partial({self.name!r}{params})"


@keras.saving.register_keras_serializable(
    package=KERAS_PACKAGE, name="Composed"
)
class Composed(Activation, register=False):
  """Activations applied one after the other, left to right.

  ``get("tanh+norm:z")`` is ``Composed(["tanh", "norm:z"])``: tanh first,
  then norm:z (the theanets convention).

  Args:
      activations: a list of identifiers accepted by `get` (names, configs,
          `Activation` instances, registered functions).
  """

  def __init__(self, activations):
    if isinstance(activations, str) or not activations:
      raise ValueError(
          "Composed takes a non-empty list of activations, got "
          f"{activations!r}."
      )
    self.activations = [get(a) for a in activations]

  def __call__(self, x):
    for fn in self.activations:
      x = fn(x)
    return x

  def get_config(self):
    return {"activations": [serialize(a) for a in self.activations]}

  @classmethod
  def from_config(cls, config):
    return cls(config["activations"])

  @property
  def __name__(self):
    return "+".join(_display_name(a) for a in self.activations)

  def __repr__(self):
    return f"Composed({[_display_name(a) for a in self.activations]!r})"


def _display_name(fn):
  name = _canonical_name_of(fn)
  if name is not None:
    return name
  return getattr(fn, "__name__", repr(fn))


# --------------------------------------------------------------------------
# get / serialize / deserialize
# --------------------------------------------------------------------------


def get(identifier):
  """Returns the activation an identifier stands for.

  Args:
      identifier: one of

          * ``None``: `linear`;
          * a name or alias (``"mish"``, ``"swish"``, ``"rect:min"``, also
            ``"tfkaf>mish"``): the registered function, or an instance
            of a registered `Activation` class built with its defaults;
          * a composed string ``"a+b+..."``: a `Composed`, applied left to
            right (``"tanh+norm:z"`` is ``norm_z(tanh(x))``);
          * a dict ``{"name": ..., **params}``: a `Partial` (or an instance
            of a registered `Activation` class with these arguments); the
            dict may also be a Keras serialization (from `serialize` or a
            layer config);
          * a ``functools.partial`` of a registered function with keyword
            arguments only: the equivalent, serializable `Partial`;
          * an `Activation` subclass: an instance of it;
          * any other callable: itself.

  Returns:
      A callable ``f(x)``.

  Raises:
      ValueError: unknown name (the message lists close matches) or a
          malformed identifier.
      TypeError: an identifier of the wrong type, or bad parameters.
  """
  return _resolve(identifier, None)


def _resolve(identifier, custom_objects):
  if identifier is None:
    return linear
  if isinstance(identifier, str):
    return _resolve_string(identifier, custom_objects)
  if isinstance(identifier, dict):
    return _resolve_dict(identifier, custom_objects)
  if isinstance(identifier, type) and issubclass(identifier, Activation):
    return identifier()
  if isinstance(identifier, functools.partial):
    name = _canonical_name_of(identifier.func)
    if (
        name is not None
        and not identifier.args
        and not isinstance(_REGISTRY[name].obj, type)
    ):
      return Partial(name, **identifier.keywords)
    return identifier
  if callable(identifier):
    return identifier
  raise TypeError(
      "Could not interpret activation identifier of type "
      f"{type(identifier).__name__}: {identifier!r}. Expected None, a name, "
      "a composed name such as 'tanh+norm:z', a config dict or a callable."
  )


def _resolve_string(identifier, custom_objects):
  if "+" in identifier:
    parts = [p.strip() for p in identifier.split("+")]
    if not all(parts):
      raise ValueError(
          f"Malformed composed activation {identifier!r}: empty name "
          "around '+'."
      )
    resolved = []
    for part in parts:
      try:
        resolved.append(_resolve_string(part, custom_objects))
      except ValueError as e:
        raise ValueError(
            f"{e} (in the composed activation {identifier!r})"
        ) from None
    return Composed(resolved)
  name = identifier.strip()
  if custom_objects and name in custom_objects:
    return _resolve(custom_objects[name], None)
  if name.startswith(KERAS_PACKAGE + ">"):
    name = name[len(KERAS_PACKAGE) + 1:]
  if not name:
    raise ValueError("Empty activation name.")
  canonical = _ALIASES.get(name, name)
  entry = _REGISTRY.get(canonical)
  if entry is None:
    raise _unknown(name)
  if isinstance(entry.obj, type):
    return entry.obj()
  return entry.obj


def _resolve_dict(config, custom_objects):
  if "class_name" in config:  # Keras serialization format
    return keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects
    )
  if "name" not in config:
    raise ValueError(
        "An activation config dict needs a 'name' key (or be a Keras "
        f"serialization with 'class_name'), got {config!r}."
    )
  params = {k: v for k, v in config.items() if k != "name"}
  name = config["name"]
  if not isinstance(name, str):
    raise TypeError(
        f"The 'name' of an activation config must be a string, got {name!r}."
    )
  if not params:
    return _resolve_string(name, custom_objects)
  if "+" in name:
    raise ValueError(
        f"Parameters {params} cannot apply to the composed activation "
        f"{name!r}; compose configs instead: "
        "Composed([{'name': ..., ...}, ...])."
    )
  name = name.strip()
  if custom_objects and name in custom_objects:
    target = custom_objects[name]
    if isinstance(target, type):
      return target(**params)
    return functools.partial(target, **params)
  if name.startswith(KERAS_PACKAGE + ">"):
    name = name[len(KERAS_PACKAGE) + 1:]
  entry = info(name)
  if isinstance(entry.obj, type):
    return entry.obj(**params)
  return Partial(entry.name, **params)


def serialize(activation):
  """Returns the serializable form of an activation.

  A registered function gives its canonical name (``serialize(swish)`` is
  ``"silu"``); an `Activation` instance (`Partial`, `Composed` or custom)
  gives its Keras config dict, which `deserialize` and
  ``keras.saving.deserialize_keras_object`` both accept. ``None`` gives
  ``None``; a string is checked and returned.

  Raises:
      ValueError: for a callable that is not registered (so could not be
          loaded back).
  """
  if activation is None:
    return None
  if isinstance(activation, str):
    get(activation)
    return activation
  name = _canonical_name_of(activation)
  if name is not None and not isinstance(activation, type):
    return name
  if isinstance(activation, functools.partial):
    resolved = get(activation)
    if isinstance(resolved, Activation):
      return serialize(resolved)
  if isinstance(activation, Activation):
    return keras.saving.serialize_keras_object(activation)
  if callable(activation) and _keras_can_load(activation):
    return keras.saving.serialize_keras_object(activation)
  raise ValueError(
      f"Cannot serialize the activation {activation!r}: register it with "
      "@tfkaf.activations.register(name) (or subclass "
      "tfkaf.activations.Activation) so that it can be loaded back."
  )


def _keras_can_load(obj):
  """Whether Keras can load obj back: a Keras built-in or registered."""
  target = obj if inspect.isfunction(obj) else type(obj)
  if getattr(target, "__module__", "").split(".")[0] == "keras":
    return True
  name = keras.saving.get_registered_name(target)
  return keras.saving.get_registered_object(name) is target


def deserialize(config, custom_objects=None):
  """Inverse of `serialize`: a name, composed name or config -> activation.

  Args:
      config: what `serialize` returned (or anything `get` accepts).
      custom_objects: optional dict ``{name: function or class}`` consulted
          before the registry (also inside composed names).
  """
  if config is None:
    return linear
  if isinstance(config, (str, dict)):
    return _resolve(config, custom_objects)
  raise TypeError(
      f"Cannot deserialize an activation from {type(config).__name__}: "
      f"{config!r}; expected a string or a dict."
  )


# --------------------------------------------------------------------------
# Helpers for the implementations
# --------------------------------------------------------------------------


def _tensor(x):
  """Converts to a floating tensor (integers become keras' floatx)."""
  _backend.require_tensorflow_tensor(x, "a tfkaf activation")
  x = tf.convert_to_tensor(x)
  if not x.dtype.is_floating:
    x = tf.cast(x, keras.config.floatx())
  return x


def _const(value, x):
  # tf.cast(python_float, float64) would round through float32 first.
  if isinstance(value, (bool, int, float, np.number)):
    return tf.constant(value, dtype=x.dtype)
  return tf.cast(value, x.dtype)


def _is_zero(value):
  return isinstance(value, (int, float)) and value == 0


def _upcast(x):
  """float16/bfloat16 -> float32 for reductions; returns (x, dtype back)."""
  if x.dtype in _HALF_TYPES:
    return tf.cast(x, tf.float32), x.dtype
  return x, None


def _downcast(y, dtype):
  return y if dtype is None else tf.cast(y, dtype)


def _expm1(x):
  """exp(x) - 1, accurate near 0.

  tf.math.expm1; inside `tfkaf.portable()` (ONNX has no Expm1) exp(x) - 1,
  and its Taylor polynomial x + x^2/2 + x^3/6 where |x| < 0.01 (relative
  error below 1e-5 everywhere in float32). Both branches of the select stay
  finite for finite x, as tf2onnx may turn a select into arithmetic on both
  branches.
  """
  if not _portable.is_active():
    return tf.math.expm1(x)
  limit = _const(0.01, x)
  s = tf.minimum(tf.maximum(x, -limit), limit)
  taylor = s * (_const(1, x) + s * (_const(0.5, x) + s * _const(1 / 6, x)))
  return tf.where(tf.abs(x) < limit, taylor, tf.math.exp(x) - _const(1, x))


def _normalize_axis(x, axis, fn_name):
  rank = x.shape.rank
  if rank is None:
    return axis
  if not -rank <= axis < rank:
    raise ValueError(
        f"{fn_name}: axis {axis} is out of range for an input of rank "
        f"{rank} (shape {x.shape})."
    )
  return axis % rank


# --------------------------------------------------------------------------
# Keras 3 activations
# --------------------------------------------------------------------------


@_builtin(
    "relu",
    "min(x, max_value) if x > threshold else negative_slope * (x - threshold)",
    (KERAS3, THEANETS),
)
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
  """Rectified linear unit, with Keras' optional leak, cap and threshold.

  With the defaults this is ``max(0, x)``. The threshold is strict, as in
  Keras: ``relu(1.0, threshold=1.0)`` is 0.

  Args:
      x: input tensor.
      negative_slope: slope below the threshold.
      max_value: upper cap (``None``: no cap).
      threshold: inputs at or below it take the negative branch.

  Returns:
      A tensor of the same shape and dtype as `x`.
  """
  x = _tensor(x)
  if _is_zero(negative_slope) and max_value is None and _is_zero(threshold):
    return tf.nn.relu(x)
  thr = _const(threshold, x)
  positive = x if max_value is None else tf.minimum(x, _const(max_value, x))
  if _is_zero(negative_slope):
    negative = tf.zeros_like(x)
  else:
    negative = _const(negative_slope, x) * (x - thr)
  return tf.where(x > thr, positive, negative)


@_builtin(
    "sigmoid", "1 / (1 + exp(-x))", (KERAS3, THEANETS), aliases=("logistic",)
)
def sigmoid(x):
  """Logistic sigmoid.

  Args:
      x: input tensor.
  """
  return tf.math.sigmoid(_tensor(x))


@_builtin("tanh", "(exp(x) - exp(-x)) / (exp(x) + exp(-x))", (KERAS3, THEANETS))
def tanh(x):
  """Hyperbolic tangent.

  Args:
      x: input tensor.
  """
  return tf.math.tanh(_tensor(x))


@_builtin(
    "softmax", "exp(x_i) / sum_j exp(x_j), along axis", (KERAS3, THEANETS)
)
def softmax(x, axis=-1):
  """Softmax: a probability distribution along an axis.

  Computed stably (the maximum is subtracted first).

  Args:
      x: input tensor.
      axis: the axis that sums to 1.
  """
  x = _tensor(x)
  return tf.nn.softmax(x, axis=_normalize_axis(x, axis, "softmax"))


@_builtin("linear", "x", (KERAS3, THEANETS))
def linear(x):
  """Identity: returns the input unchanged (as a floating tensor).

  Args:
      x: input tensor.
  """
  return _tensor(x)


@_builtin(
    "gelu",
    "x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))); "
    "approximate=True: gelu_approx(x)",
    KERAS3,
)
def gelu(x, approximate=False):
  """Gaussian error linear unit (Hendrycks & Gimpel 2016).

  The exact form is computed as ``0.5 * x * erfc(-x / sqrt(2))``, which
  keeps its relative accuracy for large negative inputs. Inside
  `tfkaf.portable()` it is ``0.5 * x * (1 + erf(x / sqrt(2)))`` (ONNX has no
  Erfc; it loses relative accuracy for x < -3, with an absolute error of
  a few 1e-7).

  Args:
      x: input tensor.
      approximate: use the tanh approximation (`gelu_approx`).
  """
  if approximate:
    return gelu_approx(x)
  x = _tensor(x)
  scaled = x * _const(1 / math.sqrt(2.0), x)
  if _portable.is_active():
    return _const(0.5, x) * x * (_const(1, x) + tf.math.erf(scaled))
  return _const(0.5, x) * x * tf.math.erfc(-scaled)


@_builtin("silu", "x * sigmoid(x)", KERAS3, aliases=("swish",))
def silu(x):
  """Sigmoid linear unit, a.k.a. swish (Ramachandran et al. 2017).

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return x * tf.math.sigmoid(x)
swish = silu


@_builtin("mish", "x * tanh(softplus(x))", KERAS3)
def mish(x):
  """Mish (Misra 2019).

  Finite, with finite gradients, for any finite input (softplus is
  computed stably).

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return x * tf.math.tanh(tf.math.softplus(x))


@_builtin(
    "selu",
    "scale * (x if x > 0 else alpha * (exp(x) - 1)), "
    "alpha = 1.67326324..., scale = 1.05070098...",
    KERAS3,
)
def selu(x):
  """Scaled exponential linear unit (Klambauer et al. 2017).

  Uses ``alpha = 1.6732632423543772`` and ``scale = 1.0507009873554805``.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  negative = _const(SELU_ALPHA, x) * _expm1(tf.minimum(x, _const(0, x)))
  return _const(SELU_SCALE, x) * tf.where(x > 0, x, negative)


@_builtin("elu", "x if x > 0 else alpha * (exp(x) - 1)", KERAS3)
def elu(x, alpha=1.0):
  """Exponential linear unit (Clevert et al. 2015).

  Args:
      x: input tensor.
      alpha: scale of the negative part.
  """
  x = _tensor(x)
  negative = _const(alpha, x) * _expm1(tf.minimum(x, _const(0, x)))
  return tf.where(x > 0, x, negative)


@_builtin("leaky_relu", "x if x > 0 else negative_slope * x", KERAS3)
def leaky_relu(x, negative_slope=0.01):
  """Leaky rectified linear unit.

  The default slope is 0.01 (Keras 3 uses 0.2).

  Args:
      x: input tensor.
      negative_slope: slope for negative inputs.
  """
  x = _tensor(x)
  return tf.where(x > 0, x, _const(negative_slope, x) * x)


@_builtin("softplus", "log(1 + exp(x))", (KERAS3, THEANETS))
def softplus(x):
  """Softplus, computed without overflow.

  Args:
      x: input tensor.
  """
  return tf.math.softplus(_tensor(x))


@_builtin("softsign", "x / (1 + |x|)", KERAS3)
def softsign(x):
  """Softsign.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return x / (_const(1, x) + tf.abs(x))


@_builtin("exponential", "exp(x)", KERAS3)
def exponential(x):
  """Exponential (overflows to inf for large inputs, by definition).

  Args:
      x: input tensor.
  """
  return tf.math.exp(_tensor(x))


@_builtin("hard_sigmoid", "min(1, max(0, alpha * x + beta))", (KERAS3, KAUN))
def hard_sigmoid(x, alpha=1 / 6, beta=0.5):
  """Hard sigmoid, a piecewise-linear sigmoid.

  The defaults give Keras 3's ``min(1, max(0, x/6 + 1/2))``; `alpha` and
  `beta` are Kaun's parameters.

  Args:
      x: input tensor.
      alpha: slope.
      beta: offset.
  """
  x = _tensor(x)
  y = _const(alpha, x) * x + _const(beta, x)
  return tf.minimum(tf.maximum(y, _const(0, x)), _const(1, x))


@_builtin(
    "hard_silu",
    "x * min(1, max(0, x/6 + 1/2))",
    KERAS3,
    aliases=("hard_swish",),
)
def hard_silu(x):
  """Hard SiLU, a.k.a. hard swish (Howard et al. 2019).

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return x * hard_sigmoid(x)
hard_swish = hard_silu


@_builtin("hard_tanh", "min(1, max(-1, x))", KERAS3)
def hard_tanh(x):
  """Hard tanh.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.minimum(tf.maximum(x, _const(-1, x)), _const(1, x))


@_builtin("relu6", "min(6, max(0, x))", KERAS3)
def relu6(x):
  """ReLU capped at 6.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.minimum(tf.maximum(x, _const(0, x)), _const(6, x))


@_builtin("hard_shrink", "x if |x| > lambd else 0", KERAS3)
def hard_shrink(x, lambd=0.5):
  """Hard shrinkage.

  Args:
      x: input tensor.
      lambd: the threshold (Keras calls it `threshold`).
  """
  x = _tensor(x)
  return tf.where(tf.abs(x) > _const(lambd, x), x, tf.zeros_like(x))


@_builtin(
    "soft_shrink",
    "x - lambd if x > lambd; x + lambd if x < -lambd; else 0",
    KERAS3,
)
def soft_shrink(x, lambd=0.5):
  """Soft shrinkage.

  Args:
      x: input tensor.
      lambd: the threshold (Keras calls it `threshold`).
  """
  x = _tensor(x)
  lam = _const(lambd, x)
  return tf.where(
      x > lam, x - lam, tf.where(x < -lam, x + lam, tf.zeros_like(x))
  )


@_builtin("tanh_shrink", "x - tanh(x)", KERAS3)
def tanh_shrink(x):
  """Tanh shrinkage.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return x - tf.math.tanh(x)


@_builtin("threshold", "x if x > threshold else default_value", KERAS3)
def threshold(x, threshold=0.0, default_value=0.0):
  """Threshold: keeps the inputs above a threshold (strictly).

  Args:
      x: input tensor.
      threshold: inputs at or below it are replaced.
      default_value: their replacement.
  """
  x = _tensor(x)
  default = tf.broadcast_to(_const(default_value, x), tf.shape(x))
  return tf.where(x > _const(threshold, x), x, default)


@_builtin(
    "sparsemax",
    "max(0, x - tau), tau such that the result sums to 1 along axis "
    "(Euclidean projection onto the simplex)",
    KERAS3,
)
def sparsemax(x, axis=-1):
  """Sparsemax (Martins & Astudillo 2016), exact.

  The Euclidean projection of `x` onto the probability simplex along
  `axis`: sort ``z`` descending, ``k_z = max{k : 1 + k z_(k) > sum_{j<=k}
  z_(j)}``, ``tau = (sum_{j<=k_z} z_(j) - 1) / k_z``. The output sums to 1
  and is sparse. (Keras 3.15's TensorFlow-backend sparsemax returns wrong
  values; this one does not use it.) float16/bfloat16 are computed in
  float32.

  Args:
      x: input tensor.
      axis: the axis that sums to 1.
  """
  x = _tensor(x)
  rank = x.shape.rank
  axis = _normalize_axis(x, axis, "sparsemax")
  perm = None
  if rank is None:
    if axis != -1:
      raise ValueError("sparsemax: an input of unknown rank needs axis=-1.")
  elif axis != rank - 1:
    perm = [i for i in range(rank) if i != axis] + [axis]
    x = tf.transpose(x, perm)
  z, dtype = _upcast(x)
  z = z - tf.stop_gradient(tf.reduce_max(z, axis=-1, keepdims=True))
  n = tf.shape(z)[-1]
  z_sorted = tf.math.top_k(z, k=n, sorted=True).values
  k = tf.range(1, n + 1, dtype=z.dtype)
  cumulative = tf.cumsum(z_sorted, axis=-1)
  support = tf.cast(1 + k * z_sorted > cumulative, z.dtype)
  k_z = tf.reduce_sum(support, axis=-1, keepdims=True)
  tau = (tf.reduce_sum(support * z_sorted, axis=-1, keepdims=True) - 1) / k_z
  y = _downcast(tf.maximum(z - tau, tf.zeros_like(z)), dtype)
  if perm is not None:
    y = tf.transpose(y, np.argsort(perm).tolist())
  return y


@_builtin(
    "sparse_plus",
    "0 if x <= -1; x if x >= 1; else (x + 1)^2 / 4",
    (KERAS3, KAUN),
)
def sparse_plus(x):
  """Sparse plus: a smooth, sparse softplus.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  one = _const(1, x)
  middle = _const(0.25, x) * tf.square(x + one)
  return tf.where(x >= one, x, tf.where(x <= -one, tf.zeros_like(x), middle))


@_builtin(
    "sparse_sigmoid",
    "0 if x <= -1; 1 if x >= 1; else (x + 1) / 2",
    (KERAS3, KAUN),
)
def sparse_sigmoid(x):
  """Sparse sigmoid: a piecewise-linear sigmoid reaching 0 and 1.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  y = _const(0.5, x) * (x + _const(1, x))
  return tf.minimum(tf.maximum(y, _const(0, x)), _const(1, x))


@_builtin("squareplus", "(x + sqrt(x^2 + b)) / 2", (KERAS3, KAUN))
def squareplus(x, b=4):
  """Squareplus (Barron 2021), a smooth ReLU.

  For negative inputs it is computed as ``b / (2 (sqrt(x^2 + b) - x))``,
  which avoids cancellation.

  Args:
      x: input tensor.
      b: smoothness (>= 0; 0 gives ReLU).
  """
  x = _tensor(x)
  b = _const(b, x)
  half = _const(0.5, x)
  positive = half * (x + tf.sqrt(tf.square(x) + b))
  safe_negative = tf.where(x < 0, x, -tf.ones_like(x))
  negative = half * b / (tf.sqrt(tf.square(safe_negative) + b) - safe_negative)
  return tf.where(x < 0, negative, positive)


@_builtin(
    "glu", "a * sigmoid(b), where [a, b] = split(x, 2, axis)", (KERAS3, KAUN)
)
def glu(x, axis=-1):
  """Gated linear unit (Dauphin et al. 2017).

  Splits `x` in two halves along `axis`: the first is the value, the
  second the gate. The output's `axis` is half as long.

  Args:
      x: input tensor; its size along `axis` must be even.
      axis: the axis to split.

  Raises:
      ValueError: the size of `axis` is odd (checked at run time when the
          size is not known statically).
  """
  x = _tensor(x)
  axis = _normalize_axis(x, axis, "glu")
  message = (
      f"glu: the size of axis {axis} must be even to split the input into "
      "value and gate halves"
  )
  size = x.shape[axis] if x.shape.rank is not None else None
  if size is not None:
    if size % 2:
      raise ValueError(f"{message}, got {size} (input shape {x.shape}).")
  else:
    check = tf.debugging.assert_equal(
        tf.math.floormod(tf.shape(x)[axis], 2), 0, message=message + "."
    )
    with tf.control_dependencies([check]):
      x = tf.identity(x)
  value, gate = tf.split(x, 2, axis=axis)
  return value * tf.math.sigmoid(gate)


@_builtin("celu", "x if x > 0 else alpha * (exp(x / alpha) - 1)", KERAS3)
def celu(x, alpha=1.0):
  """Continuously differentiable exponential linear unit (Barron 2017).

  Args:
      x: input tensor.
      alpha: scale of the negative part (> 0).
  """
  x = _tensor(x)
  a = _const(alpha, x)
  negative = a * _expm1(tf.minimum(x, _const(0, x)) / a)
  return tf.where(x > 0, x, negative)


@_builtin("log_sigmoid", "log(sigmoid(x)) = -softplus(-x)", KERAS3)
def log_sigmoid(x):
  """Logarithm of the sigmoid, computed without overflow.

  Args:
      x: input tensor.
  """
  return tf.math.log_sigmoid(_tensor(x))


@_builtin("log_softmax", "x_i - log(sum_j exp(x_j)), along axis", KERAS3)
def log_softmax(x, axis=-1):
  """Logarithm of the softmax, computed stably.

  Args:
      x: input tensor.
      axis: the softmax axis.
  """
  x = _tensor(x)
  return tf.nn.log_softmax(x, axis=_normalize_axis(x, axis, "log_softmax"))


# --------------------------------------------------------------------------
# Kaun
# --------------------------------------------------------------------------


@_builtin(
    "gelu_approx",
    "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))",
    (KAUN, KERAS3 + " (gelu(approximate=True))"),
)
def gelu_approx(x):
  """GELU, tanh approximation.

  Computed as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`` (the same
  function), which does not cancel for negative inputs.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  inner = _const(math.sqrt(2.0 / math.pi), x) * (
      x + _const(0.044715, x) * x * x * x
  )
  return x * tf.math.sigmoid(_const(2, x) * inner)


# --------------------------------------------------------------------------
# theanets
# --------------------------------------------------------------------------

logistic = sigmoid


@_builtin("trel", "max(0, min(1, x))", THEANETS)
def trel(x):
  """Truncated rectified linear.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.maximum(tf.minimum(x, _const(1, x)), _const(0, x))


@_builtin("trec", "x if x > 1 else 0", THEANETS)
def trec(x):
  """Thresholded rectified linear.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.where(x > _const(1, x), x, tf.zeros_like(x))


@_builtin("tlin", "x if |x| > 1 else 0", THEANETS)
def tlin(x):
  """Thresholded linear.

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.where(tf.abs(x) > _const(1, x), x, tf.zeros_like(x))


@_builtin("rect:min", "min(1, x)", THEANETS, aliases=("rect_min",))
def rect_min(x):
  """Truncation from above at 1 (theanets' ``rect:min``).

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.minimum(x, _const(1, x))


@_builtin("rect:max", "max(0, x)", THEANETS, aliases=("rect_max",))
def rect_max(x):
  """Rectification at 0 (theanets' ``rect:max``).

  Args:
      x: input tensor.
  """
  x = _tensor(x)
  return tf.maximum(x, _const(0, x))


def _moments_last_axis(z):
  mean = tf.reduce_mean(z, axis=-1, keepdims=True)
  variance = tf.reduce_mean(tf.square(z - mean), axis=-1, keepdims=True)
  return mean, variance


def _guarded_std(variance):
  # sqrt(max(var, eps^2)) == max(std, eps), with a finite gradient at var=0.
  eps = _const(NORM_EPSILON, variance)
  return tf.sqrt(tf.maximum(variance, eps * eps))


@_builtin(
    "norm:mean",
    "x - mean(x), over the last axis",
    THEANETS,
    aliases=("norm_mean",),
)
def norm_mean(x):
  """Mean normalisation over the last (unit) axis.

  Args:
      x: input tensor.
  """
  z, dtype = _upcast(_tensor(x))
  return _downcast(z - tf.reduce_mean(z, axis=-1, keepdims=True), dtype)


@_builtin(
    "norm:max",
    f"x / max({NORM_EPSILON:g}, max|x|), over the last axis",
    THEANETS,
    aliases=("norm_max",),
)
def norm_max(x):
  """Max-abs normalisation over the last (unit) axis.

  The denominator is at least `NORM_EPSILON`, so all-zero rows stay zero.

  Args:
      x: input tensor.
  """
  z, dtype = _upcast(_tensor(x))
  peak = tf.reduce_max(tf.abs(z), axis=-1, keepdims=True)
  return _downcast(z / tf.maximum(peak, _const(NORM_EPSILON, z)), dtype)


@_builtin(
    "norm:std",
    f"x / max({NORM_EPSILON:g}, std(x)), over the last axis",
    THEANETS,
    aliases=("norm_std",),
)
def norm_std(x):
  """Standard-deviation normalisation over the last (unit) axis.

  ``std`` is the population standard deviation; the denominator is at
  least `NORM_EPSILON` (value and gradient stay finite for constant rows).

  Args:
      x: input tensor.
  """
  z, dtype = _upcast(_tensor(x))
  _, variance = _moments_last_axis(z)
  return _downcast(z / _guarded_std(variance), dtype)


@_builtin(
    "norm:z",
    f"(x - mean(x)) / max({NORM_EPSILON:g}, std(x)), over the last axis",
    THEANETS,
    aliases=("norm_z",),
)
def norm_z(x):
  """Z-score normalisation over the last (unit) axis.

  ``std`` is the population standard deviation; the denominator is at
  least `NORM_EPSILON`, so constant rows give zeros (with finite gradients).

  Args:
      x: input tensor.
  """
  z, dtype = _upcast(_tensor(x))
  mean, variance = _moments_last_axis(z)
  return _downcast((z - mean) / _guarded_std(variance), dtype)


_BUILTIN_PHASE[0] = False
