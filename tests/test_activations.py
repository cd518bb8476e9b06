"""Tests of tfkaf.activations, the fixed activation library.

Every name (docs/activations.md) is checked against a NumPy reference
written here from its formula, independently of the implementation; plus
gradients at extreme inputs, lookup, composition, serialization and Keras `.keras`
round trips.
"""

import functools
import importlib.util
import inspect
import json
import math
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfkaf import activations

ROOT = pathlib.Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------
# NumPy references (float64)
# --------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_sigmoid(x):
  e = np.exp(-np.abs(x))
  return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def np_softplus(x):
  return np.logaddexp(0.0, x)


def np_softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
  m = x.max(axis=axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_sparsemax(x, axis=-1):
  """Projection onto the simplex by bisection on tau (not by sorting)."""
  x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
  lo = x.max(axis=-1, keepdims=True) - 1.0  # sum(relu(x - lo)) >= 1
  hi = x.max(axis=-1, keepdims=True)  # sum(relu(x - hi)) == 0
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    too_big = np.maximum(x - mid, 0).sum(axis=-1, keepdims=True) > 1
    lo = np.where(too_big, mid, lo)
    hi = np.where(too_big, hi, mid)
  return np.moveaxis(np.maximum(x - 0.5 * (lo + hi), 0), -1, axis)


def np_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
  top = x if max_value is None else np.minimum(x, max_value)
  return np.where(x > threshold, top, negative_slope * (x - threshold))


def np_elu(x, alpha=1.0):
  return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def np_celu(x, alpha=1.0):
  negative = alpha * np.expm1(np.minimum(x, 0) / alpha)
  return np.maximum(x, 0) + np.minimum(0, negative)


def np_hard_sigmoid(x, alpha=1 / 6, beta=0.5):
  return np.clip(alpha * x + beta, 0, 1)


def np_gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_glu(x, axis=-1):
  a, b = np.split(x, 2, axis=axis)
  return a * np_sigmoid(b)


def np_squareplus(x, b=4.0):
  return 0.5 * (x + np.sqrt(x * x + b))


def _std(x):
  return np.maximum(1e-7, x.std(axis=-1, keepdims=True))


REFERENCES = {
    # Keras 3
    "relu": np_relu,
    "sigmoid": np_sigmoid,
    "tanh": np.tanh,
    "softmax": np_softmax,
    "linear": lambda x: x,
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "silu": lambda x: x * np_sigmoid(x),
    "mish": lambda x: x * np.tanh(np_softplus(x)),
    "selu": lambda x: SELU_SCALE * np_elu(x, SELU_ALPHA),
    "elu": np_elu,
    "leaky_relu": lambda x, negative_slope=0.01: np.where(
        x > 0, x, negative_slope * x
    ),
    "softplus": np_softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "exponential": np.exp,
    "hard_sigmoid": np_hard_sigmoid,
    "hard_silu": lambda x: x * np.minimum(1, np.maximum(0, x / 6 + 0.5)),
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "relu6": lambda x: np.clip(x, 0, 6),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "soft_shrink": lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "threshold": lambda x: np.where(x > 0, x, 0),
    "sparsemax": np_sparsemax,
    "sparse_plus": lambda x: np.where(
        x >= 1, x, np.where(x <= -1, 0, 0.25 * (x + 1) ** 2)
    ),
    "sparse_sigmoid": lambda x: np.where(
        x >= 1, 1, np.where(x <= -1, 0, 0.5 * (x + 1))
    ),
    "squareplus": np_squareplus,
    "glu": np_glu,
    "celu": np_celu,
    "log_sigmoid": lambda x: -np_softplus(-x),
    "log_softmax": np_log_softmax,
    # Kaun
    "gelu_approx": np_gelu_tanh,
    # theanets
    "trel": lambda x: np.maximum(0, np.minimum(1, x)),
    "trec": lambda x: np.where(x > 1, x, 0),
    "tlin": lambda x: np.where(np.abs(x) > 1, x, 0),
    "rect:min": lambda x: np.minimum(1, x),
    "rect:max": lambda x: np.maximum(0, x),
    "norm:mean": lambda x: x - x.mean(axis=-1, keepdims=True),
    "norm:max": lambda x: x / np.maximum(
        1e-7, np.abs(x).max(axis=-1, keepdims=True)
    ),
    "norm:std": lambda x: x / _std(x),
    "norm:z": lambda x: (x - x.mean(axis=-1, keepdims=True)) / _std(x),
}
ALIASES = {
    "logistic": "sigmoid",
    "swish": "silu",
    "hard_swish": "hard_silu",
    "rect_min": "rect:min",
    "rect_max": "rect:max",
    "norm_mean": "norm:mean",
    "norm_max": "norm:max",
    "norm_std": "norm:std",
    "norm_z": "norm:z",
}
ALL_NAMES = sorted(REFERENCES) + sorted(ALIASES)

# Every name the library promises (docs/activations.md), verbatim.
SPEC_NAMES = (
    "relu sigmoid tanh softmax linear gelu silu swish mish selu elu leaky_relu "
    "softplus softsign exponential hard_sigmoid hard_silu hard_swish hard_tanh "
    "relu6 hard_shrink soft_shrink tanh_shrink threshold sparsemax sparse_plus "
    "sparse_sigmoid squareplus glu celu log_sigmoid log_softmax gelu_approx "
    "logistic trel trec tlin rect:min rect:max norm:mean norm:max norm:std "
    "norm:z"
).split()

# Parameters and defaults of the library's functions (docs/activations.md).
SPEC_SIGNATURES = {
    "relu": {"negative_slope": 0.0, "max_value": None, "threshold": 0.0},
    "softmax": {"axis": -1},
    "gelu": {"approximate": False},
    "elu": {"alpha": 1.0},
    "leaky_relu": {"negative_slope": 0.01},
    "hard_sigmoid": {"alpha": 1 / 6, "beta": 0.5},
    "hard_shrink": {"lambd": 0.5},
    "soft_shrink": {"lambd": 0.5},
    "threshold": {"threshold": 0.0, "default_value": 0.0},
    "sparsemax": {"axis": -1},
    "squareplus": {"b": 4},
    "glu": {"axis": -1},
    "celu": {"alpha": 1.0},
    "log_softmax": {"axis": -1},
}

# Inputs: a sweep, the kinks of the piecewise functions (exactly
# representable in every float type), and random values.
X = np.stack(
    [
        np.linspace(-5, 5, 8),
        [-1.0, -0.5, 0.0, 0.5, 1.0, 6.0, -6.0, 2.5],
        np.random.default_rng(0).normal(scale=2.0, size=8),
    ]
)

DTYPES = {
    "float64": (tf.float64, 1e-9, 1e-12),
    "float32": (tf.float32, 1e-5, 1e-6),
    "float16": (tf.float16, 1e-2, 1e-2),
    "bfloat16": (tf.bfloat16, 3e-2, 3e-2),
}


def reference(name, x, **params):
  fn = REFERENCES[ALIASES.get(name, name)]
  return fn(np.asarray(x, np.float64), **params)


def as_numpy(y):
  return tf.cast(y, tf.float64).numpy()


# --------------------------------------------------------------------------
# Custom activations used by several tests (registered at import).
# --------------------------------------------------------------------------


@activations.register("test_scaled_tanh")
def scaled_tanh(x, scale=2.0):
  """scale * tanh(x)"""
  return scale * tf.tanh(tf.convert_to_tensor(x))


class ShiftedRelu(activations.Activation, name="test_shifted_relu"):
  def __init__(self, shift=1.0):
    self.shift = shift

  def __call__(self, x):
    return tf.nn.relu(tf.convert_to_tensor(x) - self.shift)


# --------------------------------------------------------------------------
# Names, signatures, docs
# --------------------------------------------------------------------------


def test_every_spec_name_is_available():
  available = set(activations.names(aliases=True))
  for name in SPEC_NAMES:
    assert name in available, name
    python_name = name.replace(":", "_")
    assert python_name in activations.__all__, python_name
    assert callable(getattr(activations, python_name))
    assert activations.get(name) is getattr(activations, python_name)


def test_every_builtin_has_a_reference():
  builtin = [n for n in activations.names() if activations.info(n).builtin]
  assert sorted(builtin) == sorted(REFERENCES)
  builtin_aliases = {
      a: n for n in builtin for a in activations.info(n).aliases
  }
  assert builtin_aliases == ALIASES


def test_all_is_explicit_and_complete():
  for name in activations.__all__:
    assert hasattr(activations, name), name
  for name in REFERENCES:
    assert activations.info(name).obj.__name__ in activations.__all__


@pytest.mark.parametrize("name", sorted(SPEC_SIGNATURES))
def test_parameters_and_defaults_follow_spec(name):
  assert activations.info(name).parameters == SPEC_SIGNATURES[name]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_docstring_states_formula_and_origin(name):
  entry = activations.info(name)
  doc = entry.obj.__doc__
  assert entry.formula in doc
  for origin in entry.origin:
    assert origin in doc
  for param in entry.parameters:
    assert f"{param}:" in doc, f"{name}: parameter {param} undocumented"


def test_generated_table_is_up_to_date():
  script = ROOT / "tools" / "gen_activation_table.py"
  table = ROOT / "docs" / "activations.md"
  if not script.exists():
    pytest.skip("not run from a source checkout")
  spec = importlib.util.spec_from_file_location("gen_activation_table", script)
  generator = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(generator)
  expected = generator.render(activations)
  assert table.read_text() == expected, (
      "docs/activations.md is stale: run tools/gen_activation_table.py"
  )
  for name in REFERENCES:
    assert f"| `{name}` |" in expected
  assert "test_scaled_tanh" not in expected  # custom ones stay out


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", ALL_NAMES)
def test_matches_numpy_reference(name, dtype):
  tf_dtype, rtol, atol = DTYPES[dtype]
  x = tf.constant(X, tf_dtype)
  y = activations.get(name)(x)
  assert y.dtype == tf_dtype
  expected = reference(name, as_numpy(x))
  assert y.shape == expected.shape
  np.testing.assert_allclose(as_numpy(y), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_graph_mode_with_unknown_shape(name):
  fn = tf.function(
      activations.get(name),
      input_signature=[tf.TensorSpec([None, None], tf.float32)],
  )
  x = X.astype(np.float32)
  np.testing.assert_allclose(
      fn(tf.constant(x)).numpy(), reference(name, x), rtol=1e-5, atol=1e-6
  )


def test_accepts_numpy_lists_and_integers():
  assert activations.relu([-1.0, 2.0]).numpy().tolist() == [0.0, 2.0]
  y = activations.relu(np.array([-1, 2]))
  assert y.dtype == tf.float32 and y.numpy().tolist() == [0.0, 2.0]
  assert activations.mish(np.float64(1.0)).dtype == tf.float64


PARAMETER_CASES = [
    ("relu", {"negative_slope": 0.1}),
    ("relu", {"max_value": 2.0}),
    ("relu", {"threshold": 0.5}),
    ("relu", {"threshold": -0.5}),
    ("relu", {"negative_slope": 0.2, "max_value": 3.0, "threshold": 1.0}),
    ("relu", {"max_value": 6.0}),
    ("leaky_relu", {"negative_slope": 0.3}),
    ("elu", {"alpha": 0.5}),
    ("celu", {"alpha": 2.0}),
    ("hard_sigmoid", {"alpha": 0.2, "beta": 0.4}),
    ("softmax", {"axis": 0}),
    ("log_softmax", {"axis": 0}),
    ("sparsemax", {"axis": 0}),
    ("glu", {"axis": 1}),
    ("squareplus", {"b": 1.0}),
    ("squareplus", {"b": 0.0}),
]


@pytest.mark.parametrize(
    "name, params",
    PARAMETER_CASES,
    ids=[f"{n}-{p}" for n, p in PARAMETER_CASES],
)
def test_parameters_match_numpy_reference(name, params):
  x = X.astype(np.float64)
  y = activations.get(name)(tf.constant(x), **params)
  np.testing.assert_allclose(
      y.numpy(), reference(name, x, **params), rtol=1e-9, atol=1e-12
  )


def test_parameterised_reference_cases():
  x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
  np.testing.assert_allclose(
      activations.hard_shrink(x, lambd=1.0).numpy(), [-2, 0, 0, 0, 0, 0, 2]
  )
  np.testing.assert_allclose(
      activations.soft_shrink(x, lambd=1.0).numpy(), [-1, 0, 0, 0, 0, 0, 1]
  )
  np.testing.assert_allclose(
      activations.threshold(x, threshold=0.5, default_value=-9.0).numpy(),
      [-9, -9, -9, -9, -9, 1, 2],
  )
  np.testing.assert_allclose(
      activations.gelu(x, approximate=True).numpy(),
      activations.gelu_approx(x).numpy(),
  )


def test_relu_threshold_is_strict_like_keras():
  x = tf.constant([0.5, 1.0, 1.5])
  assert activations.relu(x, threshold=1.0).numpy().tolist() == [0.0, 0.0, 1.5]
  y = activations.threshold(x, threshold=1.0)
  assert y.numpy().tolist() == [0.0, 0.0, 1.5]
  np.testing.assert_allclose(
      activations.relu(x, threshold=1.0).numpy(),
      keras.activations.relu(x, threshold=1.0).numpy(),
  )


def test_defaults_from_the_issue():
  x = tf.constant([-3.0, -1.0, 0.0, 1.5, 3.0, 4.0])
  np.testing.assert_allclose(
      activations.leaky_relu(x).numpy(), [-0.03, -0.01, 0, 1.5, 3, 4]
  )
  np.testing.assert_allclose(
      activations.hard_sigmoid(x).numpy(),
      np.minimum(1, np.maximum(0, x.numpy() / 6 + 0.5)),
      rtol=1e-6,
  )


# --------------------------------------------------------------------------
# Numerical stability and gradients
# --------------------------------------------------------------------------

EXTREMES = np.array(
    [[-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4, -1e4]], np.float32
)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_finite_values_and_gradients_at_extremes(name):
  x = tf.constant(EXTREMES)
  if name == "exponential":  # exp(1e4) overflows by definition
    x = -tf.abs(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = activations.get(name)(x)
    # Random weights: a plain sum has a zero gradient for softmax & co.
    weights = np.random.default_rng(2).normal(size=y.shape).astype(np.float32)
    loss = tf.reduce_sum(y * weights)
  grad = tape.gradient(loss, x)
  assert np.all(np.isfinite(y.numpy())), y.numpy()
  assert np.all(np.isfinite(grad.numpy())), grad.numpy()


@pytest.mark.parametrize(
    "name",
    [
        "softplus", "log_sigmoid", "mish", "selu", "celu", "gelu",
        "gelu_approx", "sigmoid", "silu", "elu", "softsign", "squareplus",
    ],
)
def test_stable_forms_are_accurate_at_extremes(name):
  x = np.array([-1e4, -100.0, -20.0, 20.0, 100.0, 1e4], np.float32)
  y = activations.get(name)(tf.constant(x)).numpy()
  expected = reference(name, x)
  np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-30)
  # The gradients: finite, and bounded as the analytic derivatives are.
  with tf.GradientTape() as tape:
    xt = tf.constant(x)
    tape.watch(xt)
    yt = activations.get(name)(xt)
  grad = tape.gradient(yt, xt).numpy()
  assert np.all(np.isfinite(grad))
  assert np.all(np.abs(grad) <= 1.1), grad  # |f'| <= selu scale 1.0507


def _away_from_kinks(x, kinks=(-6, -3, -1, -0.5, 0, 0.5, 1, 3, 6), margin=0.02):
  for k in kinks:
    near = np.abs(x - k) < margin
    x = np.where(near, k + np.copysign(margin, x - k + 1e-12), x)
  return x


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradients_match_finite_differences(name):
  x = _away_from_kinks(
      np.random.default_rng(1).uniform(-4, 4, size=(2, 6))
  ).astype(np.float64)
  fn = activations.get(name)
  theoretical, numerical = tf.test.compute_gradient(
      fn, [tf.constant(x)], delta=1e-6
  )
  np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-6)


def test_softplus_gradient_is_sigmoid():
  x = tf.constant([-50.0, -1.0, 0.0, 2.0, 50.0], tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = activations.softplus(x)
  np.testing.assert_allclose(
      tape.gradient(y, x).numpy(), np_sigmoid(x.numpy()), rtol=1e-12
  )


# --------------------------------------------------------------------------
# sparsemax, glu, theanets normalisations
# --------------------------------------------------------------------------


def test_sparsemax_example_from_the_issue():
  y = activations.sparsemax(tf.constant([0.5, 1.2, -0.3, 0.9]))
  np.testing.assert_allclose(y.numpy(), [0.0, 0.65, 0.0, 0.35], atol=1e-6)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0, 1e3])
