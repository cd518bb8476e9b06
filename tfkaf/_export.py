"""`tfkaf.export`: Keras's export formats, portable and verified.

`export(model, path, format)` calls Keras's own `model.export` inside
`tfkaf.portable()`, so the artefact names no tfkaf op, then loads it in its
own runtime (TensorFlow without the plugin's ops for a SavedModel, the LiteRT
interpreter, ONNX Runtime), runs it on a small batch and compares with the
Keras model (which runs the fused ops), raising if they differ.

LiteRT and ONNX need the optional packages of the `export` extra
(`pip install "tfkaf[export]"`: ai-edge-litert, onnx, tf2onnx, onnxruntime);
a missing one raises `MissingExportPackageError` naming it.
"""

import dataclasses
import importlib
import os
import re

import keras
import numpy as np
import tensorflow as tf

from tfkaf import _portable

__all__ = ["ExportResult", "ExportVerificationError", "FORMATS",
           "MissingExportPackageError", "export", "run_artefact",
           "verify_export"]

FORMATS = ("tf_saved_model", "litert", "onnx")

# Python modules each format needs (to verify; ONNX also to convert), and
# the distribution that provides each.
_NEEDS = {
    "tf_saved_model": (),
    "litert": (("ai_edge_litert.interpreter", "ai-edge-litert"),),
    "onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx"),
             ("onnxruntime", "onnxruntime")),
}

_DEFAULT_TOLERANCE = 1e-4  # float32 models
_DEFAULT_TOLERANCE_16BIT = 1e-2  # models that compute in float16 / bfloat16
_SAMPLE_SEED = 20240607
_SAMPLE_STDDEV = 3.0


class MissingExportPackageError(ImportError):
  """An optional package the export format needs is not installed."""


class ExportVerificationError(RuntimeError):
  """The exported artefact does not reproduce the Keras model."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
  """What `export` wrote and how well it matches the Keras model.

  Attributes:
    path: the artefact (a directory for tf_saved_model).
    format: "tf_saved_model", "litert" or "onnx".
    size_bytes: the artefact's size on disk.
    max_abs_diff: max |artefact - Keras| over the verification batch (None
      when not verified).
    max_rel_diff: max |artefact - Keras| / max(|Keras|, 1): relative for
      outputs beyond 1 in magnitude, absolute below (None when not
      verified).
    batch_size: size of the verification batch (0 when not verified).
  """

  path: str
  format: str
  size_bytes: int
  max_abs_diff: float = None
  max_rel_diff: float = None
  batch_size: int = 0


def require_packages(format):  # pylint: disable=redefined-builtin
  """Raises MissingExportPackageError unless `format`'s packages import."""
  _check_format(format)
  for module, distribution in _NEEDS[format]:
    try:
      importlib.import_module(module)
    except ImportError as error:
      raise MissingExportPackageError(
          f"exporting to {format!r} needs the package {distribution!r}, "
          f"which is not installed ({error}): pip install \"tfkaf[export]\"",
          name=module) from error


def _check_format(format):  # pylint: disable=redefined-builtin
  if format not in FORMATS:
    raise ValueError(f"unknown export format {format!r}: expected one of "
                     f"{', '.join(repr(f) for f in FORMATS)}")


