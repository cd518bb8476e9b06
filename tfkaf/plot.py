"""Plots of learned activation functions.

`activations(model_or_layer, path)` draws every trainable tfkaf activation in
a model: one curve per channel for KAF, DeepBSpline, LGReLU and Maxout
(evaluated by calling the layer itself on a grid, so what is drawn is what
the model computes), and heat maps of g(x1, x2) for 2D-KAF. Given `data`
(inputs of the model), each panel also shows where the layer's inputs lie on
that data: a histogram behind each curve, the input pairs as dots on each
2D-KAF map, and the share of inputs outside the layer's grid (the KAF
dictionary or spline range) in the panel's title. The activations are those
of KAF and 2D-KAF (Scardapane et al., 2019, "Kafnets: kernel-based
non-parametric activation functions for neural networks", Neural Networks
110) and DeepSplines (Bohra et al., 2020, "Learning activation functions in
deep (spline) neural networks", IEEE Open Journal of Signal Processing 1).
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


def _grid_limit(layer):
  """The half-width of the layer's own grid (KAF boundary, spline range)."""
  for name in ("boundary", "range"):
    value = getattr(layer, name, None)
    if isinstance(value, (int, float)):
      return float(value)
  return None


def _extent(layer, inputs=None):
  """Half-width of the plotted interval: 1.25 x the layer's grid, widened to
  cover 99.5% of the inputs (at most 4 x the grid)."""
  limit = _grid_limit(layer)
  extent = 1.25 * limit if limit else 3.0
  if inputs is not None and inputs.size:
    spread = float(np.quantile(np.abs(inputs), 0.995)) * 1.05
    extent = max(extent, min(spread, 4.0 * extent / 1.25))
  return extent


def _pre_activations(model_or_layer, layers, data):
  """{layer name: [N, C] inputs of the layer on `data`, channels last}; empty
  when `data` is None or the inputs cannot be traced through the model."""
  import keras  # pylint: disable=g-import-not-at-top

  if data is None:
    return {}
  if len(layers) == 1 and layers[0] is model_or_layer:
    values = [np.asarray(data)]
  else:
    try:
      probe = keras.Model(model_or_layer.inputs,
                          [layer.input for layer in layers])
      feed = list(data) if isinstance(data, (list, tuple)) else [data]
      values = probe([np.asarray(x, np.float32) for x in feed],
                     training=False)
    except (AttributeError, ValueError, TypeError):
      return {}
    values = list(values) if isinstance(values, (list, tuple)) else [values]
  found = {}
  for layer, value in zip(layers, values):
    value = np.asarray(value, np.float64)
    axis = getattr(layer, "axis", -1) % value.ndim
    value = np.moveaxis(value, axis, -1)
    found[layer.name] = value.reshape(-1, value.shape[-1])
  return found


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


def _outside(values, limit):
  """' · N% outside ±limit' for the share of `values` beyond the grid."""
  if values is None or not limit or not values.size:
    return ""
  share = float(np.mean(np.abs(values) > limit))
  return f" · {share:.0%} outside ±{limit:g}"


def _draw_curve(ax, grid, curve, inputs, extent):
  """One channel's curve, over a histogram of its inputs when given."""
  if inputs is not None and inputs.size:
    back = ax.twinx()
    back.hist(np.clip(inputs, -extent, extent), bins=60,
              range=(-extent, extent), color="0.55", alpha=0.35)
    back.set_yticks([])
    ax.set_zorder(back.get_zorder() + 1)
    ax.patch.set_visible(False)
  ax.plot(grid, curve, lw=1.6)
  ax.axhline(0, color="0.7", lw=0.6)
  ax.axvline(0, color="0.7", lw=0.6)
  ax.set_xlim(-extent, extent)


def _draw_surface(fig, ax, surface, pairs, extent):
  """One 2D-KAF channel's map, with its input pairs as dots when given."""
  image = ax.imshow(surface, origin="lower", cmap="viridis",
                    extent=(-extent, extent, -extent, extent))
  fig.colorbar(image, ax=ax, fraction=0.046)
  if pairs is not None and len(pairs):
    shown = pairs[np.random.default_rng(0).permutation(len(pairs))[:400]]
    ax.scatter(shown[:, 0], shown[:, 1], s=2, c="white", alpha=0.45,
               linewidths=0)
  ax.set_xlim(-extent, extent)
  ax.set_ylim(-extent, extent)
  ax.set_xlabel("x1")
  ax.set_ylabel("x2")


