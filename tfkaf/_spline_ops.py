"""Learnable linear spline (DeepSplines): fused op, composite form, gradients.

Per channel c, K coefficients on a uniform grid over [x_min, x_max]
(Bohra et al. 2020, "Learning activation functions in deep (spline) neural
networks"; Aziznejad et al. 2020, "Deep neural networks with trainable
activations and controlled Lipschitz constant"):

    T    = (x_max - x_min) / (K - 1)
    t    = (x - x_min) / T
    i    = clamp(floor(t), 0, K - 2)
    u    = t - i                           (from the unclamped x)
    f(x) = c[i] + u * (c[i+1] - c[i])     (= (1 - u) c[i] + u c[i+1])

so `coefficients[c, k] = f(x_min + k T)` and outside [x_min, x_max] the
spline extrapolates linearly with the end-segment slopes. Gradients:
df/dx = (c[i+1] - c[i]) / T; dL/dc[i] += (1 - u) g; dL/dc[i+1] += u g.

Special values: the index is clamped in floating point with comparisons that
NaN fails, so no input can address another channel's coefficients. A NaN x
gives a NaN output and a NaN dL/dx, and adds NaN to dL/dc[0] and dL/dc[1] of
its own channel only (its clamped index is 0). +-Inf follows the formula:
+-Inf where the end slope is non-zero, NaN where it is zero (0 * Inf);
dL/dx is g times the end slope, and the two coefficients of that end segment
receive +-Inf gradients (NaN where g is 0). Huge finite values extrapolate
(and may overflow to +-Inf). The composite form behaves alike except that
TensorFlow's autodiff gives a NaN x the finite dL/dx = g times the first
slope; under XLA that is what you get only where the composite fallback
runs (`tfkaf._xla`): XLA's custom call runs the fused kernel.

`x_min` and `x_max` are float32 attributes of the op: both forms round them
to float32 first, so float64 inputs see the same grid in both. float16 and
bfloat16 compute in float32 and return their own type.

Inside `tfkaf.portable()`, `linear_spline` traces to `linear_spline_portable`
(standard TF ops for inference: LiteRT builtins, ONNX-convertible).
"""

import numpy as np
import tensorflow as tf

from tfkaf import _loader
from tfkaf import _op_wrappers
from tfkaf import _portable
from tfkaf._xla import use_composite

__all__ = ["linear_spline", "linear_spline_composite",
           "linear_spline_portable"]

_FORWARD_OP = "Tfkaf>LinearSpline"
_GRAD_OP = "Tfkaf>LinearSplineGrad"
_compute_dtype = _op_wrappers.compute_dtype


def _grid_range(x_min, x_max):
  """Returns (x_min, x_max) as float32-representable Python floats."""
  try:
    with np.errstate(over="ignore"):  # too large for float32: inf, refused
      lo = float(np.float32(x_min))
      hi = float(np.float32(x_max))
  except (TypeError, ValueError) as error:
    raise ValueError(
        f"x_min and x_max must be numbers, got {x_min!r} and {x_max!r}"
    ) from error
  # A bad grid is known from the arguments alone: ValueError in every mode,
  # with the op's own rule and message.
  message = _op_wrappers.attr_error("tfkaf_linear_spline", x_min=lo,
                                    x_max=hi)
  if message is not None:
    raise ValueError(message)
  return lo, hi


def _inputs(x, coefficients):
  return _op_wrappers.coerce_inputs(x, coefficients, "coefficients",
                                    "linear spline")


@_op_wrappers.no_autograph
def linear_spline(x, coefficients, x_min, x_max, axis=-1, name=None):
  """Learnable linear spline activation, one spline per channel (fused op).

  f(x) = c[i] + u (c[i+1] - c[i]) with T = (x_max - x_min) / (K - 1),
  i = clamp(floor((x - x_min) / T), 0, K - 2), u = (x - x_min) / T - i (module
  docstring; Bohra et al. 2020). Linear extrapolation outside the grid.

  Args:
    x: tensor of rank >= 1, float16, bfloat16, float32 or float64 (integer
      x is cast to float32).
    coefficients: [C, K], C = x.shape[axis], K >= 2: the values of the spline
      at the knots x_min + k T; a tensor of x's dtype (Python / NumPy values
      are converted to it).
    x_min, x_max: the grid's ends (finite, x_min < x_max; rounded to float32).
    axis: the channel axis of x.
    name: optional name scope.

  Returns:
    A tensor of x's shape and dtype. Differentiable in x and coefficients
    (to any order). Inside an XLA-compiled function (jit_compile=True) the
    op lowers to a custom call into the same fused kernel (the composite
    form only where that is unavailable, see `tfkaf._xla`); inside
    `tfkaf.portable()`, the portable form.

  Raises:
    TypeError: coefficients of another dtype than x, or complex x.
    ValueError: bad x_min / x_max, or shapes known to be wrong while tracing.
    tf.errors.InvalidArgumentError: shapes wrong when executing eagerly or
      found wrong at run time.
  """
  lo, hi = _grid_range(x_min, x_max)
  with tf.name_scope(name or "linear_spline"):
    if _portable.is_active():
      return linear_spline_portable(x, coefficients, lo, hi, axis=axis)
    x, coefficients = _inputs(x, coefficients)
    if use_composite():
      return linear_spline_composite(x, coefficients, lo, hi, axis=axis)
    return _loader.load_ops().tfkaf_linear_spline(
        x, coefficients, x_min=lo, x_max=hi, axis=axis)


