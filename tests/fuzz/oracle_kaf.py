"""Float64 oracle of KAF and 2D-KAF with first-order error bounds.

The formulas are those of docs/design.md (sections 1-2): y = sum_d alpha k,
dx = dy sum_d alpha k', dalpha = sum over positions of dy k. Every output
comes as a `bounds.Expect`: the value, a rounding-error bound for the case's
element and compute types, where a NaN input must give NaN, where
infinities are involved, and where an intermediate may overflow.
All functions expect np.errstate(all="ignore") (see compare.np_oracle).
"""

import math
import types

import numpy as np

from fuzz.bounds import abs_finite
from fuzz.bounds import Expect
from fuzz.bounds import finite
from fuzz.bounds import row_max
from fuzz.bounds import to_rows
from fuzz.common import f32

__all__ = ["kaf_oracle", "kaf2d_oracle"]


def _kernel_terms(t, kernel, gamma):
  """(gamma t^2 or 0, k(t), k'(t), k''(t)) of a 1-D kernel."""
  if kernel == "gaussian":
    z = gamma * t * t
    k = np.exp(-z)
    dk = -2.0 * gamma * t * k
    d2k = (4.0 * gamma * gamma * t * t - 2.0 * gamma) * k
  elif kernel == "relu":
    z = np.zeros_like(t)
    k = np.where(t > 0, t, np.where(np.isnan(t), np.nan, 0.0))
    dk = np.where(t > 0, 1.0, np.where(np.isnan(t), np.nan, 0.0))
    d2k = np.where(np.isnan(t), np.nan, 0.0)
  else:
    z = np.zeros_like(t)
    k = np.logaddexp(0.0, t)
    e = np.exp(-np.abs(t))
    dk = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    dk = np.where(np.isnan(t), np.nan, dk)
    d2k = dk * (1.0 - dk)
  return z, k, dk, d2k


def _inf_rows(alpha, channels):
  """[1, channels]: whether a row of alpha holds an infinity."""
  if alpha.size:
    return np.isinf(alpha).any(axis=1)[None]
  return np.zeros((1, channels), bool)


def _kernel_output(coeffs, k, err_k, in_nan, in_inf, inter, prec):
  """y = sum_d alpha k over the last axis, with its bound."""
  n = coeffs.shape[-1]
  terms = coeffs * k
  y = terms.sum(-1)
  mag_y = abs_finite(terms).sum(-1)
  # + flushed products: each alpha k below the smallest normal may be 0.
  err_y = (finite(np.abs(coeffs) * err_k).sum(-1) + prec.compute * n * mag_y
           + prec.type * abs_finite(y) + 4 * prec.tiny * n)
  nan_y = in_nan | (np.isnan(coeffs) & (k != 0)).any(-1)
  return Expect(y, err_y, nan_y, in_inf, mag_y, prone=inter > prec.big)


def _input_grad_part(coeffs, dk, err_dk, dy_rows, t_abs, in_nan, gamma,
                     prec):
  """(dx, bound, NaN required, magnitude) of dx = dy sum_d alpha k'."""
  n = coeffs.shape[-1]
  dterms = coeffs * dk
  s = dterms.sum(-1)
  dx = dy_rows * s
  mag_s = abs_finite(dterms).sum(-1)
  # Flushed products: alpha k' terms below the smallest normal (scaled by
  # dy afterwards), and the composite's autodiff chain, which starts from
  # dy (dy alpha, then times k, gamma and 2 t): any of those below the
  # smallest normal is 0, and what it lost is scaled by the factors after it
  # (at most (1 + 2 |t|) (1 + 2 gamma)), not by dy.
  flushed = (np.abs(dy_rows) * finite(1 + 2 * gamma * t_abs).sum(-1)
             + finite((1 + 2 * t_abs) * (1 + 2 * gamma)).sum(-1))
  err = (np.abs(dy_rows) * (finite(np.abs(coeffs) * err_dk).sum(-1)
                            + prec.compute * n * mag_s)
         + 4 * prec.tiny * flushed
         + (prec.type + 2 * prec.compute) * abs_finite(dx))
  nan = (in_nan | (np.isnan(dy_rows) & (s != 0)) |
         (np.isnan(coeffs) & (dk != 0)).any(-1))
  return dx, finite(err), nan, np.abs(dy_rows) * mag_s


