"""Training helpers: activation-parameter groups and Lipschitz bounds.

The DeepSplines recipe (Bohra et al. 2020; Aziznejad et al. 2020) trains the
activation parameters with their own optimizer (e.g. Adam, lr 1e-3) and the
network weights with another (e.g. SGD). With Keras' `model.fit`::

    model.compile(
        optimizer=tfkaf.training.MultiOptimizer(
            optimizer=keras.optimizers.SGD(0.1),
            activation_optimizer=keras.optimizers.Adam(1e-3)),
        loss="mse")
    model.fit(x, y)

`MultiOptimizer` is a Keras optimizer that routes each variable to one of
two optimizers; it is registered for serialization (`.keras` files keep it,
with both optimizers' state), works under `mixed_float16` (Keras wraps it in
a LossScaleOptimizer) and under `tf.distribute` strategies.
`activation_variables(model)` returns the activation group.
"""

import math

import keras
import numpy as np

from tfkaf import activations as activations_lib
from tfkaf import layers as tfkaf_layers
from tfkaf.layers._common import is_activation_variable

__all__ = [
    "MultiOptimizer",
    "activation_variables",
    "is_activation_variable",
    "lipschitz_bound",
    "lipschitz_factors",
    "weight_variables",
]


def _trainable_variables(model_or_layer):
  if not model_or_layer.built:
    raise ValueError(
        f"{model_or_layer.name} is not built: call it on an input (or build "
        "it) first, so that its variables exist.")
  return model_or_layer.trainable_variables


def activation_variables(model):
  """The trainable activation parameters of a model (or layer), in order.

  These are the variables of tfkaf's trainable activation layers (`KAF`,
  `KAF2D`, `DeepBSpline`, `LGReLU`, `Maxout`, `tfkaf.layers.PReLU`), also
  inside nested models: the group the DeepSplines recipe trains with its own
  optimizer and that `MultiOptimizer` routes to `activation_optimizer`. (The
  alpha of a plain `keras.layers.PReLU` is not included; use
  `tfkaf.layers.PReLU`, or pass it through
  `MultiOptimizer(activation_variables=...)`.)
  """
  return [v for v in _trainable_variables(model) if is_activation_variable(v)]


def weight_variables(model):
  """The other trainable variables of a model (its weights): the complement
  of `activation_variables`."""
  return [v for v in _trainable_variables(model)
          if not is_activation_variable(v)]


# --------------------------------------------------------------------------
# MultiOptimizer
# --------------------------------------------------------------------------

