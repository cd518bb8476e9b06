"""The `tfkaf` command: each subcommand in quick mode, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

_TIMEOUT = 900


def _tfkaf(*args, cwd):
  """Runs the installed console script (python -m tfkaf if not on PATH)."""
  script = shutil.which("tfkaf")
  command = [script] if script else [sys.executable, "-m", "tfkaf"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(command + list(args), cwd=cwd, capture_output=True,
                        text=True, timeout=_TIMEOUT, check=False, env=env)


def test_info_prints_build_info_as_json(tmp_path):
  result = _tfkaf("info", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  info = json.loads(result.stdout)
  assert "Tfkaf>Kaf" in info["ops"]
  assert any("CPU" in device for device in info["devices"])


def test_python_dash_m_is_the_same_command(tmp_path):
  result = subprocess.run([sys.executable, "-m", "tfkaf", "info"],
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=_TIMEOUT, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Tfkaf>LinearSpline" in json.loads(result.stdout)["ops"]


_SUBCOMMANDS = ("demo", "bench", "plot", "info", "export")
# Lines TensorFlow 2.21 writes while it is imported and its devices start.
_STARTUP_LINES = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard",
                  "cuInit")


def _assert_lists_subcommands(text):
  listed = [line.split()[0] for line in text.splitlines()
            if line.startswith("  ") and line.split()]
  for name in _SUBCOMMANDS:
    assert name in listed, text
  assert "train ReLU, KAF" in text  # each with its line of help


def _assert_quiet(stderr):
  for marker in _STARTUP_LINES:
    assert marker not in stderr, stderr


def test_help_lists_subcommands_without_tensorflow_log_lines(tmp_path):
  result = _tfkaf("--help", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_lists_subcommands(result.stdout)
  _assert_quiet(result.stderr)


def test_no_arguments_lists_subcommands(tmp_path):
  result = _tfkaf(cwd=tmp_path)
  assert result.returncode == 2
  _assert_lists_subcommands(result.stdout)
  _assert_quiet(result.stderr)


@pytest.mark.parametrize("command,flags", [
    ("demo", ("--quick", "--out", "default: tfkaf_out", "--strategy")),
    ("bench", ("--quick", "--json", "--device", "--ops", "--max-memory",
               "default: kaf,kaf2d,linear_spline", "half of the available")),
    ("plot", ("MODEL.keras", "--out", "default: tfkaf_out")),
    ("info", ("--verbose",)),
    ("export", ("MODEL.keras", "OUT", "--format",
                "default: tf_saved_model", "litert", "onnx")),
])
def test_subcommand_help_lists_its_flags_with_defaults(tmp_path, command,
                                                       flags):
  result = _tfkaf(command, "--help", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  text = " ".join(result.stdout.split())  # argparse wraps long lines
  for flag in flags:
    assert flag in text, (flag, result.stdout)
  _assert_quiet(result.stderr)


@pytest.mark.parametrize("args,message", [
    (("train",), "invalid choice: 'train'"),
    (("info", "--nope"), "unrecognized arguments: --nope"),
    (("bench", "--max-memory", "lots"), "invalid memory size 'lots'"),
    (("bench", "--quick", "--ops", "relu"), "unknown op(s) for --ops: relu"),
])
def test_usage_mistakes_give_one_line_and_the_list(tmp_path, args, message):
  result = _tfkaf(*args, cwd=tmp_path)
  assert result.returncode in (1, 2), result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if "error:" in line]
  assert len(errors) == 1 and message in errors[0], result.stderr
  assert "Traceback" not in result.stderr
  _assert_quiet(result.stderr)
  if result.returncode == 2:  # argparse's usage errors list the commands
    _assert_lists_subcommands(result.stderr)


# Runs the command with the named modules made unimportable (a None entry
# in sys.modules is what Python reports as "not installed").
_WITHOUT = """
import sys
for name in sys.argv.pop(1).split(","):
  sys.modules[name] = None
