"""The fused ops inside XLA: custom calls into the same kernels.

Inside `tf.function(jit_compile=True)` (and Keras models compiled with
`jit_compile`) every tfkaf op and gradient op lowers to an XLA custom call
whose handler runs the fused kernel, so the values are the fused op's, bit
for bit where XLA hands the kernel the same inputs. The composite fallback
(TFKAF_XLA_FALLBACK=1) is checked in a subprocess, as is the import of tfkaf
after TensorFlow has already compiled with XLA.
"""

import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkaf import _loader
from tfkaf import _xla
from tfkaf import layers
from tfkaf import ops

_RAW = _loader.load_ops()

# (name, forward, gradient op, parameter shape for C channels, custom-call
# target); each forward takes (x, param, axis).
_OPS = {
    "kaf": (lambda x, p, axis: ops.kaf(x, p, axis=axis),
            lambda dy, x, p, axis: _RAW.tfkaf_kaf_grad(dy, x, p, axis=axis),
            lambda c: (c, 20), "tfkaf_kaf"),
    "kaf_relu": (lambda x, p, axis: ops.kaf(x, p, kernel="relu", axis=axis),
                 lambda dy, x, p, axis: _RAW.tfkaf_kaf_grad(
                     dy, x, p, kernel="relu", axis=axis),
                 lambda c: (c, 7), "tfkaf_kaf"),
    "kaf_softplus": (lambda x, p, axis: ops.kaf(x, p, kernel="softplus",
                                                axis=axis),
                     lambda dy, x, p, axis: _RAW.tfkaf_kaf_grad(
                         dy, x, p, kernel="softplus", axis=axis),
                     lambda c: (c, 5), "tfkaf_kaf"),
    "kaf2d": (lambda x, p, axis: ops.kaf2d(x, p, axis=axis),
              lambda dy, x, p, axis: _RAW.tfkaf_kaf2d_grad(dy, x, p,
                                                           axis=axis),
              lambda c: (c // 2, 100), "tfkaf_kaf2d"),
    "spline": (lambda x, p, axis: ops.linear_spline(x, p, -2.0, 2.0,
                                                    axis=axis),
               lambda dy, x, p, axis: _RAW.tfkaf_linear_spline_grad(
                   dy, x, p, x_min=-2.0, x_max=2.0, axis=axis),
               lambda c: (c, 51), "tfkaf_linear_spline"),
}

# x shape and channel axis: ranks 1-4, channels-last and channels-first,
# sizes that are no multiple of any vector width.
_LAYOUTS = [((6,), -1), ((37, 6), -1), ((5, 6, 11), 1), ((3, 6, 4, 5), 1),
            ((2, 3, 5, 6), -1)]

_TOLERANCE = {tf.float32: 1e-5, tf.float64: 1e-12, tf.float16: 2e-3,
              tf.bfloat16: 2e-2}


def _inputs(rng, name, shape, axis, dtype):
  x = rng.normal(0.0, 1.5, shape)
  param = rng.normal(0.0, 0.5, _OPS[name][2](shape[axis]))
  dy = rng.normal(size=shape if name != "kaf2d" else _halved(shape, axis))
  return tuple(tf.constant(v, dtype) for v in (x, param, dy))


def _halved(shape, axis):
  shape = list(shape)
  shape[axis] //= 2
  return tuple(shape)


def _forward_and_backward(name, axis):
  forward, gradient = _OPS[name][:2]

  def run(x, param, dy):
    return (forward(x, param, axis),) + tuple(gradient(dy, x, param, axis))
  return run


def test_the_fused_route_is_available_here():
  assert _xla.fused_available()
  assert layers.KAF().supports_jit and layers.DeepBSpline().supports_jit


@pytest.mark.parametrize("name", sorted(_OPS))
@pytest.mark.parametrize("shape,axis", _LAYOUTS)
def test_ops_inside_xla_equal_the_fused_ops(rng, name, shape, axis):
  x, param, dy = _inputs(rng, name, shape, axis, tf.float32)
  run = _forward_and_backward(name, axis)
  eager = run(x, param, dy)
  compiled = tf.function(run, jit_compile=True)
  for e, j in zip(eager, compiled(x, param, dy)):
    np.testing.assert_array_equal(j.numpy(), e.numpy())
  assert f'custom_call_target="{_OPS[name][3]}"' in (
      compiled.experimental_get_compiler_ir(x, param, dy)(stage="hlo"))


@pytest.mark.parametrize("name", ["kaf", "kaf2d", "spline"])
@pytest.mark.parametrize("dtype", [tf.float64, tf.float16, tf.bfloat16])
def test_every_dtype_inside_xla(rng, name, dtype):
  x, param, dy = _inputs(rng, name, (9, 4, 6), 1, dtype)
  run = _forward_and_backward(name, 1)
  for e, j in zip(run(x, param, dy),
                  tf.function(run, jit_compile=True)(x, param, dy)):
    assert j.dtype == dtype
    np.testing.assert_array_equal(j.numpy(), e.numpy())


@pytest.mark.parametrize("name", sorted(_OPS))
def test_special_values_inside_xla_equal_the_fused_ops(rng, name):
  # NaN, +-Inf, +-1e30 and subnormals reach the kernel unchanged.
  x, param, dy = _inputs(rng, name, (11, 6), -1, tf.float32)
  special = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-40, -1e-40,
                      0.0, 3.0, -3.0, 2.5], np.float32)
  x = tf.constant(np.tile(special[:, None], (1, 6)))
  run = _forward_and_backward(name, -1)
  for e, j in zip(run(x, param, dy),
                  tf.function(run, jit_compile=True)(x, param, dy)):
    np.testing.assert_array_equal(j.numpy(), e.numpy())


