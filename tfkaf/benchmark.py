"""Benchmarks of the fused ops against composite TF, XLA and tf.nn.relu.

Timings are medians over interleaved repetitions in one process (the machine
is shared and noisy: compare ratios taken in one run, not absolute times).
Each repetition runs relu first and then every other variant, and
"relu_ratio" is the median over repetitions of that repetition's time over
relu's: a slow spell of the machine hits both sides of a pair alike, so it
moves much less than the ratio of the two medians ("relu_ratio_range": its
lowest and highest repetition).
Each record: {"op", "variant", "pass", "shape", "ms", "relu_ratio",
"relu_ratio_range", "peak_mb"?, "machine"}, with variant in fused /
fused_xla / composite / composite_xla / relu (the `_xla` variants inside
`tf.function(jit_compile=True)`) and pass in forward / forward_backward
(the record schema of `tfkaf bench --json`);
"machine" is `tfkaf._machine.describe()` (CPU model, kernel path, threads,
whether TensorFlow's oneDNN operations, relu's among them, are on)
plus "allocator": "pooled" or "malloc" (`tfkaf._peak`; under malloc, times
include the page faults of freshly mapped output buffers, a constant that
shrinks every ratio towards 1, so `tfkaf bench` asks for the pooled one).
CPU records of the fused op add "floor_ms", the estimated compute floor
(`_floor`; how it was counted in "floor_basis"), and "floor_fraction" =
floor_ms / ms, the fraction of it reached.

Memory: the composite baselines expand x D-fold (2D-KAF: D*D/2-fold). Before
running one, its peak is estimated from that expansion; a baseline that would
not fit in the memory budget (`max_memory`, default half of the available
memory, at most 8 GiB) is skipped, and its record says so in `skipped`
instead of `ms`. The fused ops and relu always run.
"""

import dataclasses
import statistics
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tfkaf import _floor
from tfkaf import _machine
from tfkaf import _memory
from tfkaf import _peak
from tfkaf import _xla
from tfkaf import ops
from tfkaf import reference

__all__ = ["BenchCase", "CASES", "ratio_table", "ratios", "run"]

VARIANTS = ("fused", "fused_xla", "composite", "composite_xla", "relu")
PASSES = ("forward", "forward_backward")
_ON_OFF = {True: "on", False: "off"}


@dataclasses.dataclass(frozen=True)
class BenchCase:
  """One op to benchmark: how to make its inputs and call both forms."""
  op: str
  x_shape: tuple
  param_shape: tuple  # alpha / coefficients
  fused: Callable
  composite: Callable
  param_scale: float = 0.3
  expansion: float = 1.0  # floats per element of x in the composite form

  def composite_bytes(self, pass_name):
    """Estimated peak memory of the composite form of one pass."""
    elements = float(np.prod(self.x_shape)) * self.expansion
    return int(elements * 4 * _COMPOSITE_PEAK_FACTOR[pass_name])


# Peak memory of a composite pass in units of its largest [..., C, D]
# intermediate (float32). Measured with `peak_mb` on TF 2.21 CPU: 5.0 (KAF)
# and 6.0 (2D-KAF) for forward+backward; with margin for the allocator.
_COMPOSITE_PEAK_FACTOR = {"forward": 3.5, "forward_backward": 7.5}


def _kaf_case(quick):
  n = 512 if quick else 4096
  return BenchCase("kaf", (n, 1024), (1024, 20),
                   lambda x, a: ops.kaf(x, a),
                   lambda x, a: reference.kaf(x, a), expansion=20)


def _kaf2d_case(quick):
  n = 512 if quick else 4096
  return BenchCase("kaf2d", (n, 2048), (1024, 100),
                   lambda x, a: ops.kaf2d(x, a),
                   lambda x, a: reference.kaf2d(x, a), expansion=50)


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


def _runnable(case, pass_name, budget):
  """{variant: None (runs) or the reason it is skipped}."""
  reasons = {}
  for variant in VARIANTS:
    reasons[variant] = None
    if variant == "fused_xla" and not _xla.fused_available():
      reasons[variant] = ("the fused op does not run inside XLA here "
                          "(tfkaf._xla)")
    if variant.startswith("composite"):
      need = case.composite_bytes(pass_name)
      if need > budget:
        reasons[variant] = (f"needs ~{_memory.format_size(need)}, over the "
                            f"{_memory.format_size(budget)} budget")
  return reasons


def _time_interleaved(fns, x, param, repeats):
  """{variant: [ms per repetition]}, repetitions interleaved so that drift
  hits all alike; relu (when timed) runs first in each repetition."""
  order = sorted(fns, key=lambda variant: variant != "relu")
  for fn in fns.values():  # warm-up: tracing and compilation
    _block(fn(x, param))
    _block(fn(x, param))
  times = {variant: [] for variant in order}
  for _ in range(repeats):
    for variant in order:
      start = time.perf_counter()
      _block(fns[variant](x, param))
      times[variant].append((time.perf_counter() - start) * 1e3)
  return times


def _paired_ratios(times, variant):
  """Per-repetition times of `variant` over relu's in the same repetition."""
  return [t / r for t, r in zip(times[variant], times["relu"])]


