"""Lipschitz bounds of feed-forward models (l2 norm).

`lipschitz_bound(model)` multiplies, layer by layer, an upper bound of each
layer's Lipschitz constant (Aziznejad et al. 2020: the product of the weight
norms times the largest activation Lipschitz constants). tfkaf's layers
answer their own `lipschitz_constant()`; the fixed activations answer from
their registry entry (`tfkaf.activations.info(name).lipschitz`); the Keras
layers this module knows are bounded here.
"""

import functools
import math

import keras
import numpy as np

from tfkaf import activations as activations_lib
from tfkaf.activations import _compose

__all__ = ["activation_constant", "lipschitz_bound", "lipschitz_factors"]


def activation_constant(fn):
  """The Lipschitz constant of a fixed activation (anything `get` takes).

  Raises:
    ValueError: none is known (e.g. hard_shrink, exponential, norm:z).
  """
  if isinstance(fn, (str, dict)):
    fn = activations_lib.get(fn)
  value = _compose.lipschitz_of(fn)
  if value is None:
    known = [n for n in activations_lib.names(aliases=True)
             if activations_lib.info(n).lipschitz is not None]
    name = (repr(fn) if isinstance(fn, activations_lib.Activation)
            else _compose.display_name(fn))
    raise ValueError(
        f"no Lipschitz constant known for the activation {name}. Known: "
        f"{', '.join(sorted(known))}.")
  return float(value)


def _spectral_norm(matrix):
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.size == 0:
    return 0.0
  return float(np.linalg.norm(matrix, ord=2))


def _tuple(value, rank):
  if isinstance(value, int):
    return (value,) * rank
  return tuple(int(v) for v in value)


def _dense_factor(layer):
  return (_spectral_norm(layer.kernel.numpy())
          * activation_constant(layer.activation))


def _conv_factor(layer):
  """sqrt(overlap) * the largest per-group spectral norm of the kernel,
  times the activation's constant."""
  kernel = np.asarray(layer.kernel.numpy(), np.float64)
  spatial = kernel.ndim - 2
  strides = _tuple(layer.strides, spatial)
  dilation = _tuple(getattr(layer, "dilation_rate", 1), spatial)
  overlap = 1
  for size, stride, rate in zip(kernel.shape[:spatial], strides, dilation):
    overlap *= math.ceil(size / stride) if rate == 1 else size
  groups = int(getattr(layer, "groups", 1) or 1)
  per_group = kernel.shape[-1] // groups
  norm = max(
      _spectral_norm(kernel[..., g * per_group:(g + 1) * per_group]
                     .reshape(-1, per_group))
      for g in range(groups))
  return math.sqrt(overlap) * norm * activation_constant(layer.activation)


def _pool_factor(layer, average):
  pool = layer.pool_size
  strides = layer.strides if layer.strides is not None else pool
  rank = len(pool) if not isinstance(pool, int) else 1
  pool = _tuple(pool, rank)
  strides = _tuple(strides, rank)
  overlap = math.prod(math.ceil(p / s) for p, s in zip(pool, strides))
  if average:
    return math.sqrt(overlap / math.prod(pool))
  return math.sqrt(overlap)


def _batch_norm_factor(layer):
  scale = 1.0 / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
  if layer.scale:
    scale = scale * layer.gamma.numpy()
  return float(np.max(np.abs(scale)))


def _relu_layer_factor(layer):
  if layer.threshold:
    raise ValueError("a ReLU with a threshold is discontinuous")
  return max(1.0, abs(float(layer.negative_slope)))


def _each(module, names):
  return tuple(getattr(module, name) for name in names)


