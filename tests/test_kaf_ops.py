"""Tests of the fused KAF and 2D-KAF ops (docs/design.md, sections 1, 2).

The oracle is an independent NumPy implementation written here from the
formulas (float64), not the composite TF form; the composite form is checked
against it too. Shapes are small: the whole file runs in well under a minute.
"""

import functools
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfkaf  # noqa: F401  (loads the op plugin)
from tfkaf import _kaf_ops
from tfkaf import ops

from op_errors import assert_same_error, error_of, rule_message, run
from reference import KERNELS, f32, np_gamma
from reference import np_kaf, np_kaf2d, np_kaf2d_grads, np_kaf_grads
_RAW = tfkaf.load_ops()


# ---------------------------------------------------------------------------
# Helpers.


def shape_with_channels(rank, axis, channels, rng):
  shape = [int(s) for s in rng.integers(2, 5, size=rank)]
  shape[axis] = channels
  return shape


def tol(dtype):
  return {tf.float64: dict(rtol=1e-10, atol=1e-10),
          tf.float32: dict(rtol=2e-5, atol=2e-5)}[dtype]


def kaf_grads(fn, x, alpha, dy, **kwargs):
  x = tf.convert_to_tensor(x)
  alpha = tf.convert_to_tensor(alpha)
  with tf.GradientTape() as tape:
    tape.watch([x, alpha])
    y = fn(x, alpha, **kwargs)
  return tape.gradient(y, [x, alpha], output_gradients=tf.cast(dy, y.dtype))


def _gamma_kwargs(gamma):
  """No gamma: the op derives the default itself."""
  return {} if gamma is None else {"gamma": gamma}


def raw_kaf_grad(dy, x, alpha, boundary=3.0, kernel="gaussian", gamma=None,
                 axis=-1):
  return _RAW.tfkaf_kaf_grad(dy, x, alpha, boundary=boundary, kernel=kernel,
                             axis=axis, **_gamma_kwargs(gamma))


def raw_kaf2d_grad(dy, x, alpha, boundary=3.0, gamma=None, axis=-1):
  return _RAW.tfkaf_kaf2d_grad(dy, x, alpha, boundary=boundary, axis=axis,
                               **_gamma_kwargs(gamma))


# ---------------------------------------------------------------------------
# Defaults.


def test_default_gamma_rules():
  step = 6.0 / 19
  assert _kaf_ops.default_gamma(3.0, 20) == pytest.approx(1 / (8 * step**2))
  step = 6.0 / 9
  assert _kaf_ops.default_gamma_2d(3.0, 10) == pytest.approx(
      1 / (4 * step**2))
  assert ops.default_gamma is _kaf_ops.default_gamma
  with pytest.raises(ValueError, match="at least 2 centres"):
    _kaf_ops.default_gamma(3.0, 1)
  with pytest.raises(ValueError, match="boundary"):
    _kaf_ops.default_gamma_2d(0.0, 10)


def test_op_names_and_generated_wrappers():
  names = {op.name for op in _RAW.OP_LIST.op} if hasattr(_RAW, "OP_LIST") \
      else set()
  for name in ("tfkaf_kaf", "tfkaf_kaf_grad", "tfkaf_kaf2d",
               "tfkaf_kaf2d_grad"):
    assert hasattr(_RAW, name)
  if names:
    assert {"Tfkaf>Kaf", "Tfkaf>KafGrad", "Tfkaf>Kaf2d",
            "Tfkaf>Kaf2dGrad"} <= names


# ---------------------------------------------------------------------------
# Forward against NumPy.

_LAYOUTS = [(1, -1), (1, 0), (2, -1), (2, 0), (3, -1), (3, 1), (4, -1),
            (4, 1)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rank,axis", _LAYOUTS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_kaf_forward_matches_numpy(kernel, rank, axis, dtype, rng):
  channels = 11
  shape = shape_with_channels(rank, axis, channels, rng)
  x = rng.normal(0.0, 2.5, shape)
  alpha = rng.normal(0.0, 0.5, (channels, 20))
  y = ops.kaf(tf.constant(x, dtype), tf.constant(alpha, dtype), kernel=kernel,
              axis=axis)
  assert y.dtype == dtype and y.shape == tuple(shape)
  np.testing.assert_allclose(
      y.numpy(), np_kaf(np.asarray(tf.constant(x, dtype)), alpha,
                        kernel=kernel, axis=axis), **tol(dtype))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rank,axis", [(1, -1), (3, 1), (4, -1)])
def test_kaf_composite_matches_numpy(kernel, rank, axis, rng):
  shape = shape_with_channels(rank, axis, 6, rng)
  x = rng.normal(0.0, 2.5, shape)
  alpha = rng.normal(0.0, 0.5, (6, 9))
  y = _kaf_ops.kaf_composite(tf.constant(x), tf.constant(alpha), boundary=2.0,
                             kernel=kernel, axis=axis)
  np.testing.assert_allclose(
      y.numpy(), np_kaf(x, alpha, 2.0, kernel, axis=axis), rtol=1e-10,
      atol=1e-10)


@pytest.mark.parametrize(
    "shape,axis",
    [((70, 300), -1),      # several channel segments, row tiles and tails
     ((2, 3, 600), 1),     # channels-first, several position segments
     ((3, 5, 7, 13), -1),  # NHWC
     ((2, 13, 5, 7), 1)])  # NCHW
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_kaf_tiling_and_layouts(shape, axis, dtype, rng):
  channels = shape[axis]
  x = rng.normal(0.0, 2.0, shape)
  alpha = rng.normal(0.0, 0.5, (channels, 20))
  dy = rng.normal(size=shape)
  xt, at, dyt = (tf.constant(v, dtype) for v in (x, alpha, dy))
  x64 = np.asarray(xt, np.float64)
  np.testing.assert_allclose(ops.kaf(xt, at, axis=axis).numpy(),
                             np_kaf(x64, alpha, axis=axis), **tol(dtype))
  dx, dalpha = raw_kaf_grad(dyt, xt, at, axis=axis)
  ref_dx, ref_dalpha = np_kaf_grads(np.asarray(dyt, np.float64), x64,
                                    np.asarray(at, np.float64), axis=axis)
  np.testing.assert_allclose(dx.numpy(), ref_dx, **tol(dtype))
  scale = np.abs(ref_dalpha).max()
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha,
                             rtol=tol(dtype)["rtol"] * 10,
                             atol=tol(dtype)["atol"] * scale)


