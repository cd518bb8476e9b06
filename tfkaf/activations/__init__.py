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

This module holds lookup and serialization; the registry is in
`_registry`, `Partial` and `Composed` in `_compose`, and the definitions in
`_keras3`, `_kaun` and `_theanets` (by origin). The table of all
activations (docs/activations.md) is generated from the registry by
tools/gen_activation_table.py.
"""

import functools
import inspect

import keras

# Importing the definition modules registers the built-in activations:
# Keras 3's first (`_kaun` and `_theanets` import `_keras3`), which is the
# order of `names()` and of the table. Besides the names in `__all__`, the
# origins (KERAS3, KAUN, THEANETS, CUSTOM), KERAS_PACKAGE, SELU_ALPHA,
# SELU_SCALE, NORM_EPSILON and `_unregister` (for tests) are attributes of
# this module.
from tfkaf.activations._compose import Composed
from tfkaf.activations._compose import Partial
from tfkaf.activations._kaun import gelu_approx
from tfkaf.activations._keras3 import celu
from tfkaf.activations._keras3 import elu
from tfkaf.activations._keras3 import exponential
from tfkaf.activations._keras3 import gelu
from tfkaf.activations._keras3 import glu
from tfkaf.activations._keras3 import hard_shrink
from tfkaf.activations._keras3 import hard_sigmoid
from tfkaf.activations._keras3 import hard_silu
from tfkaf.activations._keras3 import hard_swish
from tfkaf.activations._keras3 import hard_tanh
from tfkaf.activations._keras3 import leaky_relu
from tfkaf.activations._keras3 import linear
from tfkaf.activations._keras3 import log_sigmoid
from tfkaf.activations._keras3 import log_softmax
from tfkaf.activations._keras3 import mish
from tfkaf.activations._keras3 import relu
from tfkaf.activations._keras3 import relu6
from tfkaf.activations._keras3 import selu
from tfkaf.activations._keras3 import SELU_ALPHA
from tfkaf.activations._keras3 import SELU_SCALE
from tfkaf.activations._keras3 import sigmoid
from tfkaf.activations._keras3 import silu
from tfkaf.activations._keras3 import soft_shrink
from tfkaf.activations._keras3 import softmax
from tfkaf.activations._keras3 import softplus
from tfkaf.activations._keras3 import softsign
from tfkaf.activations._keras3 import sparse_plus
from tfkaf.activations._keras3 import sparse_sigmoid
from tfkaf.activations._keras3 import sparsemax
from tfkaf.activations._keras3 import squareplus
from tfkaf.activations._keras3 import swish
from tfkaf.activations._keras3 import tanh
from tfkaf.activations._keras3 import tanh_shrink
from tfkaf.activations._keras3 import threshold
from tfkaf.activations._registry import _unregister  # For tests.
from tfkaf.activations._registry import Activation
from tfkaf.activations._registry import ActivationInfo
from tfkaf.activations._registry import canonical_name_of
from tfkaf.activations._registry import CUSTOM
from tfkaf.activations._registry import info
from tfkaf.activations._registry import KAUN
from tfkaf.activations._registry import KERAS3
from tfkaf.activations._registry import KERAS_PACKAGE
from tfkaf.activations._registry import lookup
from tfkaf.activations._registry import names
from tfkaf.activations._registry import register
from tfkaf.activations._registry import THEANETS
from tfkaf.activations._theanets import logistic
from tfkaf.activations._theanets import NORM_EPSILON
from tfkaf.activations._theanets import norm_max
from tfkaf.activations._theanets import norm_mean
from tfkaf.activations._theanets import norm_std
from tfkaf.activations._theanets import norm_z
from tfkaf.activations._theanets import rect_max
from tfkaf.activations._theanets import rect_min
from tfkaf.activations._theanets import tlin
from tfkaf.activations._theanets import trec
from tfkaf.activations._theanets import trel

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


# Keras configs name the module of a class: the public one, as they always
# have (`.keras` files stay the same).
Partial.__module__ = Composed.__module__ = __name__


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
    name = canonical_name_of(identifier.func)
    if (
        name is not None
        and not identifier.args
        and not isinstance(info(name).obj, type)
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


def _resolve_composed(identifier, custom_objects):
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


def _resolve_string(identifier, custom_objects):
  if "+" in identifier:
    return _resolve_composed(identifier, custom_objects)
  name = identifier.strip()
  if custom_objects and name in custom_objects:
    return _resolve(custom_objects[name], None)
  entry = lookup(name)
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
  entry = lookup(name)
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
  name = canonical_name_of(activation)
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
