"""The machine a benchmark ran on: CPU model, instruction-set path, threads.

Ratios measured on one machine do not hold on the next (Intel vs AMD, AVX2
vs AVX-512), so `tfkaf bench` and `tfkaf info` print these facts and the
bench's JSON records carry them.
"""

import importlib
import os

__all__ = ["cpuinfo", "describe", "onednn"]

# The CPU features that decide which kernel path can run (docs/design.md).
_FEATURES = ("avx2", "fma", "avx512f")


def cpuinfo():
  """{"model", "flags", "mhz"} of the first CPU in /proc/cpuinfo: the model
  name ("unknown" where there is none), its feature flags (a set) and the
  kernel's "cpu MHz" reading (None where there is none, e.g. not Linux)."""
  info = {"model": "unknown", "flags": set(), "mhz": None}
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["model"] == "unknown":
          info["model"] = value.strip()
        elif key == "flags" and not info["flags"]:
          info["flags"] = set(value.split())
        elif key == "cpu MHz" and info["mhz"] is None:
          info["mhz"] = float(value)
  except (OSError, ValueError):
    pass
  return info


def _threads():
  """TensorFlow's intra-op thread count (its default: the usable cores)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  configured = tf.config.threading.get_intra_op_parallelism_threads()
  if configured:
    return configured
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def onednn():
  """Whether TensorFlow's oneDNN CPU operations are on in this process.

  TensorFlow turns them on by default on x86 CPUs with AVX512_VNNI, BF16 or
  AMX (Intel Cascade Lake and newer), or where TF_ENABLE_ONEDNN_OPTS=1.
  Then tf.nn.relu runs oneDNN's kernel instead of Eigen's, and the default
  CPU allocator is oneDNN's pooled one (`tfkaf._peak`): both change the
  yardstick of every ratio. None where TensorFlow does not say."""
  try:
    port = importlib.import_module(
        "tensorflow.python.util._pywrap_util_port")
    return bool(port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def describe():
  """{"cpu_model", "cpu_features", "cpu_path", "threads", "onednn"}: the CPU
  model string, which of AVX2 / FMA / AVX-512F it has, the kernel path the
  plugin chose (see `tfkaf.build_info`; TFKAF_CPU_PATH forces one),
  TensorFlow's intra-op thread count and whether its oneDNN operations are
  on (`onednn`)."""
  from tfkaf import _loader  # pylint: disable=g-import-not-at-top

  info = cpuinfo()
  return {"cpu_model": info["model"],
          "cpu_features": [f for f in _FEATURES if f in info["flags"]],
          "cpu_path": _loader.cpu_path(),
          "threads": _threads(),
          "onednn": onednn()}