@pytest.mark.parametrize(
    "d,gamma,boundary",
    [(2, None, 3.0),     # smallest dictionary
     (20, 40.0, 3.0),    # narrow Gaussians: the CPU walks 3 runs of 7
     (20, 150.0, 3.0),   # narrower: one exponential per centre
     (64, None, 4.0),    # large dictionary: 2 runs of 32 centres
     (100, None, 3.0),   # 3 runs of 34 and 33 centres
     (50, 266.8, 3.0),   # 8 runs of 7 and 6 centres
     (33, None, 1.0),    # the longest one-run walk (gamma boundary^2 = 32)
     (20, 1e-3, 3.0)])   # very wide Gaussians
def test_kaf_gaussian_parameter_regimes(d, gamma, boundary, rng):
  x = np.concatenate([rng.normal(0.0, 3.0, (40, 5)),
                      rng.uniform(-30.0, 30.0, (40, 5))])
  alpha = rng.normal(0.0, 1.0, (5, d))
  dy = rng.normal(size=x.shape)
  y = ops.kaf(tf.constant(x), tf.constant(alpha), boundary=boundary,
              gamma=gamma)
  np.testing.assert_allclose(y.numpy(), np_kaf(x, alpha, boundary,
                                               gamma=gamma),
                             rtol=1e-10, atol=1e-12)
  dx, dalpha = raw_kaf_grad(tf.constant(dy), tf.constant(x),
                            tf.constant(alpha), boundary=boundary,
                            gamma=gamma)
  ref_dx, ref_dalpha = np_kaf_grads(dy, x, alpha, boundary, gamma=gamma)
  np.testing.assert_allclose(dx.numpy(), ref_dx, rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha, rtol=1e-9,
                             atol=1e-11)


def _middle_walk_limit(d, two_d, budget):
  """The |x| up to which the CPU walks the Gaussians from the middle centre
  at the default gamma: g x^2 + g step |x| = budget (40; the 2D forward's
  20 a side)."""
  g, step = np_gamma(3.0, d, two_d), 6.0 / (d - 1)
  return (math.sqrt((g * step) ** 2 + 4.0 * budget * g) - g * step) / (2 * g)


@pytest.mark.parametrize("alpha_scale", [1.0, 1e19])
@pytest.mark.parametrize("op,budget", [("kaf", 40), ("kaf2d", 20),
                                       ("kaf2d", 40)])
def test_float32_walks_up_to_the_middle_walk_limit(op, budget, alpha_scale,
                                                   rng):
  """Batches whose |x| reach the limit of the walk from the middle centre
  (its f_m down to e^-40; the 2D forward's e^-20 a side, its backward's
  e^-40), batches with one x just past it (the mirrored walk), and alpha
  too large for the forward's sums (every batch mirrored) all match the
  reference, forward and backward."""
  two_d = op == "kaf2d"
  d = 10 if two_d else 20
  limit = _middle_walk_limit(d, two_d, budget)
  x = rng.uniform(-limit, limit, (64, 32)) * 0.999
  x[::16, 5] = limit * 1.01
  x[1::16, 7] = -limit * 1.01
  x = x.astype(np.float32)
  channels = 16 if two_d else 32
  alpha = rng.normal(0.0, alpha_scale, (channels, d * d if two_d else d))
  alpha = alpha.astype(np.float32)
  dy = rng.normal(size=(64, channels)).astype(np.float32)
  fn, ref_fn = (ops.kaf2d, np_kaf2d) if two_d else (ops.kaf, np_kaf)
  grad_fn, ref_grads = ((raw_kaf2d_grad, np_kaf2d_grads) if two_d
                        else (raw_kaf_grad, np_kaf_grads))
  y = fn(tf.constant(x), tf.constant(alpha)).numpy()
  ref = ref_fn(x.astype(np.float64), alpha.astype(np.float64))
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
  dx, dalpha = grad_fn(tf.constant(dy), tf.constant(x), tf.constant(alpha))
  ref_dx, ref_dalpha = ref_grads(dy.astype(np.float64), x.astype(np.float64),
                                 alpha.astype(np.float64))
  for got, want in ((dx, ref_dx), (dalpha, ref_dalpha)):
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64])
def test_kaf_huge_gamma_beyond_float_resolution(dtype):
  # gamma = 1e30: the clamp margin (gamma L^2 = 800) is below the float
  # resolution at the boundary; x beyond it must still give 0, and x exactly
  # on a centre alpha of that centre.
  x = tf.constant([[5.27, 3.0, -3.0, 3.01, 0.0]], dtype)
  alpha = tf.constant(np.arange(1.0, 5 * 4 + 1).reshape(5, 4), dtype)
  y = ops.kaf(x, alpha, boundary=3.0, gamma=1e30)
  np.testing.assert_array_equal(y.numpy(), [[0.0, 8.0, 9.0, 0.0, 0.0]])
  # pairs (5.27, -3): off the grid; (3, -3): on the centre (d[1], d[0]).
  x2 = tf.constant([[5.27, 3.0, -3.0, -3.0]], dtype)
  y2 = ops.kaf2d(x2, tf.ones([2, 4], dtype), boundary=3.0, gamma=1e30)
  np.testing.assert_array_equal(y2.numpy(), [[0.0, 1.0]])
  dx, dalpha = raw_kaf_grad(tf.ones_like(x), x, alpha, boundary=3.0,
                            gamma=1e30)
  assert np.isfinite(dx.numpy()).all() and np.isfinite(dalpha.numpy()).all()


def test_kaf_large_coefficients_float32(rng):
  # Kernel ridge regression gives large oscillating coefficients.
  x = rng.uniform(-4.0, 4.0, (64, 8))
  alpha = rng.normal(0.0, 40.0, (8, 20))
  y = ops.kaf(tf.constant(x, tf.float32), tf.constant(alpha, tf.float32))
  ref = np_kaf(np.asarray(tf.constant(x, tf.float32)), alpha)
  np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4,
                             atol=1e-5 * np.abs(alpha).sum(1).max())


