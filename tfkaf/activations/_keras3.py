"""The activations of Keras 3, with the same names and parameters.

Written with TensorFlow ops (no call into ``keras.activations``). Note that
``leaky_relu`` defaults to a slope of 0.01 (Keras 3 uses 0.2) and
``hard_shrink`` / ``soft_shrink`` take ``lambd``. Some also come from Kaun
or theanets; their registry entries say so.

Each registration states the activation's Lipschitz constant (an upper
bound, rounded up; None where it is unbounded or discontinuous), which
`tfkaf.lipschitz_bound` uses.
"""

import math

import numpy as np
import tensorflow as tf

from tfkaf import _portable
from tfkaf.activations import _math
from tfkaf.activations import _registry
from tfkaf.activations._registry import KAUN
from tfkaf.activations._registry import KERAS3
from tfkaf.activations._registry import THEANETS

# SELU constants (Klambauer et al. 2017), full precision.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# max |GELU'(x)| (exact and tanh forms), rounded up.
GELU_LIPSCHITZ = 1.1291


def _relu_lipschitz(negative_slope=0.0, max_value=None, threshold=0.0):
  del max_value  # a cap does not raise the slope
  if threshold:
    return None  # discontinuous at the threshold
  return max(1.0, abs(float(negative_slope)))


def _max_slope_lipschitz(negative_slope=0.01):
  return max(1.0, abs(negative_slope))


def _elu_lipschitz(alpha=1.0):
  return max(1.0, abs(alpha))


def _hard_sigmoid_lipschitz(alpha=1 / 6, beta=0.5):
  del beta  # an offset does not change the slope
  return abs(alpha)



@_registry.builtin(
    "relu",
    "min(x, max_value) if x > threshold else negative_slope * (x - threshold)",
    (KERAS3, THEANETS),
    lipschitz=_relu_lipschitz,
)
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
  """Rectified linear unit, with Keras' optional leak, cap and threshold.

  With the defaults this is ``max(0, x)``. The threshold is strict, as in
  Keras: ``relu(1.0, threshold=1.0)`` is 0.

  Args:
      x: input tensor.
      negative_slope: slope below the threshold.
      max_value: upper cap (``None``: no cap).
      threshold: inputs at or below it take the negative branch.

  Returns:
      A tensor of the same shape and dtype as `x`.
  """
  x = _math.tensor(x)
  if (_math.is_zero(negative_slope) and max_value is None
      and _math.is_zero(threshold)):
    return tf.nn.relu(x)
  thr = _math.const(threshold, x)
  positive = x
  if max_value is not None:
    positive = tf.minimum(x, _math.const(max_value, x))
  if _math.is_zero(negative_slope):
    negative = tf.zeros_like(x)
  else:
    negative = _math.const(negative_slope, x) * (x - thr)
  return tf.where(x > thr, positive, negative)


@_registry.builtin(
    "sigmoid", "1 / (1 + exp(-x))", (KERAS3, THEANETS), aliases=("logistic",),
    lipschitz=0.25,
)
def sigmoid(x):
  """Logistic sigmoid.

  Args:
      x: input tensor.
  """
  return tf.math.sigmoid(_math.tensor(x))


@_registry.builtin(
    "tanh", "(exp(x) - exp(-x)) / (exp(x) + exp(-x))", (KERAS3, THEANETS),
    lipschitz=1.0,
)
def tanh(x):
  """Hyperbolic tangent.

  Args:
      x: input tensor.
  """
  return tf.math.tanh(_math.tensor(x))


@_registry.builtin(
    "softmax", "exp(x_i) / sum_j exp(x_j), along axis", (KERAS3, THEANETS),
    lipschitz=1.0,
)
def softmax(x, axis=-1):
  """Softmax: a probability distribution along an axis.

  Computed stably (the maximum is subtracted first).

  Args:
      x: input tensor.
      axis: the axis that sums to 1.
  """
  x = _math.tensor(x)
  return tf.nn.softmax(x, axis=_math.normalize_axis(x, axis, "softmax"))


@_registry.builtin(
    "linear", "x", (KERAS3, THEANETS),
    lipschitz=1.0,
)
def linear(x):
  """Identity: returns the input unchanged (as a floating tensor).

  Args:
      x: input tensor.
  """
  return _math.tensor(x)


