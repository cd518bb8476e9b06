"""TensorFlow helpers shared by the definitions of the fixed activations."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _backend
from tfkaf import _portable

__all__ = [
    "const",
    "downcast",
    "expm1",
    "gelu_tanh",
    "is_zero",
    "normalize_axis",
    "tensor",
    "upcast",
]

_HALF_TYPES = (tf.float16, tf.bfloat16)


def tensor(x):
  """Converts to a floating tensor (integers become keras' floatx)."""
  _backend.require_tensorflow_tensor(x, "a tfkaf activation")
  x = tf.convert_to_tensor(x)
  if not x.dtype.is_floating:
    x = tf.cast(x, keras.config.floatx())
  return x


def const(value, x):
  """`value` as a tensor of x's dtype."""
  # tf.cast(python_float, float64) would round through float32 first.
  if isinstance(value, (bool, int, float, np.number)):
    return tf.constant(value, dtype=x.dtype)
  return tf.cast(value, x.dtype)


def is_zero(value):
  return isinstance(value, (int, float)) and value == 0


def upcast(x):
  """float16/bfloat16 -> float32 for reductions; returns (x, dtype back)."""
  if x.dtype in _HALF_TYPES:
    return tf.cast(x, tf.float32), x.dtype
  return x, None


def downcast(y, dtype):
  return y if dtype is None else tf.cast(y, dtype)


def expm1(x):
  """exp(x) - 1, accurate near 0.

  tf.math.expm1; inside `tfkaf.portable()` (ONNX has no Expm1) exp(x) - 1,
  and its Taylor polynomial x + x^2/2 + x^3/6 where |x| < 0.01 (relative
  error below 1e-5 everywhere in float32). Both branches of the select stay
  finite for finite x, as tf2onnx may turn a select into arithmetic on both
  branches.
  """
  if not _portable.is_active():
    return tf.math.expm1(x)
  limit = const(0.01, x)
  s = tf.minimum(tf.maximum(x, -limit), limit)
  taylor = s * (const(1, x) + s * (const(0.5, x) + s * const(1 / 6, x)))
  return tf.where(tf.abs(x) < limit, taylor, tf.math.exp(x) - const(1, x))


def normalize_axis(x, axis, fn_name):
  """The non-negative `axis` of `x` (as given when the rank is unknown)."""
  rank = x.shape.rank
  if rank is None:
    return axis
  if not -rank <= axis < rank:
    raise ValueError(
        f"{fn_name}: axis {axis} is out of range for an input of rank "
        f"{rank} (shape {x.shape})."
    )
  return axis % rank


def gelu_tanh(x):
  """The tanh approximation of GELU (Hendrycks & Gimpel 2016).

  Computed as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`` (the same
  function as ``0.5 x (1 + tanh(...))``), which does not cancel for
  negative inputs.
  """
  x = tensor(x)
  inner = const(math.sqrt(2.0 / math.pi), x) * (
      x + const(0.044715, x) * x * x * x
  )
  return x * tf.math.sigmoid(const(2, x) * inner)
