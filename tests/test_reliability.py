"""Reliability suite of the fused ops.

- Crash-isolated smoke corpus (tests/smoke_corpus.py): hundreds of nasty
  cases per op run in a worker subprocess; a segfault, sanitizer abort or
  hang fails the test naming the case (the corpus then goes on with a fresh
  worker), and every case is checked like the fuzz tests (result matches the
  composite reference, or a clear InvalidArgumentError / ValueError).
- Leak check: TFKAF_LEAK_ITERATIONS (default 10,000) forward+backward calls
  of each op (wrapper under GradientTape plus the raw gradient op) in a fresh
  process; resident memory after a warm-up vs at the end must grow by less
  than TFKAF_LEAK_BOUND_MB (default 10 MB; measured noise ~0.1 MB, and a
  leak of one dalpha-sized buffer per call would add ~25 MB). Failing calls (invalid input) are
  checked for leaks too.
- Concurrency and determinism: the ops called from 8 Python threads at once
  give bitwise the results of serial calls; processes with intra/inter-op
  thread pools of 1 and of 8 give bitwise identical y, dx and dalpha (the
  fixed-chunk reductions), and repeated calls in one process are bitwise
  identical, for float32, float64, float16 and bfloat16.
- Shape functions: None dimensions in tf.function input signatures
  propagate; mismatches knowable at graph construction fail there, the rest
  at run time.
"""

import json
import os
import subprocess
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from fuzz import cases
from fuzz import check
from fuzz import common
from fuzz import worker as fuzz_worker
import smoke_corpus
import tfkaf

RAW = tfkaf.load_ops()


