"""Latency and size of exported tfkaf models in TF, LiteRT and ONNX Runtime.

    python tools/bench_export.py [--repeats N] [--threads T] [--json OUT]

Two models, each with three activations: an MLP (Dense 40->100, act, ->100,
act, ->10) and a small 1D CNN (Conv1D 8->32 k5, act, Conv1D 32->32 k5, act,
global average pooling, Dense ->10) on [64, 8] inputs, with act = tfkaf KAF
(D=20, gaussian), tfkaf DeepBSpline (51 knots) or ReLU. Each is exported with
`tfkaf.export` (portable: standard ops only) to a SavedModel, a LiteRT model
and an ONNX model, and timed per batch of 1 and of 64 in its runtime: TF
(`tf.saved_model.load(...).serve`), the ai-edge-litert interpreter and ONNX
Runtime (CPU), each with T threads (default 1). "tf_fused" is the default
SavedModel export (the fused custom ops, loaded here where tfkaf is
imported), for comparison.

The table gives the latency (the lowest of 5 block medians), the ratio to
the ReLU model of the same architecture in the same runtime, and each
artefact's size. Needs the `export` extra (pip install "tfkaf[export]").
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

_THREADS_FLAG = "--threads"


def _threads_from_argv():
  if _THREADS_FLAG in sys.argv:
    return int(sys.argv[sys.argv.index(_THREADS_FLAG) + 1])
  return 1


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

tf.config.threading.set_intra_op_parallelism_threads(_threads_from_argv())
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import tfkaf  # pylint: disable=g-import-not-at-top,wrong-import-position

ACTIVATIONS = {
    "kaf": lambda: tfkaf.layers.KAF(D=20),
    "deepbspline": lambda: tfkaf.layers.DeepBSpline(size=51),
    "relu": lambda: keras.layers.ReLU(),
}
RUNTIMES = ("tf", "tf_fused", "litert", "onnx")
BATCHES = (1, 64)


def mlp(act):
  inputs = keras.Input((40,))
  h = ACTIVATIONS[act]()(keras.layers.Dense(100)(inputs))
  h = ACTIVATIONS[act]()(keras.layers.Dense(100)(h))
  return keras.Model(inputs, keras.layers.Dense(10)(h))


def cnn(act):
  inputs = keras.Input((64, 8))
  h = ACTIVATIONS[act]()(keras.layers.Conv1D(32, 5, padding="same")(inputs))
  h = ACTIVATIONS[act]()(keras.layers.Conv1D(32, 5, padding="same")(h))
  h = keras.layers.GlobalAveragePooling1D()(h)
  return keras.Model(inputs, keras.layers.Dense(10)(h))


MODELS = {"mlp": mlp, "cnn1d": cnn}


def _tf_runner(path):
  loaded = tf.saved_model.load(path)
  return lambda x: loaded.serve(x).numpy(), loaded


def _litert_runner(path, batch, threads):
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

  interpreter = litert.Interpreter(model_path=path, num_threads=threads)
  index = interpreter.get_input_details()[0]["index"]
  shape = list(interpreter.get_input_details()[0]["shape"])
  interpreter.resize_tensor_input(index, [batch] + shape[1:])
  interpreter.allocate_tensors()
  output = interpreter.get_output_details()[0]["index"]

  def run(x):
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(output)
  return run, interpreter


def _onnx_runner(path, threads):
  import onnxruntime  # pylint: disable=g-import-not-at-top

  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  session = onnxruntime.InferenceSession(
      path, options, providers=["CPUExecutionProvider"])
  name = session.get_inputs()[0].name
  return lambda x: session.run(None, {name: x})[0], session


def _median_ms(run, x, repeats, blocks=5):
  """The lowest of `blocks` medians of repeats / blocks timed calls, in ms
  (the machine may be shared: the quietest block is the best estimate)."""
  for _ in range(max(3, repeats // 10)):  # warm-up
    run(x)
  medians = []
  for _ in range(blocks):
    times = []
    for _ in range(max(1, repeats // blocks)):
      start = time.perf_counter()
      run(x)
      times.append(time.perf_counter() - start)
    medians.append(statistics.median(times))
  return 1e3 * min(medians)


def export_all(model, directory):
  """Exports `model` to every runtime; returns {runtime: path}."""
  paths = {"tf": os.path.join(directory, "portable_sm"),
           "tf_fused": os.path.join(directory, "fused_sm"),
           "litert": os.path.join(directory, "model.tflite"),
           "onnx": os.path.join(directory, "model.onnx")}
  for runtime in ("tf", "litert", "onnx"):
    format_ = "tf_saved_model" if runtime == "tf" else runtime
    tfkaf.export(model, paths[runtime], format=format_)
  model.export(paths["tf_fused"], verbose=False)
  return paths


def time_artefacts(paths, input_shape, repeats, threads):
  """{(runtime, batch): ms} for each runtime and batch size."""
  rng = np.random.default_rng(0)
  timings = {}
  for batch in BATCHES:
    x = rng.normal(0, 1, (batch,) + input_shape).astype(np.float32)
    n = repeats if batch == 1 else max(20, repeats // 4)
    for runtime in RUNTIMES:
      if runtime in ("tf", "tf_fused"):
        run, _ = _tf_runner(paths[runtime])
      elif runtime == "litert":
        run, _ = _litert_runner(paths[runtime], batch, threads)
      else:
        run, _ = _onnx_runner(paths[runtime], threads)
      timings[(runtime, batch)] = _median_ms(run, x, n)
  return timings


def _size(path):
  if os.path.isdir(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
  return os.path.getsize(path)


def run(repeats, threads):
  """All records: {model, act, runtime, batch, ms, bytes}."""
  records = []
  for model_name, build in MODELS.items():
    for act in ACTIVATIONS:
      model = build(act)
      input_shape = tuple(model.inputs[0].shape[1:])
      with tempfile.TemporaryDirectory() as directory:
        paths = export_all(model, directory)
        timings = time_artefacts(paths, input_shape, repeats, threads)
        for (runtime, batch), ms in timings.items():
          records.append({"model": model_name, "act": act,
                          "runtime": runtime, "batch": batch, "ms": ms,
                          "bytes": _size(paths[runtime])})
      print(f"{model_name}/{act} done", file=sys.stderr, flush=True)
  return records


def table(records):
  """Markdown: ms and ratio to ReLU per batch, and size, per runtime."""
  index = {(r["model"], r["act"], r["runtime"], r["batch"]): r
           for r in records}
  lines = ["| model | act | runtime | batch 1: ms (x ReLU) | "
           "batch 64: ms (x ReLU) | size KiB (x ReLU) |",
           "| --- | --- | --- | --- | --- | --- |"]
  for model_name in MODELS:
    for act in ACTIVATIONS:
      for runtime in RUNTIMES:
        cells = []
        for batch in BATCHES:
          rec = index[(model_name, act, runtime, batch)]
          base = index[(model_name, "relu", runtime, batch)]
          cells.append(f"{rec['ms']:.3f} ({rec['ms'] / base['ms']:.2f})")
        size = index[(model_name, act, runtime, 1)]["bytes"]
        base_size = index[(model_name, "relu", runtime, 1)]["bytes"]
        cells.append(f"{size / 1024:.1f} ({size / base_size:.2f})")
        lines.append(f"| {model_name} | {act} | {runtime} | "
                     + " | ".join(cells) + " |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=300,
                      help="timed calls per batch-1 case (batch 64: 1/4)")
  parser.add_argument(_THREADS_FLAG, type=int, default=1,
                      help="threads of every runtime (default 1)")
  parser.add_argument("--json", help="also write the records here")
  args = parser.parse_args()
  records = run(args.repeats, args.threads)
  print(table(records))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)


if __name__ == "__main__":
  main()
