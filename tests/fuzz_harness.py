"""Crash-isolated execution and checking of tfkaf op cases.

Used by tests/test_fuzz_ops.py (hypothesis), tests/test_reliability.py (smoke
corpus, leaks, concurrency) and tools/fuzz_long.sh / tools/asan_check.sh.

Pieces:
- `build_case(params)`: a case (op, call, mode, dtypes, float64 values,
  attributes, graph-mode placeholder shapes) from a dict of parameters,
  deterministically (values come from a seeded NumPy generator).
- `Worker`: a persistent subprocess (this file run as a script) that imports
  TensorFlow and tfkaf once and executes cases sent over a pipe: the op (raw
  op, Python wrapper, wrapper under GradientTape, or a v1 graph built with
  partially-known placeholder shapes) and the composite reference
  `tfkaf.reference` in float64. A crash (signal, sanitizer abort) or a hang
  kills only the worker: it is reported as `OpCrashed` / `OpHung` (a
  BaseException, so that hypothesis stops at once instead of shrinking
  through worker restarts) naming the case and with a reproducer; the next
  case gets a fresh worker.
- `expected_problems(...)`: the validity oracle (what must be rejected, with
  which words in the message), from full shapes (run time) or from
  partially-known shapes (what must fail at graph construction).
- `np_oracle(...)`: the formulas of docs/design.md, sections 1-3 in float64 NumPy,
  with a first-order rounding-error bound per output element, the positions
  where NaN inputs must give NaN, and where infinities are involved.
- `check_case(case, result)`: returns a list of failure strings (empty: the
  case passed).

Also the subprocess entry points for the leak check and the concurrency /
determinism checks (`python fuzz_harness.py --leak|--threads|...`).
"""

import json
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
UNSUPPORTED_DTYPES = ("int32", "int64", "uint8", "bool", "complex64")
OPS = ("kaf", "kaf2d", "spline")
KERNELS = ("gaussian", "relu", "softplus")

# Machine constants of the element types (bfloat16: 8-bit mantissa).
_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23,
        "float64": 2.0**-52}
_TINY = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126,
         "float64": 2.0**-1022}
_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38,
        "float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
_SUBNORMAL = {"float16": 2.0**-20, "bfloat16": 2.0**-130,
              "float32": 2.0**-140, "float64": 2.0**-1060}


def compute_dtype(dtype):
  return "float64" if dtype == "float64" else "float32"


def f32(value):
  """value rounded to float32 (the ops' float attributes), as a Python float."""
  with np.errstate(over="ignore"):
    return float(np.float32(value))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def specials(dtype):
  d = dtype if dtype in FLOAT_DTYPES else "float32"
  return np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, _SUBNORMAL[d],
                   -_SUBNORMAL[d], 0.0, -0.0, _MAX[d], -_MAX[d], 1e4, -1e4,
                   _TINY[d], 3.0, -3.0], np.float64)


def default_gamma(op, boundary, width):
  """docs/design.md: 1/(8 step^2) (KAF), 1/(4 step^2) (2D-KAF); None if undefined."""
  if op == "kaf2d":
    side = int(round(math.sqrt(width))) if width > 0 else 0
    if side * side != width or side < 2:
      return None
    d, factor = side, 4.0
  else:
    if width < 2:
      return None
    d, factor = width, 8.0
  if not (math.isfinite(boundary) and boundary > 0):
    return None
  step = 2.0 * boundary / (d - 1)
  try:
    return 1.0 / (factor * step * step)
  except ZeroDivisionError:
    return math.inf


def _values(rng, shape, scale, special_frac, grid, dtype):
  n = int(np.prod(shape, dtype=np.int64)) if shape else 1
  v = rng.standard_normal(n) * scale
  if grid is not None and len(grid) and n:
    on_grid = rng.random(n) < 0.3
    picks = rng.choice(grid, n)
    jitter = rng.choice([0.0, 0.0, 1.0, -1.0], n) * np.abs(picks) * 2e-7
    v = np.where(on_grid, picks + jitter, v)
  if special_frac > 0 and n:
    mask = rng.random(n) < special_frac
    v = np.where(mask, rng.choice(specials(dtype), n), v)
  return v.reshape(shape)


def build_case(p):
  """A case from parameters `p` (a dict; see tests/test_fuzz_ops.py)."""
  op, call, mode = p["op"], p["call"], p["mode"]
  rng = np.random.default_rng(p.get("seed", 0))
  rank = p["rank"]
  dims = list(p["dims"])[:rank]
  while len(dims) < rank:
    dims.append(1)
  axis = p["axis"]
  channels = p["channels"]
  if rank > 0 and -rank <= axis < rank:
    dims[axis % rank] = channels
  x_shape = tuple(dims)
  width = p["width"]
  rows = channels // 2 if op == "kaf2d" else channels
  if rank == 0 or not -rank <= axis < rank:
    rows = p.get("rows_if_no_axis", 2)
  alpha_shape = {
      "ok": (rows, width), "rows+1": (rows + 1, width),
      "rows-1": (max(rows - 1, 0) if rows else 1, width),
      "rank1": (width,), "rank3": (rows, width, 1), "rank0": (),
  }[p.get("alpha_kind", "ok")]
  attrs = {"axis": axis}
  if op == "spline":
    attrs["x_min"], attrs["x_max"] = p["x_min"], p["x_max"]
    lo, hi = f32(p["x_min"]), f32(p["x_max"])
    if (math.isfinite(lo) and math.isfinite(hi) and lo < hi and
        width >= 2 and hi - lo > 0):
      grid = np.linspace(lo, hi, min(width, 64))
    else:
      grid = None
  else:
    attrs["boundary"] = p["boundary"]
    attrs["gamma"] = p["gamma"]
    if op == "kaf":
      attrs["kernel"] = p["kernel"]
    b = f32(p["boundary"])
    side = width if op == "kaf" else int(round(math.sqrt(max(width, 0))))
    grid = (np.linspace(-b, b, min(side, 64))
            if math.isfinite(b) and b > 0 and side >= 2 else None)
  dtype = p["dtype"]
  x = _values(rng, x_shape, p["x_scale"], p["x_special"], grid, dtype)
  alpha = _values(rng, alpha_shape, p["alpha_scale"], p["alpha_special"],
                  None, dtype)
  case = {"op": op, "call": call, "mode": mode, "dtype": dtype,
          "alpha_dtype": p.get("alpha_dtype", dtype), "x": x, "alpha": alpha,
          "attrs": attrs, "dy": None, "dy_dtype": None}
  if call == "grad":
    y_shape = list(x_shape)
    if op == "kaf2d" and rank > 0 and -rank <= axis < rank:
      y_shape[axis % rank] = channels // 2
    kind = p.get("dy_kind", "ok")
    if kind == "bad_dim" and y_shape:
      y_shape[-1] += 1
    elif kind == "bad_rank":
      y_shape = y_shape + [1]
    case["dy"] = _values(rng, tuple(y_shape), p.get("dy_scale", 1.0),
                         p["dy_special"], None, dtype)
    case["dy_dtype"] = p.get("dy_dtype", dtype)
    if mode == "wrapper" and dtype not in FLOAT_DTYPES:
      case["dy_dtype"] = "float32"  # the wrapper computes in float32
  if mode == "graph":
    case["graph"] = {
        "x": _graph_shape(x_shape, p.get("x_none", ()),
                          p.get("x_unknown_rank", False)),
        "alpha": _graph_shape(alpha_shape, p.get("alpha_none", ()),
                              p.get("alpha_unknown_rank", False)),
    }
    if call == "grad":
      case["graph"]["dy"] = _graph_shape(case["dy"].shape,
                                         p.get("dy_none", ()),
                                         p.get("dy_unknown_rank", False))
  return case


def _graph_shape(shape, none_mask, unknown_rank):
  if unknown_rank:
    return None
  none_mask = list(none_mask) + [False] * len(shape)
  return [None if none_mask[i] else int(d) for i, d in enumerate(shape)]


def _fmt_array(a):
  a = np.asarray(a)
  def one(v):
    if np.isnan(v):
      return "nan"
    if np.isinf(v):
      return "inf" if v > 0 else "-inf"
    return repr(float(v))
  body = ", ".join(one(v) for v in a.reshape(-1))
  return f"np.array([{body}], np.float64).reshape({tuple(a.shape)})"


