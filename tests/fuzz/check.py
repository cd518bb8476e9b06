"""`check_case`: the verdict on one executed case."""

import numpy as np

from fuzz.compare import compare_outputs
from fuzz.errors import check_error
from fuzz.errors import expected_problems

__all__ = ["check_case"]


def _static_want(case, name):
  """The least static shape of output `name` the placeholders allow."""
  g = case["graph"]
  if name == "dalpha":
    return g["alpha"]
  want = g["x"]
  if want is None:
    return None
  if name == "y" and case["op"] == "kaf2d":
    ax = case["attrs"]["axis"] % len(want)
    want = list(want)
    if want[ax] is not None:
      want[ax] //= 2
  if (name == "dx" and g.get("dy") is not None and len(g["dy"]) == len(want)
      and case["op"] != "kaf2d"):
    want = [a if a is not None else b for a, b in zip(want, g["dy"])]
  return want


def _check_static_shape(name, static, want, actual):
  if static is None:
    if want is not None:
      return [f"static shape of {name} is unknown; expected at least {want}"]
    return []
  out = []
  if actual is not None and (len(static) != len(actual) or any(
      s is not None and s != a for s, a in zip(static, actual))):
    out.append(f"static shape of {name} {static} is incompatible with "
               f"the run-time shape {list(actual)}")
  if want is not None and (len(want) != len(static) or any(
      w is not None and s is None for w, s in zip(want, static))):
    out.append(f"static shape of {name} {static} loses known dimensions "
               f"(expected at least {want})")
  return out


def _check_static_shapes(case, result):
  actual = {k: np.asarray(v[0]).shape for k, v in result.get(
      "outputs", {}).items()}
  out = []
  for name, static in (result.get("static_shapes") or {}).items():
    out += _check_static_shape(name, static, _static_want(case, name),
                               actual.get(name))
  return out


def _check_graph_phase(case, result, truth):
  """(verdict or None, failures) of graph mode: construction must fail for
  knowable problems only, and static output shapes keep known dimensions."""
  g = case["graph"]
  static = expected_problems(case, g["x"], g["alpha"], g.get("dy"))
  knowable = [p for p in static if p[2]]
  if result["status"] == "error" and result["phase"] == "construct":
    if not truth:
      return ["graph construction failed for a valid case: "
              f"{result['etype']}: {result['message'][:400]}"], []
    return check_error(result, truth, " at construction"), []
  failures = []
  if knowable:
    failures.append(
        "graph construction succeeded although the static shapes / "
        f"attributes already show {[p[0] for p in knowable]}")
  return None, failures + _check_static_shapes(case, result)


def _check_outcome(case, result, truth):
  """Failures of a run-time outcome: a valid case returns, an invalid one
  raises naming the problem, and returned values match."""
  if result["status"] == "error":
    if not truth:
      return [f"valid case raised {result['etype']}: "
              f"{result['message'][:400]}"]
    return check_error(result, truth)
  strict = [p for p in truth if p[2]]
  if strict:
    return [f"invalid case ({[p[0] for p in strict]}) returned a result "
            "instead of raising"]
  if result.get("ref_error"):
    if truth:  # an 'either' case the composite rejects: nothing to compare
      return []
    return ["composite reference raised on a valid case: "
            + result["ref_error"][:400]]
  return compare_outputs(case, result)


def check_case(case, result):
  """Failure strings for one executed case (empty list: passed)."""
  if result.get("harness_error"):
    return ["harness error in worker: " + result["harness_error"]]
  dy_shape = tuple(case["dy"].shape) if case["dy"] is not None else None
  truth = expected_problems(case, tuple(case["x"].shape),
                            tuple(case["alpha"].shape), dy_shape)
  failures = []
  if result.get("inputs_modified"):
    failures.append("the op modified its input tensors in place")
  if case["mode"] == "graph":
    verdict, more = _check_graph_phase(case, result, truth)
    if verdict is not None:
      return failures + verdict
    failures += more
  return failures + _check_outcome(case, result, truth)