@_registry.builtin(
    "gelu",
    "x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))); "
    "approximate=True: gelu_approx(x)",
    KERAS3,
    lipschitz=GELU_LIPSCHITZ,
)
def gelu(x, approximate=False):
  """Gaussian error linear unit (Hendrycks & Gimpel 2016).

  The exact form is computed as ``0.5 * x * erfc(-x / sqrt(2))``, which
  keeps its relative accuracy for large negative inputs. Inside
  `tfkaf.portable()` it is ``0.5 * x * (1 + erf(x / sqrt(2)))`` (ONNX has no
  Erfc; it loses relative accuracy for x < -3, with an absolute error of
  a few 1e-7).

  Args:
      x: input tensor.
      approximate: use the tanh approximation (`gelu_approx`).
  """
  if approximate:
    return _math.gelu_tanh(x)
  x = _math.tensor(x)
  scaled = x * _math.const(1 / math.sqrt(2.0), x)
  if _portable.is_active():
    return _math.const(0.5, x) * x * (_math.const(1, x) + tf.math.erf(scaled))
  return _math.const(0.5, x) * x * tf.math.erfc(-scaled)


@_registry.builtin(
    "silu", "x * sigmoid(x)", KERAS3, aliases=("swish",),
    lipschitz=1.0999,
)
def silu(x):
  """Sigmoid linear unit, a.k.a. swish (Ramachandran et al. 2017).

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return x * tf.math.sigmoid(x)
swish = silu


@_registry.builtin(
    "mish", "x * tanh(softplus(x))", KERAS3,
    lipschitz=1.0886,
)
def mish(x):
  """Mish (Misra 2019).

  Finite, with finite gradients, for any finite input (softplus is
  computed stably).

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return x * tf.math.tanh(tf.math.softplus(x))


@_registry.builtin(
    "selu",
    "scale * (x if x > 0 else alpha * (exp(x) - 1)), "
    "alpha = 1.67326324..., scale = 1.05070098...",
    KERAS3,
    lipschitz=SELU_SCALE * SELU_ALPHA,
)
def selu(x):
  """Scaled exponential linear unit (Klambauer et al. 2017).

  Uses ``alpha = 1.6732632423543772`` and ``scale = 1.0507009873554805``.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  negative = _math.const(SELU_ALPHA, x) * _math.expm1(
      tf.minimum(x, _math.const(0, x)))
  return _math.const(SELU_SCALE, x) * tf.where(x > 0, x, negative)


@_registry.builtin(
    "elu", "x if x > 0 else alpha * (exp(x) - 1)", KERAS3,
    lipschitz=_elu_lipschitz,
)
def elu(x, alpha=1.0):
  """Exponential linear unit (Clevert et al. 2015).

  Args:
      x: input tensor.
      alpha: scale of the negative part.
  """
  x = _math.tensor(x)
  negative = _math.const(alpha, x) * _math.expm1(
      tf.minimum(x, _math.const(0, x)))
  return tf.where(x > 0, x, negative)


@_registry.builtin(
    "leaky_relu", "x if x > 0 else negative_slope * x", KERAS3,
    lipschitz=_max_slope_lipschitz,
)
def leaky_relu(x, negative_slope=0.01):
  """Leaky rectified linear unit.

  The default slope is 0.01 (Keras 3 uses 0.2).

  Args:
      x: input tensor.
      negative_slope: slope for negative inputs.
  """
  x = _math.tensor(x)
  return tf.where(x > 0, x, _math.const(negative_slope, x) * x)


@_registry.builtin(
    "softplus", "log(1 + exp(x))", (KERAS3, THEANETS),
    lipschitz=1.0,
)
def softplus(x):
  """Softplus, computed without overflow.

  Args:
      x: input tensor.
  """
  return tf.math.softplus(_math.tensor(x))


@_registry.builtin(
    "softsign", "x / (1 + |x|)", KERAS3,
    lipschitz=1.0,
)
def softsign(x):
  """Softsign.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return x / (_math.const(1, x) + tf.abs(x))


@_registry.builtin(
    "exponential", "exp(x)", KERAS3,
)
def exponential(x):
  """Exponential (overflows to inf for large inputs, by definition).

  Args:
      x: input tensor.
  """
  return tf.math.exp(_math.tensor(x))


@_registry.builtin(
    "hard_sigmoid", "min(1, max(0, alpha * x + beta))", (KERAS3, KAUN),
    lipschitz=_hard_sigmoid_lipschitz,
)
def hard_sigmoid(x, alpha=1 / 6, beta=0.5):
  """Hard sigmoid, a piecewise-linear sigmoid.

  The defaults give Keras 3's ``min(1, max(0, x/6 + 1/2))``; `alpha` and
  `beta` are Kaun's parameters.

  Args:
      x: input tensor.
      alpha: slope.
      beta: offset.
  """
  x = _math.tensor(x)
  y = _math.const(alpha, x) * x + _math.const(beta, x)
  return tf.minimum(tf.maximum(y, _math.const(0, x)), _math.const(1, x))


