"""KAF and 2D-KAF: fused custom ops, their gradients and composite forms.

`kaf` / `kaf2d` call the fused C++/CUDA ops `Tfkaf>Kaf` / `Tfkaf>Kaf2d`
(docs/design.md, sections 1 and 2), which never build the [..., C, D] expansion that
the original kafnets code uses. Inside functions compiled by XLA they lower
to XLA custom calls that run the same fused kernels (`tfkaf/_xla.py`); only
where that route is unavailable do they fall back to `kaf_composite` /
`kaf2d_composite`, the pure-TF reference forms that expand the input against
the dictionary exactly like the original code; those forms also serve as
test oracle and benchmark baseline (`tfkaf.reference`). Inside
`tfkaf.portable()` they trace to `kaf_portable` / `kaf2d_portable` instead:
inference forms of standard TF ops (LiteRT builtins, ONNX-convertible) with
smaller intermediates than the reference forms.

Gradients: the first-order gradient of each op is its fused gradient op
(`Tfkaf>KafGrad` / `Tfkaf>Kaf2dGrad`, returning dx and dalpha in one pass).
The gradient of those gradient ops (second order, e.g. for gradient
penalties or Hessian-vector products) is computed from composite TF
expressions of the first-order gradients and does build [..., C, D] tensors.

Numerics: float16 / bfloat16 are computed and accumulated in float32, float64
in float64. boundary and gamma are float32 op attributes (the composite forms
round them alike, so XLA and the fused ops agree); without a gamma, the op
derives the default from boundary and D in the compute precision (double for
float64), and so do the composite forms. On CPU, dalpha is
bitwise reproducible whatever the number of threads; on GPU it is summed
with float atomics (last bits may vary). The Gaussian kernel gives finite
zeros for +-Inf and huge inputs and NaN for NaN; relu and softplus are
unbounded, so +-Inf inputs give +-Inf (or NaN where coefficients of both
signs meet an infinity), as their formulas do.
"""

import math
import struct

import tensorflow as tf
from tensorflow.python.framework import op_def_registry  # pylint: disable=g-direct-tensorflow-import

from tfkaf import _loader
from tfkaf import _op_wrappers
from tfkaf import _portable
from tfkaf import _xla

__all__ = ["KERNELS", "PORTABLE_CENTRES_PER_STEP", "default_gamma",
           "default_gamma_2d", "kaf", "kaf2d", "kaf2d_composite",
           "kaf2d_portable", "kaf_composite", "kaf_portable"]

KERNELS = ("gaussian", "relu", "softplus")

# The portable KAF sums the kernel over at most this many centres per step,
# so its largest intermediate holds min(D, PORTABLE_CENTRES_PER_STEP) times
# as many numbers as x.
PORTABLE_CENTRES_PER_STEP = 8

_no_autograph = _op_wrappers.no_autograph
_f32 = _op_wrappers.f32
_compute_dtype = _op_wrappers.compute_dtype


def check_scale(name, value):
  """Raises ValueError unless `value` is a valid boundary or gamma (the ops'
  rule: positive, finite, at least the smallest normal float32)."""
  message = _op_wrappers.attr_error("tfkaf_kaf", boundary=_f32(value))
  if message is not None:
    raise ValueError(name + message[len("boundary"):])


def _default_gamma(boundary, num_centres, factor):
  """1 / (factor step^2), step = 2 boundary / (num_centres - 1), in double:
  the formula of the ops' derived gamma (cc/rules/kaf_rules.h)."""
  boundary = float(boundary)
  num_centres = int(num_centres)
  if num_centres < 2:
    raise ValueError(
        f"the dictionary needs at least 2 centres, got {num_centres}")
  check_scale("boundary", boundary)
  step = 2.0 * boundary / (num_centres - 1)
  return 1.0 / (factor * step * step)


def default_gamma(boundary, num_centres):
  """Default Gaussian bandwidth of a KAF: 1 / (8 step^2).

  step = 2 * boundary / (num_centres - 1) is the spacing of the dictionary
  linspace(-boundary, boundary, num_centres); this is the rule of the
  reference kafnets code (sigma = 2 step, gamma = 0.5 / sigma^2).
  """
  return _default_gamma(boundary, num_centres, 8.0)


def default_gamma_2d(boundary, num_centres):
  """Default Gaussian bandwidth of a 2D-KAF: 1 / (4 step^2).

  num_centres is D, the side of the D x D grid (sigma = 2 step / sqrt(2)).
  """
  return _default_gamma(boundary, num_centres, 4.0)


