"""What a case must (or may) be rejected for, and the check of an error.

`KEYWORDS` is the one table of (problem -> words, one of which the error
message must contain, case-insensitively). `expected_problems` lists the
problems of a case from full shapes (run time) or from partially-known
shapes (what must fail at graph construction).
"""

import math

from fuzz import common
from fuzz.common import f32

__all__ = ["KEYWORDS", "ALLOWED_ERRORS", "DTYPE_PROBLEMS",
           "expected_problems", "check_error"]

_TYPE = ("type", "dtype", "attr", "allowed", "float", "half", "double",
         "bfloat16", "int", "bool", "complex")
_ALPHA = ("alpha", "coefficient", "rank", "2-d", "2d", "dimension", "shape")

# Problem code (or (code, op) where the op words it differently) -> words.
KEYWORDS = {
    "dtype": _TYPE,
    "alpha_dtype": _TYPE + _ALPHA,
    "dy_dtype": _TYPE + ("dy",),
    "range": ("x_min", "x_max"),
    "range_extreme": ("x_min", "x_max", "range"),
    "boundary": ("boundary",),
    "boundary_extreme": ("boundary", "gamma"),
    "gamma": ("gamma",),
    "gamma_extreme": ("gamma",),
    "kernel": ("kernel",),
    "alpha_rank": _ALPHA,
    "alpha_cols": ("d >= 2", "centre", "center", "column", "knot", "alpha",
                   "coefficient", "at least"),
    ("alpha_cols", "kaf2d"): ("square", "d*d", "alpha", "grid", "centre",
                              "center"),
    "static_width": ("gamma", "statically", "centre", "known"),
    "rank0": ("rank",),
    "axis": ("axis",),
    "odd": ("even", "odd", "2h", "pair"),
    "rows": ("channel", "rows", "alpha", "coefficient", "mismatch"),
    "dy_shape": ("dy", "shape", "gradient"),
}

ALLOWED_ERRORS = ("InvalidArgumentError", "ValueError")
# Problems for which a TypeError is allowed too.
DTYPE_PROBLEMS = ("dtype", "alpha_dtype", "dy_dtype")


def _problem(code, strict, op=None):
  """(code, keywords, strict): strict problems must raise, others may."""
  return (code, KEYWORDS.get((code, op), KEYWORDS[code]), strict)


def _dtype_problems(case):
  dtype, mode = case["dtype"], case["mode"]
  wrapper = mode == "wrapper"  # graph mode builds the raw ops
  out = []
  if dtype not in common.FLOAT_DTYPES:
    lenient = wrapper and dtype != "complex64"
    out.append(_problem("dtype", not lenient))
  if case["alpha_dtype"] != dtype:
    out.append(_problem("alpha_dtype", not wrapper))
  if case["call"] == "grad" and case["dy_dtype"] != dtype and not wrapper:
    out.append(_problem("dy_dtype", True))
  return out


def _spline_attr_problems(a):
  lo, hi = f32(a["x_min"]), f32(a["x_max"])
  if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
    return [_problem("range", True)]
  if hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)) or hi - lo > 1e30:
    return [_problem("range_extreme", False)]
  return []


def _kaf_attr_problems(op, a):
  out = []
  b = f32(a["boundary"])
  if not (math.isfinite(b) and b > 0):
    out.append(_problem("boundary", True))
  elif b < 1e-5 or b > 1e5:
    out.append(_problem("boundary_extreme", False))
  kernel = a.get("kernel", "gaussian")
  if a["gamma"] is not None:
    g = f32(a["gamma"])
    if not (math.isfinite(g) and g > 0):
      # gamma is unused by the relu / softplus kernels: may be rejected.
      out.append(_problem("gamma", kernel == "gaussian"))
    elif g < 1e-20 or g > 1e20:
      out.append(_problem("gamma_extreme", False))
  if op == "kaf" and kernel not in common.KERNELS:
    out.append(_problem("kernel", True))
  return out


