"""Comparison of an op's outputs with the float64 oracle and the composite
reference `tfkaf.reference` (run by the worker on the same values)."""

import numpy as np

from fuzz import bounds
from fuzz import common
from fuzz.oracle_kaf import kaf2d_oracle
from fuzz.oracle_kaf import kaf_oracle
from fuzz.oracle_spline import spline_oracle

__all__ = ["np_oracle", "compare_outputs", "expected_shape"]


def np_oracle(case, x, alpha, dy, gamma, eps_attr):
  """Expected outputs in row layout ([P, C] / [rows, D]); x, alpha, dy are
  the float64 values the op saw. gamma: the gamma the op used; eps_attr:
  the relative rounding of a gamma the op derived (else 0)."""
  prec = bounds.precision(case["dtype"], eps_attr)
  with np.errstate(all="ignore"):
    x_rows = bounds.to_rows(x, case["attrs"]["axis"])
    if case["op"] == "spline":
      return spline_oracle(case, x_rows, alpha, dy, prec)
    if case["op"] == "kaf":
      return kaf_oracle(case, x_rows, alpha, dy, gamma, prec)
    return kaf2d_oracle(case, x_rows, alpha, dy, gamma, prec)


def expected_shape(case, name):
  """The run-time shape of output `name` of a valid case."""
  if name == "dalpha":
    return tuple(case["alpha"].shape)
  shape = list(case["x"].shape)
  if name == "y" and case["op"] == "kaf2d":
    ax = case["attrs"]["axis"] % len(shape)
    shape[ax] //= 2
  return tuple(shape)


def _layout(case, name, arr):
  if name == "dalpha":
    return np.asarray(arr, np.float64)
  return bounds.to_rows(arr, case["attrs"]["axis"])


def _oracle_with_ftz(case_eff, result, eps_attr):
  """The oracle, its bounds widened where inputs are subnormal: TensorFlow's
  CPU threads run with flush-to-zero and denormals-are-zero, so subnormal
  inputs of the compute type may be read as zeros. Either reading is right."""
  dtype = case_eff["dtype"]
  inputs = (result["x_r"], result["alpha_r"], result.get("dy_r"))
  gamma = result.get("gamma_eff")
  exp = np_oracle(case_eff, *inputs, gamma, eps_attr)
  tiny = common.TINY[common.compute_dtype(dtype)]
  flushed = [bounds.flush(v, tiny) for v in inputs]
  if any(f is not v for f, v in zip(flushed, inputs)):
    exp_ftz = np_oracle(case_eff, *flushed, gamma, eps_attr)
    for name, e in exp.items():
      with np.errstate(all="ignore"):
        e.err = e.err + bounds.abs_finite(e.value - exp_ftz[name].value)
  return exp


def _output_dtype(case, dtype, name):
  """Gradients of the wrapper have the dtype of the watched tensor (through
  any cast); everything else the op's dtype."""
  if case["mode"] == "wrapper" and case["call"] == "grad":
    source = {"dx": case["dtype"], "dalpha": case["alpha_dtype"]}.get(name)
    if source in common.FLOAT_DTYPES:
      return source
  return dtype


def _tolerance(e, ref_value, dtype, want_dtype):
  tol = 4.0 * e.err + 4 * common.TINY[dtype]
  if want_dtype != dtype and want_dtype in common.FLOAT_DTYPES:
    tol = (tol + 2 * common.EPS[want_dtype] * bounds.abs_finite(ref_value)
           + common.TINY[want_dtype])
  return tol


