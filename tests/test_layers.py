"""Tests of tfkaf.layers (docs/design.md, sections 1-3).

Numerical checks use NumPy references written here from the formulas of
docs/design.md, independently of the ops; model-level checks cover Sequential and
functional models, Dense and Conv2D (NHWC, and NCHW through axis=1),
model.fit, `.keras` round trips, SavedModel export loaded in a fresh process,
tf.function, XLA and mixed precision. Optimizer groups, Lipschitz bounds and
tf.distribute are in test_layers_training.py / test_layers_distributed.py.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkaf
from tfkaf import activations
from tfkaf import layers

from reference import np_kaf, np_kaf2d, np_leaky_relu, np_spline

PACKAGE_PARENT = str(pathlib.Path(tfkaf.__file__).resolve().parents[1])

def _subprocess_env():
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(
          os.pathsep) if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "")
  return env


@pytest.fixture
def mixed_precision():
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def _set_random_weights(model, seed=0, scale=0.5):
  rs = np.random.RandomState(seed)
  model.set_weights([(rs.randn(*w.shape) * scale).astype(w.dtype)
                     for w in model.get_weights()])


# --------------------------------------------------------------------------
# Construction, validation, config
# --------------------------------------------------------------------------

LAYER_CASES = [
    (layers.KAF, dict(D=7, boundary=2.0, kernel="softplus", init="tanh",
                      axis=1, init_epsilon=1e-3,
                      alpha_regularizer="l2", alpha_constraint="max_norm")),
    (layers.KAF, dict(D=5, kernel="relu", gamma=0.7)),
    (layers.KAF2D, dict(D=4, boundary=2.5, axis=-1, gamma=1.5,
                        alpha_initializer="zeros")),
    (layers.DeepBSpline, dict(size=9, range=2.0, init="even_odd", axis=-1,
                              explicit_linear=True, slope_min=-1.0,
                              slope_max=2.0, tv2=1e-3, bv2=1e-4,
                              coefficients_regularizer="l1")),
    (layers.DeepBSpline, dict(size=7, init="elu")),
    (layers.LGReLU, dict(axis=1, leak_regularizer="l2")),
    (layers.Maxout, dict(pieces=3, use_intercept=False,
                         slopes_initializer="ones")),
    (layers.PReLU, dict(shared_axes=[1], alpha_initializer="ones")),
    (layers.Activation, dict(activation="tanh+norm:z")),
    (layers.Activation, dict(activation={"name": "leaky_relu",
                                         "negative_slope": 0.2})),
]


@pytest.mark.parametrize("cls,kwargs", LAYER_CASES)
def test_get_config_round_trip(cls, kwargs):
  layer = cls(name="probe", dtype="float32", **kwargs)
  config = layer.get_config()
  json.dumps(config)  # JSON-friendly
  for key in ("name", "trainable", "dtype"):
    assert key in config, key
  if "init" in config:
    assert isinstance(config["init"], str)
  clone = cls.from_config(config)
  assert clone.get_config() == config
  serialized = keras.saving.serialize_keras_object(layer)
  assert serialized["registered_name"] == f"tfkaf>{cls.__name__}"
  again = keras.saving.deserialize_keras_object(serialized)
  assert type(again) is cls
  assert again.get_config() == config


@pytest.mark.parametrize("name", ["KAF", "KAF2D", "DeepBSpline", "LGReLU",
                                  "Maxout", "PReLU", "Activation"])
def test_registered_under_tfkaf(name):
  assert keras.saving.get_registered_object(f"tfkaf>{name}") is getattr(
      layers, name)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.KAF(D=1), "`D`"),
    (lambda: layers.KAF(D=2.5), "`D`"),
    (lambda: layers.KAF(boundary=0.0), "`boundary`"),
    (lambda: layers.KAF(kernel="cubic"), "`kernel`"),
    (lambda: layers.KAF(init="no_such_activation"), "`init`"),
    (lambda: layers.KAF(gamma=-1.0), "`gamma`"),
    (lambda: layers.KAF(kernel="relu", init="tanh"), "singular"),
    (lambda: layers.KAF(axis="last"), "`axis`"),
    (lambda: layers.KAF2D(D=1), "`D`"),
    (lambda: layers.KAF2D(boundary=-1.0), "`boundary`"),
    (lambda: layers.KAF(boundary=1e-40), "`boundary` .*smallest normal"),
    (lambda: layers.KAF(gamma=1e39), "`gamma` .*float32"),
    (lambda: layers.KAF2D(gamma=1e-45), "`gamma` .*smallest normal"),
    (lambda: layers.DeepBSpline(size=1), "`size`"),
    (lambda: layers.DeepBSpline(range=0.0), "`range`"),
    (lambda: layers.DeepBSpline(slope_min=2.0, slope_max=1.0), "`slope_min`"),
    (lambda: layers.DeepBSpline(tv2=-1.0), "`tv2`"),
    (lambda: layers.DeepBSpline(bv2=-1.0), "`bv2`"),
    (lambda: layers.DeepBSpline(init="no_such_activation"), "`init`"),
    (lambda: layers.Maxout(pieces=0), "`pieces`"),
    (lambda: layers.Activation("no_such_activation"), "no_such_activation"),
])
def test_argument_validation(make, message):
  with pytest.raises((ValueError, TypeError), match=message):
    make()


def test_kaf2d_odd_channel_count_is_a_clear_error():
  layer = layers.KAF2D(D=3)
  with pytest.raises(ValueError, match="even; got 5 channels"):
    layer(np.zeros((2, 5), np.float32))
  with pytest.raises(ValueError, match="got 3 channels"):
    keras.Sequential([keras.Input((4, 3)), layers.KAF2D(D=3)])


@pytest.mark.parametrize("cls", [layers.KAF, layers.KAF2D, layers.DeepBSpline,
                                 layers.LGReLU, layers.Maxout])
def test_channel_axis_must_be_defined(cls):
  with pytest.raises(ValueError, match="channel axis"):
    keras.Sequential([keras.Input((None,)), cls()])
  with pytest.raises(ValueError, match="out of range"):
    cls(axis=3).build((None, 4))


@pytest.mark.parametrize("layer,shape,expected", [
    (layers.KAF(), (None, 6, 4), (None, 6, 4)),
    (layers.KAF2D(axis=1), (None, 6, 4, 4), (None, 3, 4, 4)),
    (layers.KAF2D(), (None, 5, 8), (None, 5, 4)),
    (layers.DeepBSpline(axis=1), (None, 3, 7), (None, 3, 7)),
    (layers.LGReLU(), (None, 2), (None, 2)),
    (layers.Maxout(3), (None, 5, 2), (None, 5, 2)),
    (layers.Activation("mish"), (None, 5), (None, 5)),
    (layers.Activation("glu"), (None, 3, 8), (None, 3, 4)),
])
def test_compute_output_shape(layer, shape, expected):
  assert tuple(layer.compute_output_shape(shape)) == expected
  symbolic = layer(keras.Input(shape[1:]))
  assert tuple(symbolic.shape) == expected


def test_activation_layer_get_config_needs_registered_function():
  layer = layers.Activation(lambda x: 2 * x)
  np.testing.assert_allclose(layer(np.ones((1, 2), np.float32)), 2.0)
  with pytest.raises(ValueError, match="register"):
    layer.get_config()


# --------------------------------------------------------------------------
# KAF numerics
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["gaussian", "relu", "softplus"])
def test_kaf_matches_formula(kernel, rng):
  layer = layers.KAF(D=9, boundary=2.0, kernel=kernel)
  x = rng.normal(0, 1.5, (4, 3, 5)).astype(np.float32)
  y = layer(x).numpy()
  assert layer.alpha.shape == (5, 9)
  np.testing.assert_allclose(
      y, np_kaf(x, layer.alpha.numpy(), 2.0, kernel), rtol=1e-4, atol=1e-4)


def test_kaf_random_init_statistics():
  layer = layers.KAF(D=20)
  layer.build((None, 256))
  alpha = layer.alpha.numpy()
  assert alpha.dtype == np.float32
  assert abs(alpha.std() - layers._kaf.RANDOM_STDDEV) < 0.02
  assert abs(alpha.mean()) < 0.02


def test_kaf_explicit_gamma():
  layer = layers.KAF(D=6, gamma=0.25)
  x = np.linspace(-4, 4, 30, dtype=np.float32).reshape(10, 3)
  np.testing.assert_allclose(layer(x), np_kaf(x, layer.alpha.numpy(),
                                              gamma=0.25), atol=1e-5)


def test_kaf_tanh_init_reproduces_tanh():
  layer = layers.KAF(init="tanh")  # D=20, boundary=3, eps=1e-4
  x = np.tile(np.linspace(-2.5, 2.5, 501, dtype=np.float32)[:, None], (1, 4))
  y = layer(x).numpy()
  np.testing.assert_allclose(y, np.tanh(x), atol=5e-3)
  alpha = layer.alpha.numpy()
  np.testing.assert_array_equal(alpha, np.tile(alpha[:1], (4, 1)))


@pytest.mark.parametrize("name,tolerance", [("elu", 0.03), ("relu", 0.1),
                                            ("sigmoid", 0.01),
                                            ("gelu", 0.03)])
def test_kaf_kernel_ridge_init_matches_activation(name, tolerance):
  # Documented: ELU/ReLU fits have large oscillating coefficients, but the
  # KAF reproduces the function on [-boundary, boundary].
  layer = layers.KAF(init=name)
  x = np.linspace(-3.0, 3.0, 601, dtype=np.float32)[:, None]
  expected = activations.get(name)(x).numpy()
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=tolerance)
  if name in ("elu", "relu"):
    assert np.abs(layer.alpha.numpy()).max() > 10


def test_kaf_softplus_kernel_init():
  layer = layers.KAF(init="tanh", kernel="softplus", D=20)
  x = np.linspace(-2.5, 2.5, 101, dtype=np.float32)[:, None]
  np.testing.assert_allclose(layer(x), np.tanh(x), atol=2e-2)


def test_kaf_callable_init_is_stored_as_numbers():
  fn = lambda x: 0.5 * x + tf.sin(x)  # pylint: disable=unnecessary-lambda-assignment
  layer = layers.KAF(D=12, init=fn)
  config = layer.get_config()
  assert config["init"] == "custom"
  json.dumps(config)
  x = np.linspace(-2.5, 2.5, 51, dtype=np.float32)[:, None]
  y = layer(x).numpy()
  np.testing.assert_allclose(y, 0.5 * x + np.sin(x), atol=2e-2)
  clone = layers.KAF.from_config(config)
  np.testing.assert_array_equal(clone(x).numpy(), y)
  # A registered activation passed as a function is stored by name.
  assert layers.KAF(init=activations.tanh).get_config()["init"] == "tanh"


def test_kaf2d_matches_formula(rng):
  layer = layers.KAF2D(D=5, boundary=2.0)
  x = rng.normal(0, 1.2, (3, 2, 6)).astype(np.float32)
  y = layer(x).numpy()
  assert y.shape == (3, 2, 3)
  assert layer.alpha.shape == (3, 25)
  np.testing.assert_allclose(y, np_kaf2d(x, layer.alpha.numpy(), 2.0),
                             rtol=1e-4, atol=1e-4)


def _copy_parameters(source, target):
  for a, b in zip(source.weights, target.weights):
    b.assign(a)


@pytest.mark.parametrize("make", [
    lambda axis: layers.KAF(D=6, axis=axis),
    lambda axis: layers.KAF2D(D=4, axis=axis),
    lambda axis: layers.DeepBSpline(size=7, range=2.0, axis=axis,
                                    explicit_linear=True),
    lambda axis: layers.LGReLU(axis=axis),
    lambda axis: layers.Maxout(3, axis=axis),
])
def test_channels_first_equals_channels_last(make, rng):
  x_nhwc = rng.normal(0, 1.5, (2, 3, 5, 4)).astype(np.float32)
  x_nchw = np.transpose(x_nhwc, (0, 3, 1, 2))
  last, first = make(-1), make(1)
  last.build(x_nhwc.shape)
  first.build(x_nchw.shape)
  for v in last.weights:
    v.assign(rng.normal(0, 0.7, v.shape).astype(np.float32))
  _copy_parameters(last, first)
  y_last = last(x_nhwc).numpy()
  y_first = first(x_nchw).numpy()
  np.testing.assert_allclose(np.transpose(y_last, (0, 3, 1, 2)), y_first,
                             rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# DeepBSpline numerics
# --------------------------------------------------------------------------


def test_deepbspline_defaults_and_grid():
  layer = layers.DeepBSpline()
  assert (layer.size, layer.range, layer.init) == (51, 4.0, "leaky_relu")
  assert layer.x_min == -4.0 and layer.x_max == 4.0
  assert layer.T == pytest.approx(0.16)


def test_deepbspline_leaky_relu_init_and_linear_extrapolation():
  layer = layers.DeepBSpline()
  inside = np.linspace(-4, 4, 801, dtype=np.float32)
  outside = np.array([-50.0, -9.0, -4.5, 4.5, 9.0, 50.0], np.float32)
  x = np.concatenate([inside, outside])[:, None] * np.ones((1, 3), np.float32)
  y = layer(x).numpy()
  np.testing.assert_allclose(y, np_leaky_relu(x), rtol=1e-5, atol=1e-5)
  # tanh init: outside the range the spline continues with the end slopes.
  spline = layers.DeepBSpline(size=21, range=2.0, init="tanh")
  knots = np.linspace(-2, 2, 21)
  far = np.array([[-5.0], [-3.0], [3.0], [5.0]], np.float32)
  slope_left = (np.tanh(knots[1]) - np.tanh(knots[0])) / 0.2
  slope_right = (np.tanh(knots[-1]) - np.tanh(knots[-2])) / 0.2
  expected = np.where(far < 0, np.tanh(-2.0) + (far + 2) * slope_left,
                      np.tanh(2.0) + (far - 2) * slope_right)
  np.testing.assert_allclose(spline(far).numpy(), expected, rtol=1e-5,
                             atol=1e-5)


def test_deepbspline_tv2_of_leaky_relu_init():
  layer = layers.DeepBSpline()
  layer.build((None, 3))
  np.testing.assert_allclose(layer.tv2().numpy(), [0.99] * 3, rtol=1e-4)
  # BV2 = TV2 + |f(0)| + |f(1)| = 0.99 + 0 + 1.
  np.testing.assert_allclose(layer.bv2().numpy(), [1.99] * 3, rtol=1e-4)
  np.testing.assert_allclose(layer.lipschitz_constants().numpy(), [1.0] * 3,
                             rtol=1e-5)
  np.testing.assert_array_equal(layer.num_active_knots().numpy(), [1] * 3)


@pytest.mark.parametrize("init,reference", [
    ("relu", lambda x: np.maximum(x, 0)),
    ("identity", lambda x: x),
    ("tanh", np.tanh),
    ("elu", lambda x: np.where(x > 0, x, np.expm1(x))),
])
def test_deepbspline_inits_interpolate_the_function(init, reference):
  layer = layers.DeepBSpline(size=41, range=3.0, init=init)
  knots = np.linspace(-3, 3, 41, dtype=np.float32)[:, None]
  np.testing.assert_allclose(layer(np.tile(knots, (1, 2))).numpy(),
                             np.tile(reference(knots), (1, 2)), atol=1e-5)
  mid = (knots[1:] + knots[:-1]) / 2
  np.testing.assert_allclose(
      layer(np.tile(mid, (1, 2))).numpy(),
      np.tile((reference(knots[1:]) + reference(knots[:-1])) / 2, (1, 2)),
      atol=1e-5)


def test_deepbspline_even_odd_init():
  layer = layers.DeepBSpline(size=61, range=3.0, init="even_odd")
  x = np.tile(np.linspace(-3, 3, 61, dtype=np.float32)[:, None], (1, 5))
  y = layer(x).numpy()
  np.testing.assert_allclose(y[:, :2], np.abs(x[:, :2]), atol=1e-5)
  soft = np.sign(x[:, 2:]) * np.maximum(np.abs(x[:, 2:]) - 0.5, 0)
  np.testing.assert_allclose(y[:, 2:], soft, atol=1e-5)


def test_deepbspline_callable_init_is_stored_as_numbers():
  layer = layers.DeepBSpline(size=11, range=1.0, init=lambda x: x * x)
  config = layer.get_config()
  assert config["init"] == "custom"
  x = np.linspace(-1, 1, 11, dtype=np.float32)[:, None]
  np.testing.assert_allclose(layer(x).numpy(), x * x, atol=1e-6)
  clone = layers.DeepBSpline.from_config(config)
  np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


def test_deepbspline_matches_formula_with_random_coefficients(rng):
  layer = layers.DeepBSpline(size=9, range=2.0, axis=1)
  x = rng.normal(0, 2.0, (3, 4, 5)).astype(np.float32)
  layer.build(x.shape)
  c = rng.normal(0, 1, (4, 9)).astype(np.float32)
  layer.coefficients.assign(c)
  np.testing.assert_allclose(layer(x).numpy(),
                             np_spline(x, c, -2.0, 2.0, axis=1),
                             rtol=1e-5, atol=1e-5)


def test_deepbspline_explicit_linear(rng):
  layer = layers.DeepBSpline(size=9, range=2.0, explicit_linear=True)
  x = rng.normal(0, 2.0, (6, 3)).astype(np.float32)
  layer.build(x.shape)
  assert [v.name for v in layer.trainable_weights] == ["coefficients", "b1",
                                                       "b0"]
  np.testing.assert_allclose(layer(x), np_leaky_relu(x), atol=1e-5)
  b1 = np.array([0.5, -1.0, 2.0], np.float32)
  b0 = np.array([0.1, 0.2, -0.3], np.float32)
  layer.b1.assign(b1)
  layer.b0.assign(b0)
  np.testing.assert_allclose(layer(x), np_leaky_relu(x) + b1 * x + b0,
                             atol=1e-5)
  # Lipschitz includes b1: slopes {0.01, 1} + b1.
  np.testing.assert_allclose(layer.lipschitz_constants().numpy(),
                             [1.5, 0.99, 3.0], rtol=1e-5)
  # BV2 = TV2 + |f(0)| + |f(1)| of the whole function.
  f0 = b0
  f1 = 1.0 + b1 + b0
  np.testing.assert_allclose(layer.bv2().numpy(),
                             0.99 + np.abs(f0) + np.abs(f1), rtol=1e-5)


def test_slope_projection_bounds_every_slope(rng):
  layer = layers.DeepBSpline(size=15, range=2.0, slope_min=0.0,
                             slope_max=1.0)
  layer.build((None, 4))
  c = rng.normal(0, 1.0, (4, 15)).astype(np.float32)
  layer.coefficients.assign(c)
  x = np.linspace(-4, 4, 4001, dtype=np.float32)[:, None] * np.ones(
      (1, 4), np.float32)
  y = layer(x).numpy().astype(np.float64)
  slopes = np.diff(y, axis=0) / np.diff(x, axis=0)
  assert slopes.min() >= -1e-3 and slopes.max() <= 1 + 1e-3
  assert np.all(layer.lipschitz_constants().numpy() <= 1 + 1e-5)
  # Without projection the same coefficients are far steeper.
  raw = np.abs(np.diff(c, axis=1)).max() / layer.T
  assert raw > 2
  # The mean of the coefficients is kept.
  np.testing.assert_allclose(
      layer.effective_coefficients().numpy().mean(axis=1), c.mean(axis=1),
      atol=1e-5)
  # Differentiable: gradients reach the coefficients.
  with tf.GradientTape() as tape:
    out = tf.reduce_sum(layer(x[:50]) ** 2)
  grad = tape.gradient(out, layer.coefficients)
  assert grad is not None and np.all(np.isfinite(grad.numpy()))
  assert np.abs(grad.numpy()).sum() > 0


def test_slope_projection_one_sided(rng):
  layer = layers.DeepBSpline(size=11, range=1.0, slope_max=0.5)
  layer.build((None, 2))
  layer.coefficients.assign(rng.normal(0, 1, (2, 11)).astype(np.float32))
  x = np.linspace(-2, 2, 801, dtype=np.float32)[:, None] * np.ones((1, 2))
  y = layer(x.astype(np.float32)).numpy().astype(np.float64)
  slopes = np.diff(y, axis=0) / np.diff(x, axis=0)
  assert slopes.max() <= 0.5 + 1e-3


def test_sparsify_removes_small_knots(rng):
  layer = layers.DeepBSpline(size=21, range=2.0)
  layer.build((None, 3))
  c = layer.coefficients.numpy()
  noise = rng.normal(0, 0.01, c.shape).astype(np.float32)
  noise[:, :2] = 0.0
  layer.coefficients.assign(c + np.cumsum(np.cumsum(noise, axis=1), axis=1))
  before = layer.num_active_knots().numpy()
  threshold = 0.5
  active = layer.sparsify(threshold)
  after = layer.num_active_knots().numpy()
  np.testing.assert_array_equal(active, after)
  assert np.all(after <= before) and np.all(after >= 1)
  new = layer.coefficients.numpy()
  a = (new[:, 2:] - 2 * new[:, 1:-1] + new[:, :-2]) / layer.T
  small = np.abs(a) < 1e-3
  assert np.all(small | (np.abs(a) >= threshold - 1e-3))
  np.testing.assert_allclose(new[:, :2], (c + np.cumsum(np.cumsum(
      noise, axis=1), axis=1))[:, :2], atol=1e-5)


def test_tv2_regularizer_is_added_to_the_model_loss(rng):
  lam = 0.01
  model = keras.Sequential([keras.Input((3,)),
                            layers.DeepBSpline(size=11, tv2=lam)])
  (loss,) = model.losses
  np.testing.assert_allclose(loss.numpy(), lam * 3 * 0.99, rtol=1e-5)
  x = rng.normal(0, 1, (16, 3)).astype(np.float32)
  y = rng.normal(0, 1, (16, 3)).astype(np.float32)
  model.compile(keras.optimizers.SGD(0.0), "mse")
  mse = np.mean((np_leaky_relu(x) - y) ** 2)
  evaluated = model.evaluate(x, y, verbose=0, batch_size=16)
  np.testing.assert_allclose(evaluated, mse + lam * 3 * 0.99, rtol=1e-4)
  history = model.fit(x, y, verbose=0, batch_size=16, epochs=1)
  np.testing.assert_allclose(history.history["loss"][0], evaluated,
                             rtol=1e-4)


def test_bv2_regularizer_and_training_reduces_tv2(rng):
  model = keras.Sequential([keras.Input((2,)),
                            layers.DeepBSpline(size=11, range=2.0,
                                               init="tanh", bv2=1.0)])
  spline = model.layers[0]
  np.testing.assert_allclose(model.losses[0].numpy(),
                             np.sum(spline.bv2().numpy()), rtol=1e-5)
  x = rng.normal(0, 1, (32, 2)).astype(np.float32)
  y = np.tanh(x)
  tv2_before = spline.tv2().numpy().sum()
  model.compile(keras.optimizers.SGD(1e-3), "mse")
  model.fit(x, y, epochs=5, batch_size=32, verbose=0)
  assert spline.tv2().numpy().sum() < tv2_before


# --------------------------------------------------------------------------
# LGReLU, Maxout, Activation
# --------------------------------------------------------------------------


def test_lgrelu_formula(rng):
  layer = layers.LGReLU()
  x = rng.normal(0, 2, (5, 4)).astype(np.float32)
  y0 = layer(x).numpy()
  np.testing.assert_allclose(y0, np.where(x > 0, x, 0.1 * x), atol=1e-6)
  g = np.array([2.0, 0.5, -1.0, 1.0], np.float32)
  r = np.array([0.1, 0.3, 0.2, -0.5], np.float32)
  layer.gain.assign(g)
  layer.leak.assign(r)
  expected = np.maximum(0, g * x) - np.maximum(0, -r * x)
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-6)


def test_maxout_formula(rng):
  layer = layers.Maxout(pieces=3)
  x = rng.normal(0, 2, (6, 2)).astype(np.float32)
  np.testing.assert_allclose(layer(x).numpy(), np.maximum(x, 0), atol=1e-6)
  m = rng.normal(0, 1, (2, 3)).astype(np.float32)
  b = rng.normal(0, 1, (2, 3)).astype(np.float32)
  layer.slopes.assign(m)
  layer.intercepts.assign(b)
  expected = np.max(x[..., None] * m + b, axis=-1)
  np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-6)
  plain = layers.Maxout(pieces=3, use_intercept=False)
  plain.build(x.shape)
  plain.slopes.assign(m)
  np.testing.assert_allclose(plain(x).numpy(), np.max(x[..., None] * m, -1),
                             atol=1e-6)


def test_prelu_is_keras_prelu_with_an_activation_parameter(rng):
  layer = layers.PReLU(alpha_initializer=keras.initializers.Constant(0.2))
  x = rng.normal(0, 2, (5, 3)).astype(np.float32)
  np.testing.assert_allclose(layer(x).numpy(), np.where(x > 0, x, 0.2 * x),
                             atol=1e-6)
  assert isinstance(layer, keras.layers.PReLU)
  assert layers.is_activation_variable(layer.alpha)
  plain = keras.layers.PReLU()
  plain.build((None, 3))
  assert not layers.is_activation_variable(plain.alpha)


@pytest.mark.parametrize("identifier", ["mish", "rect:min", "tanh+norm:z",
                                        {"name": "elu", "alpha": 0.5}])
def test_activation_layer_wraps_library(identifier, rng):
  x = rng.normal(0, 2, (4, 6)).astype(np.float32)
  expected = activations.get(identifier)(x).numpy()
  np.testing.assert_allclose(layers.Activation(identifier)(x).numpy(),
                             expected, rtol=1e-6)


# --------------------------------------------------------------------------
# Models: Sequential, functional, Conv2D, fit, save/load, export
# --------------------------------------------------------------------------


def dense_model(seed=0):
  inputs = keras.Input((6,))
  h = keras.layers.Dense(8)(inputs)
  h = layers.KAF(D=6)(h)
  h = layers.DeepBSpline(size=9, range=2.0, explicit_linear=True,
                         slope_min=-1.0, slope_max=2.0, tv2=1e-3)(h)
  h = layers.LGReLU()(h)
  h = layers.Maxout(pieces=3)(h)
  h = layers.Activation("tanh")(h)
  h = layers.KAF2D(D=4)(h)
  h = layers.KAF(D=5, init="tanh", kernel="softplus")(h)
  outputs = keras.layers.Dense(2)(h)
  model = keras.Model(inputs, outputs)
  _set_random_weights(model, seed)
  return model


def conv_model(channels_first=False):
  """Conv2D model; channels_first runs the activations in NCHW (axis=1)."""
  inputs = keras.Input((8, 8, 2))
  h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
  axis = -1
  if channels_first:
    h = keras.layers.Permute((3, 1, 2))(h)  # NHWC -> NCHW
    axis = 1
  h = layers.KAF(D=5, axis=axis)(h)
  h = layers.DeepBSpline(size=7, axis=axis, init="relu")(h)
  h = layers.KAF2D(D=3, axis=axis)(h)
  h = layers.LGReLU(axis=axis)(h)
  if channels_first:
    h = keras.layers.Permute((2, 3, 1))(h)  # back to NHWC for Flatten
  h = keras.layers.Flatten()(h)
  outputs = keras.layers.Dense(1)(h)
  return keras.Model(inputs, outputs)


def _data(rng, shape, n=32):
  x = rng.normal(0, 1, (n,) + shape).astype(np.float32)
  y = np.tanh(x.reshape(n, -1)[:, :1]) + 0.1
  return x, y.astype(np.float32)


def test_sequential_model_fit(rng):
  model = keras.Sequential([
      keras.Input((4,)),
      keras.layers.Dense(6),
      layers.KAF(D=8),
      keras.layers.Dense(6),
      layers.DeepBSpline(size=11),
      keras.layers.Dense(4),
      layers.KAF2D(D=4),
      layers.Maxout(2),
      layers.LGReLU(),
      layers.Activation("softplus"),
      keras.layers.Dense(1),
  ])
  x, y = _data(rng, (4,), 64)
  model.compile(keras.optimizers.Adam(1e-2), "mse")
  history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
  losses = history.history["loss"]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize("channels_first", [False, True])
def test_conv2d_model_fit(channels_first, rng):
  model = conv_model(channels_first)
  _set_random_weights(model, 1, scale=0.3)
  x, y = _data(rng, (8, 8, 2), 16)
  model.compile(keras.optimizers.Adam(3e-3), "mse")
  before = model.evaluate(x, y, verbose=0)
  history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  assert model.evaluate(x, y, verbose=0) < before


def test_nchw_conv_model_equals_nhwc(rng):
  last, first = conv_model(False), conv_model(True)
  _set_random_weights(last, 3)
  first.set_weights(last.get_weights())
  x = rng.normal(0, 1, (2, 8, 8, 2)).astype(np.float32)
  np.testing.assert_allclose(first(x).numpy(), last(x).numpy(), rtol=1e-5,
                             atol=1e-5)


def test_keras_file_round_trip(tmp_path, rng):
  model = dense_model()
  model.compile(keras.optimizers.Adam(1e-2), "mse")
  x, y = _data(rng, (6,), 32)
  model.fit(x, y, epochs=1, batch_size=16, verbose=0)
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))
  assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
  # Training continues identically (optimizer state restored).
  model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
  loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             model.predict(x, verbose=0), rtol=1e-5,
                             atol=1e-6)


def test_keras_file_round_trip_with_custom_inits(tmp_path, rng):
  model = keras.Sequential([
      keras.Input((3,)),
      layers.KAF(D=7, init=lambda x: tf.sin(x)),
      layers.DeepBSpline(size=9, init=lambda x: 0.5 * x * x),
      layers.Activation({"name": "leaky_relu", "negative_slope": 0.2}),
  ])
  x = rng.normal(0, 1, (8, 3)).astype(np.float32)
  path = tmp_path / "custom.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))


_LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tfkaf  # registers the ops; nothing else of tfkaf is imported
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], loaded.serve(tf.constant(x)).numpy())
""")


