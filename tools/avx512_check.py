"""Every CPU kernel path of the fused ops on this machine, without TensorFlow.

    python3 tools/avx512_check.py [--eigen DIR] [--reps N] [--json FILE]

Meant for a machine with AVX-512 where TensorFlow is not installed (a GPU
host, say): the tests hold the plugin's avx512 path to the reference only
where the CPU has AVX-512 (tests/test_cpu_paths.py), and elsewhere run its
code emulated on AVX2 (tests/test_avx512_emulated.py), which cannot check
GCC's AVX-512 instruction selection. This builds the CPU functors with g++
as they are (tests/native_driver.py; about 40 s on 16 cores) and, for every
path the CPU has (baseline, avx2, avx512):

1. runs every case of tests/cpu_path_cases.py forward and backward and holds
   it to the NumPy reference, and each vector path to the baseline path (the
   spline bitwise), also on inputs full of NaN, inf, huge and subnormal
   values (special_inputs);
2. times each fused op, forward and backward, on the benchmark's reference
   workload (float32 [4096, 1024]; KAF D = 20, 2D-KAF D = 10 from
   [4096, 2048], spline K = 51) on one thread, best of --reps calls, with a
   plain elementwise relu loop on the same tensor as the yardstick.

Needs: python3 with NumPy, g++ (C++17) and Eigen's headers: --eigen names a
folder holding Eigen/Core (default: $TFKAF_EIGEN_INCLUDE, else TensorFlow's
include folder where TensorFlow is importable). To bring them to a machine
without TensorFlow, copy them from a development tree into .eigen (ignored
by git; about 9 MB) and take that folder along:

    mkdir -p .eigen && cp -r "$(.venv/bin/python -c 'import tensorflow as tf;
        print(tf.sysconfig.get_include())')/Eigen" .eigen/
    python3 tools/avx512_check.py --eigen .eigen   # on the other machine

Exit status: 0 when every check passed, 1 when one failed, 2 when the
check could not run (no g++, no Eigen, a build error).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# pylint: disable=g-import-not-at-top,wrong-import-position
try:
  import numpy as np
except ImportError:
  sys.exit("tools/avx512_check.py needs NumPy (python3 -m pip install numpy)")

import cpu_path_cases as cases
import native_driver
from fuzz import cpu_paths
# pylint: enable=g-import-not-at-top,wrong-import-position

# The benchmark's reference workload (docs/design.md, section 6).
ROWS, CHANNELS = 4096, 1024
BENCH_PARAMS = {"gaussian": 20, "kaf2d": 100, "spline": 51,
                "relu-yardstick": 0}


def _cpuinfo():
  """tfkaf/_machine.py's cpuinfo(), loaded without the tfkaf package (whose
  import needs TensorFlow)."""
  spec = importlib.util.spec_from_file_location(
      "tfkaf_machine", ROOT / "tfkaf" / "_machine.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.cpuinfo()


def eigen_folder(given):
  """The folder holding Eigen/Core, or None."""
  candidates = [given, os.environ.get("TFKAF_EIGEN_INCLUDE")]
  if not any(candidates):
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      candidates.append(tf.sysconfig.get_include())
    except ImportError:
      pass
  for folder in filter(None, candidates):
    if (pathlib.Path(folder) / "Eigen" / "Core").is_file():
      return folder
  return None


def _check_paths(driver, folder, paths):
  """native_driver.verdicts for every path, a path whose driver run failed
  (a crash, say: an illegal instruction) failing with what it printed."""
  sets = cases.case_sets()
  outputs, verdict = {name: {} for name in sets}, {}
  for path in paths:
    try:
      runs = {name: native_driver.run(driver, folder / name, inputs,
                                      path)[:2]
              for name, inputs in sets.items()}
    except (RuntimeError, subprocess.CalledProcessError) as e:
      verdict[path] = f"FAILED: {e} {getattr(e, 'stderr', '') or ''}"[:2000]
      continue
    for name, result in runs.items():
      outputs[name][path] = result
  verdict.update(native_driver.verdicts(outputs["cases"], sets["cases"],
                                        outputs["special"]))
  count = sum(len(cases.names(inputs)) for inputs in sets.values())
  for path in paths:
    print(f"{path}: {count} cases {verdict[path]}")
  return verdict


def _bench_inputs():
  """cpu_path_cases-style inputs of the reference workload, float32."""
  rng = np.random.default_rng(11)
  x = rng.uniform(-3.0, 3.0, (ROWS, CHANNELS)).astype(np.float32)
  dy = rng.standard_normal((ROWS, CHANNELS)).astype(np.float32)
  out = {}
  for op, n in BENCH_PARAMS.items():
    name = f"{op}/float32/-1:{CHANNELS}"
    out[f"{name}/x"] = (np.concatenate([x, x[:, ::-1]], 1)
                        if op == "kaf2d" else x)
    out[f"{name}/dy"] = dy
    out[f"{name}/param"] = rng.standard_normal(
        (CHANNELS, n)).astype(np.float32)
  return out


def _bench(driver, folder, paths, reps):
  """{path: {op: {"forward_ms", "backward_ms", "forward_relu_ratio",
  "forward_backward_relu_ratio"}}}."""
  inputs = _bench_inputs()
  result = {}
  for path in paths:
    _, _, times = native_driver.run(driver, folder / "bench", inputs, path,
                                    reps)
    shutil.rmtree(folder / "bench" / path)
    relu = times[f"relu-yardstick/float32/-1:{CHANNELS}"]
    result[path] = {}
    for name, (f, b) in sorted(times.items()):
      result[path][name.split("/")[0]] = {
          "forward_ms": f, "backward_ms": b,
          "forward_relu_ratio": f / relu[0],
          "forward_backward_relu_ratio": (f + b) / sum(relu)}
  return result


def _print_bench(bench):
  print("\nOne thread, float32 [4096, 1024], best of the calls; ratios to "
        "the relu loop on the same path:")
  print(f"{'path':9}{'op':16}{'fwd ms':>9}{'bwd ms':>9}{'fwd x':>8}"
        f"{'f+b x':>8}")
  for path, ops in bench.items():
    for op, t in ops.items():
      print(f"{path:9}{op:16}{t['forward_ms']:9.2f}{t['backward_ms']:9.2f}"
            f"{t['forward_relu_ratio']:8.2f}"
            f"{t['forward_backward_relu_ratio']:8.2f}")


def _machine(paths):
  info = _cpuinfo()
  gxx = []
  if shutil.which("g++"):
    gxx = subprocess.run(["g++", "--version"], capture_output=True,
                         text=True, check=False).stdout.splitlines()
  return {"cpu_model": info["model"], "cpu_mhz": info["mhz"],
          "cpu_features": sorted(cpu_paths.NEEDS["avx512"] & info["flags"]),
          "paths": paths, "gxx": gxx[0] if gxx else "unknown",
          "cores": os.cpu_count()}


def arguments(description):
  """The options both CPU check tools take: --eigen and --json."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--eigen", help="a folder holding Eigen/Core")
  parser.add_argument("--json", help="also write the results here")
  return parser