# ---------------------------------------------------------------------------
# Gradients.


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape,axis", [((3, 4), -1), ((2, 3, 4), 1)])
def test_kaf_compute_gradient(kernel, shape, axis, rng):
  channels = shape[axis]
  d = 7
  x = rng.uniform(-3.5, 3.5, shape)
  if kernel == "relu":  # keep clear of the kinks at the centres
    centres = np.linspace(-3.0, 3.0, d)
    step = centres[1] - centres[0]
    frac = (x + 3.0) / step - np.floor((x + 3.0) / step)
    x = x + (0.3 - frac) * step * (np.abs(frac - 0.5) > 0.4)
  alpha = rng.normal(0.0, 0.7, (channels, d))
  fn = lambda x, a: ops.kaf(x, a, kernel=kernel, axis=axis)  # noqa: E731
  theoretical, numerical = tf.test.compute_gradient(
      fn, [tf.constant(x), tf.constant(alpha)], delta=1e-6)
  for t, n in zip(theoretical, numerical):
    np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_kaf_gradients_match_numpy(kernel, dtype, rng):
  x = rng.normal(0.0, 2.5, (5, 3, 9))
  alpha = rng.normal(0.0, 0.5, (9, 12))
  dy = rng.normal(size=x.shape)
  xt, at = tf.constant(x, dtype), tf.constant(alpha, dtype)
  dx, dalpha = kaf_grads(ops.kaf, xt, at, dy, kernel=kernel)
  ref_dx, ref_dalpha = np_kaf_grads(
      np.asarray(tf.constant(dy, dtype), np.float64),
      np.asarray(xt, np.float64), np.asarray(at, np.float64), kernel=kernel)
  assert dx.dtype == dtype and dalpha.dtype == dtype
  np.testing.assert_allclose(dx.numpy(), ref_dx, **tol(dtype))
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha,
                             rtol=tol(dtype)["rtol"] * 10,
                             atol=tol(dtype)["atol"] * 10)


@pytest.mark.parametrize("shape,axis",
                         [((6000, 7), -1), ((40, 7, 15, 11), 1),
                          ((30, 9, 9, 7), -1)])
def test_kaf_dalpha_reduction_over_many_positions(shape, axis, rng):
  channels = shape[axis]
  x = rng.normal(0.0, 2.0, shape)
  alpha = rng.normal(0.0, 0.5, (channels, 20))
  dy = rng.normal(size=shape)
  _, dalpha = raw_kaf_grad(tf.constant(dy), tf.constant(x),
                           tf.constant(alpha), axis=axis)
  _, ref = np_kaf_grads(dy, x, alpha, axis=axis)
  np.testing.assert_allclose(dalpha.numpy(), ref, rtol=1e-9, atol=1e-9)
  _, dalpha32 = raw_kaf_grad(tf.constant(dy, tf.float32),
                             tf.constant(x, tf.float32),
                             tf.constant(alpha, tf.float32), axis=axis)
  np.testing.assert_allclose(dalpha32.numpy(), ref, rtol=1e-4,
                             atol=1e-4 * np.abs(ref).max())


def _second_order(fn, x, alpha, w, **kwargs):
  """Gradient of <w, dL/dx> + sum(dL/dalpha^2) w.r.t. x and alpha."""
  x = tf.constant(x)
  alpha = tf.constant(alpha)
  with tf.GradientTape() as outer:
    outer.watch([x, alpha])
    with tf.GradientTape() as inner:
      inner.watch([x, alpha])
      y = fn(x, alpha, **kwargs)
      loss = tf.reduce_sum(tf.sin(y))
    dx, dalpha = inner.gradient(loss, [x, alpha])
    total = tf.reduce_sum(w * dx) + tf.reduce_sum(dalpha * dalpha)
  return outer.gradient(total, [x, alpha])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("axis", [-1, 1])
def test_kaf_second_order_matches_composite(kernel, axis, rng):
  x = rng.normal(0.0, 2.0, (3, 4, 5))
  alpha = rng.normal(0.0, 0.5, (x.shape[axis], 6))
  w = tf.constant(rng.normal(size=x.shape))
  fused = _second_order(ops.kaf, x, alpha, w, kernel=kernel, axis=axis)
  composite = _second_order(_kaf_ops.kaf_composite, x, alpha, w,
                            kernel=kernel, axis=axis)
  for f, c in zip(fused, composite):
    np.testing.assert_allclose(f.numpy(), c.numpy(), rtol=1e-9, atol=1e-10)


