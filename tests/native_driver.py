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

__all__ = ["EMULATION", "ROOT", "SOURCES", "BuildError", "build",
           "read_outputs", "run", "run_cases", "verdicts", "write_jobs"]

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


def build(folder, eigen_include, extra_flags=(), static=False):
  """Compiles the driver into `folder` (one g++ per source, in parallel)
  and returns its path. eigen_include: a folder holding Eigen/Core.
  static: link statically (to run where the C++ runtime is absent)."""
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
  link = ["-static"] if static else []
  subprocess.run(["g++", *objects, "-o", str(driver), *link, "-lpthread"],
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


def _job_line(name, folder, stem, arrays):
  """The driver's job line for case `name` ("op/dtype/axis:channels"),
  its arrays x, dy and param written to stem.x, stem.dy, stem.param in
  `folder` (the driver's working folder)."""
  op, dtype, _ = name.split("/")
  x, param = arrays["x"], arrays["param"]
  axis = cases.axis_of(name) % x.ndim
  outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
  for part in ("x", "dy", "param"):
    arrays[part].tofile(pathlib.Path(folder) / f"{stem}.{part}")
  n = param.shape[1]
  if op.startswith("spline"):
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


def _stems(inputs, path):
  """{case name: its files' stem, relative to the run's folder}."""
  return {name: f"{path}/" + name.replace("/", "_").replace(":", "_")
          for name in cases.names(inputs)}


def _arrays(inputs, name):
  return {p: inputs[f"{name}/{p}"] for p in ("x", "dy", "param")}


def write_jobs(folder, inputs, path):
  """Writes the arrays of every case of `inputs` (cpu_path_cases.inputs()
  or the like) under folder/path and returns the driver's job lines for
  them, their files named relative to `folder` (the driver's working
  folder)."""
  (pathlib.Path(folder) / path).mkdir(parents=True, exist_ok=True)
  jobs = []
  for name, stem in _stems(inputs, path).items():
    jobs.append(_job_line(name, folder, stem, _arrays(inputs, name)))
  return "\n".join(jobs) + "\n"


def read_outputs(folder, inputs, path, stdout):
  """What a driver run of write_jobs(folder, inputs, path) gave: (the path
  the driver reported, {"name/part": output}, {name: (forward ms,
  backward ms)}). stdout: what the driver printed."""
  stems = _stems(inputs, path)
  lines = stdout.splitlines()
  words = [line.split() for line in lines[1:]]
  if [w[:2] for w in words] != [["ok", stem] for stem in stems.values()]:
    raise RuntimeError(f"the driver failed on path {path}:\n{stdout}")
  got, times = {}, {}
  for (name, stem), w in zip(stems.items(), words):
    got.update(_read(pathlib.Path(folder) / stem, name,
                     _arrays(inputs, name)))
    times[name] = (float(w[2]), float(w[3]))
  return lines[0], got, times


def run(driver, folder, inputs, path, reps=1):
  """Runs every case of `inputs` (cpu_path_cases.inputs() or the like) on
  CPU path `path`. Returns (the path the driver reported, {"name/part":
  output}, {name: (forward ms, backward ms)}, best of `reps` calls)."""
  jobs = write_jobs(folder, inputs, path)
  env = dict(os.environ, TFKAF_CPU_PATH=path, TFKAF_DRIVER_REPS=str(reps))
  done = subprocess.run([str(driver)], input=jobs, capture_output=True,
                        text=True, timeout=600, env=env, cwd=folder,
                        check=True)
  return read_outputs(folder, inputs, path, done.stdout)


def run_cases(driver, folder, paths, inputs):
  """path -> (the path the driver reported, its outputs) for every case of
  `inputs` (cpu_path_cases.inputs()), once per path in `paths`."""
  out = {}
  for path in paths:
    reported, got, _ = run(driver, folder, inputs, path)
    out[path] = (reported, got)
  return out


def verdicts(outputs, inputs, special=None):
  """{path: "passed" or its first failure} for each path's outputs
  ({path: (the path the driver reported, {"name/part": output})}, as
  run_cases gives), held to the NumPy reference and, where the baseline
  path is among them, to the baseline's (the spline bitwise). special:
  the same for cpu_path_cases.special_inputs(), held to the baseline's."""
  verdict = {}
  for path, (reported, got) in outputs.items():
    if reported != f"path {path}":  # cpu_features.cc: not usable here
      verdict[path] = f"FAILED: asked for {path}, the driver ran {reported}"
      continue
    try:
      cases.assert_match_reference(got, inputs, path)
      if path != "baseline" and "baseline" in outputs:
        cases.assert_agree(outputs["baseline"][1], got)
        if special:
          cases.assert_agree(special["baseline"][1], special[path][1],
                             rounding_differs=False)
      verdict[path] = "passed"
    except AssertionError as e:
      verdict[path] = "FAILED: " + str(e).strip()[:2000]
  return verdict
