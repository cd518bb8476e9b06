"""tfkaf: trainable activation functions for TensorFlow/Keras.

Kernel Activation Functions (Scardapane et al., 2017, arXiv:1707.04035),
2D-KAF, and learnable linear splines (DeepSplines: Bohra et al., 2020;
Aziznejad et al., 2020) as fused C++/CUDA custom ops with registered
gradients, Keras 3 layers, and a library of fixed activations.
"""

__version__ = "0.1.0"

from tfkaf._loader import build_info
from tfkaf._loader import load_ops

# Loading the plugin at import registers the ops, which SavedModels that use
# them need before tf.saved_model.load.
load_ops()

from tfkaf import activations  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf import ops  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf import layers  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf import lipschitz  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf import optimizers  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf import training  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf._export import export  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf._portable import portable  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf.lipschitz import lipschitz_bound  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfkaf.optimizers import activation_variables  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["__version__", "activation_variables", "activations",
           "build_info", "export", "layers", "lipschitz", "lipschitz_bound",
           "load_ops", "ops", "optimizers", "portable", "training"]
