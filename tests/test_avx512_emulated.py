"""The avx512 path's code, run on a CPU without AVX-512.

test_cpu_paths.py runs each CPU path of the plugin where the CPU has it; on
an AVX2 machine that leaves the avx512 copy of the kernels untested. Here
the CPU functors are compiled outside TensorFlow (tests/native) with
TFKAF_AVX512_EMULATED: the avx512 copy is then built for AVX2+FMA, so its
16-lane vector code (KAF and 2D-KAF: 64-byte GCC vectors, each operation
split over two AVX2 registers; their batch sizes and table blocking) runs
as written, and the few AVX-512 intrinsics of the spline come from a
lane-by-lane emulation of Intel's definitions (tests/native/avx512_emulation.h).
What this cannot check is the compiler's AVX-512 instruction selection; that
takes a CPU with AVX-512, where test_cpu_paths.py runs the real path.

The driver (tests/native/cpu_kernels_driver.cc) runs every case of
cpu_path_cases.py through the forward and backward functors, once per path
(TFKAF_CPU_PATH, as in the plugin), and the emulated avx512 path is held to
the NumPy reference and to the baseline path.
"""

import concurrent.futures
import math
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import cpu_path_cases as cases
from fuzz.cpu_paths import missing
from reference import f32, np_gamma

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Slowest first (the baseline and the emulated avx512 copies of the KAF
# kernels: their vectors span two registers), for the compiler pool.
SOURCES = ("cc/kernels/kaf_cpu_baseline.cc", "cc/kernels/kaf_cpu_avx512.cc",
           "cc/kernels/kaf_cpu_avx2.cc", "cc/kernels/kaf_cpu.cc",
           "cc/kernels/spline_cpu.cc", "cc/kernels/cpu_features.cc",
           "tests/native/cpu_kernels_driver.cc")
FLAGS = ("-std=c++17", "-O2", "-DNDEBUG", "-Wno-psabi",
         "-DTFKAF_AVX512_EMULATED", "-include",
         str(ROOT / "tests/native/avx512_emulation.h"))
PATHS = ("baseline", "avx512")


def _why_not():
  """Why the emulated build cannot run here, or None."""
  if shutil.which("g++") is None:
    return "no g++ on PATH"
  if not (ROOT / SOURCES[1]).is_file():
    return f"no kernel sources under {ROOT} (not a source checkout)"
  return missing("avx2")  # the emulated copy is built for AVX2+FMA


def _compile(folder):
  """Builds the driver in `folder`, one compiler process per source."""
  include = ("-I", str(ROOT), "-I", tf.sysconfig.get_include())

  def build(source):
    target = folder / (pathlib.Path(source).stem + ".o")
    done = subprocess.run(
        ["g++", *FLAGS, *include, "-c", str(ROOT / source), "-o",
         str(target)], capture_output=True, text=True, timeout=900,
        check=False)
    if done.returncode != 0:
      pytest.fail(f"g++ failed on {source}:\n{done.stderr[-4000:]}")
    return str(target)

  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    objects = list(pool.map(build, SOURCES))
  driver = folder / "driver"
  subprocess.run(["g++", *objects, "-o", str(driver), "-lpthread"],
                 check=True, timeout=300)
  return driver


def _job(name, folder, arrays):
  """The driver's job line for case `name`, its input files written."""
  op, dtype, _ = name.split("/")
  x, param = arrays["x"], arrays["param"]
  axis = cases.axis_of(name) % x.ndim
  outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
  stem = folder / name.replace("/", "_").replace(":", "_")
  for part in ("x", "dy", "param"):
    arrays[part].tofile(f"{stem}.{part}")
  n = param.shape[1]
  if op == "spline":
    x_min, x_max = (f32(v) for v in cases.X_RANGE)
    kernel, a, b = "-", x_min, (n - 1) / (x_max - x_min)
  elif op.startswith("kaf2d"):
    n = math.isqrt(n)
    kernel, a = "-", f32(cases.BOUNDARY)
    b = np_gamma(a, n, two_d=True)
  else:
    kernel, a = op.split("-")[0], f32(cases.BOUNDARY)
    b = np_gamma(a, n)
  kind = op.split("-")[0]
  kind = kind if kind in ("kaf2d", "spline") else "kaf"
  return (f"{kind} {dtype} {outer} {x.shape[axis]} {inner} {n} {kernel} "
          f"{a!r} {b!r} {stem}"), stem


def _read(stem, name, arrays):
  """The driver's y, dx and dparam of one case, shaped as the op's."""
  x, param = arrays["x"], arrays["param"]
  y_shape = list(x.shape)
  if name.startswith("kaf2d"):
    axis = cases.axis_of(name) % x.ndim
    y_shape[axis] //= 2
  shapes = {"y": y_shape, "dx": x.shape, "dparam": param.shape}
  return {f"{name}/{part}": np.fromfile(f"{stem}.{part}",
                                        x.dtype).reshape(shape)
          for part, shape in shapes.items()}


@pytest.fixture(scope="module")
def inputs():
  return cases.inputs()


@pytest.fixture(scope="module")
def outputs(inputs, tmp_path_factory):
  """Path -> (the path the driver reported, its outputs of every case)."""
  reason = _why_not()
  if reason:
    pytest.skip(reason)
  folder = tmp_path_factory.mktemp("avx512_emulated")
  driver = _compile(folder)
  out = {}
  for path in PATHS:
    work = folder / path
    work.mkdir()
    jobs, stems, got = [], {}, {}
    for name in cases.names(inputs):
      arrays = {p: inputs[f"{name}/{p}"] for p in ("x", "dy", "param")}
      line, stems[name] = _job(name, work, arrays)
      jobs.append(line)
    done = subprocess.run([str(driver)], input="\n".join(jobs) + "\n",
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TFKAF_CPU_PATH=path),
                          check=True)
    lines = done.stdout.splitlines()
    assert lines[1:] == [f"ok {stems[n]}" for n in cases.names(inputs)], (
        done.stdout)
    for name in cases.names(inputs):
      arrays = {p: inputs[f"{name}/{p}"] for p in ("x", "param")}
      got.update(_read(stems[name], name, arrays))
    out[path] = (lines[0], got)
  return out


def test_driver_runs_the_emulated_avx512_path(outputs):
  """TFKAF_CPU_PATH=avx512 selects the avx512 copy in the emulated build
  (cpu_features.cc reports it supported wherever AVX2 is)."""
  assert outputs["avx512"][0] == "path avx512"
  assert outputs["baseline"][0] == "path baseline"


def test_emulated_avx512_matches_reference(inputs, outputs):
  cases.assert_match_reference(outputs["avx512"][1], inputs,
                               "avx512 (emulated)")


def test_emulated_avx512_agrees_with_baseline(outputs):
  cases.assert_agree(outputs["baseline"][1], outputs["avx512"][1])
