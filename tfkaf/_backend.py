"""tfkaf runs on Keras's TensorFlow backend.

Its ops are TensorFlow custom ops and its layers call them, so a Keras
running on another backend (JAX, PyTorch) cannot train or save a model that
uses them. The check is made where a user first meets tfkaf: constructing a
layer, or calling an activation on another backend's tensor.
"""

import keras
import tensorflow as tf

__all__ = ["require_tensorflow_backend", "require_tensorflow_tensor"]


def _message(what, backend):
  return (f"{what} needs Keras's TensorFlow backend, and Keras is running on "
          f"the {backend!r} backend: set KERAS_BACKEND=tensorflow before "
          "Keras is imported (tfkaf's ops are TensorFlow custom ops; other "
          "backends are not supported yet).")


def require_tensorflow_backend(what):
  """Raises RuntimeError naming `what` unless Keras runs on TensorFlow."""
  backend = keras.backend.backend()
  if backend != "tensorflow":
    raise RuntimeError(_message(what, backend))


def require_tensorflow_tensor(x, what):
  """Raises RuntimeError if `x` is a tensor of another Keras backend.

  NumPy arrays and Python numbers are accepted on any backend (they become
  TensorFlow tensors); a JAX or PyTorch tensor is refused by name.
  """
  backend = keras.backend.backend()
  if (backend != "tensorflow" and not tf.is_tensor(x)
      and keras.ops.is_tensor(x)):
    raise RuntimeError(_message(what, backend))