@pytest.mark.parametrize("name", ["kaf", "kaf2d", "spline"])
def test_gradients_through_the_tape_inside_xla(rng, name):
  x, param, _ = _inputs(rng, name, (16, 6), -1, tf.float32)
  forward = _OPS[name][0]

  def loss_and_grads(x, param):
    with tf.GradientTape() as tape:
      tape.watch([x, param])
      loss = tf.reduce_sum(tf.sin(forward(x, param, -1)))
    return [loss] + [tf.convert_to_tensor(g)
                     for g in tape.gradient(loss, [x, param])]

  for e, j in zip(loss_and_grads(x, param),
                  tf.function(loss_and_grads, jit_compile=True)(x, param)):
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["kaf", "kaf2d", "spline"])
def test_second_order_gradients_inside_xla(rng, name):
  x, param, _ = _inputs(rng, name, (8, 4), -1, tf.float64)
  forward = _OPS[name][0]

  def hessian_vector(x, param):
    with tf.GradientTape() as outer:
      outer.watch([x, param])
      with tf.GradientTape() as inner:
        inner.watch([x, param])
        loss = tf.reduce_sum(forward(x, param, -1) ** 2)
      gx, gp = inner.gradient(loss, [x, param])
      first = tf.reduce_sum(gx * x) + tf.reduce_sum(
          tf.convert_to_tensor(gp))
    return [tf.convert_to_tensor(g)
            for g in outer.gradient(first, [x, param])]

  for e, j in zip(hessian_vector(x, param),
                  tf.function(hessian_vector, jit_compile=True)(x, param)):
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["kaf", "kaf2d", "spline"])
def test_empty_tensors_inside_xla(rng, name):
  x, param, dy = _inputs(rng, name, (0, 6), -1, tf.float32)
  y, dx, dparam = tf.function(_forward_and_backward(name, -1),
                              jit_compile=True)(x, param, dy)
  assert y.shape == dy.shape and dx.shape == (0, 6)
  np.testing.assert_array_equal(dparam.numpy(), np.zeros(param.shape))


def test_parameter_gradients_inside_xla_are_deterministic(rng):
  for name in ("kaf", "kaf2d", "spline"):
    x, param, dy = _inputs(rng, name, (4096, 8), -1, tf.float32)
    compiled = tf.function(_forward_and_backward(name, -1), jit_compile=True)
    first = compiled(x, param, dy)[2].numpy()
    for _ in range(3):
      np.testing.assert_array_equal(compiled(x, param, dy)[2].numpy(), first)


@pytest.mark.parametrize("name,param_shape,message", [
    ("kaf", (3, 20), "channel count mismatch: alpha has 3 rows but x has 6 "
     "channels along axis -1"),
    ("kaf2d", (3, 10), "alpha's second dimension must be a perfect square"),
    ("spline", (6, 1), "coefficients must have at least 2 knots"),
])
def test_bad_inputs_raise_the_op_error_inside_xla(rng, name, param_shape,
                                                  message):
  # Unknown dimensions while tracing: the rule runs when XLA compiles, on
  # the real shapes, with the op's own message.
  forward = _OPS[name][0]
  spec = [tf.TensorSpec([None, None], tf.float32),
          tf.TensorSpec([None, None], tf.float32)]
  x = tf.constant(rng.normal(size=(5, 6)), tf.float32)
  param = tf.constant(rng.normal(size=param_shape), tf.float32)
  with pytest.raises(tf.errors.InvalidArgumentError) as eager:
    forward(x, param, -1)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message) as jit:
    tf.function(lambda x, p: forward(x, p, -1), input_signature=spec,
                jit_compile=True)(x, param)
  eager_message = re.sub(r"\{\{.*?\}\}\s*", "",
                         eager.value.message.split(" [Op:")[0])
  assert eager_message in jit.value.message


