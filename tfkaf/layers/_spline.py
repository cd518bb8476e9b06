"""Learnable linear-spline activation (DeepSplines): `DeepBSpline`."""

import keras
import numpy as np
import tensorflow as tf

from tfkaf import ops
from tfkaf import splines
from tfkaf.layers import _base
from tfkaf.layers import _common

__all__ = ["DeepBSpline"]

SPECIAL_INITS = ("leaky_relu", "relu", "identity", "even_odd")
LEAKY_RELU_SLOPE = 0.01
SOFT_SHRINK_LAMBDA = 0.5


def _special_init(init, knots, channels):
  """[C, K] coefficients of a built-in init (float64)."""
  if init == "leaky_relu":
    row = np.where(knots >= 0, knots, LEAKY_RELU_SLOPE * knots)
  elif init == "relu":
    row = np.maximum(knots, 0.0)
  elif init == "identity":
    row = knots.copy()
  elif init == "even_odd":
    even = np.abs(knots)
    odd = np.sign(knots) * np.maximum(np.abs(knots) - SOFT_SHRINK_LAMBDA, 0.0)
    half = channels // 2
    return np.concatenate([np.tile(even, (half, 1)),
                           np.tile(odd, (channels - half, 1))], axis=0)
  else:
    raise ValueError(f"Unknown DeepBSpline init {init!r}.")
  return np.tile(row, (channels, 1))


