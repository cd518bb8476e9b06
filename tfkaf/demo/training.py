"""How one demo model is trained: the recipe and one run."""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from tfkaf.demo.models import build_model


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How every model is trained.

  The mnist1d repository's recipe (Adam, learning rate 1e-2, batch 100, no
  weight decay, the 4000 training sequences only) with a cosine decay of the
  learning rate to 0 over a fixed number of steps instead of a constant
  rate. `activation_learning_rate` and `tv2` are the DeepSplines recipe's
  extras, used only by configurations with recipe "deepsplines".
  """
  learning_rate: float = 1e-2
  batch_size: int = 100
  steps: int = 4000
  schedule: str = "cosine"  # or "constant"
  activation_learning_rate: float = 1e-3
  tv2: float = 1e-4

  def describe(self):
    schedule = ("cosine decay to 0" if self.schedule == "cosine"
                else "constant")
    return (f"Adam, learning rate {self.learning_rate:g} ({schedule} over "
            f"the {self.steps} steps), batch {self.batch_size}, no weight "
            "decay, all 4000 training sequences, no validation split and "
            "no early stopping: the verdicts use each run's final weights "
            "(the test set is also scored after every epoch, for the curves "
            "and the labelled best-epoch column only). DeepSplines "
            "recipe (rows marked 'ds'): the activation coefficients get "
            f"their own Adam (learning rate {self.activation_learning_rate:g}"
            f", same schedule) and the TV2 penalty {self.tv2:g} x the sum "
            "over channels is added to the loss.")


QUICK_RECIPE = Recipe(steps=360)


@dataclasses.dataclass
class RunResult:
  """One training run (one configuration, one seed).

  test_accuracy: of the final weights (what the verdicts use).
  best_test_accuracy: the best over all epochs, i.e. an epoch chosen on the
    test set itself: optimistic, shown for reference only.
  seconds_per_epoch: the median over the epochs after the first (which also
    builds the training graph).
  """
  name: str
  seed: int
  test_accuracy: float
  best_test_accuracy: float
  best_epoch: int
  train_loss: float
  epochs: int
  steps: int
  seconds_per_epoch: float
  history: dict


class Progress:
  """A progress bar per training run, with the run's place in the whole."""

  def __init__(self, runs, log):
    self._runs, self._log = runs, log
    self._index, self._bar = 0, None

  def start(self, run_name, epochs):
    import keras  # pylint: disable=g-import-not-at-top
    self._index += 1
    self._log(f"[{self._index}/{self._runs}] {run_name}")
    self._bar = keras.utils.Progbar(epochs, unit_name="epoch",
                                    stateful_metrics=["loss", "test_acc"])

  def epoch(self, epoch, values):
    self._bar.update(epoch + 1, list(values.items()))


def _monitor(x_test, y_test, progress):
  """A Keras callback: loss and test accuracy per epoch (for the curves and
  the labelled best-epoch figure only) and the seconds of each epoch."""
  import keras  # pylint: disable=g-import-not-at-top

  class Monitor(keras.callbacks.Callback):
    """See `_monitor`."""

    def on_train_begin(self, logs=None):
      self.curves = {"loss": [], "test_accuracy": []}
      self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
      self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.seconds.append(time.perf_counter() - self._start)
      logits = self.model.predict_on_batch(x_test)
      test = float(np.mean(np.argmax(logits, -1) == y_test))
      self.curves["loss"].append(float((logs or {}).get("loss", 0.0)))
      self.curves["test_accuracy"].append(test)
      progress.epoch(epoch, {"loss": self.curves["loss"][-1],
                             "test_acc": test})

  return Monitor()


def model_for(config, recipe):
  options = dict(config.options)
  if config.recipe == "deepsplines" and config.variant == "spline":
    options["tv2"] = recipe.tv2
  return build_model(config.variant, config.architecture, config.widths,
                     options)


def _adam(learning_rate, recipe):
  import keras  # pylint: disable=g-import-not-at-top

  if recipe.schedule == "cosine":
    learning_rate = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=recipe.steps)
  elif recipe.schedule != "constant":
    raise ValueError(f"unknown schedule {recipe.schedule!r}")
  return keras.optimizers.Adam(learning_rate)


def _optimizer(config, recipe):
  from tfkaf import training  # pylint: disable=g-import-not-at-top

  optimizer = _adam(recipe.learning_rate, recipe)
  if config.recipe != "deepsplines":
    return optimizer
  return training.MultiOptimizer(
      optimizer=optimizer,
      activation_optimizer=_adam(recipe.activation_learning_rate, recipe))


def train_one(config, seed, data, recipe, strategy, progress):
  """Trains one configuration with one seed; returns (model, RunResult)."""
  import keras  # pylint: disable=g-import-not-at-top

  x, y, x_test, y_test = data
  steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
  epochs = math.ceil(recipe.steps / steps_per_epoch)
  with strategy.scope():
    keras.utils.set_random_seed(seed)
    model = model_for(config, recipe)
    model.compile(
        optimizer=_optimizer(config, recipe),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], steps_per_execution=steps_per_epoch)
  progress.start(f"{config.name} (seed {seed})", epochs)
  monitor = _monitor(x_test, y_test, progress)
  model.fit(x, y, batch_size=recipe.batch_size, epochs=epochs, verbose=0,
            callbacks=[monitor])
  curves = monitor.curves
  best = int(np.argmax(curves["test_accuracy"]))
  return model, RunResult(
      name=config.name, seed=seed,
      test_accuracy=curves["test_accuracy"][-1],
      best_test_accuracy=curves["test_accuracy"][best], best_epoch=best + 1,
      train_loss=curves["loss"][-1], epochs=epochs,
      steps=epochs * steps_per_epoch,
      seconds_per_epoch=float(np.median(monitor.seconds[1:] or
                                        monitor.seconds)),
      history=curves)


def strategy_for(name):
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()
