"""Benchmark hygiene: a pooled CPU allocator, and the peak memory of a call.

TensorFlow's default CPU allocator is malloc. glibc hands large blocks back
to the system when they are freed, so inside a `tf.function` every output
of 16 MiB comes from freshly mapped pages and page-faults on first touch:
measured here on TF 2.21, `tf.nn.relu` on a float32 [4096, 1024] tensor
took 10-12 ms in a `tf.function` (2,048 minor faults per call) against
2-3 ms with the memory reused. That cost belongs to the allocator, not to
the op, and it hides the difference between two ops behind a constant.
`use_pooled_allocator()` (called by `tfkaf bench` and
tools/bench_train_step.py before the first tensor exists) sets
TF_CPU_ALLOCATOR_USE_BFC, which makes TensorFlow pool CPU memory the way it
always does on GPUs; `allocator()` says which one a process really got.
Where TensorFlow's oneDNN operations are on (`_machine.onednn`: by default
on CPUs with AVX512_VNNI, BF16 or AMX), the default CPU allocator is
already oneDNN's, which pools large blocks and keeps the same statistics:
"pooled" without the variable (measured on an Intel Xeon with AMX: no page
faults per relu call, with or without it).

Peak memory of one call: from the allocator's own statistics where it keeps
them (the pooled CPU allocator, GPUs; XLA's buffers come from it too), else
from Linux's resident high-water mark.
"""

import ctypes
import os

import tensorflow as tf

__all__ = ["POOLED_ALLOCATOR_ENV", "allocator", "peak_meter",
           "use_pooled_allocator"]

POOLED_ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def use_pooled_allocator():
  """Asks for TensorFlow's pooled (BFC) CPU allocator unless the environment
  already chose. TensorFlow reads the variable when it creates the allocator,
  at the first tensor: call this before any tensor exists."""
  os.environ.setdefault(POOLED_ALLOCATOR_ENV, "true")


def _device_name(device):
  return device.strip("/").upper().replace("DEVICE:", "")


def _has_stats(device):
  try:
    tf.config.experimental.get_memory_info(_device_name(device))
    return True
  except ValueError:
    return False


def allocator(device="/CPU:0"):
  """"pooled" where the device's allocator keeps statistics (TensorFlow's
  BFC allocator: always on GPUs, on the CPU with TF_CPU_ALLOCATOR_USE_BFC or
  with oneDNN on), else "malloc"."""
  return "pooled" if _has_stats(device) else "malloc"


class _PeakStats:
  """Peak growth of the allocator's bytes in use during one call, in MiB."""

  def __init__(self, device):
    self.device = _device_name(device)

  def measure(self, fn):
    tf.config.experimental.reset_memory_stats(self.device)
    before = tf.config.experimental.get_memory_info(self.device)["current"]
    fn()
    peak = tf.config.experimental.get_memory_info(self.device)["peak"]
    return max(peak - before, 0) / float(1 << 20)


class _PeakRss:
  """Peak resident memory of one call on Linux, in MiB.

  The kernel's high-water mark (VmHWM) is reset through
  /proc/self/clear_refs before the call; glibc's mmap threshold is fixed so
  that large freed buffers go back to the system instead of staying mapped,
  which makes the mark track live tensor memory.
  """

  def __init__(self):
    self.available = False
    try:
      libc = ctypes.CDLL("libc.so.6")
      m_mmap_threshold = -3
      libc.mallopt(m_mmap_threshold, 1 << 17)
      with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
      self.available = self._status("VmHWM") is not None
    except OSError:
      pass

  @staticmethod
  def _status(key):
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith(key + ":"):
          return int(line.split()[1]) / 1024.0
    return None

  def measure(self, fn):
    before = self._status("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    fn()
    return max(self._status("VmHWM") - before, 0.0)


def peak_meter(device):
  """An object whose `measure(fn)` runs fn and returns the peak memory it
  added on `device` in MiB, or None where neither way works (a CPU without
  /proc, a device without statistics)."""
  if _has_stats(device):
    return _PeakStats(device)
  if "CPU" in device.upper():
    meter = _PeakRss()
    if meter.available:
      return meter
  return None
