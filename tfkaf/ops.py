"""Fused tfkaf ops: KAF, 2D-KAF and the learnable linear spline.

Each op is a C++ TensorFlow custom op (CPU kernels always, CUDA kernels when
built with CUDA) with a registered gradient; see `tfkaf.reference` for the
composite pure-TF forms used as test oracle, XLA fallback and benchmark
baseline. Inside `tfkaf.portable()` they trace to standard TF ops instead
(inference forms for SavedModels without tfkaf, LiteRT and ONNX).
"""

from tfkaf._kaf_ops import default_gamma
from tfkaf._kaf_ops import default_gamma_2d
from tfkaf._kaf_ops import kaf
from tfkaf._kaf_ops import kaf2d
from tfkaf._spline_ops import linear_spline

__all__ = ["default_gamma", "default_gamma_2d", "kaf", "kaf2d",
           "linear_spline"]