def test_saved_model_export_loads_in_fresh_process(tmp_path, rng):
  model = dense_model()
  conv = conv_model(channels_first=True)
  _set_random_weights(conv, 5)
  for name, m, shape in (("dense", model, (6,)), ("conv", conv, (8, 8, 2))):
    x = rng.normal(0, 1, (5,) + shape).astype(np.float32)
    export_dir = tmp_path / name
    m.export(str(export_dir), verbose=False)
    np.save(tmp_path / f"{name}_x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(export_dir),
         str(tmp_path / f"{name}_x.npy"), str(tmp_path / f"{name}_y.npy")],
        env=_subprocess_env(), capture_output=True, text=True, timeout=240,
        check=False, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    y = np.load(tmp_path / f"{name}_y.npy")
    np.testing.assert_allclose(y, m.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


# --------------------------------------------------------------------------
# tf.function, XLA, mixed precision
# --------------------------------------------------------------------------


def test_tf_function_with_varying_batch_and_gradients(rng):
  model = dense_model()

  @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
  def forward_and_grad(x):
    with tf.GradientTape() as tape:
      y = model(x, training=True)
      loss = tf.reduce_sum(y ** 2)
    return y, tape.gradient(loss, model.trainable_variables)

  for n in (1, 7):
    x = rng.normal(0, 1, (n, 6)).astype(np.float32)
    y, grads = forward_and_grad(x)
    with tf.GradientTape() as tape:
      y_eager = model(x, training=True)
      loss = tf.reduce_sum(y_eager ** 2)
    grads_eager = tape.gradient(loss, model.trainable_variables)
    np.testing.assert_allclose(y.numpy(), y_eager.numpy(), rtol=1e-5,
                               atol=1e-6)
    for g, ge in zip(grads, grads_eager):
      np.testing.assert_allclose(g.numpy(), ge.numpy(), rtol=1e-4, atol=1e-5)


def test_layers_support_automatic_jit():
  # The fused ops compile inside XLA (custom calls), so Keras may turn
  # jit_compile on for models with tfkaf layers.
  from keras.src.trainers.trainer import model_supports_jit  # pylint: disable=g-import-not-at-top
  model = dense_model()
  assert model_supports_jit(model)
  for cls in (layers.KAF, layers.KAF2D, layers.DeepBSpline):
    assert cls().supports_jit is True
  plain = keras.Sequential([keras.Input((3,)), layers.LGReLU(),
                            layers.Maxout(), layers.Activation("tanh")])
  assert model_supports_jit(plain)


def test_jit_compile_gives_the_same_numbers(rng):
  model = dense_model()
  x = rng.normal(0, 1.5, (9, 6)).astype(np.float32)

  def loss_and_grads(x):
    with tf.GradientTape() as tape:
      y = model(x, training=True)
      loss = tf.reduce_sum(tf.sin(y))
    return y, tape.gradient(loss, model.trainable_variables)

  y_graph, g_graph = tf.function(loss_and_grads)(x)
  y_xla, g_xla = tf.function(loss_and_grads, jit_compile=True)(x)
  np.testing.assert_allclose(y_xla.numpy(), y_graph.numpy(), rtol=1e-4,
                             atol=1e-5)
  for a, b in zip(g_xla, g_graph):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
  # Through Keras: jit_compile stays on.
  model.compile(keras.optimizers.SGD(1e-2), "mse", jit_compile=True)
  assert model.jit_compile
  np.testing.assert_allclose(model.predict(x, verbose=0), y_graph.numpy(),
                             rtol=1e-4, atol=1e-5)
  history = model.fit(x, np.zeros((9, 2), np.float32), epochs=2, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))


