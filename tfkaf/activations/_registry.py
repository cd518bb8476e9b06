"""The registry of `tfkaf.activations`: entries, registration, name lookup.

Every activation, built-in or custom, is an `ActivationInfo` entry here,
found by its canonical name or an alias, and registered for Keras
serialization as ``KERAS_PACKAGE + ">" + name``. The built-in activations
are registered by `builtin` (their entries say ``builtin=True``); `register`
and `Activation` subclasses register custom ones, which are never builtin.
"""

import dataclasses
import difflib
import inspect
import re

import keras

__all__ = [
    "Activation",
    "ActivationInfo",
    "CUSTOM",
    "KAUN",
    "KERAS3",
    "KERAS_PACKAGE",
    "THEANETS",
    "builtin",
    "canonical_name_of",
    "info",
    "lookup",
    "names",
    "register",
    "snake_case",
]

KERAS_PACKAGE = "tfkaf"
"""Package under which tfkaf registers its objects for Keras serialization."""

KERAS3 = "Keras 3"
KAUN = "Kaun"
THEANETS = "theanets"
CUSTOM = "custom"

_NAME_RE = re.compile(r"^[^\s+>]+$")


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
      lipschitz: its Lipschitz constant (an upper bound): a number, a
          function of the activation's parameters returning a number (or
          None where the parameters make it unbounded), or None when no
          finite constant is known.
  """

  name: str
  obj: object
  formula: str
  origin: tuple
  aliases: tuple = ()
  builtin: bool = False
  lipschitz: object = None

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

  def lipschitz_constant(self, **params):
    """The Lipschitz constant for these parameters, or None if unknown."""
    value = self.lipschitz
    if callable(value):
      value = value(**params)
    return None if value is None else float(value)


_REGISTRY = {}  # canonical name -> ActivationInfo
_ALIASES = {}  # alias -> canonical name
_NAME_OF = {}  # id(function or class) -> canonical name


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


def _make_room(keys, obj, override):
  """Unregisters what `keys` name, or raises if that is not allowed."""
  for key in keys:
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


def _add(name, obj, *, formula, origin, aliases=(), override=False,
         lipschitz=None, is_builtin=False):
  """Registers `obj` under `name` (and for Keras serialization)."""
  _check_name(name)
  for alias in aliases:
    _check_name(alias)
  if isinstance(origin, str):
    origin = (origin,)
  _make_room((name, *aliases), obj, override)
  if formula is None:
    formula = _first_line(getattr(obj, "__doc__", None)) or name
  entry = ActivationInfo(
      name=name,
      obj=obj,
      formula=formula,
      origin=tuple(origin),
      aliases=tuple(aliases),
      builtin=is_builtin,
      lipschitz=lipschitz,
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


def builtin(name, formula, origin, aliases=(), lipschitz=None):
  """Registers one of tfkaf's own activations (its entry says builtin).

  Args:
      name, formula, origin, aliases: as for `register`.
      lipschitz: the Lipschitz constant (see `ActivationInfo.lipschitz`).
  """
  origin = (origin,) if isinstance(origin, str) else tuple(origin)

  def decorator(fn):
    _document(fn, name, formula, origin, aliases)
    _add(name, fn, formula=formula, origin=origin, aliases=aliases,
         lipschitz=lipschitz, is_builtin=True)
    return fn

  return decorator


def _register_class(cls, name, options):
  if not issubclass(cls, Activation):
    raise TypeError(
        "register() takes a function or a subclass of "
        f"tfkaf.activations.Activation, got the class {cls!r}."
    )
  auto = cls.__dict__.get("_tfkaf_auto_name")
  if auto is not None and _NAME_OF.get(id(cls)) == auto:
    _unregister(auto)
  cls._tfkaf_auto_name = None  # pylint: disable=protected-access
  _add(name or snake_case(cls.__name__), cls, **options)
  return cls


def register(
    name=None, *, formula=None, origin=CUSTOM, aliases=(), override=False,
    lipschitz=None
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
      lipschitz: optional Lipschitz constant, for `tfkaf.lipschitz_bound`: a
          number, or a function of the activation's parameters.

  Returns:
      The decorator (or, used as ``@register`` without parentheses, the
      registered object).
  """
  if callable(name) and not isinstance(name, str):  # bare @register
    return register()(name)
  options = dict(formula=formula, origin=origin, aliases=aliases,
                 override=override, lipschitz=lipschitz)

  def decorator(obj):
    if isinstance(obj, type):
      return _register_class(obj, name, options)
    if not callable(obj):
      raise TypeError(f"register() takes a callable, got {obj!r}.")
    fn_name = name or getattr(obj, "__name__", None)
    if not fn_name or fn_name == "<lambda>":
      raise ValueError("register() needs a name for this callable.")
    _add(fn_name, obj, **options)
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
    name = canonical_name_of(name)
    if name is None:
      raise ValueError("Not a registered activation.")
  canonical = _ALIASES.get(name, name)
  if canonical not in _REGISTRY:
    raise _unknown(name)
  return _REGISTRY[canonical]


def lookup(name):
  """The entry of a name, alias or ``"tfkaf>"``-prefixed name; or raises."""
  if name.startswith(KERAS_PACKAGE + ">"):
    name = name[len(KERAS_PACKAGE) + 1:]
  if not name:
    raise ValueError("Empty activation name.")
  return info(name)


def canonical_name_of(obj):
  """The canonical name a function or class is registered under, or None."""
  name = _NAME_OF.get(id(obj))
  if name is not None and _REGISTRY[name].obj is obj:
    return name
  return None


def snake_case(name):
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
  A ``lipschitz=`` class keyword (a number, or a function of the
  configuration) gives `lipschitz_constant()`.
  """

  def __init_subclass__(
      cls, name=None, register=True, formula=None, origin=CUSTOM, aliases=(),
      lipschitz=None, **kwargs
  ):  # pylint: disable=redefined-outer-name
    super().__init_subclass__(**kwargs)
    cls._tfkaf_auto_name = None
    if register:
      key = name or snake_case(cls.__name__)
      _add(key, cls, formula=formula, origin=origin, aliases=aliases,
           lipschitz=lipschitz)
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

  def lipschitz_constant(self):
    """Its Lipschitz constant, from its registry entry; None if unknown."""
    name = canonical_name_of(type(self))
    if name is None:
      return None
    return info(name).lipschitz_constant(**self.get_config())

  @property
  def __name__(self):
    name = canonical_name_of(type(self))
    return name or snake_case(type(self).__name__)

  def __repr__(self):
    config = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({config})"