def _channel_inputs(inputs, index, count, two_d):
  """Inputs of channel `index` ([N] values, or [N, 2] pairs for 2D-KAF)."""
  if inputs is None:
    return None
  if two_d:
    return np.stack([inputs[:, index], inputs[:, index + count]], axis=1)
  return inputs[:, index]


def _draw_layer(layer, path, inputs=None, dpi=100, channels=_MAX_CHANNELS):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  two_d, limit = _is_2d(layer), _grid_limit(layer)
  extent = _extent(layer, inputs)
  grid = np.linspace(-extent, extent, 81 if two_d else _POINTS)
  values, count = (_surfaces if two_d else _curves)(layer, grid)
  shown = min(count, channels)
  cols = min(4, shown)
  rows = (shown + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows),
                           squeeze=False)
  for index in range(rows * cols):
    ax = axes[index // cols][index % cols]
    if index >= shown:
      ax.axis("off")
      continue
    channel = _channel_inputs(inputs, index, count, two_d)
    if two_d:
      _draw_surface(fig, ax, values[:, :, index], channel, extent)
    else:
      _draw_curve(ax, grid, values[:, index], channel, extent)
    ax.set_title(f"channel {index}{_outside(channel, limit)}", fontsize=9)
  note = "; grey: histogram of its inputs" if inputs is not None else ""
  if two_d and inputs is not None:
    note = "; dots: its input pairs"
  fig.suptitle(f"{layer.name} ({type(layer).__name__}): {shown} of {count} "
               f"channels{note}")
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def activations(model_or_layer, path, data=None, dpi=100, layers=None,
                channels=_MAX_CHANNELS):
  """Plots the learned activations of a model or of one tfkaf layer.

  Args:
    model_or_layer: a built Keras model or tfkaf layer.
    path: PNG path. A model with several tfkaf layers gives one file per
      layer, named `<stem>_<layer name>.png`.
    data: optional inputs of the model (of the layer, when a layer is
      given), e.g. the test set: each panel then shows where the layer's
      inputs lie (see the module docstring). Where the layers' inputs cannot
      be traced through the model (not a functional model), the plots are
      drawn without them.
    dpi: resolution of the PNG files.
    layers: optional names of the layers to draw (default: every tfkaf
      activation layer).
    channels: at most this many channels (the first ones) per layer.

  Returns:
    The list of paths written.

  Raises:
    ValueError: if there is no built tfkaf activation layer to plot.
  """
  found = [layer for layer in _tfkaf_layers(model_or_layer) if layer.built
           and (layers is None or layer.name in layers)]
  if not found:
    raise ValueError("no built tfkaf activation layer (KAF, KAF2D, "
                     "DeepBSpline, LGReLU, Maxout) to plot in "
                     f"{getattr(model_or_layer, 'name', model_or_layer)!r}")
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  inputs = _pre_activations(model_or_layer, found, data)
  if len(found) == 1:
    return [_draw_layer(found[0], path, inputs.get(found[0].name), dpi,
                        channels)]
  stem, ext = os.path.splitext(path)
  return [_draw_layer(layer, f"{stem}_{layer.name}{ext or '.png'}",
                      inputs.get(layer.name), dpi, channels)
          for layer in found]


def activations_from_file(model_path, out_dir, data=None):
  """Loads a `.keras` model and plots its tfkaf activations into out_dir
  (with `data`, over the distribution of their inputs; see `activations`)."""
  import keras  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top,unused-import

  if not os.path.exists(model_path):
    raise FileNotFoundError(f"no model file at {model_path}")
  model = keras.models.load_model(model_path)
  stem = os.path.splitext(os.path.basename(model_path))[0]
  return activations(model, os.path.join(out_dir, f"{stem}.png"), data)
