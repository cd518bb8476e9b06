"""Tests of tfkaf.splines (docs/design.md, section 3), against NumPy written here."""

import numpy as np
import pytest
import tensorflow as tf

from tfkaf import splines

# --------------------------------------------------------------------------
# NumPy references (float64)
# --------------------------------------------------------------------------


def np_slopes(c, spacing):
  return np.diff(c, axis=1) / spacing


def np_relu_slopes(c, spacing):
  return (c[:, 2:] - 2.0 * c[:, 1:-1] + c[:, :-2]) / spacing


def np_eval(c, x_min, spacing, point):
  knots = c.shape[1]
  t = (point - x_min) / spacing
  i = int(np.clip(np.floor(t), 0, knots - 2))
  u = t - i
  return (1.0 - u) * c[:, i] + u * c[:, i + 1]


def np_from_relu_expansion(c0, s0, a, spacing):
  """Coefficients of f with f(knot_0) = c0, first slope s0, ReLU slopes a."""
  segment_slopes = np.concatenate([s0[:, None], s0[:, None] +
                                   np.cumsum(a, axis=1)], axis=1)
  steps = np.cumsum(segment_slopes * spacing, axis=1)
  return np.concatenate([c0[:, None], c0[:, None] + steps], axis=1)


def leaky_relu_coefficients(size=51, range_=4.0, slope=0.01, channels=1):
  knots = np.linspace(-range_, range_, size)
  row = np.where(knots >= 0, knots, slope * knots)
  return np.tile(row, (channels, 1))


X_MIN, X_MAX, T = splines.grid(51, 4.0)


# --------------------------------------------------------------------------


def test_grid():
  assert splines.grid(51, 4.0) == (-4.0, 4.0, 0.16)
  x_min, x_max, spacing = splines.grid(5, 1.0)
  assert (x_min, x_max, spacing) == (-1.0, 1.0, 0.5)
  np.testing.assert_allclose(x_min + 4 * spacing, x_max)


@pytest.mark.parametrize("size,range_,match", [
    (1, 4.0, "size"), (2.5, 4.0, "size"), (True, 4.0, "size"),
    (51, 0.0, "range_"), (51, -1.0, "range_"), (51, float("inf"), "range_"),
    (51, float("nan"), "range_")])
def test_grid_rejects_bad_arguments(size, range_, match):
  with pytest.raises(ValueError, match=match):
    splines.grid(size, range_)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slopes_and_relu_slopes(rng, dtype):
  c = rng.normal(size=(5, 51))
  ct = tf.constant(c, dtype)
  s = splines.slopes(ct, T)
  a = splines.relu_slopes(ct, T)
  assert s.shape == (5, 50) and a.shape == (5, 49)
  assert s.dtype == dtype and a.dtype == dtype
  rtol = 1e-4 if dtype == "float32" else 1e-12
  np.testing.assert_allclose(s.numpy(), np_slopes(c, T), rtol=rtol,
                             atol=rtol)
  np.testing.assert_allclose(a.numpy(), np_relu_slopes(c, T), rtol=rtol,
                             atol=rtol * 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tv2_of_leaky_relu_is_099(dtype):
  c = tf.constant(leaky_relu_coefficients(channels=3), dtype)
  tv2 = splines.tv2(c, T)
  assert tv2.shape == (3,)
  np.testing.assert_allclose(tv2.numpy(), [0.99] * 3,
                             rtol=1e-4 if dtype == "float32" else 1e-12)
  # ReLU slopes: one knot (at 0) with a = 0.99, all others zero.
  a = splines.relu_slopes(c, T).numpy()
  assert np.argmax(np.abs(a[0])) == 24  # a_k for k = 25, the knot at 0
  np.testing.assert_allclose(a[0, 24], 0.99, rtol=1e-5)


def test_tv2_vs_numpy_and_gradient(rng):
  c = tf.constant(rng.normal(size=(4, 11)))
  np.testing.assert_allclose(splines.tv2(c, 0.3).numpy(),
                             np.abs(np_relu_slopes(c.numpy(), 0.3)).sum(1),
                             rtol=1e-12)
  theoretical, numerical = tf.test.compute_gradient(
      lambda c: splines.tv2(c, 0.3), [c])
  np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6,
                             atol=1e-6)


def test_bv2_of_leaky_relu():
  c = tf.constant(leaky_relu_coefficients(channels=2))
  # TV2 + |f(0)| + |f(1)| = 0.99 + 0 + 1.
  np.testing.assert_allclose(splines.bv2(c, T, X_MIN).numpy(), [1.99, 1.99],
                             rtol=1e-12)


@pytest.mark.parametrize("x_min,spacing", [(-4.0, 0.16), (-0.5, 0.1),
                                           (0.5, 0.25), (-3.0, 0.05)])