def _wrong_elements(e, o, r, tol, prone):
  """(bad mask, reason per element) of op output o against reference r."""
  bad = np.zeros(o.shape, bool)
  why = np.empty(o.shape, object)
  # NaN in -> NaN out.
  m = e.nan_req & ~np.isnan(o)
  bad |= m
  why[m] = "expected NaN (NaN input)"
  rest = ~e.nan_req & ~prone
  # Reference infinite: the same infinity. (NaN is accepted where
  # infinities are involved: inf * 0 from an underflowed kernel value.)
  m = rest & np.isinf(r) & (o != r) & ~(np.isnan(o) & e.inf_inv)
  bad |= m
  why[m] = "expected the reference's infinity"
  # Reference NaN without a NaN input: only acceptable with infinities or
  # where the formula overflows too (composite and oracle NaN with finite
  # inputs); else the op must match the formula.
  m = rest & np.isnan(r) & ~e.inf_inv & np.isfinite(e.value) & ~(
      np.abs(o - e.value) <= tol)
  bad |= m
  why[m] = "reference NaN with finite inputs; op differs from formula"
  # Finite reference: within the error bound.
  m = rest & np.isfinite(r) & ~(np.abs(o - r) <= tol)
  bad |= m
  why[m] = "outside tolerance"
  return bad, why


def _describe_wrong(name, bad, why, e, o, r, tol):
  details = []
  for j in np.argwhere(bad)[:4]:
    j = tuple(j)
    details.append(f"at {j}: op={o[j]!r} ref={r[j]!r} formula="
                   f"{e.value[j]!r} tol={tol[j]:.3g} ({why[j]})")
  return (f"{name}: {int(bad.sum())} of {bad.size} elements wrong; "
          + "; ".join(details))


def _check_composite(name, e, r, prone, dtype, eps_attr):
  """The composite reference against the formula (float64)."""
  eps_ratio = common.EPS["float64"] / common.EPS[common.compute_dtype(dtype)]
  with np.errstate(all="ignore"):
    tol64 = 4.0 * e.err * eps_ratio + 1e-300 + 4.0 * eps_attr * (
        e.mag + np.abs(e.value))
    chk = (~e.nan_req & ~e.inf_inv & ~prone & np.isfinite(e.value) &
           ~(np.abs(r - e.value) <= tol64 + 1e-13 * (e.mag + e.err)))
  if not chk.any():
    return []
  j = tuple(np.argwhere(chk)[0])
  return [f"composite reference disagrees with the formula for {name} at "
          f"{j}: composite={r[j]!r} formula={e.value[j]!r}"]


def _compare_one(case, result, name, exp, eps_attr):
  value, out_dtype = result["outputs"][name]
  dtype = result["op_dtype"]
  want_shape = expected_shape(case, name)
  if tuple(np.shape(value)) != want_shape:
    return [f"{name}: shape {np.shape(value)}, expected {want_shape}"]
  failures = []
  e = exp[name]
  want_dtype = _output_dtype(case, dtype, name)
  if out_dtype != want_dtype:
    failures.append(f"{name}: dtype {out_dtype}, expected {want_dtype}")
  o = _layout(case, name, value)
  ref = result["ref"].get(name)
  r = _layout(case, name, ref) if ref is not None else e.value
  limit = min(common.MAX[dtype], common.MAX[common.compute_dtype(dtype)]) / 16
  with np.errstate(all="ignore"):
    tol = _tolerance(e, r, dtype, want_dtype)
    prone = (~np.isfinite(e.mag + e.err) | (e.mag + e.err > limit) |
             e.prone)
    bad, why = _wrong_elements(e, o, r, tol, prone)
  if bad.any():
    failures.append(_describe_wrong(name, bad, why, e, o, r, tol))
  if ref is not None:
    failures += _check_composite(name, e, r, prone, dtype, eps_attr)
  return failures


def compare_outputs(case, result):
  """Failure strings of a valid case's outputs: shape, dtype, values within
  the oracle's bound of the composite reference, and the composite within
  its float64 bound of the formula."""
  # A gamma the op derives is exact in float64 and rounded once to float32
  # for the other dtypes.
  eps_attr = 1.2e-7 if (case["attrs"].get("gamma") is None and
                        case["mode"] == "wrapper" and
                        result["op_dtype"] != "float64") else 0.0
  case_eff = dict(case, dtype=result["op_dtype"])
  exp = _oracle_with_ftz(case_eff, result, eps_attr)
  failures = []
  for name in result["outputs"]:
    failures += _compare_one(case, result, name, exp, eps_attr)
  return failures
