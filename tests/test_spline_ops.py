"""Tests of the fused linear-spline op (docs/design.md, section 3).

The NumPy reference below is written from the formulas (float64, the
(1 - u) c[i] + u c[i+1] form, np.add.at for the coefficient gradient),
independently of tfkaf's C++ kernels and of its composite TF form; both are
checked against it.
"""

import functools
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfkaf
from tfkaf import _loader
from tfkaf import _spline_ops
from tfkaf import ops

from op_errors import assert_same_error, rule_message
from reference import np_spline, np_spline_grad

RAW = _loader.load_ops()
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(
    tfkaf.__file__)))

def tol(dtype):
  return {"float64": dict(rtol=1e-12, atol=1e-12),
          "float32": dict(rtol=2e-5, atol=2e-5)}[dtype]


SHAPES = {1: (7,), 2: (5, 7), 3: (3, 7, 4), 4: (2, 7, 3, 3)}


def _case(rng, rank, axis, knots=9, x_min=-2.0, x_max=2.0, spread=3.5):
  shape = SHAPES[rank]
  if axis == -1:
    shape = shape[:-1] + (7,) if rank > 1 else shape
  channels = shape[axis]
  x = rng.uniform(-spread, spread, shape)  # both extrapolation sides
  c = rng.normal(0.0, 1.0, (channels, knots))
  return x, c


# --------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rank,axis", [(1, -1), (1, 0), (2, -1), (2, 1),
                                       (3, -1), (3, 1), (4, -1), (4, 1)])
