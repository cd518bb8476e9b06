"""The `tfkaf` command (also `python -m tfkaf`).

    tfkaf demo  [--quick] [--out DIR] [--strategy none|mirrored]
    tfkaf bench [--quick] [--json PATH] [--device cpu|gpu] [--ops kaf,...]
    tfkaf plot  MODEL.keras --out DIR
    tfkaf info
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

__all__ = ["main", "run"]

COMMANDS = ("demo", "bench", "plot", "info")

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Small, fast version of the job.")
flags.DEFINE_string("out", "tfkaf_out", "Directory for plots, tables, models.")
flags.DEFINE_enum("strategy", "none", ["none", "mirrored"],
                  "demo: tf.distribute strategy to train under.")
flags.DEFINE_string("json", None, "bench: write the records to this path.")
flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"], "bench: device to run on.")
flags.DEFINE_list("ops", ["kaf", "kaf2d", "linear_spline"],
                  "bench: which ops to benchmark.")


def _info(unused_args):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top

  info = tfkaf.build_info()
  info["devices"] = [d.name for d in tf.config.list_logical_devices()]
  print(json.dumps(info, indent=2))
  return 0


def _bench(unused_args):
  from tfkaf import benchmark  # pylint: disable=g-import-not-at-top

  device = "/GPU:0" if FLAGS.device == "gpu" else "/CPU:0"
  unknown = sorted(set(FLAGS.ops) - set(benchmark.CASES))
  if unknown:
    raise app.UsageError(f"unknown op(s) for --ops: {', '.join(unknown)}; "
                         f"choose from {', '.join(benchmark.CASES)}")
  records = benchmark.run(FLAGS.ops, quick=FLAGS.quick, device=device)
  print()
  for (op, pass_name), row in benchmark.ratios(records).items():
    print(f"{op:14s} {pass_name:17s} " + "  ".join(
        f"{variant}={ratio:6.2f}x" for variant, ratio in row.items())
          + "   (time / relu time)")
  if FLAGS.json:
    with open(FLAGS.json, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)
    print(f"wrote {FLAGS.json}")
  return 0


def _demo(unused_args):
  from tfkaf import demo  # pylint: disable=g-import-not-at-top

  return demo.run(out_dir=FLAGS.out, quick=FLAGS.quick,
                  strategy=FLAGS.strategy)


def _plot(args):
  if len(args) != 1:
    raise app.UsageError("usage: tfkaf plot MODEL.keras --out DIR")
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  paths = plot.activations_from_file(args[0], FLAGS.out)
  for path in paths:
    print(path)
  return 0


def main(argv):
  args = argv[1:]
  if not args or args[0] not in COMMANDS:
    raise app.UsageError(
        f"usage: tfkaf {{{'|'.join(COMMANDS)}}} [flags]; see --helpfull")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel("WARNING")
  logging.set_verbosity(logging.WARNING)
  handler = {"demo": _demo, "bench": _bench, "plot": _plot, "info": _info}
  return handler[args[0]](args[1:])


def run():
  """Console-script entry point."""
  app.run(main, argv=sys.argv)
