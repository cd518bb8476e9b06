"""Optimizer groups: activation parameters and the other weights.

The DeepSplines recipe (Bohra et al. 2020; Aziznejad et al. 2020) trains the
activation parameters with their own optimizer (e.g. Adam, lr 1e-3) and the
network weights with another (e.g. SGD). With Keras' `model.fit`::

    model.compile(
        optimizer=tfkaf.optimizers.MultiOptimizer(
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

import keras

from tfkaf import activations as activations_lib
from tfkaf.layers._common import is_activation_variable

__all__ = [
    "MultiOptimizer",
    "activation_variables",
    "is_activation_variable",
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


@keras.saving.register_keras_serializable(
    package=activations_lib.KERAS_PACKAGE)
class MultiOptimizer(keras.optimizers.Optimizer):
  """Two optimizers in one: activation parameters and the other weights.

  Each trainable variable is updated by exactly one of the two optimizers:

  * `activation_optimizer` for the activation parameters: by default the
    variables of tfkaf's trainable activation layers
    (`tfkaf.optimizers.is_activation_variable`, the same set as
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
