"""Kernel Activation Function layers: `KAF` and `KAF2D`."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _kaf_ops
from tfkaf import ops
from tfkaf._kaf_ops import KERNELS
from tfkaf.layers import _base
from tfkaf.layers import _common

__all__ = ["KAF", "KAF2D", "kernel_ridge_alpha"]

RANDOM_STDDEV = 0.3
RANDOM_STDDEV_2D = 0.3
DEFAULT_RIDGE_EPSILON = 1e-4


def _dictionary(boundary, num_centres):
  return np.linspace(-boundary, boundary, num_centres)


def _gamma(boundary, num_centres, gamma):
  if gamma is not None:
    return float(gamma)
  return float(ops.default_gamma(boundary, num_centres))


def kernel_ridge_alpha(fn, D=20, boundary=3.0, kernel="gaussian", gamma=None,
                       epsilon=DEFAULT_RIDGE_EPSILON):
  """The KAF coefficients that make one KAF approximate `fn`.

  Kernel ridge regression on the dictionary d = linspace(-boundary,
  boundary, D): alpha = solve(K + epsilon*I, fn(d)) with K[i, j] = k(d_i,
  d_j), in float64.

  Args:
    fn: an elementwise activation (callable on a tensor).
    D, boundary, kernel, gamma: the KAF's dictionary and kernel (`gamma=None`
      is the op's default rule, `tfkaf.ops.default_gamma`).
    epsilon: the ridge term.

  Returns:
    A float64 numpy array of shape [D].

  Raises:
    ValueError: for the relu kernel, whose K[i, j] = max(0, d_i - d_j) is
      singular (strictly triangular), so that no fit is defined.
  """
  d = _dictionary(boundary, D)
  diff = d[:, None] - d[None, :]
  if kernel == "gaussian":
    k = np.exp(-_gamma(boundary, D, gamma) * diff**2)
  elif kernel == "softplus":
    k = np.logaddexp(0.0, diff)
  elif kernel == "relu":
    raise ValueError(
        "KAF: an `init` other than 'random' needs the kernel ridge regression "
        "matrix K[i, j] = k(d_i, d_j), which is singular for kernel='relu' "
        "(max(0, d_i - d_j) is zero on and above the diagonal). Use "
        "init='random' (or alpha_initializer) with the relu kernel, or the "
        "gaussian/softplus kernel.")
  else:
    raise ValueError(f"Unknown kernel {kernel!r}; expected one of {KERNELS}.")
  target = _common.sample(fn, d)
  return np.linalg.solve(k + epsilon * np.eye(D), target)


def _channel_bounds(alpha, kernel, gamma):
  """Per-channel Lipschitz bounds sum_i |alpha[c, i]| * sup|k'|."""
  total = np.sum(np.abs(alpha), axis=-1)
  if kernel == "gaussian":
    # sup_x |d/dx exp(-gamma (x-d)^2)| = sqrt(2 gamma / e)
    return total * math.sqrt(2.0 * gamma / math.e)
  return total  # relu and softplus kernels: |k'| <= 1