def _ops():
  return _loader.load_ops()


def _derives_gamma(gamma):
  """True for the ops' default gamma attribute (derive from boundary, D)."""
  attrs = op_def_registry.get("Tfkaf>Kaf").attr
  default = next(a.default_value.f for a in attrs if a.name == "gamma")
  return struct.pack("<f", gamma) == struct.pack("<f", default)


def _gamma_kwargs(gamma):
  """The op's gamma attribute: given, or left to its default (derived)."""
  return {} if gamma is None else {"gamma": float(gamma)}


@_no_autograph
def kaf(x, alpha, boundary=3.0, kernel="gaussian", gamma=None, axis=-1,
        name=None):
  """Kernel Activation Function (Scardapane et al., arXiv:1707.04035).

  y = sum_i alpha[c, i] k(x, d_i) for every element x of channel c, with the
  dictionary d = linspace(-boundary, boundary, D).

  Args:
    x: tensor of rank >= 1 with C channels along `axis` (float16, bfloat16,
      float32 or float64; 16-bit types are computed in float32; integer x
      is cast to float32).
    alpha: [C, D] mixing coefficients (x's dtype; Python / NumPy values are
      converted to it), D >= 2.
    boundary: the dictionary spans [-boundary, boundary]. boundary and
      gamma are float32 attributes: positive, finite and at least the
      smallest normal float32 (1.17549e-38), else InvalidArgumentError (or
      ValueError while tracing).
    kernel: "gaussian" (exp(-gamma (x - d)^2)), "relu" (max(0, x - d)) or
      "softplus" (log(1 + exp(x - d))).
    gamma: Gaussian bandwidth; by default the op derives
      `default_gamma(boundary, D)` in the compute precision.
    axis: the channel axis (-1: channels-last; 1: channels-first NCHW).
    name: optional name scope.

  Returns:
    A tensor of x's shape and dtype.
  """
  with tf.name_scope(name or "kaf"):
    if _portable.is_active():
      return kaf_portable(x, alpha, boundary=boundary, kernel=kernel,
                          gamma=gamma, axis=axis)
    x, alpha = _op_wrappers.coerce_inputs(x, alpha, "alpha", "KAF")
    if _xla.use_composite():
      return kaf_composite(x, alpha, boundary=boundary, kernel=kernel,
                           gamma=gamma, axis=axis)
    return _ops().tfkaf_kaf(x, alpha, boundary=float(boundary),
                            kernel=kernel, axis=int(axis),
                            **_gamma_kwargs(gamma))


@_no_autograph
def kaf2d(x, alpha, boundary=3.0, gamma=None, axis=-1, name=None):
  """2D Kernel Activation Function.

  x has 2H channels along `axis`; channel j (x1) is paired with channel j+H
  (x2) and the output has H channels:
  y = sum_k alpha[h, k] exp(-gamma ((x1 - d[k % D])^2 + (x2 - d[k // D])^2)).

  Args:
    x: tensor of rank >= 1 with an even channel count 2H along `axis`.
    alpha: [H, D*D] mixing coefficients, D >= 2.
    boundary: the grid spans [-boundary, boundary]^2.
    gamma: Gaussian bandwidth; by default the op derives
      `default_gamma_2d(boundary, D)` in the compute precision.
    axis: the channel axis.
    name: optional name scope.

  Returns:
    A tensor of x's dtype and shape with H channels along `axis`.
  """
  with tf.name_scope(name or "kaf2d"):
    if _portable.is_active():
      return kaf2d_portable(x, alpha, boundary=boundary, gamma=gamma,
                            axis=axis)
    x, alpha = _op_wrappers.coerce_inputs(x, alpha, "alpha", "KAF")
    if _xla.use_composite():
      return kaf2d_composite(x, alpha, boundary=boundary, gamma=gamma,
                             axis=axis)
    return _ops().tfkaf_kaf2d(x, alpha, boundary=float(boundary),
                              axis=int(axis), **_gamma_kwargs(gamma))


# ---------------------------------------------------------------------------
# Composite (reference) forms.


def _static_axis(x, axis, form):
  """The non-negative channel axis of x (already checked by the op's rule);
  the composite and portable forms need x's rank."""
  rank = x.shape.rank
  if rank is None:
    raise ValueError(f"the {form} KAF needs x of known rank")
  return axis % rank