def describe(case):
  """A short label and a stand-alone Python reproducer of the case."""
  op, call, mode = case["op"], case["call"], case["mode"]
  lines = [
      "import numpy as np, tensorflow as tf, tfkaf",
      "import tfkaf.reference",
      "nan, inf = np.nan, np.inf",
      f"x = tf.cast(tf.constant({_fmt_array(case['x'])}), "
      f"tf.{case['dtype']})",
      f"alpha = tf.cast(tf.constant({_fmt_array(case['alpha'])}), "
      f"tf.{case['alpha_dtype']})",
  ]
  if case["dy"] is not None:
    lines.append(f"dy = tf.cast(tf.constant({_fmt_array(case['dy'])}), "
                 f"tf.{case['dy_dtype']})")
  a = dict(case["attrs"])
  if mode == "raw" or mode == "graph":
    if op != "spline" and a.get("gamma") is None:
      g = default_gamma(op, f32(a["boundary"]), _width(case))
      a["gamma"] = 1.0 if g is None else g
    raw = {"kaf": "tfkaf_kaf", "kaf2d": "tfkaf_kaf2d",
           "spline": "tfkaf_linear_spline"}[op]
    if call == "grad":
      raw += "_grad"
    args = "dy, x, alpha" if call == "grad" else "x, alpha"
    kw = ", ".join(f"{k}={v!r}" for k, v in sorted(a.items()))
    lines.append(f"print(tfkaf.load_ops().{raw}({args}, {kw}))")
    if mode == "graph":
      lines.insert(0, f"# graph mode, placeholder shapes {case['graph']}")
  else:
    fn = {"kaf": "kaf", "kaf2d": "kaf2d", "spline": "linear_spline"}[op]
    kw = ", ".join(f"{k}={v!r}" for k, v in sorted(a.items()))
    if call == "grad":
      lines += ["with tf.GradientTape() as tape:",
                "  tape.watch([x, alpha])",
                f"  y = tfkaf.ops.{fn}(x, alpha, {kw})",
                "print(y, tape.gradient(y, [x, alpha], output_gradients=dy))"]
    else:
      lines.append(f"print(tfkaf.ops.{fn}(x, alpha, {kw}))")
  label = (f"{op}/{call}/{mode} dtype={case['dtype']} alpha_dtype="
           f"{case['alpha_dtype']} x{tuple(case['x'].shape)} "
           f"alpha{tuple(case['alpha'].shape)}"
           + (f" dy{tuple(case['dy'].shape)}" if case["dy"] is not None
              else "") + f" attrs={case['attrs']}")
  return label, "\n".join(lines)


def _width(case):
  s = case["alpha"].shape
  return int(s[-1]) if len(s) >= 1 else 0


# --------------------------------------------------------------------------
# Validity oracle
# --------------------------------------------------------------------------

_KW_TYPE = ("type", "dtype", "attr", "allowed", "float", "half", "double",
            "bfloat16", "int", "bool", "complex")
_KW_ALPHA = ("alpha", "coefficient", "rank", "2-d", "2d", "dimension",
             "shape")


def expected_problems(case, x_shape, alpha_shape, dy_shape):
  """Problems of the case given (possibly partial) shapes.

  Shapes: None (unknown rank) or a sequence of ints / None. Returns a list of
  (code, keywords, strict): strict problems must raise, non-strict may.
  """
  op, call, mode = case["op"], case["call"], case["mode"]
  a = case["attrs"]
  dtype, adtype = case["dtype"], case["alpha_dtype"]
  wrapper = mode == "wrapper"  # graph mode builds the raw ops
  out = []
  # dtypes
  if dtype not in FLOAT_DTYPES:
    lenient = wrapper and dtype != "complex64"
    out.append(("dtype", _KW_TYPE, not lenient))
  if adtype != dtype:
    out.append(("alpha_dtype", _KW_TYPE + _KW_ALPHA, not wrapper))
  if call == "grad" and case["dy_dtype"] != dtype and mode != "wrapper":
    out.append(("dy_dtype", _KW_TYPE + ("dy",), True))
  # attributes
  if op == "spline":
    lo, hi = f32(a["x_min"]), f32(a["x_max"])
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
      out.append(("range", ("x_min", "x_max"), True))
    elif (hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)) or
          hi - lo > 1e30):
      out.append(("range_extreme", ("x_min", "x_max", "range"), False))
  else:
    b = f32(a["boundary"])
    if not (math.isfinite(b) and b > 0):
      out.append(("boundary", ("boundary",), True))
    elif b < 1e-5 or b > 1e5:
      out.append(("boundary_extreme", ("boundary", "gamma"), False))
    gamma = a["gamma"]
    kernel = a.get("kernel", "gaussian")
    if gamma is not None:
      g = f32(gamma)
      if not (math.isfinite(g) and g > 0):
        # gamma is unused by the relu / softplus kernels: may be rejected.
        out.append(("gamma", ("gamma",), kernel == "gaussian"))
      elif g < 1e-20 or g > 1e20:
        out.append(("gamma_extreme", ("gamma",), False))
    if op == "kaf" and kernel not in KERNELS:
      out.append(("kernel", ("kernel",), True))
  # shapes
  if alpha_shape is not None and len(alpha_shape) != 2:
    out.append(("alpha_rank", _KW_ALPHA, True))
  width = None
  if alpha_shape is not None and len(alpha_shape) == 2:
    width = alpha_shape[1]
    rows = alpha_shape[0]
  else:
    rows = None
  if width is not None:
    if op == "kaf2d":
      side = int(round(math.sqrt(width)))
      if side * side != width or side < 2:
        out.append(("alpha_cols", ("square", "d*d", "alpha", "grid",
                                   "centre", "center"), True))
    elif width < 2:
      out.append(("alpha_cols", ("d >= 2", "centre", "center", "column",
                                 "knot", "alpha", "coefficient",
                                 "at least"), True))
  if (wrapper and op != "spline" and a["gamma"] is None and
      alpha_shape is not None and len(alpha_shape) == 2 and width is None):
    out.append(("static_width", ("gamma", "statically", "centre", "known"),
                False))
  y_shape = None
  if x_shape is not None:
    rank = len(x_shape)
    axis = a["axis"]
    if rank == 0:
      out.append(("rank0", ("rank",), True))
      y_shape = []  # a dy of rank >= 1 is a second problem
    elif not -rank <= axis < rank:
      out.append(("axis", ("axis",), True))
    else:
      ax = axis % rank
      c = x_shape[ax]
      y_shape = list(x_shape)
      if c is not None:
        expected_rows = c
        if op == "kaf2d":
          if c % 2:
            out.append(("odd", ("even", "odd", "2h", "pair"), True))
            y_shape = None
          expected_rows = c // 2
        if y_shape is not None and op == "kaf2d":
          y_shape[ax] = c // 2
        if rows is not None and rows != expected_rows:
          out.append(("rows", ("channel", "rows", "alpha", "coefficient",
                               "mismatch"), True))
      elif op == "kaf2d":
        y_shape[ax] = None
  if call == "grad" and y_shape is not None and dy_shape is not None:
    bad = len(dy_shape) != len(y_shape) or any(
        d is not None and e is not None and d != e
        for d, e in zip(dy_shape, y_shape))
    if bad:
      out.append(("dy_shape", ("dy", "shape", "gradient"), True))
  return out


# --------------------------------------------------------------------------
# NumPy oracle (float64) with error bounds
# --------------------------------------------------------------------------


class Expect:
  """One output: value, error bound, NaN-required, inf-involved, magnitude."""

  def __init__(self, value, err, nan_req, inf_inv, mag, prone=None):
    self.value, self.err, self.nan_req = value, err, nan_req
    self.inf_inv, self.mag = inf_inv, mag
    # Positions where an intermediate of the formula itself overflows the
    # compute type (e.g. 2 gamma (x - d) for gamma near the float32 max).
    self.prone = np.zeros(np.shape(value), bool) if prone is None else prone


def _flush(a, tiny):
  """a with |values| < tiny (subnormals of the compute type) set to 0, or a
  itself when there are none."""
  if a is None:
    return a
  sub = (np.abs(a) < tiny) & (a != 0)
  return np.where(sub, np.copysign(0.0, a), a) if sub.any() else a


def _finite(a):
  return np.where(np.isfinite(a), a, 0.0)


def _abs_finite(a):
  return np.where(np.isfinite(a), np.abs(a), 0.0)


def _row_max(z):
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


def _kernel_terms(t, kernel, g):
  if kernel == "gaussian":
    z = g * t * t
    k = np.exp(-z)
    dk = -2.0 * g * t * k
    d2k = (4.0 * g * g * t * t - 2.0 * g) * k
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


