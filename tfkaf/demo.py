"""`tfkaf demo`: ReLU vs KAF vs 2D-KAF vs DeepBSpline on MNIST-1D.

MNIST-1D (Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439)
is generated locally by the `mnist1d` package: 4000 training and 1000 test
sequences of 40 samples, 10 classes. Its paper reports about 68% test
accuracy for a ReLU MLP and 94% for a ReLU CNN. The demo trains the paper's
two models (an MLP 40-100-100-10 with a residual second layer, a CNN of
three stride-2 convolutions with 25 channels) with the recipe of the
`mnist1d` repository (Adam, learning rate 1e-2, batch 100, no weight decay,
train/test split only), its constant learning rate replaced by a cosine
decay over a fixed number of steps (see `Recipe`), with each activation
family in place of ReLU:

* KAF, kernel activation functions (Scardapane, Van Vaerenbergh, Totaro and
  Uncini, 2019, "Kafnets: kernel-based non-parametric activation functions
  for neural networks", Neural Networks 110), started from ELU by kernel
  ridge regression as in that paper;
* 2D-KAF, the two-input KAF of the same paper;
* DeepBSpline, linear-spline activations (Bohra, Campos, Gupta, Aziznejad
  and Unser, 2020, "Learning activation functions in deep (spline) neural
  networks", IEEE Open Journal of Signal Processing 1), with the shared
  recipe and with that paper's own: a separate Adam (learning rate 1e-3)
  for the activations and a second-order total-variation (TV2) penalty of
  weight 1e-4, the defaults of its reference code.

Fair comparisons: each variant's hidden width is set so that its parameter
count is within 5% of the ReLU model's ("equal parameters"); the full run
also trains each at the ReLU model's width ("equal width"). Every model is
trained with several seeds for the same number of steps; the test accuracy
of its final weights (nothing is chosen on the test set) is compared with
ReLU's by Welch's two-sample t-test over the seeds (Welch, 1947,
Biometrika 34). The table, the per-seed numbers (JSON),
plots of the learned activations over a histogram of their inputs, and the
accuracy curves are written to the output directory; the seed-0 model of the
best row is exported as a SavedModel and reloaded in a fresh process to
show that it serves. The runs go to worker processes running TensorFlow
single-threaded (see `train_all`); `s/epoch` is the median wall time of an
epoch (40 steps) in such a worker.
"""

import dataclasses
import json
import math
import os
import platform
import time

import numpy as np
import tensorflow as tf

from tfkaf import _process

__all__ = [
    "ARCHITECTURES",
    "Config",
    "Recipe",
    "RunResult",
    "VARIANTS",
    "VERDICT_RULE",
    "build_model",
    "configs",
    "export_portable",
    "format_mean_std",
    "load_mnist1d",
    "match_width",
    "parameter_count",
    "plot_curves",
    "results_json",
    "run",
    "serve_in_fresh_process",
    "table",
    "train_all",
    "verdict",
    "verdict_lines",
    "welch_t_test",
    "write_docs",
]

VARIANTS = ("relu", "kaf", "kaf2d", "spline")
ARCHITECTURES = ("mlp", "cnn")
# The ReLU models of the MNIST-1D paper: hidden units / channels per layer.
BASE_WIDTH = {"mlp": 100, "cnn": 25}
_LAYERS = {"mlp": 2, "cnn": 3}
_CNN_KERNELS = (5, 3, 3)  # stride 2, zero padding 1: 40 -> 19 -> 10 -> 5
_CNN_LENGTH = 5
_INPUT = 40
_CLASSES = 10
TOLERANCE = 0.05  # equal parameters: within 5% of the ReLU model's count

# Activation layer settings (tfkaf's defaults; KAF from ELU by kernel ridge
# regression, as in the Kafnets paper).
KAF_OPTIONS = {"D": 20, "boundary": 3.0, "init": "elu"}
KAF2D_OPTIONS = {"D": 10, "boundary": 3.0}
SPLINE_OPTIONS = {"size": 51, "range": 4.0}

