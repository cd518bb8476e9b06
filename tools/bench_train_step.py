"""Time of one training step of the demo's networks, with and without XLA.

    python tools/bench_train_step.py [--batch N] [--steps N] [--json OUT]

For the demo's MLP and CNN (tfkaf.demo.models, the paper's widths) with
ReLU, KAF, 2D-KAF and spline activations, compiled with Adam and sparse
cross-entropy once with `jit_compile=False` and once with `jit_compile=True`
(the tfkaf ops then run as XLA custom calls), the median milliseconds of
`train_on_batch` on one batch of MNIST-1D-shaped random data (after two
warm-up steps), and the ratio of the XLA step to the plain one. Interleaved:
every repetition times all models in turn, so machine drift hits all alike.
TensorFlow's pooled CPU allocator is used, as in `tfkaf bench`
(tfkaf._peak: with malloc every step page-faults its fresh buffers).
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from tfkaf import _peak  # pylint: disable=g-import-not-at-top,wrong-import-position

_peak.use_pooled_allocator()
import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfkaf import _machine  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf.demo import models  # pylint: disable=g-import-not-at-top,wrong-import-position


def _compiled(architecture, variant, jit):
  keras.utils.set_random_seed(0)
  model = models.build_model(variant, architecture)
  model.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit)
  return model


def _time_all(steps_by_name, x, y, repeats):
  for step in steps_by_name.values():
    step(x, y)
    step(x, y)
  times = {name: [] for name in steps_by_name}
  for _ in range(repeats):
    for name, step in steps_by_name.items():
      start = time.perf_counter()
      step(x, y)
      times[name].append((time.perf_counter() - start) * 1e3)
  return {name: statistics.median(t) for name, t in times.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=100,
                      help="batch size (default 100, the demo's)")
  parser.add_argument("--steps", type=int, default=30,
                      help="timed steps per model (default 30)")
  parser.add_argument("--json", help="write the records to this file")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(args.batch, 40)).astype(np.float32)
  y = rng.integers(0, 10, size=args.batch)
  steps = {}
  for architecture in models.ARCHITECTURES:
    for variant in models.VARIANTS:
      for jit in (False, True):
        model = _compiled(architecture, variant, jit)
        steps[(architecture, variant, jit)] = model.train_on_batch
  ms = _time_all(steps, x, y, args.steps)
  machine = dict(_machine.describe(), allocator=_peak.allocator())
  print(f"machine: {machine['cpu_model']}, CPU path {machine['cpu_path']}, "
        f"{machine['threads']} threads; batch {args.batch}")
  print(f"{'model':14s} {'plain ms':>9s} {'xla ms':>9s} {'xla/plain':>9s}")
  records = []
  for architecture in models.ARCHITECTURES:
    for variant in models.VARIANTS:
      plain, xla = (ms[(architecture, variant, jit)] for jit in (False, True))
      print(f"{architecture + '_' + variant:14s} {plain:9.2f} {xla:9.2f} "
            f"{xla / plain:9.2f}")
      records.append({"model": f"{architecture}_{variant}",
                      "batch": args.batch, "plain_ms": plain, "xla_ms": xla,
                      "machine": machine})
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)


if __name__ == "__main__":
  main()
