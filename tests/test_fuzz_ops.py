"""Property-based fuzz tests of the fused ops and their gradient ops (#8).

Every case is executed in a crash-isolated worker process
(tests/fuzz_harness.py): a crash or hang fails the test naming the case, with
a stand-alone reproducer, instead of killing the test runner. Each case must
either match the composite reference `tfkaf.reference` (float64) within a
rounding-error bound derived from the formulas (docs/design.md, sections 1-4) and the
element type, with NaN in -> NaN out, or raise InvalidArgumentError /
ValueError (TypeError for dtype errors) whose message names the problem.

Cases draw: ranks 0-5 (rank 0 must be an error), shapes with zero-sized
dimensions, a random channel axis (sometimes out of range), the four
supported dtypes and unsupported ones (mixed x/alpha/dy dtypes too), values
with NaN, +-Inf, +-1e30, the type's max, subnormals and exact grid points,
random attributes (boundary, gamma, kernel names, x_min/x_max; invalid and
extreme ones), and alpha / coefficient / dy shapes that sometimes do not
match. Modes: the raw op, the Python wrapper (eager; under GradientTape for
gradients, exercising the registered gradients) and a v1 graph with
partially-known placeholder shapes (shape functions: what is knowable must
fail at construction, the rest at run time; static output shapes must keep
the known dimensions).

Profiles (TFKAF_FUZZ_PROFILE):
  ci    (default) derandomized, TFKAF_FUZZ_EXAMPLES (default 250) cases per
        test, 9 tests -> ~2,250 cases.
  long  random seed, TFKAF_FUZZ_EXAMPLES (default 10,000) per test, i.e.
        >= 10,000 per op and per gradient op; see tools/fuzz_long.sh.
  asan  derandomized, 250 per test (tools/asan_check.sh).
TFKAF_FUZZ_STATS=path writes per-test case counts as JSON.
"""

import collections
import json
import math
import os

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

import fuzz_harness as harness

_PROFILE = os.environ.get("TFKAF_FUZZ_PROFILE", "ci")
_DEFAULT_EXAMPLES = {"ci": 250, "long": 10000, "asan": 250}
if _PROFILE not in _DEFAULT_EXAMPLES:
  raise ValueError(f"unknown TFKAF_FUZZ_PROFILE {_PROFILE!r}: expected one "
                   f"of {sorted(_DEFAULT_EXAMPLES)}")
_EXAMPLES = int(os.environ.get("TFKAF_FUZZ_EXAMPLES",
                               _DEFAULT_EXAMPLES[_PROFILE]))

FUZZ = settings(
    max_examples=_EXAMPLES,
    derandomize=_PROFILE != "long",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)

STATS = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module")
def worker():
  w = harness.Worker()
  yield w
  w.close()
  path = os.environ.get("TFKAF_FUZZ_STATS")
  if path:
    previous = {}
    if os.path.exists(path):
      with open(path) as f:
        previous = json.load(f)
    for test, counts in STATS.items():
      merged = collections.Counter(previous.get(test, {}))
      merged.update(counts)
      previous[test] = dict(merged)
    previous["_profile"] = {"profile": _PROFILE, "examples": _EXAMPLES,
                            "worker_restarts": w.restarts}
    with open(path, "w") as f:
      json.dump(previous, f, indent=1, sort_keys=True)


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

_f32 = harness.f32

finite_boundary = st.one_of(
    st.sampled_from([3.0, 3.0, 3.0, 1.0, 2.0, 4.0, 0.5]),
    st.floats(0.05, 20.0).map(_f32))
valid_gammas = st.one_of(st.none(), st.none(),
                         st.floats(0.01, 50.0).map(_f32))
invalid_boundaries = st.sampled_from(
    [0.0, -1.0, -0.0, math.nan, math.inf, -math.inf])
extreme_boundaries = st.sampled_from([1e-30, 1e-7, 1e7, 1e30, 3.4e38, 1e-45])
invalid_gammas = st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf])
extreme_gammas = st.sampled_from([1e-30, 1e-45, 1e13, 1e30, 3.4e38])
invalid_kernels = st.sampled_from(["tanh", "", "Gaussian", "relu "])


@st.composite
def spline_ranges(draw, kind="ok"):
  if kind == "ok":
    lo = draw(st.floats(-10.0, 5.0))
    width = draw(st.floats(0.1, 20.0))
    return _f32(lo), _f32(lo + width)
  if kind == "invalid":
    return draw(st.sampled_from([
        (1.0, 1.0), (2.0, -2.0), (math.nan, 1.0), (0.0, math.nan),
        (-math.inf, 1.0), (0.0, math.inf), (1e39, 2e39), (-3.0, -3.0)]))
  return draw(st.sampled_from([
      (-3.4e38, 3.4e38), (0.0, 1e-38), (1.0, 1.0000001), (-1e30, 1e30),
      (1e30, 1.0000001e30), (0.0, 1e-45)]))


_FLOATS = st.sampled_from(harness.FLOAT_DTYPES)