import _tfkaf_cli
_tfkaf_cli.run()
"""


@pytest.mark.parametrize("command,hidden,extra", [
    (("demo", "--quick"), "mnist1d", "demo"),
    (("demo", "--quick"), "matplotlib", "demo"),
    (("plot", "model.keras"), "matplotlib", "plot"),
])
def test_missing_optional_package_is_one_line_with_the_fix(
    tmp_path, command, hidden, extra):
  result = subprocess.run(
      [sys.executable, "-P", "-c", _WITHOUT, hidden, *command], cwd=tmp_path,
      capture_output=True, text=True, timeout=_TIMEOUT, check=False)
  assert result.returncode == 1, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, result.stderr
  assert hidden in lines[0] and f'pip install "tfkaf[{extra}]"' in lines[0]
  assert "--no-build-isolation" in lines[0]


@pytest.mark.slow
def test_bench_quick_writes_records(tmp_path):
  path = tmp_path / "bench.json"
  result = _tfkaf("bench", "--quick", f"--json={path}", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  records = json.loads(path.read_text())
  seen = set()
  for record in records:
    assert {"op", "variant", "pass", "shape", "ms"} <= set(record), record
    assert record["op"] in ("kaf", "kaf2d", "linear_spline")
    assert record["variant"] in ("fused", "fused_xla", "composite",
                                 "composite_xla", "relu")
    assert record["pass"] in ("forward", "forward_backward")
    assert record["ms"] > 0
    assert record["machine"]["allocator"] == "pooled"
    if "peak_mb" in record:
      assert record["peak_mb"] > 0
    seen.add((record["op"], record["variant"], record["pass"]))
  assert len(seen) == 3 * 5 * 2
  assert "x relu" in result.stdout or "relu" in result.stdout


@pytest.mark.slow
def test_demo_quick_trains_plots_exports_and_serves(tmp_path):
  out = tmp_path / "out"
  result = _tfkaf("demo", "--quick", f"--out={out}", cwd=tmp_path)
  assert result.returncode == 0, (result.stdout[-3000:] +
                                  result.stderr[-3000:])
  results = json.loads((out / "results.json").read_text())
  rows = results["rows"]
  assert {r["variant"] for r in rows} == {"relu", "kaf", "kaf2d", "spline"}
  for row in rows:
    assert len(row["runs"]) == 1  # --quick: one seed
    # 10 classes: anything trained is far above chance.
    assert 0.3 < row["runs"][0]["test_accuracy"] <= 1.0, row["name"]
    assert row["parameters"] > 0
    assert row["seconds_per_epoch"]["mean"] > 0
  assert "Welch" in results["verdict_rule"]
  assert (out / "accuracy.png").stat().st_size > 10_000
  plots = sorted(p.name for p in out.glob("mlp_*.png"))
  assert any(name.startswith("mlp_kaf2d") for name in plots), plots
  assert any(name.startswith("mlp_spline") for name in plots), plots
  assert "reloaded in a fresh process" in result.stdout
  for fmt in ("litert", "onnx"):  # portable copies, checked in their runtimes
    assert f"portable {fmt} export" in result.stdout
    assert "predictions agree on 100.0%" in result.stdout
  assert "test acc" in result.stdout and "vs ReLU" in result.stdout


@pytest.mark.slow
def test_plot_command_draws_a_saved_model(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top

  model = keras.Sequential([
      keras.Input((6,)), keras.layers.Dense(4), tfkaf.layers.KAF(),
      keras.layers.Dense(4), tfkaf.layers.DeepBSpline()])
  model(np.zeros((1, 6), np.float32))
  path = tmp_path / "model.keras"
  model.save(path)
  result = _tfkaf("plot", str(path), f"--out={tmp_path / 'plots'}",
                  cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  written = result.stdout.split()
  assert len(written) == 2
  for name in written:
    assert os.path.getsize(name) > 5_000


def test_plot_command_names_a_missing_file(tmp_path):
  result = _tfkaf("plot", str(tmp_path / "nope.keras"), cwd=tmp_path)
  assert result.returncode != 0
  assert "no model file" in result.stderr


@pytest.fixture(scope="module")
def saved_model_file(tmp_path_factory):
  import keras  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = keras.Sequential([
      keras.Input((6,)), keras.layers.Dense(4), tfkaf.layers.KAF(),
      keras.layers.Dense(4), tfkaf.layers.DeepBSpline()])
  model(np.zeros((1, 6), np.float32))
  path = tmp_path_factory.mktemp("model") / "model.keras"
  model.save(path)
  return path


@pytest.mark.slow
def test_export_command_writes_a_verified_onnx_file(tmp_path,
                                                    saved_model_file):
  out = tmp_path / "model.onnx"
  result = _tfkaf("export", str(saved_model_file), str(out), "--format",
                  "onnx", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert out.stat().st_size > 1000
  assert "outputs match the Keras model within" in result.stdout
  _assert_quiet(result.stderr)


def test_export_command_names_a_missing_model(tmp_path):
  result = _tfkaf("export", str(tmp_path / "nope.keras"),
                  str(tmp_path / "m.onnx"), "--format", "onnx", cwd=tmp_path)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(errors) == 1 and "no model file" in errors[0], result.stderr
