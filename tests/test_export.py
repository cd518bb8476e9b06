"""Tests of `tfkaf.portable()` and `tfkaf.export`.

Inside the scope every tfkaf op wrapper, layer and fixed activation traces to
standard TensorFlow ops, so Keras's own export formats work: a SavedModel
that loads where tfkaf cannot be imported, a LiteRT model that runs in the
ai-edge-litert interpreter (builtins only: no Flex ops), an ONNX model that
runs in ONNX Runtime. Outputs are compared with the Keras model (fused ops)
on inputs that reach KAF's tails and the spline's extrapolation. The LiteRT
and ONNX tests skip when the `export` extra's packages are not installed.
"""

import os
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkaf
from tfkaf import _export
from tfkaf import _portable
from tfkaf import activations
from tfkaf import layers
from tfkaf import ops

TOLERANCE = 1e-4
FORMATS = ("tf_saved_model", "litert", "onnx")
_FORMAT_MODULES = {"tf_saved_model": (), "litert": ("ai_edge_litert",),
                   "onnx": ("tf2onnx", "onnx", "onnxruntime")}
_FILE_NAMES = {"tf_saved_model": "saved_model", "litert": "model.tflite",
               "onnx": "model.onnx"}


def _require(format_):
  for module in _FORMAT_MODULES[format_]:
    pytest.importorskip(
        module, reason=f"{module} is not installed (the {format_} export "
        "needs it: pip install \"tfkaf[export]\")")


def _wide_inputs(shape, low=-8.0, high=8.0, seed=7):
  """A batch of `shape` spanning [low, high] (beyond the KAF dictionary and
  the spline grid), shuffled so that every row mixes large and small."""
  values = np.linspace(low, high, int(np.prod(shape)), dtype=np.float32)
  np.random.default_rng(seed).shuffle(values)
  return values.reshape(shape)


def _randomize(model, seed=3, stddev=0.5):
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    weight.assign(rng.normal(0.0, stddev, weight.shape).astype(np.float32))
  return model


def _op_types(fn, *specs):
  graph = tf.function(fn).get_concrete_function(*specs).graph.as_graph_def()
  types = {node.op for node in graph.node}
  for function in graph.library.function:
    types.update(node.op for node in function.node_def)
  return types


def _tfkaf_ops(types):
  return sorted(t for t in types if t.startswith("Tfkaf>"))


# --------------------------------------------------------------------------
# The scope
# --------------------------------------------------------------------------


def _spline_fn(x):
  coefficients = np.linspace(-1.0, 2.0, 6 * 5, dtype=np.float32)
  return ops.linear_spline(x, coefficients.reshape(6, 5), -1.0, 1.0)


def test_scope_switches_tracing_and_nests():
  spec = tf.TensorSpec([None, 6], tf.float32)
  assert _tfkaf_ops(_op_types(_spline_fn, spec)) == ["Tfkaf>LinearSpline"]
  assert not _portable.is_active()
  with tfkaf.portable():
    with tfkaf.portable():
      assert _portable.is_active()
    assert _portable.is_active()
    assert not _tfkaf_ops(_op_types(_spline_fn, spec))
  assert not _portable.is_active()
  assert _tfkaf_ops(_op_types(_spline_fn, spec)) == ["Tfkaf>LinearSpline"]