# Faults: each case is valid unless faults are injected (65% none, 30% one,
# 5% two), so that most cases reach the numerical comparison.
_COMMON_FAULTS = ("rank0", "axis", "dtype", "alpha_dtype", "alpha_kind",
                  "width", "x_extreme")
_FAULTS = {
    "kaf": _COMMON_FAULTS + ("boundary", "boundary_extreme", "gamma",
                             "gamma_extreme", "kernel"),
    "kaf2d": _COMMON_FAULTS + ("odd", "boundary", "boundary_extreme",
                               "gamma", "gamma_extreme"),
    "spline": _COMMON_FAULTS + ("range", "range_extreme"),
}


@st.composite
def params(draw, op, call, modes):
  mode = draw(st.sampled_from(modes))
  faults = list(_FAULTS[op])
  if call == "grad" and mode != "wrapper":
    faults += ["dy_kind", "dy_dtype"]
  n = draw(st.sampled_from([0] * 13 + [1] * 6 + [2]))
  faults = set(draw(st.lists(st.sampled_from(faults), min_size=n,
                             max_size=n, unique=True)))
  dtype = draw(_FLOATS)
  if "dtype" in faults:
    dtype = draw(st.sampled_from(harness.UNSUPPORTED_DTYPES))
  p = {"op": op, "call": call, "mode": mode, "dtype": dtype,
       "seed": draw(st.integers(0, 2**32 - 1)), "faults": sorted(faults)}
  rank = 0 if "rank0" in faults else draw(st.sampled_from(
      [1, 1, 2, 2, 2, 2, 3, 3, 4, 5]))
  p["rank"] = rank
  dims = draw(st.lists(st.sampled_from([0, 1, 1, 2, 2, 3, 4]), min_size=5,
                       max_size=5))
  if rank == 0:
    p["axis"] = draw(st.sampled_from([-1, -1, 0, 1]))
  elif "axis" in faults:
    p["axis"] = draw(st.sampled_from(
        [rank, -rank - 1, 7, 2**31 - 1, -2**31]))
  else:
    p["axis"] = draw(st.integers(-rank, rank - 1))
  if op == "kaf2d":
    p["channels"] = draw(st.sampled_from([0, 2, 2, 4, 4, 6]))
    if "odd" in faults:
      p["channels"] = draw(st.sampled_from([1, 3, 5]))
    p["width"] = draw(st.sampled_from([4, 9, 9, 16, 25]))
    if "width" in faults:
      p["width"] = draw(st.sampled_from([0, 1, 2, 3, 8, 10]))
  else:
    p["channels"] = draw(st.sampled_from([0, 1, 1, 2, 3, 3, 4, 5]))
    if op == "kaf":
      p["width"] = draw(st.sampled_from([2, 3, 5, 8, 8, 20, 20]))
    else:
      p["width"] = draw(st.sampled_from([2, 3, 5, 9, 9, 21, 51]))
    if "width" in faults:
      p["width"] = draw(st.sampled_from([0, 1]))
  # Keep every case tiny: at most ~300 elements.
  size = max(1, p["channels"])
  for i in range(rank):
    if size * max(1, dims[i]) > 300:
      dims[i] = 1
    size *= max(1, dims[i])
  p["dims"] = dims
  p["alpha_kind"] = "ok"
  if "alpha_kind" in faults:
    p["alpha_kind"] = draw(st.sampled_from(
        ["rows+1", "rows-1", "rank1", "rank3", "rank0"]))
  p["alpha_dtype"] = dtype
  if "dtype" in faults and draw(st.booleans()):
    p["alpha_dtype"] = draw(_FLOATS)  # e.g. an int input, float32 alpha
  if "alpha_dtype" in faults:
    p["alpha_dtype"] = draw(_FLOATS.filter(lambda d: d != dtype))
  p["x_scale"] = draw(st.sampled_from([1e-3, 0.3, 1.0, 1.0, 3.0, 3.0, 10.0,
                                       1e3]))
  p["x_special"] = draw(st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.3]))
  if "x_extreme" in faults:  # not a fault: values only (must still work)
    p["x_special"] = 1.0
  p["alpha_scale"] = draw(st.sampled_from([0.05, 0.5, 1.0, 1.0, 30.0]))
  p["alpha_special"] = draw(st.sampled_from([0.0] * 8 + [0.1, 0.5]))
  p["dy_special"] = draw(st.sampled_from([0.0] * 6 + [0.1]))
  p["dy_scale"] = draw(st.sampled_from([1.0, 1.0, 0.01, 100.0]))
  if op == "spline":
    kind = ("invalid" if "range" in faults else
            "extreme" if "range_extreme" in faults else "ok")
    p["x_min"], p["x_max"] = draw(spline_ranges(kind))
  else:
    p["boundary"] = draw(
        invalid_boundaries if "boundary" in faults else
        extreme_boundaries if "boundary_extreme" in faults else
        finite_boundary)
    p["gamma"] = draw(
        invalid_gammas if "gamma" in faults else
        extreme_gammas if "gamma_extreme" in faults else valid_gammas)
    p["kernel"] = "gaussian"
    if op == "kaf":
      p["kernel"] = draw(invalid_kernels if "kernel" in faults else
                         st.sampled_from(harness.KERNELS))
  if call == "grad" and mode != "wrapper":
    p["dy_kind"] = "ok"
    if "dy_kind" in faults:
      p["dy_kind"] = draw(st.sampled_from(["bad_dim", "bad_rank"]))
    p["dy_dtype"] = dtype
    if "dy_dtype" in faults:
      p["dy_dtype"] = draw(_FLOATS.filter(lambda d: d != dtype))
  if mode == "graph":
    p["x_none"] = draw(st.lists(st.booleans(), min_size=5, max_size=5))
    p["x_unknown_rank"] = draw(st.integers(0, 9)) == 0
    p["alpha_none"] = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    p["alpha_unknown_rank"] = draw(st.integers(0, 9)) == 0
    p["dy_none"] = draw(st.lists(st.booleans(), min_size=6, max_size=6))
    p["dy_unknown_rank"] = draw(st.integers(0, 9)) == 0
  return p


