"""Float64 oracle of the linear spline with first-order error bounds.

docs/design.md (section 3): with t = (x - x_min) (K - 1) / (x_max - x_min),
segment i = clip(floor(t), 0, K - 2) and u = t - i, y = c[i] + u (c[i+1] -
c[i]) (linear extrapolation outside the knots), dx = dy (c[i+1] - c[i])
(K - 1) / (x_max - x_min), dc[i] += (1 - u) dy, dc[i+1] += u dy.
All functions expect np.errstate(all="ignore") (see compare.np_oracle).
"""

import types

import numpy as np

from fuzz.bounds import abs_finite
from fuzz.bounds import Expect
from fuzz.bounds import finite
from fuzz.bounds import to_rows
from fuzz.common import f32

__all__ = ["spline_oracle"]


def _segments(case, x_rows, coef, prec):
  """Segment index, position in it and end coefficients of every x, with
  the rounding error of t and the slopes near knots."""
  lo, hi = f32(case["attrs"]["x_min"]), f32(case["attrs"]["x_max"])
  knots = coef.shape[1]
  scale = (knots - 1) / (hi - lo)
  t = (x_rows - lo) * scale
  t_clipped = np.where(t >= 0, t, 0.0)
  t_clipped = np.where(t_clipped <= knots - 2, t_clipped, knots - 2)
  i = np.floor(t_clipped).astype(np.int64)
  ch = np.broadcast_to(np.arange(x_rows.shape[1])[None, :], x_rows.shape)
  c0 = coef[ch, i] if x_rows.size else np.zeros(x_rows.shape)
  c1 = coef[ch, i + 1] if x_rows.size else np.zeros(x_rows.shape)
  err_t = finite(prec.compute * (2 * (np.abs(x_rows) + abs(lo)) * scale
                                 + 3 * np.abs(t) + 1))
  knot = np.round(t)
  seg = types.SimpleNamespace(
      lo=lo, knots=knots, scale=scale, t=t, i=i, u=t - i, ch=ch, c0=c0,
      c1=c1, dc=c1 - c0, err_t=err_t, knot=knot,
      near_knot=np.abs(t - knot) <= 2 * err_t)
  seg.slope_err = _slope_near_knots(seg, coef)
  return seg


def _at(seg, coef, offset):
  """coef at segment index + offset (clipped to the knots) of every x."""
  return coef[seg.ch, np.clip(seg.i + offset, 0, seg.knots - 1)]


def _slope_near_knots(seg, coef):
  """Near a knot the op may use the neighbouring segment: the slope that
  multiplies the rounding error of t is the largest adjacent one."""
  if not seg.t.size:
    return np.abs(seg.dc)
  dc_prev = coef[seg.ch, seg.i] - _at(seg, coef, -1)
  dc_next = _at(seg, coef, 2) - coef[seg.ch, seg.i + 1]
  return np.where(seg.near_knot, np.maximum(
      np.abs(seg.dc), np.maximum(np.abs(dc_prev), np.abs(dc_next))),
                  np.abs(seg.dc))


def _value_nan(seg, coef, x_nan):
  """Where y must be NaN. Within rounding of knot r the op may use segment
  [r-1, r] or [r, r+1]: a NaN coefficient is only certain to show if both
  segments have one."""
  nan_y = x_nan | np.isnan(seg.c0) | np.isnan(seg.c1)
  if not seg.t.size:
    return nan_y
  def seg_nan(j):
    j = np.clip(np.where(np.isfinite(j), j, 0), 0,
                seg.knots - 2).astype(np.int64)
    return np.isnan(coef[seg.ch, j]) | np.isnan(coef[seg.ch, j + 1])
  return np.where(seg.near_knot & np.isfinite(seg.t),
                  x_nan | (seg_nan(seg.knot - 1) & seg_nan(seg.knot)), nan_y)


def _overflow_prone(seg, coef, x_rows, prec):
  """x - x_min or t overflowing the compute type (grids spanning ~the whole
  float range): no value check there. At a knot (t within rounding of an
  integer) the op may pick the other segment: with a non-finite coefficient
  there, 0 * inf = NaN is possible."""
  ovf = ((finite(np.abs(x_rows)) + abs(seg.lo) > prec.big) |
         (finite(np.abs(seg.t)) > prec.big))
  if x_rows.size:
    ovf = ovf | (seg.near_knot & ~(np.isfinite(_at(seg, coef, -1)) &
                                   np.isfinite(_at(seg, coef, 2))))
  return ovf


def _value(seg, coef, x_rows, ovf, prec):
  c0, c1, u, dc = seg.c0, seg.c1, seg.u, seg.dc
  y = c0 + u * dc
  mag_y = abs_finite(c0 * (1 - u)) + abs_finite(c1 * u)
  err_y = finite(seg.slope_err * seg.err_t
                 + prec.compute * 4 * (np.abs(c0) + np.abs(c1) +
                                       np.abs(u * dc))
                 + prec.type * np.abs(y)
                 + 4 * prec.tiny * (1 + np.abs(u))) + 2 * prec.tiny_type
  nan_y = _value_nan(seg, coef, np.isnan(x_rows))
  inf_y = np.isinf(x_rows) | np.isinf(c0) | np.isinf(c1)
  inter = (abs_finite(c0) + abs_finite(c1)) * (1 + abs_finite(u))
  return Expect(y, err_y, nan_y, inf_y, mag_y,
                prone=(inter > prec.big) | ovf)


