"""Builds and drives tests/native/cpu_kernels_driver.cc: the CPU functors of
KAF, 2D-KAF and the spline compiled with g++ outside TensorFlow, run on the
cases of cpu_path_cases.py once per CPU path (TFKAF_CPU_PATH, as in the
plugin).

NumPy only, no TensorFlow: tests/test_avx512_emulated.py builds the driver
with the avx512 path emulated on AVX2, and tools/avx512_check.py builds it
as it is on a machine that has AVX-512 but no TensorFlow. The kernel
sources need Eigen's headers (Eigen/Core, for the 16-bit types), which
TensorFlow's include folder has.
"""

import concurrent.futures
import math
import os
import pathlib
import subprocess

import numpy as np

import cpu_path_cases as cases
from reference import f32, np_gamma

__all__ = ["EMULATION", "ROOT", "SOURCES", "BuildError", "build", "run",
           "run_cases"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Slowest first, for the compiler pool: the emulated avx512 copy of the KAF
# kernels takes ~100 s (its 64-byte vectors span two AVX2 registers, and GCC
# lowers their comparisons element by element), the other copies ~20 s.
SOURCES = ("cc/kernels/kaf_cpu_avx512.cc", "cc/kernels/kaf_cpu_baseline.cc",
           "cc/kernels/kaf_cpu_avx2.cc", "cc/kernels/kaf_cpu.cc",
           "cc/kernels/spline_cpu.cc", "cc/kernels/cpu_features.cc",
           "tests/native/cpu_kernels_driver.cc")
FLAGS = ("-std=c++17", "-O2", "-DNDEBUG", "-Wno-psabi")
# The avx512 copy built for AVX2+FMA, its AVX-512 intrinsics emulated.
EMULATION = ("-DTFKAF_AVX512_EMULATED", "-include",
             str(ROOT / "tests/native/avx512_emulation.h"))


class BuildError(RuntimeError):
  """g++ failed; the message ends with its diagnostics."""


def build(folder, eigen_include, extra_flags=()):
  """Compiles the driver into `folder` (one g++ per source, in parallel)
  and returns its path. eigen_include: a folder holding Eigen/Core."""
  folder = pathlib.Path(folder)
  include = ("-I", str(ROOT), "-I", str(eigen_include))

  def compile_one(source):
    target = folder / (pathlib.Path(source).stem + ".o")
    done = subprocess.run(
        ["g++", *FLAGS, *extra_flags, *include, "-c", str(ROOT / source),
         "-o", str(target)], capture_output=True, text=True, timeout=900,
        check=False)
    if done.returncode != 0:
      raise BuildError(f"g++ failed on {source}:\n{done.stderr[-4000:]}")
    return str(target)

  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    objects = list(pool.map(compile_one, SOURCES))
  driver = folder / "driver"
  subprocess.run(["g++", *objects, "-o", str(driver), "-lpthread"],
                 check=True, timeout=300)
  return driver


def _kaf_job(op, n):
  """(kind, n, kernel, a, b) of a KAF or 2D-KAF case, as the ops derive
  boundary and gamma."""
  a = f32(cases.BOUNDARY)
  if op.startswith("kaf2d"):
    n = math.isqrt(n)
    return "kaf2d", n, "-", a, np_gamma(a, n, two_d=True)
  return "kaf", n, op.split("-")[0], a, np_gamma(a, n)


def _job_line(name, stem, arrays):
  """The driver's job line for case `name` ("op/dtype/axis:channels"),
  its arrays x, dy and param written to stem.x, stem.dy, stem.param."""
  op, dtype, _ = name.split("/")
  x, param = arrays["x"], arrays["param"]
  axis = cases.axis_of(name) % x.ndim
  outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
  for part in ("x", "dy", "param"):
    arrays[part].tofile(f"{stem}.{part}")
  n = param.shape[1]
  if op == "spline":
    x_min, x_max = (f32(v) for v in cases.X_RANGE)
    kind, kernel, a, b = "spline", "-", x_min, (n - 1) / (x_max - x_min)
  elif op == "relu-yardstick":
    kind, kernel, a, b = "relu", "-", 0.0, 0.0
  else:
    kind, n, kernel, a, b = _kaf_job(op, n)
  return (f"{kind} {dtype} {outer} {x.shape[axis]} {inner} {n} {kernel} "
          f"{a!r} {b!r} {stem}")


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


def run(driver, folder, inputs, path, reps=1):
  """Runs every case of `inputs` (cpu_path_cases.inputs() or the like) on
  CPU path `path`. Returns (the path the driver reported, {"name/part":
  output}, {name: (forward ms, backward ms)}, best of `reps` calls)."""
  work = pathlib.Path(folder) / path
  work.mkdir(parents=True, exist_ok=True)
  names = cases.names(inputs)
  stems = {name: work / name.replace("/", "_").replace(":", "_")
           for name in names}
  arrays = {name: {p: inputs[f"{name}/{p}"] for p in ("x", "dy", "param")}
            for name in names}
  jobs = [_job_line(name, stems[name], arrays[name]) for name in names]
  env = dict(os.environ, TFKAF_CPU_PATH=path, TFKAF_DRIVER_REPS=str(reps))
  done = subprocess.run([str(driver)], input="\n".join(jobs) + "\n",
                        capture_output=True, text=True, timeout=600,
                        env=env, check=True)
  lines = done.stdout.splitlines()
  words = [line.split() for line in lines[1:]]
  if [w[:2] for w in words] != [["ok", str(stems[n])] for n in names]:
    raise RuntimeError(f"the driver failed on path {path}:\n{done.stdout}")
  got, times = {}, {}
  for name, w in zip(names, words):
    got.update(_read(stems[name], name, arrays[name]))
    times[name] = (float(w[2]), float(w[3]))
  return lines[0], got, times


def run_cases(driver, folder, paths, inputs):
  """path -> (the path the driver reported, its outputs) for every case of
  `inputs` (cpu_path_cases.inputs()), once per path in `paths`."""
  out = {}
  for path in paths:
    reported, got, _ = run(driver, folder, inputs, path)
    out[path] = (reported, got)
  return out
