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

The driver (tests/native/cpu_kernels_driver.cc, built and run by
native_driver.py) runs every case of cpu_path_cases.py through the forward
and backward functors, once per path (TFKAF_CPU_PATH, as in the plugin), and
the emulated avx512 path is held to the NumPy reference and to the baseline
path. tools/avx512_check.py runs the same on a machine with AVX-512 but
without TensorFlow.
"""

import importlib.util
import shutil

import numpy as np

import pytest
import tensorflow as tf

import cpu_path_cases as cases
import native_driver
from fuzz.cpu_paths import missing

pytestmark = pytest.mark.slow

PATHS = ("baseline", "avx512")


def _why_not():
  """Why the emulated build cannot run here, or None."""
  if shutil.which("g++") is None:
    return "no g++ on PATH"
  if not (native_driver.ROOT / "cc/kernels/kaf_cpu_avx512.cc").is_file():
    return (f"no kernel sources under {native_driver.ROOT} (not a source "
            "checkout)")
  return missing("avx2")  # the emulated copy is built for AVX2+FMA


@pytest.fixture(scope="module")
def inputs():
  return cases.inputs()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
  """(the emulated build of the driver, a scratch folder)."""
  reason = _why_not()
  if reason:
    pytest.skip(reason)
  folder = tmp_path_factory.mktemp("avx512_emulated")
  try:
    return native_driver.build(folder, tf.sysconfig.get_include(),
                               native_driver.EMULATION), folder
  except native_driver.BuildError as e:
    pytest.fail(str(e))


@pytest.fixture(scope="module")
def outputs(inputs, driver):
  """Path -> (the path the driver reported, its outputs of every case)."""
  return native_driver.run_cases(*driver, PATHS, inputs)


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


def test_emulated_avx512_agrees_with_baseline_on_special_values(
    inputs, outputs, driver):
  """NaN, +-inf, +-huge, subnormals and signed zeros in x: the same NaN and
  inf as the baseline path, the spline bitwise; the verdict fails a path
  whose special outputs differ."""
  special = native_driver.run_cases(driver[0], driver[1] / "special", PATHS,
                                    cases.special_inputs())
  cases.assert_agree(special["baseline"][1], special["avx512"][1],
                     rounding_differs=False)
  assert native_driver.verdicts(outputs, inputs, special) == {
      "baseline": "passed", "avx512": "passed"}
  reported, got = special["avx512"]
  key = "spline/float32/-1:37/y"
  broken = {**got, key: got[key].copy()}
  broken[key][0, 20] = np.nextafter(broken[key][0, 20], np.float32(9))
  verdict = native_driver.verdicts(
      outputs, inputs, {**special, "avx512": (reported, broken)})
  assert verdict["baseline"] == "passed"
  assert verdict["avx512"].startswith("FAILED") and key in verdict["avx512"]


def _relu_inputs(rows=5, channels=19):
  rng = np.random.default_rng(3)
  name = f"relu-yardstick/float32/-1:{channels}"
  x = rng.uniform(-3.0, 3.0, (rows, channels)).astype(np.float32)
  x[0, :3] = (0.0, -0.0, np.nan)
  return name, {f"{name}/x": x,
                f"{name}/dy": rng.standard_normal(x.shape).astype(np.float32),
                f"{name}/param": np.zeros((channels, 0), np.float32)}


def test_relu_yardstick_and_timing(driver):
  """The driver's relu (the benchmark's yardstick): y = max(x, 0) (NaN
  stays NaN), dx = dy where x > 0, else 0; a time per call is reported for
  both."""
  name, inputs = _relu_inputs()
  _, got, times = native_driver.run(*driver, inputs, "baseline", reps=3)
  x, dy = inputs[f"{name}/x"], inputs[f"{name}/dy"]
  np.testing.assert_array_equal(got[f"{name}/y"], np.maximum(x, 0))
  np.testing.assert_array_equal(got[f"{name}/dx"], np.where(x > 0, dy, 0))
  assert got[f"{name}/dparam"].shape == (19, 0)
  assert all(t >= 0 for t in times[name]), times


def _check_tool():
  spec = importlib.util.spec_from_file_location(
      "avx512_check", native_driver.ROOT / "tools" / "avx512_check.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_verdicts_report_a_wrong_path(inputs, outputs):
  """The check tools' verdict (native_driver.verdicts): each path against
  the reference and the baseline; one output element off fails that path
  alone, and so does a path the driver did not run."""
  assert native_driver.verdicts(outputs, inputs) == {"baseline": "passed",
                                                     "avx512": "passed"}
  reported, got = outputs["avx512"]
  broken = dict(got)
  key = "kaf2d/float32/-1:19/dparam"
  broken[key] = got[key].copy()
  broken[key][4, 7] += 0.01
  verdict = native_driver.verdicts({"baseline": outputs["baseline"],
                                    "avx512": (reported, broken)}, inputs)
  assert verdict["baseline"] == "passed"
  assert verdict["avx512"].startswith("FAILED")
  assert "avx512 kaf2d/float32/-1:19 dparam" in verdict["avx512"]
  verdict = native_driver.verdicts({"baseline": outputs["baseline"],
                                    "avx512": ("path avx2", got)}, inputs)
  assert verdict["avx512"] == ("FAILED: asked for avx512, the driver ran "
                               "path avx2")


def test_check_tool_reports_a_crashed_path(inputs, driver, tmp_path, capsys):
  """A path whose driver dies (as an illegal instruction would kill it)
  fails with the signal; the others are still checked."""
  crashing = tmp_path / "driver"
  crashing.write_text(f"""#!/bin/sh
if [ "$TFKAF_CPU_PATH" = avx512 ]; then kill -ILL $$; fi
exec {driver[0]}
""")
  crashing.chmod(0o755)
  verdict = _check_tool()._check_paths(crashing, tmp_path, list(PATHS))
  assert verdict["baseline"] == "passed"
  assert verdict["avx512"].startswith("FAILED"), verdict
  assert "SIGILL" in verdict["avx512"], verdict
  count = sum(len(cases.names(c)) for c in cases.case_sets().values())
  assert f"avx512: {count} cases FAILED" in capsys.readouterr().out


def test_check_tool_bench(driver, monkeypatch):
  """The tool's timing table: every op on every path, each ratio the op's
  time over the relu loop's on that path."""
  tool = _check_tool()
  monkeypatch.setattr(tool, "ROWS", 64)
  bench = tool._bench(driver[0], driver[1], list(PATHS), reps=2)
  assert set(bench) == set(PATHS)
  for ops in bench.values():
    assert set(ops) == set(tool.BENCH_PARAMS)
    relu = ops["relu-yardstick"]
    for t in ops.values():
      assert t["forward_relu_ratio"] == pytest.approx(
          t["forward_ms"] / relu["forward_ms"])
      assert t["forward_backward_relu_ratio"] == pytest.approx(
          (t["forward_ms"] + t["backward_ms"]) /
          (relu["forward_ms"] + relu["backward_ms"]))
