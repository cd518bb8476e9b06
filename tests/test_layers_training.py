"""Tests of tfkaf.optimizers and tfkaf.lipschitz (also as tfkaf.training).

The DeepSplines recipe (activation parameters with Adam, weights with SGD)
through `MultiOptimizer` and `model.fit`, checked against updates computed
here by hand; `.keras` round trips keep both optimizers' state; and
`lipschitz_bound` against its formula and against measured ratios.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkaf import activations
from tfkaf import layers
from tfkaf import lipschitz
from tfkaf import optimizers
from tfkaf import training


def _set_random_weights(model, seed=0, scale=0.5):
  rs = np.random.RandomState(seed)
  model.set_weights([(rs.randn(*w.shape) * scale).astype(w.dtype)
                     for w in model.get_weights()])


def small_model(seed=0):
  model = keras.Sequential([
      keras.Input((5,)),
      keras.layers.Dense(6),
      layers.PReLU(),
      layers.DeepBSpline(size=9, range=2.0, explicit_linear=True),
      layers.KAF(D=6),
      keras.layers.Dense(4),
      layers.LGReLU(),
      layers.Maxout(3),
      keras.layers.Dense(1),
  ])
  _set_random_weights(model, seed)
  return model


def _data(n=32, seed=1):
  rs = np.random.RandomState(seed)
  x = rs.randn(n, 5).astype(np.float32)
  y = (np.sin(x[:, :1]) + x[:, 1:2] ** 2).astype(np.float32)
  return x, y


def _adam_first_step(w, g, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
  m = (1 - beta_1) * g
  v = (1 - beta_2) * g * g
  alpha = lr * np.sqrt(1 - beta_2) / (1 - beta_1)
  return w - alpha * m / (np.sqrt(v) + epsilon)


# --------------------------------------------------------------------------
# activation_variables
# --------------------------------------------------------------------------


def test_activation_variables_are_the_activation_layers_parameters():
  model = small_model()
  acts = training.activation_variables(model)
  assert [v.name for v in acts] == ["alpha", "coefficients", "b1", "b0",
                                    "alpha", "gain", "leak", "slopes",
                                    "intercepts"]
  expected = [v for layer in model.layers
              if isinstance(layer, layers.TRAINABLE_ACTIVATION_LAYERS)
              for v in layer.trainable_weights]
  assert [id(v) for v in acts] == [id(v) for v in expected]
  weights = training.weight_variables(model)
  assert len(weights) + len(training.activation_variables(model)) == len(
      model.trainable_variables)
  assert all(not training.is_activation_variable(v) for v in weights)
  # Nested models and single layers work too.
  outer = keras.Sequential([keras.Input((5,)), model, keras.layers.Dense(4),
                            layers.KAF2D(D=3)])
  assert len(training.activation_variables(outer)) == 10
  assert training.activation_variables(model.layers[2]) == list(
      model.layers[2].trainable_variables)


def test_activation_variables_needs_a_built_model():
  model = keras.Sequential([layers.KAF()])
  with pytest.raises(ValueError, match="not built"):
    training.activation_variables(model)


# --------------------------------------------------------------------------
# MultiOptimizer
# --------------------------------------------------------------------------


def test_fit_updates_activations_with_adam_and_weights_with_sgd():
  model = small_model()
  x, y = _data()
  before = [v.numpy() for v in model.trainable_variables]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
  grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

  optimizer = training.MultiOptimizer(
      optimizer=keras.optimizers.SGD(0.1),
      activation_optimizer=keras.optimizers.Adam(1e-2))
  model.compile(optimizer, "mse")
  model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)

  moved_by_adam = 0
  for v, w, g in zip(model.trainable_variables, before, grads):
    if training.is_activation_variable(v):
      expected = _adam_first_step(w, g, 1e-2)
      moved_by_adam += 1
    else:
      expected = w - 0.1 * g
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-4, atol=1e-5,
                               err_msg=v.path)
  assert moved_by_adam == 9
  assert int(optimizer.iterations.numpy()) == 1
  assert int(optimizer.optimizer.iterations.numpy()) == 1
  assert int(optimizer.activation_optimizer.iterations.numpy()) == 1
  # Adam's state covers exactly the activation group.
  assert len(optimizer.activation_optimizer._trainable_variables) == 9  # pylint: disable=protected-access


def test_multi_optimizer_learns():
  model = small_model()
  x, y = _data(64)
  model.compile(training.MultiOptimizer(keras.optimizers.SGD(0.02),
                                        keras.optimizers.Adam(1e-2)), "mse")
  history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
  losses = history.history["loss"]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_explicit_activation_variables_and_config():
  model = small_model()
  kernel = model.layers[0].kernel
  optimizer = training.MultiOptimizer("sgd", {"class_name": "Adam",
                                              "config": {"learning_rate": 0.5}},
                                      activation_variables=[kernel])
  config = optimizer.get_config()
  assert config["activation_variables"] == [kernel.path]
  clone = training.MultiOptimizer.from_config(config)
  assert clone.get_config()["activation_variables"] == [kernel.path]
  assert isinstance(clone.optimizer, keras.optimizers.SGD)
  assert isinstance(clone.activation_optimizer, keras.optimizers.Adam)
  assert float(clone.activation_optimizer.learning_rate.numpy()) == 0.5
  x, y = _data()
  before = [v.numpy() for v in model.trainable_variables]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
  grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
  model.compile(optimizer, "mse")
  model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
  for v, w, g in zip(model.trainable_variables, before, grads):
    expected = (_adam_first_step(w, g, 0.5) if v is kernel
                else w - 0.01 * g)  # SGD's default learning rate
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-4, atol=1e-5,
                               err_msg=v.path)
  assert optimizer.is_routed_to_activation_optimizer(kernel)
  assert not optimizer.is_routed_to_activation_optimizer(
      model.layers[3].alpha)


def test_multi_optimizer_argument_checks():
  sgd = keras.optimizers.SGD()
  with pytest.raises(ValueError, match="distinct"):
    training.MultiOptimizer(sgd, sgd)
  with pytest.raises(ValueError, match="clipnorm"):
    training.MultiOptimizer("sgd", "adam", clipnorm=1.0)
  with pytest.raises(ValueError, match="loss_scale_factor"):
    training.MultiOptimizer(keras.optimizers.SGD(loss_scale_factor=4.0),
                            "adam")
  model = small_model()
  optimizer = training.MultiOptimizer("sgd", "adam",
                                      activation_variables=["nope/kernel"])
  with pytest.raises(ValueError, match="nope/kernel"):
    optimizer.build(model.trainable_variables)


def test_learning_rate_is_the_weight_optimizers():
  optimizer = training.MultiOptimizer(keras.optimizers.SGD(0.3),
                                      keras.optimizers.Adam(1e-3))
  assert float(optimizer.learning_rate.numpy()) == pytest.approx(0.3)
  model = small_model()
  x, y = _data()
  model.compile(optimizer, "mse")
  model.fit(x, y, epochs=1, verbose=0, callbacks=[
      keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.05)])
  assert float(optimizer.optimizer.learning_rate.numpy()) == pytest.approx(
      0.05)
  assert float(optimizer.activation_optimizer.learning_rate.numpy()
              ) == pytest.approx(1e-3)


def test_keras_file_keeps_the_multi_optimizer_and_its_state(tmp_path):
  model = small_model()
  x, y = _data()
  model.compile(training.MultiOptimizer(keras.optimizers.SGD(0.05,
                                                             momentum=0.9),
                                        keras.optimizers.Adam(1e-2)), "mse")
  model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
  path = tmp_path / "multi.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded.optimizer, training.MultiOptimizer)
  assert isinstance(loaded.optimizer.activation_optimizer,
                    keras.optimizers.Adam)
  assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
  for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
  loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
  for a, b in zip(model.trainable_variables, loaded.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_multi_optimizer_under_mixed_precision():
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    model = small_model()
    x, y = _data()
    model.compile(training.MultiOptimizer(keras.optimizers.SGD(0.01),
                                          keras.optimizers.Adam(1e-2)), "mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer,
                      training.MultiOptimizer)
    acts = training.activation_variables(model)
    before = [v.numpy() for v in acts]
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for v, b in zip(acts, before):
      assert v.dtype == "float32"
      # Adam moves every activation parameter that gets a gradient.
      assert np.abs(v.numpy() - b).max() > 1e-3, v.path
  finally:
    keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------
# lipschitz_bound
# --------------------------------------------------------------------------


def _empirical_lipschitz(model, shape, trials=200, seed=0):
  rs = np.random.RandomState(seed)
  x = rs.randn(trials, *shape).astype(np.float32) * 2
  dx = rs.randn(trials, *shape).astype(np.float32) * 1e-2
  y0 = model(x).numpy().reshape(trials, -1)
  y1 = model(x + dx).numpy().reshape(trials, -1)
  ratio = (np.linalg.norm(y1 - y0, axis=1)
           / np.linalg.norm(dx.reshape(trials, -1), axis=1))
  return ratio.max()


def test_lipschitz_bound_dense_deepbspline_stack():
  model = keras.Sequential([
      keras.Input((4,)),
      keras.layers.Dense(8),
      layers.DeepBSpline(size=11, range=2.0),
      keras.layers.Dense(8),
      layers.DeepBSpline(size=11, range=2.0, slope_min=-0.5, slope_max=0.8),
      keras.layers.Dense(2),
  ])
  _set_random_weights(model, 2)
  k = [l.kernel.numpy() for l in model.layers if hasattr(l, "kernel")]
  s = [l for l in model.layers if isinstance(l, layers.DeepBSpline)]
  c = s[0].coefficients.numpy()
  expected = (np.linalg.norm(k[0], 2) * np.linalg.norm(k[1], 2)
              * np.linalg.norm(k[2], 2)
              * np.abs(np.diff(c, axis=1) / s[0].T).max()
              * s[1].lipschitz_constants().numpy().max())
  bound = training.lipschitz_bound(model)
  assert isinstance(bound, float)
  np.testing.assert_allclose(bound, expected, rtol=1e-5)
  assert s[1].lipschitz_constants().numpy().max() <= 0.8 + 1e-6
  assert _empirical_lipschitz(model, (4,)) <= bound * (1 + 1e-4)
  names = [name for name, _ in training.lipschitz_factors(model)]
  assert names == [l.name for l in model.layers]


def test_lipschitz_bound_conv_and_activations():
  model = keras.Sequential([
      keras.Input((8, 8, 2)),
      keras.layers.Conv2D(3, 3, padding="same", activation="relu"),
      layers.DeepBSpline(size=9, init="tanh"),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(4, 3, strides=2, activation="tanh"),
      layers.LGReLU(),
      layers.Maxout(2),
      keras.layers.Activation("sigmoid"),
      layers.Activation("leaky_relu"),
      layers.KAF(D=5),
      keras.layers.Flatten(),
      keras.layers.Dense(3),
  ])
  _set_random_weights(model, 4, scale=0.3)
  factors = dict(training.lipschitz_factors(model))
  kernel = model.layers[0].kernel.numpy()
  np.testing.assert_allclose(
      factors[model.layers[0].name],
      3 * np.linalg.norm(kernel.reshape(-1, 3), 2), rtol=1e-5)
  np.testing.assert_allclose(factors[model.layers[6].name], 0.25)
  bound = training.lipschitz_bound(model)
  assert np.isfinite(bound) and bound > 0
  assert _empirical_lipschitz(model, (8, 8, 2), trials=50) <= bound


def test_lipschitz_bound_refuses_what_it_cannot_bound():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3),
                            layers.Activation("hard_shrink")])
  with pytest.raises(ValueError, match="hard_shrink"):
    training.lipschitz_bound(model)
  inputs = keras.Input((3,))
  merged = keras.layers.Add()([keras.layers.Dense(3)(inputs), inputs])
  with pytest.raises(ValueError, match="Add"):
    training.lipschitz_bound(keras.Model(inputs, merged))
  with pytest.raises(ValueError, match="not built"):
    training.lipschitz_bound(keras.Sequential([keras.layers.Dense(2)]))


def test_lipschitz_bound_asks_custom_activations_their_constant():
  @activations.register("test_scaled_sin", lipschitz=lambda scale=3.0: abs(scale))
  def scaled_sin(x, scale=3.0):
    return scale * tf.sin(x)

  try:
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(3, activation=scaled_sin),
        layers.Activation({"name": "test_scaled_sin", "scale": -0.5}),
    ])
    _set_random_weights(model, 5)
    kernel = model.layers[0].kernel.numpy()
    np.testing.assert_allclose(training.lipschitz_bound(model),
                               np.linalg.norm(kernel, 2) * 3.0 * 0.5,
                               rtol=1e-6)
  finally:
    activations._unregister("test_scaled_sin")  # pylint: disable=protected-access


def test_training_re_exports_optimizers_and_lipschitz():
  for name in training.__all__:
    module = lipschitz if name.startswith("lipschitz") else optimizers
    assert getattr(training, name) is getattr(module, name), name


def test_lgrelu_lipschitz_constant_with_negative_parameters():
  layer = layers.LGReLU()
  layer.build((None, 3))
  layer.set_weights([np.array([0.5, -2.0, 1.0], np.float32),
                     np.array([-3.0, 0.25, 0.5], np.float32)])
  z = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]], np.float32)
  slopes = np.abs(layer(z).numpy() / z)  # f(0) = 0
  # Slopes for z > 0: max(g, 0) + min(r, 0); for z < 0: min(g, 0) + max(r, 0)
  np.testing.assert_allclose(slopes, [[2.5, 0.0, 1.0], [0.0, 1.75, 0.5]])
  assert layer.lipschitz_constant() == 2.5