def _bench_pass(case, pass_name, x, param, repeats, peak, budget, log,
                floor=None):
  """Times one pass of every variant; `floor` (_floor.estimate, CPU only)
  goes into the fused records (in and out of XLA) with its fraction."""
  applies = {"fused": case.fused, "fused_xla": case.fused,
             "composite": case.composite, "composite_xla": case.composite,
             "relu": _relu}
  skipped = _runnable(case, pass_name, budget)
  fns = {variant: _make_fn(applies[variant], pass_name,
                           variant.endswith("_xla"))
         for variant in VARIANTS if skipped[variant] is None}
  times = _time_interleaved(fns, x, param, repeats)
  records = []
  for variant in VARIANTS:
    record = {"op": case.op, "variant": variant, "pass": pass_name,
              "shape": list(case.x_shape)}
    if skipped[variant]:
      record["skipped"] = skipped[variant]
      log(f"{case.op:14s} {pass_name:17s} {variant:14s} skipped: "
          f"{skipped[variant]}")
      records.append(record)
      continue
    record["ms"] = statistics.median(times[variant])
    paired = _paired_ratios(times, variant)
    record["relu_ratio"] = statistics.median(paired)
    record["relu_ratio_range"] = [min(paired), max(paired)]
    floor_note = ""
    if variant in ("fused", "fused_xla") and floor:
      record.update(floor, floor_fraction=floor["floor_ms"] / record["ms"])
      floor_note = f" ({record['floor_fraction']:.0%} of the compute floor)"
    memory = ""
    if peak is not None and pass_name == "forward_backward":
      fn = fns[variant]
      peak_mb = peak.measure(lambda: _block(fn(x, param)))  # pylint: disable=cell-var-from-loop
      if peak_mb is not None:
        record["peak_mb"] = max(peak_mb, 0.01)
        memory = f" peak {record['peak_mb']:8.1f} MiB"
    records.append(record)
    low, high = record["relu_ratio_range"]
    pairs = (f" {record['relu_ratio']:6.2f}x relu ({low:.2f}-{high:.2f})"
             if variant != "relu" else "")
    log(f"{case.op:14s} {pass_name:17s} {variant:14s} "
        f"{record['ms']:9.2f} ms{pairs}{memory}{floor_note}")
  return records


def run(op_names=tuple(CASES), quick=False, repeats=None, device=None,
        max_memory=None, log=print):
  """Runs the benchmarks and returns a list of records (see module doc).

  Forward+backward records also carry `peak_mb`: the growth of peak memory
  during one training step of that variant (`_peak.peak_meter`).
  `max_memory` (bytes) bounds what a composite baseline may need.
  """
  repeats = repeats or (5 if quick else 15)
  device = device or "/CPU:0"
  budget = max_memory or _memory.default_budget()
  on_cpu = "CPU" in device.upper()
  peak = _peak.peak_meter(device)
  machine = dict(_machine.describe(), allocator=_peak.allocator(device))
  log(f"machine: {machine['cpu_model']}; CPU kernel path "
      f"{machine['cpu_path']} (features: "
      f"{', '.join(machine['cpu_features']) or 'none of avx2, fma, avx512f'}"
      f"); {machine['threads']} TensorFlow threads; {machine['allocator']} "
      f"allocator; oneDNN {_ON_OFF.get(machine['onednn'], 'unknown')}")
  if machine["allocator"] == "malloc" and on_cpu:
    log(f"note: times include page faults of fresh buffers; set "
        f"{_peak.POOLED_ALLOCATOR_ENV}=true before TensorFlow starts "
        "(`tfkaf bench` does) to time the ops alone")
  records = []
  for name in op_names:
    case = CASES[name](quick)
    rng = np.random.default_rng(0)
    with tf.device(device):
      x = tf.constant(rng.normal(0.0, 1.5, case.x_shape), tf.float32)
      param = tf.constant(
          rng.normal(0.0, case.param_scale, case.param_shape), tf.float32)
      for pass_name in PASSES:
        floor = on_cpu and _floor.estimate(
            case.op, pass_name, case.x_shape, case.param_shape,
            machine["cpu_path"], machine["threads"])
        records += _bench_pass(case, pass_name, x, param, repeats, peak,
                               budget, log, floor)
  return [dict(record, machine=machine) for record in records]


def ratios(records):
  """{(op, pass): {variant: relu_ratio}} from `run`'s timed records."""
  table = {}
  for record in records:
    if "ms" in record:
      table.setdefault((record["op"], record["pass"]), {})[
          record["variant"]] = record["relu_ratio"]
  return table


def ratio_table(records):
  """The ratios as text, one line per (op, pass); skipped baselines named."""
  skipped = {(r["op"], r["pass"], r["variant"]): r["skipped"]
             for r in records if "skipped" in r}
  lines = []
  for (op, pass_name), row in ratios(records).items():
    cells = [f"{variant}={ratio:6.2f}x" for variant, ratio in row.items()]
    cells += [f"{variant}=skipped ({reason})"
              for (o, p, variant), reason in skipped.items()
              if (o, p) == (op, pass_name)]
    lines.append(f"{op:14s} {pass_name:17s} " + "  ".join(cells)
                 + "   (time / relu time, median of pairs)")
  return "\n".join(lines)


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  print(ratio_table(run(sys.argv[1:] or tuple(CASES))))
