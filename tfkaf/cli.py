"""The `tfkaf` command (also `python -m tfkaf`).

    tfkaf demo  [--quick] [--out DIR] [--strategy none|mirrored] [--seeds N]
                [--jobs N] [--write-docs PATH]
    tfkaf bench [--quick] [--json PATH] [--device cpu|gpu] [--ops kaf,...]
                [--max-memory SIZE]
    tfkaf plot  MODEL.keras [--out DIR]
    tfkaf info
    tfkaf export MODEL.keras OUT [--format tf_saved_model|litert|onnx]

`tfkaf --help` lists the sub-commands, `tfkaf SUBCOMMAND --help` their
flags. The console script starts in `_tfkaf_cli`, which keeps TensorFlow's
start-up log lines off the terminal unless `--verbose` is given. A user mistake (unknown flag, missing file, missing
optional package) ends in one line that says what to do, exit status 2 (usage)
or 1 (anything else), never a traceback.
"""

import argparse
import importlib.util
import json
import os
import sys

__all__ = ["COMMANDS", "CommandError", "main", "run"]

# Sub-command -> one line of help, in the order `tfkaf --help` lists them.
COMMANDS = {
    "demo": "train ReLU, KAF, 2D-KAF and spline nets on MNIST-1D, with plots",
    "bench": "time the fused ops against composite TF, XLA and tf.nn.relu",
    "plot": "plot the learned activations of a saved .keras model",
    "info": "show how the op plugin was built, and the devices (JSON)",
    "export": "export a saved .keras model to run without tfkaf (SavedModel, "
              "LiteRT, ONNX), checked in its runtime",
}

# Optional packages per sub-command: (module, pip name, extra).
_NEEDS = {
    "demo": (("mnist1d", "mnist1d", "demo"),
             ("matplotlib", "matplotlib", "demo")),
    "plot": (("matplotlib", "matplotlib", "plot"),),
}


class CommandError(Exception):
  """A user-facing failure: printed as one line, exit status 1."""


_MORE = "`tfkaf COMMAND --help` lists a command's flags."


def _command_list():
  width = max(len(name) for name in COMMANDS)
  lines = ["commands:"] + [f"  {name:{width}s}  {text}"
                           for name, text in COMMANDS.items()]
  return "\n".join(lines + [_MORE]) + "\n"


class _Parser(argparse.ArgumentParser):
  """argparse with a one-line error followed by the list of sub-commands."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n{_command_list()}")


def _memory_size(text):
  """'8G', '512MiB', '4' (GiB) or '50%' (of available memory) -> bytes."""
  from tfkaf import _memory  # pylint: disable=g-import-not-at-top

  try:
    return _memory.parse_size(text)
  except ValueError as error:
    raise argparse.ArgumentTypeError(str(error)) from None


def _subparser(commands, name, common):
  return commands.add_parser(name, parents=[common], help=COMMANDS[name],
                             description=COMMANDS[name])


def _add_demo(commands, common):
  parser = _subparser(commands, "demo", common)
  parser.add_argument("--quick", action="store_true",
                      help="small, fast run (MLP only, equal-parameter rows, "
                           "few steps, 1 seed)")
  parser.add_argument("--out", default="tfkaf_out", metavar="DIR",
                      help="directory for the table, plots and model "
                           "(default: %(default)s)")
  parser.add_argument("--strategy", default="none",
                      choices=("none", "mirrored"),
                      help="tf.distribute strategy to train under "
                           "(default: %(default)s)")
  parser.add_argument("--seeds", type=int, default=None, metavar="N",
                      help="seeds (training runs) per model; the table shows "
                           "mean and std over them and tests each variant "
                           "against ReLU (default: 3, or 1 with --quick)")
  parser.add_argument("--write-docs", default=None, metavar="PATH",
                      help="also write the table, verdicts, recipe and plots "
                           "as Markdown to PATH (e.g. docs/results.md), "
                           "images beside it (default: not written)")
  parser.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="training runs at a time, each in its own "
                           "single-threaded process; 0 trains in this process"
                           " (default: the CPU cores, at most 4)")


def _add_bench(commands, common):
  from tfkaf import _memory  # pylint: disable=g-import-not-at-top

  parser = _subparser(commands, "bench", common)
  parser.add_argument("--quick", action="store_true",
                      help="small tensors, few repetitions")
  parser.add_argument("--json", metavar="PATH",
                      help="also write the records to this JSON file")
  parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                      help="device to run on (default: %(default)s)")
  parser.add_argument("--ops", default="kaf,kaf2d,linear_spline",
                      metavar="LIST",
                      help="comma-separated ops to benchmark "
                           "(default: %(default)s)")
  parser.add_argument(
      "--max-memory", type=_memory_size, default=None, metavar="SIZE",
      help="memory a baseline may need, e.g. 6G, 512M or 50%% (of available "
           "memory); a composite baseline estimated to need more is skipped "
           f"(default: {_memory.DEFAULT_BUDGET_TEXT})")


def _add_plot(commands, common):
  parser = _subparser(commands, "plot", common)
  parser.add_argument("model", metavar="MODEL.keras",
                      help="a model saved with model.save(...)")
  parser.add_argument("--out", default="tfkaf_out", metavar="DIR",
                      help="directory for the plots (default: %(default)s)")


def _add_info(commands, common):
  _subparser(commands, "info", common)


def _add_export(commands, common):
  from tfkaf import _export  # pylint: disable=g-import-not-at-top

  parser = _subparser(commands, "export", common)
  parser.add_argument("model", metavar="MODEL.keras",
                      help="a model saved with model.save(...)")
  parser.add_argument("out", metavar="OUT",
                      help="what to write: a folder (tf_saved_model), a "
                           ".tflite or an .onnx file")
  parser.add_argument("--format", default="tf_saved_model",
                      choices=_export.FORMATS,
                      help="the artefact's format (default: %(default)s)")


def build_parser():
  """The command's argument parser (sub-commands with their flags)."""
  # --verbose is accepted before and after the sub-command; the sub-command's
  # copy must not reset a value given before it, hence SUPPRESS there.
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--verbose", action="store_true",
                      default=argparse.SUPPRESS,
                      help="show TensorFlow's log lines")
  parser = _Parser(
      prog="tfkaf", parents=[common],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description="tfkaf: trainable activation functions for "
                  "TensorFlow/Keras.",
      epilog=_MORE)
  commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                   parser_class=_Parser)
  for add in (_add_demo, _add_bench, _add_plot, _add_info, _add_export):
    add(commands, common)
  parser.set_defaults(verbose=False)
  return parser