VERDICT_ALPHA = 0.05
VERDICT_RULE = (
    "verdict: Welch's two-sample t-test (unequal variances, two-sided) of "
    "the variant's per-seed test accuracies against the ReLU model's of the "
    f"same architecture; 'better' or 'worse' when p < {VERDICT_ALPHA} (by "
    "the sign of the difference of the means), else 'no clear difference'. "
    "The accuracy tested is that of each run's final weights (no epoch or "
    "model is chosen on the test set).")


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


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def load_mnist1d(seed=42):
  """Returns (x_train, y_train, x_test, y_test) as float32 / int32 arrays."""
  from mnist1d.data import get_dataset_args  # pylint: disable=g-import-not-at-top
  from mnist1d.data import make_dataset  # pylint: disable=g-import-not-at-top

  args = get_dataset_args()
  args.seed = seed
  data = make_dataset(args)  # generated here; nothing is downloaded
  return (data["x"].astype(np.float32), data["y"].astype(np.int32),
          data["x_test"].astype(np.float32), data["y_test"].astype(np.int32))


# ---------------------------------------------------------------------------
# Models and their parameter counts
# ---------------------------------------------------------------------------


def _activation(variant, name, options=None):
  import keras  # pylint: disable=g-import-not-at-top
  from tfkaf import layers  # pylint: disable=g-import-not-at-top

  options = dict(options or {})
  if variant == "relu":
    return keras.layers.Activation("relu", name=name)
  if variant == "kaf":
    return layers.KAF(name=name, **{**KAF_OPTIONS, **options})
  if variant == "kaf2d":
    return layers.KAF2D(name=name, **{**KAF2D_OPTIONS, **options})
  if variant == "spline":
    return layers.DeepBSpline(name=name, **{**SPLINE_OPTIONS, **options})
  raise ValueError(f"unknown demo variant {variant!r}; choose from {VARIANTS}")


def _widths(architecture, width):
  if architecture not in ARCHITECTURES:
    raise ValueError(f"unknown architecture {architecture!r} (mlp or cnn)")
  if width is None:
    width = BASE_WIDTH[architecture]
  if isinstance(width, (int, np.integer)):
    return (int(width),) * _LAYERS[architecture]
  width = tuple(int(w) for w in width)
  if len(width) != _LAYERS[architecture] or min(width) < 1:
    raise ValueError(f"{architecture} takes {_LAYERS[architecture]} widths "
                     f">= 1, got {width}")
  if architecture == "mlp" and width[0] != width[1]:
    raise ValueError(f"the MLP's residual layer needs equal widths: {width}")
  return width


def build_model(variant, architecture="mlp", width=None, options=None):
  """The demo network with one activation family.

  Args:
    variant: "relu", "kaf", "kaf2d" or "spline".
    architecture: "mlp" (40-w-w-10, the second hidden layer residual, as in
      the MNIST-1D paper) or "cnn" (three Conv1D of kernel 5, 3, 3, stride 2,
      zero padding 1, then a Dense layer on the flattened 5 x w features).
    width: the number of channels after each activation: an int, a tuple
      (one per layer) or None for the paper's (100 for the MLP, 25 for the
      CNN). 2D-KAF halves its input, so its layers produce 2 * width.
    options: keyword arguments for the activation layers.
  """
  import keras  # pylint: disable=g-import-not-at-top

  widths = _widths(architecture, width)
  factor = 2 if variant == "kaf2d" else 1
  inputs = keras.Input((_INPUT,), name="signal")
  if architecture == "mlp":
    h = inputs
    for i, w in enumerate(widths):
      g = keras.layers.Dense(factor * w, name=f"dense{i}")(h)
      g = _activation(variant, f"act{i}", options)(g)
      h = keras.layers.Add(name=f"residual{i}")([h, g]) if i else g
  else:
    h = keras.layers.Reshape((_INPUT, 1), name="channels")(inputs)
    for i, (w, kernel) in enumerate(zip(widths, _CNN_KERNELS)):
      h = keras.layers.ZeroPadding1D(1, name=f"pad{i}")(h)
      h = keras.layers.Conv1D(factor * w, kernel, strides=2,
                              name=f"conv{i}")(h)
      h = _activation(variant, f"act{i}", options)(h)
    h = keras.layers.Flatten(name="flatten")(h)
  outputs = keras.layers.Dense(_CLASSES, name="logits")(h)
  return keras.Model(inputs, outputs, name=f"{architecture}_{variant}")


