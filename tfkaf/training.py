"""Training helpers, kept under their historical name.

This module only re-exports: the optimizer groups live in
`tfkaf.optimizers` (`MultiOptimizer`, `activation_variables`,
`weight_variables`, `is_activation_variable`) and the Lipschitz bounds in
`tfkaf.lipschitz` (`lipschitz_bound`, `lipschitz_factors`).
"""

from tfkaf.lipschitz import lipschitz_bound
from tfkaf.lipschitz import lipschitz_factors
from tfkaf.optimizers import activation_variables
from tfkaf.optimizers import is_activation_variable
from tfkaf.optimizers import MultiOptimizer
from tfkaf.optimizers import weight_variables

__all__ = [
    "MultiOptimizer",
    "activation_variables",
    "is_activation_variable",
    "lipschitz_bound",
    "lipschitz_factors",
    "weight_variables",
]
