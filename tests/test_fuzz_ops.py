"""Property-based fuzz tests of the fused ops and their gradient ops.

Every case is executed in a crash-isolated worker process (tests/fuzz/,
`fuzz.worker.Worker`): a crash or hang fails the test naming the case, with
a stand-alone reproducer, instead of killing the test runner. Each case must
either match the composite reference `tfkaf.reference` (float64) within a
rounding-error bound derived from the formulas (docs/design.md, sections 1-4) and the
element type, with NaN in -> NaN out, or raise InvalidArgumentError /
ValueError (TypeError for dtype errors) whose message names the problem.

Cases draw (fuzz/strategies.py): ranks 0-5 (rank 0 must be an error), shapes with zero-sized
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

CPU paths: every test runs once per CPU kernel path this machine has
(fuzz/cpu_paths.py; baseline, avx2, avx512): on the path the plugin picks by
itself with every case, on each other path (forced by TFKAF_CPU_PATH in its
own worker) with the first TFKAF_FUZZ_PATH_EXAMPLES of the same cases
(default: a sixth of TFKAF_FUZZ_EXAMPLES), which keeps CI time in check;
paths the CPU lacks are skipped with the reason.

Profiles (TFKAF_FUZZ_PROFILE):
  ci    (default) derandomized, TFKAF_FUZZ_EXAMPLES (default 250) cases per
        test, 9 tests -> ~2,250 cases on the default path (+ ~40 per test
        per other path).
  long  random seed, TFKAF_FUZZ_EXAMPLES (default 10,000) per test, i.e.
        >= 10,000 per op and per gradient op; see tools/fuzz_long.sh.
  asan  derandomized, 250 per test (tools/asan_check.sh).
TFKAF_FUZZ_STATS=path writes per-test case counts as JSON.
"""

import collections
import json
import os

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
import numpy as np
import pytest

from fuzz import cases
from fuzz import check
from fuzz import compare
from fuzz import cpu_paths
from fuzz.strategies import params
from fuzz.worker import Worker

_PROFILE = os.environ.get("TFKAF_FUZZ_PROFILE", "ci")
_DEFAULT_EXAMPLES = {"ci": 250, "long": 10000, "asan": 250}
if _PROFILE not in _DEFAULT_EXAMPLES:
  raise ValueError(f"unknown TFKAF_FUZZ_PROFILE {_PROFILE!r}: expected one "
                   f"of {sorted(_DEFAULT_EXAMPLES)}")
_EXAMPLES = int(os.environ.get("TFKAF_FUZZ_EXAMPLES",
                               _DEFAULT_EXAMPLES[_PROFILE]))