def _kernel_dalpha(dy_rows, k, err_k, in_nan, in_inf, prec):
  """dalpha = sum over positions of dy * k ([P, C, D] -> [C, D]) of a KAF or
  2D-KAF, with its error bound; in_nan / in_inf: [P, C] input specials."""
  w = dy_rows[..., None] * k
  da = w.sum(0)
  positions = dy_rows.shape[0]
  mag_da = abs_finite(w).sum(0)
  err_da = (finite(np.abs(dy_rows)[..., None] * err_k).sum(0)
            + prec.compute * (positions + 2) * mag_da
            + prec.type * abs_finite(da) + 4 * prec.tiny * positions)
  if positions:
    nan_da = (in_nan[..., None] |
              (np.isnan(dy_rows)[..., None] & (k != 0))).any(0)
    inf_da = np.broadcast_to((in_inf | np.isinf(dy_rows)).any(0)[:, None],
                             da.shape)
    # Row-wide: the op may form dy * k for every centre of a row at once
    # (recurrences), so a huge dy can overflow any entry of its row.
    row = (abs_finite(dy_rows)[..., None] * np.maximum(1.0, finite(k))
           ).sum(-1).max(0)
  else:
    nan_da = inf_da = np.zeros_like(da, bool)
    row = np.zeros(da.shape[0])
  return Expect(da, err_da, nan_da, inf_da, mag_da,
                prone=np.broadcast_to((row * 4 > prec.big)[:, None],
                                      da.shape))


def _sharp_gaussian_bounds(t_abs, k, dk, gamma, x_reach, prec):
  """Non-linear bound for sharp kernels (huge gamma): the op's x - d may be
  off by delta, which can move a needle-like exp(-g t^2) between 0 and 1;
  bounds k and dk over |t| +- delta. Returns the extra (err_k, err_dk)."""
  delta = 4.0 * prec.compute * x_reach
  s_lo = np.maximum(t_abs - delta, 0.0)
  s_hi = t_abs + delta
  k_hi = np.exp(-gamma * s_lo * s_lo)
  peak = 1.0 / math.sqrt(2.0 * gamma) if gamma > 0 else math.inf
  dk_hi = np.where((s_lo <= peak) & (peak <= s_hi),
                   math.sqrt(2.0 * gamma / math.e),
                   2.0 * gamma * np.maximum(s_lo * k_hi,
                                            s_hi * np.exp(-gamma * s_hi
                                                          * s_hi)))
  return (finite(k_hi - np.abs(k)),
          finite(np.maximum(dk_hi - np.abs(dk), 0.0) * 2.0))


def _kaf_basis(x_rows, num_centres, boundary, gamma, kernel, prec):
  """Kernel values at t = x - d ([P, C, D]) with their error bounds."""
  centres = np.linspace(-boundary, boundary, num_centres)
  t = x_rows[..., None] - centres
  z, k, dk, d2k = _kernel_terms(t, kernel, gamma)
  x_reach = np.abs(x_rows)[..., None] + boundary  # bounds |x| + |d|
  gaussian = kernel == "gaussian"
  # Relative rounding of the kernel evaluation (exp argument, sums).
  rel = (8.0 * (1.0 + z + np.minimum(row_max(z), 200.0) + num_centres)
         if gaussian else (8.0 + 2.0 * num_centres))
  eps = prec.compute
  err_k = finite(eps * (rel * np.abs(k) + 2.0 * np.abs(dk) * x_reach)
                 + prec.attr * np.abs(k) * z + 1e3 * prec.tiny)
  err_dk = finite(eps * (rel * np.abs(dk) + 2.0 * np.abs(d2k) * x_reach)
                  + prec.attr * np.abs(dk) * (1.0 + z)
                  + 1e3 * prec.tiny * (1.0 + 2.0 * gamma * finite(np.abs(t))))
  tie = None
  if gaussian:
    extra_k, extra_dk = _sharp_gaussian_bounds(finite(np.abs(t)), k, dk,
                                               gamma, x_reach, prec)
    err_k = err_k + extra_k
    err_dk = err_dk + extra_dk
  else:
    # x within rounding of a kink: the op may take either side's slope.
    tie = np.abs(t) <= 8.0 * eps * x_reach
    err_dk = err_dk + np.where(tie, 1.0, 0.0)
  return types.SimpleNamespace(t=t, k=k, dk=dk, err_k=err_k, err_dk=err_dk,
                               tie=tie, gaussian=gaussian)


