"""Cases from parameters, and their description (label and reproducer).

A case is a dict: op, call ("forward" / "grad"), mode ("raw", "wrapper",
"graph"), dtype, alpha_dtype, dy_dtype, float64 values x / alpha / dy,
attrs, and for graph mode the placeholder shapes (None: unknown rank or
dimension).
"""

import math

import numpy as np

from fuzz import common
from fuzz.common import f32

__all__ = ["specials", "build_case", "describe", "width", "raw_op_name",
           "raw_attrs", "WRAPPER_NAMES"]

# The raw op and the tfkaf.ops wrapper of each op.
_RAW_NAMES = {"kaf": "tfkaf_kaf", "kaf2d": "tfkaf_kaf2d",
              "spline": "tfkaf_linear_spline"}
WRAPPER_NAMES = {"kaf": "kaf", "kaf2d": "kaf2d", "spline": "linear_spline"}


def specials(dtype):
  """The special values of a dtype (float32's for non-float dtypes)."""
  d = dtype if dtype in common.FLOAT_DTYPES else "float32"
  return np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, common.SUBNORMAL[d],
                   -common.SUBNORMAL[d], 0.0, -0.0, common.MAX[d],
                   -common.MAX[d], 1e4, -1e4, common.TINY[d], 3.0, -3.0],
                  np.float64)


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


def _axis_ok(rank, axis):
  return rank > 0 and -rank <= axis < rank


def _shapes(p):
  """(x shape, alpha shape): the channel axis gets `channels`; alpha has the
  matching rows unless p["alpha_kind"] asks for a mismatch."""
  op, rank, axis, channels = p["op"], p["rank"], p["axis"], p["channels"]
  dims = list(p["dims"])[:rank]
  dims += [1] * (rank - len(dims))
  if _axis_ok(rank, axis):
    dims[axis % rank] = channels
  rows = channels // 2 if op == "kaf2d" else channels
  if not _axis_ok(rank, axis):
    rows = p.get("rows_if_no_axis", 2)
  w = p["width"]
  alpha_shape = {
      "ok": (rows, w), "rows+1": (rows + 1, w),
      "rows-1": (max(rows - 1, 0) if rows else 1, w),
      "rank1": (w,), "rank3": (rows, w, 1), "rank0": (),
  }[p.get("alpha_kind", "ok")]
  return tuple(dims), alpha_shape


def _attrs_and_grid(p):
  """The op's attributes, and its centres / knots (None if undefined), which
  some x values are drawn on."""
  op, w = p["op"], p["width"]
  attrs = {"axis": p["axis"]}
  if op == "spline":
    attrs["x_min"], attrs["x_max"] = p["x_min"], p["x_max"]
    lo, hi = f32(p["x_min"]), f32(p["x_max"])
    if (math.isfinite(lo) and math.isfinite(hi) and lo < hi and
        w >= 2 and hi - lo > 0):
      return attrs, np.linspace(lo, hi, min(w, 64))
    return attrs, None
  attrs["boundary"] = p["boundary"]
  attrs["gamma"] = p["gamma"]
  if op == "kaf":
    attrs["kernel"] = p["kernel"]
  b = f32(p["boundary"])
  side = w if op == "kaf" else int(round(math.sqrt(max(w, 0))))
  grid = (np.linspace(-b, b, min(side, 64))
          if math.isfinite(b) and b > 0 and side >= 2 else None)
  return attrs, grid


def _dy_shape(p, x_shape):
  """The output's shape, or a mismatching one if p["dy_kind"] asks."""
  y_shape = list(x_shape)
  rank, axis = p["rank"], p["axis"]
  if p["op"] == "kaf2d" and _axis_ok(rank, axis):
    y_shape[axis % rank] = p["channels"] // 2
  kind = p.get("dy_kind", "ok")
  if kind == "bad_dim" and y_shape:
    y_shape[-1] += 1
  elif kind == "bad_rank":
    y_shape = y_shape + [1]
  return tuple(y_shape)


def _graph_shape(shape, none_mask, unknown_rank):
  if unknown_rank:
    return None
  none_mask = list(none_mask) + [False] * len(shape)
  return [None if none_mask[i] else int(d) for i, d in enumerate(shape)]


def _graph_shapes(p, case):
  graph = {}
  for name in ("x", "alpha", "dy"):
    if case[name] is not None:
      graph[name] = _graph_shape(case[name].shape, p.get(f"{name}_none", ()),
                                 p.get(f"{name}_unknown_rank", False))
  return graph


