"""Composite pure-TF forms of the tfkaf ops (the reference implementations).

They expand the input against the dictionary ([..., C, D] intermediates), as
the original kafnets / DeepSplines code does. They serve as test oracle, as
the fallback inside XLA-compiled functions (XLA has no kernel for custom
ops), and as the baseline in benchmarks. Signatures match `tfkaf.ops`.
"""

from tfkaf._kaf_ops import kaf2d_composite as kaf2d
from tfkaf._kaf_ops import kaf_composite as kaf
from tfkaf._spline_ops import linear_spline_composite as linear_spline

__all__ = ["kaf", "kaf2d", "linear_spline"]
