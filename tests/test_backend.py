"""tfkaf on a Keras backend other than TensorFlow: one clear error."""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkaf

_MESSAGE = "KERAS_BACKEND=tensorflow"

_LAYERS = [
    lambda: tfkaf.layers.KAF(), lambda: tfkaf.layers.KAF2D(),
    lambda: tfkaf.layers.DeepBSpline(), lambda: tfkaf.layers.LGReLU(),
    lambda: tfkaf.layers.Maxout(), lambda: tfkaf.layers.PReLU(),
    lambda: tfkaf.layers.Activation("tanh+norm:z"),
]


class _ForeignTensor:
  """Stands in for another backend's array (a JAX or PyTorch tensor)."""

  def __array__(self, dtype=None, copy=None):
    return np.zeros(3, dtype or np.float32)


@pytest.fixture
def jax_backend(monkeypatch):
  """Keras reporting the JAX backend, recognising `_ForeignTensor`."""
  monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
  real = keras.ops.is_tensor
  monkeypatch.setattr(keras.ops, "is_tensor",
                      lambda x: isinstance(x, _ForeignTensor) or real(x))


@pytest.mark.parametrize("make", _LAYERS)
def test_layers_refuse_another_backend(jax_backend, make):
  del jax_backend
  with pytest.raises(RuntimeError, match=_MESSAGE) as info:
    make()
  assert "'jax' backend" in str(info.value)
  assert "tfkaf.layers." in str(info.value)


def test_activation_refuses_another_backends_tensor(jax_backend):
  del jax_backend
  with pytest.raises(RuntimeError, match=_MESSAGE):
    tfkaf.activations.get("mish")(_ForeignTensor())
  # NumPy input still works: it becomes a TensorFlow tensor.
  y = tfkaf.activations.get("relu")(np.array([-1.0, 2.0], np.float32))
  np.testing.assert_allclose(tf.convert_to_tensor(y).numpy(), [0.0, 2.0])


def test_tensorflow_backend_is_unaffected():
  layer = tfkaf.layers.KAF()
  assert layer(tf.zeros((2, 3))).shape == (2, 3)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed")
def test_real_jax_backend_in_a_subprocess():
  code = ("import tfkaf\n"
          "try:\n  tfkaf.layers.KAF()\n"
          "except RuntimeError as e:\n  print(e)\n")
  result = subprocess.run([sys.executable, "-P", "-c", code],
                          env=dict(os.environ, KERAS_BACKEND="jax"),
                          capture_output=True, text=True, timeout=600,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _MESSAGE in result.stdout