def _channels_last(x, axis):
  """x with `axis` moved last, and the permutation that undoes it."""
  rank = x.shape.rank
  axis = _static_axis(x, axis, "composite")
  if axis == rank - 1:
    return x, None
  perm = [d for d in range(rank) if d != axis] + [axis]
  inverse = [0] * rank
  for i, d in enumerate(perm):
    inverse[d] = i
  return tf.transpose(x, perm), inverse


def _restore(y, inverse):
  return y if inverse is None else tf.transpose(y, inverse)


def _centres(boundary, num_centres, dtype):
  return tf.linspace(tf.constant(-boundary, dtype),
                     tf.constant(boundary, dtype), num_centres)


def _composite_prologue(x, alpha, boundary, gamma, kernel, axis, two_d):
  """Checked inputs of a composite or portable form: (x, alpha, boundary,
  gamma, D) with the float32 attributes as the op rounds them and gamma
  derived as the op derives it. Bad inputs raise what the fused op raises."""
  x, alpha = _op_wrappers.coerce_inputs(x, alpha, "alpha", "KAF")
  attrs = dict(boundary=float(boundary), axis=int(axis),
               **_gamma_kwargs(gamma))
  if two_d:
    _op_wrappers.check_like_op("tfkaf_kaf2d", [x, alpha], **attrs)
  else:
    _op_wrappers.check_like_op("tfkaf_kaf", [x, alpha], kernel=kernel,
                               **attrs)
  width = alpha.shape[-1]
  if width is None:
    raise ValueError("the composite KAF needs alpha's number of centres "
                     "(alpha.shape[1]) to be known statically")
  side = int(round(math.sqrt(width))) if two_d else width
  return (x, alpha, _f32(boundary), _gamma_value(gamma, boundary, side, two_d),
          side)


def _gamma_value(gamma, boundary, side, two_d):
  """gamma as the op uses it: the float32 attribute, or derived in double
  from the float32 boundary (rounded once to the compute dtype on use)."""
  if gamma is not None and not _derives_gamma(gamma):
    return _f32(gamma)
  return (default_gamma_2d if two_d else default_gamma)(_f32(boundary), side)


def _kernel_values(t, kernel, gamma):
  if kernel == "gaussian":
    return tf.exp(-gamma * tf.square(t))
  if kernel == "relu":
    return tf.nn.relu(t)
  return tf.nn.softplus(t)


def _kernel_derivative(t, kernel, gamma):
  if kernel == "gaussian":
    return -2.0 * gamma * t * tf.exp(-gamma * tf.square(t))
  if kernel == "relu":
    return tf.cast(t > 0, t.dtype)
  return tf.sigmoid(t)


@_no_autograph
def kaf_composite(x, alpha, boundary=3.0, kernel="gaussian", gamma=None,
                  axis=-1):
  """`kaf` as composite TF ops: expands x to [..., C, D] (the reference)."""
  x, alpha, boundary, gamma, side = _composite_prologue(
      x, alpha, boundary, gamma, kernel, axis, two_d=False)
  dtype = x.dtype
  compute = _compute_dtype(dtype)
  xt, inverse = _channels_last(tf.cast(x, compute), axis)
  d = _centres(boundary, side, compute)
  k = _kernel_values(xt[..., None] - d, kernel, gamma)  # [..., C, D]
  y = tf.reduce_sum(k * tf.cast(alpha, compute), axis=-1)
  return tf.cast(_restore(y, inverse), dtype)


def _grid_2d(boundary, side, dtype):
  d = _centres(boundary, side, dtype)
  return tf.tile(d, [side]), tf.repeat(d, side)  # d[k % D], d[k // D]


@_no_autograph
def kaf2d_composite(x, alpha, boundary=3.0, gamma=None, axis=-1):
  """`kaf2d` as composite TF ops: expands to [..., H, D*D] (the reference)."""
  x, alpha, boundary, gamma, side = _composite_prologue(
      x, alpha, boundary, gamma, "gaussian", axis, two_d=True)
  dtype = x.dtype
  compute = _compute_dtype(dtype)
  xt, inverse = _channels_last(tf.cast(x, compute), axis)
  x1, x2 = _split_pairs(xt)
  cx, cy = _grid_2d(boundary, side, compute)
  k = tf.exp(-gamma * (tf.square(x1[..., None] - cx) +
                       tf.square(x2[..., None] - cy)))  # [..., H, D*D]
  y = tf.reduce_sum(k * tf.cast(alpha, compute), axis=-1)
  return tf.cast(_restore(y, inverse), dtype)


def _split_pairs(xt, axis=-1):
  """(x1, x2): channel j and channel j + H of the 2H channels along axis."""
  return tf.split(xt, 2, axis=axis)


