"""Helpers for learnable linear splines (DeepSplines), from their coefficients.

A linear spline activation has, per channel c, K coefficients
c[c, k] = f(knot_k) on the uniform grid knot_k = x_min + k T,
T = (x_max - x_min) / (K - 1) (`tfkaf.ops.linear_spline`, which extrapolates
linearly). Equivalently, as a sum of ReLUs (Bohra et al. 2020, "Learning
activation functions in deep (spline) neural networks", IEEE OJSP):

    f(x) = c[0] + b1 (x - x_min) + sum_{k=1..K-2} a_k ReLU(x - knot_k)

with first-segment slope b1 = (c[1] - c[0]) / T and ReLU slopes (second
differences) a_k = (c[k+1] - 2 c[k] + c[k-1]) / T. The second-order total
variation of f is TV2(f) = sum_k |a_k|, the regulariser that promotes sparse
(few-knot) activations; BV2(f) = TV2(f) + |f(0)| + |f(1)| (Bohra et al.).
The Lipschitz constant of f is max_k |(c[k+1] - c[k]) / T|, and the slope
projection that bounds it follows Aziznejad et al. 2020, "Deep neural
networks with trainable activations and controlled Lipschitz constant",
IEEE TSP.

Every function takes coefficients [C, K] (a tensor or variable) and the grid
spacing T, works with plain vectorised TF ops on the coefficients' device,
and is differentiable where that makes sense (all but the counts and the
sparsification threshold).
"""

import math

import tensorflow as tf

__all__ = [
    "DEFAULT_KNOT_THRESHOLD",
    "bv2",
    "grid",
    "lipschitz_constants",
    "num_active_knots",
    "project_slopes",
    "relu_slopes",
    "slopes",
    "sparsify",
    "tv2",
]

# |a_k| below this counts as an inactive knot (float32 round-off on a
# sampled straight line gives |a_k| ~ 1e-6 for coefficients of order 1).
DEFAULT_KNOT_THRESHOLD = 1e-4


def grid(size, range_):
  """The DeepBSpline grid: (-range_, range_, T = 2 range_ / (size - 1)).

  Args:
    size: K, the number of coefficients (knots), an int >= 2 (the
      DeepSplines default is 51, odd so that 0 is a knot).
    range_: half-width of the grid, a finite float > 0 (default 4.0 there).

  Returns:
    (x_min, x_max, T) as Python floats.
  """
  if isinstance(size, bool) or not isinstance(size, int) or size < 2:
    raise ValueError(f"size must be an int >= 2, got {size!r}")
  range_ = float(range_)
  if not (math.isfinite(range_) and range_ > 0):
    raise ValueError(f"range_ must be a finite number > 0, got {range_!r}")
  return -range_, range_, 2.0 * range_ / (size - 1)


def _coefficients(coefficients):
  coefficients = tf.convert_to_tensor(coefficients, dtype_hint=tf.float32)
  if coefficients.shape.rank is not None and coefficients.shape.rank != 2:
    raise ValueError(
        "coefficients must be a rank-2 tensor [channels, knots], got shape "
        f"{coefficients.shape}")
  return coefficients


def _as(value, dtype):
  """value in dtype; Python numbers converted directly (no float32 detour)."""
  if isinstance(value, (tf.Tensor, tf.Variable)):
    return tf.cast(value, dtype)
  return tf.constant(value, dtype)


def _spacing(T, dtype):  # pylint: disable=invalid-name
  return _as(T, dtype)


def slopes(coefficients, T):  # pylint: disable=invalid-name
  """Segment slopes s_k = (c[k+1] - c[k]) / T, k = 0..K-2: [C, K-1]."""
  c = _coefficients(coefficients)
  return (c[:, 1:] - c[:, :-1]) / _spacing(T, c.dtype)


def relu_slopes(coefficients, T):  # pylint: disable=invalid-name
  """ReLU slopes a_k = (c[k+1] - 2 c[k] + c[k-1]) / T, k = 1..K-2: [C, K-2].

  a_k is the change of slope at knot k, the weight of ReLU(x - knot_k) in the
  ReLU expansion of the spline (Bohra et al. 2020).
  """
  c = _coefficients(coefficients)
  return (c[:, 2:] - 2.0 * c[:, 1:-1] + c[:, :-2]) / _spacing(T, c.dtype)


def tv2(coefficients, T):  # pylint: disable=invalid-name
  """Second-order total variation per channel: TV2 = sum_k |a_k|, [C].

  (Bohra et al. 2020.) For leaky_relu(0.01) sampled on any grid with a knot
  at 0, TV2 = 1 - 0.01 = 0.99.
  """
  return tf.reduce_sum(tf.abs(relu_slopes(coefficients, T)), axis=1)