def test_bv2_vs_numpy_including_extrapolation(rng, x_min, spacing):
  # (-0.5, 0.1) over K = 11 ends at 0.5: f(1) extrapolates; (0.5, ...) starts
  # after 0: f(0) extrapolates on the left.
  c = rng.normal(size=(3, 11))
  expected = (np.abs(np_relu_slopes(c, spacing)).sum(1)
              + np.abs(np_eval(c, x_min, spacing, 0.0))
              + np.abs(np_eval(c, x_min, spacing, 1.0)))
  got = splines.bv2(tf.constant(c), spacing, x_min)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
  with tf.GradientTape() as tape:
    ct = tf.constant(c)
    tape.watch(ct)
    total = tf.reduce_sum(splines.bv2(ct, spacing, x_min))
  assert tape.gradient(total, ct) is not None


def test_relu_expansion_reproduces_the_spline(rng):
  # f(x) = c[0] + b1 (x - x_min) + sum_k a_k ReLU(x - knot_k), extrapolation
  # included, with b1 = slopes[:, 0] and a_k = relu_slopes.
  from tfkaf import ops  # pylint: disable=g-import-not-at-top
  c = tf.constant(rng.normal(size=(3, 51)))
  x = rng.uniform(-6.0, 6.0, (200, 3))
  b1 = splines.slopes(c, T).numpy()[:, 0]
  a = splines.relu_slopes(c, T).numpy()
  knots = X_MIN + T * np.arange(1, 50)
  expansion = (c.numpy()[:, 0] + b1 * (x - X_MIN)
               + np.einsum("ck,nck->nc", a,
                           np.maximum(x[:, :, None] - knots, 0.0)))
  spline = ops.linear_spline(tf.constant(x), c, X_MIN, X_MAX).numpy()
  np.testing.assert_allclose(spline, expansion, rtol=1e-9, atol=1e-9)


def test_lipschitz_constants(rng):
  c = rng.normal(size=(6, 21))
  got = splines.lipschitz_constants(tf.constant(c), 0.2)
  np.testing.assert_allclose(got.numpy(),
                             np.abs(np_slopes(c, 0.2)).max(axis=1),
                             rtol=1e-12)
  lr = splines.lipschitz_constants(tf.constant(leaky_relu_coefficients()), T)
  np.testing.assert_allclose(lr.numpy(), [1.0], rtol=1e-12)


@pytest.mark.parametrize("slope_min,slope_max", [(-0.5, 1.0), (0.0, 0.3),
                                                 (None, 0.5), (-0.2, None),
                                                 (0.4, 0.4)])
def test_project_slopes_bounds_slopes_and_keeps_mean(rng, slope_min,
                                                     slope_max):
  c = rng.normal(0.0, 0.5, size=(5, 51))
  projected = splines.project_slopes(tf.constant(c), T, slope_min,
                                     slope_max).numpy()
  s = np_slopes(projected, T)
  if slope_min is not None:
    assert s.min() >= slope_min - 1e-9
  if slope_max is not None:
    assert s.max() <= slope_max + 1e-9
  np.testing.assert_allclose(projected.mean(axis=1), c.mean(axis=1),
                             rtol=1e-12, atol=1e-12)
  # NumPy: clamp the slopes, rebuild from c[0], shift to the mean.
  clamped = np.clip(np_slopes(c, T),
                    -np.inf if slope_min is None else slope_min,
                    np.inf if slope_max is None else slope_max)
  rebuilt = np.concatenate([c[:, :1], c[:, :1] +
                            np.cumsum(clamped * T, axis=1)], axis=1)
  rebuilt += (c.mean(1) - rebuilt.mean(1))[:, None]
  np.testing.assert_allclose(projected, rebuilt, rtol=1e-10, atol=1e-12)
  bound = max(abs(v) for v in (slope_min, slope_max) if v is not None)
  if slope_min is not None and slope_max is not None:
    lipschitz = splines.lipschitz_constants(tf.constant(projected), T)
    assert lipschitz.numpy().max() <= bound + 1e-9


def test_project_slopes_identity_inside_bounds_and_float32(rng):
  c = leaky_relu_coefficients(channels=2)
  projected = splines.project_slopes(tf.constant(c), T, 0.0, 1.0)
  np.testing.assert_allclose(projected.numpy(), c, atol=1e-12)
  projected32 = splines.project_slopes(tf.constant(c, tf.float32), T, 0.0,
                                       1.0)
  assert projected32.dtype == tf.float32
  np.testing.assert_allclose(projected32.numpy(), c, atol=1e-5)


def test_project_slopes_is_differentiable(rng):
  c = tf.constant(rng.normal(0.0, 0.1, size=(3, 9)))
  theoretical, numerical = tf.test.compute_gradient(
      lambda c: splines.project_slopes(c, 0.25, -0.3, 0.3), [c], delta=1e-7)
  np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5,
                             atol=1e-5)
  assert np.abs(theoretical[0]).sum() > 0