def _require(command):
  missing = [(module, package, extra)
             for module, package, extra in _NEEDS.get(command, ())
             if importlib.util.find_spec(module) is None]
  if missing:
    names = ", ".join(package for _, package, _ in missing)
    extra = missing[0][2]
    raise CommandError(
        f"`tfkaf {command}` needs {names}, which is not installed: "
        f"pip install \"tfkaf[{extra}]\" (from a source tree: pip install "
        f"--no-build-isolation \".[{extra}]\")")


def _info(unused_args):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top

  from tfkaf import _machine  # pylint: disable=g-import-not-at-top

  info = tfkaf.build_info()
  info["devices"] = [d.name for d in tf.config.list_logical_devices()]
  info["machine"] = _machine.describe()
  print(json.dumps(info, indent=2))
  return 0


def _bench(args):
  from tfkaf import benchmark  # pylint: disable=g-import-not-at-top

  op_names = [name.strip() for name in args.ops.split(",") if name.strip()]
  unknown = sorted(set(op_names) - set(benchmark.CASES))
  if unknown or not op_names:
    raise CommandError(
        f"unknown op(s) for --ops: {', '.join(unknown) or '(none given)'}; "
        f"choose from {', '.join(benchmark.CASES)}")
  device = "/GPU:0" if args.device == "gpu" else "/CPU:0"
  records = benchmark.run(op_names, quick=args.quick, device=device,
                          max_memory=args.max_memory)
  print()
  print(benchmark.ratio_table(records))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)
    print(f"wrote {args.json}")
  return 0


def _demo(args):
  from tfkaf import demo  # pylint: disable=g-import-not-at-top

  for flag, value, least in (("--seeds", args.seeds, 1),
                             ("--jobs", args.jobs, 0)):
    if value is not None and value < least:
      raise CommandError(f"{flag} must be at least {least}, got {value}")
  return demo.run(out_dir=args.out, quick=args.quick, strategy=args.strategy,
                  seeds=args.seeds, write_docs_to=args.write_docs,
                  jobs=args.jobs)


def _plot(args):
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  if not os.path.exists(args.model):
    raise CommandError(f"no model file at {args.model}")
  for path in plot.activations_from_file(args.model, args.out):
    print(path)
  return 0


def _export_model(args):
  from tfkaf import _export  # pylint: disable=g-import-not-at-top

  if not os.path.exists(args.model):
    raise CommandError(f"no model file at {args.model}")
  try:
    result = _export.export(args.model, args.out, format=args.format)
  except (_export.MissingExportPackageError,
          _export.ExportVerificationError) as error:
    raise CommandError(str(error)) from None
  print(f"wrote {result.path} ({result.format}, {result.size_bytes} bytes); "
        f"outputs match the Keras model within {result.max_abs_diff:.3g} "
        f"(absolute) on a batch of {result.batch_size}")
  return 0


_HANDLERS = {"demo": _demo, "bench": _bench, "plot": _plot, "info": _info,
             "export": _export_model}


def prepare_process(argv):
  """What a command needs before TensorFlow starts its devices (the launcher
  calls this first): `bench` times the ops with TensorFlow's pooled CPU
  allocator (tfkaf._peak says why)."""
  command = next((arg for arg in argv if not arg.startswith("-")), None)
  if command == "bench":
    from tfkaf import _peak  # pylint: disable=g-import-not-at-top

    _peak.use_pooled_allocator()


def main(argv=None):
  """Runs the command line `argv` (without the program name); returns status."""
  prepare_process(sys.argv[1:] if argv is None else argv)
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.command is None:  # `tfkaf` alone: the list, as a usage error
    parser.print_help()
    return 2
  try:
    _require(args.command)
    if not args.verbose:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.get_logger().setLevel("ERROR")
    return _HANDLERS[args.command](args)
  except CommandError as error:
    print(f"tfkaf {args.command}: error: {error}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print(f"tfkaf {args.command}: interrupted", file=sys.stderr)
    return 130


def run():
  """Console-script entry point."""
  sys.exit(main(sys.argv[1:]))