_BASE_DEFAULTS = {
    "learning_rate": None,
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _variable_path(variable):
  if isinstance(variable, str):
    return variable
  path = getattr(variable, "path", None)
  if not isinstance(path, str):
    raise TypeError(
        "MultiOptimizer(activation_variables=...) takes Keras variables (or "
        f"their `.path` strings), got {variable!r}.")
  return path


@keras.saving.register_keras_serializable(package="tfkaf")
class MultiOptimizer(keras.optimizers.Optimizer):
  """Two optimizers in one: activation parameters and the other weights.

  Each trainable variable is updated by exactly one of the two optimizers:

  * `activation_optimizer` for the activation parameters: by default the
    variables of tfkaf's trainable activation layers
    (`tfkaf.training.is_activation_variable`, the same set as
    `tfkaf.activation_variables(model)`); or, when `activation_variables` is
    given, exactly those variables (Keras variables, or their `.path`
    strings, which is how the config stores them);
  * `optimizer` for every other variable.

  Each inner optimizer keeps its own state, learning rate (schedule),
  clipping, weight decay and iteration count; clipping and weight decay apply
  within each group. The `learning_rate` of the `MultiOptimizer` itself is
  that of `optimizer` (what LR callbacks see and set); `iterations` counts
  the MultiOptimizer's own steps.

  Args:
    optimizer: the optimizer of the weights (an instance, name or config).
    activation_optimizer: the optimizer of the activation parameters.
    activation_variables: optional explicit list of the variables (or
      variable paths) to route to `activation_optimizer`.
    name: optimizer name.

  Create it (and the inner optimizers) inside `strategy.scope()` when
  training under a `tf.distribute` strategy; in a custom training loop
  there, call `optimizer.build(model.trainable_variables)` before the first
  step, as for any Keras optimizer. Options of the base optimizer
  (clipnorm, weight_decay, loss_scale_factor, ...) belong to the inner
  optimizers and are refused here.
  """

  def __init__(self, optimizer, activation_optimizer,
               activation_variables=None, name=None, **kwargs):
    for key, default in _BASE_DEFAULTS.items():
      if key in kwargs:
        value = kwargs.pop(key)
        if value != default and not (key == "learning_rate" and value == 0.0):
          raise ValueError(
              f"MultiOptimizer does not take `{key}`: set it on `optimizer` "
              "and/or `activation_optimizer`.")
    if kwargs:
      raise ValueError(
          f"MultiOptimizer got unexpected arguments: {sorted(kwargs)}.")
    super().__init__(learning_rate=0.0, name=name)
    self.optimizer = keras.optimizers.get(optimizer)
    self.activation_optimizer = keras.optimizers.get(activation_optimizer)
    if self.optimizer is self.activation_optimizer:
      raise ValueError(
          "MultiOptimizer needs two distinct optimizer instances.")
    for which, inner in (("optimizer", self.optimizer),
                         ("activation_optimizer", self.activation_optimizer)):
      if inner.loss_scale_factor is not None:
        raise ValueError(
            f"MultiOptimizer: `{which}` has a loss_scale_factor; loss "
            "scaling must be done by the outer optimizer (Keras wraps the "
            "MultiOptimizer in a LossScaleOptimizer under mixed_float16).")
    if activation_variables is None:
      self._activation_paths = None
    else:
      self._activation_paths = tuple(
          _variable_path(v) for v in activation_variables)

  # ------------------------------------------------------------- routing

  def is_routed_to_activation_optimizer(self, variable):
    """Whether `variable` is updated by `activation_optimizer`."""
    if self._activation_paths is None:
      return is_activation_variable(variable)
    return _variable_path(variable) in self._activation_paths

  def _split(self, values, variables):
    groups = ([], []), ([], [])
    for value, variable in zip(values, variables):
      group = groups[int(self.is_routed_to_activation_optimizer(variable))]
      group[0].append(value)
      group[1].append(variable)
    return groups

  # --------------------------------------------------------- optimizer API

  def build(self, variables):
    variables = list(variables)
    if self._activation_paths is not None:
      known = {_variable_path(v) for v in variables}
      missing = [p for p in self._activation_paths if p not in known]
      if missing:
        raise ValueError(
            "MultiOptimizer: these activation_variables are not among the "
            f"variables it is built with: {missing}.")
    (_, weights), (_, acts) = self._split(variables, variables)
    self.optimizer.build(weights)
    self.activation_optimizer.build(acts)
    super().build(variables)

  @property
  def variables(self):
    return (self._variables + self.optimizer.variables
            + self.activation_optimizer.variables)

  def apply(self, grads, trainable_variables=None):
    if trainable_variables is None:
      if not self.built:
        raise ValueError(
            "When passing `grads` without `variables`, the optimizer must "
            "already be built on a list of variables.")
      trainable_variables = self._trainable_variables
    trainable_variables = list(trainable_variables)
    if not self.built:
      with keras.name_scope(self.name, caller=self):
        self.build(trainable_variables)
      self.built = True
    grads = list(grads)
    if len(grads) != len(trainable_variables):
      raise ValueError(
          f"MultiOptimizer got {len(grads)} gradients for "
          f"{len(trainable_variables)} variables.")
    (g_weights, v_weights), (g_acts, v_acts) = self._split(
        grads, trainable_variables)
    if v_weights:
      self.optimizer.apply(g_weights, v_weights)
    if v_acts:
      self.activation_optimizer.apply(g_acts, v_acts)
    self._iterations.assign_add(1)

  def finalize_variable_values(self, var_list):
    (_, weights), (_, acts) = self._split(var_list, var_list)
    self.optimizer.finalize_variable_values(weights)
    self.activation_optimizer.finalize_variable_values(acts)

  @property
  def learning_rate(self):
    return self.optimizer.learning_rate

  @learning_rate.setter
  def learning_rate(self, learning_rate):
    self.optimizer.learning_rate = learning_rate

  def get_config(self):
    return {
        "name": self.name,
        "optimizer": keras.optimizers.serialize(self.optimizer),
        "activation_optimizer": keras.optimizers.serialize(
            self.activation_optimizer),
        "activation_variables": (None if self._activation_paths is None
                                 else list(self._activation_paths)),
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    for key in ("optimizer", "activation_optimizer"):
      config[key] = keras.optimizers.deserialize(
          config[key], custom_objects=custom_objects)
    return cls(**config)


# --------------------------------------------------------------------------
# Lipschitz bound
# --------------------------------------------------------------------------

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

# Lipschitz constants of fixed activations (upper bounds, rounded up), as
# functions of their parameters. Activations missing here (discontinuous ones
# such as hard_shrink/threshold/trec/tlin, exponential, the norm:* family)
# make lipschitz_bound raise.
_ACTIVATION_LIPSCHITZ = {
    "linear": lambda: 1.0,
    "relu": None,  # special-cased: parameters
    "relu6": lambda: 1.0,
    "leaky_relu": lambda negative_slope=0.01: max(1.0, abs(negative_slope)),
    "elu": lambda alpha=1.0: max(1.0, abs(alpha)),
    "celu": lambda alpha=1.0: 1.0,
    "selu": lambda: _SELU_SCALE * _SELU_ALPHA,
    "tanh": lambda: 1.0,
    "hard_tanh": lambda: 1.0,
    "sigmoid": lambda: 0.25,
    "logistic": lambda: 0.25,
    "hard_sigmoid": lambda alpha=1 / 6, beta=0.5: abs(alpha),
    "sparse_sigmoid": lambda: 0.5,
    "softplus": lambda: 1.0,
    "softsign": lambda: 1.0,
    "soft_shrink": lambda lambd=0.5: 1.0,
    "tanh_shrink": lambda: 1.0,
    "log_sigmoid": lambda: 1.0,
    "squareplus": lambda b=4: 1.0,
    "sparse_plus": lambda: 1.0,
    "hard_silu": lambda: 1.5,
    "hard_swish": lambda: 1.5,
    "gelu": lambda approximate=False: 1.1291,
    "gelu_approx": lambda: 1.1291,
    "silu": lambda: 1.0999,
    "swish": lambda: 1.0999,
    "mish": lambda: 1.0886,
    "softmax": lambda axis=-1: 1.0,
    "trel": lambda: 1.0,
    "rect:min": lambda: 1.0,
    "rect:max": lambda: 1.0,
    "rect_min": lambda: 1.0,
    "rect_max": lambda: 1.0,
}


def _relu_lipschitz(negative_slope=0.0, max_value=None, threshold=0.0):
  if threshold:
    return None  # discontinuous at the threshold
  return max(1.0, abs(float(negative_slope)))


def _named_lipschitz(name, params, where):
  if name == "relu":
    value = _relu_lipschitz(**params)
  else:
    fn = _ACTIVATION_LIPSCHITZ.get(name)
    value = None if fn is None else fn(**params)
  if value is None:
    raise ValueError(
        f"lipschitz_bound: no Lipschitz constant known for the activation "
        f"{name!r}{' ' + str(params) if params else ''} ({where}). Known: "
        f"{', '.join(sorted(_ACTIVATION_LIPSCHITZ))}.")
  return float(value)


def _activation_lipschitz(fn, where):
  """Lipschitz constant of a fixed activation (function, object or name)."""
  if fn is None:
    return 1.0
  if isinstance(fn, (str, dict)):
    return _activation_lipschitz(activations_lib.get(fn), where)
  if isinstance(fn, activations_lib.Composed):
    return math.prod(_activation_lipschitz(a, where) for a in fn.activations)
  if isinstance(fn, activations_lib.Partial):
    return _named_lipschitz(fn.name, dict(fn.params), where)
  name = None
  try:
    serialized = activations_lib.serialize(fn)
    if isinstance(serialized, str):
      name = serialized
  except (ValueError, TypeError):
    pass
  if name is None:
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("keras"):
      name = getattr(fn, "__name__", None)
  if name is None:
    raise ValueError(
        f"lipschitz_bound: cannot identify the activation {fn!r} ({where}).")
  return _named_lipschitz(name, {}, where)


def _spectral_norm(matrix):
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.size == 0:
    return 0.0
  return float(np.linalg.norm(matrix, ord=2))


def _tuple(value, rank):
  if isinstance(value, int):
    return (value,) * rank
  return tuple(int(v) for v in value)


def _conv_factor(layer):
  kernel = np.asarray(layer.kernel.numpy(), np.float64)
  spatial = kernel.ndim - 2
  k = kernel.shape[:spatial]
  strides = _tuple(layer.strides, spatial)
  dilation = _tuple(getattr(layer, "dilation_rate", 1), spatial)
  overlap = 1
  for size, stride, rate in zip(k, strides, dilation):
    overlap *= math.ceil(size / stride) if rate == 1 else size
  groups = int(getattr(layer, "groups", 1) or 1)
  cout = kernel.shape[-1]
  per_group = cout // groups
  norm = max(
      _spectral_norm(kernel[..., g * per_group:(g + 1) * per_group]
                     .reshape(-1, per_group))
      for g in range(groups))
  return math.sqrt(overlap) * norm


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


_IDENTITY_LAYERS = (
    keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape,
    keras.layers.Permute, keras.layers.Dropout, keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout, keras.layers.GaussianNoise,
    keras.layers.AlphaDropout, keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D, keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.Softmax,
)
_CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_MAX_POOL = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
             keras.layers.MaxPooling3D)
_AVG_POOL = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
             keras.layers.AveragePooling3D)