def test_project_slopes_rejects_inverted_bounds():
  with pytest.raises(ValueError, match="slope_min"):
    splines.project_slopes(tf.zeros((2, 5)), 0.1, 1.0, 0.0)


def _sparse_case(rng, channels=4, size=31, spacing=0.2):
  c0 = rng.normal(size=channels)
  s0 = rng.normal(size=channels)
  a = rng.normal(0.0, 1e-3, size=(channels, size - 2))  # small: removed
  big = rng.random((channels, size - 2)) < 0.2
  a[big] = rng.choice([-1.0, 1.0], big.sum()) * rng.uniform(0.5, 2.0,
                                                            big.sum())
  return np_from_relu_expansion(c0, s0, a, spacing), a, big, spacing


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparsify_removes_small_relu_slopes(rng, dtype):
  c, a, big, spacing = _sparse_case(rng)
  new = splines.sparsify(tf.constant(c, dtype), spacing, 0.01)
  assert new.dtype == dtype and new.shape == c.shape
  new = new.numpy().astype(np.float64)
  new_a = np_relu_slopes(new, spacing)
  atol = 1e-3 if dtype == "float32" else 1e-9
  np.testing.assert_allclose(new_a[~big], 0.0, atol=atol)
  np.testing.assert_allclose(new_a[big], a[big], rtol=1e-4, atol=atol)
  # c[0] and c[1] (the first segment) are kept.
  np.testing.assert_allclose(new[:, :2], c[:, :2], rtol=1e-6, atol=1e-6)
  expected = np_from_relu_expansion(c[:, 0], (c[:, 1] - c[:, 0]) / spacing,
                                    np.where(big, a, 0.0), spacing)
  np.testing.assert_allclose(new, expected, rtol=1e-4, atol=1e-4)


def test_sparsify_keeps_the_function_otherwise(rng):
  c, _, _, spacing = _sparse_case(rng)
  # Threshold 0 removes nothing; a threshold below every |a_k| neither.
  for threshold in (0.0, 1e-9):
    new = splines.sparsify(tf.constant(c), spacing, threshold).numpy()
    np.testing.assert_allclose(new, c, rtol=1e-10, atol=1e-10)
  leaky = leaky_relu_coefficients()
  new = splines.sparsify(tf.constant(leaky), T, 0.5).numpy()
  np.testing.assert_allclose(new, leaky, atol=1e-12)


def test_num_active_knots(rng):
  c, _, big, spacing = _sparse_case(rng)
  counts = splines.num_active_knots(tf.constant(c), spacing, threshold=0.01)
  assert counts.dtype == tf.int32
  np.testing.assert_array_equal(counts.numpy(), big.sum(axis=1))
  # Default threshold: small |a_k| ~ 1e-3 are active (>= 1e-4).
  all_knots = splines.num_active_knots(tf.constant(c), spacing)
  np.testing.assert_array_equal(
      all_knots.numpy(),
      (np.abs(np_relu_slopes(c, spacing)) >= splines.DEFAULT_KNOT_THRESHOLD
       ).sum(axis=1))
  sparse = splines.sparsify(tf.constant(c), spacing, 0.01)
  np.testing.assert_array_equal(
      splines.num_active_knots(sparse, spacing).numpy(), big.sum(axis=1))
  # leaky_relu: one knot; a straight line in float32: none.
  assert splines.num_active_knots(
      tf.constant(leaky_relu_coefficients(), tf.float32), T).numpy() == [1]
  line = tf.constant(np.linspace(-4.0, 4.0, 51)[None] * 0.7, tf.float32)
  assert splines.num_active_knots(line, T).numpy() == [0]
  zero = tf.zeros((2, 7))
  np.testing.assert_array_equal(
      splines.num_active_knots(zero, 0.1, threshold=0.0).numpy(), [0, 0])


def test_helpers_in_tf_function_and_on_variables(rng):
  variable = tf.Variable(rng.normal(size=(3, 51)).astype(np.float32))

  @tf.function
  def everything(c):
    return (splines.tv2(c, T), splines.bv2(c, T, X_MIN),
            splines.lipschitz_constants(c, T),
            splines.project_slopes(c, T, -1.0, 1.0),
            splines.sparsify(c, T, 0.1), splines.num_active_knots(c, T, 0.1))

  graph = everything(variable)
  eager = (splines.tv2(variable, T), splines.bv2(variable, T, X_MIN),
           splines.lipschitz_constants(variable, T),
           splines.project_slopes(variable, T, -1.0, 1.0),
           splines.sparsify(variable, T, 0.1),
           splines.num_active_knots(variable, T, 0.1))
  for g, e in zip(graph, eager):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(splines.tv2(variable, T)) + tf.reduce_sum(
        splines.project_slopes(variable, T, -1.0, 1.0))
  assert tape.gradient(loss, variable) is not None


def test_rejects_non_matrix_coefficients():
  with pytest.raises(ValueError, match="rank-2"):
    splines.tv2(tf.zeros((5,)), 0.1)
