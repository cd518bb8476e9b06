"""Every CPU path of the fused ops against the NumPy reference and each other.

The CPU kernels are compiled once per instruction-set path (baseline x86-64,
AVX2+FMA, AVX-512F; docs/design.md, section 5) and pick one per process,
which TFKAF_CPU_PATH can force. Each path runs in its own subprocess, since
the choice is read once; a path this CPU lacks is skipped with the reason.
KAF (all three kernels; the Gaussian also with 48 centres, which the CPU
walks in two runs), 2D-KAF (also on a 30 x 30 grid, two runs a side) and
the spline run forward and backward,
channels-last and channels-first, float32 and float64, with sizes that leave
partial vectors of every width (8 and 16 floats). The spline's paths are
bitwise identical (same operations, no FMA); KAF's differ by rounding only.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfkaf

from fuzz.cpu_paths import PATHS, best, missing
from reference import np_kaf, np_kaf_grads, np_kaf2d, np_kaf2d_grads
from reference import np_spline, np_spline_grad

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(
    tfkaf.__file__)))
DTYPES = ("float32", "float64")
X_RANGE = (-2.0, 2.0)  # spline grid
# (shape, axis): channels-last rows of 19 channels (vectors of 16, 8 and 4
# with tails), channels-first runs of 21 positions, and channels-last rows of
# 37 channels (two full 16-lane vectors and a tail).
LAYOUTS = (((33, 19), -1), ((3, 19, 21), 1), ((9, 37), -1))
TOL = {"float32": dict(rtol=1e-4, atol=1e-4),
       "float64": dict(rtol=1e-9, atol=1e-10)}

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
        fn = lambda x, a: ops.kaf2d(x, a, 2.0, axis=axis)
      elif op == "spline":
        fn = lambda x, c: ops.linear_spline(x, c, %r, %r, axis=axis)
      else:
        fn = lambda x, a: ops.kaf(x, a, 2.0, kernel=op.split("-")[0],
                                  axis=axis)
      run(name, fn, x, param)
    np.savez(sys.argv[2], **out)
""" % X_RANGE)


def _inputs():
  """name -> x, dy, param for every op, layout and dtype."""
  rng = np.random.default_rng(7)
  cases = {}
  for dtype in DTYPES:
    for shape, axis in LAYOUTS:
      channels = shape[axis]
      x = rng.uniform(-3.0, 3.0, shape)
      dy = rng.standard_normal(shape)
      params = {"gaussian": rng.standard_normal((channels, 12)),
                # default gamma: the walk takes two runs of 24 centres
                "gaussian-48": rng.standard_normal((channels, 48)),
                "relu": rng.standard_normal((channels, 7)),
                "softplus": rng.standard_normal((channels, 7)),
                "spline": rng.standard_normal((channels, 11))}
      layout = f"{axis}:{channels}"  # axis, then what tells layouts apart
      for op, param in params.items():
        cases[(op, dtype, layout)] = (x, dy, param)
      x2 = np.concatenate([x, rng.uniform(-3.0, 3.0, shape)], axis)
      cases[("kaf2d", dtype, layout)] = (x2, dy, rng.standard_normal(
          (channels, 36)))
      # a 30 x 30 grid: the default gamma walks each side in two runs
      cases[("kaf2d-30", dtype, layout)] = (x2, dy, rng.standard_normal(
          (channels, 900)))
  out = {}
  for (op, dtype, layout), arrays in cases.items():
    for part, value in zip(("x", "dy", "param"), arrays):
      out[f"{op}/{dtype}/{layout}/{part}"] = value.astype(dtype)
  return out


@pytest.fixture(scope="module")
def inputs():
  return _inputs()


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


def _reference(op, x, dy, param, axis):
  if op == "spline":
    y = np_spline(x, param, *X_RANGE, axis=axis)
    return (y,) + np_spline_grad(dy, x, param, *X_RANGE, axis=axis)
  if op.startswith("kaf2d"):
    return ((np_kaf2d(x, param, 2.0, axis=axis),) +
            np_kaf2d_grads(dy, x, param, 2.0, axis=axis))
  kernel = op.split("-")[0]  # gaussian-48: 48 centres
  return ((np_kaf(x, param, 2.0, kernel, axis=axis),) +
          np_kaf_grads(dy, x, param, 2.0, kernel, axis=axis))


def _names(inputs):
  return sorted({k.rsplit("/", 1)[0] for k in inputs})


@pytest.mark.parametrize("path", PATHS)
def test_path_matches_reference(path, inputs, results):
  if results[path] is None:
    pytest.skip(f"{path}: {missing(path)}")
  got = results[path]
  for name in _names(inputs):
    op, dtype, layout = name.split("/")
    expected = _reference(op, *(inputs[f"{name}/{p}"].astype(np.float64)
                                for p in ("x", "dy", "param")),
                          int(layout.split(":")[0]))
    for part, want in zip(("y", "dx", "dparam"), expected):
      np.testing.assert_allclose(got[f"{name}/{part}"], want, **TOL[dtype],
                                 err_msg=f"{path} {name} {part}")


@pytest.mark.parametrize("path", PATHS)
def test_path_runs_under_its_name(path, results):
  """TFKAF_CPU_PATH really switches the kernels: the plugin reports the
  forced path (tfkaf.build_info()["cpu_path"]) in that process."""
  if results[path] is None:
    pytest.skip(f"{path}: {missing(path)}")
  assert str(results[path]["cpu_path"]) == path


@pytest.mark.parametrize("path", PATHS[1:])
def test_paths_agree(path, results):
  if results[path] is None:
    pytest.skip(f"{path}: {missing(path)}")
  base, other = results["baseline"], results[path]
  for key in base:
    if key == "cpu_path":
      continue
    if key.startswith("spline/"):  # no FMA: the same bits on every path
      np.testing.assert_array_equal(other[key], base[key], err_msg=key)
    else:
      dtype = key.split("/")[1]
      np.testing.assert_allclose(other[key], base[key], **TOL[dtype],
                                 err_msg=key)
  # FMA rounds KAF differently from the baseline's separate multiply-add.
  key = "gaussian/float32/-1:19/y"
  assert not np.array_equal(other[key], base[key])


def test_unknown_path_falls_back_to_best(results):
  fallback = results["no-such-path"]
  assert str(fallback["cpu_path"]) == best()
  for key, value in results[best()].items():
    np.testing.assert_array_equal(fallback[key], value, err_msg=key)