class _KernelActivation(_base.PerChannelActivation):
  """What KAF and KAF2D share: the dictionary (D, boundary, gamma) and the
  weight `alpha`."""

  uses_fused_op = True

  def __init__(self, D, boundary, gamma, axis, alpha_initializer,
               alpha_regularizer, alpha_constraint, **kwargs):
    super().__init__(axis=axis, **kwargs)
    self.D = _common.check_int("D", D, 2)
    self.boundary = _common.check_float("boundary", boundary, positive=True)
    _kaf_ops.check_scale("`boundary`", self.boundary)
    self.gamma = _common.check_float("gamma", gamma, positive=True,
                                     allow_none=True)
    if self.gamma is not None:
      _kaf_ops.check_scale("`gamma`", self.gamma)
    self._weight_options("alpha", alpha_initializer, alpha_regularizer,
                         alpha_constraint)

  def _lipschitz(self, kernel, default_gamma):
    gamma = self.gamma
    if gamma is None and kernel == "gaussian":
      gamma = float(default_gamma(self.boundary, self.D))
    return float(np.max(_channel_bounds(self.alpha.numpy(), kernel, gamma)))

  def get_config(self):
    config = super().get_config()
    config.update({"D": self.D, "boundary": self.boundary,
                   "gamma": self.gamma})
    return config


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class KAF(_KernelActivation):
  """Kernel Activation Function (Scardapane et al., arXiv:1707.04035).

  One learnable activation per channel along `axis`, shared over every other
  axis (units of a Dense output, channels of an NHWC or, with `axis=1`, NCHW
  feature map)::

      g(x) = sum_i alpha[c, i] * k(x, d_i),  d = linspace(-boundary, boundary, D)

  computed by the fused op `tfkaf.ops.kaf` (which falls back to the
  composite form inside XLA-compiled functions, with the same numbers).

  Args:
    D: dictionary size (>= 2).
    boundary: the dictionary spans [-boundary, boundary] (> 0).
    kernel: "gaussian" (default), "relu" or "softplus".
    init: how alpha starts:
      * "random" (default): normal, mean 0, std 0.3 (the references use
        0.05 to 0.8), independently for every coefficient;
      * the name of an activation of `tfkaf.activations` ("tanh", "elu",
        ...) or a callable: kernel ridge regression towards it,
        alpha[c, :] = solve(K + init_epsilon*I, f(d)) with K[i, j] =
        k(d_i, d_j), the same vector for every channel. The relu kernel makes
        K singular and is refused. A callable that is not a registered
        activation is fitted at construction and stored as numbers (the config
        then says `init="custom"` with those numbers in `alpha_initializer`).
        Note that fitting ELU or ReLU (kinks, or unbounded growth at the
        dictionary edge) gives large, oscillating coefficients (max |alpha|
        in the tens with the defaults) that still reproduce the function on
        [-boundary, boundary] (to ~1e-2 for ELU); smooth functions like tanh
        give small ones (fit error ~1e-3 on [-2.5, 2.5]). Outside the
        dictionary range a Gaussian KAF decays to 0.
    axis: the channel axis (default -1, channels last).
    gamma: the kernel bandwidth for the gaussian kernel; None uses
      1/(8*step^2), step = 2*boundary/(D-1) (`tfkaf.ops.default_gamma`).
    init_epsilon: the ridge term of the init fit (default 1e-4).
    alpha_initializer: a Keras initializer for alpha, of shape [C, D]. When
      given it replaces `init` (which is then recorded as "custom").
    alpha_regularizer, alpha_constraint: as in `keras.layers.PReLU`.
    **kwargs: base Layer arguments (name, dtype, trainable).

  Input: any rank >= 1 with the channel axis defined. Output: same shape.
  Variables: `alpha` [C, D], float32 even under a mixed precision policy.

  XLA: the layer supports `jit_compile` (`supports_jit` is True): inside an
  XLA-compiled model or `tf.function(jit_compile=True)` the op lowers to an
  XLA custom call that runs the same fused kernel, and XLA fuses the rest of
  the model around it. Where that route is unavailable (`tfkaf._xla`: a
  plugin without XLA kernels, a GPU with a plugin built without CUDA, or
  TFKAF_XLA_FALLBACK=1) `supports_jit` is False, so Keras keeps such a model
  out of XLA, and inside an explicitly compiled function the op uses its
  composite form, with the same numbers.

  Export: inside `tfkaf.portable()` (which `tfkaf.export` enters) the layer
  traces to standard TF ops, so that the SavedModel, LiteRT or ONNX file
  runs without tfkaf; outside it, `model.export` keeps the fused op.
  """

  def __init__(self, D=20, boundary=3.0, kernel="gaussian", init="random",
               axis=-1, gamma=None, init_epsilon=DEFAULT_RIDGE_EPSILON,
               alpha_initializer=None, alpha_regularizer=None,
               alpha_constraint=None, **kwargs):
    super().__init__(D, boundary, gamma, axis, alpha_initializer,
                     alpha_regularizer, alpha_constraint, **kwargs)
    if kernel not in KERNELS:
      raise ValueError(
          f"KAF: `kernel` must be one of {KERNELS}, got {kernel!r}.")
    self.kernel = kernel
    self.init_epsilon = _common.check_float("init_epsilon", init_epsilon,
                                            positive=True)
    if alpha_initializer is not None:
      # An explicit initializer replaces `init`.
      if init not in ("random", "custom"):
        _common.resolve_init("KAF", init, special=("random", "custom"))
      self.init = "random" if init == "random" else "custom"
      self._fn = None
    else:
      init, fn = _common.resolve_init("KAF", init, special=("random",))
      if init == "custom" and fn is None:
        raise ValueError(
            "KAF: init='custom' needs the coefficients in "
            "`alpha_initializer`.")
      self.init = init
      self._fn = fn
      if init == "random":
        self.alpha_initializer = None
      else:
        # Fit now (also validates the kernel): the config stores a string or,
        # for an unregistered callable, the fitted numbers.
        values = kernel_ridge_alpha(fn, self.D, self.boundary, self.kernel,
                                    self.gamma, self.init_epsilon)
        if init == "custom":
          self.alpha_initializer = _common.RowInitializer(values)
        else:
          self.alpha_initializer = None
        self._init_values = values

  def _initializer(self):
    if self.alpha_initializer is not None:
      return self.alpha_initializer
    if self.init == "random":
      return keras.initializers.RandomNormal(mean=0.0, stddev=RANDOM_STDDEV)
    return _common.RowInitializer(self._init_values)

  def build_weights(self, channels):
    self.alpha = self._add_param("alpha", (channels, self.D),
                                 self._initializer())

  def call(self, inputs):
    alpha = tf.cast(self.alpha, inputs.dtype)
    return ops.kaf(inputs, alpha, boundary=self.boundary, kernel=self.kernel,
                   gamma=self.gamma, axis=self._axis)

  def lipschitz_constant(self):
    """max over channels of sum_i |alpha[c, i]| * sup|k'| (a loose bound):
    sup|k'| is sqrt(2 gamma / e) for the gaussian kernel, 1 otherwise."""
    return self._lipschitz(self.kernel, ops.default_gamma)

  def get_config(self):
    config = super().get_config()
    config.update({"kernel": self.kernel, "init": self.init,
                   "init_epsilon": self.init_epsilon})
    return config


