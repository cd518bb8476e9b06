"""The base of tfkaf's trainable activation layers.

`ActivationWeights` makes every weight of a layer an activation parameter
(the group `tfkaf.activation_variables` returns and `MultiOptimizer` routes
to its activation optimizer) and declares `lipschitz_constant()`, which
`tfkaf.lipschitz_bound` asks each layer for. `PerChannelActivation` adds
what KAF, KAF2D, DeepBSpline, LGReLU and Maxout share: the channel axis and
count, the InputSpec that pins them, float32 weights (also under a mixed
precision policy) and the config of each weight's initializer, regularizer
and constraint, and `supports_jit` for the layers that run a fused op
(`tfkaf._xla.fused_available()`: whether the op compiles inside XLA here).
"""

import keras
import tensorflow as tf

from tfkaf import _xla
from tfkaf.layers import _common

__all__ = ["ActivationWeights", "PerChannelActivation"]


class ActivationWeights(_common.TensorFlowOnly):
  """Mixin: the layer's weights are activation parameters."""

  def add_weight(self, *args, **kwargs):  # pylint: disable=arguments-differ
    variable = super().add_weight(*args, **kwargs)
    return _common.mark_activation_variable(variable)

  def lipschitz_constant(self):
    """An upper bound of the layer's Lipschitz constant (l2), a float.

    The maximum over its channels of the per-channel activation's constant;
    the layer must be built.
    """
    raise NotImplementedError(
        f"{type(self).__name__} does not implement lipschitz_constant().")


class PerChannelActivation(ActivationWeights, keras.layers.Layer):
  """Base of the layers learning one activation per channel along `axis`.

  A subclass declares its weights' options in its constructor with
  `_weight_options` and creates them in `build_weights(channels)` with
  `_add_param`; `build` finds the channel count first (`_channels`, which a
  subclass may extend with its own checks) and pins it in the InputSpec.

  Args:
    axis: the channel axis.
    **kwargs: base Layer arguments.
  """

  # True for the layers that call a tfkaf op (KAF, KAF2D, DeepBSpline).
  uses_fused_op = False

  def __init__(self, axis=-1, **kwargs):
    super().__init__(**kwargs)
    self.axis = _common.check_axis(axis)
    self.supports_masking = True
    if self.uses_fused_op:
      self.supports_jit = _xla.fused_available()
    self._weight_names = []

  def _weight_options(self, weight, initializer, regularizer, constraint):
    """Stores `<weight>_initializer`, `_regularizer` and `_constraint` (an
    initializer may be None: the subclass then picks one at build time)."""
    self._weight_names.append(weight)
    setattr(self, f"{weight}_initializer",
            None if initializer is None
            else keras.initializers.get(initializer))
    setattr(self, f"{weight}_regularizer",
            keras.regularizers.get(regularizer))
    setattr(self, f"{weight}_constraint", keras.constraints.get(constraint))

  def _add_param(self, weight, shape, initializer=None, regularizer=None):
    """Adds a float32 (variable dtype) weight with its stored options.

    `initializer` and `regularizer` replace the stored ones when given.
    """
    return self.add_weight(
        name=weight, shape=shape,
        initializer=(initializer if initializer is not None
                     else getattr(self, f"{weight}_initializer")),
        regularizer=(regularizer if regularizer is not None
                     else getattr(self, f"{weight}_regularizer", None)),
        constraint=getattr(self, f"{weight}_constraint", None),
        dtype=self.variable_dtype, autocast=False)

  def _channels(self, input_shape):
    """(normalized axis, channel count) of an input shape, checked."""
    return _common.channel_count(type(self).__name__, self.axis, input_shape)

  def build(self, input_shape):
    self._axis, channels = self._channels(input_shape)
    self.input_spec = keras.layers.InputSpec(ndim=len(input_shape),
                                             axes={self._axis: channels})
    self.build_weights(channels)

  def build_weights(self, channels):
    """Creates the weights for `channels` channels."""
    raise NotImplementedError

  def _per_channel(self, variable, inputs, extra=()):
    """The [C, *extra] variable, cast to the input's dtype and reshaped to
    broadcast against the input."""
    shape = _common.broadcast_shape(len(inputs.shape), self._axis,
                                    variable.shape[0]) + list(extra)
    return tf.reshape(tf.cast(variable, inputs.dtype), shape)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def get_config(self):
    config = super().get_config()
    config["axis"] = self.axis
    for weight in self._weight_names:
      initializer = getattr(self, f"{weight}_initializer")
      config.update({
          f"{weight}_initializer": (
              None if initializer is None
              else keras.initializers.serialize(initializer)),
          f"{weight}_regularizer": keras.regularizers.serialize(
              getattr(self, f"{weight}_regularizer")),
          f"{weight}_constraint": keras.constraints.serialize(
              getattr(self, f"{weight}_constraint")),
      })
    return config