_L = keras.layers
# Keras layers and their factors, in the order they are tried.
_KERAS_FACTORS = (
    (_each(_L, ("InputLayer", "Flatten", "Reshape", "Permute", "Dropout",
                "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "GaussianDropout", "GaussianNoise", "AlphaDropout",
                "GlobalMaxPooling1D", "GlobalMaxPooling2D",
                "GlobalMaxPooling3D", "GlobalAveragePooling1D",
                "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                "Cropping1D", "Cropping2D", "Cropping3D", "Softmax")),
     lambda layer: 1.0),
    ((_L.Activation,), lambda layer: activation_constant(layer.activation)),
    ((_L.ReLU,), _relu_layer_factor),
    ((_L.LeakyReLU,), lambda layer: max(1.0, abs(float(layer.negative_slope)))),
    ((_L.ELU,), lambda layer: max(1.0, abs(float(layer.alpha)))),
    ((_L.PReLU,),
     lambda layer: max(1.0, float(np.max(np.abs(layer.alpha.numpy()))))),
    ((_L.Dense,), _dense_factor),
    (_each(_L, ("Conv1D", "Conv2D", "Conv3D")), _conv_factor),
    (_each(_L, ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D")),
     lambda layer: _pool_factor(layer, average=False)),
    (_each(_L, ("AveragePooling1D", "AveragePooling2D", "AveragePooling3D")),
     lambda layer: _pool_factor(layer, average=True)),
    ((_L.BatchNormalization,), _batch_norm_factor),
)


def _layer_factor(layer):
  """The Lipschitz factor of one layer: its own `lipschitz_constant()` (tfkaf
  layers) or the one `_KERAS_FACTORS` gives."""
  where = f"layer {layer.name!r} ({type(layer).__name__})"
  factor = getattr(layer, "lipschitz_constant", None)
  if factor is None:
    factor = next((fn for types, fn in _KERAS_FACTORS
                   if isinstance(layer, types)), None)
    if factor is None:
      raise ValueError(
          f"lipschitz_bound: no Lipschitz constant known for {where}. "
          "Supported: Dense, Conv1D/2D/3D, pooling, BatchNormalization "
          "(inference), reshaping/dropout layers, tfkaf's activation layers "
          "and fixed activations with a known constant.")
    factor = functools.partial(factor, layer)
  try:
    return float(factor())
  except ValueError as error:
    raise ValueError(f"lipschitz_bound: {where}: {error}") from None


def _leaf_layers(layer):
  if isinstance(layer, keras.Model) and hasattr(layer, "layers"):
    for sub in layer.layers:
      yield from _leaf_layers(sub)
  else:
    yield layer


def lipschitz_factors(model):
  """[(layer name, factor)] whose product is `lipschitz_bound(model)`."""
  if not model.built:
    raise ValueError(f"{model.name} is not built: call it on an input first.")
  layers = (list(_leaf_layers(model)) if isinstance(model, keras.Model)
            else [model])
  return [(layer.name, _layer_factor(layer)) for layer in layers]


def lipschitz_bound(model):
  """An upper bound of the Lipschitz constant of a feed-forward model (l2).

  Returns the product, over the model's layers in order (nested models
  flattened), of an upper bound of each layer's Lipschitz constant w.r.t.
  the Euclidean norm (`lipschitz_factors` lists them), as in Aziznejad et
  al. 2020:

  * Dense: the spectral norm (largest singular value) of the kernel, times
    the constant of its `activation`;
  * ConvND: the spectral norm of the kernel reshaped to
    [k_1*...*k_N*C_in, C_out] (per group), times sqrt(prod_i ceil(k_i /
    s_i)) (each input pixel enters at most that many patches; k_i for
    dilated convolutions), times the constant of its `activation`: a true
    upper bound of the convolution's operator norm, for any padding;
  * tfkaf's layers: their `lipschitz_constant()`: DeepBSpline the largest
    |slope| over channels (explicit linear term included; at most
    max(|slope_min|, |slope_max|) with slope projection), LGReLU its
    largest |slope| (max(g, r) for g, r >= 0), Maxout max |m|, PReLU
    max(1, |alpha|), KAF / KAF2D the (loose) sum_i |alpha[c, i]| *
    sup|k'| per channel, `Activation` its activation's;
  * fixed activations: the constant of their registry entry (relu-like
    ones 1, sigmoid 1/4, selu 1.758, gelu 1.129, ...); Keras' ReLU,
    LeakyReLU, ELU, PReLU layers; pooling, BatchNormalization (inference
    scale), reshaping and dropout layers: their constants.

  The product bounds the model's constant when each layer feeds the next
  (a chain). A layer it cannot bound (e.g. a merge layer, or an activation
  with no finite constant such as hard_shrink or exponential) raises
  ValueError naming it.

  Args:
    model: a built Keras model (Sequential or a chain-shaped functional
      model), or a single built layer.

  Returns:
    The product, a Python float.
  """
  return float(math.prod(factor for _, factor in lipschitz_factors(model)))