@keras.saving.register_keras_serializable(package=_common.KERAS_PACKAGE)
class KAF2D(_KernelActivation):
  """2D Kernel Activation Function: combines pairs of channels nonlinearly.

  The input has 2H channels along `axis`; channel j is paired with channel
  j + H and the output has H channels::

      g(x1, x2) = sum_k alpha[h, k] * exp(-gamma*((x1 - cx_k)^2 + (x2 - cy_k)^2))

  over the D*D centres (d[k % D], d[k // D]) of the grid d = linspace(
  -boundary, boundary, D), computed by the fused op `tfkaf.ops.kaf2d`.

  Args:
    D: grid size per dimension (>= 2); D*D centres.
    boundary: the grid spans [-boundary, boundary]^2 (> 0).
    axis: the channel axis (default -1).
    gamma: None uses 1/(4*step^2) (`tfkaf.ops.default_gamma_2d`).
    alpha_initializer: default random normal, mean 0, std 0.3.
    alpha_regularizer, alpha_constraint: as in `keras.layers.PReLU`.
    **kwargs: base Layer arguments.

  Raises ValueError at build time when the channel count is odd.
  Variables: `alpha` [H, D*D], float32. XLA and export: as `KAF`.
  """

  def __init__(self, D=10, boundary=3.0, axis=-1, gamma=None,
               alpha_initializer=None, alpha_regularizer=None,
               alpha_constraint=None, **kwargs):
    super().__init__(D, boundary, gamma, axis, alpha_initializer,
                     alpha_regularizer, alpha_constraint, **kwargs)

  def _channels(self, input_shape):
    axis, channels = super()._channels(input_shape)
    if channels % 2:
      raise ValueError(
          f"KAF2D pairs channel j with channel j + C/2, so the channel count "
          f"along axis {axis} must be even; got {channels} channels (input "
          f"shape {tuple(input_shape)}).")
    return axis, channels

  def build_weights(self, channels):
    initializer = self.alpha_initializer
    if initializer is None:
      initializer = keras.initializers.RandomNormal(mean=0.0,
                                                    stddev=RANDOM_STDDEV_2D)
    self.alpha = self._add_param("alpha", (channels // 2, self.D * self.D),
                                 initializer)

  def call(self, inputs):
    alpha = tf.cast(self.alpha, inputs.dtype)
    return ops.kaf2d(inputs, alpha, boundary=self.boundary, gamma=self.gamma,
                     axis=self._axis)

  def compute_output_shape(self, input_shape):
    axis, channels = self._channels(input_shape)
    shape = list(input_shape)
    shape[axis] = channels // 2
    return tuple(shape)

  def lipschitz_constant(self):
    """max over channels of sum_k |alpha[h, k]| * sqrt(2 gamma / e), a loose
    bound (per input pair, w.r.t. each input)."""
    return self._lipschitz("gaussian", ops.default_gamma_2d)
