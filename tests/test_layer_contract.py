"""The contract every tfkaf layer keeps, checked for each of them.

Build and call (finite values, the documented output shape), a
get_config/from_config round trip and a `.keras` save/load round trip that
give the same outputs, the mixed_float16 policy (float16 outputs, float32
weights), a symbolic batch dimension, and a `lipschitz_constant()` that
bounds the measured ratios |f(x) - f(y)| / |x - y|.
"""

import keras
import numpy as np
import pytest

from tfkaf import layers

INPUT_SHAPE = (3, 5, 4)

# name -> (factory, output shape for INPUT_SHAPE, Lipschitz constant known).
CASES = {
    "KAF": (lambda **kw: layers.KAF(D=6, **kw), INPUT_SHAPE, True),
    "KAF_channels_first": (lambda **kw: layers.KAF(
        D=5, kernel="softplus", axis=1, **kw), INPUT_SHAPE, True),
    "KAF2D": (lambda **kw: layers.KAF2D(D=4, **kw), (3, 5, 2), True),
    "DeepBSpline": (lambda **kw: layers.DeepBSpline(
        size=9, range=2.0, explicit_linear=True, slope_min=-1.0,
        slope_max=2.0, tv2=1e-3, **kw), INPUT_SHAPE, True),
    "LGReLU": (lambda **kw: layers.LGReLU(axis=1, **kw), INPUT_SHAPE, True),
    "Maxout": (lambda **kw: layers.Maxout(pieces=3, **kw), INPUT_SHAPE,
               True),
    "PReLU": (lambda **kw: layers.PReLU(shared_axes=[1], **kw), INPUT_SHAPE,
              True),
    "Activation": (lambda **kw: layers.Activation(
        {"name": "leaky_relu", "negative_slope": 0.2}, **kw), INPUT_SHAPE,
                   True),
    "Activation_composed": (lambda **kw: layers.Activation(
        "tanh+norm:z", **kw), INPUT_SHAPE, False),
    "Activation_glu": (lambda **kw: layers.Activation("glu", **kw),
                       (3, 5, 2), False),
}


def _inputs(seed=0, batch=INPUT_SHAPE[0]):
  rs = np.random.RandomState(seed)
  return (rs.randn(batch, *INPUT_SHAPE[1:]) * 1.5).astype(np.float32)


def _built(name, seed=1):
  """The layer, built on INPUT_SHAPE, with random weights."""
  layer = CASES[name][0]()
  layer.build(INPUT_SHAPE)
  rs = np.random.RandomState(seed)
  layer.set_weights([(rs.randn(*w.shape) * 0.5).astype(np.float32)
                     for w in layer.get_weights()])
  return layer


def _model(layer):
  inputs = keras.Input(INPUT_SHAPE[1:])
  return keras.Model(inputs, layer(inputs))


def test_every_layer_is_covered():
  exported = {obj for obj in vars(layers).values()
              if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)}
  assert exported == {type(make()) for make, _, _ in CASES.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_call_is_finite_with_the_documented_shape(name):
  layer = _built(name)
  y = np.asarray(layer(_inputs()))
  assert y.shape == CASES[name][1]
  assert np.all(np.isfinite(y))
  assert tuple(layer.compute_output_shape(INPUT_SHAPE)) == CASES[name][1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip_gives_the_same_outputs(name):
  layer = _built(name)
  config = layer.get_config()
  clone = type(layer).from_config(config)
  assert clone.get_config() == config
  clone.build(INPUT_SHAPE)
  clone.set_weights(layer.get_weights())
  x = _inputs()
  np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_file_round_trip_gives_the_same_outputs(name, tmp_path):
  model = _model(_built(name))
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  assert type(loaded.layers[-1]) is type(model.layers[-1])
  assert loaded.layers[-1].get_config() == model.layers[-1].get_config()
  x = _inputs()
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_float16_computes_in_float16_with_float32_weights(name):
  layer = CASES[name][0](dtype="mixed_float16")
  y = layer(_inputs())
  assert y.dtype == "float16"
  assert np.all(np.isfinite(np.asarray(y, np.float32)))
  for weight in layer.weights:
    assert weight.dtype == "float32", weight.path


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_batch_dimension(name):
  layer = _built(name)
  model = _model(layer)
  assert model.output.shape[0] is None
  for batch in (1, 7):
    x = _inputs(seed=batch, batch=batch)
    y = model.predict(x, verbose=0)
    assert y.shape == (batch,) + CASES[name][1][1:]
    np.testing.assert_allclose(y, np.asarray(layer(x)), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lipschitz_constant_bounds_the_measured_ratios(name):
  layer = _built(name)
  if not CASES[name][2]:
    with pytest.raises(ValueError, match="no Lipschitz constant known"):
      layer.lipschitz_constant()
    return
  bound = layer.lipschitz_constant()
  assert isinstance(bound, float) and np.isfinite(bound) and bound >= 0
  x = _inputs(seed=2, batch=64)
  dx = _inputs(seed=3, batch=64) * 1e-2
  dy = np.asarray(layer(x + dx)) - np.asarray(layer(x))
  ratio = (np.linalg.norm(dy.reshape(64, -1), axis=1)
           / np.linalg.norm(dx.reshape(64, -1), axis=1))
  assert ratio.max() <= bound * (1 + 1e-3)
