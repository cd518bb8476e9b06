"""Building blocks of the float64 oracles: an expected output with its error
bound, the precision of a case, and NaN/Inf-tolerant array helpers."""

import collections

import numpy as np

from fuzz import common

__all__ = ["Expect", "Precision", "precision", "flush", "finite",
           "abs_finite", "row_max", "to_rows"]


class Expect:
  """One output: value, error bound, NaN-required, inf-involved, magnitude."""

  def __init__(self, value, err, nan_req, inf_inv, mag, prone=None):
    self.value, self.err, self.nan_req = value, err, nan_req
    self.inf_inv, self.mag = inf_inv, mag
    # Positions where an intermediate of the formula itself overflows the
    # compute type (e.g. 2 gamma (x - d) for gamma near the float32 max).
    self.prone = np.zeros(np.shape(value), bool) if prone is None else prone


# compute / type: unit roundoff of the compute type and of the element type;
# tiny / tiny_type: their smallest normals; big: an intermediate above it may
# overflow the compute type; attr: relative error of a float32 attribute the
# wrapper derived (the default gamma), else 0.
Precision = collections.namedtuple(
    "Precision", "compute type tiny tiny_type big attr")


def precision(dtype, eps_attr=0.0):
  c = common.compute_dtype(dtype)
  return Precision(common.EPS[c], common.EPS[dtype], common.TINY[c],
                   common.TINY[dtype], common.MAX[c] / 16, eps_attr)


def flush(a, tiny):
  """a with |values| < tiny (subnormals of the compute type) set to 0, or a
  itself when there are none."""
  if a is None:
    return a
  sub = (np.abs(a) < tiny) & (a != 0)
  return np.where(sub, np.copysign(0.0, a), a) if sub.any() else a


def finite(a):
  """a with non-finite values set to 0."""
  return np.where(np.isfinite(a), a, 0.0)


def abs_finite(a):
  """|a| with non-finite values set to 0."""
  return np.where(np.isfinite(a), np.abs(a), 0.0)


def row_max(z):
  """Max over the last axis ignoring NaN (0 for empty rows)."""
  if z.shape[-1] == 0:
    return np.zeros(z.shape[:-1] + (1,))
  return np.max(np.where(np.isnan(z), 0.0, z), axis=-1, keepdims=True)


def to_rows(a, axis):
  """[..., C, ...] -> [P, C] with the channel axis last."""
  a = np.asarray(a, np.float64)
  if not a.ndim:
    return a.reshape(1, 1)
  a = np.moveaxis(a, axis, -1)
  return a.reshape(int(np.prod(a.shape[:-1], dtype=np.int64)), a.shape[-1])
