"""Running one case in the worker process: the op (raw, wrapper, wrapper
under GradientTape, or a v1 graph with the case's placeholder shapes) and
the composite reference `tfkaf.reference` in float64 on the same values."""

import numpy as np

from fuzz import cases
from fuzz import common
from fuzz.common import f32

__all__ = ["State", "execute"]


class State:
  """Modules imported once by the worker (see worker.worker_main)."""
  tf = None
  tfkaf = None
  raw = None
  reference = None


def _tf_dtype(name):
  return getattr(State.tf, name)


def _tensor(values, dtype):
  t = State.tf.constant(np.asarray(values, np.float64))
  with np.errstate(all="ignore"):
    return State.tf.cast(t, _tf_dtype(dtype))


def _as64(t):
  if t.dtype.is_complex:
    return np.real(t.numpy()).astype(np.float64)
  return State.tf.cast(t, State.tf.float64).numpy()


def _error(phase, e):
  return {"status": "error", "phase": phase,
          "etype": f"{type(e).__module__}.{type(e).__name__}",
          "message": str(e)}


def _raw_fn(op, call):
  return getattr(State.raw, cases.raw_op_name(op, call))


def _wrapper_fn(op):
  return getattr(State.tfkaf.ops, cases.WRAPPER_NAMES[op])


def _call_eager(case, x, alpha, dy):
  """Returns {name: tensor} or raises."""
  op, call = case["op"], case["call"]
  if case["mode"] == "raw":
    fn = _raw_fn(op, call)
    if call == "grad":
      dx, da = fn(dy, x, alpha, **cases.raw_attrs(case))
      return {"dx": dx, "dalpha": da}
    return {"y": fn(x, alpha, **cases.raw_attrs(case))}
  fn = _wrapper_fn(op)
  if call != "grad":
    return {"y": fn(x, alpha, **case["attrs"])}
  with State.tf.GradientTape() as tape:
    tape.watch([x, alpha])
    y = fn(x, alpha, **case["attrs"])
  dx, da = tape.gradient(y, [x, alpha], output_gradients=dy)
  out = {"y": y}
  if dx is not None:
    out["dx"] = dx
  if da is not None:
    out["dalpha"] = da
  return out


def _placeholder(case, tensors, feeds, name, dtype_key):
  p = State.tf.compat.v1.placeholder(_tf_dtype(case[dtype_key]),
                                     case["graph"][name])
  feeds[p] = tensors[name].numpy()
  return p


def _build_graph(case, tensors, feeds, result):
  """The raw op's outputs on placeholders, in the default graph (x and
  alpha first, then dy); None after recording a construction error."""
  px = _placeholder(case, tensors, feeds, "x", "dtype")
  pa = _placeholder(case, tensors, feeds, "alpha", "alpha_dtype")
  fn = _raw_fn(case["op"], case["call"])
  try:
    if case["call"] == "grad":
      pdy = _placeholder(case, tensors, feeds, "dy", "dy_dtype")
      dx, da = fn(pdy, px, pa, **cases.raw_attrs(case))
      return {"dx": dx, "dalpha": da}
    return {"y": fn(px, pa, **cases.raw_attrs(case))}
  except Exception as e:  # pylint: disable=broad-except
    result.update(_error("construct", e))
    return None


def _call_graph(case, tensors, result):
  """Builds the op in a v1 graph with the case's placeholder shapes and runs
  it; returns {name: array}, or None after recording an error in result."""
  tf = State.tf
  g = tf.Graph()
  with g.as_default():
    feeds = {}
    outs = _build_graph(case, tensors, feeds, result)
    if outs is None:
      return None
    result["static_shapes"] = {
        k: (None if v.shape.rank is None else v.shape.as_list())
        for k, v in outs.items()}
    with tf.compat.v1.Session(graph=g) as sess:
      try:
        return sess.run(outs, feed_dict=feeds)
      except Exception as e:  # pylint: disable=broad-except
        result.update(_error("run", e))
        return None


def _run_op(case, tensors, result):
  """{name: tensor} of the op, or None after recording an error."""
  if case["mode"] == "graph":
    values = _call_graph(case, tensors, result)
    if values is None:
      return None
    return {k: State.tf.constant(v) for k, v in values.items()}
  try:
    return _call_eager(case, tensors["x"], tensors["alpha"], tensors["dy"])
  except Exception as e:  # pylint: disable=broad-except
    result.update(_error("run", e))
    return None


