"""Loads the compiled op plugin and reports how it was built.

The plugin `_tfkaf_ops.so` is built by Bazel against one TensorFlow release;
`_build_info.json`, written next to it at build time, records which, so that a
failed load can say what the plugin expects.
"""

import ctypes
import json
import os
import threading

import tensorflow as tf

__all__ = ["load_ops", "build_info", "PLUGIN_NAME"]

PLUGIN_NAME = "_tfkaf_ops.so"
_BUILD_INFO_NAME = "_build_info.json"

_lock = threading.Lock()
_ops_module = None


def _package_dir():
  return os.path.dirname(os.path.abspath(__file__))


def _recorded_build():
  path = os.path.join(_package_dir(), _BUILD_INFO_NAME)
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _release(version):
  """'2.21.0' -> '2.21': the series within which a plugin stays loadable."""
  return ".".join(str(version).split(".")[:2])


def _mismatch_error(built_for):
  return ImportError(
      f"tfkaf's op plugin was built for TensorFlow {built_for}, and "
      f"TensorFlow {tf.__version__} is installed. Compiled TensorFlow add-ons "
      "only load into the TensorFlow release they were built for: reinstall "
      "tfkaf against this TensorFlow (pip install --no-build-isolation "
      f"--force-reinstall .) or install TensorFlow {_release(built_for)}.*.")


def _load_error(path, error):
  built_for = _recorded_build().get("tensorflow_version", "unknown")
  if not os.path.exists(path):
    return ImportError(
        f"tfkaf's op plugin {path} is missing: tfkaf was not built. Install "
        "it with `pip install --no-build-isolation .` from the source tree "
        "(see README.md), or run ./configure.sh && bazel build "
        f"//:{PLUGIN_NAME}.")
  return ImportError(
      f"tfkaf's op plugin could not be loaded: it was built for TensorFlow "
      f"{built_for}, and TensorFlow {tf.__version__} is installed. Compiled "
      "TensorFlow add-ons only load into the TensorFlow release they were "
      "built for: reinstall tfkaf against this TensorFlow (pip install "
      "--no-build-isolation --force-reinstall .) or install TensorFlow "
      f"{built_for}. Loader error: {error}")


def load_ops():
  """Loads the plugin once and returns its generated op module.

  Idempotent and thread-safe; `import tfkaf` calls it, which is also what a
  SavedModel using tfkaf ops needs before `tf.saved_model.load`.
  """
  global _ops_module
  with _lock:
    if _ops_module is None:
      path = os.path.join(_package_dir(), PLUGIN_NAME)
      built_for = _recorded_build().get("tensorflow_version")
      if built_for and _release(built_for) != _release(tf.__version__):
        raise _mismatch_error(built_for)
      try:
        _ops_module = tf.load_op_library(path)
      except (tf.errors.NotFoundError, OSError) as error:
        raise _load_error(path, error) from error
    return _ops_module


def _op_names(module):
  """Registered names of the plugin's ops ("Tfkaf>Kaf", ...).

  The generated module exposes one wrapper per op, named after the op with
  ">" replaced by "_"; each candidate is confirmed in TF's op registry.
  """
  from tensorflow.python.framework import op_def_registry  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top

  names = []
  for attribute in dir(module):
    if attribute.startswith("Tfkaf_"):
      name = "Tfkaf>" + attribute[len("Tfkaf_"):]
      if op_def_registry.get(name) is not None:
        names.append(name)
  return sorted(names)


def _library():
  """The plugin opened through ctypes, for its build facts (load_ops first)."""
  load_ops()
  return ctypes.CDLL(os.path.join(_package_dir(), PLUGIN_NAME))


def cpu_path():
  """The instruction-set path of the CPU kernels in this process: "baseline",
  "avx2" or "avx512" (the best the CPU has, unless TFKAF_CPU_PATH forces
  another)."""
  function = _library().tfkaf_cpu_path
  function.restype = ctypes.c_char_p
  return function().decode()


def build_info():
  """Returns how the plugin was built, as a dict.

  Keys: `version` (tfkaf), `tensorflow_built_against`, `tensorflow_runtime`,
  `cuda_compiled` (bool), `cuda_toolkit` (e.g. "13.0", or None),
  `cuda_archs` (list such as ["sm_80", "sm_90"]), `cpu_path` (see
  `cpu_path`), `ops` (registered op names), `plugin` (path of the shared
  library).
  """
  from tfkaf import __version__  # pylint: disable=g-import-not-at-top

  module = load_ops()
  path = os.path.join(_package_dir(), PLUGIN_NAME)
  library = _library()
  for name in ("tfkaf_tf_version", "tfkaf_cuda_archs"):
    getattr(library, name).restype = ctypes.c_char_p
  toolkit = library.tfkaf_cuda_toolkit_version()
  archs = library.tfkaf_cuda_archs().decode()
  return {
      "version": __version__,
      "tensorflow_built_against": library.tfkaf_tf_version().decode(),
      "tensorflow_runtime": tf.__version__,
      "cuda_compiled": bool(library.tfkaf_cuda_compiled()),
      "cuda_toolkit": (f"{toolkit // 1000}.{(toolkit % 1000) // 10}"
                       if toolkit else None),
      "cuda_archs": [a for a in archs.split(",") if a],
      "cpu_path": cpu_path(),
      "ops": _op_names(module),
      "plugin": path,
  }