def _evaluate(c, T, x_min, point):  # pylint: disable=invalid-name
  """f(point) per channel ([C]) by the spline formula (with extrapolation)."""
  knots = tf.shape(c)[1]
  t = (_as(point, c.dtype) - _as(x_min, c.dtype)) / _spacing(T, c.dtype)
  last = tf.cast(knots - 2, c.dtype)
  zero = tf.zeros([], c.dtype)
  i = tf.where(t >= zero, tf.floor(t), zero)
  i = tf.stop_gradient(tf.where(i <= last, i, last))
  u = t - i
  index = tf.cast(i, tf.int32)
  c0 = tf.gather(c, index, axis=1)
  c1 = tf.gather(c, index + 1, axis=1)
  return c0 + u * (c1 - c0)


def bv2(coefficients, T, x_min):  # pylint: disable=invalid-name
  """BV2 = TV2 + |f(0)| + |f(1)| per channel, [C] (Bohra et al. 2020).

  f is the spline itself (linear extrapolation outside the grid), on the grid
  that starts at x_min with spacing T.
  """
  c = _coefficients(coefficients)
  return (tv2(c, T) + tf.abs(_evaluate(c, T, x_min, 0.0))
          + tf.abs(_evaluate(c, T, x_min, 1.0)))


def lipschitz_constants(coefficients, T):  # pylint: disable=invalid-name
  """Lipschitz constant of each channel's spline: max_k |s_k|, [C].

  A linear spline with linear extrapolation is Lipschitz with exactly its
  largest absolute segment slope (Aziznejad et al. 2020).
  """
  return tf.reduce_max(tf.abs(slopes(coefficients, T)), axis=1)


def _rebuild(first, segment_slopes, T):  # pylint: disable=invalid-name
  """c[0] = first, c[k] = first + T sum_{j<k} s_j: [C, K]."""
  steps = tf.cumsum(segment_slopes * _spacing(T, segment_slopes.dtype), axis=1)
  return tf.concat([first, first + steps], axis=1)


def project_slopes(coefficients, T, slope_min=None,  # pylint: disable=invalid-name
                   slope_max=None):
  """Coefficients whose slopes are clamped to [slope_min, slope_max], [C, K].

  s'_k = clamp((c[k+1] - c[k]) / T, slope_min, slope_max); the coefficients
  are rebuilt by cumulative sum from c[0] and then shifted so that each
  channel keeps the mean of its original coefficients (the projection of
  Aziznejad et al. 2020 as in the DeepSplines code). The result is
  Lipschitz with constant at most max(|slope_min|, |slope_max|). Differentiable
  (the clamp passes gradients where a slope is inside its bounds). None
  leaves that side unbounded.
  """
  c = _coefficients(coefficients)
  if slope_min is not None and slope_max is not None and not (
      isinstance(slope_min, tf.Tensor) or isinstance(slope_max, tf.Tensor)):
    if float(slope_min) > float(slope_max):
      raise ValueError(
          f"slope_min must be <= slope_max, got {slope_min} and {slope_max}")
  s = slopes(c, T)
  if slope_min is not None:
    s = tf.maximum(s, _as(slope_min, c.dtype))
  if slope_max is not None:
    s = tf.minimum(s, _as(slope_max, c.dtype))
  rebuilt = _rebuild(c[:, :1], s, T)
  shift = (tf.reduce_mean(c, axis=1, keepdims=True)
           - tf.reduce_mean(rebuilt, axis=1, keepdims=True))
  return rebuilt + shift


def sparsify(coefficients, T, threshold):  # pylint: disable=invalid-name
  """Coefficients with every ReLU slope |a_k| < threshold set to 0, [C, K].

  The result keeps c[0] and c[1] (so the first segment, f on
  [x_min, x_min + T], is unchanged) and the remaining a_k: slopes
  s'_k = s_0 + sum_{j=1..k} a'_j and c'[k] = c[0] + T sum_{j<k} s'_j. Where no
  a_k is removed the function is unchanged (up to round-off); each removed
  knot changes later slopes by its a_k. Returns new coefficients (a tensor);
  assign them to the variable to apply.
  """
  c = _coefficients(coefficients)
  a = relu_slopes(c, T)
  kept = tf.where(tf.abs(a) < _as(threshold, c.dtype), tf.zeros_like(a), a)
  s0 = (c[:, 1:2] - c[:, :1]) / _spacing(T, c.dtype)
  segment_slopes = tf.concat([s0, s0 + tf.cumsum(kept, axis=1)], axis=1)
  return _rebuild(c[:, :1], segment_slopes, T)


def num_active_knots(coefficients, T,  # pylint: disable=invalid-name
                     threshold=DEFAULT_KNOT_THRESHOLD):
  """Number of active knots per channel: a_k != 0 with |a_k| >= threshold.

  The knots that `sparsify(coefficients, T, threshold)` keeps; int32 [C].
  """
  a = relu_slopes(coefficients, T)
  active = tf.logical_and(tf.abs(a) >= _as(threshold, a.dtype),
                          tf.not_equal(a, 0))
  return tf.reduce_sum(tf.cast(active, tf.int32), axis=1)