def _kernel_dalpha(DY, k, err_k, in_nan, in_inf, eps_c, eps_t, tiny_c, big):
  """dalpha = sum over positions of dy * k ([P, C, D] -> [C, D]) of a KAF or
  2D-KAF, with its error bound; in_nan / in_inf: [P, C] input specials."""
  w = DY[..., None] * k
  da = w.sum(0)
  P = DY.shape[0]
  mag_da = _abs_finite(w).sum(0)
  err_da = (_finite(np.abs(DY)[..., None] * err_k).sum(0)
            + eps_c * (P + 2) * mag_da + eps_t * _abs_finite(da)
            + 4 * tiny_c * P)
  if P:
    nan_da = (in_nan[..., None] | (np.isnan(DY)[..., None] & (k != 0))).any(0)
    inf_da = np.broadcast_to((in_inf | np.isinf(DY)).any(0)[:, None],
                             da.shape)
    # Row-wide: the op may form dy * k for every centre of a row at once
    # (recurrences), so a huge dy can overflow any entry of its row.
    row = (_abs_finite(DY)[..., None] * np.maximum(1.0, _finite(k))
           ).sum(-1).max(0)
  else:
    nan_da = inf_da = np.zeros_like(da, bool)
    row = np.zeros(da.shape[0])
  return Expect(da, err_da, nan_da, inf_da, mag_da,
                prone=np.broadcast_to((row * 4 > big)[:, None], da.shape))


def np_oracle(case, x, alpha, dy, gamma, eps_attr):
  """Expected outputs in row layout ([P, C] / [rows, D]); x, alpha, dy are
  the float64 values the op saw. gamma: the float32-rounded gamma."""
  op, dtype = case["op"], case["dtype"]
  eps_c = _EPS[compute_dtype(dtype)]
  eps_t = _EPS[dtype]
  tiny_c = _TINY[compute_dtype(dtype)]
  axis = case["attrs"]["axis"]
  X = to_rows(x, axis)
  with np.errstate(all="ignore"):
    if op == "spline":
      return _spline_oracle(case, X, alpha, dy, eps_c, eps_t)
    b = f32(case["attrs"]["boundary"])
    g = gamma
    if op == "kaf":
      D = alpha.shape[1]
      d = np.linspace(-b, b, D)
      t = X[..., None] - d                                  # [P, C, D]
      z, k, dk, d2k = _kernel_terms(t, case["attrs"]["kernel"], g)
      ax = np.abs(X)[..., None] + b
      zmax = np.minimum(_row_max(z), 200.0)
      gaussian = case["attrs"]["kernel"] == "gaussian"
      R = (8.0 * (1.0 + z + zmax + D)) if gaussian else (8.0 + 2.0 * D)
      err_k = _finite(eps_c * (R * np.abs(k) + 2.0 * np.abs(dk) * ax)
                      + eps_attr * np.abs(k) * z + 1e3 * tiny_c)
      err_dk = _finite(eps_c * (R * np.abs(dk) + 2.0 * np.abs(d2k) * ax)
                       + eps_attr * np.abs(dk) * (1.0 + z)
                       + 1e3 * tiny_c * (1.0 + 2.0 * g * _finite(np.abs(t))))
      if gaussian:
        # Non-linear bound for sharp kernels (huge gamma): the op's x - d
        # may be off by delta, which can move a needle-like exp(-g t^2)
        # between 0 and 1; bound k and dk over |t| +- delta.
        delta = 4.0 * eps_c * ax
        s_lo = np.maximum(_finite(np.abs(t)) - delta, 0.0)
        s_hi = _finite(np.abs(t)) + delta
        k_hi = np.exp(-g * s_lo * s_lo)
        peak = 1.0 / math.sqrt(2.0 * g) if g > 0 else math.inf
        dk_hi = np.where((s_lo <= peak) & (peak <= s_hi),
                         math.sqrt(2.0 * g / math.e),
                         2.0 * g * np.maximum(s_lo * k_hi,
                                              s_hi * np.exp(-g * s_hi * s_hi)))
        err_k = err_k + _finite(k_hi - np.abs(k))
        err_dk = err_dk + _finite(np.maximum(dk_hi - np.abs(dk), 0.0) * 2.0)
      A = alpha[None]                                       # [1, C, D]
      if not gaussian:
        tie = np.abs(t) <= 8.0 * eps_c * ax
        err_dk = err_dk + np.where(tie, 1.0, 0.0)
      x_nan = np.isnan(X)
      x_inf = np.isinf(X)
      a_inf_row = np.isinf(alpha).any(axis=1)[None] if alpha.size else \
          np.zeros((1, X.shape[1]), bool)
      terms = A * k
      y = terms.sum(-1)
      mag_y = _abs_finite(terms).sum(-1)
      # + flushed products: each alpha k below the smallest normal may be 0.
      err_y = (_finite(np.abs(A) * err_k).sum(-1) + eps_c * D * mag_y
               + eps_t * _abs_finite(y) + 4 * tiny_c * D)
      nan_y = x_nan | (np.isnan(A) & (k != 0)).any(-1)
      big = _MAX[compute_dtype(dtype)] / 16
      # Intermediates of reasonable evaluation orders (alpha k (x - d), sums
      # of |alpha|) overflowing the compute type: no value check there.
      with np.errstate(all="ignore"):
        inter = (_abs_finite(A) * np.maximum(1.0, _finite(np.abs(t)))).sum(-1)
      out = {"y": Expect(y, err_y, nan_y, x_inf | a_inf_row, mag_y,
                         prone=inter > big)}
      if dy is not None:
        DY = to_rows(dy, axis)
        dterms = A * dk
        s = dterms.sum(-1)
        dx = DY * s
        mag_s = _abs_finite(dterms).sum(-1)
        err_dx = (np.abs(DY) * (_finite(np.abs(A) * err_dk).sum(-1)
                                + eps_c * D * mag_s
                                + 4 * tiny_c * _finite(
                                    1 + 2 * g * np.abs(t)).sum(-1))
                  + (eps_t + 2 * eps_c) * _abs_finite(dx))
        nan_dx = (x_nan | (np.isnan(DY) & (s != 0)) |
                  (np.isnan(A) & (dk != 0)).any(-1))
        scale_dy = np.maximum(1.0, _abs_finite(DY))
        # A kink of relu within rounding of x: the op may count that
        # centre or not, which with an infinite coefficient decides
        # between a finite and an infinite result.
        kink_inf = ((tie & ~np.isfinite(A)).any(-1) if not gaussian else
                    np.zeros(X.shape, bool))
        out["dx"] = Expect(dx, _finite(err_dx), nan_dx,
                           x_inf | a_inf_row | np.isinf(DY),
                           np.abs(DY) * mag_s,
                           prone=(gaussian & (2 * g * (np.abs(X) + b) > big))
                           | (inter * scale_dy * (1 + 2 * g) > big)
                           | kink_inf)
        out["dalpha"] = _kernel_dalpha(DY, k, err_k, x_nan, x_inf, eps_c,
                                       eps_t, tiny_c, big)
      return out
    # kaf2d
    side = int(round(math.sqrt(alpha.shape[1])))
    d = np.linspace(-b, b, side)
    cx = np.tile(d, side)
    cy = np.repeat(d, side)
    H = X.shape[1] // 2
    X1, X2 = X[:, :H], X[:, H:]
    t1 = X1[..., None] - cx
    t2 = X2[..., None] - cy
    z = g * (t1 * t1 + t2 * t2)
    k = np.exp(-z)
    k1 = -2.0 * g * t1 * k
    k2 = -2.0 * g * t2 * k
    k11 = (4.0 * g * g * t1 * t1 - 2.0 * g) * k
    k22 = (4.0 * g * g * t2 * t2 - 2.0 * g) * k
    k12 = 4.0 * g * g * t1 * t2 * k
    a1 = np.abs(X1)[..., None] + b
    a2 = np.abs(X2)[..., None] + b
    zmax = np.minimum(_row_max(z), 200.0)
    R = 8.0 * (1.0 + z + zmax + 2 * side)
    err_k = _finite(eps_c * (R * k + 2 * np.abs(k1) * a1 + 2 * np.abs(k2) * a2)
                    + eps_attr * k * z + 1e3 * tiny_c)
    tfloor = 1e3 * tiny_c * (1 + 2 * g * (_finite(np.abs(t1)) +
                                        _finite(np.abs(t2))))
    err_k1 = _finite(eps_c * (R * np.abs(k1) + 2 * np.abs(k11) * a1
                              + 2 * np.abs(k12) * a2)
                     + eps_attr * np.abs(k1) * (1 + z) + tfloor)
    err_k2 = _finite(eps_c * (R * np.abs(k2) + 2 * np.abs(k12) * a1
                              + 2 * np.abs(k22) * a2)
                     + eps_attr * np.abs(k2) * (1 + z) + tfloor)
    # Non-linear bound for sharp kernels (see the 1-D case).
    d1 = 4.0 * eps_c * a1
    d2 = 4.0 * eps_c * a2
    s1 = np.maximum(_finite(np.abs(t1)) - d1, 0.0)
    s2 = np.maximum(_finite(np.abs(t2)) - d2, 0.0)
    k_hi = np.exp(-g * (s1 * s1 + s2 * s2))
    err_k = err_k + _finite(k_hi - k)
    err_k1 = err_k1 + _finite(2 * g * (_finite(np.abs(t1)) + d1) * k_hi
                              - np.abs(k1)) * 2
    err_k2 = err_k2 + _finite(2 * g * (_finite(np.abs(t2)) + d2) * k_hi
                              - np.abs(k2)) * 2
    A = alpha[None]
    nD = alpha.shape[1]
    pair_nan = np.isnan(X1) | np.isnan(X2)
    pair_inf = np.isinf(X1) | np.isinf(X2)
    a_inf_row = (np.isinf(alpha).any(axis=1)[None] if alpha.size else
                 np.zeros((1, H), bool))
    terms = A * k
    y = terms.sum(-1)
    mag_y = _abs_finite(terms).sum(-1)
    err_y = (_finite(np.abs(A) * err_k).sum(-1) + eps_c * nD * mag_y
             + eps_t * _abs_finite(y) + 4 * tiny_c * nD)
    nan_y = pair_nan | (np.isnan(A) & (k != 0)).any(-1)
    big = _MAX[compute_dtype(dtype)] / 16
    tmax = np.maximum(1.0, np.maximum(np.abs(t1), np.abs(t2)))
    inter = (_abs_finite(A) * _finite(tmax)).sum(-1)
    out = {"y": Expect(y, err_y, nan_y, pair_inf | a_inf_row, mag_y,
                       prone=inter > big)}
    if dy is not None:
      DY = to_rows(dy, axis)
      parts = []
      for kk, ek in ((k1, err_k1), (k2, err_k2)):
        dterms = A * kk
        s = dterms.sum(-1)
        dxp = DY * s
        mag_s = _abs_finite(dterms).sum(-1)
        err = (np.abs(DY) * (_finite(np.abs(A) * ek).sum(-1)
                             + eps_c * nD * mag_s
                             + 4 * tiny_c * _finite(
                                 1 + 2 * g * (np.abs(t1) + np.abs(t2))
                             ).sum(-1))
               + (eps_t + 2 * eps_c) * _abs_finite(dxp))
        nan = (pair_nan | (np.isnan(DY) & (s != 0)) |
               (np.isnan(A) & (kk != 0)).any(-1))
        parts.append((dxp, _finite(err), nan,
                      pair_inf | a_inf_row | np.isinf(DY), np.abs(DY) * mag_s))
      over = ((2 * g * (np.maximum(np.abs(X1), np.abs(X2)) + b) > big) |
              (inter * np.maximum(1.0, _abs_finite(DY)) * (1 + 2 * g) > big))
      out["dx"] = Expect(*[np.concatenate([p1[i], p2[i]], axis=1)
                           for p1, p2 in [parts] for i in range(5)],
                         prone=np.concatenate([over, over], axis=1))
      out["dalpha"] = _kernel_dalpha(DY, k, err_k, pair_nan, pair_inf, eps_c,
                                     eps_t, tiny_c, big)
    return out