def _static_checks(x, coefficients, lo, hi, axis):
  """Raises what the fused op raises for these inputs; returns (rank, the
  normalised axis). The composite and portable forms need x's rank."""
  _op_wrappers.check_like_op("tfkaf_linear_spline", [x, coefficients],
                             x_min=lo, x_max=hi, axis=int(axis))
  rank = x.shape.rank
  if rank is None:
    raise ValueError("linear_spline_composite needs x of known rank")
  return rank, axis % rank


def _segments(t, knots):
  """(i as float, u) with i = clamp(floor(t), 0, K - 2), NaN -> 0, u = t - i."""
  last = tf.cast(knots - 2, t.dtype)
  zero = tf.zeros([], t.dtype)
  i = tf.where(t >= zero, tf.floor(t), zero)  # NaN fails the comparison
  i = tf.stop_gradient(tf.where(i <= last, i, last))
  return i, t - i


def _flat_indices(i, rank, axis, channels, knots, index_dtype=tf.int64):
  """Index of coefficient (channel, i) in the flattened [C * K] table."""
  offsets = tf.range(channels, dtype=index_dtype) * tf.cast(knots, index_dtype)
  offsets = tf.reshape(offsets, [-1] + [1] * (rank - 1 - axis))
  return tf.cast(i, index_dtype) + offsets


def _interpolate(table, flat, u):
  """c[i] + u (c[i+1] - c[i]), c[i] = table[flat]."""
  c0 = tf.gather(table, flat)
  c1 = tf.gather(table, flat + 1)
  return c0 + u * (c1 - c0)


def linear_spline_composite(x, coefficients, x_min, x_max, axis=-1):
  """Composite pure-TF form of `linear_spline` (gather-based, as DeepSplines).

  Same formula and special-value behaviour as the fused op; its gradients
  come from TensorFlow's autodiff of floor / gather. Used as test oracle, as
  the fallback inside XLA-compiled functions, and as benchmark baseline.
  """
  lo, hi = _grid_range(x_min, x_max)
  x, coefficients = _inputs(x, coefficients)
  rank, axis = _static_checks(x, coefficients, lo, hi, axis)
  dtype = x.dtype
  compute = _compute_dtype(dtype)
  xc = tf.cast(x, compute)
  cc = tf.cast(coefficients, compute)
  shape = tf.shape(cc, out_type=tf.int64)
  channels, knots = shape[0], shape[1]
  tf.debugging.assert_equal(
      tf.shape(x, out_type=tf.int64)[axis], channels,
      message="coefficients must have one row per channel of x")
  scale = tf.cast((tf.cast(knots, tf.float64) - 1.0) / (hi - lo), compute)
  t = (xc - tf.constant(lo, compute)) * scale
  i, u = _segments(t, knots)
  flat = _flat_indices(i, rank, axis, channels, knots)
  y = _interpolate(tf.reshape(cc, [-1]), flat, u)
  return tf.cast(y, dtype)


def linear_spline_portable(x, coefficients, x_min, x_max, axis=-1):
  """`linear_spline` as standard TF ops for inference (`tfkaf.portable()`).

  The formula of the composite form with the shapes and the grid scale as
  constants: segment index, two gathers from the flattened [C * K] table
  (int32 indices), linear extrapolation outside the grid. No assertion, no
  float64 and no gradient bookkeeping; every intermediate has x's size. A
  NaN input gives NaN (as the fused op), +-Inf follows the formula.
  Every op is a LiteRT builtin and converts to ONNX. Needs the coefficients'
  shape [C, K] known while tracing (it is, for the layers).
  """
  lo, hi = _grid_range(x_min, x_max)
  x, coefficients = _inputs(x, coefficients)
  rank, axis = _static_checks(x, coefficients, lo, hi, axis)
  channels, knots = coefficients.shape
  if channels is None or knots is None:
    raise ValueError("linear_spline_portable needs the shape of the "
                     "coefficients [channels, knots] known while tracing, "
                     f"got {coefficients.shape}")
  dtype = x.dtype
  compute = _compute_dtype(dtype)
  t = ((tf.cast(x, compute) - tf.constant(lo, compute))
       * tf.constant((knots - 1.0) / (hi - lo), compute))
  i = _portable_segment_index(t, knots)
  flat = _flat_indices(i, rank, axis, channels, knots, index_dtype=tf.int32)
  table = tf.reshape(tf.cast(coefficients, compute), [-1])
  return tf.cast(_interpolate(table, flat, t - tf.cast(i, compute)), dtype)