def build_case(p):
  """A case from parameters `p` (a dict; see fuzz/strategies.py), the
  values drawn from a NumPy generator seeded with p["seed"]."""
  op, call, mode, dtype = p["op"], p["call"], p["mode"], p["dtype"]
  rng = np.random.default_rng(p.get("seed", 0))
  x_shape, alpha_shape = _shapes(p)
  attrs, grid = _attrs_and_grid(p)
  x = _values(rng, x_shape, p["x_scale"], p["x_special"], grid, dtype)
  alpha = _values(rng, alpha_shape, p["alpha_scale"], p["alpha_special"],
                  None, dtype)
  case = {"op": op, "call": call, "mode": mode, "dtype": dtype,
          "alpha_dtype": p.get("alpha_dtype", dtype), "x": x, "alpha": alpha,
          "attrs": attrs, "dy": None, "dy_dtype": None}
  if call == "grad":
    case["dy"] = _values(rng, _dy_shape(p, x_shape), p.get("dy_scale", 1.0),
                         p["dy_special"], None, dtype)
    case["dy_dtype"] = p.get("dy_dtype", dtype)
    if mode == "wrapper" and dtype not in common.FLOAT_DTYPES:
      case["dy_dtype"] = "float32"  # the wrapper computes in float32
  if mode == "graph":
    case["graph"] = _graph_shapes(p, case)
  return case


def width(case):
  """The number of centres / knots (alpha's last dimension; 0 if none)."""
  s = case["alpha"].shape
  return int(s[-1]) if len(s) >= 1 else 0


def raw_op_name(op, call):
  return _RAW_NAMES[op] + ("_grad" if call == "grad" else "")


def raw_attrs(case):
  """The raw op's attributes: gamma None becomes the default gamma (1.0
  where undefined), and 2D-KAF has no kernel."""
  a = dict(case["attrs"])
  if case["op"] != "spline" and a.get("gamma") is None:
    g = common.default_gamma(case["op"], f32(a["boundary"]), width(case))
    a["gamma"] = 1.0 if g is None else g
  if case["op"] == "kaf2d":
    a.pop("kernel", None)
  return a


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


def _tensor_lines(case):
  lines = []
  for name, dtype_key in (("x", "dtype"), ("alpha", "alpha_dtype"),
                          ("dy", "dy_dtype")):
    if case[name] is not None:
      lines.append(f"{name} = tf.cast(tf.constant({_fmt_array(case[name])}),"
                   f" tf.{case[dtype_key]})")
  return lines


def _call_lines(case):
  op, call, mode = case["op"], case["call"], case["mode"]
  if mode in ("raw", "graph"):
    a = raw_attrs(case)
    args = "dy, x, alpha" if call == "grad" else "x, alpha"
    kw = ", ".join(f"{k}={v!r}" for k, v in sorted(a.items()))
    return [f"print(tfkaf.load_ops().{raw_op_name(op, call)}({args}, {kw}))"]
  fn = WRAPPER_NAMES[op]
  kw = ", ".join(f"{k}={v!r}" for k, v in sorted(case["attrs"].items()))
  if call == "grad":
    return ["with tf.GradientTape() as tape:",
            "  tape.watch([x, alpha])",
            f"  y = tfkaf.ops.{fn}(x, alpha, {kw})",
            "print(y, tape.gradient(y, [x, alpha], output_gradients=dy))"]
  return [f"print(tfkaf.ops.{fn}(x, alpha, {kw}))"]


def describe(case, cpu_path=None):
  """A short label and a stand-alone Python reproducer of the case;
  cpu_path: the CPU kernel path it ran on where one was forced."""
  lines = ["import numpy as np, tensorflow as tf, tfkaf",
           "import tfkaf.reference",
           "nan, inf = np.nan, np.inf"]
  if cpu_path:
    lines.insert(0, f"# run with TFKAF_CPU_PATH={cpu_path}")
  lines += _tensor_lines(case) + _call_lines(case)
  if case["mode"] == "graph":
    lines.insert(0, f"# graph mode, placeholder shapes {case['graph']}")
  label = (f"{case['op']}/{case['call']}/{case['mode']} dtype={case['dtype']}"
           f" alpha_dtype={case['alpha_dtype']} x{tuple(case['x'].shape)} "
           f"alpha{tuple(case['alpha'].shape)}"
           + (f" dy{tuple(case['dy'].shape)}" if case["dy"] is not None
              else "") + f" attrs={case['attrs']}"
           + (f" cpu_path={cpu_path}" if cpu_path else ""))
  return label, "\n".join(lines)
