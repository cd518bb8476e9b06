"""Activation objects built from registered ones: `Partial`, `Composed`.

Both are `Activation` objects with a config, so Keras can save them where a
``functools.partial`` or a chain of calls could not be saved.
"""

import inspect
import math

import keras

from tfkaf import activations as activations_lib
from tfkaf.activations import _registry

__all__ = ["Composed", "Partial", "display_name", "lipschitz_of"]


@keras.saving.register_keras_serializable(
    package=_registry.KERAS_PACKAGE, name="Partial"
)
class Partial(_registry.Activation, register=False):
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
      name = _registry.canonical_name_of(activation)
    if name is None:
      raise ValueError(
          f"Partial needs a registered activation, got {activation!r}; "
          "register it with tfkaf.activations.register()."
      )
    entry = _registry.info(name)
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

  def lipschitz_constant(self):
    """The registry entry's Lipschitz constant for these parameters."""
    return _registry.info(self.name).lipschitz_constant(**self.params)

  @property
  def __name__(self):
    return self.name

  def __repr__(self):
    params = "".join(f", {k}={v!r}" for k, v in self.params.items())
    return f"Partial({self.name!r}{params})"


@keras.saving.register_keras_serializable(
    package=_registry.KERAS_PACKAGE, name="Composed"
)
class Composed(_registry.Activation, register=False):
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
    self.activations = [activations_lib.get(a) for a in activations]

  def __call__(self, x):
    for fn in self.activations:
      x = fn(x)
    return x

  def get_config(self):
    return {
        "activations": [activations_lib.serialize(a) for a in self.activations]
    }

  @classmethod
  def from_config(cls, config):
    return cls(config["activations"])

  def lipschitz_constant(self):
    """The product of the parts' constants (None if one is unknown)."""
    constants = [lipschitz_of(a) for a in self.activations]
    return None if None in constants else math.prod(constants)

  @property
  def __name__(self):
    return "+".join(display_name(a) for a in self.activations)

  def __repr__(self):
    return f"Composed({[display_name(a) for a in self.activations]!r})"


def display_name(fn):
  """The registered name of an activation, else its ``__name__`` or repr."""
  name = _registry.canonical_name_of(fn)
  if name is not None:
    return name
  return getattr(fn, "__name__", repr(fn))


def lipschitz_of(fn):
  """The Lipschitz constant of a fixed activation, or None if unknown.

  `fn` is None (linear), an `Activation` object (its `lipschitz_constant`),
  a registered function or a Keras built-in activation function of the
  same name as a registered one (with its default parameters).
  """
  if fn is None:
    return 1.0
  if isinstance(fn, _registry.Activation):
    return fn.lipschitz_constant()
  name = _registry.canonical_name_of(fn)
  if name is None and (getattr(fn, "__module__", "") or "").startswith(
      "keras"):
    name = getattr(fn, "__name__", None)
  if name is None or name not in _registry.names(aliases=True):
    return None
  return _registry.info(name).lipschitz_constant()