def _spline_oracle(case, X, coef, dy, eps_c, eps_t):
  lo, hi = f32(case["attrs"]["x_min"]), f32(case["attrs"]["x_max"])
  K = coef.shape[1]
  C = X.shape[1]
  scale = (K - 1) / (hi - lo)
  t = (X - lo) * scale
  tc = np.where(t >= 0, t, 0.0)
  tc = np.where(tc <= K - 2, tc, K - 2)
  i = np.floor(tc).astype(np.int64)
  u = t - i
  ch = np.broadcast_to(np.arange(C)[None, :], X.shape)
  c0 = coef[ch, i] if X.size else np.zeros(X.shape)
  c1 = coef[ch, i + 1] if X.size else np.zeros(X.shape)
  dc = c1 - c0
  dt = _finite(eps_c * (2 * (np.abs(X) + abs(lo)) * scale + 3 * np.abs(t) + 1))
  y = c0 + u * dc
  mag_y = _abs_finite(c0 * (1 - u)) + _abs_finite(c1 * u)
  # Near a knot the op may use the neighbouring segment: the slope that
  # multiplies the rounding error of t is the largest adjacent one.
  knot = np.round(t)
  near_knot = np.abs(t - knot) <= 2 * dt
  if X.size:
    dc_prev = coef[ch, i] - coef[ch, np.clip(i - 1, 0, K - 1)]
    dc_next = coef[ch, np.clip(i + 2, 0, K - 1)] - coef[ch, i + 1]
    with np.errstate(all="ignore"):
      dc_err = np.where(near_knot, np.maximum(
          np.abs(dc), np.maximum(np.abs(dc_prev), np.abs(dc_next))),
                        np.abs(dc))
  else:
    dc_err = np.abs(dc)
  tiny_c = _TINY[compute_dtype(case["dtype"])]
  err_y = _finite(dc_err * dt + eps_c * 4 * (np.abs(c0) + np.abs(c1) +
                                             np.abs(u * dc))
                  + eps_t * np.abs(y)
                  + 4 * tiny_c * (1 + np.abs(u))) + 2 * _TINY[case["dtype"]]
  x_nan, x_inf = np.isnan(X), np.isinf(X)
  nan_y = x_nan | np.isnan(c0) | np.isnan(c1)
  if X.size:
    # Within rounding of knot r the op may use segment [r-1, r] or [r, r+1]:
    # a NaN coefficient is only certain to show if both segments have one.
    def seg_nan(j):
      j = np.clip(np.where(np.isfinite(j), j, 0), 0, K - 2).astype(np.int64)
      return np.isnan(coef[ch, j]) | np.isnan(coef[ch, j + 1])
    nan_y = np.where(near_knot & np.isfinite(t),
                     x_nan | (seg_nan(knot - 1) & seg_nan(knot)), nan_y)
  inf_y = x_inf | np.isinf(c0) | np.isinf(c1)
  big = _MAX[compute_dtype(case["dtype"])] / 16
  inter = (_abs_finite(c0) + _abs_finite(c1)) * (1 + _abs_finite(u))
  # x - x_min or t overflowing the compute type (grids spanning ~the whole
  # float range): no value check there.
  ovf = (_finite(np.abs(X)) + abs(lo) > big) | (_finite(np.abs(t)) > big)
  # At a knot (t within rounding of an integer) the op may pick the other
  # segment: with a non-finite coefficient there, 0 * inf = NaN is possible.
  if X.size:
    cm = coef[ch, np.clip(i - 1, 0, K - 1)]
    cp = coef[ch, np.clip(i + 2, 0, K - 1)]
    ovf = ovf | (near_knot & ~(np.isfinite(cm) & np.isfinite(cp)))
  out = {"y": Expect(y, err_y, nan_y, inf_y, mag_y, prone=(inter > big) | ovf)}
  if dy is not None:
    DY = to_rows(dy, case["attrs"]["axis"])
    slope = dc * scale
    dx = DY * slope
    tie = near_knot & (knot >= 1) & (knot <= K - 2)
    # At a tie the op may take either adjacent segment's slope.
    tie_err = np.where(tie, 4 * np.abs(DY) * scale * dc_err, 0.0)
    err_dx = (_finite((eps_c * 4 + eps_t) * np.abs(dx)
                      # flushed subnormal intermediates (dy * dc, then * 1/T)
                      + 8 * tiny_c * max(1.0, scale) * (1 + np.abs(DY)))
              + _finite(tie_err))
    nan_dx = nan_y | (np.isnan(DY) & (slope != 0))
    out["dx"] = Expect(dx, err_dx, nan_dx, inf_y | np.isinf(DY),
                       np.abs(DY * slope),
                       prone=((_abs_finite(c0) + _abs_finite(c1)) * scale *
                              np.maximum(1.0, _abs_finite(DY)) > big) | ovf
                       | (tie & ~(tie_err <= big)))
    w0 = (1 - u) * DY
    w1 = u * DY
    dcoef = np.zeros((C, K))
    mag = np.zeros((C, K))
    errc = np.zeros((C, K))
    nan_c = np.zeros((C, K), bool)
    inf_c = np.zeros((C, K), bool)
    rows = ch.reshape(-1)
    ii = i.reshape(-1)
    np.add.at(dcoef, (rows, ii), w0.reshape(-1))
    np.add.at(dcoef, (rows, ii + 1), w1.reshape(-1))
    np.add.at(mag, (rows, ii), _abs_finite(w0).reshape(-1))
    np.add.at(mag, (rows, ii + 1), _abs_finite(w1).reshape(-1))
    e = _finite(np.abs(DY) * 2 * dt + eps_c * 4 * (np.abs(w0) + np.abs(w1))
                + 4 * tiny_c * (1 + np.abs(DY)) * (1 + np.abs(u)))
    for off in (-1, 0, 1, 2):
      jj = np.clip(ii + off, 0, K - 1)
      np.add.at(errc, (rows, jj), e.reshape(-1))
    P = X.shape[0]
    errc += eps_c * (P + 2) * mag + eps_t * _abs_finite(dcoef)
    dy_nan = np.isnan(DY)
    np.logical_or.at(nan_c, (rows, ii),
                     (x_nan | (dy_nan & (1 - u != 0))).reshape(-1))
    np.logical_or.at(nan_c, (rows, ii + 1),
                     (x_nan | (dy_nan & (u != 0))).reshape(-1))
    chan_inf = (x_inf | np.isinf(DY)).any(0) if P else np.zeros(C, bool)
    inf_c |= chan_inf[:, None]
    # u * dy overflowing (dy near the float max): the op may form
    # (1 - u) * dy as dy - u * dy.
    dy_ovf = _abs_finite(DY) * np.maximum(1.0, _abs_finite(u)) > big
    chan_ovf = (ovf | dy_ovf).any(0) if P else np.zeros(C, bool)
    # Within rounding of a knot, the op's u may come out exactly 0 or 1:
    # with an infinite dy, a neighbouring knot then gets 0 * inf = NaN.
    knot_amb = np.zeros((C, K), bool)
    amb = (near_knot & np.isinf(DY)).reshape(-1)
    for off in (-1, 0, 1, 2):
      np.logical_or.at(knot_amb, (rows, np.clip(ii + off, 0, K - 1)), amb)
    out["dalpha"] = Expect(dcoef, errc, nan_c, inf_c, mag,
                           prone=chan_ovf[:, None] | knot_amb)
  return out