# ---------------------------------------------------------------------------
# Portable forms (inference, inside `tfkaf.portable()`).


def _per_channel(values, rank, axis):
  """[C, k] values as [k, 1, .., C, .., 1] (C at 1 + `axis`): they broadcast
  against tf.expand_dims(x, 0) without moving x's channel axis."""
  shape = [values.shape[-1]] + [1] * rank
  shape[1 + axis] = -1
  return tf.reshape(tf.transpose(values), shape)


def _leading(centres, rank):
  """[k] centres as [k, 1, ..., 1], to broadcast against expand_dims(x, 0)."""
  return tf.reshape(centres, [-1] + [1] * rank)


def _portable_start(x, alpha, boundary, gamma, kernel, axis, two_d):
  """Checked inputs: (x and alpha in the compute dtype, x's dtype, boundary,
  gamma, D, rank, axis)."""
  x, alpha, boundary, gamma, side = _composite_prologue(
      x, alpha, boundary, gamma, kernel, axis, two_d=two_d)
  axis = _static_axis(x, int(axis), "portable")
  compute = _compute_dtype(x.dtype)
  return (tf.cast(x, compute), tf.cast(alpha, compute), x.dtype, boundary,
          gamma, side, x.shape.rank, axis)


@_no_autograph
def kaf_portable(x, alpha, boundary=3.0, kernel="gaussian", gamma=None,
                 axis=-1):
  """`kaf` as standard TF ops for inference (what `tfkaf.portable()` traces).

  The same sum as the reference form, over the centres in steps of at most
  PORTABLE_CENTRES_PER_STEP: the largest intermediate is
  [min(D, PORTABLE_CENTRES_PER_STEP), ..., C, ...]. The centres run along a
  new leading axis (x - d is then a contiguous block per centre, which
  broadcasts fast in every runtime) and x's channel axis is never moved
  (alpha is reshaped to broadcast against it instead). Every op is a LiteRT
  builtin and converts to ONNX.
  """
  x, alpha, dtype, boundary, gamma, side, rank, axis = _portable_start(
      x, alpha, boundary, gamma, kernel, axis, two_d=False)
  centres = _centres(boundary, side, x.dtype)
  expanded = tf.expand_dims(x, 0)
  y = None
  for start in range(0, side, PORTABLE_CENTRES_PER_STEP):
    stop = min(start + PORTABLE_CENTRES_PER_STEP, side)
    k = _kernel_values(expanded - _leading(centres[start:stop], rank),
                       kernel, gamma)
    part = tf.reduce_sum(k * _per_channel(alpha[:, start:stop], rank, axis),
                         axis=0)
    y = part if y is None else y + part
  return tf.cast(y, dtype)


@_no_autograph
def kaf2d_portable(x, alpha, boundary=3.0, gamma=None, axis=-1):
  """`kaf2d` as standard TF ops for inference (what `tfkaf.portable()` traces).

  The Gaussian of the grid factorises, exp(-gamma ((x1 - d_a)^2 + (x2 -
  d_b)^2)) = e1[a] e2[b], so y = sum_b e2[b] sum_a alpha[h, b D + a] e1[a]
  with e1, e2 = the D one-dimensional Gaussians of x1, x2: the largest
  intermediate is [D, ..., H, ...] (the reference form builds [..., H, D*D]).
  """
  x, alpha, dtype, boundary, gamma, side, rank, axis = _portable_start(
      x, alpha, boundary, gamma, "gaussian", axis, two_d=True)
  x1, x2 = _split_pairs(x, axis)
  centres = _leading(_centres(boundary, side, x.dtype), rank)
  e1 = tf.exp(-gamma * tf.square(tf.expand_dims(x1, 0) - centres))
  e2 = tf.exp(-gamma * tf.square(tf.expand_dims(x2, 0) - centres))
  y = None
  for b, e2_b in enumerate(tf.unstack(e2, axis=0)):
    row = _per_channel(alpha[:, b * side:(b + 1) * side], rank, axis)
    part = e2_b * tf.reduce_sum(e1 * row, axis=0)
    y = part if y is None else y + part
  return tf.cast(y, dtype)


# Composite first-order gradients (for the second-order gradients).


