"""Plots of learned activation functions.

`activations(model_or_layer, path)` draws every trainable tfkaf activation in
a model: one curve per channel for KAF, DeepBSpline, LGReLU and Maxout
(evaluated by calling the layer itself on a grid, so what is drawn is what
the model computes), and heat maps of g(x1, x2) for 2D-KAF.
"""

import os

import numpy as np

__all__ = ["activations", "activations_from_file"]

_MAX_CHANNELS = 16
_POINTS = 401


def _tfkaf_layers(model_or_layer):
  from tfkaf import layers as tfkaf_layers  # pylint: disable=g-import-not-at-top

  kinds = tuple(getattr(tfkaf_layers, name)
                for name in ("KAF", "KAF2D", "DeepBSpline", "LGReLU", "Maxout")
                if hasattr(tfkaf_layers, name))
  if isinstance(model_or_layer, kinds):
    return [model_or_layer]
  found = []
  for layer in getattr(model_or_layer, "_flatten_layers", lambda: [])():
    if isinstance(layer, kinds):
      found.append(layer)
  return found


def _extent(layer):
  for name in ("boundary", "range"):
    value = getattr(layer, name, None)
    if isinstance(value, (int, float)):
      return 1.25 * float(value)
  return 3.0


def _is_2d(layer):
  from tfkaf import layers as tfkaf_layers  # pylint: disable=g-import-not-at-top
  return isinstance(layer, getattr(tfkaf_layers, "KAF2D", ()))


def _channels(layer):
  weights = [w for w in layer.weights if len(w.shape) >= 1]
  return int(weights[0].shape[0])


def _call_on_rows(layer, rows):
  """Calls `layer` on [points, C] rows, reshaped to the rank it was built for
  (channels on its axis, size-1 spatial dims); returns [points, C_out]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = layer.input_spec
  spec = spec[0] if isinstance(spec, (list, tuple)) else spec
  ndim = getattr(spec, "ndim", None) or 2
  axis = getattr(layer, "axis", -1)
  axis = axis % ndim
  points, channels = rows.shape
  x = rows.reshape((points, channels) + (1,) * (ndim - 2))
  x = np.moveaxis(x, 1, axis)
  y = np.asarray(layer(tf.constant(x.astype(np.float32))), dtype=np.float64)
  y = np.moveaxis(y, axis, 1)
  return y.reshape(points, -1)


def _curves(layer, grid):
  """[points, C] outputs of a per-channel activation on `grid`."""
  channels = _channels(layer)
  x = np.repeat(grid[:, None], channels, axis=1)
  return _call_on_rows(layer, x), channels


def _surfaces(layer, grid):
  """[points, points, H] outputs of a 2D-KAF on the grid x grid plane."""
  pairs = _channels(layer)
  x1, x2 = np.meshgrid(grid, grid, indexing="xy")
  x = np.concatenate([np.repeat(x1.reshape(-1, 1), pairs, axis=1),
                      np.repeat(x2.reshape(-1, 1), pairs, axis=1)], axis=1)
  y = _call_on_rows(layer, x)
  return y.reshape(len(grid), len(grid), pairs), pairs


def _draw_layer(layer, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  extent = _extent(layer)
  if _is_2d(layer):
    grid = np.linspace(-extent, extent, 81)
    values, count = _surfaces(layer, grid)
  else:
    grid = np.linspace(-extent, extent, _POINTS)
    values, count = _curves(layer, grid)
  shown = min(count, _MAX_CHANNELS)
  cols = min(4, shown)
  rows = (shown + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows),
                           squeeze=False)
  for index in range(rows * cols):
    ax = axes[index // cols][index % cols]
    if index >= shown:
      ax.axis("off")
      continue
    if _is_2d(layer):
      image = ax.imshow(values[:, :, index], origin="lower", cmap="viridis",
                        extent=(-extent, extent, -extent, extent))
      fig.colorbar(image, ax=ax, fraction=0.046)
      ax.set_xlabel("x1")
      ax.set_ylabel("x2")
    else:
      ax.plot(grid, values[:, index], lw=1.6)
      ax.axhline(0, color="0.7", lw=0.6)
      ax.axvline(0, color="0.7", lw=0.6)
    ax.set_title(f"channel {index}", fontsize=9)
  fig.suptitle(f"{layer.name} ({type(layer).__name__}): {shown} of {count} "
               "channels")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def activations(model_or_layer, path):
  """Plots the learned activations of a model or of one tfkaf layer.

  Args:
    model_or_layer: a built Keras model or tfkaf layer.
    path: PNG path. A model with several tfkaf layers gives one file per
      layer, named `<stem>_<layer name>.png`.

  Returns:
    The list of paths written.

  Raises:
    ValueError: if there is no built tfkaf activation layer to plot.
  """
  found = [layer for layer in _tfkaf_layers(model_or_layer) if layer.built]
  if not found:
    raise ValueError("no built tfkaf activation layer (KAF, KAF2D, "
                     "DeepBSpline, LGReLU, Maxout) to plot in "
                     f"{getattr(model_or_layer, 'name', model_or_layer)!r}")
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  if len(found) == 1:
    return [_draw_layer(found[0], path)]
  stem, ext = os.path.splitext(path)
  return [_draw_layer(layer, f"{stem}_{layer.name}{ext or '.png'}")
          for layer in found]


def activations_from_file(model_path, out_dir):
  """Loads a `.keras` model and plots its tfkaf activations into out_dir."""
  import keras  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top,unused-import

  if not os.path.exists(model_path):
    raise FileNotFoundError(f"no model file at {model_path}")
  model = keras.models.load_model(model_path)
  stem = os.path.splitext(os.path.basename(model_path))[0]
  return activations(model, os.path.join(out_dir, f"{stem}.png"))