def _kaf_channel_bounds(alpha, kernel, gamma):
  total = np.sum(np.abs(alpha), axis=-1)
  if kernel == "gaussian":
    # sup_x |d/dx exp(-gamma (x-d)^2)| = sqrt(2 gamma / e)
    return total * math.sqrt(2.0 * gamma / math.e)
  return total  # relu and softplus kernels: |k'| <= 1


def _layer_factor(layer):
  """(Lipschitz factor, description) of one layer."""
  where = f"layer {layer.name!r} ({type(layer).__name__})"
  if isinstance(layer, _IDENTITY_LAYERS):
    return 1.0
  if isinstance(layer, tfkaf_layers.DeepBSpline):
    return float(np.max(layer.lipschitz_constants().numpy()))
  if isinstance(layer, tfkaf_layers.LGReLU):
    g = np.maximum(layer.gain.numpy(), 0.0)
    r = np.maximum(layer.leak.numpy(), 0.0)
    return float(np.max(np.maximum(g, r)))
  if isinstance(layer, tfkaf_layers.Maxout):
    return float(np.max(np.abs(layer.slopes.numpy())))
  if isinstance(layer, tfkaf_layers.KAF):
    from tfkaf import ops  # pylint: disable=g-import-not-at-top
    gamma = layer.gamma
    if gamma is None and layer.kernel == "gaussian":
      gamma = float(ops.default_gamma(layer.boundary, layer.D))
    return float(np.max(_kaf_channel_bounds(layer.alpha.numpy(),
                                            layer.kernel, gamma)))
  if isinstance(layer, tfkaf_layers.KAF2D):
    from tfkaf import ops  # pylint: disable=g-import-not-at-top
    gamma = layer.gamma
    if gamma is None:
      gamma = float(ops.default_gamma_2d(layer.boundary, layer.D))
    return float(np.max(_kaf_channel_bounds(layer.alpha.numpy(), "gaussian",
                                            gamma)))
  if isinstance(layer, (tfkaf_layers.Activation, keras.layers.Activation)):
    return _activation_lipschitz(layer.activation, where)
  if isinstance(layer, keras.layers.ReLU):
    if layer.threshold:
      raise ValueError(f"lipschitz_bound: ReLU with a threshold is "
                       f"discontinuous ({where}).")
    return max(1.0, abs(float(layer.negative_slope)))
  if isinstance(layer, keras.layers.LeakyReLU):
    return max(1.0, abs(float(layer.negative_slope)))
  if isinstance(layer, keras.layers.ELU):
    return max(1.0, abs(float(layer.alpha)))
  if isinstance(layer, keras.layers.PReLU):
    return max(1.0, float(np.max(np.abs(layer.alpha.numpy()))))
  if isinstance(layer, keras.layers.Dense):
    return (_spectral_norm(layer.kernel.numpy())
            * _activation_lipschitz(layer.activation, where))
  if isinstance(layer, _CONV_LAYERS):
    return _conv_factor(layer) * _activation_lipschitz(layer.activation,
                                                       where)
  if isinstance(layer, _MAX_POOL):
    return _pool_factor(layer, average=False)
  if isinstance(layer, _AVG_POOL):
    return _pool_factor(layer, average=True)
  if isinstance(layer, keras.layers.BatchNormalization):
    scale = 1.0 / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    if layer.scale:
      scale = scale * layer.gamma.numpy()
    return float(np.max(np.abs(scale)))
  raise ValueError(
      f"lipschitz_bound: no Lipschitz constant known for {where}. Supported: "
      "Dense, Conv1D/2D/3D, pooling, BatchNormalization (inference), "
      "reshaping/dropout layers, tfkaf's activation layers and fixed "
      "activations with a known constant.")


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
  layers = list(_leaf_layers(model)) if isinstance(model, keras.Model) else [
      model]
  return [(layer.name, _layer_factor(layer)) for layer in layers]