# --------------------------------------------------------------------------
# Checking a result
# --------------------------------------------------------------------------

ALLOWED_ERRORS = ("InvalidArgumentError", "ValueError")


def _message_ok(message, problems):
  m = (message or "").lower()
  if not m.strip():
    return False
  keywords = [k for _, kws, _ in problems for k in kws]
  return any(k.lower() in m for k in keywords)


def _check_error(result, problems, phase_note=""):
  etype = result["etype"].rsplit(".", 1)[-1]
  codes = [c for c, _, _ in problems]
  allowed = ALLOWED_ERRORS
  if any(c in ("dtype", "alpha_dtype", "dy_dtype") for c in codes):
    allowed = allowed + ("TypeError",)
  if etype not in allowed:
    return [f"raised {etype} (expected InvalidArgumentError/ValueError"
            f"{phase_note}) for problems {codes}: {result['message'][:400]}"]
  if not _message_ok(result["message"], problems):
    return [f"{etype}{phase_note} message does not name the problem "
            f"{codes}: {result['message'][:400]!r}"]
  return []


def check_case(case, result):
  """Failure strings for one executed case (empty list: passed)."""
  if result.get("harness_error"):
    return ["harness error in worker: " + result["harness_error"]]
  x_shape = tuple(case["x"].shape)
  a_shape = tuple(case["alpha"].shape)
  dy_shape = tuple(case["dy"].shape) if case["dy"] is not None else None
  truth = expected_problems(case, x_shape, a_shape, dy_shape)
  strict = [p for p in truth if p[2]]
  failures = []
  if result.get("inputs_modified"):
    failures.append("the op modified its input tensors in place")
  if case["mode"] == "graph":
    g = case["graph"]
    static = expected_problems(case, g["x"], g["alpha"], g.get("dy"))
    knowable = [p for p in static if p[2]]
    if result["status"] == "error" and result["phase"] == "construct":
      if not truth:
        return failures + [
            "graph construction failed for a valid case: "
            f"{result['etype']}: {result['message'][:400]}"]
      return failures + _check_error(result, truth, " at construction")
    if knowable:
      failures.append(
          "graph construction succeeded although the static shapes / "
          f"attributes already show {[p[0] for p in knowable]}")
    failures += _check_static_shapes(case, result)
  if result["status"] == "error":
    if not truth:
      return failures + [f"valid case raised {result['etype']}: "
                         f"{result['message'][:400]}"]
    return failures + _check_error(result, truth)
  if strict:
    return failures + [
        f"invalid case ({[p[0] for p in strict]}) returned a result "
        "instead of raising"]
  if result.get("ref_error"):
    if truth:  # an 'either' case the composite rejects: nothing to compare
      return failures
    return failures + ["composite reference raised on a valid case: "
                       + result["ref_error"][:400]]
  return failures + compare_outputs(case, result)


def _check_static_shapes(case, result):
  shapes = result.get("static_shapes") or {}
  actual = {k: np.asarray(v[0]).shape for k, v in result.get(
      "outputs", {}).items()}
  g = case["graph"]
  op = case["op"]
  out = []
  for name, static in shapes.items():
    if name == "dalpha":
      want = g["alpha"]
    else:
      want = g["x"] if name == "dx" else g["x"]
      if name == "y" and op == "kaf2d" and want is not None:
        ax = case["attrs"]["axis"] % len(want)
        want = list(want)
        if want[ax] is not None:
          want[ax] //= 2
      if name == "dx" and g.get("dy") is not None and want is not None and \
          len(g["dy"]) == len(want) and op != "kaf2d":
        want = [a if a is not None else b for a, b in zip(want, g["dy"])]
    if static is None:
      if want is not None:
        out.append(f"static shape of {name} is unknown; expected at least "
                   f"{want}")
      continue
    if name in actual and (len(static) != len(actual[name]) or any(
        s is not None and s != a for s, a in zip(static, actual[name]))):
      out.append(f"static shape of {name} {static} is incompatible with "
                 f"the run-time shape {list(actual[name])}")
    if want is not None and (len(want) != len(static) or any(
        w is not None and s is None for w, s in zip(want, static))):
      out.append(f"static shape of {name} {static} loses known dimensions "
                 f"(expected at least {want})")
  return out


def _layout(case, name, arr):
  if name == "dalpha":
    return np.asarray(arr, np.float64)
  return to_rows(arr, case["attrs"]["axis"])