def run_case(worker, p, test):
  case = harness.build_case(p)
  result = worker.run(case)
  failures = harness.check_case(case, result)
  stats = STATS[test]
  stats["cases"] += 1
  stats["raised" if result.get("status") == "error" else "returned"] += 1
  stats[f"mode_{case['mode']}"] += 1
  if failures:
    label, repro = harness.describe(case)
    raise AssertionError(
        f"{label}\n  " + "\n  ".join(failures) + f"\nreproducer:\n{repro}")


# --------------------------------------------------------------------------
# Tests: forward op, gradient op, graph construction, for every op
# --------------------------------------------------------------------------


@FUZZ
@given(p=params("kaf", "forward", ("raw", "wrapper")))
def test_kaf_forward(worker, p):
  run_case(worker, p, "kaf_forward")


@FUZZ
@given(p=params("kaf", "grad", ("raw", "raw", "wrapper")))
def test_kaf_gradient(worker, p):
  run_case(worker, p, "kaf_gradient")


@FUZZ
@given(p=params("kaf", "forward", ("graph",)) |
       params("kaf", "grad", ("graph",)))
def test_kaf_graph(worker, p):
  run_case(worker, p, "kaf_graph")


@FUZZ
@given(p=params("kaf2d", "forward", ("raw", "wrapper")))
def test_kaf2d_forward(worker, p):
  run_case(worker, p, "kaf2d_forward")


@FUZZ
@given(p=params("kaf2d", "grad", ("raw", "raw", "wrapper")))
def test_kaf2d_gradient(worker, p):
  run_case(worker, p, "kaf2d_gradient")


@FUZZ
@given(p=params("kaf2d", "forward", ("graph",)) |
       params("kaf2d", "grad", ("graph",)))
def test_kaf2d_graph(worker, p):
  run_case(worker, p, "kaf2d_graph")


@FUZZ
@given(p=params("spline", "forward", ("raw", "wrapper")))
def test_spline_forward(worker, p):
  run_case(worker, p, "spline_forward")


@FUZZ
@given(p=params("spline", "grad", ("raw", "raw", "wrapper")))
def test_spline_gradient(worker, p):
  run_case(worker, p, "spline_gradient")


@FUZZ
@given(p=params("spline", "forward", ("graph",)) |
       params("spline", "grad", ("graph",)))
def test_spline_graph(worker, p):
  run_case(worker, p, "spline_graph")


def test_oracle_self_check():
  """The NumPy oracle agrees with independent closed forms (sanity)."""
  case = harness.build_case({
      "op": "spline", "call": "grad", "mode": "raw", "dtype": "float64",
      "rank": 2, "dims": [3, 2], "axis": -1, "channels": 2, "width": 3,
      "x_scale": 1.0, "x_special": 0.0, "alpha_scale": 1.0,
      "alpha_special": 0.0, "dy_special": 0.0, "x_min": -1.0,
      "x_max": 1.0})
  x = np.array([[-2.0, 0.5], [0.0, 1.0], [3.0, -0.25]])
  c = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
  dy = np.ones_like(x)
  exp = harness.np_oracle(case, x, c, dy, None, 0.0)
  np.testing.assert_allclose(
      exp["y"].value, [[2.0, 0.5], [0.0, 0.0], [6.0, 0.75]])
  np.testing.assert_allclose(exp["dx"].value, [[-1.0, -1.0], [2.0, -1.0],
                                               [2.0, 1.0]])
  kcase = dict(case, op="kaf", attrs={"axis": -1, "boundary": 1.0,
                                      "gamma": 2.0, "kernel": "gaussian"})
  a = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
  exp = harness.np_oracle(kcase, x, a, dy, 2.0, 0.0)
  d = np.array([-1.0, 0.0, 1.0])
  want = (np.exp(-2.0 * (x[..., None] - d) ** 2) * a[None]).sum(-1)
  np.testing.assert_allclose(exp["y"].value, want)
