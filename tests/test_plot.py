"""tfkaf.plot draws layers built for any rank and channel axis."""

import numpy as np
import pytest

import keras
import tfkaf
from tfkaf import demo
from tfkaf import plot


@pytest.mark.parametrize("variant", ["kaf", "kaf2d", "spline"])
def test_plots_conv_models(variant, tmp_path):
  model = demo.build_model(variant, "cnn")
  model(np.zeros((2, 40), np.float32))
  paths = plot.activations(model, str(tmp_path / f"{variant}.png"))
  assert len(paths) == 3  # one file per activation layer
  assert all((tmp_path / p.split("/")[-1]).stat().st_size > 5_000
             for p in paths)


def test_plots_channels_first_layer(tmp_path):
  model = keras.Sequential([keras.Input((3, 8, 8)), tfkaf.layers.KAF(axis=1)])
  paths = plot.activations(model, str(tmp_path / "nchw.png"))
  assert len(paths) == 1


def test_refuses_model_without_tfkaf_layers(tmp_path):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  with pytest.raises(ValueError, match="no built tfkaf activation layer"):
    plot.activations(model, str(tmp_path / "none.png"))