def test_mixed_float16(mixed_precision, rng):  # pylint: disable=redefined-outer-name,unused-argument
  model = dense_model()
  conv = conv_model()
  for m in (model, conv):
    for layer in m.layers:
      for v in layer.weights:
        assert v.dtype == "float32", (layer.name, v.name)
  x = rng.normal(0, 1, (8, 6)).astype(np.float32)
  y = model(x)
  for layer in model.layers[1:]:
    assert layer.compute_dtype == "float16"
  assert y.dtype == tf.float16
  # The same weights in float32 give (nearly) the same outputs.
  keras.config.set_dtype_policy("float32")
  reference = dense_model()
  reference.set_weights(model.get_weights())
  np.testing.assert_allclose(y.numpy().astype(np.float32),
                             reference(x).numpy(), rtol=0.05, atol=0.05)
  keras.config.set_dtype_policy("mixed_float16")
  # Training: Keras wraps the optimizer in a LossScaleOptimizer.
  model.compile(keras.optimizers.Adam(1e-2), "mse")
  assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
  xs, ys = _data(rng, (6,), 32)
  history = model.fit(xs, np.tile(ys, (1, 2)), epochs=3, batch_size=16,
                      verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  for v in model.trainable_variables:
    assert v.dtype == "float32"
  xc, yc = _data(rng, (8, 8, 2), 8)
  conv.compile(keras.optimizers.Adam(1e-2), "mse")
  assert np.isfinite(conv.fit(xc, yc, epochs=1, verbose=0).history["loss"][0])
