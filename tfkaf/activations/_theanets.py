"""The activations of theanets: `logistic` (an alias of `sigmoid`), `trel`,
`trec`, `tlin`, ``rect:min``, ``rect:max`` and the normalisations
``norm:mean``, ``norm:max``, ``norm:std``, ``norm:z`` (over the last axis).

theanets' relu, tanh, softplus, softmax, linear and sigmoid are Keras 3's.
"""

import tensorflow as tf

from tfkaf.activations import _math
from tfkaf.activations import _registry
from tfkaf.activations._keras3 import sigmoid
from tfkaf.activations._registry import THEANETS


# Denominator guard of the theanets normalisations (theanets uses 1e-7 too).
NORM_EPSILON = 1e-7

logistic = sigmoid


@_registry.builtin(
    "trel", "max(0, min(1, x))", THEANETS,
    lipschitz=1.0,
)
def trel(x):
  """Truncated rectified linear.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.maximum(tf.minimum(x, _math.const(1, x)), _math.const(0, x))


@_registry.builtin(
    "trec", "x if x > 1 else 0", THEANETS,
)
def trec(x):
  """Thresholded rectified linear.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.where(x > _math.const(1, x), x, tf.zeros_like(x))


@_registry.builtin(
    "tlin", "x if |x| > 1 else 0", THEANETS,
)
def tlin(x):
  """Thresholded linear.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.where(tf.abs(x) > _math.const(1, x), x, tf.zeros_like(x))


@_registry.builtin(
    "rect:min", "min(1, x)", THEANETS, aliases=("rect_min",),
    lipschitz=1.0,
)
def rect_min(x):
  """Truncation from above at 1 (theanets' ``rect:min``).

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.minimum(x, _math.const(1, x))


@_registry.builtin(
    "rect:max", "max(0, x)", THEANETS, aliases=("rect_max",),
    lipschitz=1.0,
)
def rect_max(x):
  """Rectification at 0 (theanets' ``rect:max``).

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.maximum(x, _math.const(0, x))


def _moments_last_axis(z):
  mean = tf.reduce_mean(z, axis=-1, keepdims=True)
  variance = tf.reduce_mean(tf.square(z - mean), axis=-1, keepdims=True)
  return mean, variance


def _guarded_std(variance):
  # sqrt(max(var, eps^2)) == max(std, eps), with a finite gradient at var=0.
  eps = _math.const(NORM_EPSILON, variance)
  return tf.sqrt(tf.maximum(variance, eps * eps))


@_registry.builtin(
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
  z, dtype = _math.upcast(_math.tensor(x))
  return _math.downcast(z - tf.reduce_mean(z, axis=-1, keepdims=True), dtype)


@_registry.builtin(
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
  z, dtype = _math.upcast(_math.tensor(x))
  peak = tf.reduce_max(tf.abs(z), axis=-1, keepdims=True)
  guarded = tf.maximum(peak, _math.const(NORM_EPSILON, z))
  return _math.downcast(z / guarded, dtype)


@_registry.builtin(
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
  z, dtype = _math.upcast(_math.tensor(x))
  _, variance = _moments_last_axis(z)
  return _math.downcast(z / _guarded_std(variance), dtype)


@_registry.builtin(
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
  z, dtype = _math.upcast(_math.tensor(x))
  mean, variance = _moments_last_axis(z)
  return _math.downcast((z - mean) / _guarded_std(variance), dtype)