_PATH_EXAMPLES = int(os.environ.get("TFKAF_FUZZ_PATH_EXAMPLES",
                                    max(1, _EXAMPLES // 6)))

FUZZ = settings(
    max_examples=_EXAMPLES,
    derandomize=_PROFILE != "long",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)

STATS = collections.defaultdict(collections.Counter)


def _write_stats(path, restarts):
  """Adds the per-test counts since the last call to the JSON file at
  path."""
  previous = {}
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
  for test, counts in STATS.items():
    merged = collections.Counter(previous.get(test, {}))
    merged.update(counts)
    previous[test] = dict(merged)
  previous["_profile"] = {"profile": _PROFILE, "examples": _EXAMPLES,
                          "worker_restarts": restarts}
  with open(path, "w") as f:
    json.dump(previous, f, indent=1, sort_keys=True)
  STATS.clear()  # written: the next worker's tests add only their own


@pytest.fixture(scope="module", params=cpu_paths.PATHS)
def worker(request):
  """The worker of one CPU path: None forced for the default path (every
  case), the path's name otherwise (the first _PATH_EXAMPLES cases)."""
  cpu_path = request.param
  if cpu_paths.missing(cpu_path):
    pytest.skip(f"{cpu_path}: {cpu_paths.missing(cpu_path)}")
  default = cpu_path == cpu_paths.best()
  w = Worker(cpu_path=None if default else cpu_path)
  yield w
  w.close()
  path = os.environ.get("TFKAF_FUZZ_STATS")
  if path:
    _write_stats(path, w.restarts)


def run_case(worker, p, test):
  if worker.cpu_path:  # a forced path: its own counts, its first cases
    test = f"{test}@{worker.cpu_path}"
    if STATS[test]["cases"] >= _PATH_EXAMPLES:
      return
  case = cases.build_case(p)
  result = worker.run(case)
  failures = check.check_case(case, result)
  stats = STATS[test]
  stats["cases"] += 1
  stats["raised" if result.get("status") == "error" else "returned"] += 1
  stats[f"mode_{case['mode']}"] += 1
  if failures:
    label, repro = cases.describe(case, worker.cpu_path)
    raise AssertionError(
        f"{label}\n  " + "\n  ".join(failures) + f"\nreproducer:\n{repro}")


# --------------------------------------------------------------------------
# Tests: forward op, gradient op, graph construction, for every op
# --------------------------------------------------------------------------


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf", "forward", ("raw", "wrapper")))
def test_kaf_forward(worker, p):
  run_case(worker, p, "kaf_forward")


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf", "grad", ("raw", "raw", "wrapper")))
def test_kaf_gradient(worker, p):
  run_case(worker, p, "kaf_gradient")


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf", "forward", ("graph",)) |
       params("kaf", "grad", ("graph",)))
def test_kaf_graph(worker, p):
  run_case(worker, p, "kaf_graph")


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf2d", "forward", ("raw", "wrapper")))
def test_kaf2d_forward(worker, p):
  run_case(worker, p, "kaf2d_forward")


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf2d", "grad", ("raw", "raw", "wrapper")))
def test_kaf2d_gradient(worker, p):
  run_case(worker, p, "kaf2d_gradient")


@pytest.mark.subprocess
@FUZZ
@given(p=params("kaf2d", "forward", ("graph",)) |
       params("kaf2d", "grad", ("graph",)))
def test_kaf2d_graph(worker, p):
  run_case(worker, p, "kaf2d_graph")


@pytest.mark.subprocess
@FUZZ
@given(p=params("spline", "forward", ("raw", "wrapper")))
def test_spline_forward(worker, p):
  run_case(worker, p, "spline_forward")


@pytest.mark.subprocess
@FUZZ
@given(p=params("spline", "grad", ("raw", "raw", "wrapper")))
def test_spline_gradient(worker, p):
  run_case(worker, p, "spline_gradient")


@pytest.mark.subprocess
@FUZZ
@given(p=params("spline", "forward", ("graph",)) |
       params("spline", "grad", ("graph",)))
def test_spline_graph(worker, p):
  run_case(worker, p, "spline_graph")


def test_oracle_self_check():
  """The NumPy oracle agrees with independent closed forms (sanity)."""
  case = cases.build_case({
      "op": "spline", "call": "grad", "mode": "raw", "dtype": "float64",
      "rank": 2, "dims": [3, 2], "axis": -1, "channels": 2, "width": 3,
      "x_scale": 1.0, "x_special": 0.0, "alpha_scale": 1.0,
      "alpha_special": 0.0, "dy_special": 0.0, "x_min": -1.0,
      "x_max": 1.0})
  x = np.array([[-2.0, 0.5], [0.0, 1.0], [3.0, -0.25]])
  c = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
  dy = np.ones_like(x)
  exp = compare.np_oracle(case, x, c, dy, None, 0.0)
  np.testing.assert_allclose(
      exp["y"].value, [[2.0, 0.5], [0.0, 0.0], [6.0, 0.75]])
  np.testing.assert_allclose(exp["dx"].value, [[-1.0, -1.0], [2.0, -1.0],
                                               [2.0, 1.0]])
  kcase = dict(case, op="kaf", attrs={"axis": -1, "boundary": 1.0,
                                      "gamma": 2.0, "kernel": "gaussian"})
  a = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
  exp = compare.np_oracle(kcase, x, a, dy, 2.0, 0.0)
  d = np.array([-1.0, 0.0, 1.0])
  want = (np.exp(-2.0 * (x[..., None] - d) ** 2) * a[None]).sum(-1)
  np.testing.assert_allclose(exp["y"].value, want)
