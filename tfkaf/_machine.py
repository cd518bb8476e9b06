"""The machine a benchmark ran on: CPU model, instruction-set path, threads.

Ratios measured on one machine do not hold on the next (Intel vs AMD, AVX2
vs AVX-512), so `tfkaf bench` and `tfkaf info` print these facts and the
bench's JSON records carry them.
"""

import os

__all__ = ["cpuinfo", "describe"]

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


def describe():
  """{"cpu_model", "cpu_features", "cpu_path", "threads"}: the CPU model
  string, which of AVX2 / FMA / AVX-512F it has, the kernel path the plugin
  chose (see `tfkaf.build_info`; TFKAF_CPU_PATH forces one) and TensorFlow's
  intra-op thread count."""
  from tfkaf import _loader  # pylint: disable=g-import-not-at-top

  info = cpuinfo()
  return {"cpu_model": info["model"],
          "cpu_features": [f for f in _FEATURES if f in info["flags"]],
          "cpu_path": _loader.cpu_path(),
          "threads": _threads()}
