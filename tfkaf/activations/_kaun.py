"""The extras of Kaun: `gelu_approx` (its parameterised `hard_sigmoid`,
`sparse_plus`, `sparse_sigmoid`, `squareplus` and `glu` are also Keras 3's
and live with those).
"""

from tfkaf.activations import _math
from tfkaf.activations import _registry
from tfkaf.activations._keras3 import GELU_LIPSCHITZ
from tfkaf.activations._registry import KAUN
from tfkaf.activations._registry import KERAS3



@_registry.builtin(
    "gelu_approx",
    "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))",
    (KAUN, KERAS3 + " (gelu(approximate=True))"),
    lipschitz=GELU_LIPSCHITZ,
)
def gelu_approx(x):
  """GELU, tanh approximation.

  Computed as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`` (the same
  function), which does not cancel for negative inputs.

  Args:
      x: input tensor.
  """
  return _math.gelu_tanh(x)