def _portable_segment_index(t, knots):
  """int32 i = clamp(floor(t), 0, K - 2) from min / max and an integer clamp.

  No select (tf2onnx may turn one into arithmetic on both branches, which
  spreads a NaN or Inf of the unused branch): t is clamped in floating point
  first, so that the conversion is defined for +-Inf and huge values, and
  the integer is clamped again, so that a NaN t (whose conversion is
  undefined) still gives a valid index; its output is NaN through u.
  """
  last = knots - 2
  clamped = tf.minimum(tf.maximum(t, tf.zeros([], t.dtype)),
                       tf.constant(last, t.dtype))
  i = tf.cast(tf.floor(clamped), tf.int32)
  return tf.minimum(tf.maximum(i, 0), last)


def _attrs(op):
  return (op.get_attr("x_min"), op.get_attr("x_max"), op.get_attr("axis"))


def _composite_vjp(dy, x, coefficients, x_min, x_max, axis):
  with tf.GradientTape() as tape:
    tape.watch([x, coefficients])
    y = linear_spline_composite(x, coefficients, x_min, x_max, axis=axis)
  return tape.gradient(y, [x, coefficients], output_gradients=dy)


def _fused_vjp(dy, x, coefficients, x_min, x_max, axis):
  if use_composite():
    return _composite_vjp(dy, x, coefficients, x_min, x_max, axis)
  dx, dcoefficients = _loader.load_ops().tfkaf_linear_spline_grad(
      dy, x, coefficients, x_min=x_min, x_max=x_max, axis=axis)
  return dx, dcoefficients


@tf.RegisterGradient(_FORWARD_OP)
def _linear_spline_grad(op, dy):
  """dL/dx and dL/dc in one pass of the fused Tfkaf>LinearSplineGrad op."""
  x, coefficients = op.inputs
  return _fused_vjp(dy, x, coefficients, *_attrs(op))


def _segment_histogram(weights, x, coefficients, x_min, x_max, axis):
  """H[c, k] = sum of `weights` over the positions of channel c in segment k.

  Returned as [C, K] with H[:, K-1] = 0 (i <= K - 2).
  """
  rank = x.shape.rank
  if rank is None:
    raise ValueError("second-order gradients of linear_spline need x of "
                     "known rank")
  axis = axis % rank
  dtype = x.dtype
  compute = _compute_dtype(dtype)
  shape = tf.shape(coefficients, out_type=tf.int64)
  channels, knots = shape[0], shape[1]
  scale = tf.cast((tf.cast(knots, tf.float64) - 1.0) / (x_max - x_min),
                  compute)
  t = (tf.cast(x, compute) - tf.constant(x_min, compute)) * scale
  i, _ = _segments(t, knots)
  flat = tf.reshape(_flat_indices(i, rank, axis, channels, knots), [-1])
  sums = tf.math.unsorted_segment_sum(
      tf.reshape(tf.cast(weights, compute), [-1]), flat, channels * knots)
  return tf.reshape(sums, [channels, knots]), scale


@tf.RegisterGradient(_GRAD_OP)
def _linear_spline_grad_grad(op, ddx, ddc):
  """Gradient of (dx, dc) = LinearSplineGrad(dy, x, c) given (ddx, ddc).

  With S(x; a) = (a[i+1] - a[i]) / T the slope of the spline with
  coefficients a, and w = ddx * dy:
    d/d(dy) = ddx * S(x; c) + f(x; ddc)
    d/dx    = dy * S(x; ddc)   (dx = dy S(x; c) is piecewise constant in x)
    d/dc[k] = (H[k-1] - H[k]) / T, H[k] = sum of w over segment k.
  """
  dy, x, coefficients = op.inputs
  x_min, x_max, axis = _attrs(op)
  if ddx is None:
    ddx = tf.zeros_like(x)
  if ddc is None:
    ddc = tf.zeros_like(coefficients)
  slope_c, _ = _fused_vjp(ddx, x, coefficients, x_min, x_max, axis)
  values_ddc = (linear_spline_composite(x, ddc, x_min, x_max, axis=axis)
                if use_composite() else _loader.load_ops().tfkaf_linear_spline(
                    x, ddc, x_min=x_min, x_max=x_max, axis=axis))
  d_dy = slope_c + values_ddc
  d_x, _ = _fused_vjp(dy, x, ddc, x_min, x_max, axis)
  histogram, scale = _segment_histogram(ddx * dy, x, coefficients, x_min,
                                        x_max, axis)
  shifted = tf.pad(histogram[:, :-1], [[0, 0], [1, 0]])  # H[k - 1]
  d_c = tf.cast((shifted - histogram) * scale, coefficients.dtype)
  return d_dy, d_x, d_c