def _activation_parameters(variant, options=None):
  """Trainable activation parameters per channel after the activation."""
  options = dict(options or {})
  if variant == "relu":
    return 0
  if variant == "kaf":
    return options.get("D", KAF_OPTIONS["D"])
  if variant == "kaf2d":
    return options.get("D", KAF2D_OPTIONS["D"]) ** 2
  if variant == "spline":
    size = options.get("size", SPLINE_OPTIONS["size"])
    return size + (2 if options.get("explicit_linear") else 0)
  raise ValueError(f"unknown demo variant {variant!r}; choose from {VARIANTS}")


def parameter_count(variant, architecture="mlp", width=None, options=None):
  """The parameter count of `build_model(...)`, without building it."""
  widths = _widths(architecture, width)
  factor = 2 if variant == "kaf2d" else 1
  per_channel = _activation_parameters(variant, options)
  total = per_channel * sum(widths)
  if architecture == "mlp":
    fan_in = (_INPUT,) + widths[:-1]
    total += sum((f + 1) * factor * w for f, w in zip(fan_in, widths))
    return total + (widths[-1] + 1) * _CLASSES
  fan_in = (1,) + widths[:-1]
  total += sum((k * f + 1) * factor * w
               for k, f, w in zip(_CNN_KERNELS, fan_in, widths))
  return total + (_CNN_LENGTH * widths[-1] + 1) * _CLASSES


def match_width(variant, architecture="mlp", options=None):
  """The widths whose parameter count is closest to the ReLU model's.

  Uniform widths first; where none comes within `TOLERANCE`, the CNN may
  also give its last layer up to 3 channels more or fewer than the others.
  Returns a tuple of widths.

  Raises:
    ValueError: if no candidate comes within `TOLERANCE`.
  """
  target = parameter_count("relu", architecture)
  layers, top = _LAYERS[architecture], 4 * BASE_WIDTH[architecture]

  def gap(widths):
    return abs(parameter_count(variant, architecture, widths, options)
               - target) / target

  best = min(((w,) * layers for w in range(1, top)), key=gap)
  if gap(best) > TOLERANCE and architecture == "cnn":
    best = min(((w,) * (layers - 1) + (w + d,) for w in range(1, top)
                for d in range(-3, 4) if w + d >= 1), key=gap)
  if gap(best) > TOLERANCE:
    raise ValueError(f"no width gives {architecture}_{variant} a parameter "
                     f"count within {TOLERANCE:.0%} of {target}")
  return best


# ---------------------------------------------------------------------------
# What is trained
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
  """One row of the table: a model and how it is trained.

  budget: "params" (width set so that the parameter count is within 5% of
    the ReLU model's; for ReLU this is the paper's model) or "width" (the
    ReLU model's width, so more parameters).
  recipe: "shared" (the recipe of every model) or "deepsplines" (the shared
    recipe plus the DeepSplines paper's optimizer for the activations and
    TV2 penalty).
  options: activation layer arguments in place of the defaults (a tuple of
    (name, value) pairs, e.g. (("init", "relu"),)); the width is matched
    with them.
  """
  architecture: str
  variant: str
  budget: str = "params"
  recipe: str = "shared"
  options: tuple = ()

  @property
  def name(self):
    name = f"{self.architecture}_{self.variant}"
    if self.recipe == "deepsplines":
      name += "_ds"
    if self.budget == "width" and self.variant != "relu":
      name += "_eqwidth"
    return name

  @property
  def widths(self):
    if self.budget == "width" or self.variant == "relu":
      return _widths(self.architecture, None)
    return match_width(self.variant, self.architecture, dict(self.options))

  @property
  def parameters(self):
    return parameter_count(self.variant, self.architecture, self.widths,
                           dict(self.options))


def configs(quick=False, architectures=None):
  """The table's rows: every variant at equal parameters, the DeepSplines
  recipe on top, and (full run) every variant at equal width."""
  if architectures is None:
    architectures = ("mlp",) if quick else ARCHITECTURES
  rows = []
  for architecture in architectures:
    rows += [Config(architecture, v) for v in VARIANTS]
    rows.append(Config(architecture, "spline", recipe="deepsplines"))
    if not quick:
      rows += [Config(architecture, v, budget="width")
               for v in VARIANTS if v != "relu"]
  return rows


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


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