def compare_outputs(case, result):
  failures = []
  dtype = result["op_dtype"]
  x, alpha, dy = result["x_r"], result["alpha_r"], result.get("dy_r")
  gamma = result.get("gamma_eff")
  eps_attr = 1.2e-7 if (case["attrs"].get("gamma") is None and
                        case["mode"] == "wrapper") else 0.0
  case_eff = dict(case)
  case_eff["dtype"] = dtype
  exp = np_oracle(case_eff, x, alpha, dy, gamma, eps_attr)
  # TensorFlow's CPU threads run with flush-to-zero and denormals-are-zero:
  # subnormal inputs of the compute type may be read as zeros. Either
  # reading is right.
  flushed = [_flush(v, _TINY[compute_dtype(dtype)]) for v in (x, alpha, dy)]
  if any(f is not v for f, v in zip(flushed, (x, alpha, dy))):
    exp_ftz = np_oracle(case_eff, *flushed, gamma, eps_attr)
    for name, e in exp.items():
      with np.errstate(all="ignore"):
        e.err = e.err + _abs_finite(e.value - exp_ftz[name].value)
  limit = min(_MAX[dtype], _MAX[compute_dtype(dtype)]) / 16
  atol = 4 * _TINY[dtype]
  for name, (value, out_dtype) in result["outputs"].items():
    want_shape = _expected_shape(case, name)
    if tuple(np.shape(value)) != want_shape:
      failures.append(f"{name}: shape {np.shape(value)}, expected "
                      f"{want_shape}")
      continue
    want_dtype = dtype
    if case["mode"] == "wrapper" and case["call"] == "grad":
      # Gradients have the dtype of the watched tensor (through any cast).
      source = {"dx": case["dtype"], "dalpha": case["alpha_dtype"]}.get(name)
      if source in FLOAT_DTYPES:
        want_dtype = source
    if out_dtype != want_dtype:
      failures.append(f"{name}: dtype {out_dtype}, expected {want_dtype}")
    e = exp[name]
    o = _layout(case, name, value)
    ref = result["ref"].get(name)
    r = _layout(case, name, ref) if ref is not None else e.value
    with np.errstate(all="ignore"):
      tol = 4.0 * e.err + atol
    if want_dtype != dtype and want_dtype in FLOAT_DTYPES:
      with np.errstate(all="ignore"):
        tol = tol + 2 * _EPS[want_dtype] * _abs_finite(r) + _TINY[want_dtype]
    with np.errstate(all="ignore"):
      prone = (~np.isfinite(e.mag + e.err) | (e.mag + e.err > limit) |
               e.prone)
    with np.errstate(all="ignore"):
      bad = np.zeros(o.shape, bool)
      why = np.empty(o.shape, object)
      # NaN in -> NaN out.
      m = e.nan_req & ~np.isnan(o)
      bad |= m
      why[m] = "expected NaN (NaN input)"
      rest = ~e.nan_req & ~prone
      # Reference infinite: the same infinity.
      # (NaN is accepted where infinities are involved: inf * 0 from an
      # underflowed kernel value.)
      m = rest & np.isinf(r) & (o != r) & ~(np.isnan(o) & e.inf_inv)
      bad |= m
      why[m] = "expected the reference's infinity"
      # Reference NaN without a NaN input: only acceptable with infinities.
      m = rest & np.isnan(r) & ~e.inf_inv & ~np.isfinite(e.value)
      # (composite NaN and oracle NaN with finite inputs: overflow; skip)
      m2 = rest & np.isnan(r) & ~e.inf_inv & np.isfinite(e.value) & ~(
          np.abs(o - e.value) <= tol)
      bad |= m2
      why[m2] = "reference NaN with finite inputs; op differs from formula"
      # Finite reference: within the error bound.
      m = rest & np.isfinite(r) & ~(np.abs(o - r) <= tol)
      bad |= m
      why[m] = "outside tolerance"
    if bad.any():
      idx = np.argwhere(bad)[:4]
      details = []
      for j in idx:
        j = tuple(j)
        details.append(f"at {j}: op={o[j]!r} ref={r[j]!r} formula="
                       f"{e.value[j]!r} tol={tol[j]:.3g} ({why[j]})")
      failures.append(f"{name}: {int(bad.sum())} of {bad.size} elements "
                      "wrong; " + "; ".join(details))
    # The composite reference against the spec formula (float64).
    if ref is not None:
      eps_ratio = _EPS["float64"] / _EPS[compute_dtype(dtype)]
      with np.errstate(all="ignore"):
        tol64 = 4.0 * e.err * eps_ratio + 1e-300 + 4.0 * eps_attr * (
            e.mag + np.abs(e.value))
        chk = (~e.nan_req & ~e.inf_inv & ~prone & np.isfinite(e.value) &
               ~(np.abs(r - e.value) <= tol64 + 1e-13 * (e.mag + e.err)))
      if chk.any():
        j = tuple(np.argwhere(chk)[0])
        failures.append(
            f"composite reference disagrees with the SPEC formula for "
            f"{name} at {j}: composite={r[j]!r} formula={e.value[j]!r}")
  return failures


def _expected_shape(case, name):
  if name == "dalpha":
    return tuple(case["alpha"].shape)
  shape = list(case["x"].shape)
  if name == "y" and case["op"] == "kaf2d":
    ax = case["attrs"]["axis"] % len(shape)
    shape[ax] //= 2
  return tuple(shape)


# --------------------------------------------------------------------------
# The worker (subprocess side)
# --------------------------------------------------------------------------


class _WorkerState:
  tf = None
  tfkaf = None
  raw = None
  reference = None


def _tf_dtype(name):
  tf = _WorkerState.tf
  return getattr(tf, name)


def _tensor(values, dtype):
  tf = _WorkerState.tf
  t = tf.constant(np.asarray(values, np.float64))
  with np.errstate(all="ignore"):
    return tf.cast(t, _tf_dtype(dtype))


def _as64(t):
  tf = _WorkerState.tf
  if t.dtype.is_complex:
    return np.real(t.numpy()).astype(np.float64)
  return tf.cast(t, tf.float64).numpy()


def _raw_fn(op, call):
  name = {"kaf": "tfkaf_kaf", "kaf2d": "tfkaf_kaf2d",
          "spline": "tfkaf_linear_spline"}[op]
  return getattr(_WorkerState.raw, name + ("_grad" if call == "grad" else ""))


def _raw_attrs(case):
  a = dict(case["attrs"])
  if case["op"] != "spline" and a.get("gamma") is None:
    g = default_gamma(case["op"], f32(a["boundary"]), _width(case))
    a["gamma"] = 1.0 if g is None else g
  if case["op"] == "kaf2d":
    a.pop("kernel", None)
  return a


def _wrapper_fn(op):
  ops = _WorkerState.tfkaf.ops
  return {"kaf": ops.kaf, "kaf2d": ops.kaf2d, "spline": ops.linear_spline}[op]


def _wrapper_kwargs(case):
  a = dict(case["attrs"])
  return a


def _call_eager(case, x, alpha, dy):
  """Returns {name: tensor} or raises."""
  tf = _WorkerState.tf
  op, call, mode = case["op"], case["call"], case["mode"]
  if mode == "raw":
    fn = _raw_fn(op, call)
    if call == "grad":
      dx, da = fn(dy, x, alpha, **_raw_attrs(case))
      return {"dx": dx, "dalpha": da}
    return {"y": fn(x, alpha, **_raw_attrs(case))}
  fn = _wrapper_fn(op)
  if call == "grad":
    with tf.GradientTape() as tape:
      tape.watch([x, alpha])
      y = fn(x, alpha, **_wrapper_kwargs(case))
    dx, da = tape.gradient(y, [x, alpha], output_gradients=dy)
    out = {"y": y}
    if dx is not None:
      out["dx"] = dx
    if da is not None:
      out["dalpha"] = da
    return out
  return {"y": fn(x, alpha, **_wrapper_kwargs(case))}


def _call_graph(case, result):
  """Builds the op in a v1 graph with the case's placeholder shapes."""
  tf = _WorkerState.tf
  op, call = case["op"], case["call"]
  g = tf.Graph()
  with g.as_default():
    px = tf.compat.v1.placeholder(_tf_dtype(case["dtype"]), case["graph"]["x"])
    pa = tf.compat.v1.placeholder(_tf_dtype(case["alpha_dtype"]),
                                  case["graph"]["alpha"])
    feeds = {px: case["_x_np"], pa: case["_alpha_np"]}
    try:
      if call == "grad":
        pdy = tf.compat.v1.placeholder(_tf_dtype(case["dy_dtype"]),
                                       case["graph"]["dy"])
        feeds[pdy] = case["_dy_np"]
        dx, da = _raw_fn(op, "grad")(pdy, px, pa, **_raw_attrs(case))
        outs = {"dx": dx, "dalpha": da}
      else:
        outs = {"y": _raw_fn(op, "forward")(px, pa, **_raw_attrs(case))}
    except Exception as e:  # pylint: disable=broad-except
      result.update(status="error", phase="construct",
                    etype=f"{type(e).__module__}.{type(e).__name__}",
                    message=str(e))
      return None
    result["static_shapes"] = {
        k: (None if v.shape.rank is None else v.shape.as_list())
        for k, v in outs.items()}
    with tf.compat.v1.Session(graph=g) as sess:
      try:
        values = sess.run(outs, feed_dict=feeds)
      except Exception as e:  # pylint: disable=broad-except
        result.update(status="error", phase="run",
                      etype=f"{type(e).__module__}.{type(e).__name__}",
                      message=str(e))
        return None
  return values