def test_kaf_grad_op_gradient_wrt_dy(rng):
  # d/d(dy) of <v, KafGrad(dy, x, alpha).dx> = v * sum_i alpha_i k'(x).
  x = tf.constant(rng.normal(0.0, 2.0, (4, 5)))
  alpha = tf.constant(rng.normal(0.0, 0.5, (5, 8)))
  dy = tf.constant(rng.normal(size=(4, 5)))
  v = tf.constant(rng.normal(size=(4, 5)))
  with tf.GradientTape() as tape:
    tape.watch(dy)
    dx, _ = raw_kaf_grad(dy, x, alpha)
    total = tf.reduce_sum(v * dx)
  got = tape.gradient(total, dy)
  ref_dx, _ = np_kaf_grads(v.numpy(), x.numpy(), alpha.numpy())
  np.testing.assert_allclose(got.numpy(), ref_dx, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Graph mode and XLA.


@pytest.mark.parametrize("kernel", KERNELS)
def test_kaf_tf_function_and_jit_equal_eager(kernel, rng):
  x = tf.constant(rng.normal(0.0, 2.0, (6, 4, 10)), tf.float32)
  alpha = tf.constant(rng.normal(0.0, 0.5, (4, 20)), tf.float32)

  def step(x, alpha):
    with tf.GradientTape() as tape:
      tape.watch([x, alpha])
      y = ops.kaf(x, alpha, kernel=kernel, axis=1)
      loss = tf.reduce_sum(y * y)
    return (y,) + tuple(tape.gradient(loss, [x, alpha]))

  eager = step(x, alpha)
  graph = tf.function(step)(x, alpha)
  jit = tf.function(step, jit_compile=True)(x, alpha)
  for e, g, j in zip(eager, graph, jit):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


def test_kaf_tf_function_unknown_shapes(rng):
  fn = tf.function(
      lambda x, a: ops.kaf(x, a),
      input_signature=[tf.TensorSpec([None, None], tf.float64),
                       tf.TensorSpec([None, 20], tf.float64)])
  x = rng.normal(size=(5, 3))
  alpha = rng.normal(size=(3, 20))
  np.testing.assert_allclose(fn(tf.constant(x), tf.constant(alpha)).numpy(),
                             np_kaf(x, alpha), rtol=1e-10, atol=1e-12)


def test_kaf_default_gamma_from_centres_known_at_run_time(rng):
  # The fused op derives gamma from alpha's run-time D; the composite form
  # needs D while tracing.
  spec = [tf.TensorSpec([None, 3], tf.float64),
          tf.TensorSpec([3, None], tf.float64)]
  fn = tf.function(lambda x, a: ops.kaf(x, a), input_signature=spec)
  x = rng.normal(size=(5, 3))
  alpha = rng.normal(size=(3, 7))
  np.testing.assert_allclose(fn(tf.constant(x), tf.constant(alpha)).numpy(),
                             np_kaf(x, alpha), rtol=1e-12, atol=1e-12)
  composite = tf.function(lambda x, a: _kaf_ops.kaf_composite(x, a),
                          input_signature=spec)
  with pytest.raises(ValueError, match="to be known statically"):
    composite.get_concrete_function()


# ---------------------------------------------------------------------------
# 16-bit types.


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("axis", [-1, 1])
def test_kaf_half_types(dtype, axis, rng):
  x = rng.normal(0.0, 2.0, (7, 9, 20))
  alpha = rng.normal(0.0, 0.5, (x.shape[axis], 20))
  dy = rng.normal(size=x.shape)
  xh, ah, dyh = (tf.constant(v, dtype) for v in (x, alpha, dy))
  y = ops.kaf(xh, ah, axis=axis)
  dx, dalpha = raw_kaf_grad(dyh, xh, ah, axis=axis)
  assert y.dtype == dtype and dx.dtype == dtype and dalpha.dtype == dtype
  # Same (rounded) inputs in float32: only the output rounding differs.
  x32, a32, dy32 = (tf.cast(v, tf.float32) for v in (xh, ah, dyh))
  y32 = ops.kaf(x32, a32, axis=axis)
  dx32, dalpha32 = raw_kaf_grad(dy32, x32, a32, axis=axis)
  rtol = 1e-2 if dtype == tf.bfloat16 else 2e-3
  for half, full in ((y, y32), (dx, dx32), (dalpha, dalpha32)):
    full = full.numpy()
    np.testing.assert_allclose(tf.cast(half, tf.float32).numpy(), full,
                               rtol=rtol, atol=rtol * np.abs(full).max())


# ---------------------------------------------------------------------------
# Special values, empty tensors, determinism.


@pytest.mark.parametrize("kernel", KERNELS)
def test_kaf_nan_gives_nan(kernel):
  x = tf.constant([[np.nan, 0.5, -1.0]], tf.float32)
  alpha = tf.ones([3, 20], tf.float32)
  y = ops.kaf(x, alpha, kernel=kernel)
  assert np.isnan(y.numpy()[0, 0]) and np.isfinite(y.numpy()[0, 1:]).all()
  dx, dalpha = raw_kaf_grad(tf.ones_like(x), x, alpha, kernel=kernel)
  assert np.isnan(dx.numpy()[0, 0]) and np.isfinite(dx.numpy()[0, 1:]).all()
  assert np.isnan(dalpha.numpy()[0]).any()
  assert np.isfinite(dalpha.numpy()[1:]).all()


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("shape,axis", [((64, 5), -1), ((4, 5, 16), 1)])
def test_kaf_dalpha_with_huge_dy_is_finite_and_right(dtype, shape, axis,
                                                      rng):
  """dy near 1e35: the walk's intermediates dy e / C overflow float for the
  centres far from x, though every dalpha entry (at most ~1e37) fits."""
  x = rng.uniform(-3.5, 3.5, shape)
  dy = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.0, shape) * 1e35
  alpha = rng.normal(0.0, 0.5, (5, 20))
  xt, dyt = tf.constant(x, dtype), tf.constant(dy, dtype)
  _, dalpha = raw_kaf_grad(dyt, xt, tf.constant(alpha, dtype), axis=axis)
  _, again = raw_kaf_grad(dyt, xt, tf.constant(alpha, dtype), axis=axis)
  _, ref = np_kaf_grads(tf.cast(dyt, tf.float64).numpy(),
                        tf.cast(xt, tf.float64).numpy(), alpha, axis=axis)
  dalpha = tf.cast(dalpha, tf.float64).numpy()
  assert np.isfinite(dalpha).all()
  rtol = 1e-5 if dtype == tf.float32 else 1e-2
  np.testing.assert_allclose(dalpha, ref, rtol=rtol,
                             atol=rtol * np.abs(ref).max())
  np.testing.assert_array_equal(tf.cast(again, tf.float64).numpy(), dalpha)


def test_kaf_dalpha_huge_dy_beside_a_nan_channel(rng):
  """A NaN in channel 0's x keeps its dalpha row NaN where k != 0; the huge
  dy of the other channels still gives their exact, finite rows."""
  x = rng.uniform(-3.5, 3.5, (32, 3))
  x[5, 0] = np.nan
  dy = rng.uniform(0.5, 1.0, x.shape) * 1e35
  alpha = rng.normal(0.0, 0.5, (3, 20))
  _, dalpha = raw_kaf_grad(tf.constant(dy, tf.float32),
                           tf.constant(x, tf.float32),
                           tf.constant(alpha, tf.float32))
  _, ref = np_kaf_grads(tf.constant(dy, tf.float32).numpy(),
                        tf.constant(x, tf.float32).numpy(), alpha)
  dalpha = dalpha.numpy()
  assert np.isnan(dalpha[0]).all() and np.isnan(ref[0]).all()
  np.testing.assert_allclose(dalpha[1:], ref[1:], rtol=1e-5,
                             atol=1e-5 * np.abs(ref[1:]).max())


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("axis", [-1, 0])
def test_kaf_gaussian_inf_and_huge_inputs_are_finite(dtype, axis):
  values = [np.inf, -np.inf, 1e30, -1e30, 3.0e38, 60.0, -60.0, 7.0]
  x = np.array([values] * 9) if axis == -1 else np.array([values] * 9).T
  alpha = np.linspace(-5.0, 5.0, 8 * 20).reshape(8, 20)
  xt, at = tf.constant(x, dtype), tf.constant(alpha, dtype)
  y = ops.kaf(xt, at, axis=axis).numpy()
  dx, dalpha = raw_kaf_grad(tf.ones_like(xt), xt, at, axis=axis)
  for value in (y, dx.numpy(), dalpha.numpy()):
    assert np.isfinite(value).all()
  y_last = y if axis == -1 else y.T
  np.testing.assert_array_equal(y_last[:, :7], 0.0)  # all far outside
  ref = np_kaf(np.full((1, 1), 7.0), alpha[7:8])
  np.testing.assert_allclose(y_last[:, 7], ref[0, 0], rtol=2e-5)
  dx_last = dx.numpy() if axis == -1 else dx.numpy().T
  np.testing.assert_array_equal(dx_last[:, :7], 0.0)