@_registry.builtin(
    "hard_silu",
    "x * min(1, max(0, x/6 + 1/2))",
    KERAS3,
    aliases=("hard_swish",),
    lipschitz=1.5,
)
def hard_silu(x):
  """Hard SiLU, a.k.a. hard swish (Howard et al. 2019).

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return x * hard_sigmoid(x)
hard_swish = hard_silu


@_registry.builtin(
    "hard_tanh", "min(1, max(-1, x))", KERAS3,
    lipschitz=1.0,
)
def hard_tanh(x):
  """Hard tanh.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.minimum(tf.maximum(x, _math.const(-1, x)), _math.const(1, x))


@_registry.builtin(
    "relu6", "min(6, max(0, x))", KERAS3,
    lipschitz=1.0,
)
def relu6(x):
  """ReLU capped at 6.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return tf.minimum(tf.maximum(x, _math.const(0, x)), _math.const(6, x))


@_registry.builtin(
    "hard_shrink", "x if |x| > lambd else 0", KERAS3,
)
def hard_shrink(x, lambd=0.5):
  """Hard shrinkage.

  Args:
      x: input tensor.
      lambd: the threshold (Keras calls it `threshold`).
  """
  x = _math.tensor(x)
  return tf.where(tf.abs(x) > _math.const(lambd, x), x, tf.zeros_like(x))


@_registry.builtin(
    "soft_shrink",
    "x - lambd if x > lambd; x + lambd if x < -lambd; else 0",
    KERAS3,
    lipschitz=1.0,
)
def soft_shrink(x, lambd=0.5):
  """Soft shrinkage.

  Args:
      x: input tensor.
      lambd: the threshold (Keras calls it `threshold`).
  """
  x = _math.tensor(x)
  lam = _math.const(lambd, x)
  return tf.where(
      x > lam, x - lam, tf.where(x < -lam, x + lam, tf.zeros_like(x))
  )


@_registry.builtin(
    "tanh_shrink", "x - tanh(x)", KERAS3,
    lipschitz=1.0,
)
def tanh_shrink(x):
  """Tanh shrinkage.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  return x - tf.math.tanh(x)


@_registry.builtin(
    "threshold", "x if x > threshold else default_value", KERAS3,
)
def threshold(x, threshold=0.0, default_value=0.0):
  """Threshold: keeps the inputs above a threshold (strictly).

  Args:
      x: input tensor.
      threshold: inputs at or below it are replaced.
      default_value: their replacement.
  """
  x = _math.tensor(x)
  default = tf.broadcast_to(_math.const(default_value, x), tf.shape(x))
  return tf.where(x > _math.const(threshold, x), x, default)


@_registry.builtin(
    "sparsemax",
    "max(0, x - tau), tau such that the result sums to 1 along axis "
    "(Euclidean projection onto the simplex)",
    KERAS3,
)
def sparsemax(x, axis=-1):
  """Sparsemax (Martins & Astudillo 2016), exact.

  The Euclidean projection of `x` onto the probability simplex along
  `axis`: sort ``z`` descending, ``k_z = max{k : 1 + k z_(k) > sum_{j<=k}
  z_(j)}``, ``tau = (sum_{j<=k_z} z_(j) - 1) / k_z``. The output sums to 1
  and is sparse. (Keras 3.15's TensorFlow-backend sparsemax returns wrong
  values; this one does not use it.) float16/bfloat16 are computed in
  float32.

  Args:
      x: input tensor.
      axis: the axis that sums to 1.
  """
  x = _math.tensor(x)
  rank = x.shape.rank
  axis = _math.normalize_axis(x, axis, "sparsemax")
  perm = None
  if rank is None:
    if axis != -1:
      raise ValueError("sparsemax: an input of unknown rank needs axis=-1.")
  elif axis != rank - 1:
    perm = [i for i in range(rank) if i != axis] + [axis]
    x = tf.transpose(x, perm)
  z, dtype = _math.upcast(x)
  z = z - tf.stop_gradient(tf.reduce_max(z, axis=-1, keepdims=True))
  n = tf.shape(z)[-1]
  z_sorted = tf.math.top_k(z, k=n, sorted=True).values
  k = tf.range(1, n + 1, dtype=z.dtype)
  cumulative = tf.cumsum(z_sorted, axis=-1)
  support = tf.cast(1 + k * z_sorted > cumulative, z.dtype)
  k_z = tf.reduce_sum(support, axis=-1, keepdims=True)
  tau = (tf.reduce_sum(support * z_sorted, axis=-1, keepdims=True) - 1) / k_z
  y = _math.downcast(tf.maximum(z - tau, tf.zeros_like(z)), dtype)
  if perm is not None:
    y = tf.transpose(y, np.argsort(perm).tolist())
  return y