class _Progress:
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


def _model_for(config, recipe):
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


def _train(config, seed, data, recipe, strategy, progress):
  """Trains one configuration with one seed; returns (model, RunResult)."""
  import keras  # pylint: disable=g-import-not-at-top

  x, y, x_test, y_test = data
  steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
  epochs = math.ceil(recipe.steps / steps_per_epoch)
  with strategy.scope():
    keras.utils.set_random_seed(seed)
    model = _model_for(config, recipe)
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


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def _beta_fraction(a, b, x):
  """The continued fraction of the regularized incomplete beta function
  (modified Lentz's method)."""
  tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
  d = 1.0 / (d if abs(d) > tiny else tiny)
  result = d
  for m in range(1, 300):
    for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                      -(a + m) * (a + b + m) * x / ((a + 2 * m) *
                                                    (a + 2 * m + 1))):
      d = 1.0 + numerator * d
      d = 1.0 / (d if abs(d) > tiny else tiny)
      c = 1.0 + numerator / c
      c = c if abs(c) > tiny else tiny
      result *= c * d
    if abs(c * d - 1.0) < 1e-15:
      break
  return result


def _betainc(a, b, x):
  """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
  if x <= 0.0 or x >= 1.0:
    return 0.0 if x <= 0.0 else 1.0
  front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                   + a * math.log(x) + b * math.log1p(-x))
  if x < (a + 1.0) / (a + b + 2.0):
    return front * _beta_fraction(a, b, x) / a
  return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def welch_t_test(a, b):
  """Welch's two-sample t-test: (t, degrees of freedom, two-sided p).

  p is 1 when either sample has fewer than 2 values; when both samples have
  zero variance, p is 0 for different means and 1 for equal ones.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or len(b) < 2:
    return 0.0, 0.0, 1.0
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  diff = a.mean() - b.mean()
  if va + vb == 0.0:
    return (math.copysign(math.inf, diff) if diff else 0.0, 0.0,
            0.0 if diff else 1.0)
  t = diff / math.sqrt(va + vb)
  dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
  return float(t), float(dof), float(_betainc(dof / 2.0, 0.5,
                                             dof / (dof + t * t)))


def verdict(variant_scores, baseline_scores, alpha=VERDICT_ALPHA):
  """'better', 'worse' or 'no clear difference' (see `VERDICT_RULE`), and p."""
  t, _, p = welch_t_test(variant_scores, baseline_scores)
  if p < alpha:
    return ("better" if t > 0 else "worse"), p
  return "no clear difference", p


def _p(p):
  return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def format_mean_std(values, scale=100.0, digits=1):
  """'mean ± std' (sample std; just the mean for a single value)."""
  values = np.asarray(values, np.float64) * scale
  if len(values) < 2:
    return f"{values.mean():.{digits}f}"
  return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

_COLUMNS = ("model", "budget", "width", "params", "test acc %",
            "best-epoch acc %*", "s/epoch", "vs ReLU (Welch p)")
_FOOTNOTE = ("test acc: of the final weights, mean ± std over seeds. "
             "*best-epoch acc: the best test accuracy over all epochs, i.e. "
             "an epoch chosen on the test set: optimistic, for comparison "
             "with published figures only, never used for a verdict.")


def _baseline(entries, architecture):
  for config, runs in entries:
    if config.architecture == architecture and config.variant == "relu":
      return runs
  return None


def _cells(config, runs, baseline):
  accuracy = [r.test_accuracy for r in runs]
  if config.variant == "relu":
    judged = "reference"
  elif baseline is None:
    judged = "-"
  else:
    word, p = verdict(accuracy, [r.test_accuracy for r in baseline])
    judged = f"{word} ({_p(p)})" if len(runs) > 1 else f"{word} (1 seed)"
  budget = "paper" if config.variant == "relu" else (
      "= params" if config.budget == "params" else "= width")
  widths = config.widths
  width = str(widths[0]) if len(set(widths)) == 1 else ",".join(
      str(w) for w in widths)
  return (config.name, budget, width, str(config.parameters),
          format_mean_std(accuracy),
          format_mean_std([r.best_test_accuracy for r in runs]),
          format_mean_std([r.seconds_per_epoch for r in runs], 1.0, 3),
          judged)