def test_kaf2d_inf_and_nan():
  x = tf.constant([[np.inf, 1e30, np.nan, 0.3, -np.inf, 0.2, 0.1, 0.5]],
                  tf.float64)
  alpha = tf.ones([4, 100], tf.float64)
  y = ops.kaf2d(x, alpha).numpy()
  assert np.isfinite(y[0, [0, 1, 3]]).all() and np.isnan(y[0, 2])
  np.testing.assert_array_equal(y[0, [0, 1]], 0.0)
  dx, dalpha = raw_kaf2d_grad(tf.ones([1, 4], tf.float64), x, alpha)
  assert np.isfinite(dx.numpy()[0, [0, 1, 3, 4, 5, 7]]).all()
  assert np.isnan(dx.numpy()[0, [2, 6]]).all()
  assert np.isnan(dalpha.numpy()[2]).any()
  assert np.isfinite(dalpha.numpy()[[0, 1, 3]]).all()


@pytest.mark.parametrize("two_d", [False, True])
@pytest.mark.parametrize("shape,axis", [((0, 6), -1), ((3, 6, 0), 1),
                                        ((2, 0), -1), ((0,), -1)])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_empty_tensors(two_d, shape, axis, dtype):
  channels = shape[axis]
  rows = channels // 2 if two_d else channels
  k = 16 if two_d else 5
  x = tf.zeros(shape, dtype)
  alpha = tf.ones([rows, k], dtype)
  out_shape = list(shape)
  if two_d:
    out_shape[axis] = rows
  if two_d:
    y = ops.kaf2d(x, alpha, axis=axis)
    dx, dalpha = raw_kaf2d_grad(tf.zeros(out_shape, dtype), x, alpha,
                                axis=axis)
  else:
    y = ops.kaf(x, alpha, axis=axis)
    dx, dalpha = raw_kaf_grad(tf.zeros(out_shape, dtype), x, alpha,
                              axis=axis)
  assert y.shape == tuple(out_shape) and dx.shape == tuple(shape)
  assert dalpha.shape == (rows, k)
  np.testing.assert_array_equal(dalpha.numpy(), 0.0)


@pytest.mark.parametrize("shape,axis", [((1024, 300), -1),
                                        ((8, 64, 300), 1)])
def test_dalpha_is_deterministic(shape, axis, rng):
  x = tf.constant(rng.normal(0.0, 2.0, shape), tf.float32)
  dy = tf.constant(rng.normal(size=shape), tf.float32)
  alpha = tf.constant(rng.normal(0.0, 0.5, (shape[axis], 20)), tf.float32)
  first = raw_kaf_grad(dy, x, alpha, axis=axis)[1].numpy()
  for _ in range(2):
    again = raw_kaf_grad(dy, x, alpha, axis=axis)[1].numpy()
    assert first.tobytes() == again.tobytes()
  x2 = tf.concat([x, x], axis=axis)
  dy2 = tf.concat([dy, dy], axis=axis)
  a2 = tf.constant(rng.normal(0.0, 0.5, (shape[axis], 100)), tf.float32)
  first = raw_kaf2d_grad(dy, x2, a2, axis=axis)[1].numpy()
  again = raw_kaf2d_grad(dy, x2, a2, axis=axis)[1].numpy()
  assert first.tobytes() == again.tobytes()


_THREADS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    import tfkaf
    rng = np.random.default_rng(7)
    out = []
    for shape, axis in (((2048, 300), -1), ((16, 40, 300), 1)):
      x = tf.constant(rng.normal(0.0, 2.0, shape), tf.float32)
      dy = tf.constant(rng.normal(size=shape), tf.float32)
      a = tf.constant(rng.normal(0.0, 0.5, (shape[axis], 20)), tf.float32)
      g = tfkaf.ops.default_gamma(3.0, 20)
      out.append(tfkaf.load_ops().tfkaf_kaf_grad(dy, x, a, gamma=g,
                                                 axis=axis)[1].numpy())
    sys.stdout.write(np.concatenate([o.ravel() for o in out]).tobytes().hex())
