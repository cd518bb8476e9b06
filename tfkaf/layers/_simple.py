"""theanets' trainable activations (`LGReLU`, `Maxout`) and `Activation`."""

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _backend
from tfkaf import activations as activations_lib
from tfkaf.layers import _common

__all__ = ["Activation", "LGReLU", "Maxout", "PReLU"]


class _PerChannel(_common.Layer):
  """Base of the elementwise layers with per-channel parameters."""

  _layer_name = "Layer"

  def __init__(self, axis=-1, **kwargs):
    super().__init__(**kwargs)
    self.axis = _common.check_axis(axis)
    self.supports_masking = True

  def _add_param(self, name, shape, initializer, regularizer, constraint):
    variable = self.add_weight(name=name, shape=shape,
                               initializer=initializer,
                               regularizer=regularizer,
                               constraint=constraint,
                               dtype=self.variable_dtype, autocast=False)
    return _common.mark_activation_variable(variable)

  def _start_build(self, input_shape):
    self._axis, channels = _common.channel_count(self._layer_name, self.axis,
                                                 input_shape)
    self.input_spec = keras.layers.InputSpec(ndim=len(input_shape),
                                             axes={self._axis: channels})
    return channels

  def _per_channel(self, variable, inputs, extra=()):
    """The [C, *extra] variable reshaped to broadcast against the input."""
    shape = _common.broadcast_shape(len(inputs.shape), self._axis,
                                    variable.shape[0]) + list(extra)
    return tf.reshape(tf.cast(variable, inputs.dtype), shape)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class LGReLU(_PerChannel):
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

  _layer_name = "LGReLU"

  def __init__(self, axis=-1, gain_initializer="ones",
               leak_initializer=None, gain_regularizer=None,
               leak_regularizer=None, gain_constraint=None,
               leak_constraint=None, **kwargs):
    super().__init__(axis=axis, **kwargs)
    if leak_initializer is None:
      leak_initializer = keras.initializers.Constant(0.1)
    self.gain_initializer = keras.initializers.get(gain_initializer)
    self.leak_initializer = keras.initializers.get(leak_initializer)
    self.gain_regularizer = keras.regularizers.get(gain_regularizer)
    self.leak_regularizer = keras.regularizers.get(leak_regularizer)
    self.gain_constraint = keras.constraints.get(gain_constraint)
    self.leak_constraint = keras.constraints.get(leak_constraint)

  def build(self, input_shape):
    channels = self._start_build(input_shape)
    self.gain = self._add_param("gain", (channels,), self.gain_initializer,
                                self.gain_regularizer, self.gain_constraint)
    self.leak = self._add_param("leak", (channels,), self.leak_initializer,
                                self.leak_regularizer, self.leak_constraint)

  def call(self, inputs):
    g = self._per_channel(self.gain, inputs)
    r = self._per_channel(self.leak, inputs)
    return tf.nn.relu(g * inputs) - tf.nn.relu(-r * inputs)

  def get_config(self):
    config = super().get_config()
    config.update({
        "axis": self.axis,
        "gain_initializer": keras.initializers.serialize(
            self.gain_initializer),
        "leak_initializer": keras.initializers.serialize(
            self.leak_initializer),
        "gain_regularizer": keras.regularizers.serialize(
            self.gain_regularizer),
        "leak_regularizer": keras.regularizers.serialize(
            self.leak_regularizer),
        "gain_constraint": keras.constraints.serialize(self.gain_constraint),
        "leak_constraint": keras.constraints.serialize(self.leak_constraint),
    })
    return config


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class PReLU(keras.layers.PReLU):
  """Parametric ReLU (theanets' prelu): `keras.layers.PReLU` as a tfkaf layer.

      f(x) = x for x >= 0, alpha * x otherwise

  Same arguments and defaults as `keras.layers.PReLU` (alpha_initializer
  "zeros", shared_axes, ...); registered under the package "tfkaf", and its
  `alpha` counts as an activation parameter (`tfkaf.activation_variables`,
  `tfkaf.training.MultiOptimizer`), which the Keras layer's does not.
  """

  def __init__(self, **kwargs):
    _backend.require_tensorflow_backend("tfkaf.layers.PReLU")
    super().__init__(**kwargs)

  def build(self, input_shape):
    super().build(input_shape)
    _common.mark_activation_variable(self.alpha)


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class Maxout(_PerChannel):
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

  _layer_name = "Maxout"

  def __init__(self, pieces=2, axis=-1, use_intercept=True,
               slopes_initializer=None, intercepts_initializer="zeros",
               slopes_regularizer=None, slopes_constraint=None,
               intercepts_regularizer=None, intercepts_constraint=None,
               **kwargs):
    super().__init__(axis=axis, **kwargs)
    self.pieces = _common.check_int("pieces", pieces, 1)
    self.use_intercept = bool(use_intercept)
    self.slopes_initializer = (None if slopes_initializer is None else
                               keras.initializers.get(slopes_initializer))
    self.intercepts_initializer = keras.initializers.get(
        intercepts_initializer)
    self.slopes_regularizer = keras.regularizers.get(slopes_regularizer)
    self.slopes_constraint = keras.constraints.get(slopes_constraint)
    self.intercepts_regularizer = keras.regularizers.get(
        intercepts_regularizer)
    self.intercepts_constraint = keras.constraints.get(intercepts_constraint)

  def build(self, input_shape):
    channels = self._start_build(input_shape)
    initializer = self.slopes_initializer
    if initializer is None:
      initializer = _common.RowInitializer(
          np.linspace(0.0, 1.0, self.pieces) if self.pieces > 1 else [1.0])
    self.slopes = self._add_param("slopes", (channels, self.pieces),
                                  initializer, self.slopes_regularizer,
                                  self.slopes_constraint)
    if self.use_intercept:
      self.intercepts = self._add_param(
          "intercepts", (channels, self.pieces), self.intercepts_initializer,
          self.intercepts_regularizer, self.intercepts_constraint)

  def call(self, inputs):
    m = self._per_channel(self.slopes, inputs, extra=(self.pieces,))
    pieces = inputs[..., None] * m
    if self.use_intercept:
      pieces = pieces + self._per_channel(self.intercepts, inputs,
                                          extra=(self.pieces,))
    return tf.reduce_max(pieces, axis=-1)

  def get_config(self):
    config = super().get_config()
    config.update({
        "pieces": self.pieces,
        "axis": self.axis,
        "use_intercept": self.use_intercept,
        "slopes_initializer": (
            None if self.slopes_initializer is None else
            keras.initializers.serialize(self.slopes_initializer)),
        "intercepts_initializer": keras.initializers.serialize(
            self.intercepts_initializer),
        "slopes_regularizer": keras.regularizers.serialize(
            self.slopes_regularizer),
        "slopes_constraint": keras.constraints.serialize(
            self.slopes_constraint),
        "intercepts_regularizer": keras.regularizers.serialize(
            self.intercepts_regularizer),
        "intercepts_constraint": keras.constraints.serialize(
            self.intercepts_constraint),
    })
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

  def get_config(self):
    config = super().get_config()
    config["activation"] = activations_lib.serialize(self.activation)
    return config