def lipschitz_bound(model):
  """An upper bound of the Lipschitz constant of a feed-forward model (l2).

  The product over the layers, in order, of each layer's Lipschitz constant
  w.r.t. the Euclidean (l2) norm, as in Aziznejad et al. 2020 (product of the
  weight norms times the largest activation Lipschitz constants):

  * Dense: the spectral norm (largest singular value) of the kernel, times
    the Lipschitz constant of its `activation`;
  * ConvND: the spectral norm of the kernel reshaped to
    [k_1*...*k_N*C_in, C_out] (per group), times sqrt(prod_i ceil(k_i /
    s_i)) (each input pixel enters at most that many patches; k_i for
    dilated convolutions): a true upper bound of the convolution's operator
    norm, for any padding;
  * DeepBSpline: max over channels of `lipschitz_constants()` (max |slope|,
    explicit linear term included; with slope_min/slope_max projection it is
    at most max(|slope_min|, |slope_max|));
  * LGReLU max(g, r, 0); Maxout max |m|; PReLU max(1, |alpha|); KAF / KAF2D
    the (loose) bound sum_i |alpha[c, i]| * sup|k'| per channel;
  * fixed activations with a known constant (relu-like ones 1, sigmoid 1/4,
    selu 1.758, gelu 1.129, ...); pooling, BatchNormalization (inference
    scale), reshaping and dropout layers.

  It is a bound for sequential stacks (each layer feeding the next); a
  layer it cannot bound (e.g. a merge layer, or an activation with no finite
  constant such as hard_shrink or exponential) raises ValueError naming it.

  Args:
    model: a built Keras model (Sequential or a chain-shaped functional
      model), or a single built layer.

  Returns:
    A Python float.
  """
  return float(math.prod(factor for _, factor in lipschitz_factors(model)))
