"""The machine a benchmark ran on: CPU model, instruction-set path, threads.

Ratios measured on one machine do not hold on the next (Intel vs AMD, AVX2
vs AVX-512), so `tfkaf bench` and `tfkaf info` print these facts and the
bench's JSON records carry them.
"""

import os

__all__ = ["describe"]

# The CPU features that decide which kernel path can run (docs/design.md).
_FEATURES = ("avx2", "fma", "avx512f")


def _cpuinfo():
  """(model name, set of flags) from /proc/cpuinfo; ("unknown", set())
  where it cannot be read (not Linux)."""
  model, flags = "unknown", set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
          model = value.strip()
        elif key == "flags" and not flags:
          flags = set(value.split())
  except OSError:
    pass
  return model, flags


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

  model, flags = _cpuinfo()
  return {"cpu_model": model,
          "cpu_features": [f for f in _FEATURES if f in flags],
          "cpu_path": _loader.cpu_path(),
          "threads": _threads()}