class _SplineRegularizer(keras.regularizers.Regularizer):
  """lambda_tv2 * sum_c TV2 + lambda_bv2 * sum_c BV2 (+ a user regularizer).

  Attached to the `coefficients` variable, so Keras adds it to `model.losses`
  (and so to the loss `fit` minimizes) once per model, whatever the number of
  calls, and evaluates it on the current coefficients.
  """

  def __init__(self, layer, user_regularizer):
    self.layer = layer
    self.user_regularizer = user_regularizer

  def __call__(self, coefficients):
    layer = self.layer
    total = tf.constant(0.0, tf.float32)
    if layer.tv2_lambda > 0:
      total += tf.cast(layer.tv2_lambda * tf.reduce_sum(layer.tv2()),
                       tf.float32)
    if layer.bv2_lambda > 0:
      total += tf.cast(layer.bv2_lambda * tf.reduce_sum(layer.bv2()),
                       tf.float32)
    if self.user_regularizer is not None:
      total += tf.cast(self.user_regularizer(coefficients), tf.float32)
    return total

  def get_config(self):
    raise NotImplementedError(
        "The DeepBSpline regularizer is rebuilt from the layer config.")


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class DeepBSpline(_base.PerChannelActivation):
  """Learnable linear-spline activation (DeepSplines: Bohra et al. 2020).

  One continuous piecewise-linear function per channel along `axis`, with
  `size` coefficients on the uniform grid knot_k = -range + k*T,
  T = 2*range/(size-1) (linear B-spline basis: the coefficients are the
  values at the knots); linear extrapolation with the end slopes outside
  [-range, range]. Computed by the fused op `tfkaf.ops.linear_spline`.

  Args:
    size: number of coefficients K (>= 2; odd puts a knot at 0).
    range: the grid spans [-range, range] (> 0).
    init: "leaky_relu" (slope 0.01, default), "relu", "identity",
      "even_odd" (first half of the channels |x|, the rest soft-shrink with
      lambda 0.5), the name of any activation of `tfkaf.activations`, or a
      callable; sampled at the knots. A callable that is not a registered
      activation is sampled at construction and stored as numbers (config
      `init="custom"`, values in `coefficients_initializer`).
    axis: the channel axis (default -1).
    explicit_linear: adds a trainable linear term b1[c]*x + b0[c] (both
      initialized to 0).
    slope_min, slope_max: when given (either or both), the forward uses the
      projected coefficients `tfkaf.splines.project_slopes` (slopes clipped to
      [slope_min, slope_max], mean of the coefficients kept): every slope of
      the spline part lies in that interval, which bounds its Lipschitz
      constant. Differentiable.
    tv2, bv2: weights lambda >= 0 of the TV2 / BV2 regularizers; when > 0 the
      layer adds lambda * sum over channels to the model loss (through a
      regularizer on `coefficients`: it appears in `model.losses`).
    coefficients_initializer: a Keras initializer of the [C, K] coefficients;
      when given it replaces `init` (recorded as "custom").
    coefficients_regularizer, coefficients_constraint: as for Keras weights.
    **kwargs: base Layer arguments.

  Methods `tv2()`, `bv2()`, `lipschitz_constants()` return one value per
  channel (of the function the forward computes: projected coefficients and
  explicit linear term included); `sparsify(threshold)` and
  `num_active_knots()`.

  Variables: `coefficients` [C, K] (and `b1`, `b0` [C]), float32.

  XLA: as `KAF` (the fused op runs inside XLA as a custom call). Export: as
  `KAF` (`tfkaf.portable()`).
  """

  uses_fused_op = True

  def __init__(self, size=51, range=4.0, init="leaky_relu", axis=-1,  # pylint: disable=redefined-builtin
               explicit_linear=False, slope_min=None, slope_max=None,
               tv2=0.0, bv2=0.0, coefficients_initializer=None,
               coefficients_regularizer=None, coefficients_constraint=None,
               **kwargs):
    super().__init__(axis=axis, **kwargs)
    self.size = _common.check_int("size", size, 2)
    self.range = _common.check_float("range", range, positive=True)
    if not isinstance(explicit_linear, (bool, np.bool_)):
      raise TypeError(
          f"`explicit_linear` must be a bool, got {explicit_linear!r}.")
    self.explicit_linear = bool(explicit_linear)
    self.slope_min = _common.check_float("slope_min", slope_min,
                                         allow_none=True)
    self.slope_max = _common.check_float("slope_max", slope_max,
                                         allow_none=True)
    if (self.slope_min is not None and self.slope_max is not None
        and self.slope_min > self.slope_max):
      raise ValueError(
          f"`slope_min` ({self.slope_min}) must be <= `slope_max` "
          f"({self.slope_max}).")
    self.tv2_lambda = _common.check_float("tv2", tv2, non_negative=True)
    self.bv2_lambda = _common.check_float("bv2", bv2, non_negative=True)
    self.x_min, self.x_max, self.T = (float(v) for v in
                                      splines.grid(self.size, self.range))
    self.knots = self.x_min + self.T * np.arange(self.size, dtype=np.float64)

    self._weight_options("coefficients", coefficients_initializer,
                         coefficients_regularizer, coefficients_constraint)
    self._resolve_init(init)

  def _resolve_init(self, init):
    """Sets `init` (and the initializer of a custom init function)."""
    self._fn = None
    if self.coefficients_initializer is not None:
      if init not in ("custom",) + SPECIAL_INITS:
        _common.resolve_init("DeepBSpline", init,
                             special=("custom",) + SPECIAL_INITS)
      self.init = "custom"
      return
    init, fn = _common.resolve_init("DeepBSpline", init,
                                    special=SPECIAL_INITS)
    self.init = init
    if init == "custom":
      self.coefficients_initializer = _common.RowInitializer(
          _common.sample(fn, self.knots))
    elif fn is not None:
      self._fn = fn
      _common.sample(fn, self.knots)  # Fail early on a bad function.

  @property
  def projected(self):
    """Whether the forward projects the slopes (slope_min/slope_max set)."""
    return self.slope_min is not None or self.slope_max is not None

  def _initial_coefficients(self, channels):
    if self.init in SPECIAL_INITS:
      return _special_init(self.init, self.knots, channels)
    return np.tile(_common.sample(self._fn, self.knots), (channels, 1))

  def build_weights(self, channels):
    initializer = self.coefficients_initializer
    if initializer is None:
      values = self._initial_coefficients(channels)
      initializer = lambda shape, dtype=None: tf.constant(values, dtype)  # pylint: disable=unnecessary-lambda-assignment
    regularizer = None
    if (self.tv2_lambda > 0 or self.bv2_lambda > 0
        or self.coefficients_regularizer is not None):
      regularizer = _SplineRegularizer(self, self.coefficients_regularizer)
    self.coefficients = self._add_param("coefficients",
                                        (channels, self.size), initializer,
                                        regularizer)
    if self.explicit_linear:
      self.b1 = self._add_param("b1", (channels,), "zeros")
      self.b0 = self._add_param("b0", (channels,), "zeros")

  # ---------------------------------------------------------------- forward

  def effective_coefficients(self):
    """The [C, K] coefficients the forward uses (projected if set).

    In the variable's dtype (float32, or float64 under a float64 policy;
    half-precision variables are promoted to float32).
    """
    coefficients = tf.convert_to_tensor(self.coefficients)
    coefficients = tf.cast(coefficients, self._param_dtype())
    if self.projected:
      coefficients = splines.project_slopes(coefficients, self.T,
                                            self.slope_min, self.slope_max)
    return coefficients

  def call(self, inputs):
    # Projection in the variable dtype (float32), then the op in the compute
    # dtype.
    coefficients = tf.cast(self.effective_coefficients(), inputs.dtype)
    outputs = ops.linear_spline(inputs, coefficients, self.x_min, self.x_max,
                                axis=self._axis)
    if self.explicit_linear:
      b1 = self._per_channel(self.b1, inputs)
      b0 = self._per_channel(self.b0, inputs)
      outputs = outputs + b1 * inputs + b0
    return outputs

  # -------------------------------------------------- regularizers, Lipschitz

  def _param_dtype(self):
    dtype = tf.as_dtype(self.coefficients.dtype)
    return tf.float64 if dtype == tf.float64 else tf.float32

  def _b(self, name):
    return tf.cast(tf.convert_to_tensor(getattr(self, name)),
                   self._param_dtype())

  def _require_built(self, what):
    if not self.built:
      raise ValueError(
          f"DeepBSpline.{what}() needs the layer built (call it on an input "
          "first): the channel count is not known yet.")

  def tv2(self):
    """Per-channel second-order total variation, sum_k |a_k|; shape [C].

    a_k = (c[k+1] - 2 c[k] + c[k-1]) / T are the ReLU slopes (second
    differences) of the effective coefficients. The explicit linear term has
    no TV2.
    """
    self._require_built("tv2")
    return splines.tv2(self.effective_coefficients(), self.T)

  def values_at(self, points):
    """f_c(p) for every channel c at the given scalar points; shape [P, C]."""
    self._require_built("values_at")
    points = tf.constant(np.asarray(points, np.float64).reshape(-1, 1),
                         self._param_dtype())
    channels = self.coefficients.shape[0]
    x = tf.tile(points, [1, channels])
    values = ops.linear_spline(x, self.effective_coefficients(), self.x_min,
                               self.x_max, axis=-1)
    if self.explicit_linear:
      values = values + self._b("b1")[None, :] * x + self._b("b0")[None, :]
    return values

  def bv2(self):
    """Per-channel BV2 = TV2 + |f(0)| + |f(1)|; shape [C]."""
    self._require_built("bv2")
    values = self.values_at([0.0, 1.0])
    return self.tv2() + tf.reduce_sum(tf.abs(values), axis=0)

  def slopes(self):
    """[C, K-1] segment slopes (c[k+1] - c[k]) / T of the effective function
    (the extrapolation continues the end slopes); includes the explicit
    linear term b1."""
    self._require_built("slopes")
    s = splines.slopes(self.effective_coefficients(), self.T)
    if self.explicit_linear:
      s = s + self._b("b1")[:, None]
    return s

  def lipschitz_constants(self):
    """Per-channel Lipschitz constants max_k |slope_k|; shape [C].

    Includes the explicit linear term (max_k |slope_k + b1|) when present.
    """
    self._require_built("lipschitz_constants")
    return tf.reduce_max(tf.abs(self.slopes()), axis=-1)

  def lipschitz_constant(self):
    """max over channels of `lipschitz_constants()` (with slope_min /
    slope_max at most max(|slope_min|, |slope_max|) plus |b1|)."""
    return float(np.max(self.lipschitz_constants().numpy()))

  def num_active_knots(self, threshold=None):
    """Per-channel number of active knots, ReLU slopes |a_k| >= threshold.

    `threshold` defaults to `tfkaf.splines.DEFAULT_KNOT_THRESHOLD` (1e-4),
    above float32 round-off. Returns int32 [C].
    """
    self._require_built("num_active_knots")
    if threshold is None:
      threshold = splines.DEFAULT_KNOT_THRESHOLD
    return splines.num_active_knots(self.effective_coefficients(), self.T,
                                    threshold)

  def sparsify(self, threshold):
    """Zeroes every ReLU slope |a_k| < threshold (in place).

    The coefficients are rebuilt from c[0], c[1] and the remaining slopes
    (`tfkaf.splines.sparsify`) of the effective coefficients and assigned to
    the variable (with slope projection, the projected coefficients are
    stored: the projection leaves them unchanged). Returns the per-channel
    number of active knots afterwards (`num_active_knots()`).
    """
    self._require_built("sparsify")
    threshold = _common.check_float("threshold", threshold, non_negative=True)
    new = splines.sparsify(self.effective_coefficients(), self.T, threshold)
    self.coefficients.assign(tf.cast(new, self.coefficients.dtype))
    return self.num_active_knots()

  def get_config(self):
    config = super().get_config()
    config.update({
        "size": self.size,
        "range": self.range,
        "init": self.init,
        "explicit_linear": self.explicit_linear,
        "slope_min": self.slope_min,
        "slope_max": self.slope_max,
        "tv2": self.tv2_lambda,
        "bv2": self.bv2_lambda,
    })
    return config