def _seen_values(tensors, op_dtype):
  """The float64 values the op saw (after any cast by the wrapper)."""
  tf, dtype = State.tf, _tf_dtype(op_dtype)
  x, alpha, dy = tensors["x"], tensors["alpha"], tensors["dy"]
  x_r = _as64(tf.cast(x, dtype) if not x.dtype.is_complex
              else tf.cast(tf.math.real(x), dtype))
  a_r = _as64(tf.cast(alpha, dtype))
  dy_r = _as64(tf.cast(dy, dtype)) if dy is not None else None
  return {"x_r": x_r, "alpha_r": a_r, "dy_r": dy_r}


def _effective_gamma(case):
  """The gamma the op used: the raw op's float32 attribute (see
  cases.raw_attrs), or, through the wrapper without a gamma, the default the
  op derives from boundary and D in float64 (exact for float64 ops; other
  dtypes round it once, which compare_outputs covers with eps_attr)."""
  if case["attrs"].get("gamma") is None and case["mode"] == "wrapper":
    g = common.default_gamma(case["op"], f32(case["attrs"]["boundary"]),
                             cases.width(case))
    return g if g is not None else 1.0
  return f32(cases.raw_attrs(case)["gamma"])


def _composite_fn(case):
  ref = State.reference
  ka = dict(case["attrs"] if case["mode"] == "wrapper"
            else cases.raw_attrs(case))
  if case["op"] == "spline":
    return lambda xx, aa: ref.linear_spline(xx, aa, ka["x_min"], ka["x_max"],
                                            axis=ka["axis"])
  if case["op"] == "kaf":
    return lambda xx, aa: ref.kaf(xx, aa, boundary=ka["boundary"],
                                  kernel=ka["kernel"], gamma=ka["gamma"],
                                  axis=ka["axis"])
  return lambda xx, aa: ref.kaf2d(xx, aa, boundary=ka["boundary"],
                                  gamma=ka["gamma"], axis=ka["axis"])


def _composite(case, seen):
  """The composite reference's outputs in float64 on the values seen."""
  tf = State.tf
  fn = _composite_fn(case)
  x64, a64 = tf.constant(seen["x_r"]), tf.constant(seen["alpha_r"])
  if seen["dy_r"] is None:
    return {"y": fn(x64, a64).numpy()}
  with tf.GradientTape() as tape:
    tape.watch([x64, a64])
    y = fn(x64, a64)
  dx, da = tape.gradient(y, [x64, a64],
                         output_gradients=tf.constant(seen["dy_r"]))
  return {"y": y.numpy(),
          "dx": dx.numpy() if dx is not None else np.zeros_like(seen["x_r"]),
          "dalpha": (da.numpy() if da is not None else
                     np.zeros_like(seen["alpha_r"]))}


def execute(case):
  """Runs one case in this process (the worker); returns a result dict."""
  result = {"status": "ok", "outputs": {}, "ref": {}}
  tensors = {"x": _tensor(case["x"], case["dtype"]),
             "alpha": _tensor(case["alpha"], case["alpha_dtype"]),
             "dy": (_tensor(case["dy"], case["dy_dtype"])
                    if case["dy"] is not None else None)}
  inputs = [t for t in tensors.values() if t is not None]
  before = [t.numpy().tobytes() for t in inputs]
  outs = _run_op(case, tensors, result)
  if outs is None:
    return result
  result["inputs_modified"] = before != [t.numpy().tobytes() for t in inputs]
  op_dtype = next(iter(outs.values())).dtype.name if outs else case["dtype"]
  result["op_dtype"] = op_dtype
  result["outputs"] = {k: (_as64(v), v.dtype.name) for k, v in outs.items()}
  if op_dtype not in common.FLOAT_DTYPES:
    result["harness_error"] = f"op returned dtype {op_dtype}"
    return result
  seen = _seen_values(tensors, op_dtype)
  result.update(seen)
  if case["op"] != "spline":
    result["gamma_eff"] = _effective_gamma(case)
  try:
    result["ref"] = _composite(case, seen)
  except Exception as e:  # pylint: disable=broad-except
    result["ref_error"] = f"{type(e).__name__}: {e}"
  return result