def test_sparsemax_projects_onto_the_simplex(scale):
  rng = np.random.default_rng(int(scale * 1000) % 97)
  x = rng.normal(scale=scale, size=(64, 7))
  x[0] = 2.0  # ties: uniform output
  x[1, :3] = x[1, 3]  # partial ties
  y = activations.sparsemax(tf.constant(x)).numpy()
  np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
  assert np.all(y >= 0)
  np.testing.assert_allclose(y, np_sparsemax(x), atol=1e-9)
  np.testing.assert_allclose(y[0], np.full(7, 1 / 7))
  y32 = activations.sparsemax(tf.constant(x, tf.float32)).numpy()
  np.testing.assert_allclose(y32.sum(axis=-1), 1.0, rtol=1e-5)


def test_sparsemax_along_other_axes_and_half_precision():
  x = np.random.default_rng(3).normal(size=(3, 5, 4))
  for axis in (0, 1, -1):
    y = activations.sparsemax(tf.constant(x), axis=axis).numpy()
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(y, np_sparsemax(x, axis=axis), atol=1e-9)
  for dtype in (tf.float16, tf.bfloat16):
    y = activations.sparsemax(tf.constant(x, dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(as_numpy(y).sum(axis=-1), 1.0, atol=2e-2)


try:
  from hypothesis import given, settings, strategies as st
  from hypothesis.extra import numpy as hnp
except ImportError:  # pragma: no cover - hypothesis is a test dependency
  given = None

if given is not None:

  @settings(max_examples=60, deadline=None)
  @given(
      hnp.arrays(
          np.float64,
          hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7),
          elements=st.floats(-1e3, 1e3, allow_nan=False),
      )
  )
  def test_sparsemax_property(x):
    y = activations.sparsemax(tf.constant(x)).numpy()
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(y, np_sparsemax(x), atol=1e-7)


def test_glu_rejects_an_odd_axis():
  with pytest.raises(
      ValueError, match=r"glu: the size of axis 1 must be even.*got 5"
  ):
    activations.glu(tf.zeros([2, 5]))
  with pytest.raises(ValueError, match="must be even"):
    activations.glu(tf.zeros([3, 4]), axis=0)
  activations.glu(tf.zeros([4, 3]), axis=0)  # fine
  fn = tf.function(
      activations.glu, input_signature=[tf.TensorSpec([None, None], tf.float32)]
  )
  assert fn(tf.zeros([2, 6])).shape == (2, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="must be even"):
    fn(tf.zeros([2, 5]))


def test_axis_out_of_range_is_a_clear_error():
  with pytest.raises(ValueError, match="out of range"):
    activations.softmax(tf.zeros([2, 3]), axis=2)


@pytest.mark.parametrize(
    "name", ["norm:mean", "norm:max", "norm:std", "norm:z"]
)
def test_norms_are_safe_for_constant_rows(name):
  x = tf.constant(
      [[3.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]
  )
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = activations.get(name)(x)
    loss = tf.reduce_sum(y * tf.constant([1.0, -2.0, 3.0, 0.5]))
  grad = tape.gradient(loss, x)
  assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(grad.numpy()))
  np.testing.assert_allclose(y.numpy(), reference(name, x.numpy()), rtol=1e-6)
  if name in ("norm:z", "norm:mean"):
    np.testing.assert_allclose(y.numpy()[:2], 0.0)
  np.testing.assert_allclose(y.numpy()[1], 0.0)


def test_norms_work_over_the_last_axis_only():
  x = np.random.default_rng(4).normal(size=(2, 3, 5))
  y = activations.norm_z(x).numpy()
  np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
  np.testing.assert_allclose(y.std(axis=-1), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------
# get: names, aliases, composition, configs, errors
# --------------------------------------------------------------------------


def test_get_none_and_callables():
  assert activations.get(None) is activations.linear
  fn = lambda x: x * 2  # noqa: E731
  assert activations.get(fn) is fn
  assert activations.get(tf.nn.relu) is tf.nn.relu
  assert activations.get(activations.mish) is activations.mish


def test_get_aliases():
  assert activations.get("swish") is activations.silu
  assert activations.get("hard_swish") is activations.hard_silu
  assert activations.get("logistic") is activations.sigmoid
  assert activations.get("rect_min") is activations.rect_min
  assert activations.get("tfkaf>mish") is activations.mish
  assert activations.swish is activations.silu
  assert activations.logistic is activations.sigmoid


def test_composition_applies_left_to_right():
  x = tf.constant(X, tf.float64)
  composed = activations.get("tanh+norm:z")
  assert isinstance(composed, activations.Composed)
  assert composed.__name__ == "tanh+norm:z"
  np.testing.assert_allclose(
      composed(x).numpy(), REFERENCES["norm:z"](np.tanh(X)), rtol=1e-12
  )
  reverse = activations.get("norm:z+tanh")
  np.testing.assert_allclose(
      reverse(x).numpy(), np.tanh(REFERENCES["norm:z"](X)), rtol=1e-12
  )
  spaced = activations.get(" relu + rect:min + norm:mean ")
  np.testing.assert_allclose(
      spaced(x).numpy(),
      REFERENCES["norm:mean"](np.minimum(1, np.maximum(X, 0))),
      atol=1e-12,
  )


def test_get_config_dicts():
  leaky = activations.get({"name": "leaky_relu", "negative_slope": 0.2})
  assert isinstance(leaky, activations.Partial)
  assert leaky.get_config() == {"name": "leaky_relu", "negative_slope": 0.2}
  np.testing.assert_allclose(
      leaky(tf.constant([-1.0, 1.0])).numpy(), [-0.2, 1.0]
  )
  assert activations.get({"name": "mish"}) is activations.mish
  assert activations.get({"name": "tanh+norm:z"}).__name__ == "tanh+norm:z"
  # A Keras-format config.
  keras_config = activations.serialize(leaky)
  assert activations.get(keras_config).get_config() == leaky.get_config()


def test_get_functools_partial_becomes_serializable():
  partial = functools.partial(activations.elu, alpha=0.5)
  resolved = activations.get(partial)
  assert isinstance(resolved, activations.Partial)
  assert resolved.get_config() == {"name": "elu", "alpha": 0.5}
  assert isinstance(activations.serialize(partial), dict)
  other = functools.partial(np.multiply, 2.0)
  assert activations.get(other) is other


def test_unknown_name_lists_close_matches():
  with pytest.raises(ValueError, match=r"Unknown activation 'rleu'.*'relu'"):
    activations.get("rleu")
  with pytest.raises(ValueError, match=r"'nrom:z'.*'norm:z'.*tanh\+nrom:z"):
    activations.get("tanh+nrom:z")
  with pytest.raises(ValueError, match="Unknown activation 'Relu'"):
    activations.get("Relu")  # names are case-sensitive
  with pytest.raises(ValueError, match="Known activations"):
    activations.get("zzzzzzzz")


@pytest.mark.parametrize(
    "bad", [3, 2.5, ["relu"], ("tanh",), b"relu", object()]
)
def test_wrong_types_are_rejected(bad):
  with pytest.raises(TypeError, match="Could not interpret activation"):
    activations.get(bad)


@pytest.mark.parametrize(
    "bad", ["", "tanh+", "+tanh", "tanh++relu", {"negative_slope": 0.2}]
)
def test_malformed_identifiers_are_rejected(bad):
  with pytest.raises(ValueError):
    activations.get(bad)


def test_bad_parameters_are_rejected():
  with pytest.raises(TypeError, match="bogus"):
    activations.get({"name": "leaky_relu", "bogus": 1})
  with pytest.raises(TypeError, match="bogus"):
    activations.Partial("relu", bogus=1)
  with pytest.raises(ValueError, match="composed"):
    activations.get({"name": "tanh+relu", "negative_slope": 0.1})
  with pytest.raises(ValueError, match="Unknown activation"):
    activations.get({"name": "nope", "alpha": 1.0})


# --------------------------------------------------------------------------
# serialize / deserialize
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_serialize_plain_function_gives_its_name(name):
  fn = activations.get(name)
  canonical = ALIASES.get(name, name)
  assert activations.serialize(fn) == canonical
  assert activations.deserialize(canonical) is fn


def _round_trip(activation):
  config = activations.serialize(activation)
  config = json.loads(json.dumps(config))  # must be JSON
  return activations.deserialize(config)


OBJECTS = {
    "partial": lambda: activations.get(
        {"name": "leaky_relu", "negative_slope": 0.2}
    ),
    "partial_relu_cap": lambda: activations.Partial(
        "relu", max_value=1.0, threshold=0.5
    ),
    "composed": lambda: activations.get("tanh+norm:z"),
    "composed_nested": lambda: activations.Composed(
        [
            {"name": "elu", "alpha": 0.5},
            "rect:min",
            activations.get("softsign+norm:max"),
        ]
    ),
    "custom_class": lambda: ShiftedRelu(shift=0.25),
    "custom_partial": lambda: activations.get(
        {"name": "test_scaled_tanh", "scale": 3.0}
    ),
}


@pytest.mark.parametrize("key", sorted(OBJECTS))
def test_serialization_round_trip(key):
  original = OBJECTS[key]()
  restored = _round_trip(original)
  assert type(restored) is type(original)
  assert restored.get_config() == original.get_config()
  x = tf.constant(X, tf.float32)
  np.testing.assert_allclose(
      restored(x).numpy(), original(x).numpy(), rtol=1e-6
  )
  # Keras' own deserializer reads the same config.
  again = keras.saving.deserialize_keras_object(activations.serialize(original))
  assert again.get_config() == original.get_config()


def test_serialize_edge_cases():
  assert activations.serialize(None) is None
  assert activations.deserialize(None) is activations.linear
  assert activations.serialize("tanh+norm:z") == "tanh+norm:z"
  assert activations.serialize(scaled_tanh) == "test_scaled_tanh"
  with pytest.raises(ValueError, match="Cannot serialize"):
    activations.serialize(lambda x: x)
  with pytest.raises(ValueError, match="Unknown activation"):
    activations.serialize("nope")
  with pytest.raises(TypeError):
    activations.deserialize(3)


def test_deserialize_custom_objects():
  def double(x):
    return 2 * tf.convert_to_tensor(x)

  fn = activations.deserialize("tanh+double", custom_objects={"double": double})
  np.testing.assert_allclose(
      fn(tf.constant([1.0])).numpy(), [2 * np.tanh(1.0)], rtol=1e-6
  )
  custom = {"double": double}
  assert activations.deserialize("double", custom_objects=custom) is double


# --------------------------------------------------------------------------
# Custom activations
# --------------------------------------------------------------------------


def test_custom_function_and_class_work_by_name():
  assert activations.get("test_scaled_tanh") is scaled_tanh
  assert activations.info("test_scaled_tanh").origin == ("custom",)
  assert activations.info("test_scaled_tanh").parameters == {"scale": 2.0}
  shifted = activations.get("test_shifted_relu")
  assert isinstance(shifted, ShiftedRelu) and shifted.shift == 1.0
  config = {"name": "test_shifted_relu", "shift": 2.0}
  assert activations.get(config).shift == 2.0
  assert activations.get(ShiftedRelu).shift == 1.0
  composed = activations.get("test_scaled_tanh+test_shifted_relu")
  np.testing.assert_allclose(
      composed(tf.constant([2.0])).numpy(),
      [max(2 * np.tanh(2.0) - 1, 0)],
      rtol=1e-6,
  )


def test_registration_conflicts_and_auto_names():
  with pytest.raises(ValueError, match="already registered"):
    activations.register("relu")(lambda x: x)
  with pytest.raises(ValueError, match="Invalid activation name"):
    activations.register("a+b")(scaled_tanh)

  class FooBarAct(activations.Activation):
    def __call__(self, x):
      return tf.convert_to_tensor(x) + 1.0

  try:
    assert isinstance(activations.get("foo_bar_act"), FooBarAct)
    config = activations.serialize(FooBarAct())
    assert config["registered_name"] == "tfkaf>foo_bar_act"
    # Re-registering under an explicit name moves it.
    activations.register("foo_renamed")(FooBarAct)
    assert isinstance(activations.get("foo_renamed"), FooBarAct)
    with pytest.raises(ValueError, match="Unknown activation"):
      activations.get("foo_bar_act")
  finally:
    activations._unregister("foo_bar_act")  # pylint: disable=protected-access
    activations._unregister("foo_renamed")  # pylint: disable=protected-access

  @activations.register
  def plus_three(x):
    return tf.convert_to_tensor(x) + 3.0

  try:
    assert activations.get("plus_three") is plus_three
    with pytest.raises(ValueError, match="already registered"):
      activations.register("plus_three")(lambda x: x)
    replacement = activations.register("plus_three", override=True)(lambda x: x)
    assert activations.get("plus_three") is replacement
  finally:
    activations._unregister("plus_three")  # pylint: disable=protected-access


def test_user_registrations_are_never_builtin():
  """Only the library's own definitions are builtin, whatever registers
  after them: functions, classes, overrides, even with a library origin."""
  @activations.register("test_user_fn", origin=activations.KERAS3)
  def user_fn(x):
    return x

  class UserClass(activations.Activation, name="test_user_class"):
    def __call__(self, x):
      return x

  try:
    assert activations.get("test_user_fn") is user_fn
    assert isinstance(activations.get("test_user_class"), UserClass)
    assert not activations.info("test_user_fn").builtin
    assert not activations.info("test_user_class").builtin
    library = ("tfkaf.activations._keras3", "tfkaf.activations._kaun",
               "tfkaf.activations._theanets")
    for name in activations.names():
      entry = activations.info(name)
      assert entry.builtin == (entry.obj.__module__ in library), name
  finally:
    activations._unregister("test_user_fn")  # pylint: disable=protected-access
    activations._unregister("test_user_class")  # pylint: disable=protected-access
  assert "builtin" not in inspect.signature(activations.register).parameters


LIPSCHITZ_FREE = {"exponential", "hard_shrink", "threshold", "sparsemax",
                  "glu", "log_softmax", "trec", "tlin", "norm:mean",
                  "norm:max", "norm:std", "norm:z"}


def test_lipschitz_constants_are_in_the_registry():
  for name in REFERENCES:
    known = activations.info(name).lipschitz is not None
    assert known == (name not in LIPSCHITZ_FREE), name


@pytest.mark.parametrize(
    "name", sorted(set(REFERENCES) - LIPSCHITZ_FREE - {"softmax"}))
def test_lipschitz_constant_bounds_the_reference_slopes(name):
  x = np.linspace(-60, 60, 600001)
  y = REFERENCES[name](x)
  slopes = np.abs(np.diff(y) / np.diff(x))
  bound = activations.info(name).lipschitz_constant()
  assert slopes.max() <= bound * (1 + 1e-6)
  assert slopes.max() >= 0.99 * bound  # and it is the constant, not loose


def test_lipschitz_constants_follow_the_parameters():
  def constant(name, **params):
    return activations.get({"name": name, **params}).lipschitz_constant()
  assert constant("leaky_relu", negative_slope=-3.0) == 3.0
  assert constant("elu", alpha=2.5) == 2.5
  assert constant("hard_sigmoid", alpha=0.4) == 0.4
  assert constant("relu", max_value=2.0) == 1.0
  assert constant("relu", threshold=0.5) is None  # discontinuous
  assert constant("softmax", axis=0) == 1.0
  assert activations.get("tanh+sigmoid").lipschitz_constant() == 0.25
  assert activations.get("tanh+norm:z").lipschitz_constant() is None


def test_activation_base_class_contract():
  class NoCall(activations.Activation, register=False):
    pass

  with pytest.raises(NotImplementedError):
    NoCall()(1.0)
  assert NoCall().get_config() == {}

  class Hidden(activations.Activation, register=False):
    def __init__(self, k=1.0):
      self._k = k

    def __call__(self, x):
      return x

  with pytest.raises(NotImplementedError, match="get_config"):
    Hidden().get_config()


# --------------------------------------------------------------------------
# Keras layers: .keras save/load round trips
# --------------------------------------------------------------------------

LAYER_ACTIVATIONS = {
    "plain": lambda: activations.mish,
    "alias": lambda: activations.swish,
    "sparsemax_not_keras": lambda: activations.sparsemax,
    "leaky_default_slope": lambda: activations.leaky_relu,
    "parameterised": lambda: activations.get(
        {"name": "leaky_relu", "negative_slope": 0.2}
    ),
    "functools_partial": lambda: activations.get(
        functools.partial(activations.celu, alpha=0.5)
    ),
    "composed": lambda: activations.get("tanh+norm:z"),
    "composed_params": lambda: activations.Composed(
        [{"name": "relu", "max_value": 1.5}, "norm:max"]
    ),
    "custom_function": lambda: scaled_tanh,
    "custom_partial": lambda: activations.get(
        {"name": "test_scaled_tanh", "scale": 0.5}
    ),
    "custom_class": lambda: ShiftedRelu(shift=0.1),
}


@pytest.mark.parametrize("key", sorted(LAYER_ACTIVATIONS))
def test_keras_layer_save_load_round_trip(key, tmp_path):
  activation = LAYER_ACTIVATIONS[key]()
  model = keras.Sequential(
      [
          keras.Input((6,)),
          keras.layers.Dense(4, activation=activation),
          keras.layers.Activation(activation),
      ]
  )
  x = np.random.default_rng(5).normal(size=(3, 6)).astype(np.float32)
  expected = model(x).numpy()
  path = tmp_path / "m.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=1e-6, atol=1e-7)
  for original, restored in zip(model.layers, loaded.layers):
    assert (
        restored.get_config()["activation"]
        == original.get_config()["activation"]
    )
  restored_activation = loaded.layers[0].activation
  if isinstance(activation, activations.Activation):
    assert type(restored_activation) is type(activation)
    assert restored_activation.get_config() == activation.get_config()
  else:
    assert restored_activation is activation


@pytest.mark.slow
def test_fresh_process_loads_with_import_tfkaf_only(tmp_path):
  model = keras.Sequential(
      [
          keras.Input((4,)),
          keras.layers.Dense(4, activation=activations.sparsemax),
          keras.layers.Dense(
              4,
              activation=activations.get(
                  {"name": "leaky_relu", "negative_slope": 0.3}
              ),
          ),
          keras.layers.Dense(4, activation=activations.get("tanh+norm:z")),
      ]
  )
  x = np.random.default_rng(6).normal(size=(2, 4)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  np.save(tmp_path / "y.npy", model(x).numpy())
  model.save(tmp_path / "m.keras")
  code = (
      "import numpy as np, keras, tfkaf, sys\n"
      "d = sys.argv[1]\n"
      "m = keras.models.load_model(d + '/m.keras')\n"
      "y = m(np.load(d + '/x.npy'))\n"
      "np.testing.assert_allclose(y, np.load(d + '/y.npy'), rtol=1e-6)\n"
      "print('LOADED_OK')\n"
  )
  result = subprocess.run(
      [sys.executable, "-c", code, str(tmp_path)],
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
  )
  assert "LOADED_OK" in result.stdout, result.stderr[-3000:]
