"""Subprocesses that tfkaf starts import the installed tfkaf, wherever run."""

import os
import sys

import keras
import numpy as np
import pytest

import tfkaf
from tfkaf import _process
from tfkaf import demo

_PLUGINLESS = "raise ImportError('the plugin-less source tree was imported')\n"


@pytest.fixture
def source_tree(tmp_path):
  """A folder holding a `tfkaf/` package without the compiled plugin."""
  package = tmp_path / "checkout" / "tfkaf"
  package.mkdir(parents=True)
  (package / "__init__.py").write_text(_PLUGINLESS)
  return package.parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  out = tmp_path_factory.mktemp("served")
  keras.utils.set_random_seed(0)
  model = keras.Sequential([
      keras.Input((40,)), keras.layers.Dense(8), tfkaf.layers.KAF(),
      keras.layers.Dense(10)])
  export_dir = str(out / "model")
  model.export(export_dir, verbose=False)
  x = np.random.default_rng(0).normal(size=(16, 40)).astype(np.float32)
  return export_dir, x, np.argmax(model.predict(x, verbose=0), -1), out


def test_run_python_imports_the_running_tfkaf(source_tree, monkeypatch):
  monkeypatch.chdir(source_tree)
  monkeypatch.setenv("PYTHONPATH", str(source_tree))
  result = _process.run_python("import tfkaf; print(tfkaf.__file__)")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == tfkaf.__file__


@pytest.mark.slow
@pytest.mark.parametrize("pythonpath", [False, True])
def test_serve_check_from_a_source_checkout(source_tree, exported, monkeypatch,
                                            pythonpath):
  export_dir, x, expected, out = exported
  monkeypatch.chdir(source_tree)  # as `tfkaf demo` run from a clone's root
  if pythonpath:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(source_tree), os.environ.get("PYTHONPATH", "")]))
  relative = os.path.relpath(out, source_tree)  # relative --out, as users type
  served = demo.serve_in_fresh_process(export_dir, x, relative)
  np.testing.assert_array_equal(served, expected)


def test_plain_python_from_the_checkout_would_pick_the_source_tree(
    source_tree):
  """The trap the check avoids: `python -c` puts the cwd first on sys.path."""
  import subprocess  # pylint: disable=g-import-not-at-top
  result = subprocess.run([sys.executable, "-c", "import tfkaf"],
                          cwd=source_tree, capture_output=True, text=True,
                          check=False, timeout=300)
  assert "plugin-less source tree" in result.stderr
