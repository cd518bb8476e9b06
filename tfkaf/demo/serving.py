"""The demo's best model served: a SavedModel reloaded in a fresh process,
and portable LiteRT and ONNX copies checked in their own runtimes."""

import json
import os

import numpy as np

from tfkaf import _process


_SERVE_CHECK = """
import json, sys
import numpy as np
import tfkaf  # registers the ops the SavedModel needs
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
logits = served.serve(tf.constant(x))
print(json.dumps(np.argmax(logits.numpy(), axis=-1).tolist()))
"""


def serve_in_fresh_process(export_dir, x, out_dir):
  """Class predictions of a SavedModel reloaded in a fresh Python process.

  The process imports the same installed tfkaf as this one, whatever the
  working directory holds (see `tfkaf._process`).
  """
  inputs = os.path.abspath(os.path.join(out_dir, "serve_inputs.npy"))
  np.save(inputs, x)
  result = _process.run_python(
      _SERVE_CHECK, (os.path.abspath(export_dir), inputs))
  if result.returncode != 0:
    raise RuntimeError("reloading the SavedModel in a fresh process failed:\n"
                       + result.stderr[-4000:])
  return np.asarray(json.loads(result.stdout.strip().splitlines()[-1]))


def export_best(entries, models, data, out_dir, log):
  """Exports the seed-0 model of the row with the best mean final test
  accuracy (a serving demonstration: no result depends on this choice) and
  checks it in a fresh process."""
  config, _ = max(entries, key=lambda entry: np.mean(
      [r.test_accuracy for r in entry[1]]))
  model = models[(config.name, 0)]
  export_dir = os.path.join(out_dir, f"{config.name}_savedmodel")
  model.export(export_dir, verbose=False)
  x_test, y_test = data[2], data[3]
  in_process = np.argmax(model.predict(x_test, verbose=0), -1)
  served = serve_in_fresh_process(export_dir, x_test, out_dir)
  agreement = float(np.mean(served == in_process))
  log(f"best model {config.name} (seed 0) exported to {export_dir}; "
      f"reloaded in a fresh process: accuracy {np.mean(served == y_test):.4f}"
      f", predictions agree with the trained model on {agreement:.1%} of the "
      "test set")
  if agreement < 0.999:
    raise RuntimeError("the reloaded SavedModel disagrees with the model")
  export_portable(model, os.path.join(out_dir, config.name), x_test,
                  in_process, log)


def export_portable(model, stem, x, predictions, log=print):
  """LiteRT and ONNX copies of `model` that run without tfkaf.

  Each is exported inside `tfkaf.portable()`, checked against the model on
  `x` in its own runtime (`tfkaf.export`, logits within 1e-3 relative and
  absolute: a trained model's logits reach tens, and the runtimes sum in
  other orders; seen here: ~7e-5), and its class predictions compared with
  `predictions`. Without the export
  packages, says how to get them and goes on. Returns {format: agreement}.
  """
  from tfkaf import _export  # pylint: disable=g-import-not-at-top

  agreements = {}
  for fmt, suffix in (("litert", ".tflite"), ("onnx", ".onnx")):
    try:
      result = _export.export(model, stem + suffix, format=fmt, sample=x,
                              rtol=1e-3, atol=1e-3)
    except _export.MissingExportPackageError as error:
      log(f"portable {fmt} export skipped: {error}")
      continue
    logits = _export.run_artefact(result.path, fmt, [x])[0]
    agreements[fmt] = float(np.mean(np.argmax(logits, -1) == predictions))
    log(f"portable {fmt} export {result.path} ({result.size_bytes} bytes) "
        f"runs without tfkaf: logits within {result.max_abs_diff:.2g} of "
        f"the trained model, predictions agree on {agreements[fmt]:.1%} of "
        "the test set")
    if agreements[fmt] < 0.999:
      raise RuntimeError(f"the {fmt} export disagrees with the model")
  return agreements
