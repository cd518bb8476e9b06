"""Helpers shared by the tfkaf layers: channel axis, broadcasting, tagging,
argument checks and the init functions of KAF and DeepBSpline."""

import numbers

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _backend
from tfkaf import activations as activations_lib

__all__ = [
    "KERAS_PACKAGE",
    "Layer",
    "TensorFlowOnly",
    "RowInitializer",
    "broadcast_shape",
    "channel_count",
    "check_float",
    "check_int",
    "is_activation_variable",
    "mark_activation_variable",
    "normalize_axis",
    "resolve_init",
]

KERAS_PACKAGE = activations_lib.KERAS_PACKAGE

# Attribute set on the variables of tfkaf's trainable activation layers; the
# optimizer groups of `tfkaf.training` route them by it.
_TAG = "_tfkaf_activation_parameter"


class TensorFlowOnly:
  """Mixin of tfkaf's layers: refuses a Keras that is not on TensorFlow."""

  def __init__(self, **kwargs):
    _backend.require_tensorflow_backend(f"tfkaf.layers.{type(self).__name__}")
    super().__init__(**kwargs)


class Layer(TensorFlowOnly, keras.layers.Layer):
  """Base of tfkaf's layers (a `keras.layers.Layer` on TensorFlow only)."""


def mark_activation_variable(variable):
  """Marks a variable as an activation parameter (see `tfkaf.training`)."""
  setattr(variable, _TAG, True)
  return variable


def is_activation_variable(variable):
  """True for a variable created by one of tfkaf's trainable activation layers.

  These are the variables `tfkaf.activation_variables(model)` returns and that
  `tfkaf.training.MultiOptimizer` routes to its activation optimizer by
  default: KAF and KAF2D `alpha`, DeepBSpline `coefficients` (and `b1`, `b0`
  with `explicit_linear=True`), LGReLU `gain`/`leak`, Maxout
  `slopes`/`intercepts`, tfkaf's PReLU `alpha`.
  """
  return bool(getattr(variable, _TAG, False))


def check_int(name, value, minimum):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"`{name}` must be an integer, got {value!r}.")
  if value < minimum:
    raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
  return int(value)


def check_float(name, value, positive=False, non_negative=False,
                allow_none=False):
  if value is None and allow_none:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"`{name}` must be a number, got {value!r}.")
  value = float(value)
  if not np.isfinite(value):
    raise ValueError(f"`{name}` must be finite, got {value}.")
  if positive and value <= 0:
    raise ValueError(f"`{name}` must be > 0, got {value}.")
  if non_negative and value < 0:
    raise ValueError(f"`{name}` must be >= 0, got {value}.")
  return value


def check_axis(axis):
  """`axis` as an int; raises TypeError for a non-integer."""
  if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
    raise TypeError(f"`axis` must be an integer, got {axis!r}.")
  return int(axis)


def normalize_axis(layer_name, axis, input_shape):
  """The non-negative channel axis of an input shape, checked."""
  rank = len(input_shape)
  if rank < 1:
    raise ValueError(
        f"{layer_name} needs an input of rank >= 1, got shape {input_shape}.")
  if not -rank <= axis < rank:
    raise ValueError(
        f"{layer_name}: `axis`={axis} is out of range for an input of rank "
        f"{rank} (shape {tuple(input_shape)}).")
  return axis % rank


def channel_count(layer_name, axis, input_shape):
  """Returns (normalized axis, channel count); the count must be defined."""
  axis = normalize_axis(layer_name, axis, input_shape)
  channels = input_shape[axis]
  if channels is None:
    raise ValueError(
        f"{layer_name}: the channel axis (axis={axis}) of the input must be "
        f"defined, got input shape {tuple(input_shape)}. One activation is "
        "learned per channel, so the layer needs the channel count when it is "
        "built.")
  return axis, int(channels)


def broadcast_shape(rank, axis, channels):
  """[1, ..., C, ..., 1] with C at `axis`, to broadcast per-channel values."""
  shape = [1] * rank
  shape[axis] = channels
  return shape


def activation_name(fn):
  """A registered name for an activation callable, or None."""
  if isinstance(fn, str):
    return fn
  try:
    serialized = activations_lib.serialize(fn)
  except (ValueError, TypeError):
    return None
  return serialized if isinstance(serialized, str) else None


def resolve_init(layer_name, init, special=()):
  """Checks an `init` argument.

  Returns (init_string, function or None). Strings in `special` are returned
  with None; other strings must name an activation of `tfkaf.activations`; a
  callable that is a registered activation becomes its name; any other
  callable gives ("custom", callable), for the caller to turn into stored
  values.
  """
  if isinstance(init, str):
    if init in special:
      return init, None
    try:
      fn = activations_lib.get(init)
    except (ValueError, TypeError) as error:
      raise ValueError(
          f"{layer_name}: unknown `init`={init!r}: expected one of "
          f"{', '.join(repr(s) for s in special)} or the name of an "
          f"activation of tfkaf.activations ({error})") from None
    return init, fn
  if callable(init):
    name = activation_name(init)
    if name is not None:
      return name, activations_lib.get(name)
    return "custom", init
  raise TypeError(
      f"{layer_name}: `init` must be a string or a callable, got {init!r}.")


def sample(fn, points):
  """Evaluates an elementwise activation at points (numpy), as float64."""
  points = np.asarray(points, dtype=np.float64)
  try:
    values = fn(tf.constant(points, tf.float64))
  except (TypeError, ValueError, tf.errors.InvalidArgumentError,
          tf.errors.NotFoundError):
    values = fn(tf.constant(points, tf.float32))
  values = np.asarray(keras.ops.convert_to_numpy(values), dtype=np.float64)
  if values.shape != points.shape:
    raise ValueError(
        "The init activation must be elementwise: evaluated on "
        f"{points.shape[0]} points it returned shape {values.shape}.")
  if not np.all(np.isfinite(values)):
    raise ValueError("The init activation is not finite on the grid.")
  return values


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class RowInitializer(keras.initializers.Initializer):
  """Fills a [C, N] (or [..., N]) variable with the same row of N values.

  The layers store the coefficients fitted to (or sampled from) a custom init
  function this way, so that the layer config holds numbers, not a callable.
  """

  def __init__(self, values):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
      raise ValueError(
          f"RowInitializer takes a non-empty 1-D list of values, got shape "
          f"{values.shape}.")
    self.values = [float(v) for v in values]

  def __call__(self, shape, dtype=None):
    shape = tuple(shape)
    if not shape or shape[-1] != len(self.values):
      raise ValueError(
          f"RowInitializer holds {len(self.values)} values per row; it cannot "
          f"fill a variable of shape {shape}.")
    dtype = keras.backend.standardize_dtype(dtype or "float32")
    row = np.asarray(self.values, dtype=dtype)
    return keras.ops.convert_to_tensor(np.broadcast_to(row, shape).copy(),
                                       dtype=dtype)

  def get_config(self):
    return {"values": list(self.values)}