def _kaf_grad_composite(dy, x, alpha, boundary, kernel, gamma, axis):
  compute = _compute_dtype(x.dtype)
  xt, inverse = _channels_last(tf.cast(x, compute), axis)
  dyt, _ = _channels_last(tf.cast(dy, compute), axis)
  alpha_c = tf.cast(alpha, compute)
  d = _centres(boundary, alpha.shape[-1], compute)
  t = xt[..., None] - d
  dx = dyt * tf.reduce_sum(alpha_c * _kernel_derivative(t, kernel, gamma),
                           axis=-1)
  k = _kernel_values(t, kernel, gamma)
  outer = list(range(xt.shape.rank - 1))
  dalpha = tf.reduce_sum(dyt[..., None] * k, axis=outer)
  return (tf.cast(_restore(dx, inverse), x.dtype),
          tf.cast(dalpha, alpha.dtype))


def _kaf2d_grad_composite(dy, x, alpha, boundary, gamma, axis):
  compute = _compute_dtype(x.dtype)
  side = int(round(math.sqrt(alpha.shape[-1])))
  xt, inverse = _channels_last(tf.cast(x, compute), axis)
  dyt, _ = _channels_last(tf.cast(dy, compute), axis)
  alpha_c = tf.cast(alpha, compute)
  x1, x2 = _split_pairs(xt)
  cx, cy = _grid_2d(boundary, side, compute)
  t1 = x1[..., None] - cx
  t2 = x2[..., None] - cy
  k = tf.exp(-gamma * (tf.square(t1) + tf.square(t2)))
  w = alpha_c * k
  scale = -2.0 * gamma * dyt
  dx1 = scale * tf.reduce_sum(w * t1, axis=-1)
  dx2 = scale * tf.reduce_sum(w * t2, axis=-1)
  dx = tf.concat([dx1, dx2], axis=-1)
  outer = list(range(xt.shape.rank - 1))
  dalpha = tf.reduce_sum(dyt[..., None] * k, axis=outer)
  return (tf.cast(_restore(dx, inverse), x.dtype),
          tf.cast(dalpha, alpha.dtype))


# ---------------------------------------------------------------------------
# Gradient registrations.


def _attrs(op, has_kernel):
  # Eager ops report the Python values they were called with: round them as
  # the float32 attributes were.
  attrs = {"boundary": _f32(op.get_attr("boundary")),
           "gamma": _f32(op.get_attr("gamma")), "axis": op.get_attr("axis")}
  if has_kernel:
    kernel = op.get_attr("kernel")
    attrs["kernel"] = kernel.decode() if isinstance(kernel, bytes) else kernel
  return attrs


@tf.RegisterGradient("Tfkaf>Kaf")
def _kaf_gradient(op, dy):
  x, alpha = op.inputs
  return _ops().tfkaf_kaf_grad(dy, x, alpha, **_attrs(op, True))


@tf.RegisterGradient("Tfkaf>Kaf2d")
def _kaf2d_gradient(op, dy):
  x, alpha = op.inputs
  return _ops().tfkaf_kaf2d_grad(dy, x, alpha, **_attrs(op, False))


def _second_order(op, grads, composite):
  """Gradient of a gradient op via its composite expression."""
  dy, x, alpha = op.inputs
  ddx, ddalpha = grads
  ddx = tf.zeros_like(x) if ddx is None else ddx
  ddalpha = tf.zeros_like(alpha) if ddalpha is None else ddalpha
  with tf.GradientTape() as tape:
    tape.watch([dy, x, alpha])
    dx, dalpha = composite(dy, x, alpha)
  return tape.gradient([dx, dalpha], [dy, x, alpha],
                       output_gradients=[ddx, ddalpha],
                       unconnected_gradients=tf.UnconnectedGradients.ZERO)


@tf.RegisterGradient("Tfkaf>KafGrad")
def _kaf_grad_gradient(op, ddx, ddalpha):
  a = _attrs(op, True)
  return _second_order(
      op, (ddx, ddalpha),
      lambda dy, x, alpha: _kaf_grad_composite(
          dy, x, alpha, a["boundary"], a["kernel"],
          _gamma_value(a["gamma"], a["boundary"], alpha.shape[-1], False),
          a["axis"]))


@tf.RegisterGradient("Tfkaf>Kaf2dGrad")
def _kaf2d_grad_gradient(op, ddx, ddalpha):
  a = _attrs(op, False)
  return _second_order(
      op, (ddx, ddalpha),
      lambda dy, x, alpha: _kaf2d_grad_composite(
          dy, x, alpha, a["boundary"],
          _gamma_value(a["gamma"], a["boundary"],
                       int(round(math.sqrt(alpha.shape[-1]))), True),
          a["axis"]))
