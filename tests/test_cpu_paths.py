"""Every CPU path of the fused ops against the NumPy reference and each other.

The CPU kernels are compiled once per instruction-set path (baseline x86-64,
AVX2+FMA, AVX-512F; docs/design.md, section 5) and pick one per process,
which TFKAF_CPU_PATH can force. Each path runs in its own subprocess, since
the choice is read once; a path this CPU lacks is skipped with the reason.
The cases (cpu_path_cases.py) cover every op forward and backward, both
layouts and both float types, with partial vectors of every width. The
spline's paths are bitwise identical (same operations, no FMA); KAF's differ
by rounding only. A CPU without AVX-512 still runs the avx512 path's code,
emulated, in test_avx512_emulated.py.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfkaf

import cpu_path_cases as cases
from fuzz.cpu_paths import PATHS, best, missing

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(
    tfkaf.__file__)))
# Runs in the subprocess: every op's (y, dx, dparam) for every case.
WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    import tfkaf
    from tfkaf import ops
    inputs = dict(np.load(sys.argv[1]))
    out = {"cpu_path": np.array(tfkaf.build_info()["cpu_path"])}
    def run(key, fn, x, param):
      x = tf.constant(x)
      param = tf.constant(param)
      with tf.GradientTape() as tape:
        tape.watch([x, param])
        y = fn(x, param)
      dx, dparam = tape.gradient(y, [x, param], output_gradients=dy)
      out[key + "/y"], out[key + "/dx"] = y.numpy(), dx.numpy()
      out[key + "/dparam"] = dparam.numpy()
    for name in sorted({k.rsplit("/", 1)[0] for k in inputs}):
      op, axis = name.split("/")[0], int(name.split("/")[2].split(":")[0])
      x, dy = inputs[name + "/x"], tf.constant(inputs[name + "/dy"])
      param = inputs[name + "/param"]
      if op.startswith("kaf2d"):
        fn = lambda x, a: ops.kaf2d(x, a, %r, axis=axis)
      elif op.startswith("spline"):
        fn = lambda x, c: ops.linear_spline(x, c, %r, %r, axis=axis)
      else:
        fn = lambda x, a: ops.kaf(x, a, %r, kernel=op.split("-")[0],
                                  axis=axis)
      run(name, fn, x, param)
    np.savez(sys.argv[2], **out)
""" % ((cases.BOUNDARY,) + cases.X_RANGE + (cases.BOUNDARY,)))


def _skip(path):
  emulated = " (its code runs emulated in test_avx512_emulated.py)"
  pytest.skip(f"{path}: {missing(path)}" +
              (emulated if path == "avx512" else ""))


@pytest.fixture(scope="module")
def inputs():
  return cases.inputs()


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory):
  """TFKAF_CPU_PATH value -> that subprocess's outputs (None: skipped)."""
  folder = tmp_path_factory.mktemp("cpu_paths")
  np.savez(folder / "inputs.npz", **inputs)
  out = {}
  for path in PATHS + ("no-such-path",):
    if missing(path):
      out[path] = None
      continue
    target = folder / f"{path}.npz"
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT, TFKAF_CPU_PATH=path,
               TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", WORKER, str(folder / "inputs.npz"),
                    str(target)], check=True, env=env, timeout=600)
    out[path] = dict(np.load(target))
  return out


@pytest.mark.parametrize("path", PATHS)
def test_path_matches_reference(path, inputs, results):
  if results[path] is None:
    _skip(path)
  cases.assert_match_reference(results[path], inputs, path)


@pytest.mark.parametrize("path", PATHS)
def test_path_runs_under_its_name(path, results):
  """TFKAF_CPU_PATH really switches the kernels: the plugin reports the
  forced path (tfkaf.build_info()["cpu_path"]) in that process."""
  if results[path] is None:
    _skip(path)
  assert str(results[path]["cpu_path"]) == path


@pytest.mark.parametrize("path", PATHS[1:])
def test_paths_agree(path, results):
  if results[path] is None:
    _skip(path)
  cases.assert_agree(results["baseline"], results[path])


def test_unknown_path_falls_back_to_best(results):
  fallback = results["no-such-path"]
  assert str(fallback["cpu_path"]) == best()
  for key, value in results[best()].items():
    np.testing.assert_array_equal(fallback[key], value, err_msg=key)
