"""The demo's data, models and their parameter counts, and its table rows.

MNIST-1D (Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439)
is generated locally by the `mnist1d` package. The models are that paper's
MLP (40-100-100-10, the second hidden layer residual) and CNN (three
stride-2 Conv1D of 25 channels), with each activation family in place of
ReLU; `match_width` sets a variant's width so that its parameter count is
within `TOLERANCE` of the ReLU model's.
"""

import dataclasses

import numpy as np


VARIANTS = ("relu", "kaf", "kaf2d", "spline")


ARCHITECTURES = ("mlp", "cnn")


BASE_WIDTH = {"mlp": 100, "cnn": 25}


_LAYERS = {"mlp": 2, "cnn": 3}


_CNN_KERNELS = (5, 3, 3)  # stride 2, zero padding 1: 40 -> 19 -> 10 -> 5


_CNN_LENGTH = 5


_INPUT = 40


_CLASSES = 10


TOLERANCE = 0.05  # equal parameters: within 5% of the ReLU model's count


KAF_OPTIONS = {"D": 20, "boundary": 3.0, "init": "elu"}


KAF2D_OPTIONS = {"D": 10, "boundary": 3.0}


SPLINE_OPTIONS = {"size": 51, "range": 4.0}


def load_mnist1d(seed=42):
  """Returns (x_train, y_train, x_test, y_test) as float32 / int32 arrays."""
  from mnist1d.data import get_dataset_args  # pylint: disable=g-import-not-at-top
  from mnist1d.data import make_dataset  # pylint: disable=g-import-not-at-top

  args = get_dataset_args()
  args.seed = seed
  data = make_dataset(args)  # generated here; nothing is downloaded
  return (data["x"].astype(np.float32), data["y"].astype(np.int32),
          data["x_test"].astype(np.float32), data["y_test"].astype(np.int32))


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


def widths_of(architecture, width):
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

  widths = widths_of(architecture, width)
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
  widths = widths_of(architecture, width)
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
      return widths_of(self.architecture, None)
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