def test_scope_as_decorator_and_restored_after_exception():
  @tfkaf.portable()
  def traced():
    assert _portable.is_active()
    return _op_types(_spline_fn, tf.TensorSpec([None, 6], tf.float32))

  assert not _tfkaf_ops(traced())
  assert not _portable.is_active()
  with pytest.raises(RuntimeError, match="boom"):
    with tfkaf.portable():
      raise RuntimeError("boom")
  assert not _portable.is_active()
  with pytest.raises(RuntimeError, match="boom"):
    traced_raising = tfkaf.portable()(
        lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    traced_raising()
  assert not _portable.is_active()


def test_scope_is_per_thread():
  entered, release = threading.Event(), threading.Event()
  seen = {}

  def worker():
    with tfkaf.portable():
      seen["worker"] = _portable.is_active()
      entered.set()
      release.wait(30)

  thread = threading.Thread(target=worker)
  thread.start()
  try:
    assert entered.wait(30)
    assert not _portable.is_active()  # the other thread's scope
    types = _op_types(_spline_fn, tf.TensorSpec([None, 6], tf.float32))
    assert _tfkaf_ops(types) == ["Tfkaf>LinearSpline"]
  finally:
    release.set()
    thread.join(30)
  assert seen["worker"]


# --------------------------------------------------------------------------
# The portable forms against the fused ops
# --------------------------------------------------------------------------


def _portable_call(fn, x):
  with tfkaf.portable():
    traced = tf.function(fn)
    concrete = traced.get_concrete_function(
        tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)))
  assert not _tfkaf_ops({n.op for n in concrete.graph.as_graph_def().node})
  return concrete(tf.constant(x)).numpy()


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("kernel", ["gaussian", "relu", "softplus"])
def test_portable_kaf_matches_fused(kernel, axis, rng):
  x = _wide_inputs((3, 6, 5), -12.0, 12.0)
  channels = x.shape[axis]
  alpha = rng.normal(0, 0.3, (channels, 19)).astype(np.float32)  # 3 steps
  fn = lambda t: ops.kaf(t, alpha, boundary=2.5, kernel=kernel, axis=axis)  # pylint: disable=unnecessary-lambda-assignment
  np.testing.assert_allclose(_portable_call(fn, x), fn(x).numpy(),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
def test_portable_kaf2d_and_spline_match_fused(axis, rng):
  x = _wide_inputs((3, 6, 4), -9.0, 9.0)
  channels = x.shape[axis]
  alpha = rng.normal(0, 0.3, (channels // 2, 36)).astype(np.float32)
  coefficients = rng.normal(0, 1, (channels, 9)).astype(np.float32)
  fns = (lambda t: ops.kaf2d(t, alpha, boundary=2.0, axis=axis),
         lambda t: ops.linear_spline(t, coefficients, -2.0, 1.5, axis=axis))
  for fn in fns:
    np.testing.assert_allclose(_portable_call(fn, x), fn(x).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_portable_forms_of_16_bit_inputs(dtype, rng):
  x = tf.cast(_wide_inputs((4, 6), -5.0, 5.0), dtype)
  alpha = tf.cast(rng.normal(0, 0.3, (6, 10)), dtype)
  alpha2d = tf.cast(rng.normal(0, 0.3, (3, 16)), dtype)
  fns = (lambda t: ops.kaf(t, alpha), lambda t: ops.kaf2d(t, alpha2d),
         lambda t: ops.linear_spline(t, alpha, -2.0, 2.0))
  for fn in fns:
    got = _portable_call(fn, x.numpy())
    assert got.dtype == x.dtype.as_numpy_dtype
    np.testing.assert_allclose(got.astype(np.float32),
                               tf.cast(fn(x), tf.float32).numpy(),
                               rtol=1e-2, atol=1e-2)


def test_portable_spline_special_values():
  x = np.array([[np.nan, np.inf, -np.inf, 1e30, -1e30, 0.25]], np.float32)
  coefficients = np.array([[0.0, 1.0, 3.0]] * 6, np.float32)
  fn = lambda t: ops.linear_spline(t, coefficients, -1.0, 1.0)  # pylint: disable=unnecessary-lambda-assignment
  np.testing.assert_array_equal(_portable_call(fn, x), fn(x).numpy())


def test_portable_fixed_activations_match():
  x = _wide_inputs((4, 8), -20.0, 20.0)
  for name in ("gelu", "elu", "selu", "celu"):
    fn = activations.get(name)
    # gelu's erf form cancels for x < 0: absolute error ~1e-7.
    np.testing.assert_allclose(_portable_call(fn, x), fn(x).numpy(),
                               rtol=1e-5, atol=1e-6, err_msg=name)
  small = np.array([[-1e-3, -1e-5, -1e-8, 0.0, 1e-8, 1e-5, 1e-3, 0.5]],
                   np.float32)
  np.testing.assert_allclose(_portable_call(activations.elu, small),
                             activations.elu(small).numpy(), rtol=1e-5)


# --------------------------------------------------------------------------
# Models with every tfkaf layer
# --------------------------------------------------------------------------


def _builtin_activation_names():
  return [n for n in activations.names() if activations.info(n).builtin]


def branch_model():
  """Every tfkaf layer and fixed activation on the raw input (which reaches
  KAF's tails and the spline's extrapolation), plus a Dense chain."""
  inputs = keras.Input((8,))
  branches = [
      layers.KAF(D=19, boundary=2.5)(inputs),
      layers.KAF(D=9, kernel="relu")(inputs),
      layers.KAF(D=9, kernel="softplus", boundary=2.0)(inputs),
      layers.KAF2D(D=5)(inputs),
      layers.DeepBSpline(size=11, range=2.0)(inputs),
      layers.DeepBSpline(size=6, range=1.0, explicit_linear=True,
                         slope_min=-0.5, slope_max=1.5)(inputs),
      layers.LGReLU()(inputs),
      layers.Maxout(pieces=3)(inputs),
      layers.PReLU()(inputs),
  ]
  branches += [layers.Activation(name)(inputs)
               for name in _builtin_activation_names() + ["tanh+norm:z"]]
  h = keras.layers.Dense(8)(inputs)
  for layer in (layers.KAF(D=7), layers.DeepBSpline(size=9), layers.KAF2D(D=4),
                keras.layers.Dense(6), layers.Activation("elu+norm:z")):
    h = layer(h)
  outputs = keras.layers.Concatenate()(branches + [h])
  return _randomize(keras.Model(inputs, outputs))


def conv_model():
  """Conv2D (NHWC) with tfkaf layers channels-last, then channels-first."""
  inputs = keras.Input((6, 6, 3))
  h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
  h = layers.KAF(D=8)(h)
  h = layers.DeepBSpline(size=7, range=1.5)(h)
  h = keras.layers.Permute((3, 1, 2))(h)  # NHWC -> NCHW
  h = layers.KAF(D=6, kernel="softplus", axis=1)(h)
  h = layers.KAF2D(D=3, axis=1)(h)
  h = layers.DeepBSpline(size=5, axis=1, explicit_linear=True)(h)
  h = layers.LGReLU(axis=1)(h)
  h = layers.Maxout(pieces=2, axis=1)(h)
  h = layers.PReLU(shared_axes=[2, 3])(h)
  h = keras.layers.Permute((2, 3, 1))(h)
  h = keras.layers.Conv2D(4, 3)(h)
  h = layers.Activation("gelu")(h)
  h = keras.layers.Flatten()(h)
  outputs = keras.layers.Dense(3, activation=activations.get("tanh+norm:z"))(h)
  return _randomize(keras.Model(inputs, outputs), stddev=0.4)


@pytest.fixture(scope="module")
def models():
  tf.random.set_seed(11)
  return {
      "branches": (branch_model(), _wide_inputs((16, 8))),
      "conv": (conv_model(), _wide_inputs((5, 6, 6, 3), -3.0, 3.0)),
  }


def test_portable_graph_is_plain_float32(models):
  """No tfkaf op, no float64, no assertion."""
  model, x = models["branches"]
  with tfkaf.portable():
    graph = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None] + list(x.shape[1:]), tf.float32)).graph
  for node in graph.as_graph_def().node:
    assert not node.op.startswith("Tfkaf>"), node.op
    assert node.op != "Assert", node
    for value in node.attr.values():
      assert value.type != tf.float64.as_datatype_enum, node


def _check_litert_builtins(path):
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

  names = {d["op_name"] for d in
           litert.Interpreter(model_path=path)._get_ops_details()}  # pylint: disable=protected-access
  assert not [n for n in names if "Flex" in n or "CUSTOM" in n.upper()], names


def _check_onnx_standard(path):
  import onnx  # pylint: disable=g-import-not-at-top

  model = onnx.load(path)
  assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
  assert not [n.op_type for n in model.graph.node if "Tfkaf" in n.op_type]


_CHECK_ARTEFACT = {"tf_saved_model": lambda path: None,
                   "litert": _check_litert_builtins,
                   "onnx": _check_onnx_standard}


@pytest.mark.parametrize("format_", FORMATS)
def test_tfkaf_export_matches_keras(models, format_, tmp_path):
  _require(format_)
  model, x = models["branches"]
  path = tmp_path / _FILE_NAMES[format_]
  result = tfkaf.export(model, path, format=format_, sample=x,
                        rtol=TOLERANCE, atol=TOLERANCE)
  assert result.path == str(path) and result.format == format_
  assert result.size_bytes > 0 and result.batch_size == len(x)
  assert result.max_rel_diff <= TOLERANCE
  _CHECK_ARTEFACT[format_](str(path))


@pytest.mark.parametrize("format_", FORMATS)
def test_keras_export_inside_scope(models, format_, tmp_path):
  """Keras's own call, inside the scope, on a channels-last/-first CNN."""
  _require(format_)
  model, x = models["conv"]
  path = str(tmp_path / _FILE_NAMES[format_])
  with tfkaf.portable():
    model.export(path, format=format_, verbose=False)
  result = _export.verify_export(model, path, format_, sample=x,
                                 rtol=TOLERANCE, atol=TOLERANCE)
  assert result.max_rel_diff <= TOLERANCE
  _CHECK_ARTEFACT[format_](path)


def test_default_export_keeps_the_fused_ops(models, tmp_path):
  model, _ = models["branches"]
  model.export(str(tmp_path / "fused"), verbose=False)
  types = _export.saved_model_op_types(str(tmp_path / "fused"))
  assert {"Tfkaf>Kaf", "Tfkaf>Kaf2d", "Tfkaf>LinearSpline"} <= types
  with pytest.raises(_export.ExportVerificationError, match="Tfkaf>"):
    _export.verify_export(model, tmp_path / "fused", "tf_saved_model")


# The loader runs isolated (-I: no PYTHONPATH, no script or current
# directory on sys.path) with tfkaf made unimportable.
_FRESH_LOAD = textwrap.dedent("""
    import sys
    sys.modules["tfkaf"] = None  # any `import tfkaf` now fails
    import numpy as np
    import tensorflow as tf
    try:
      import tfkaf
    except ImportError:
      pass
    else:
      raise SystemExit("tfkaf could be imported")
    loaded = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], loaded.serve(tf.constant(x)).numpy())
    assert not any(name.startswith("tfkaf") and sys.modules[name]
                   for name in sys.modules), "tfkaf was imported"
""")


@pytest.mark.slow
def test_saved_model_serves_in_a_process_without_tfkaf(models, tmp_path):
  model, x = models["conv"]
  tfkaf.export(model, tmp_path / "sm", sample=x)
  np.save(tmp_path / "x.npy", x)
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run(
      [sys.executable, "-I", "-c", _FRESH_LOAD, str(tmp_path / "sm"),
       str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
      env=env, capture_output=True, text=True, timeout=300, check=False,
      cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                             model(x, training=False).numpy(),
                             rtol=TOLERANCE, atol=TOLERANCE)


@pytest.fixture(scope="module")
def mixed_model():
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8)(inputs)
    for layer in (layers.KAF(D=10), layers.KAF2D(D=4),
                  layers.DeepBSpline(size=9), layers.Activation("elu"),
                  layers.LGReLU(), layers.Maxout(), layers.PReLU()):
      h = layer(h)
    outputs = keras.layers.Dense(3, dtype="float32")(h)
    model = keras.Model(inputs, outputs)
  finally:
    keras.config.set_dtype_policy(previous)
  return _randomize(model)


@pytest.mark.parametrize("format_", FORMATS)
def test_mixed_float16_model_exports(mixed_model, format_, tmp_path):
  _require(format_)
  assert mixed_model.layers[2].compute_dtype == "float16"
  result = tfkaf.export(mixed_model, tmp_path / _FILE_NAMES[format_],
                        format=format_, sample=_wide_inputs((8, 8), -4, 4))
  assert result.max_rel_diff <= 1e-2  # float16 computation
  _CHECK_ARTEFACT[format_](result.path)


def test_export_raises_on_a_different_artefact(models, tmp_path):
  model, x = models["conv"]
  tfkaf.export(model, tmp_path / "sm", verify=False)
  other = _randomize(keras.models.clone_model(model), seed=99)
  with pytest.raises(_export.ExportVerificationError, match="differs"):
    _export.verify_export(other, tmp_path / "sm", "tf_saved_model", sample=x)


def test_missing_package_names_the_extra(monkeypatch):
  real_import = _export.importlib.import_module

  def fake_import(name, *args):
    if name == "tf2onnx":
      raise ImportError("No module named 'tf2onnx'")
    return real_import(name, *args)

  monkeypatch.setattr(_export.importlib, "import_module", fake_import)
  model = keras.Sequential([keras.Input((2,)), layers.KAF(D=3)])
  with pytest.raises(_export.MissingExportPackageError,
                     match=r"tf2onnx.*pip install \"tfkaf\[export\]\""):
    tfkaf.export(model, "unused.onnx", format="onnx")
  with pytest.raises(ValueError, match="unknown export format"):
    tfkaf.export(model, "unused", format="tflite")



def test_export_from_a_keras_file(tmp_path):
  """A `.keras` path (the CLI's input): the loaded model was never called,
  which Keras's ONNX export otherwise refuses."""
  _require("onnx")
  model = _randomize(keras.Sequential([
      keras.Input((5,)), keras.layers.Dense(6), layers.KAF(D=7),
      layers.DeepBSpline(size=9), keras.layers.Dense(2)]))
  model.save(tmp_path / "m.keras")
  result = tfkaf.export(str(tmp_path / "m.keras"), tmp_path / "m.onnx",
                        format="onnx")
  assert result.max_rel_diff <= TOLERANCE and result.batch_size == 4