def table(entries, markdown=False):
  """The comparison table of [(Config, [RunResult, ...]), ...] as text (or
  Markdown), with its footnote."""
  rows = [_COLUMNS] + [
      _cells(config, runs, _baseline(entries, config.architecture))
      for config, runs in entries]
  if markdown:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(
        " --- " if i < 2 else " ---: " for i in range(len(_COLUMNS))) + "|")
    return "\n".join(lines) + "\n\n" + _FOOTNOTE
  widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
  lines = ["  ".join(cell.ljust(w) if i in (0, 1, 7) else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
           for row in rows]
  return "\n".join(lines) + "\n" + _FOOTNOTE


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

_COLORS = {"relu": "black", "kaf": "tab:blue", "kaf2d": "tab:orange",
           "spline": "tab:green"}


def _mean_curve(runs):
  """Steps, mean and std over seeds of the test accuracy per epoch (where
  runs differ in length, over the runs that reached that epoch)."""
  curves = [r.history["test_accuracy"] for r in runs]
  stack = np.full((len(curves), max(len(c) for c in curves)), np.nan)
  for i, curve in enumerate(curves):
    stack[i, :len(curve)] = curve
  steps = np.arange(1, stack.shape[1] + 1) * (runs[0].steps //
                                               runs[0].epochs)
  return steps, np.nanmean(stack, 0), np.nanstd(stack, 0)


def _style(config):
  if config.recipe == "deepsplines":
    return ":"
  return "--" if config.budget == "width" and config.variant != "relu" else "-"


def plot_curves(entries, path, dpi=110):
  """Mean test-accuracy curve per row with a ±1 std band over seeds, one
  panel per architecture (the y axis from 12 points below the lowest final
  mean), the legend beside the data."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  architectures = [a for a in ARCHITECTURES
                   if any(c.architecture == a for c, _ in entries)]
  fig, axes = plt.subplots(len(architectures), 1, squeeze=False,
                           figsize=(9.0, 3.6 * len(architectures)))
  for ax, architecture in zip(axes[:, 0], architectures):
    finals = [np.mean([r.test_accuracy for r in runs])
              for config, runs in entries
              if config.architecture == architecture]
    ax.set_ylim(max(0.0, min(finals) - 0.12), min(1.0, max(finals) + 0.03))
    for config, runs in entries:
      if config.architecture != architecture:
        continue
      steps, mean, std = _mean_curve(runs)
      color = _COLORS[config.variant]
      ax.plot(steps, mean, _style(config), color=color, lw=1.4,
              label=f"{config.name} ({len(runs)} seed"
              f"{'s' if len(runs) > 1 else ''})")
      ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12,
                      lw=0)
    ax.set_title(f"{architecture.upper()}: test accuracy per epoch (mean, "
                 "band ±1 std over seeds; verdicts use the last point)",
                 fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


# ---------------------------------------------------------------------------
# Export and serving (unchanged)
# ---------------------------------------------------------------------------


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


def _strategy(name):
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()



# ---------------------------------------------------------------------------
# Results: JSON, Markdown, the whole run
# ---------------------------------------------------------------------------


def _default_jobs():
  return max(1, min(os.cpu_count() or 1, 4))


def train_all(rows, seeds, data, recipe, strategy="none", log=print,
              jobs=None):
  """Trains every row with seeds 0 .. seeds-1.

  With strategy "none" the runs go to `jobs` worker processes (default: the
  CPU cores, at most 4), each running TensorFlow single-threaded: these
  models are so small that thread hand-offs cost more than they save.
  With `jobs=0` or another strategy they train in this process, one run
  after another.

  Returns (entries, models): entries [(Config, [RunResult, ...]), ...] in
  the order of `rows`; models {(name, 0): the trained seed-0 Keras model}.
  """
  tasks = [(config, seed) for config in rows for seed in range(seeds)]
  if strategy == "none" and jobs != 0:
    done = _run_workers(tasks, data, recipe, jobs or _default_jobs(), log)
  else:
    progress, dist = _Progress(len(tasks), log), _strategy(strategy)
    done = {}
    for config, seed in tasks:
      model, result = _train(config, seed, data, recipe, dist, progress)
      done[(config.name, seed)] = (result, model.get_weights())
  entries = [(config, [done[(config.name, seed)][0]
                       for seed in range(seeds)]) for config in rows]
  models = {}
  for config in rows:
    models[(config.name, 0)] = _model_for(config, recipe)
    models[(config.name, 0)].set_weights(done[(config.name, 0)][1])
  return entries, models


_WORKER = """
import sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from tfkaf import demo
demo._work(sys.argv[1])
"""


class _Quiet:
  """A progress reporter that reports nothing (inside worker processes)."""

  def start(self, *unused_args):
    pass

  def epoch(self, *unused_args):
    pass


def _work(directory):
  """A worker process: claims tasks of `directory`/job.pkl one at a time
  (an exclusive claim file each) and writes each result beside it."""
  import pickle  # pylint: disable=g-import-not-at-top

  with open(os.path.join(directory, "job.pkl"), "rb") as f:
    tasks, data, recipe = pickle.load(f)
  for index, (config, seed) in enumerate(tasks):
    try:
      os.close(os.open(os.path.join(directory, f"{index}.claim"),
                       os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
      continue
    model, result = _train(config, seed, data, recipe,
                           tf.distribute.get_strategy(), _Quiet())
    path = os.path.join(directory, f"{index}.pkl")
    with open(path + ".part", "wb") as f:
      pickle.dump((result, model.get_weights()), f)
    os.replace(path + ".part", path)


def _run_workers(tasks, data, recipe, jobs, log):
  """Runs `tasks` [(Config, seed), ...] in `jobs` fresh processes; returns
  {(name, seed): (RunResult, weights)}, logging each run as it ends."""
  import pickle  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top

  # The slowest runs first, so that the workers finish together.
  order = sorted(range(len(tasks)), key=lambda i: (
      tasks[i][0].architecture != "cnn", -tasks[i][0].parameters))
  tasks = [tasks[i] for i in order]
  with tempfile.TemporaryDirectory(prefix="tfkaf_demo_") as directory:
    with open(os.path.join(directory, "job.pkl"), "wb") as f:
      pickle.dump((tasks, data, recipe), f)
    jobs = min(jobs, len(tasks))
    log(f"{len(tasks)} runs in {jobs} worker process(es), single-threaded "
        "TensorFlow each")
    outcomes = [None] * jobs

    def work(slot):
      outcomes[slot] = _process.run_python(_WORKER, (directory,),
                                           timeout=24 * 3600)

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(jobs)]
    for thread in threads:
      thread.start()
    done = _collect(tasks, directory, threads, log)
    for thread in threads:
      thread.join()
    failed = [o for o in outcomes if o is not None and o.returncode != 0]
    if failed or len(done) < len(tasks):
      raise RuntimeError("a training worker failed:\n" + (
          failed[0].stderr[-4000:] if failed else "results missing"))
    return done


def _collect(tasks, directory, threads, log):
  """Loads the workers' results as they appear, logging one line each."""
  import pickle  # pylint: disable=g-import-not-at-top

  done, start = {}, time.perf_counter()
  while len(done) < len(tasks):
    alive = any(thread.is_alive() for thread in threads)
    for index, (config, seed) in enumerate(tasks):
      path = os.path.join(directory, f"{index}.pkl")
      if (config.name, seed) in done or not os.path.exists(path):
        continue
      with open(path, "rb") as f:
        done[(config.name, seed)] = pickle.load(f)
      result = done[(config.name, seed)][0]
      log(f"[{len(done)}/{len(tasks)}] {config.name} (seed {seed}): final "
          f"test accuracy {result.test_accuracy:.4f}, "
          f"{result.seconds_per_epoch:.3f} s/epoch "
          f"({time.perf_counter() - start:.0f} s since the start)")
    if not alive:
      break
    time.sleep(0.5)
  return done


def _stats(values):
  values = np.asarray(values, np.float64)
  return {"mean": float(values.mean()),
          "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def results_json(entries, recipe, **extra):
  """The results as a JSON-ready dict: recipe, verdict rule, and per row its
  configuration, summary statistics, verdict and per-seed runs."""
  rows = []
  for config, runs in entries:
    baseline = _baseline(entries, config.architecture)
    word, p = ("reference", None)
    if config.variant != "relu" and baseline is not None:
      word, p = verdict([r.test_accuracy for r in runs],
                        [r.test_accuracy for r in baseline])
    rows.append({
        "name": config.name, "architecture": config.architecture,
        "variant": config.variant, "budget": config.budget,
        "recipe": config.recipe, "widths": list(config.widths),
        "parameters": config.parameters, "verdict": word, "p_value": p,
        **{key: _stats([getattr(r, key) for r in runs]) for key in (
            "test_accuracy", "best_test_accuracy", "seconds_per_epoch")},
        "runs": [dataclasses.asdict(r) for r in runs]})
  return {"recipe": dataclasses.asdict(recipe),
          "recipe_text": recipe.describe(), "verdict_rule": VERDICT_RULE,
          "rows": rows, **extra}


def verdict_lines(entries):
  """One line per non-ReLU row: its verdict against ReLU, with the numbers."""
  lines = []
  for config, runs in entries:
    baseline = _baseline(entries, config.architecture)
    if config.variant == "relu" or baseline is None:
      continue
    ours = [r.test_accuracy for r in runs]
    theirs = [r.test_accuracy for r in baseline]
    word, p = verdict(ours, theirs)
    test = (_p(p) if min(len(ours), len(theirs)) > 1
            else "1 seed: no test")
    budget = ("equal parameters" if config.budget == "params"
              else "equal width")
    lines.append(
        f"{config.name} ({budget}, {config.parameters} parameters) vs "
        f"{config.architecture}_relu: {word} ({format_mean_std(ours)}% vs "
        f"{format_mean_std(theirs)}%, {test})")
  return lines


_NOTES = "## Notes"  # from this heading on, docs/results.md is kept as is


def _markdown(entries, recipe, facts, images):
  """The text of docs/results.md (without the kept notes)."""
  mlp, cnn = (_baseline(entries, a) for a in ARCHITECTURES)
  paper = []
  for runs, name, published in ((mlp, "MLP", 68), (cnn, "CNN", 94)):
    if runs:
      accuracy = format_mean_std([r.test_accuracy for r in runs])
      paper.append(f"ReLU {name}: {accuracy}% (MNIST-1D paper: about "
                   f"{published}%)")
  def spelled(options):
    return ", ".join(f"{key}={value}" for key, value in options.items())

  options = (f"KAF {spelled(KAF_OPTIONS)} (ELU start by kernel ridge "
             f"regression); 2D-KAF {spelled(KAF2D_OPTIONS)} (random start); "
             f"DeepBSpline {spelled(SPLINE_OPTIONS)} (leaky-ReLU start).")
  parts = [
      "# `tfkaf demo`: results on MNIST-1D", "",
      f"Written by `{facts['command']}` ({facts['seeds']} seeds per row) on "
      f"{facts['cpus']} CPU cores, TensorFlow {tf.__version__}: wall time "
      f"{facts['wall_seconds'] / 60:.1f} min, 1-minute load average "
      f"{facts['load_start']:.1f} at the start and {facts['load_end']:.1f} "
      "at the end.", "",
      "## Recipe", "",
      "Data: MNIST-1D generated by `mnist1d` (default arguments, seed 42): "
      "4000 training and 1000 test sequences of length 40. Models: the "
      "paper's MLP 40-100-100-10 (second hidden layer residual) and CNN "
      "(Conv1D 25 channels, kernels 5, 3, 3, stride 2, zero padding 1, "
      "then Dense 125-10), with Keras' default (Glorot uniform) "
      "initialisation. Activations: " + options, "",
      "Training: " + recipe.describe(), "",
      "## Table", "", table(entries, markdown=True), "",
      "## Verdicts", "", VERDICT_RULE, ""]
  parts += [f"* {line}" for line in verdict_lines(entries)]
  parts += ["", "Baselines: " + "; ".join(paper) + ".", "", "## Plots", ""]
  parts += [f"![{os.path.splitext(name)[0]}]({name})\n" for name in images]
  return "\n".join(parts)


def write_docs(path, entries, models, recipe, x_test, facts):
  """Writes the results as Markdown to `path` (images beside it), keeping a
  '## Notes' section of an earlier version of the file."""
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  images = [os.path.basename(plot_curves(
      entries, os.path.join(directory, "results_accuracy.png"), dpi=80))]
  for config, _ in entries:
    if config.variant != "relu" and config.budget == "params":
      name = f"results_{config.name}_act0.png"
      plot.activations(models[(config.name, 0)],
                       os.path.join(directory, name), data=x_test, dpi=60,
                       layers=("act0",), channels=8)
      images.append(name)
  notes = ""
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      old = f.read()
    if _NOTES in old:
      notes = "\n" + old[old.index(_NOTES):]
  markdown = _markdown(entries, recipe, facts, images)
  with open(path, "w", encoding="utf-8") as f:
    f.write(markdown.rstrip("\n") + "\n" + notes)
  return path


def _plot_all(entries, models, x_test, out_dir, log):
  """Accuracy curves, and the first activation layer of each non-ReLU row's
  seed-0 model over the histogram of its inputs on the test set."""
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  log(f"wrote {plot_curves(entries, os.path.join(out_dir, 'accuracy.png'))}")
  for config, _ in entries:
    if config.variant != "relu":
      for path in plot.activations(
          models[(config.name, 0)],
          os.path.join(out_dir, f"{config.name}_act0.png"), data=x_test,
          layers=("act0",)):
        log(f"wrote {path}")


def _export_best(entries, models, data, out_dir, log):
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


def _write(out_dir, name, text):
  path = os.path.join(out_dir, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path


def run(out_dir="tfkaf_out", quick=False, strategy="none", log=print,
        seeds=None, write_docs_to=None, recipe=None, rows=None, jobs=None):
  """Runs the demo; returns 0. Writes table, JSON, plots and the SavedModel.

  Args:
    out_dir: output directory.
    quick: one architecture (MLP), equal-parameter rows only, few steps,
      one seed unless `seeds` says otherwise.
    strategy: "none" or "mirrored" (tf.distribute).
    log: where progress and results are printed.
    seeds: seeds per row (default 3; 1 when quick).
    write_docs_to: optional Markdown path for the results (e.g.
      docs/results.md), images beside it.
    recipe, rows: a `Recipe` and a list of `Config` in place of the default.
    jobs: worker processes for the training runs (see `train_all`).
  """
  start, load_start = time.perf_counter(), os.getloadavg()[0]
  seeds = seeds or (1 if quick else 3)
  recipe = recipe or (QUICK_RECIPE if quick else Recipe())
  rows = rows or configs(quick)
  os.makedirs(out_dir, exist_ok=True)
  log("MNIST-1D: generating the data set locally (mnist1d) ...")
  data = load_mnist1d()
  log(f"training {len(rows)} models x {seeds} seed(s) "
      f"({'quick' if quick else 'full'} run, strategy={strategy}): "
      + recipe.describe())
  entries, models = train_all(rows, seeds, data, recipe, strategy, log, jobs)
  text = "\n".join([table(entries), "", VERDICT_RULE]
                   + verdict_lines(entries))
  log("\n" + text)
  _write(out_dir, "results.txt", text + "\n")
  _plot_all(entries, models, data[2], out_dir, log)
  _export_best(entries, models, data, out_dir, log)
  facts = {"command": "tfkaf demo" + (" --quick" if quick else "") + (
      f" --seeds {seeds}" if seeds != (1 if quick else 3) else "") + (
          f" --write-docs {write_docs_to}" if write_docs_to else ""),
           "seeds": seeds, "cpus": os.cpu_count(),
           "platform": platform.platform(), "load_start": load_start,
           "load_end": os.getloadavg()[0],
           "wall_seconds": time.perf_counter() - start}
  _write(out_dir, "results.json", json.dumps(
      results_json(entries, recipe, quick=quick, **facts),
      indent=1))
  if write_docs_to:
    path = write_docs(write_docs_to, entries, models, recipe, data[2], facts)
    log(f"wrote {path}")
  log(f"demo finished in {facts['wall_seconds']:.0f} s (1-minute load "
      f"average {load_start:.1f} at the start, {facts['load_end']:.1f} at "
      "the end)")
  return 0