def export(model, path, format="tf_saved_model", *, verify=True,  # pylint: disable=redefined-builtin
           sample=None, batch_size=4, rtol=None, atol=None, verbose=False,
           **kwargs):
  """Exports a Keras model with tfkaf layers in a format that needs no tfkaf.

  Runs `model.export(path, format=format, **kwargs)` inside
  `tfkaf.portable()`, then (with `verify=True`) `verify_export`.

  LiteRT's builtin kernels compute in float32 (float16 MatMul, Greater, ...
  exist only as Flex ops), so for "litert" a model that computes in float16
  or bfloat16 (mixed precision) is exported as its float32 twin: the same
  layers and weights with a float32 policy. For a smaller file, pass the
  converter's own settings, e.g. `optimizations=[tf.lite.Optimize.DEFAULT]`
  (and tolerances that allow for the quantization).

  Args:
    model: a Keras model, or the path of a `.keras` file to load.
    path: where to write: a directory for "tf_saved_model", a file ending
      in ".tflite" for "litert", a file (usually ".onnx") for "onnx".
    format: "tf_saved_model" (default), "litert" or "onnx".
    verify: load the artefact in its runtime and compare with the model.
    sample: the verification input (an array, or a list of arrays for a
      model with several inputs); default: `batch_size` draws from
      N(0, 3^2) (covering the usual KAF dictionary and spline grid and
      beyond) in the shape of the model's inputs.
    batch_size: the batch of the default sample.
    rtol, atol: verification tolerances; default 1e-4 (1e-2 for a model
      that computes in float16 or bfloat16).
    verbose: let Keras and the converters print their progress.
    **kwargs: passed to `model.export` (e.g. `input_signature`).

  Returns:
    An `ExportResult` (path, format, size, max abs / rel difference).

  Raises:
    MissingExportPackageError: a package of the `export` extra is missing.
    ExportVerificationError: the artefact does not reproduce the model, or
      a SavedModel still names a tfkaf op (the artefact stays on disk).
    ValueError: unknown format.
  """
  require_packages(format)
  if isinstance(model, (str, os.PathLike)):
    model = keras.saving.load_model(model)
  path = os.fspath(path)
  inputs = _sample_inputs(model, sample, batch_size, required=verify)
  if inputs is not None:
    _call(model, inputs)  # Keras's ONNX export wants a model once called
  exported = model
  if format == "litert" and _computes_in_16_bits(model):
    exported = float32_twin(model)
  with _portable.portable():
    exported.export(path, format=format, verbose=verbose, **kwargs)
  if not verify:
    return ExportResult(path, format, _size(path))
  return verify_export(model, path, format, sample=inputs, rtol=rtol,
                       atol=atol)


def verify_export(model, path, format, *, sample=None, batch_size=4,  # pylint: disable=redefined-builtin
                  rtol=None, atol=None):
  """Runs an exported artefact in its runtime and compares with `model`.

  "tf_saved_model" is also checked to name no `Tfkaf>` op (so that it loads
  where tfkaf is not installed); "litert" runs in the ai-edge-litert
  interpreter (which has no Flex / Select TF ops); "onnx" in ONNX Runtime on
  the CPU. Arguments as for `export`.

  Returns:
    An `ExportResult`.

  Raises:
    ExportVerificationError: outputs differ beyond atol + rtol * |Keras|
      anywhere, differ in number or shape, or a SavedModel names a tfkaf op.
  """
  require_packages(format)
  path = os.fspath(path)
  inputs = _sample_inputs(model, sample, batch_size)
  expected = [np.asarray(y) for y in tf.nest.flatten(_call(model, inputs))]
  if format == "tf_saved_model":
    _check_no_tfkaf_ops(path)
  actual = _RUNNERS[format](path, inputs)
  default = (_DEFAULT_TOLERANCE_16BIT if _computes_in_16_bits(model)
             else _DEFAULT_TOLERANCE)
  rtol = default if rtol is None else rtol
  atol = default if atol is None else atol
  abs_diff, rel_diff = _compare(expected, actual, rtol, atol, format)
  return ExportResult(path, format, _size(path), abs_diff, rel_diff,
                      int(inputs[0].shape[0]))


def _call(model, inputs):
  return model(inputs[0] if len(inputs) == 1 else inputs, training=False)


def _sample_inputs(model, sample, batch_size, required=True):
  """The verification inputs, as a list of arrays (one per model input);
  None if the model has no symbolic inputs, no sample is given and
  `required` is False."""
  if sample is not None:
    sample = sample if isinstance(sample, (list, tuple)) else [sample]
    return [np.asarray(s) for s in sample]
  specs = getattr(model, "inputs", None)
  if not specs and not required:
    return None
  if not specs:
    raise ValueError(
        "the model has no symbolic inputs (a subclassed model never built "
        "on keras.Input): pass `sample`, an input batch to verify with")
  rng = np.random.default_rng(_SAMPLE_SEED)
  arrays = []
  for spec in specs:
    shape = [batch_size] + [8 if d is None else int(d)
                            for d in spec.shape[1:]]
    dtype = keras.backend.standardize_dtype(spec.dtype)
    arrays.append((_SAMPLE_STDDEV * rng.standard_normal(shape)).astype(dtype))
  return arrays


def _computes_in_16_bits(model):
  return any(keras.backend.standardize_dtype(layer.compute_dtype)
             in ("float16", "bfloat16") for layer in _layers(model))


def float32_twin(model):
  """A copy of a functional or Sequential model computing in float32.

  Every layer is rebuilt from its config with the "float32" dtype policy
  and gets the model's weights (tfkaf's layers and Keras's keep float32
  variables under mixed precision, so nothing is rounded).
  """
  def clone(layer):
    config = layer.get_config()
    config["dtype"] = "float32"
    return layer.__class__.from_config(config)

  try:
    twin = keras.models.clone_model(model, clone_function=clone)
  except ValueError as error:
    raise ValueError(
        "a model that computes in float16 / bfloat16 goes to LiteRT as a "
        "float32 copy, which needs a functional or Sequential model; build "
        "this one with a float32 policy to export it") from error
  twin.set_weights(model.get_weights())
  return twin