def _kaf_input_grad(basis, coeffs, x_rows, dy_rows, in_inf, inter, boundary,
                    gamma, prec):
  dx, err, nan, mag = _input_grad_part(coeffs, basis.dk, basis.err_dk,
                                       dy_rows, np.abs(basis.t),
                                       np.isnan(x_rows), gamma, prec)
  scale_dy = np.maximum(1.0, abs_finite(dy_rows))
  # A kink of relu within rounding of x: the op may count that centre or
  # not, which with an infinite coefficient decides between a finite and an
  # infinite result.
  kink_inf = ((basis.tie & ~np.isfinite(coeffs)).any(-1)
              if not basis.gaussian else np.zeros(x_rows.shape, bool))
  prone = ((basis.gaussian & (2 * gamma * (np.abs(x_rows) + boundary)
                              > prec.big))
           | (inter * scale_dy * (1 + 2 * gamma) > prec.big) | kink_inf)
  return Expect(dx, err, nan, in_inf | np.isinf(dy_rows), mag, prone=prone)


def kaf_oracle(case, x_rows, alpha, dy, gamma, prec):
  """Expected y (and dx, dalpha when dy is given) of KAF, row layout."""
  boundary = f32(case["attrs"]["boundary"])
  basis = _kaf_basis(x_rows, alpha.shape[1], boundary, gamma,
                     case["attrs"]["kernel"], prec)
  coeffs = alpha[None]                                   # [1, C, D]
  x_nan, x_inf = np.isnan(x_rows), np.isinf(x_rows)
  in_inf = x_inf | _inf_rows(alpha, x_rows.shape[1])
  # Intermediates of reasonable evaluation orders (alpha k (x - d), sums of
  # |alpha|) overflowing the compute type: no value check there.
  inter = (abs_finite(coeffs) *
           np.maximum(1.0, finite(np.abs(basis.t)))).sum(-1)
  out = {"y": _kernel_output(coeffs, basis.k, basis.err_k, x_nan, in_inf,
                             inter, prec)}
  if dy is not None:
    dy_rows = to_rows(dy, case["attrs"]["axis"])
    out["dx"] = _kaf_input_grad(basis, coeffs, x_rows, dy_rows, in_inf,
                                inter, boundary, gamma, prec)
    out["dalpha"] = _kernel_dalpha(dy_rows, basis.k, basis.err_k, x_nan,
                                   x_inf, prec)
  return out