def _alpha_problems(case, alpha_shape):
  """Problems of alpha's shape alone; and its (rows, width) if it is 2-D."""
  op = case["op"]
  if alpha_shape is None:
    return [], None, None
  if len(alpha_shape) != 2:
    return [_problem("alpha_rank", True)], None, None
  rows, width = alpha_shape
  out = []
  if width is None:
    if (case["mode"] == "wrapper" and op != "spline" and
        case["attrs"]["gamma"] is None):
      out.append(_problem("static_width", False))
  elif op == "kaf2d":
    side = int(round(math.sqrt(width)))
    if side * side != width or side < 2:
      out.append(_problem("alpha_cols", True, op))
  elif width < 2:
    out.append(_problem("alpha_cols", True, op))
  return out, rows, width


def _channel_problems(op, x_shape, ax, rows):
  """Problems of the channel dimension, and the output's shape (None where
  an odd 2D-KAF channel count leaves it undefined)."""
  c = x_shape[ax]
  y_shape = list(x_shape)
  if c is None:
    if op == "kaf2d":
      y_shape[ax] = None
    return [], y_shape
  out = []
  expected_rows = c
  if op == "kaf2d":
    if c % 2:
      out.append(_problem("odd", True))
      y_shape = None
    else:
      y_shape[ax] = c // 2
    expected_rows = c // 2
  if rows is not None and rows != expected_rows:
    out.append(_problem("rows", True))
  return out, y_shape


def _x_problems(case, x_shape, rows):
  """Problems of x's rank, axis and channels; and the output's shape."""
  if x_shape is None:
    return [], None
  rank, axis = len(x_shape), case["attrs"]["axis"]
  if rank == 0:
    return [_problem("rank0", True)], []  # a dy of rank >= 1: a 2nd problem
  if not -rank <= axis < rank:
    return [_problem("axis", True)], None
  return _channel_problems(case["op"], x_shape, axis % rank, rows)


def _dy_problems(y_shape, dy_shape):
  if y_shape is None or dy_shape is None:
    return []
  bad = len(dy_shape) != len(y_shape) or any(
      d is not None and e is not None and d != e
      for d, e in zip(dy_shape, y_shape))
  return [_problem("dy_shape", True)] if bad else []


def expected_problems(case, x_shape, alpha_shape, dy_shape):
  """Problems of the case given (possibly partial) shapes.

  Shapes: None (unknown rank) or a sequence of ints / None. Returns a list of
  (code, keywords, strict): strict problems must raise, non-strict may.
  """
  out = _dtype_problems(case)
  if case["op"] == "spline":
    out += _spline_attr_problems(case["attrs"])
  else:
    out += _kaf_attr_problems(case["op"], case["attrs"])
  alpha, rows, _ = _alpha_problems(case, alpha_shape)
  x, y_shape = _x_problems(case, x_shape, rows)
  out += alpha + x
  if case["call"] == "grad":
    out += _dy_problems(y_shape, dy_shape)
  return out


def _message_ok(message, problems):
  m = (message or "").lower()
  if not m.strip():
    return False
  keywords = [k for _, kws, _ in problems for k in kws]
  return any(k.lower() in m for k in keywords)


def check_error(result, problems, phase_note=""):
  """Failure strings for a raised error given the case's problems: an
  allowed type, and a message naming one of them."""
  etype = result["etype"].rsplit(".", 1)[-1]
  codes = [c for c, _, _ in problems]
  allowed = ALLOWED_ERRORS
  if any(c in DTYPE_PROBLEMS for c in codes):
    allowed = allowed + ("TypeError",)
  if etype not in allowed:
    return [f"raised {etype} (expected InvalidArgumentError/ValueError"
            f"{phase_note}) for problems {codes}: {result['message'][:400]}"]
  if not _message_ok(result["message"], problems):
    return [f"{etype}{phase_note} message does not name the problem "
            f"{codes}: {result['message'][:400]!r}"]
  return []