def execute(case):
  """Runs one case in this process (the worker); returns a result dict."""
  tf = _WorkerState.tf
  result = {"status": "ok", "outputs": {}, "ref": {}}
  x = _tensor(case["x"], case["dtype"])
  alpha = _tensor(case["alpha"], case["alpha_dtype"])
  dy = (_tensor(case["dy"], case["dy_dtype"]) if case["dy"] is not None
        else None)
  before = [t.numpy().tobytes() for t in (x, alpha, dy) if t is not None]
  if case["mode"] == "graph":
    case = dict(case)
    case["_x_np"] = x.numpy()
    case["_alpha_np"] = alpha.numpy()
    case["_dy_np"] = dy.numpy() if dy is not None else None
    values = _call_graph(case, result)
    if values is None:
      return result
    outs = {k: tf.constant(v) for k, v in values.items()}
  else:
    try:
      outs = _call_eager(case, x, alpha, dy)
    except Exception as e:  # pylint: disable=broad-except
      result.update(status="error", phase="run",
                    etype=f"{type(e).__module__}.{type(e).__name__}",
                    message=str(e))
      return result
  after = [t.numpy().tobytes() for t in (x, alpha, dy) if t is not None]
  result["inputs_modified"] = before != after
  op_dtype = next(iter(outs.values())).dtype.name if outs else case["dtype"]
  result["op_dtype"] = op_dtype
  result["outputs"] = {k: (_as64(v), v.dtype.name) for k, v in outs.items()}
  if op_dtype not in FLOAT_DTYPES:
    result["harness_error"] = f"op returned dtype {op_dtype}"
    return result
  # The values the op saw (after any cast by the wrapper).
  x_r = _as64(tf.cast(x, _tf_dtype(op_dtype)) if not x.dtype.is_complex
              else tf.cast(tf.math.real(x), _tf_dtype(op_dtype)))
  a_r = _as64(tf.cast(alpha, _tf_dtype(op_dtype)))
  dy_r = _as64(tf.cast(dy, _tf_dtype(op_dtype))) if dy is not None else None
  result.update(x_r=x_r, alpha_r=a_r, dy_r=dy_r)
  attrs = _raw_attrs(case)
  if case["op"] != "spline":
    if case["attrs"].get("gamma") is None and case["mode"] == "wrapper":
      g = default_gamma(case["op"], f32(attrs["boundary"]), _width(case))
      result["gamma_eff"] = f32(g) if g is not None else 1.0
    else:
      result["gamma_eff"] = f32(attrs["gamma"])
  # Composite reference in float64 on the same values.
  try:
    ref = _WorkerState.reference
    x64 = tf.constant(x_r)
    a64 = tf.constant(a_r)
    ka = dict(case["attrs"] if case["mode"] == "wrapper" else attrs)
    if case["op"] == "spline":
      fn = lambda xx, aa: ref.linear_spline(xx, aa, ka["x_min"], ka["x_max"],
                                            axis=ka["axis"])
    elif case["op"] == "kaf":
      fn = lambda xx, aa: ref.kaf(xx, aa, boundary=ka["boundary"],
                                  kernel=ka["kernel"], gamma=ka["gamma"],
                                  axis=ka["axis"])
    else:
      fn = lambda xx, aa: ref.kaf2d(xx, aa, boundary=ka["boundary"],
                                    gamma=ka["gamma"], axis=ka["axis"])
    if dy is not None:
      with tf.GradientTape() as tape:
        tape.watch([x64, a64])
        y = fn(x64, a64)
      dx, da = tape.gradient(y, [x64, a64],
                             output_gradients=tf.constant(dy_r))
      result["ref"] = {"y": y.numpy(),
                       "dx": (dx.numpy() if dx is not None else
                              np.zeros_like(x_r)),
                       "dalpha": (da.numpy() if da is not None else
                                  np.zeros_like(a_r))}
    else:
      result["ref"] = {"y": fn(x64, a64).numpy()}
  except Exception as e:  # pylint: disable=broad-except
    result["ref_error"] = f"{type(e).__name__}: {e}"
  return result


def _send(stream, obj):
  data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
  stream.write(struct.pack("<Q", len(data)))
  stream.write(data)
  stream.flush()


def _recv_exact(fd, n, deadline):
  chunks = []
  while n:
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
      raise TimeoutError
    chunk = os.read(fd, min(n, 1 << 20))
    if not chunk:
      raise EOFError
    chunks.append(chunk)
    n -= len(chunk)
  return b"".join(chunks)


def _recv(fd, deadline=None):
  (n,) = struct.unpack("<Q", _recv_exact(fd, 8, deadline))
  return pickle.loads(_recv_exact(fd, n, deadline))


def worker_main():
  """Loop: read a case from stdin, execute it, write the result."""
  import faulthandler  # pylint: disable=g-import-not-at-top
  faulthandler.enable()
  # The protocol owns the original stdout; anything printed goes to stderr.
  proto_out = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top
  import tfkaf.reference  # pylint: disable=g-import-not-at-top
  _WorkerState.tf = tf
  _WorkerState.tfkaf = tfkaf
  _WorkerState.raw = tfkaf.load_ops()
  _WorkerState.reference = tfkaf.reference
  _send(proto_out, {"ready": True, "tfkaf": tfkaf.__file__})
  fd = sys.stdin.fileno()
  while True:
    try:
      case = _recv(fd)
    except EOFError:
      return
    sys.stderr.write(f"[case] {describe(case)[0]}\n")
    sys.stderr.flush()
    try:
      result = execute(case)
    except Exception as e:  # pylint: disable=broad-except
      import traceback  # pylint: disable=g-import-not-at-top
      result = {"harness_error": f"{type(e).__name__}: {e}\n"
                                 + traceback.format_exc()[-2000:]}
    _send(proto_out, result)


# --------------------------------------------------------------------------
# The runner (test-process side)
# --------------------------------------------------------------------------


class OpCrashed(BaseException):
  """The worker died while running a case (a crash is never shrunk)."""


class OpHung(BaseException):
  """A case ran past its time limit."""


def package_parent():
  """The directory holding the tfkaf package the tests import."""
  import tfkaf  # pylint: disable=g-import-not-at-top
  return os.path.dirname(os.path.dirname(os.path.abspath(tfkaf.__file__)))


