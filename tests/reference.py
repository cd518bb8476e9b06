"""The one NumPy reference for tfkaf's ops, written from the formulas.

Every test file that checks a value of KAF, 2D-KAF or the linear spline
compares against these functions (float64), never against tfkaf's own code.
The formulas are in docs/design.md (sections 1-3):

  KAF       f(x) = sum_d alpha[c, d] k(x - d_d), centres d_d evenly spaced on
            [-boundary, boundary], k gaussian exp(-gamma t^2), relu or
            softplus; default gamma = 1 / (8 step^2).
  2D-KAF    x split in halves (x1, x2) along the channel axis;
            f = sum_k alpha[c, k] exp(-gamma ((x1 - cx_k)^2 + (x2 - cy_k)^2))
            on a side x side grid; default gamma = 1 / (4 step^2).
  spline    f(x) = (1 - u) c[i] + u c[i + 1] on K knots over [x_min, x_max],
            linear extrapolation outside it.
"""

import math

import numpy as np

KERNELS = ("gaussian", "relu", "softplus")


def f32(value):
  """The ops' float attributes are float32: the value they really use."""
  return float(np.float32(value))


def np_gamma(boundary, d, two_d=False):
  """The default gamma for D centres on [-boundary, boundary]."""
  step = 2.0 * boundary / (d - 1)
  return 1.0 / ((4.0 if two_d else 8.0) * step * step)


def _gamma(gamma, boundary, d, two_d=False):
  """gamma as the op uses it: the given one (a float32 attribute), else
  derived from the float32 boundary in float64, unrounded (the op derives it
  in its compute precision)."""
  if gamma is None:
    return np_gamma(f32(boundary), d, two_d)
  return f32(gamma)


def _last(a, axis):
  return np.moveaxis(a, axis, -1)


def _centres(boundary, d):
  return np.linspace(-f32(boundary), f32(boundary), d)


def np_basis(t, kernel, gamma):
  if kernel == "gaussian":
    return np.exp(-gamma * t * t)
  if kernel == "relu":
    return np.maximum(t, 0.0)
  return np.logaddexp(0.0, t)


def np_basis_derivative(t, kernel, gamma):
  if kernel == "gaussian":
    return -2.0 * gamma * t * np.exp(-gamma * t * t)
  if kernel == "relu":
    return (t > 0).astype(np.float64)
  return 1.0 / (1.0 + np.exp(-t))


def np_kaf(x, alpha, boundary=3.0, kernel="gaussian", gamma=None, axis=-1):
  """KAF forward, float64."""
  x = np.asarray(x, np.float64)
  alpha = np.asarray(alpha, np.float64)
  d_count = alpha.shape[1]
  gamma = _gamma(gamma, boundary, d_count)
  t = _last(x, axis)[..., None] - _centres(boundary, d_count)
  y = (np_basis(t, kernel, gamma) * alpha).sum(-1)
  return np.moveaxis(y, -1, axis)


def np_kaf_grads(dy, x, alpha, boundary=3.0, kernel="gaussian", gamma=None,
                 axis=-1):
  """KAF backward, float64: (dx, dalpha)."""
  x = np.asarray(x, np.float64)
  dy = np.asarray(dy, np.float64)
  alpha = np.asarray(alpha, np.float64)
  d_count = alpha.shape[1]
  gamma = _gamma(gamma, boundary, d_count)
  xt, dyt = _last(x, axis), _last(dy, axis)
  t = xt[..., None] - _centres(boundary, d_count)
  dx = dyt * (np_basis_derivative(t, kernel, gamma) * alpha).sum(-1)
  k = np_basis(t, kernel, gamma)
  dalpha = (dyt[..., None] * k).reshape(-1, *k.shape[-2:]).sum(0)
  return np.moveaxis(dx, -1, axis), dalpha


def kaf2d_grid(boundary, side):
  """The 2D-KAF centres (cx, cy), row-major: cx varies fastest."""
  d = _centres(boundary, side)
  k = np.arange(side * side)
  return d[k % side], d[k // side]


def _np_kaf2d_parts(x, alpha, boundary, gamma, axis):
  x = np.asarray(x, np.float64)
  alpha = np.asarray(alpha, np.float64)
  side = int(round(math.sqrt(alpha.shape[1])))
  gamma = _gamma(gamma, boundary, side, two_d=True)
  cx, cy = kaf2d_grid(boundary, side)
  xt = _last(x, axis)
  h = xt.shape[-1] // 2
  t1 = xt[..., :h, None] - cx
  t2 = xt[..., h:, None] - cy
  e = np.exp(-gamma * (t1 * t1 + t2 * t2))
  return alpha, gamma, t1, t2, e


def np_kaf2d(x, alpha, boundary=3.0, gamma=None, axis=-1):
  """2D-KAF forward, float64."""
  alpha, _, _, _, e = _np_kaf2d_parts(x, alpha, boundary, gamma, axis)
  return np.moveaxis((e * alpha).sum(-1), -1, axis)


def np_kaf2d_grads(dy, x, alpha, boundary=3.0, gamma=None, axis=-1):
  """2D-KAF backward, float64: (dx, dalpha)."""
  alpha, gamma, t1, t2, e = _np_kaf2d_parts(x, alpha, boundary, gamma, axis)
  dyt = _last(np.asarray(dy, np.float64), axis)
  w = e * alpha
  dx1 = -2.0 * gamma * dyt * (w * t1).sum(-1)
  dx2 = -2.0 * gamma * dyt * (w * t2).sum(-1)
  dx = np.moveaxis(np.concatenate([dx1, dx2], -1), -1, axis)
  dalpha = (dyt[..., None] * e).reshape(-1, *e.shape[-2:]).sum(0)
  return dx, dalpha


def np_segments(x, knots, x_min, x_max):
  """(segment index i, position u in it, knot spacing) for each x."""
  spacing = (x_max - x_min) / (knots - 1)
  t = (x - x_min) / spacing
  with np.errstate(invalid="ignore"):
    i = np.clip(np.floor(np.where(np.isfinite(t), t, 0.0)), 0, knots - 2)
  i = np.where(np.isposinf(t), knots - 2, i).astype(np.int64)
  return i, t - i, spacing


def np_spline(x, c, x_min, x_max, axis=-1):
  """f(x) per channel along `axis`; linear extrapolation outside the grid."""
  x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
  c = np.asarray(c, np.float64)
  i, u, _ = np_segments(x, c.shape[1], x_min, x_max)
  ch = np.broadcast_to(np.arange(c.shape[0]), x.shape)
  y = (1.0 - u) * c[ch, i] + u * c[ch, i + 1]
  return np.moveaxis(y, -1, axis)


def np_spline_grad(dy, x, c, x_min, x_max, axis=-1):
  """(dx, dc): dx = dy (c[i+1] - c[i]) / T; dc[i] += (1-u) dy, [i+1] += u dy."""
  x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
  dy = np.moveaxis(np.asarray(dy, np.float64), axis, -1)
  c = np.asarray(c, np.float64)
  i, u, spacing = np_segments(x, c.shape[1], x_min, x_max)
  ch = np.broadcast_to(np.arange(c.shape[0]), x.shape)
  dx = dy * (c[ch, i + 1] - c[ch, i]) / spacing
  dc = np.zeros_like(c)
  np.add.at(dc, (ch.ravel(), i.ravel()), ((1.0 - u) * dy).ravel())
  np.add.at(dc, (ch.ravel(), i.ravel() + 1), (u * dy).ravel())
  return np.moveaxis(dx, -1, axis), dc


def np_leaky_relu(x, slope=0.01):
  return np.where(x >= 0, x, slope * x)