def _layers(model):
  flatten = getattr(model, "_flatten_layers", None)
  return list(flatten()) if flatten else [model]


def _compare(expected, actual, rtol, atol, format):  # pylint: disable=redefined-builtin
  """(max abs, max relative difference); raises beyond tolerance."""
  if len(expected) != len(actual):
    raise ExportVerificationError(
        f"the {format} artefact returns {len(actual)} outputs, the Keras "
        f"model {len(expected)}")
  abs_diff = rel_diff = 0.0
  for i, (want, got) in enumerate(zip(expected, actual)):
    want = want.astype(np.float64)
    got = np.asarray(got).astype(np.float64)
    if want.shape != got.shape:
      raise ExportVerificationError(
          f"output {i} of the {format} artefact has shape {got.shape}, the "
          f"Keras model's {want.shape}")
    error = np.abs(got - want)
    error = np.where(np.isnan(want) & np.isnan(got), 0.0, error)
    if np.any(~(error <= atol + rtol * np.abs(want))):
      worst = int(np.nanargmax(np.where(np.isnan(error), np.inf, error)))
      raise ExportVerificationError(
          f"output {i} of the {format} artefact differs from the Keras model "
          f"beyond atol={atol:g} + rtol={rtol:g} * |Keras|: max abs "
          f"difference {np.nanmax(error):.3g} (Keras "
          f"{want.flat[worst]:.7g}, artefact {got.flat[worst]:.7g})")
    abs_diff = max(abs_diff, float(np.max(error, initial=0.0)))
    rel_diff = max(rel_diff, float(np.max(
        error / np.maximum(np.abs(want), 1.0), initial=0.0)))
  return abs_diff, rel_diff


def _size(path):
  if os.path.isdir(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
  return os.path.getsize(path)


# ---------------------------------------------------------------------------
# Runtimes.


def saved_model_op_types(path):
  """The op types a SavedModel's graph and function library use (a set)."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import

  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    saved.ParseFromString(f.read())
  types = set()
  for meta_graph in saved.meta_graphs:
    types.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      types.update(node.op for node in function.node_def)
  return types


def _check_no_tfkaf_ops(path):
  found = sorted(op for op in saved_model_op_types(path)
                 if op.startswith("Tfkaf>"))
  if found:
    raise ExportVerificationError(
        f"the SavedModel at {path} uses tfkaf's ops {found}: it would not "
        "load without tfkaf (was it exported outside tfkaf.portable()?)")


def _run_saved_model(path, inputs):
  loaded = tf.saved_model.load(path)  # keeps the variables alive
  tensors = [tf.constant(x) for x in inputs]
  outputs = loaded.serve(tensors[0] if len(tensors) == 1 else tensors)
  return [np.asarray(y) for y in tf.nest.flatten(outputs)]


def _natural_key(name):
  return [int(part) if part.isdigit() else part
          for part in re.split(r"(\d+)", name)]


def _run_litert(path, inputs):
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

  runner = litert.Interpreter(model_path=path).get_signature_runner()
  names = sorted(runner.get_input_details(), key=_natural_key)
  if len(names) != len(inputs):
    raise ExportVerificationError(
        f"the LiteRT model takes {len(names)} inputs, the Keras model "
        f"{len(inputs)}")
  outputs = runner(**dict(zip(names, inputs)))
  return [outputs[name] for name in sorted(outputs, key=_natural_key)]


def _run_onnx(path, inputs):
  import onnxruntime  # pylint: disable=g-import-not-at-top

  session = onnxruntime.InferenceSession(
      path, providers=["CPUExecutionProvider"])
  feeds = {spec.name: x for spec, x in zip(session.get_inputs(), inputs)}
  return session.run(None, feeds)


_RUNNERS = {"tf_saved_model": _run_saved_model, "litert": _run_litert,
            "onnx": _run_onnx}


def run_artefact(path, format, inputs):  # pylint: disable=redefined-builtin
  """Runs an exported artefact in its own runtime; returns its outputs.

  `inputs`: one array per model input. Outputs: a list of arrays, in the
  order `verify_export` compares them.
  """
  require_packages(format)
  return _RUNNERS[format](os.fspath(path), [np.asarray(x) for x in inputs])