def subprocess_env(extra=None):
  env = dict(os.environ)
  parent = package_parent()
  env["PYTHONPATH"] = os.pathsep.join(
      [parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                  if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.update(extra or {})
  return env


class Worker:
  """A persistent crash-isolated executor of cases."""

  def __init__(self, case_timeout=None, startup_timeout=300):
    self.case_timeout = case_timeout or float(
        os.environ.get("TFKAF_FUZZ_CASE_TIMEOUT", "120"))
    self.startup_timeout = startup_timeout
    self.proc = None
    self.stderr_file = None
    self.restarts = 0
    self.cases = 0

  def _start(self):
    self.stderr_file = tempfile.TemporaryFile()
    self.proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=self.stderr_file, env=subprocess_env(), cwd=tempfile.gettempdir())
    try:
      hello = _recv(self.proc.stdout.fileno(),
                    time.time() + self.startup_timeout)
    except (EOFError, TimeoutError):
      tail = self._stderr_tail()
      self.close()
      raise RuntimeError(f"fuzz worker failed to start:\n{tail}")
    assert hello.get("ready"), hello

  def _stderr_tail(self, n=6000):
    if self.stderr_file is None:
      return ""
    self.stderr_file.flush()
    self.stderr_file.seek(0, os.SEEK_END)
    size = self.stderr_file.tell()
    self.stderr_file.seek(max(0, size - n))
    return self.stderr_file.read().decode(errors="replace")

  def run(self, case):
    if self.proc is None or self.proc.poll() is not None:
      self._start()
    self.cases += 1
    try:
      _send(self.proc.stdin, case)
      return _recv(self.proc.stdout.fileno(), time.time() + self.case_timeout)
    except TimeoutError:
      self.proc.kill()
      self.proc.wait()
      tail = self._stderr_tail()
      self._reset()
      label, repro = describe(case)
      raise OpHung(f"case ran longer than {self.case_timeout}s: {label}\n"
                   f"reproducer:\n{repro}\nworker stderr tail:\n{tail}")
    except (EOFError, BrokenPipeError):
      code = self.proc.wait()
      tail = self._stderr_tail()
      self._reset()
      label, repro = describe(case)
      sig = (f"signal {signal.Signals(-code).name}" if code < 0 else
             f"exit status {code}")
      raise OpCrashed(f"the op crashed the worker process ({sig}) on case: "
                      f"{label}\nreproducer:\n{repro}\nworker stderr tail:\n"
                      f"{tail}")

  def _reset(self):
    self.restarts += 1
    self._close_pipes()
    self.proc = None
    if self.stderr_file is not None:
      self.stderr_file.close()
      self.stderr_file = None

  def _close_pipes(self):
    for pipe in (self.proc.stdin, self.proc.stdout):
      try:
        pipe.close()
      except OSError:  # a broken pipe to a dead worker
        pass

  def close(self):
    if self.proc is not None:
      try:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
      except Exception:  # pylint: disable=broad-except
        self.proc.kill()
        self.proc.wait()
      self._close_pipes()
      self.proc = None
    if self.stderr_file is not None:
      self.stderr_file.close()
      self.stderr_file = None


# --------------------------------------------------------------------------
# Subprocess entry points: leak check, concurrency / determinism
# --------------------------------------------------------------------------


def rss_bytes():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _leak_inputs(op, tf):
  rng = np.random.default_rng(7)
  if op == "kaf":
    x = rng.standard_normal((128, 32)) * 2
    a = rng.standard_normal((32, 20)) * 0.3
  elif op == "kaf2d":
    x = rng.standard_normal((128, 32)) * 2
    a = rng.standard_normal((16, 49)) * 0.3
  else:
    x = rng.standard_normal((128, 32)) * 3
    a = rng.standard_normal((32, 21))
  return (tf.constant(x, tf.float32), tf.constant(a, tf.float32),
          tf.constant(rng.standard_normal(x.shape if op != "kaf2d" else
                                          (128, 16)), tf.float32))


def leak_main(op, iterations, warmup):
  """forward+backward `iterations` times; prints RSS numbers as JSON."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top
  raw = tfkaf.load_ops()
  x, a, dy = _leak_inputs(op, tf)
  if op == "kaf":
    fwd = lambda: tfkaf.ops.kaf(x, a)
    grad = lambda: raw.tfkaf_kaf_grad(dy, x, a, boundary=3.0, gamma=0.5,
                                      kernel="gaussian", axis=-1)
    bad = lambda: raw.tfkaf_kaf(x, a[:3], boundary=3.0, gamma=0.5)
  elif op == "kaf2d":
    fwd = lambda: tfkaf.ops.kaf2d(x, a)
    grad = lambda: raw.tfkaf_kaf2d_grad(dy, x, a, boundary=3.0, gamma=0.5,
                                        axis=-1)
    bad = lambda: raw.tfkaf_kaf2d(x, a[:3], boundary=3.0, gamma=0.5)
  else:
    fwd = lambda: tfkaf.ops.linear_spline(x, a, -4.0, 4.0)
    grad = lambda: raw.tfkaf_linear_spline_grad(dy, x, a, x_min=-4.0,
                                                x_max=4.0, axis=-1)
    bad = lambda: raw.tfkaf_linear_spline(x, a[:3], x_min=-4.0, x_max=4.0)

  def step():
    with tf.GradientTape() as tape:
      tape.watch([x, a])
      y = fwd()
    g = tape.gradient(y, [x, a], output_gradients=(dy if op != "kaf2d" else
                                                   dy))
    grad()
    return g

  def error_step():
    try:
      bad()
    except tf.errors.InvalidArgumentError:
      pass

  for _ in range(warmup):
    step()
    error_step()
  before = rss_bytes()
  t0 = time.time()
  samples = []
  for i in range(iterations):
    step()
    if (i + 1) % max(1, iterations // 10) == 0:
      samples.append(rss_bytes())
  after = rss_bytes()
  elapsed = time.time() - t0
  e_before = rss_bytes()
  for _ in range(iterations // 4):
    error_step()
  e_after = rss_bytes()
  print(json.dumps({"op": op, "iterations": iterations, "warmup": warmup,
                    "rss_before": before, "rss_after": after,
                    "samples": samples, "seconds": elapsed,
                    "error_iterations": iterations // 4,
                    "error_rss_before": e_before,
                    "error_rss_after": e_after}))


def determinism_inputs(tf, dtype):
  """Fixed inputs big enough for several parallel chunks of every kernel."""
  rng = np.random.default_rng(2024)
  cases = {
      "kaf_nc": ("kaf", rng.standard_normal((4096, 24)) * 2,
                 rng.standard_normal((24, 20)) * 0.5, -1),
      "kaf_nchw": ("kaf", rng.standard_normal((8, 12, 24, 24)) * 2,
                   rng.standard_normal((12, 20)) * 0.5, 1),
      "kaf2d_nc": ("kaf2d", rng.standard_normal((2048, 32)) * 2,
                   rng.standard_normal((16, 36)) * 0.5, -1),
      "kaf2d_nchw": ("kaf2d", rng.standard_normal((4, 8, 32, 32)) * 2,
                     rng.standard_normal((4, 49)) * 0.5, 1),
      "spline_nc": ("spline", rng.standard_normal((4096, 24)) * 3,
                    rng.standard_normal((24, 51)), -1),
      "spline_nchw": ("spline", rng.standard_normal((8, 12, 24, 24)) * 3,
                      rng.standard_normal((12, 51)), 1),
  }
  out = {}
  for name, (op, x, a, axis) in cases.items():
    y_shape = list(x.shape)
    if op == "kaf2d":
      y_shape[axis] //= 2
    dy = rng.standard_normal(y_shape)
    out[name] = (op, tf.cast(tf.constant(x), dtype),
                 tf.cast(tf.constant(a), dtype),
                 tf.cast(tf.constant(dy), dtype), axis)
  return out


def run_determinism_case(raw, tf, op, x, a, dy, axis, kernel="gaussian"):
  if op == "kaf":
    y = raw.tfkaf_kaf(x, a, boundary=3.0, gamma=0.8, kernel=kernel, axis=axis)
    dx, da = raw.tfkaf_kaf_grad(dy, x, a, boundary=3.0, gamma=0.8,
                                kernel=kernel, axis=axis)
  elif op == "kaf2d":
    y = raw.tfkaf_kaf2d(x, a, boundary=3.0, gamma=0.6, axis=axis)
    dx, da = raw.tfkaf_kaf2d_grad(dy, x, a, boundary=3.0, gamma=0.6,
                                  axis=axis)
  else:
    y = raw.tfkaf_linear_spline(x, a, x_min=-4.0, x_max=4.0, axis=axis)
    dx, da = raw.tfkaf_linear_spline_grad(dy, x, a, x_min=-4.0, x_max=4.0,
                                          axis=axis)
  return [_bits(v) for v in (y, dx, da)]


def _bits(t):
  v = t.numpy()
  return v.view(np.uint16) if v.dtype.itemsize == 2 else v


def threads_main(intra, inter, out_dir, dtypes):
  """Runs the determinism inputs with the given thread pools; saves .npy."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(intra)
  tf.config.threading.set_inter_op_parallelism_threads(inter)
  import tfkaf  # pylint: disable=g-import-not-at-top
  raw = tfkaf.load_ops()
  report = {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "run_to_run_differences": []}
  for dtype_name in dtypes:
    dtype = getattr(tf, dtype_name)
    for name, (op, x, a, dy, axis) in determinism_inputs(tf, dtype).items():
      kernels = KERNELS if op == "kaf" else ("gaussian",)
      for kernel in kernels:
        first = run_determinism_case(raw, tf, op, x, a, dy, axis, kernel)
        for _ in range(2):
          again = run_determinism_case(raw, tf, op, x, a, dy, axis, kernel)
          for label, u, v in zip(("y", "dx", "dalpha"), first, again):
            if not np.array_equal(u, v):
              report["run_to_run_differences"].append(
                  f"{dtype_name}/{name}/{kernel}/{label}")
        for label, v in zip(("y", "dx", "dalpha"), first):
          np.save(os.path.join(out_dir,
                               f"{dtype_name}-{name}-{kernel}-{label}.npy"), v)
  print(json.dumps(report))


def concurrency_main(num_threads, repeats):
  """Same ops from several Python threads at once; bitwise vs serial."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from concurrent import futures  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top
  raw = tfkaf.load_ops()
  jobs = []
  for dtype_name in ("float32", "float64", "float16", "bfloat16"):
    dtype = getattr(tf, dtype_name)
    for name, (op, x, a, dy, axis) in determinism_inputs(tf, dtype).items():
      jobs.append((f"{dtype_name}/{name}", op, x, a, dy, axis))
  serial = {label: run_determinism_case(raw, tf, op, x, a, dy, axis)
            for label, op, x, a, dy, axis in jobs}

  def work(job):
    label, op, x, a, dy, axis = job
    return label, run_determinism_case(raw, tf, op, x, a, dy, axis)

  mismatches = []
  calls = 0
  with futures.ThreadPoolExecutor(num_threads) as pool:
    for _ in range(repeats):
      for label, outs in pool.map(work, jobs * 2):
        calls += 1
        for part, u, v in zip(("y", "dx", "dalpha"), serial[label], outs):
          if not np.array_equal(u, v):
            mismatches.append(f"{label}/{part}")

  # Wrapper + tape from threads (the registered gradients).
  x = tf.constant(np.random.default_rng(3).standard_normal((256, 16)),
                  tf.float32)
  a = tf.constant(np.random.default_rng(4).standard_normal((16, 20)),
                  tf.float32)

  def tape_job(_):
    with tf.GradientTape() as tape:
      tape.watch([x, a])
      y = tfkaf.ops.kaf(x, a)
    g = tape.gradient(y, [x, a])
    return [y.numpy(), g[0].numpy(), g[1].numpy()]

  base = tape_job(0)
  with futures.ThreadPoolExecutor(num_threads) as pool:
    for outs in pool.map(tape_job, range(num_threads * 4)):
      calls += 1
      for u, v in zip(base, outs):
        if not np.array_equal(u, v):
          mismatches.append("tape/kaf")
  print(json.dumps({"calls": calls, "mismatches": sorted(set(mismatches))}))


if __name__ == "__main__":
  if sys.argv[1] == "--worker":
    worker_main()
  elif sys.argv[1] == "--leak":
    leak_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
  elif sys.argv[1] == "--threads":
    threads_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                 sys.argv[5].split(","))
  elif sys.argv[1] == "--concurrency":
    concurrency_main(int(sys.argv[2]), int(sys.argv[3]))
  else:
    raise SystemExit(f"unknown mode {sys.argv[1]}")