def _kaf2d_basis(x1, x2, side, boundary, gamma, prec):
  """The 2-D Gaussian k at (x1 - cx, x2 - cy) ([P, H, side^2]), its partial
  derivatives k1, k2, and their error bounds."""
  grid = np.linspace(-boundary, boundary, side)
  t1 = x1[..., None] - np.tile(grid, side)
  t2 = x2[..., None] - np.repeat(grid, side)
  z = gamma * (t1 * t1 + t2 * t2)
  k = np.exp(-z)
  k1 = -2.0 * gamma * t1 * k
  k2 = -2.0 * gamma * t2 * k
  k11 = (4.0 * gamma * gamma * t1 * t1 - 2.0 * gamma) * k
  k22 = (4.0 * gamma * gamma * t2 * t2 - 2.0 * gamma) * k
  k12 = 4.0 * gamma * gamma * t1 * t2 * k
  reach1 = np.abs(x1)[..., None] + boundary
  reach2 = np.abs(x2)[..., None] + boundary
  rel = 8.0 * (1.0 + z + np.minimum(row_max(z), 200.0) + 2 * side)
  eps = prec.compute
  err_k = finite(eps * (rel * k + 2 * np.abs(k1) * reach1
                        + 2 * np.abs(k2) * reach2)
                 + prec.attr * k * z + 1e3 * prec.tiny)
  floor = 1e3 * prec.tiny * (1 + 2 * gamma * (finite(np.abs(t1)) +
                                              finite(np.abs(t2))))
  err_k1 = finite(eps * (rel * np.abs(k1) + 2 * np.abs(k11) * reach1
                         + 2 * np.abs(k12) * reach2)
                  + prec.attr * np.abs(k1) * (1 + z) + floor)
  err_k2 = finite(eps * (rel * np.abs(k2) + 2 * np.abs(k12) * reach1
                         + 2 * np.abs(k22) * reach2)
                  + prec.attr * np.abs(k2) * (1 + z) + floor)
  # Non-linear bound for sharp kernels (see _sharp_gaussian_bounds).
  delta1, delta2 = 4.0 * eps * reach1, 4.0 * eps * reach2
  s1 = np.maximum(finite(np.abs(t1)) - delta1, 0.0)
  s2 = np.maximum(finite(np.abs(t2)) - delta2, 0.0)
  k_hi = np.exp(-gamma * (s1 * s1 + s2 * s2))
  err_k = err_k + finite(k_hi - k)
  err_k1 = err_k1 + finite(2 * gamma * (finite(np.abs(t1)) + delta1) * k_hi
                           - np.abs(k1)) * 2
  err_k2 = err_k2 + finite(2 * gamma * (finite(np.abs(t2)) + delta2) * k_hi
                           - np.abs(k2)) * 2
  return types.SimpleNamespace(t1=t1, t2=t2, k=k, k1=k1, k2=k2, err_k=err_k,
                               err_k1=err_k1, err_k2=err_k2)


def _kaf2d_input_grad(basis, coeffs, x1, x2, dy_rows, pair_nan, in_inf,
                      inter, boundary, gamma, prec):
  """dx of both halves, concatenated along the channel axis."""
  t_abs = np.abs(basis.t1) + np.abs(basis.t2)
  parts = [_input_grad_part(coeffs, dk, err_dk, dy_rows, t_abs, pair_nan,
                            gamma, prec)
           for dk, err_dk in ((basis.k1, basis.err_k1),
                              (basis.k2, basis.err_k2))]
  dx, err, nan, mag = [np.concatenate([p1, p2], axis=1)
                       for p1, p2 in zip(*parts)]
  inf = in_inf | np.isinf(dy_rows)
  over = ((2 * gamma * (np.maximum(np.abs(x1), np.abs(x2)) + boundary)
           > prec.big) |
          (inter * np.maximum(1.0, abs_finite(dy_rows)) * (1 + 2 * gamma)
           > prec.big))
  return Expect(dx, err, nan, np.concatenate([inf, inf], axis=1), mag,
                prone=np.concatenate([over, over], axis=1))


def kaf2d_oracle(case, x_rows, alpha, dy, gamma, prec):
  """Expected y (and dx, dalpha when dy is given) of 2D-KAF, row layout."""
  boundary = f32(case["attrs"]["boundary"])
  side = int(round(math.sqrt(alpha.shape[1])))
  half = x_rows.shape[1] // 2
  x1, x2 = x_rows[:, :half], x_rows[:, half:]
  basis = _kaf2d_basis(x1, x2, side, boundary, gamma, prec)
  coeffs = alpha[None]
  pair_nan = np.isnan(x1) | np.isnan(x2)
  pair_inf = np.isinf(x1) | np.isinf(x2)
  in_inf = pair_inf | _inf_rows(alpha, half)
  t_max = np.maximum(1.0, np.maximum(np.abs(basis.t1), np.abs(basis.t2)))
  inter = (abs_finite(coeffs) * finite(t_max)).sum(-1)
  out = {"y": _kernel_output(coeffs, basis.k, basis.err_k, pair_nan, in_inf,
                             inter, prec)}
  if dy is not None:
    dy_rows = to_rows(dy, case["attrs"]["axis"])
    out["dx"] = _kaf2d_input_grad(basis, coeffs, x1, x2, dy_rows, pair_nan,
                                  in_inf, inter, boundary, gamma, prec)
    out["dalpha"] = _kernel_dalpha(dy_rows, basis.k, basis.err_k, pair_nan,
                                   pair_inf, prec)
  return out