""")


@pytest.mark.slow
def test_dalpha_bits_do_not_depend_on_the_thread_count():
  env = dict(os.environ,
             PYTHONPATH=os.pathsep.join(filter(None, [
                 os.path.dirname(os.path.dirname(tfkaf.__file__)),
                 os.environ.get("PYTHONPATH")])))
  bits = [subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, str(n)],
                         env=env, check=True, capture_output=True,
                         text=True).stdout
          for n in (1, 2, 3)]
  assert bits[0] and bits[0] == bits[1] == bits[2]


# ---------------------------------------------------------------------------
# 2D-KAF.


@pytest.mark.parametrize("rank,axis", [(1, -1), (2, -1), (2, 0), (3, -1),
                                       (3, 1), (4, -1), (4, 1)])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_kaf2d_forward_and_gradients_match_numpy(rank, axis, dtype, rng):
  h = 5
  shape = shape_with_channels(rank, axis, 2 * h, rng)
  x = rng.normal(0.0, 2.5, shape)
  alpha = rng.normal(0.0, 0.5, (h, 100))
  out_shape = list(shape)
  out_shape[axis] = h
  dy = rng.normal(size=out_shape)
  xt, at, dyt = (tf.constant(v, dtype) for v in (x, alpha, dy))
  x64, a64, dy64 = (np.asarray(v, np.float64) for v in (xt, at, dyt))
  y = ops.kaf2d(xt, at, axis=axis)
  assert y.shape == tuple(out_shape) and y.dtype == dtype
  np.testing.assert_allclose(y.numpy(), np_kaf2d(x64, a64, axis=axis),
                             **tol(dtype))
  dx, dalpha = kaf_grads(ops.kaf2d, xt, at, dyt, axis=axis)
  ref_dx, ref_dalpha = np_kaf2d_grads(dy64, x64, a64, axis=axis)
  np.testing.assert_allclose(dx.numpy(), ref_dx, **tol(dtype))
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha,
                             rtol=tol(dtype)["rtol"] * 10,
                             atol=tol(dtype)["atol"] * 10)


def test_kaf2d_pairs_channel_j_with_j_plus_h_and_uses_the_product():
  # One pair, D = 2: centres (d[k % 2], d[k // 2]) with d = (-1, 1).
  gamma = 0.7
  x = tf.constant([[0.3, -0.4]], tf.float64)  # x1 = 0.3, x2 = -0.4
  for k, (cx, cy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
    alpha = np.zeros((1, 4))
    alpha[0, k] = 1.0
    y = ops.kaf2d(x, tf.constant(alpha), boundary=1.0, gamma=gamma)
    expected = math.exp(-f32(gamma) * ((0.3 - cx)**2 + (-0.4 - cy)**2))
    assert y.numpy()[0, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "shape,axis", [((50, 600), -1), ((2, 8, 300), 1)])
def test_kaf2d_tiling(shape, axis, rng):
  x = rng.normal(0.0, 2.0, shape)
  h = shape[axis] // 2
  alpha = rng.normal(0.0, 0.5, (h, 49))
  out_shape = list(shape)
  out_shape[axis] = h
  dy = rng.normal(size=out_shape)
  np.testing.assert_allclose(
      ops.kaf2d(tf.constant(x), tf.constant(alpha), axis=axis).numpy(),
      np_kaf2d(x, alpha, axis=axis), rtol=1e-10, atol=1e-12)
  dx, dalpha = raw_kaf2d_grad(tf.constant(dy), tf.constant(x),
                              tf.constant(alpha), axis=axis)
  ref_dx, ref_dalpha = np_kaf2d_grads(dy, x, alpha, axis=axis)
  np.testing.assert_allclose(dx.numpy(), ref_dx, rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha, rtol=1e-9,
                             atol=1e-9)


@pytest.mark.parametrize("d,gamma", [
    (2, None),
    (10, 30.0),   # narrow: one exponential per centre
    (18, None),   # the largest side whose forward walks from 1
    (19, None),   # one run, its forward no longer from 1
    (26, None),   # the longest one-run walk at the default gamma
    (30, None),   # the CPU walks two runs of 15
    (12, 12.0),   # two runs of 6
    (40, None)])  # two runs of 20
def test_kaf2d_parameter_regimes(d, gamma, rng):
  x = np.concatenate([rng.normal(0.0, 2.0, (30, 6)),
                      rng.uniform(-20.0, 20.0, (30, 6))])
  alpha = rng.normal(0.0, 1.0, (3, d * d))
  dy = rng.normal(size=(60, 3))
  y = ops.kaf2d(tf.constant(x), tf.constant(alpha), gamma=gamma)
  np.testing.assert_allclose(y.numpy(), np_kaf2d(x, alpha, gamma=gamma),
                             rtol=1e-10, atol=1e-12)
  dx, dalpha = raw_kaf2d_grad(tf.constant(dy), tf.constant(x),
                              tf.constant(alpha), gamma=gamma)
  ref_dx, ref_dalpha = np_kaf2d_grads(dy, x, alpha, gamma=gamma)
  np.testing.assert_allclose(dx.numpy(), ref_dx, rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(dalpha.numpy(), ref_dalpha, rtol=1e-9,
                             atol=1e-11)


@pytest.mark.parametrize("axis", [-1, 1])
def test_kaf2d_composite_matches_numpy(axis, rng):
  x = rng.normal(0.0, 2.0, (3, 6, 4))
  alpha = rng.normal(0.0, 0.5, (x.shape[axis] // 2, 25))
  y = _kaf_ops.kaf2d_composite(tf.constant(x), tf.constant(alpha), axis=axis)
  np.testing.assert_allclose(y.numpy(), np_kaf2d(x, alpha, axis=axis),
                             rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [-1, 1])
def test_kaf2d_compute_gradient(axis, rng):
  x = rng.normal(0.0, 1.5, (2, 4, 6))
  alpha = rng.normal(0.0, 0.5, (x.shape[axis] // 2, 16))
  fn = lambda x, a: ops.kaf2d(x, a, axis=axis)  # noqa: E731
  theoretical, numerical = tf.test.compute_gradient(
      fn, [tf.constant(x), tf.constant(alpha)], delta=1e-6)
  for t, n in zip(theoretical, numerical):
    np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1])
def test_kaf2d_second_order_matches_composite(axis, rng):
  x = rng.normal(0.0, 1.5, (3, 4, 6))
  alpha = rng.normal(0.0, 0.5, (x.shape[axis] // 2, 16))
  out_shape = list(x.shape)
  out_shape[axis] = x.shape[axis]  # dx has x's shape
  w = tf.constant(rng.normal(size=out_shape))
  fused = _second_order(ops.kaf2d, x, alpha, w, axis=axis)
  composite = _second_order(_kaf_ops.kaf2d_composite, x, alpha, w, axis=axis)
  for f, c in zip(fused, composite):
    np.testing.assert_allclose(f.numpy(), c.numpy(), rtol=1e-9, atol=1e-10)


def test_kaf2d_tf_function_and_jit_equal_eager(rng):
  x = tf.constant(rng.normal(0.0, 2.0, (5, 8)), tf.float32)
  alpha = tf.constant(rng.normal(0.0, 0.5, (4, 100)), tf.float32)

  def step(x, alpha):
    with tf.GradientTape() as tape:
      tape.watch([x, alpha])
      y = ops.kaf2d(x, alpha)
      loss = tf.reduce_sum(y * y)
    return (y,) + tuple(tape.gradient(loss, [x, alpha]))

  eager = step(x, alpha)
  graph = tf.function(step)(x, alpha)
  jit = tf.function(step, jit_compile=True)(x, alpha)
  for e, g, j in zip(eager, graph, jit):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_kaf2d_half_types(dtype, rng):
  x = tf.constant(rng.normal(0.0, 2.0, (6, 3, 10)), dtype)
  alpha = tf.constant(rng.normal(0.0, 0.5, (5, 36)), dtype)
  dy = tf.constant(rng.normal(size=(6, 3, 5)), dtype)
  y = ops.kaf2d(x, alpha)
  dx, dalpha = raw_kaf2d_grad(dy, x, alpha)
  assert y.dtype == dx.dtype == dalpha.dtype == dtype
  x32, a32, dy32 = (tf.cast(v, tf.float32) for v in (x, alpha, dy))
  refs = (ops.kaf2d(x32, a32),) + tuple(raw_kaf2d_grad(dy32, x32, a32))
  rtol = 1e-2 if dtype == tf.bfloat16 else 2e-3
  for half, full in zip((y, dx, dalpha), refs):
    full = full.numpy()
    np.testing.assert_allclose(tf.cast(half, tf.float32).numpy(), full,
                               rtol=rtol, atol=rtol * np.abs(full).max())


# ---------------------------------------------------------------------------
# Invalid inputs: eager errors from the kernels, graph-construction errors
# from the shape functions, each naming the problem.

_X = np.zeros((2, 4), np.float32)
_A = np.zeros((4, 5), np.float32)

_KAF_ERRORS = [
    ("rank0", dict(x=np.float32(1.0)), "rank >= 1"),
    ("axis", dict(axis=2), "axis 2 is out of range"),
    ("axis_negative", dict(axis=-3), "axis -3 is out of range"),
    ("alpha_rank1", dict(alpha=np.zeros(4, np.float32), gamma=1.0),
     "alpha must be a 2-D tensor"),
    ("alpha_rank3", dict(alpha=np.zeros((4, 5, 1), np.float32), gamma=1.0),
     "alpha must be a 2-D tensor"),
    ("channels", dict(alpha=np.zeros((3, 5), np.float32)),
     "channel count mismatch: alpha has 3 rows but x has 4 channels"),
    ("one_centre", dict(alpha=np.zeros((4, 1), np.float32)), "D >= 2"),
    ("no_centre", dict(alpha=np.zeros((4, 0), np.float32)), "D >= 2"),
    ("kernel", dict(kernel="tanh"), "kernel.*tanh"),
    ("gamma_zero", dict(gamma=0.0), "gamma must be a positive finite"),
    ("gamma_negative", dict(gamma=-1.0), "gamma must be a positive finite"),
    ("gamma_nan", dict(gamma=float("nan")), "gamma must be a positive finite"),
    ("gamma_inf", dict(gamma=float("inf")), "gamma must be a positive finite"),
    ("boundary_zero", dict(boundary=0.0), "boundary must be a positive"),
    ("boundary_negative", dict(boundary=-2.0), "boundary must be a positive"),
    ("boundary_inf", dict(boundary=float("inf")),
     "boundary must be a positive"),
    ("boundary_nan", dict(boundary=float("nan")),
     "boundary must be a positive"),
    # Subnormal float32 attributes would be flushed to zero on CPU.
    ("gamma_subnormal", dict(gamma=1e-45),
     "gamma must be a positive finite number of at least 1.17549e-38"),
    ("boundary_subnormal", dict(boundary=1e-40),
     "boundary must be a positive finite number of at least 1.17549e-38"),
    ("gamma_float32_overflow", dict(gamma=1e39),
     "gamma must be a positive finite"),
    # The default gamma 1 / (8 step^2) = 5e59 does not fit in float32, in
    # which the float kernels compute.
    ("gamma_derived_overflow", dict(boundary=1e-30),
     r"gamma must be a positive finite number of at most 3\.40282e\+38 "
     r"\(the largest float32\), got [\d.]+e\+59: the default for "
     r"boundary 1e-30 and 5 centres; pass gamma, or a boundary nearer 1"),
]


def _kaf_call(x=_X, alpha=_A, **kwargs):
  return ops.kaf(tf.constant(x), tf.constant(alpha), **kwargs)


@pytest.mark.parametrize("name,kwargs,match", _KAF_ERRORS,
                         ids=[e[0] for e in _KAF_ERRORS])
def test_kaf_invalid_inputs_eager(name, kwargs, match):
  del name
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    _kaf_call(**kwargs)


@pytest.mark.parametrize("name,kwargs,match", _KAF_ERRORS,
                         ids=[e[0] for e in _KAF_ERRORS])
def test_kaf_invalid_inputs_graph(name, kwargs, match):
  del name
  with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                     match=match):
    tf.function(lambda: _kaf_call(**kwargs))()


_X2 = np.zeros((2, 6), np.float32)
_A2 = np.zeros((3, 16), np.float32)

_KAF2D_ERRORS = [
    ("rank0", dict(x=np.float32(1.0)), "rank >= 1"),
    ("axis", dict(axis=-3), "axis -3 is out of range"),
    ("odd", dict(x=np.zeros((2, 5), np.float32)), "even number of channels"),
    ("channels", dict(alpha=np.zeros((6, 16), np.float32)),
     "channel count mismatch: alpha has 6 rows but x has 6 channels"),
    ("alpha_rank", dict(alpha=np.zeros(16, np.float32), gamma=1.0),
     "alpha must be a 2-D tensor"),
    ("not_square", dict(alpha=np.zeros((3, 15), np.float32), gamma=1.0),
     "perfect square"),
    ("one_centre", dict(alpha=np.zeros((3, 1), np.float32), gamma=1.0),
     "perfect square D\\*D with D >= 2"),
    ("gamma", dict(gamma=-0.5), "gamma must be a positive finite"),
    ("boundary", dict(boundary=float("inf")), "boundary must be a positive"),
    ("gamma_subnormal", dict(gamma=1e-40),
     "gamma must be a positive finite number of at least 1.17549e-38"),
    ("boundary_subnormal", dict(boundary=1e-42),
     "boundary must be a positive finite number of at least 1.17549e-38"),
]


def _kaf2d_call(x=_X2, alpha=_A2, **kwargs):
  return ops.kaf2d(tf.constant(x), tf.constant(alpha), **kwargs)


@pytest.mark.parametrize("name,kwargs,match", _KAF2D_ERRORS,
                         ids=[e[0] for e in _KAF2D_ERRORS])
def test_kaf2d_invalid_inputs(name, kwargs, match):
  del name
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    _kaf2d_call(**kwargs)
  with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                     match=match):
    tf.function(lambda: _kaf2d_call(**kwargs))()


def test_grad_ops_check_dy_shape():
  x = tf.zeros([2, 4])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"dy must have the shape of the KAF output"):
    raw_kaf_grad(tf.zeros([2, 3]), x, tf.zeros([4, 5]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"dy must have the shape of the 2D-KAF output"):
    raw_kaf2d_grad(tf.zeros([2, 4]), x, tf.zeros([2, 9]))
  with pytest.raises(ValueError, match="dy must have the shape"):
    tf.function(lambda: raw_kaf2d_grad(tf.zeros([2, 4]), x,
                                       tf.zeros([2, 9])))()


def test_grad_ops_validate_like_forward():
  x = tf.zeros([2, 4])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="channel count mismatch"):
    raw_kaf_grad(x, x, tf.zeros([5, 5]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="gamma"):
    raw_kaf_grad(x, x, tf.zeros([4, 5]), gamma=0.0)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="even number of channels"):
    raw_kaf2d_grad(tf.zeros([2, 1]), tf.zeros([2, 3]), tf.zeros([1, 4]))


def test_wrapper_input_types():
  y = ops.kaf(np.zeros((2, 3), np.int32), np.ones((3, 4), np.float32))
  assert y.dtype == tf.float32
  with pytest.raises(TypeError, match="real floating-point"):
    ops.kaf(tf.zeros([2, 3], tf.complex64), tf.ones([3, 4]))
  with pytest.raises(TypeError, match="real floating-point"):
    ops.kaf2d(tf.zeros([2, 4], tf.complex64), tf.ones([2, 4]))
  with pytest.raises((TypeError, tf.errors.InvalidArgumentError),
                     match="dtype of x"):
    ops.kaf(tf.zeros([2, 3], tf.float16), tf.ones([3, 4], tf.float32))


def test_composite_rejects_bad_inputs():
  # Eagerly, as the fused op: InvalidArgumentError.
  with pytest.raises(tf.errors.InvalidArgumentError, match="kernel.*tanh"):
    _kaf_ops.kaf_composite(_X, _A, kernel="tanh")
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="even number of channels"):
    _kaf_ops.kaf2d_composite(np.zeros((2, 5), np.float32), _A2)
  with pytest.raises(tf.errors.InvalidArgumentError, match="rank >= 1"):
    _kaf_ops.kaf_composite(np.float32(1.0), _A)


# The composite and portable forms raise what the fused op raises: the same
# rule (cc/rules/kaf_rules.h) and message, eagerly and while tracing.
_DERIVED_GAMMA_ERROR = (
    "derived_gamma_subnormal", dict(boundary=1e20),
    "gamma must be a positive finite number of at least 1.17549e-38")


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("name,kwargs,match",
                         _KAF_ERRORS + [_DERIVED_GAMMA_ERROR],
                         ids=[e[0] for e in _KAF_ERRORS] + ["derived_gamma"])
def test_kaf_forms_raise_like_fused(name, kwargs, match, mode):
  kwargs = dict(kwargs)
  x = tf.constant(kwargs.pop("x", _X))
  alpha = tf.constant(kwargs.pop("alpha", _A))
  forms = [ops.kaf, _kaf_ops.kaf_composite, _kaf_ops.kaf_portable]
  calls = [functools.partial(f, x, alpha, **kwargs) for f in forms]
  want = tf.errors.InvalidArgumentError if mode == "eager" else ValueError
  if name == "kernel":
    # TensorFlow's own check of the attribute's allowed values words its
    # message differently in eager kernels and in graph construction.
    for call in calls:
      error = error_of(lambda: run(call, mode))  # pylint: disable=cell-var-from-loop
      assert type(error) is want and re.search(match, rule_message(error))
    return
  error = assert_same_error(*calls, mode=mode)
  assert re.search(match, rule_message(error))
  assert type(error) is want


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("name,kwargs,match",
                         _KAF2D_ERRORS + [_DERIVED_GAMMA_ERROR],
                         ids=[e[0] for e in _KAF2D_ERRORS] + ["derived_gamma"])
def test_kaf2d_forms_raise_like_fused(name, kwargs, match, mode):
  del name
  kwargs = dict(kwargs)
  x = tf.constant(kwargs.pop("x", _X2))
  alpha = tf.constant(kwargs.pop("alpha", _A2))
  forms = [ops.kaf2d, _kaf_ops.kaf2d_composite, _kaf_ops.kaf2d_portable]
  error = assert_same_error(*[functools.partial(f, x, alpha, **kwargs)
                              for f in forms], mode=mode)
  assert re.search(match, rule_message(error))


# ---------------------------------------------------------------------------
# Default gamma in the compute precision.


@pytest.mark.parametrize("two_d", [False, True])
def test_float64_default_gamma_matches_the_float64_formula(two_d, rng):
  # D = 7, boundary = 2.5: the float32-rounded gamma is off by ~2.5e-6
  # relative, which these tolerances would see.
  d, boundary = 7, 2.5
  channels = 6 if two_d else 3
  x = rng.normal(0.0, 2.0, (5, channels))
  alpha = rng.normal(size=(channels // 2 if two_d else channels,
                           d * d if two_d else d))
  dy = rng.normal(size=(5, channels // 2 if two_d else channels))
  fused = ops.kaf2d if two_d else ops.kaf
  composite = _kaf_ops.kaf2d_composite if two_d else _kaf_ops.kaf_composite
  np_forward = np_kaf2d if two_d else np_kaf
  np_grads = np_kaf2d_grads if two_d else np_kaf_grads
  want_y = np_forward(x, alpha, boundary)
  _, want_dalpha = np_grads(dy, x, alpha, boundary)
  rounded_gamma = f32(np_gamma(boundary, d, two_d))
  assert np.abs(np_forward(x, alpha, boundary, gamma=rounded_gamma)
                - want_y).max() > 1e-9  # the old rounding shows
  for fn in (fused, composite):
    y = fn(tf.constant(x), tf.constant(alpha), boundary=boundary)
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-12, atol=1e-13)
    _, dalpha = kaf_grads(fn, x, alpha, dy, boundary=boundary)
    np.testing.assert_allclose(dalpha.numpy(), want_dalpha, rtol=1e-12,
                               atol=1e-12)