def test_bad_attributes_raise_the_op_error_inside_xla(rng):
  x = tf.constant(rng.normal(size=(5, 6)), tf.float32)
  alpha = tf.constant(rng.normal(size=(6, 20)), tf.float32)
  for fn in (lambda x, a: ops.kaf(x, a, boundary=-1.0),
             tf.function(lambda x, a: ops.kaf(x, a, boundary=-1.0),
                         jit_compile=True)):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                       match="boundary must be"):
      fn(x, alpha)


def _every_layer_model():
  inputs = keras.Input((12,))
  h = keras.layers.Dense(12)(inputs)
  for layer in (layers.KAF(D=10), layers.KAF(D=5, kernel="softplus"),
                layers.KAF2D(D=4), layers.DeepBSpline(size=11),
                layers.LGReLU(), layers.Maxout(), layers.PReLU(),
                layers.Activation("swish")):
    h = layer(h)
  return keras.Model(inputs, keras.layers.Dense(2)(h))


def test_keras_model_with_every_layer_compiles_with_xla_and_trains(rng):
  model = _every_layer_model()
  x = rng.normal(size=(64, 12)).astype(np.float32)
  y = np.stack([np.sin(x[:, 0]), x[:, 1] ** 2], axis=1).astype(np.float32)
  before = model(x).numpy()
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # Keras warns when it turns XLA off
    model.compile(keras.optimizers.Adam(1e-2), "mse", jit_compile=True)
  assert model.jit_compile is True
  np.testing.assert_allclose(model.predict(x, verbose=0), before, rtol=1e-5,
                             atol=1e-5)
  history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
  losses = history.history["loss"]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


_FRESH = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    tf.function(lambda t: tf.sin(t), jit_compile=True)(tf.ones([2]))
    import tfkaf  # after XLA has compiled: the late-load order
    from tfkaf import ops
    x = tf.constant(np.linspace(-3, 3, 24).reshape(4, 6), tf.float32)
    a = tf.constant(np.linspace(-1, 1, 120).reshape(6, 20), tf.float32)
    f = tf.function(lambda x, a: ops.kaf(x, a), jit_compile=True)
    np.testing.assert_array_equal(f(x, a).numpy(), ops.kaf(x, a).numpy())
    hlo = f.experimental_get_compiler_ir(x, a)(stage="hlo")
    print("custom_call" if 'custom_call_target="tfkaf_kaf"' in hlo
          else "composite")
    if len(sys.argv) > 1:
      loaded = tf.saved_model.load(sys.argv[1])
      out = loaded.serve(tf.constant(np.load(sys.argv[2])))
      np.save(sys.argv[3], out.numpy())
""")


def _fresh_python(tmp_path, *args, **env_extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env_extra)
  result = subprocess.run(
      [sys.executable, "-c", _FRESH] + [str(a) for a in args], env=env,
      capture_output=True, text=True, timeout=300, check=False,
      cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.slow
def test_late_import_and_a_jit_compiled_saved_model_in_a_fresh_process(
    rng, tmp_path):
  model = _every_layer_model()
  model.compile(keras.optimizers.Adam(1e-2), "mse", jit_compile=True)
  x = rng.normal(size=(32, 12)).astype(np.float32)
  model.fit(x, x[:, :2], epochs=1, verbose=0)
  model.export(str(tmp_path / "sm"), verbose=False)
  np.save(tmp_path / "x.npy", x)
  result = _fresh_python(tmp_path, tmp_path / "sm", tmp_path / "x.npy",
                         tmp_path / "y.npy")
  assert result.stdout.split() == ["custom_call"]
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                             model(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.slow
def test_fallback_switch_uses_the_composite_form_with_one_warning(tmp_path):
  script = textwrap.dedent("""
      import warnings
      import numpy as np
      import tensorflow as tf
      import tfkaf
      from tfkaf import layers, ops
      assert not layers.KAF().supports_jit
      x = tf.ones([4, 6])
      a = tf.ones([6, 20])
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
          f = tf.function(lambda x, a: ops.kaf(x, a), jit_compile=True)
          np.testing.assert_allclose(f(x, a).numpy(), ops.kaf(x, a).numpy(),
                                     rtol=1e-5)
      hlo = f.experimental_get_compiler_ir(x, a)(stage="hlo")
      assert "custom_call" not in hlo, hlo
      messages = [str(w.message) for w in caught if "tfkaf" in str(w.message)]
      assert len(messages) == 1, messages
      assert "TFKAF_XLA_FALLBACK is set" in messages[0], messages
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFKAF_XLA_FALLBACK="1")
  result = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=300,
                          check=False, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]

