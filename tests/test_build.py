"""The plugin: built by Bazel, loadable, self-describing."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import tfkaf
from tfkaf import _loader

EXPECTED_OPS = {"Tfkaf>Kaf", "Tfkaf>KafGrad", "Tfkaf>Kaf2d", "Tfkaf>Kaf2dGrad",
                "Tfkaf>LinearSpline", "Tfkaf>LinearSplineGrad"}


def test_load_ops_is_idempotent():
  assert tfkaf.load_ops() is tfkaf.load_ops()


def test_build_info_describes_the_plugin():
  info = tfkaf.build_info()
  assert info["version"] == tfkaf.__version__
  assert info["tensorflow_built_against"] == tf.__version__
  assert info["tensorflow_runtime"] == tf.__version__
  assert EXPECTED_OPS <= set(info["ops"])
  assert all(name.startswith("Tfkaf>") for name in info["ops"])
  assert os.path.basename(info["plugin"]) == _loader.PLUGIN_NAME
  if info["cuda_compiled"]:
    assert info["cuda_archs"] and info["cuda_toolkit"]
  else:
    assert info["cuda_archs"] == [] and info["cuda_toolkit"] is None
  json.dumps(info)  # plain data, printable by `tfkaf info`


def _run_python(code, cwd):
  return subprocess.run([sys.executable, "-c", code], cwd=cwd,
                        capture_output=True, text=True, timeout=300,
                        check=False)


def test_fresh_process_imports_and_runs_an_op(tmp_path):
  code = ("import tfkaf, tensorflow as tf, json;"
          "x = tf.constant([[0.5, -1.0]]);"
          "a = tf.ones([2, 20]);"
          "print(json.dumps(tfkaf.ops.kaf(x, a).numpy().tolist()))")
  result = _run_python(code, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  values = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(values) == 1 and len(values[0]) == 2


def test_missing_plugin_error_names_the_fix(tmp_path, monkeypatch):
  monkeypatch.setattr(_loader, "_package_dir", lambda: str(tmp_path))
  error = _loader._load_error(str(tmp_path / _loader.PLUGIN_NAME), "missing")
  assert "not built" in str(error) and "pip install" in str(error)


def test_incompatible_plugin_error_names_both_versions(tmp_path, monkeypatch):
  plugin = tmp_path / _loader.PLUGIN_NAME
  plugin.write_bytes(b"not a shared library")
  (tmp_path / "_build_info.json").write_text(
      json.dumps({"tensorflow_version": "2.99.0"}))
  monkeypatch.setattr(_loader, "_package_dir", lambda: str(tmp_path))
  monkeypatch.setattr(_loader, "_ops_module", None)
  with pytest.raises(ImportError, match=r"built for TensorFlow 2\.99\.0.*"
                     + tf.__version__.replace(".", r"\.")):
    _loader.load_ops()


def test_plugin_of_the_same_release_series_loads(monkeypatch):
  """An isolated `pip install .` may build against another 2.21.x."""
  series = ".".join(tf.__version__.split(".")[:2])
  monkeypatch.setattr(_loader, "_recorded_build",
                      lambda: {"tensorflow_version": f"{series}.99"})
  monkeypatch.setattr(_loader, "_ops_module", None)
  assert _loader.load_ops() is not None


def test_plugin_of_another_release_is_refused_before_loading(monkeypatch):
  monkeypatch.setattr(_loader, "_recorded_build",
                      lambda: {"tensorflow_version": "2.20.0"})
  monkeypatch.setattr(_loader, "_ops_module", None)
  monkeypatch.setattr(tf, "load_op_library", None)  # must not be reached
  with pytest.raises(ImportError, match=r"built for TensorFlow 2\.20\.0.*"
                     r"install TensorFlow 2\.20\.\*"):
    _loader.load_ops()


def test_isolated_build_gets_the_tensorflow_series_the_package_needs():
  """pyproject.toml's build TensorFlow and setup.py's runtime one agree."""
  import re  # pylint: disable=g-import-not-at-top
  import tomllib  # pylint: disable=g-import-not-at-top

  root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
  with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
  with open(os.path.join(root, "setup.py"), encoding="utf-8") as f:
    runtime = re.findall(r'"(tensorflow[<>=!~][^"]*)"', f.read())
  build = [r for r in requires if r.startswith("tensorflow")]
  assert build and build == runtime, (build, runtime)