def test_forward_matches_numpy(rng, rank, axis, dtype):
  x, c = _case(rng, rank, axis)
  expected = np_spline(x, c, -2.0, 2.0, axis=axis)
  xt, ct = tf.constant(x, dtype), tf.constant(c, dtype)
  fused = ops.linear_spline(xt, ct, -2.0, 2.0, axis=axis)
  composite = _spline_ops.linear_spline_composite(xt, ct, -2.0, 2.0,
                                                  axis=axis)
  assert fused.dtype == dtype and fused.shape == x.shape
  np.testing.assert_allclose(fused.numpy(), expected, **tol(dtype))
  np.testing.assert_allclose(composite.numpy(), expected, **tol(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("channels", [3, 8, 13, 40])
def test_forward_channel_counts(rng, channels, dtype):
  # channels >= 8 exercises the vectorised path, 13 and 40 its scalar tail.
  x = rng.uniform(-6.0, 6.0, (33, channels))
  c = rng.normal(0.0, 1.0, (channels, 51))
  y = ops.linear_spline(tf.constant(x, dtype), tf.constant(c, dtype), -4.0,
                        4.0)
  np.testing.assert_allclose(y.numpy(), np_spline(x, c, -4.0, 4.0),
                             **tol(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_interpolates_exactly_at_knots(rng, dtype):
  c = rng.normal(0.0, 1.0, (4, 9))
  knots = np.linspace(-2.0, 2.0, 9)  # T = 0.5: knots exact in binary
  x = np.tile(knots[:, None], (1, 4))
  y = ops.linear_spline(tf.constant(x, dtype), tf.constant(c, dtype), -2.0,
                        2.0).numpy()
  np.testing.assert_array_equal(y[:-1], c.T[:-1].astype(dtype))
  np.testing.assert_allclose(y[-1], c[:, -1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", ["fused", "composite"])
def test_linear_extrapolation_with_end_slopes(rng, fn):
  c = rng.normal(0.0, 1.0, (3, 11))
  spacing = 0.4  # [-2, 2], K = 11
  left = np.array([-2.0, -2.5, -7.0, -100.0])
  right = np.array([2.0, 2.5, 7.0, 100.0])
  x = np.concatenate([left, right])[:, None].repeat(3, axis=1)
  f = (ops.linear_spline if fn == "fused"
       else _spline_ops.linear_spline_composite)
  y = f(tf.constant(x, tf.float64), tf.constant(c), -2.0, 2.0).numpy()
  left_expected = (c[:, 0]
                   + (left[:, None] + 2.0) * (c[:, 1] - c[:, 0]) / spacing)
  right_expected = (c[:, -1]
                    + (right[:, None] - 2.0) * (c[:, -1] - c[:, -2]) / spacing)
  np.testing.assert_allclose(y[:4], left_expected, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(y[4:], right_expected, rtol=1e-12, atol=1e-12)


def test_accepts_python_and_numpy_inputs():
  y = ops.linear_spline([[0.25, -3.0]], np.array([[0.0, 1.0], [2.0, 4.0]]),
                        0.0, 1.0)
  assert y.dtype == tf.float32
  np.testing.assert_allclose(y.numpy(), [[0.25, -4.0]], rtol=1e-6)


@pytest.mark.parametrize("fn", ["fused", "composite"])
def test_coefficient_dtype_must_match_tensors(rng, fn):
  f = (ops.linear_spline if fn == "fused"
       else _spline_ops.linear_spline_composite)
  x = tf.constant(rng.normal(size=(4, 3)), tf.float64)
  with pytest.raises(TypeError, match="coefficients must have the dtype"):
    f(x, tf.constant(rng.normal(size=(3, 5)), tf.float32), -1.0, 1.0)
  with pytest.raises(TypeError, match="coefficients must have the dtype"):
    f(tf.cast(x, tf.float16), tf.Variable(tf.zeros((3, 5))), -1.0, 1.0)
  # NumPy / Python values take x's dtype.
  y = f(tf.cast(x, tf.float16), rng.normal(size=(3, 5)), -1.0, 1.0)
  assert y.dtype == tf.float16


def test_float32_range_attrs_same_grid_in_both_forms(rng):
  # 0.1 is not a float32: both forms use float32(0.1) as the attr does.
  x = tf.constant(rng.uniform(-0.5, 1.5, (50, 3)))
  c = tf.constant(rng.normal(size=(3, 7)))
  fused = ops.linear_spline(x, c, 0.1, 0.9)
  composite = _spline_ops.linear_spline_composite(x, c, 0.1, 0.9)
  np.testing.assert_allclose(fused.numpy(), composite.numpy(), rtol=1e-12,
                             atol=1e-12)
  expected = np_spline(x.numpy(), c.numpy(), float(np.float32(0.1)),
                       float(np.float32(0.9)))
  np.testing.assert_allclose(fused.numpy(), expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------


def _off_knot_points(rng, shape, x_min, x_max, knots):
  """Points at 0.1..0.9 of a segment (no finite-difference step crosses a
  knot), including segments beyond both ends."""
  spacing = (x_max - x_min) / (knots - 1)
  segment = rng.integers(-3, knots + 2, shape)
  return x_min + (segment + rng.uniform(0.1, 0.9, shape)) * spacing


@pytest.mark.parametrize("axis", [-1, 1])
def test_compute_gradient_float64(rng, axis):
  shape = (4, 3, 2) if axis == 1 else (4, 3)
  x = tf.constant(_off_knot_points(rng, shape, -1.0, 1.0, 6))
  c = tf.constant(rng.normal(size=(3, 6)))

  def f(x, c):
    return ops.linear_spline(x, c, -1.0, 1.0, axis=axis)

  theoretical, numerical = tf.test.compute_gradient(f, [x, c], delta=1e-6)
  for t, n in zip(theoretical, numerical):
    np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,axis", [((20000, 13), -1),
                                        ((7, 5, 61, 67), 1),
                                        ((3000, 9, 2), 1),
                                        ((2, 60000), -1),
                                        ((70000,), 0)])
def test_gradients_over_many_positions(rng, shape, axis, dtype):
  # Large enough for several reduction chunks; 13 channels: vector + tail.
  # Reduction chunks end mid-row / mid-run in the first two shapes; the
  # last two are a few very wide rows.
  channels = shape[axis]
  x = rng.normal(0.0, 2.0, shape)
  dy = rng.normal(0.0, 1.0, shape)
  c = rng.normal(0.0, 1.0, (channels, 21 if channels < 1000 else 3))
  dx, dc = RAW.tfkaf_linear_spline_grad(
      tf.constant(dy, dtype), tf.constant(x, dtype), tf.constant(c, dtype),
      x_min=-3.0, x_max=3.0, axis=axis)
  dx_ref, dc_ref = np_spline_grad(dy, x, c, -3.0, 3.0, axis=axis)
  loose = dict(rtol=1e-4, atol=1e-3) if dtype == "float32" else tol(dtype)
  np.testing.assert_allclose(dx.numpy(), dx_ref, **tol(dtype))
  np.testing.assert_allclose(dc.numpy(), dc_ref, **loose)
  y = RAW.tfkaf_linear_spline(tf.constant(x, dtype), tf.constant(c, dtype),
                              x_min=-3.0, x_max=3.0, axis=axis)
  np.testing.assert_allclose(y.numpy(), np_spline(x, c, -3.0, 3.0, axis=axis),
                             **tol(dtype))


@pytest.mark.parametrize("axis", [-1, 1])
def test_tape_gradients_match_numpy_and_composite(rng, axis):
  shape = (6, 10, 5) if axis == 1 else (6, 10)
  x = tf.constant(rng.uniform(-5.0, 5.0, shape))
  c = tf.constant(rng.normal(size=(10, 12)))
  dy = rng.normal(size=shape)
  grads = {}
  for name, f in [("fused", ops.linear_spline),
                  ("composite", _spline_ops.linear_spline_composite)]:
    with tf.GradientTape() as tape:
      tape.watch([x, c])
      y = f(x, c, -4.0, 4.0, axis=axis)
    grads[name] = [tf.convert_to_tensor(g).numpy()
                   for g in tape.gradient(y, [x, c], output_gradients=dy)]
  expected = np_spline_grad(dy, x.numpy(), c.numpy(), -4.0, 4.0, axis=axis)
  for name in grads:
    for got, want in zip(grads[name], expected):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _second_order(f, x, c, dy, v, w):
  """Gradients of sum(v * dL/dx) + sum(w * dL/dc) w.r.t. x, c and dy, where
  dL/dx, dL/dc are the vector-Jacobian products of f with dy."""
  with tf.GradientTape(persistent=True) as outer:
    outer.watch([x, c, dy])
    with tf.GradientTape() as inner:
      inner.watch([x, c])
      y = f(x, c, -2.0, 2.0)
    gx, gc = inner.gradient(y, [x, c], output_gradients=dy)
    gc = tf.convert_to_tensor(gc)
    only_x = tf.reduce_sum(v * gx)
    total = only_x + tf.reduce_sum(w * gc)
  result = {name: outer.gradient(total, t, unconnected_gradients="zero")
            for name, t in [("x", x), ("c", c), ("dy", dy)]}
  result["x_of_gx"] = outer.gradient(only_x, x, unconnected_gradients="zero")
  return {k: tf.convert_to_tensor(t).numpy() for k, t in result.items()}


def test_second_order_matches_composite(rng):
  x = tf.constant(_off_knot_points(rng, (7, 4), -2.0, 2.0, 9))
  c = tf.constant(rng.normal(size=(4, 9)))
  dy = tf.constant(rng.normal(size=(7, 4)))
  v = tf.constant(rng.normal(size=(7, 4)))
  w = tf.constant(rng.normal(size=(4, 9)))
  fused = _second_order(ops.linear_spline, x, c, dy, v, w)
  composite = _second_order(_spline_ops.linear_spline_composite, x, c, dy, v,
                            w)
  for key in ("x", "c", "dy"):
    np.testing.assert_allclose(fused[key], composite[key], rtol=1e-10,
                               atol=1e-10, err_msg=key)
  # dL/dx is piecewise constant in x: its own x-derivative vanishes.
  np.testing.assert_array_equal(fused["x_of_gx"], np.zeros((7, 4)))
  # d/d(dy) = v * f'(x; c) + f(x; w), checked against NumPy too.
  dx_v, _ = np_spline_grad(v.numpy(), x.numpy(), c.numpy(), -2.0, 2.0)
  np.testing.assert_allclose(
      fused["dy"], dx_v + np_spline(x.numpy(), w.numpy(), -2.0, 2.0),
      rtol=1e-10, atol=1e-10)


def test_second_order_in_tf_function(rng):
  x = tf.constant(_off_knot_points(rng, (5, 3), -2.0, 2.0, 9), tf.float32)
  c = tf.constant(rng.normal(size=(3, 9)), tf.float32)

  @tf.function
  def hessian_terms(x, c):
    with tf.GradientTape() as outer:
      outer.watch(c)
      with tf.GradientTape() as inner:
        inner.watch(x)
        loss = tf.reduce_sum(ops.linear_spline(x, c, -2.0, 2.0))
      gx = inner.gradient(loss, x)
      second = tf.reduce_sum(gx * x)
    return outer.gradient(second, c)

  with tf.GradientTape() as outer:
    outer.watch(c)
    with tf.GradientTape() as inner:
      inner.watch(x)
      loss = tf.reduce_sum(_spline_ops.linear_spline_composite(x, c, -2.0,
                                                               2.0))
    gx = inner.gradient(loss, x)
    second = tf.reduce_sum(gx * x)
  expected = tf.convert_to_tensor(outer.gradient(second, c))
  np.testing.assert_allclose(hessian_terms(x, c).numpy(), expected.numpy(),
                             rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# tf.function, XLA, dtypes, empty tensors
# --------------------------------------------------------------------------


def _value_and_grads(x, c, f=ops.linear_spline, axis=-1):
  with tf.GradientTape() as tape:
    tape.watch([x, c])
    y = f(x, c, -3.0, 3.0, axis=axis)
    loss = tf.reduce_sum(y * y)
  gx, gc = tape.gradient(loss, [x, c])
  return y, gx, tf.convert_to_tensor(gc)


@pytest.mark.parametrize("axis", [-1, 1])
def test_tf_function_and_xla_equal_eager(rng, axis):
  shape = (16, 6, 5) if axis == 1 else (16, 6)
  x = tf.constant(rng.uniform(-4.0, 4.0, shape), tf.float32)
  c = tf.constant(rng.normal(size=(6, 15)), tf.float32)
  eager = _value_and_grads(x, c, axis=axis)
  graph = tf.function(lambda x, c: _value_and_grads(x, c, axis=axis))(x, c)
  xla = tf.function(lambda x, c: _value_and_grads(x, c, axis=axis),
                    jit_compile=True)(x, c)
  for a, b, d in zip(eager, graph, xla):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), d.numpy(), rtol=1e-5, atol=1e-5)


def test_xla_keeps_the_fused_op(rng):
  # XLA compiles the op itself (a custom call, tests/test_xla.py), so the
  # traced function holds the fused op, not the composite form.
  x = tf.constant(rng.normal(size=(4, 3)), tf.float32)
  c = tf.constant(rng.normal(size=(3, 5)), tf.float32)
  fn = tf.function(lambda x, c: ops.linear_spline(x, c, -1.0, 1.0),
                   jit_compile=True)
  types = [op.type for op in fn.get_concrete_function(x, c).graph
           .get_operations()]
  assert "Tfkaf>LinearSpline" in types
  assert "GatherV2" not in types and "GatherNd" not in types


@pytest.mark.parametrize("dtype,tolerance", [("float16", 2e-2),
                                             ("bfloat16", 1e-1)])
def test_half_types(rng, dtype, tolerance):
  x32 = rng.uniform(-4.0, 4.0, (64, 12)).astype(np.float32)
  c32 = rng.normal(size=(12, 17)).astype(np.float32)
  x = tf.cast(x32, dtype)
  c = tf.cast(c32, dtype)
  y, gx, gc = _value_and_grads(x, c)
  assert y.dtype == dtype and gx.dtype == dtype and gc.dtype == dtype
  # Reference from the half-rounded inputs, computed in float64.
  xr, cr = tf.cast(x, tf.float64).numpy(), tf.cast(c, tf.float64).numpy()
  y_ref = np_spline(xr, cr, -3.0, 3.0)
  gx_ref, gc_ref = np_spline_grad(2 * y_ref, xr, cr, -3.0, 3.0)
  scale = lambda a: tolerance * max(1.0, np.abs(a).max())
  for got, want in [(y, y_ref), (gx, gx_ref), (gc, gc_ref)]:
    np.testing.assert_allclose(tf.cast(got, tf.float64).numpy(), want,
                               rtol=tolerance, atol=scale(want))
  composite = _spline_ops.linear_spline_composite(x, c, -3.0, 3.0)
  assert composite.dtype == dtype
  np.testing.assert_allclose(tf.cast(composite, tf.float64).numpy(),
                             tf.cast(y, tf.float64).numpy(), rtol=tolerance,
                             atol=scale(y_ref))


@pytest.mark.parametrize("x_shape,c_shape,axis", [((0, 3), (3, 5), -1),
                                                  ((2, 0), (0, 5), -1),
                                                  ((4, 3, 0), (3, 5), 1),
                                                  ((0,), (0, 4), 0)])
def test_empty_tensors(x_shape, c_shape, axis):
  x = tf.zeros(x_shape, tf.float32)
  c = tf.ones(c_shape, tf.float32)
  y, gx, gc = _value_and_grads(x, c, axis=axis)
  assert y.shape == x_shape and gx.shape == x_shape
  assert gc.shape == c_shape
  np.testing.assert_array_equal(gc.numpy(), np.zeros(c_shape))
  dx, dc = RAW.tfkaf_linear_spline_grad(x, x, c, x_min=-1.0, x_max=1.0,
                                        axis=axis)
  assert dx.shape == x_shape
  np.testing.assert_array_equal(dc.numpy(), np.zeros(c_shape))


# --------------------------------------------------------------------------
# Special values and channel isolation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", ["fused", "composite"])
def test_special_values_stay_in_their_channel(rng, dtype, fn):
  tiny = np.finfo(dtype).smallest_subnormal
  specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, tiny, -tiny,
                       0.3, -2.7], dtype)
  rows = len(specials)
  knots = 9
  # Channel 0 takes the special values; channel 1 has huge coefficients (a
  # read from it would show); channel 2 is ordinary.
  c = np.stack([np.linspace(-1.0, 2.0, knots),      # rising at both ends
                np.full(knots, 1e30),
                rng.normal(size=knots)])
  normal = rng.uniform(-3.0, 3.0, (rows, 2))
  x = np.concatenate([specials[:, None], normal], axis=1).astype(dtype)
  dy = rng.normal(size=(rows, 3)).astype(dtype)
  f = (ops.linear_spline if fn == "fused"
       else _spline_ops.linear_spline_composite)
  xt, ct, dyt = tf.constant(x), tf.constant(c, dtype), tf.constant(dy)
  with tf.GradientTape() as tape:
    tape.watch([xt, ct])
    y = f(xt, ct, -2.0, 2.0)
  gx, gc = tape.gradient(y, [xt, ct], output_gradients=dyt)
  y, gx, gc = y.numpy(), gx.numpy(), tf.convert_to_tensor(gc).numpy()

  # Channel 0: NaN -> NaN; +-Inf -> +-Inf (non-zero end slopes); +-1e30
  # extrapolate; subnormals evaluate f(0).
  assert np.isnan(y[0, 0])
  assert y[1, 0] == np.inf and y[2, 0] == -np.inf
  expected = np_spline(x[3:, :1].astype(np.float64), c[:1], -2.0, 2.0)
  np.testing.assert_allclose(y[3:, :1], expected, rtol=1e-5)
  assert np.isfinite(y[3:, 0]).all()
  # dx: NaN for a NaN x in the fused op (the composite's autodiff gives the
  # clamped segment's slope there); +-Inf get the end slopes.
  slope = np.diff(c[0]) / 0.5
  if fn == "fused":
    assert np.isnan(gx[0, 0])
  else:
    np.testing.assert_allclose(gx[0, 0], dy[0, 0] * slope[0], rtol=1e-6)
  np.testing.assert_allclose(gx[1:3, 0], dy[1:3, 0] * slope[[-1, 0]],
                             rtol=1e-6)
  assert np.isfinite(gx[1:, 0]).all()
  # The other channels are exactly what they are without the specials.
  clean = x.copy()
  clean[:, 0] = 0.0
  with tf.GradientTape() as tape:
    tape.watch(ct)
    y_clean = f(tf.constant(clean), ct, -2.0, 2.0)
  gc_clean = tf.convert_to_tensor(
      tape.gradient(y_clean, ct, output_gradients=dyt)).numpy()
  np.testing.assert_array_equal(y[:, 1:], y_clean.numpy()[:, 1:])
  np.testing.assert_array_equal(gc[1:], gc_clean[1:])
  np.testing.assert_allclose(y[:, 1:], np_spline(x[:, 1:], c[1:], -2.0, 2.0),
                             rtol=1e-5)
  # Channel 0's gradient: NaN only at knots 0 and 1 (where the NaN input
  # lands), +-Inf only at the end segments' knots; the middle is exact.
  assert np.isnan(gc[0, :2]).all()
  assert not np.isnan(gc[0, 2:]).any()
  finite_rows = np.isfinite(x[:, 0]) & (np.abs(x[:, 0]) < 1e29)
  _, gc_ref = np_spline_grad(dy[finite_rows, :1], x[finite_rows, :1], c[:1],
                             -2.0, 2.0)
  np.testing.assert_allclose(gc[0, 2:knots - 2], gc_ref[0, 2:knots - 2],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_lanes_in_wide_rows(rng, dtype):
  # 21 channels: 8-wide vector loop and scalar tail, NaN in scattered lanes.
  x = rng.uniform(-3.0, 3.0, (40, 21))
  nan = rng.random(x.shape) < 0.1
  x[nan] = np.nan
  dy = rng.normal(size=x.shape)
  c = rng.normal(size=(21, 9))
  dx, dc = RAW.tfkaf_linear_spline_grad(
      tf.constant(dy, dtype), tf.constant(x, dtype), tf.constant(c, dtype),
      x_min=-2.0, x_max=2.0)
  y = ops.linear_spline(tf.constant(x, dtype), tf.constant(c, dtype), -2.0,
                        2.0).numpy()
  np.testing.assert_array_equal(np.isnan(y), nan)
  np.testing.assert_array_equal(np.isnan(dx.numpy()), nan)
  dx_ref, dc_ref = np_spline_grad(np.where(nan, 0.0, dy), x, c, -2.0, 2.0)
  np.testing.assert_allclose(dx.numpy()[~nan], dx_ref[~nan], **tol(dtype))
  nan_channels = nan.any(axis=0)
  assert np.isnan(dc.numpy()[nan_channels, :2]).all()
  np.testing.assert_allclose(dc.numpy()[:, 2:], dc_ref[:, 2:], **tol(dtype))
  np.testing.assert_allclose(dc.numpy()[~nan_channels], dc_ref[~nan_channels],
                             **tol(dtype))


def test_infinity_on_a_flat_end_gives_nan():
  c = tf.constant([[1.0, 1.0, 0.0, 1.0, 1.0]])
  x = tf.constant([[np.inf], [-np.inf], [1e30], [5.0]])
  y = ops.linear_spline(x, c, -1.0, 1.0).numpy()[:, 0]
  assert np.isnan(y[0]) and np.isnan(y[1])  # 0 * Inf
  np.testing.assert_array_equal(y[2:], [1.0, 1.0])


def test_huge_grid_range_and_many_knots(rng):
  # Extreme but valid attrs: index arithmetic stays within the table.
  x = tf.constant(rng.normal(0.0, 1e37, (64, 9)), tf.float32)
  c = tf.constant(rng.normal(size=(9, 3)), tf.float32)
  y = ops.linear_spline(x, c, -3e38, 3e38)
  assert np.isfinite(y.numpy()).all()
  c_many = tf.constant(rng.normal(size=(9, 70000)))
  x_many = tf.constant(rng.uniform(-2.0, 2.0, (32, 9)))
  y = ops.linear_spline(x_many, c_many, -1.0, 1.0)
  np.testing.assert_allclose(
      y.numpy(), np_spline(x_many.numpy(), c_many.numpy(), -1.0, 1.0),
      rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------

_DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    threads = int(sys.argv[1])
    if threads:
      tf.config.threading.set_intra_op_parallelism_threads(threads)
    from tfkaf import _loader
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(0, 2, (40000, 24)), tf.float32)
    dy = tf.constant(rng.normal(0, 1, (40000, 24)), tf.float32)
    c = tf.constant(rng.normal(0, 1, (24, 51)), tf.float32)
    _, dc = _loader.load_ops().tfkaf_linear_spline_grad(
        dy, x, c, x_min=-4.0, x_max=4.0)
    np.save(sys.argv[2], dc.numpy())
""")


def test_coefficient_gradient_bitwise_deterministic(tmp_path):
  rng = np.random.default_rng(7)
  x = tf.constant(rng.normal(0, 2, (40000, 24)), tf.float32)
  dy = tf.constant(rng.normal(0, 1, (40000, 24)), tf.float32)
  c = tf.constant(rng.normal(0, 1, (24, 51)), tf.float32)
  runs = [RAW.tfkaf_linear_spline_grad(dy, x, c, x_min=-4.0,
                                       x_max=4.0)[1].numpy()
          for _ in range(3)]
  for run in runs[1:]:
    np.testing.assert_array_equal(run, runs[0])
  # Same bits with one intra-op thread, in a fresh process.
  script = tmp_path / "determinism.py"
  script.write_text(_DETERMINISM_SCRIPT)
  out = tmp_path / "dc.npy"
  env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT, TF_CPP_MIN_LOG_LEVEL="3")
  subprocess.run([sys.executable, str(script), "1", str(out)], check=True,
                 env=env, timeout=120)
  np.testing.assert_array_equal(np.load(out), runs[0])


# --------------------------------------------------------------------------
# Invalid inputs
# --------------------------------------------------------------------------

InvalidArgument = tf.errors.InvalidArgumentError


def _forward(x, c, x_min=-1.0, x_max=1.0, axis=-1):
  return RAW.tfkaf_linear_spline(x, c, x_min=x_min, x_max=x_max, axis=axis)


@pytest.mark.parametrize("x_shape,c_shape,kwargs,match", [
    ((), (1, 4), {}, "rank >= 1"),
    ((3, 4), (4, 5), dict(axis=2), "out of range"),
    ((3, 4), (4, 5), dict(axis=-3), "out of range"),
    ((3, 4), (20,), {}, "rank-2"),
    ((3, 4), (4, 5, 1), {}, "rank-2"),
    ((3, 4), (5, 5), {}, "5 channels .* x has 4 channels"),
    ((3, 4), (4, 1), {}, "at least 2 knots"),
    ((3, 4), (4, 0), {}, "at least 2 knots"),
    ((3, 4), (4, 5), dict(x_min=1.0, x_max=1.0), "less than x_max"),
    ((3, 4), (4, 5), dict(x_min=2.0, x_max=1.0), "less than x_max"),
    ((3, 4), (4, 5), dict(x_min=float("nan")), "finite"),
    ((3, 4), (4, 5), dict(x_max=float("inf")), "finite"),
])
def test_invalid_inputs_raise_in_kernel(x_shape, c_shape, kwargs, match):
  x, c = tf.zeros(x_shape), tf.zeros(c_shape)
  with pytest.raises(InvalidArgument, match=match):
    _forward(x, c, **kwargs)
  with pytest.raises(InvalidArgument, match=match):
    RAW.tfkaf_linear_spline_grad(x, x, c, x_min=kwargs.get("x_min", -1.0),
                                 x_max=kwargs.get("x_max", 1.0),
                                 axis=kwargs.get("axis", -1))
  # Shapes unknown while tracing: the kernel's own checks still fire.
  unknown = tf.TensorSpec(None, tf.float32)
  fn = tf.function(lambda x, c: _forward(x, c, **kwargs),
                   input_signature=[unknown, unknown])
  if "x_min" in kwargs or "x_max" in kwargs:
    with pytest.raises(ValueError, match=match):  # attrs: at trace time
      fn.get_concrete_function()
  else:
    with pytest.raises(InvalidArgument, match=match):
      fn(x, c)


@pytest.mark.parametrize("x_shape,c_shape,axis,match", [
    ((), (1, 4), -1, "rank >= 1"),
    ((3, 4), (4, 5), 2, "out of range"),
    ((3, 4), (20,), -1, "rank"),
    ((3, 4), (5, 5), -1, "5 channels .* x has 4 channels"),
    ((3, 4), (4, 1), -1, "at least 2 knots"),
])
def test_invalid_shapes_raise_while_tracing(x_shape, c_shape, axis, match):
  fn = tf.function(lambda x, c: _forward(x, c, axis=axis))
  with pytest.raises(ValueError, match=match):
    fn.get_concrete_function(tf.TensorSpec(x_shape), tf.TensorSpec(c_shape))


def test_grad_op_dy_shape_mismatch():
  x, c = tf.zeros((3, 4)), tf.zeros((4, 5))
  with pytest.raises(InvalidArgument, match="dy must have the same shape"):
    RAW.tfkaf_linear_spline_grad(tf.zeros((3, 5)), x, c, x_min=-1.0,
                                 x_max=1.0)
  with pytest.raises(InvalidArgument, match="dy must have the same shape"):
    RAW.tfkaf_linear_spline_grad(tf.zeros((12,)), x, c, x_min=-1.0,
                                 x_max=1.0)
  fn = tf.function(lambda dy, x, c: RAW.tfkaf_linear_spline_grad(
      dy, x, c, x_min=-1.0, x_max=1.0))
  with pytest.raises(ValueError, match="dy must have the same shape"):
    fn.get_concrete_function(tf.TensorSpec((3, 5)), tf.TensorSpec((3, 4)),
                             tf.TensorSpec((4, 5)))
  # x's shape unknown: dy answers for it, and the message names dy.
  with pytest.raises(ValueError,
                     match="coefficients has 4 channels .* but dy has 5"):
    fn.get_concrete_function(tf.TensorSpec((3, 5)), tf.TensorSpec(None),
                             tf.TensorSpec((4, 5)))
  with pytest.raises(ValueError, match="dy must have rank >= 1"):
    fn.get_concrete_function(tf.TensorSpec(()), tf.TensorSpec(None),
                             tf.TensorSpec((4, 5)))


@pytest.mark.parametrize("fn", ["fused", "composite"])
@pytest.mark.parametrize("x_min,x_max,match", [
    (1.0, 1.0, "less than x_max"), (1.0, 0.0, "less than x_max"),
    (float("nan"), 1.0, "finite"), (0.0, float("inf"), "finite"),
    (0.0, 1e39, "finite"), (1.0, 1.0 + 1e-9, "less than x_max"),
    ("a", 1.0, "numbers")])
def test_wrapper_validates_range(fn, x_min, x_max, match):
  f = (ops.linear_spline if fn == "fused"
       else _spline_ops.linear_spline_composite)
  with pytest.raises(ValueError, match=match):
    f(tf.zeros((2, 3)), tf.zeros((3, 4)), x_min, x_max)


@pytest.mark.parametrize("x_shape,c_shape,axis,match", [
    ((), (1, 4), -1, "rank >= 1"),
    ((3, 4), (4, 5), 2, "out of range"),
    ((3, 4), (20,), -1, "rank-2"),
    ((3, 4), (5, 5), -1, "5 channels .* x has 4 channels"),
    ((3, 4), (4, 1), -1, "at least 2 knots"),
])
@pytest.mark.parametrize("mode", ["eager", "function"])
def test_composite_validates_shapes(x_shape, c_shape, axis, match, mode):
  # The composite and portable forms raise what the fused op raises (its
  # rule, cc/rules/spline_rules.h): InvalidArgumentError eagerly,
  # ValueError while tracing, with the same message.
  x, c = tf.zeros(x_shape), tf.zeros(c_shape)
  forms = [ops.linear_spline, _spline_ops.linear_spline_composite,
           _spline_ops.linear_spline_portable]
  error = assert_same_error(
      *[functools.partial(f, x, c, -1.0, 1.0, axis=axis) for f in forms],
      mode=mode)
  assert re.search(match, rule_message(error))
  want = InvalidArgument if mode == "eager" else ValueError
  assert type(error) is want


def test_unsupported_dtype_is_rejected():
  with pytest.raises((TypeError, InvalidArgument, tf.errors.NotFoundError)):
    ops.linear_spline(tf.zeros((2, 3), tf.int32), tf.zeros((3, 4), tf.int32),
                      -1.0, 1.0)