def _run_script(args, timeout=900, extra_env=None):
  proc = subprocess.run(fuzz_worker.command(*args),
                        capture_output=True, text=True, timeout=timeout,
                        env=fuzz_worker.subprocess_env(extra_env),
                        cwd=tempfile.gettempdir(), check=False)
  if proc.returncode != 0:
    pytest.fail(f"{' '.join(args)} exited with {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Crash-isolated smoke corpus
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker():
  w = fuzz_worker.Worker()
  yield w
  w.close()


@pytest.mark.subprocess
@pytest.mark.parametrize("op", common.OPS)
def test_smoke_corpus(worker, op):
  failures = []
  count = 0
  for name, case in smoke_corpus.cases(op):
    count += 1
    try:
      result = worker.run(case)
    except (fuzz_worker.OpCrashed, fuzz_worker.OpHung) as error:
      failures.append(f"[{name}] {str(error)[:4000]}")
      continue
    problems = check.check_case(case, result)
    if problems:
      label, repro = cases.describe(case)
      failures.append(f"[{name}] {label}\n  " + "\n  ".join(problems)
                      + f"\n  reproducer:\n{repro[:3000]}")
  assert count > 100
  assert not failures, (f"{len(failures)} of {count} corpus cases failed:\n"
                        + "\n\n".join(failures[:25]))


# --------------------------------------------------------------------------
# Leaks
# --------------------------------------------------------------------------

LEAK_ITERATIONS = int(os.environ.get("TFKAF_LEAK_ITERATIONS", "10000"))
LEAK_BOUND = float(os.environ.get("TFKAF_LEAK_BOUND_MB", "10")) * 2**20


@pytest.mark.rss_leak
@pytest.mark.subprocess
@pytest.mark.parametrize("op", common.OPS)
def test_no_memory_growth(op):
  warmup = max(200, LEAK_ITERATIONS // 10)
  r = _run_script(["--leak", op, str(LEAK_ITERATIONS), str(warmup)])
  growth = r["rss_after"] - r["rss_before"]
  error_growth = r["error_rss_after"] - r["error_rss_before"]
  print(f"{op}: {LEAK_ITERATIONS} fwd+bwd, RSS {r['rss_before'] / 2**20:.1f}"
        f" -> {r['rss_after'] / 2**20:.1f} MiB in {r['seconds']:.1f}s; "
        f"{r['error_iterations']} failing calls: "
        f"{error_growth / 2**20:+.1f} MiB")
  assert growth < LEAK_BOUND, r
  assert error_growth < LEAK_BOUND / 2, r


# --------------------------------------------------------------------------
# Concurrency and determinism
# --------------------------------------------------------------------------


@pytest.mark.subprocess
def test_threads_give_identical_results():
  r = _run_script(["--concurrency", "8", "2"])
  assert r["calls"] > 100
  assert not r["mismatches"], r


@pytest.mark.subprocess
def test_thread_pools_and_runs_are_bitwise_identical(tmp_path):
  dtypes = "float32,float64,float16,bfloat16"
  configs = [(1, 1), (8, 8), (2, 1)]
  procs = []
  for intra, inter in configs:
    out = tmp_path / f"t{intra}-{inter}"
    out.mkdir()
    procs.append((out, subprocess.Popen(
        fuzz_worker.command("--threads", intra, inter, out, dtypes),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=fuzz_worker.subprocess_env(), cwd=tempfile.gettempdir())))
  reports = []
  for out, proc in procs:
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-5000:]
    reports.append(json.loads(stdout.strip().splitlines()[-1]))
  for (intra, inter), report in zip(configs, reports):
    assert report["intra"] == intra and report["inter"] == inter, report
    assert not report["run_to_run_differences"], report
  base = procs[0][0]
  names = sorted(os.listdir(base))
  assert len(names) >= 4 * 8 * 3
  different = []
  for out, _ in procs[1:]:
    assert sorted(os.listdir(out)) == names
    for name in names:
      if not np.array_equal(np.load(base / name), np.load(out / name)):
        different.append(f"{out.name}/{name}")
  assert not different, different


# --------------------------------------------------------------------------
# Shape functions
# --------------------------------------------------------------------------

SPEC = tf.TensorSpec


def _kaf(x, a, axis=-1):
  return RAW.tfkaf_kaf(x, a, boundary=3.0, gamma=0.5, kernel="gaussian",
                       axis=axis)


def _kaf_grad(dy, x, a, axis=-1):
  return RAW.tfkaf_kaf_grad(dy, x, a, boundary=3.0, gamma=0.5,
                            kernel="gaussian", axis=axis)


def _kaf2d(x, a, axis=-1):
  return RAW.tfkaf_kaf2d(x, a, boundary=3.0, gamma=0.5, axis=axis)


def _kaf2d_grad(dy, x, a, axis=-1):
  return RAW.tfkaf_kaf2d_grad(dy, x, a, boundary=3.0, gamma=0.5, axis=axis)


def _spline(x, a, axis=-1):
  return RAW.tfkaf_linear_spline(x, a, x_min=-3.0, x_max=3.0, axis=axis)


def _spline_grad(dy, x, a, axis=-1):
  return RAW.tfkaf_linear_spline_grad(dy, x, a, x_min=-3.0, x_max=3.0,
                                      axis=axis)


FORWARD = {"kaf": _kaf, "kaf2d": _kaf2d, "spline": _spline}
GRAD = {"kaf": _kaf_grad, "kaf2d": _kaf2d_grad, "spline": _spline_grad}
WRAPPER = {
    "kaf": lambda x, a, axis=-1: tfkaf.ops.kaf(x, a, axis=axis),
    "kaf2d": lambda x, a, axis=-1: tfkaf.ops.kaf2d(x, a, axis=axis),
    "spline": lambda x, a, axis=-1: tfkaf.ops.linear_spline(
        x, a, -3.0, 3.0, axis=axis),
}
WIDTH = {"kaf": 20, "kaf2d": 25, "spline": 21}


def _shape(t):
  return None if t.shape.rank is None else t.shape.as_list()


def _out_channels(op, c):
  return None if c is None else (c // 2 if op == "kaf2d" else c)


# (x spec, alpha rows, axis, expected y shape with C the channel count)
PROPAGATION = [
    ([None, 6], 6, -1, [None, "C"]),
    ([None, None], None, -1, [None, None]),
    ([None, None], 6, -1, [None, None]),
    ([None, 6, None, None], 6, 1, [None, "C", None, None]),
    ([2, None, 6], None, 2, [2, None, "C"]),
    ([None, 6, 5], 6, -2, [None, "C", 5]),
    ([6], 6, 0, ["C"]),
    (None, 6, -1, None),
]


@pytest.mark.symbolic_shapes
@pytest.mark.parametrize("op", common.OPS)
@pytest.mark.parametrize("x_spec,rows,axis,want", PROPAGATION)
def test_symbolic_dimensions_propagate(op, x_spec, rows, axis, want):
  a_rows = None if rows is None else (rows // 2 if op == "kaf2d" else rows)
  a_spec = SPEC([a_rows, WIDTH[op]])
  c = 6
  y_want = None if want is None else [
      _out_channels(op, c) if w == "C" else w for w in want]
  dx_want = None if want is None else [c if w == "C" else w for w in want]

  fwd = tf.function(lambda x, a: FORWARD[op](x, a, axis),
                    input_signature=[SPEC(x_spec), a_spec])
  y = fwd.get_concrete_function().structured_outputs
  assert _shape(y) == y_want

  wrapped = tf.function(lambda x, a: WRAPPER[op](x, a, axis),
                        input_signature=[SPEC(x_spec), a_spec])
  assert _shape(wrapped.get_concrete_function().structured_outputs) == y_want

  dy_spec = SPEC(None if y_want is None else y_want)
  grad = tf.function(lambda dy, x, a: GRAD[op](dy, x, a, axis),
                     input_signature=[dy_spec, SPEC(x_spec), a_spec])
  dx, da = grad.get_concrete_function().structured_outputs
  assert _shape(dx) == dx_want
  assert _shape(da) == [a_rows, WIDTH[op]]

  def tape_fn(x, a):
    with tf.GradientTape() as tape:
      tape.watch([x, a])
      y = WRAPPER[op](x, a, axis)
    return tape.gradient(y, [x, a])

  taped = tf.function(tape_fn, input_signature=[SPEC(x_spec), a_spec])
  gx, ga = taped.get_concrete_function().structured_outputs
  assert _shape(gx) == dx_want
  assert _shape(ga) == [a_rows, WIDTH[op]]

  # The traced function runs on concrete shapes and matches eager.
  if x_spec is not None:
    shape = [d if d is not None else 2 for d in x_spec]
    shape[axis] = c
    x = tf.constant(np.random.default_rng(0).standard_normal(shape),
                    tf.float32)
    a = tf.constant(np.random.default_rng(1).standard_normal(
        [_out_channels(op, c), WIDTH[op]]) * 0.3, tf.float32)
    np.testing.assert_array_equal(fwd(x, a).numpy(),
                                  FORWARD[op](x, a, axis).numpy())


# (x spec, alpha spec, dy spec or None, axis, match) - knowable mismatches.
STATIC_ERRORS = {
    "kaf": [
        ([None, 3], [4, 20], None, -1, "channel|rows"),
        ([None, 3], [3, 1], None, -1, "D >= 2|column|centre"),
        ([None, 3], [3, 20, 1], None, -1, "alpha|rank|2-D"),
        ([None, 3], [20], None, -1, "alpha|rank|2-D"),
        ([], [3, 20], None, -1, "rank"),
        ([None, 3], [3, 20], None, 2, "axis"),
        ([None, 3], [3, 20], None, -3, "axis"),
        ([None, 3], [3, 20], [None, 4], -1, "dy|shape"),
        ([None, 3], [3, 20], [None, 3, 1], -1, "dy|shape"),
    ],
    "kaf2d": [
        ([None, 5], [2, 25], None, -1, "even|odd"),
        ([None, 6], [2, 25], None, -1, "channel|rows"),
        ([None, 6], [3, 24], None, -1, "square|D\\*D"),
        ([None, 6], [3, 1], None, -1, "square|D\\*D|D >= 2"),
        ([], [3, 25], None, -1, "rank"),
        ([None, 6], [3, 25], None, 2, "axis"),
        ([None, 6], [3, 25], [None, 6], -1, "dy|shape"),
    ],
    "spline": [
        ([None, 3], [4, 21], None, -1, "channel|rows"),
        ([None, 3], [3, 1], None, -1, "knots|column"),
        ([None, 3], [3, 21, 1], None, -1, "coefficients|rank"),
        ([], [3, 21], None, -1, "rank"),
        ([None, 3], [3, 21], None, 5, "axis"),
        ([None, 3], [3, 21], [None, 4], -1, "dy|shape"),
    ],
}


@pytest.mark.symbolic_shapes
@pytest.mark.parametrize("op,x_spec,a_spec,dy_spec,axis,match", [
    (op,) + case for op, cases in STATIC_ERRORS.items() for case in cases])
def test_knowable_mismatches_fail_at_construction(op, x_spec, a_spec,
                                                  dy_spec, axis, match):
  if dy_spec is None:
    fn = tf.function(lambda x, a: FORWARD[op](x, a, axis),
                     input_signature=[SPEC(x_spec), SPEC(a_spec)])
  else:
    fn = tf.function(lambda dy, x, a: GRAD[op](dy, x, a, axis),
                     input_signature=[SPEC(dy_spec), SPEC(x_spec),
                                      SPEC(a_spec)])
  with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                     match=f"(?i){match}"):
    fn.get_concrete_function()


@pytest.mark.symbolic_shapes
@pytest.mark.parametrize("op", common.OPS)
def test_unknowable_mismatches_fail_at_run_time(op):
  a_rows = 2 if op == "kaf2d" else 4
  fn = tf.function(lambda x, a: FORWARD[op](x, a, -1),
                   input_signature=[SPEC([None, None]),
                                    SPEC([a_rows, WIDTH[op]])])
  fn.get_concrete_function()  # nothing is known to be wrong yet
  x = tf.zeros([2, 6])
  a = tf.zeros([a_rows, WIDTH[op]])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="(?i)channel|rows"):
    fn(x, a)
  if op == "kaf2d":
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="(?i)even|odd"):
      fn(tf.zeros([2, 5]), a)
  # Unknown rank: the axis and rank 0 are checked by the kernel.
  g = tf.function(lambda x, a: FORWARD[op](x, a, 3),
                  input_signature=[SPEC(None), SPEC(None)])
  g.get_concrete_function()
  with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)axis"):
    g(tf.zeros([2, 6]), tf.zeros([a_rows, WIDTH[op]]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)rank"):
    g(tf.zeros([]), tf.zeros([a_rows, WIDTH[op]]))