def _input_grad(seg, y, dy_rows, ovf, prec):
  slope = seg.dc * seg.scale
  dx = dy_rows * slope
  tie = seg.near_knot & (seg.knot >= 1) & (seg.knot <= seg.knots - 2)
  # At a tie the op may take either adjacent segment's slope.
  tie_err = np.where(tie, 4 * np.abs(dy_rows) * seg.scale * seg.slope_err,
                     0.0)
  err_dx = (finite((prec.compute * 4 + prec.type) * np.abs(dx)
                   # flushed subnormal intermediates (dy * dc, then * 1/T)
                   + 8 * prec.tiny * max(1.0, seg.scale)
                   * (1 + np.abs(dy_rows)))
            + finite(tie_err))
  nan_dx = y.nan_req | (np.isnan(dy_rows) & (slope != 0))
  # Overflow-prone where either order of the product may overflow: the
  # op's dy * (dc * scale) or the composite's (dy * dc) * scale (with a
  # wide range, scale is tiny and only the latter overflows).
  prone = (((abs_finite(seg.c0) + abs_finite(seg.c1))
            * np.maximum(1.0, seg.scale)
            * np.maximum(1.0, abs_finite(dy_rows)) > prec.big) | ovf
           | (tie & ~(tie_err <= prec.big)))
  return Expect(dx, err_dx, nan_dx, y.inf_inv | np.isinf(dy_rows),
                np.abs(dy_rows * slope), prone=prone)


def _scatter(seg, pairs, ufunc=np.add, dtype=np.float64):
  """A [C, K] array: ufunc.at of each (offset, values) pair, in order, at
  knot (segment index + offset, clipped) of each x's channel."""
  out = np.zeros((seg.ch.shape[1], seg.knots), dtype)
  rows, index = seg.ch.reshape(-1), seg.i.reshape(-1)
  for offset, values in pairs:
    cols = np.clip(index + offset, 0, seg.knots - 1)
    ufunc.at(out, (rows, cols), values.reshape(-1))
  return out


def _coef_grad(seg, x_rows, dy_rows, ovf, prec):
  """dc[i] += (1 - u) dy, dc[i+1] += u dy; the error of t may move a
  contribution to a neighbouring knot (offsets -1..2)."""
  u, positions = seg.u, x_rows.shape[0]
  w0, w1 = (1 - u) * dy_rows, u * dy_rows
  dcoef = _scatter(seg, [(0, w0), (1, w1)])
  mag = _scatter(seg, [(0, abs_finite(w0)), (1, abs_finite(w1))])
  e = finite(np.abs(dy_rows) * 2 * seg.err_t
             + prec.compute * 4 * (np.abs(w0) + np.abs(w1))
             + 4 * prec.tiny * (1 + np.abs(dy_rows)) * (1 + np.abs(u)))
  errc = _scatter(seg, [(off, e) for off in (-1, 0, 1, 2)])
  errc += prec.compute * (positions + 2) * mag + prec.type * abs_finite(dcoef)
  x_nan, dy_nan = np.isnan(x_rows), np.isnan(dy_rows)
  nan_c = _scatter(seg, [(0, x_nan | (dy_nan & (1 - u != 0))),
                         (1, x_nan | (dy_nan & (u != 0)))],
                   np.logical_or, bool)
  no_channels = np.zeros(x_rows.shape[1], bool)
  chan_inf = ((np.isinf(x_rows) | np.isinf(dy_rows)).any(0) if positions
              else no_channels)
  inf_c = np.zeros(dcoef.shape, bool) | chan_inf[:, None]
  # u * dy overflowing (dy near the float max): the op may form (1 - u) * dy
  # as dy - u * dy.
  dy_ovf = abs_finite(dy_rows) * np.maximum(1.0, abs_finite(u)) > prec.big
  chan_ovf = (ovf | dy_ovf).any(0) if positions else no_channels
  # Within rounding of a knot, the op's u may come out exactly 0 or 1: with
  # an infinite dy, a neighbouring knot then gets 0 * inf = NaN.
  amb = seg.near_knot & np.isinf(dy_rows)
  knot_amb = _scatter(seg, [(off, amb) for off in (-1, 0, 1, 2)],
                      np.logical_or, bool)
  return Expect(dcoef, errc, nan_c, inf_c, mag,
                prone=chan_ovf[:, None] | knot_amb)


def spline_oracle(case, x_rows, coef, dy, prec):
  """Expected y (and dx, dcoef when dy is given), row layout."""
  seg = _segments(case, x_rows, coef, prec)
  ovf = _overflow_prone(seg, coef, x_rows, prec)
  y = _value(seg, coef, x_rows, ovf, prec)
  out = {"y": y}
  if dy is not None:
    dy_rows = to_rows(dy, case["attrs"]["axis"])
    out["dx"] = _input_grad(seg, y, dy_rows, ovf, prec)
    out["dalpha"] = _coef_grad(seg, x_rows, dy_rows, ovf, prec)
  return out
