"""Keras 3 layers of tfkaf: trainable activations and a fixed-activation layer.

* `KAF`: Kernel Activation Function (Scardapane et al., arXiv:1707.04035).
* `KAF2D`: 2D-KAF, combining pairs of channels (halves the channel count).
* `DeepBSpline`: learnable linear spline (DeepSplines, Bohra et al. 2020),
  with TV2/BV2 regularization, slope projection and sparsification.
* `LGReLU`, `Maxout`, `PReLU`: theanets' trainable piecewise-linear
  activations (`PReLU` is `keras.layers.PReLU` registered as a tfkaf layer).
* `Activation`: any activation of `tfkaf.activations` as a layer.

All are registered for Keras serialization under the package "tfkaf", keep
float32 variables under mixed precision, and work in `tf.function`, XLA
(`jit_compile=True`: the fused ops run as XLA custom calls), `.keras` files and
SavedModel export. Training the activation parameters with their own
optimizer: see `tfkaf.optimizers`; Lipschitz bounds: `tfkaf.lipschitz`.
"""

from tfkaf.layers._common import RowInitializer
from tfkaf.layers._common import is_activation_variable
from tfkaf.layers._kaf import KAF
from tfkaf.layers._kaf import KAF2D
from tfkaf.layers._kaf import kernel_ridge_alpha
from tfkaf.layers._simple import Activation
from tfkaf.layers._simple import LGReLU
from tfkaf.layers._simple import Maxout
from tfkaf.layers._simple import PReLU
from tfkaf.layers._spline import DeepBSpline

# The layers whose variables are activation parameters.
TRAINABLE_ACTIVATION_LAYERS = (KAF, KAF2D, DeepBSpline, LGReLU, Maxout,
                               PReLU)

__all__ = [
    "Activation",
    "DeepBSpline",
    "KAF",
    "KAF2D",
    "LGReLU",
    "Maxout",
    "PReLU",
    "RowInitializer",
    "TRAINABLE_ACTIVATION_LAYERS",
    "is_activation_variable",
    "kernel_ridge_alpha",
]
