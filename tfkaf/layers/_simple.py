"""theanets' trainable activations (`LGReLU`, `Maxout`) and `Activation`."""

import keras
import numpy as np
import tensorflow as tf

from tfkaf import activations as activations_lib
from tfkaf import lipschitz
from tfkaf.layers import _base
from tfkaf.layers import _common

__all__ = ["Activation", "LGReLU", "Maxout", "PReLU"]


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class LGReLU(_base.PerChannelActivation):
  """Rectified linear unit with trainable leak and gain (theanets' lgrelu).

      f(z) = max(0, g*z) - max(0, -r*z)

  with a gain g[c] and a leak rate r[c] per channel along `axis` (for
  g, r > 0: g*z for z > 0 and r*z for z < 0).

  Args:
    axis: channel axis (default -1).
    gain_initializer: default "ones".
    leak_initializer: default Constant(0.1) (theanets' leak start).
    gain_regularizer, leak_regularizer, gain_constraint, leak_constraint.
    **kwargs: base Layer arguments.

  Variables: `gain`, `leak` [C], float32.
  """

  def __init__(self, axis=-1, gain_initializer="ones",
               leak_initializer=None, gain_regularizer=None,
               leak_regularizer=None, gain_constraint=None,
               leak_constraint=None, **kwargs):
    super().__init__(axis=axis, **kwargs)
    if leak_initializer is None:
      leak_initializer = keras.initializers.Constant(0.1)
    self._weight_options("gain", gain_initializer, gain_regularizer,
                         gain_constraint)
    self._weight_options("leak", leak_initializer, leak_regularizer,
                         leak_constraint)

  def build_weights(self, channels):
    self.gain = self._add_param("gain", (channels,))
    self.leak = self._add_param("leak", (channels,))

  def call(self, inputs):
    g = self._per_channel(self.gain, inputs)
    r = self._per_channel(self.leak, inputs)
    return tf.nn.relu(g * inputs) - tf.nn.relu(-r * inputs)

  def lipschitz_constant(self):
    """The largest |slope| of f over channels: f has the slope
    max(g, 0) + min(r, 0) for z > 0 and min(g, 0) + max(r, 0) for z < 0
    (g and r for g, r >= 0)."""
    g = self.gain.numpy().astype(np.float64)
    r = self.leak.numpy().astype(np.float64)
    positive = np.maximum(g, 0.0) + np.minimum(r, 0.0)
    negative = np.minimum(g, 0.0) + np.maximum(r, 0.0)
    return float(np.max(np.maximum(np.abs(positive), np.abs(negative))))


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class PReLU(_base.ActivationWeights, keras.layers.PReLU):
  """Parametric ReLU (theanets' prelu): `keras.layers.PReLU` as a tfkaf layer.

      f(x) = x for x >= 0, alpha * x otherwise

  Same arguments and defaults as `keras.layers.PReLU` (alpha_initializer
  "zeros", shared_axes, ...); registered under the package "tfkaf", and its
  `alpha` counts as an activation parameter (`tfkaf.activation_variables`,
  `tfkaf.optimizers.MultiOptimizer`), which the Keras layer's does not.
  """

  def lipschitz_constant(self):
    """max(1, max |alpha|): the largest slope of f."""
    return max(1.0, float(np.max(np.abs(self.alpha.numpy()))))


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class Maxout(_base.PerChannelActivation):
  """Piecewise-linear activation with trainable pieces (theanets' maxout).

      f(z) = max_i (m[c, i] * z + b[c, i]),   i = 0..pieces-1

  per channel c along `axis` (an elementwise activation, unlike maxout
  *units*, which pool over channels). The intercepts b start at 0, so the
  layer starts as max_i m_i z; with `use_intercept=False` it stays so
  (then only the smallest and largest slopes matter).

  Args:
    pieces: number of linear pieces (>= 1).
    axis: channel axis (default -1).
    use_intercept: train intercepts b (default True).
    slopes_initializer: default None: the slopes linspace(0, 1, pieces) for
      every channel, so that the layer starts as a ReLU (pieces >= 2).
    intercepts_initializer: default "zeros".
    slopes_regularizer, slopes_constraint, intercepts_regularizer,
    intercepts_constraint.
    **kwargs: base Layer arguments.

  Variables: `slopes` [C, pieces] (and `intercepts` [C, pieces]), float32.
  """

  def __init__(self, pieces=2, axis=-1, use_intercept=True,
               slopes_initializer=None, intercepts_initializer="zeros",
               slopes_regularizer=None, slopes_constraint=None,
               intercepts_regularizer=None, intercepts_constraint=None,
               **kwargs):
    super().__init__(axis=axis, **kwargs)
    self.pieces = _common.check_int("pieces", pieces, 1)
    self.use_intercept = bool(use_intercept)
    self._weight_options("slopes", slopes_initializer, slopes_regularizer,
                         slopes_constraint)
    self._weight_options("intercepts", intercepts_initializer,
                         intercepts_regularizer, intercepts_constraint)

  def build_weights(self, channels):
    initializer = self.slopes_initializer
    if initializer is None:
      initializer = _common.RowInitializer(
          np.linspace(0.0, 1.0, self.pieces) if self.pieces > 1 else [1.0])
    self.slopes = self._add_param("slopes", (channels, self.pieces),
                                  initializer)
    if self.use_intercept:
      self.intercepts = self._add_param("intercepts",
                                        (channels, self.pieces))

  def call(self, inputs):
    m = self._per_channel(self.slopes, inputs, extra=(self.pieces,))
    pieces = inputs[..., None] * m
    if self.use_intercept:
      pieces = pieces + self._per_channel(self.intercepts, inputs,
                                          extra=(self.pieces,))
    return tf.reduce_max(pieces, axis=-1)

  def lipschitz_constant(self):
    """max |m| over channels and pieces: the largest slope of f."""
    return float(np.max(np.abs(self.slopes.numpy())))

  def get_config(self):
    config = super().get_config()
    config.update({"pieces": self.pieces, "use_intercept": self.use_intercept})
    return config


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class Activation(_common.Layer):
  """Applies a fixed activation of `tfkaf.activations` as a layer.

  Args:
    activation: anything `tfkaf.activations.get` accepts: a name ("mish",
      "rect:min"), a composed name ("tanh+norm:z"), a config dict, a
      registered function or `Activation` object. Saving the layer needs a
      registered activation (`tfkaf.activations.serialize` must accept it).
    **kwargs: base Layer arguments.
  """

  def __init__(self, activation, **kwargs):
    super().__init__(**kwargs)
    self.activation = activations_lib.get(activation)
    self.supports_masking = True

  def call(self, inputs):
    return self.activation(inputs)

  def compute_output_shape(self, input_shape):
    # Most activations keep the shape; a few (glu) do not: trace it.
    spec = tf.TensorSpec([None if d is None else int(d) for d in input_shape],
                         self.compute_dtype)
    concrete = tf.function(self.activation).get_concrete_function(spec)
    return tuple(concrete.structured_outputs.shape.as_list())

  def lipschitz_constant(self):
    """The activation's constant, from its registry entry (ValueError when
    none is known)."""
    return lipschitz.activation_constant(self.activation)

  def get_config(self):
    config = super().get_config()
    config["activation"] = activations_lib.serialize(self.activation)
    return config