def _parse(argv):
  parser = arguments("Checks and times every CPU kernel path without "
                     "TensorFlow (see the module's docstring).")
  parser.add_argument("--reps", type=int, default=10,
                      help="timed calls per op and path (0: no timing)")
  return parser.parse_args(argv)


def main(argv=None):
  args = _parse(argv)
  paths = cpu_paths.available()
  machine = _machine(paths)
  print(json.dumps(machine, indent=1))
  if "avx512" not in paths:
    print("This CPU lacks AVX-512F: checking the other paths only.")
  eigen = eigen_folder(args.eigen)
  if shutil.which("g++") is None or eigen is None:
    print("Needs g++ and Eigen's headers (--eigen DIR holding Eigen/Core); "
          "see the module's docstring.", file=sys.stderr)
    return 2
  with tempfile.TemporaryDirectory(prefix="tfkaf_cpu_check_") as tmp:
    folder = pathlib.Path(tmp)
    start = time.monotonic()
    try:
      driver = native_driver.build(folder, eigen)
    except native_driver.BuildError as e:
      print(e, file=sys.stderr)
      return 2
    print(f"built in {time.monotonic() - start:.0f} s")
    verdict = _check_paths(driver, folder, paths)
    good = [path for path in paths if verdict[path] == "passed"]
    bench = _bench(driver, folder, good, args.reps) if args.reps > 0 else {}
  if bench:
    _print_bench(bench)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(
        {"machine": machine, "cases": verdict, "bench": bench}, indent=1))
  return 0 if good == paths else 1


if __name__ == "__main__":
  sys.exit(main())