@_registry.builtin(
    "sparse_plus",
    "0 if x <= -1; x if x >= 1; else (x + 1)^2 / 4",
    (KERAS3, KAUN),
    lipschitz=1.0,
)
def sparse_plus(x):
  """Sparse plus: a smooth, sparse softplus.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  one = _math.const(1, x)
  middle = _math.const(0.25, x) * tf.square(x + one)
  return tf.where(x >= one, x, tf.where(x <= -one, tf.zeros_like(x), middle))


@_registry.builtin(
    "sparse_sigmoid",
    "0 if x <= -1; 1 if x >= 1; else (x + 1) / 2",
    (KERAS3, KAUN),
    lipschitz=0.5,
)
def sparse_sigmoid(x):
  """Sparse sigmoid: a piecewise-linear sigmoid reaching 0 and 1.

  Args:
      x: input tensor.
  """
  x = _math.tensor(x)
  y = _math.const(0.5, x) * (x + _math.const(1, x))
  return tf.minimum(tf.maximum(y, _math.const(0, x)), _math.const(1, x))


@_registry.builtin(
    "squareplus", "(x + sqrt(x^2 + b)) / 2", (KERAS3, KAUN),
    lipschitz=1.0,
)
def squareplus(x, b=4):
  """Squareplus (Barron 2021), a smooth ReLU.

  For negative inputs it is computed as ``b / (2 (sqrt(x^2 + b) - x))``,
  which avoids cancellation.

  Args:
      x: input tensor.
      b: smoothness (>= 0; 0 gives ReLU).
  """
  x = _math.tensor(x)
  b = _math.const(b, x)
  half = _math.const(0.5, x)
  positive = half * (x + tf.sqrt(tf.square(x) + b))
  safe_negative = tf.where(x < 0, x, -tf.ones_like(x))
  negative = half * b / (tf.sqrt(tf.square(safe_negative) + b) - safe_negative)
  return tf.where(x < 0, negative, positive)


@_registry.builtin(
    "glu", "a * sigmoid(b), where [a, b] = split(x, 2, axis)", (KERAS3, KAUN),
)
def glu(x, axis=-1):
  """Gated linear unit (Dauphin et al. 2017).

  Splits `x` in two halves along `axis`: the first is the value, the
  second the gate. The output's `axis` is half as long.

  Args:
      x: input tensor; its size along `axis` must be even.
      axis: the axis to split.

  Raises:
      ValueError: the size of `axis` is odd (checked at run time when the
          size is not known statically).
  """
  x = _math.tensor(x)
  axis = _math.normalize_axis(x, axis, "glu")
  message = (
      f"glu: the size of axis {axis} must be even to split the input into "
      "value and gate halves"
  )
  size = x.shape[axis] if x.shape.rank is not None else None
  if size is not None:
    if size % 2:
      raise ValueError(f"{message}, got {size} (input shape {x.shape}).")
  else:
    check = tf.debugging.assert_equal(
        tf.math.floormod(tf.shape(x)[axis], 2), 0, message=message + "."
    )
    with tf.control_dependencies([check]):
      x = tf.identity(x)
  value, gate = tf.split(x, 2, axis=axis)
  return value * tf.math.sigmoid(gate)


@_registry.builtin(
    "celu", "x if x > 0 else alpha * (exp(x / alpha) - 1)", KERAS3,
    lipschitz=1.0,
)
def celu(x, alpha=1.0):
  """Continuously differentiable exponential linear unit (Barron 2017).

  Args:
      x: input tensor.
      alpha: scale of the negative part (> 0).
  """
  x = _math.tensor(x)
  a = _math.const(alpha, x)
  negative = a * _math.expm1(tf.minimum(x, _math.const(0, x)) / a)
  return tf.where(x > 0, x, negative)


@_registry.builtin(
    "log_sigmoid", "log(sigmoid(x)) = -softplus(-x)", KERAS3,
    lipschitz=1.0,
)
def log_sigmoid(x):
  """Logarithm of the sigmoid, computed without overflow.

  Args:
      x: input tensor.
  """
  return tf.math.log_sigmoid(_math.tensor(x))


@_registry.builtin(
    "log_softmax", "x_i - log(sum_j exp(x_j)), along axis", KERAS3,
)
def log_softmax(x, axis=-1):
  """Logarithm of the softmax, computed stably.

  Args:
      x: input tensor.
      axis: the softmax axis.
  """
  x = _math.tensor(x)
  return tf.nn.log_softmax(x, axis=_math.normalize_axis(x, axis, "log_softmax"))

