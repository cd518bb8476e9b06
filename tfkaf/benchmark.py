"""Benchmarks of the fused ops against composite TF, XLA and tf.nn.relu.

Timings are medians over interleaved repetitions in one process (the machine
is shared and noisy: compare ratios taken in one run, not absolute times).
Each record: {"op", "variant", "pass", "shape", "ms", "peak_mb"?}, with
variant in fused / composite / composite_xla / relu and pass in forward /
forward_backward (the record schema of `tfkaf bench --json`).
"""

import ctypes
import dataclasses
import statistics
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tfkaf import ops
from tfkaf import reference

__all__ = ["BenchCase", "CASES", "ratios", "run"]

VARIANTS = ("fused", "composite", "composite_xla", "relu")
PASSES = ("forward", "forward_backward")


@dataclasses.dataclass(frozen=True)
class BenchCase:
  """One op to benchmark: how to make its inputs and call both forms."""
  op: str
  x_shape: tuple
  param_shape: tuple  # alpha / coefficients
  fused: Callable
  composite: Callable
  param_scale: float = 0.3


def _kaf_case(quick):
  n = 512 if quick else 4096
  return BenchCase("kaf", (n, 1024), (1024, 20),
                   lambda x, a: ops.kaf(x, a),
                   lambda x, a: reference.kaf(x, a))


def _kaf2d_case(quick):
  n = 512 if quick else 4096
  return BenchCase("kaf2d", (n, 2048), (1024, 100),
                   lambda x, a: ops.kaf2d(x, a),
                   lambda x, a: reference.kaf2d(x, a))


def _spline_case(quick):
  n = 512 if quick else 4096
  return BenchCase("linear_spline", (n, 1024), (1024, 51),
                   lambda x, c: ops.linear_spline(x, c, -4.0, 4.0),
                   lambda x, c: reference.linear_spline(x, c, -4.0, 4.0))


CASES = {"kaf": _kaf_case, "kaf2d": _kaf2d_case,
         "linear_spline": _spline_case}


def _relu(x, unused_param):
  return tf.nn.relu(x)


def _make_fn(apply, pass_name, jit):
  if pass_name == "forward":
    def step(x, param):
      return apply(x, param)
  else:
    def step(x, param):
      with tf.GradientTape() as tape:
        tape.watch([x, param])
        y = apply(x, param)
        loss = tf.reduce_sum(y * y)
      return tape.gradient(loss, [x, param])
  return tf.function(step, jit_compile=jit)


def _block(result):
  """Waits until `result` is computed, without copying it out.

  Eager execution is synchronous on the CPU; sync_devices also waits for
  GPU streams. (Reading the result with .numpy() would add a copy that costs
  several times relu's own kernel time.)
  """
  del result
  tf.test.experimental.sync_devices()


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
    if not self.available:
      return None
    before = self._status("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    fn()
    return max(self._status("VmHWM") - before, 0.0)


def run(op_names=tuple(CASES), quick=False, repeats=None, device=None,
        log=print):
  """Runs the benchmarks and returns a list of records (see module doc).

  Forward+backward records of CPU runs also carry `peak_mb`: the growth of
  peak resident memory during one training step of that variant.
  """
  repeats = repeats or (5 if quick else 15)
  device = device or "/CPU:0"
  peak = _PeakRss() if "CPU" in device.upper() else None
  records = []
  for name in op_names:
    case = CASES[name](quick)
    rng = np.random.default_rng(0)
    with tf.device(device):
      x = tf.constant(rng.normal(0.0, 1.5, case.x_shape), tf.float32)
      param = tf.constant(
          rng.normal(0.0, case.param_scale, case.param_shape), tf.float32)
      applies = {"fused": case.fused, "composite": case.composite,
                 "composite_xla": case.composite, "relu": _relu}
      for pass_name in PASSES:
        fns = {variant: _make_fn(applies[variant], pass_name,
                                 variant == "composite_xla")
               for variant in VARIANTS}
        for fn in fns.values():  # warm-up: tracing and compilation
          _block(fn(x, param))
          _block(fn(x, param))
        times = {variant: [] for variant in VARIANTS}
        for _ in range(repeats):  # interleaved so drift hits all alike
          for variant, fn in fns.items():
            start = time.perf_counter()
            _block(fn(x, param))
            times[variant].append((time.perf_counter() - start) * 1e3)
        for variant in VARIANTS:
          record = {"op": name, "variant": variant, "pass": pass_name,
                    "shape": list(case.x_shape),
                    "ms": statistics.median(times[variant])}
          memory = ""
          if peak is not None and pass_name == "forward_backward":
            fn = fns[variant]
            peak_mb = peak.measure(lambda: _block(fn(x, param)))  # pylint: disable=cell-var-from-loop
            if peak_mb is not None:
              record["peak_mb"] = max(peak_mb, 0.01)
              memory = f" peak {record['peak_mb']:8.1f} MiB"
          records.append(record)
          log(f"{name:14s} {pass_name:17s} {variant:14s} "
              f"{record['ms']:9.2f} ms{memory}")
  return records


def ratios(records):
  """{(op, pass): {variant: ms / relu_ms}} from `run`'s records."""
  table = {}
  for record in records:
    table.setdefault((record["op"], record["pass"]), {})[
        record["variant"]] = record["ms"]
  return {key: {v: ms / row["relu"] for v, ms in row.items()}
          for key, row in table.items() if "relu" in row}


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  results = run(sys.argv[1:] or tuple(CASES))
  for (op_name, pass_name), row in ratios(results).items():
    print(f"{op_name} {pass_name}: " + ", ".join(
        f"{v}={r:.2f}x relu" for v, r in row.items()))
