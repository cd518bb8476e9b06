"""Detects XLA compilation, where custom ops have no kernel.

The op wrappers call the composite pure-TF form instead when the function
being traced is compiled by XLA (`jit_compile=True`, which Keras turns on by
default for models on GPU), so models stay compilable with the same numbers.
"""

from tensorflow.python.framework import ops as framework_ops  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

__all__ = ["in_xla_context"]


def in_xla_context():
  """True while tracing a function (or a function inside one) for XLA."""
  graph = framework_ops.get_default_graph()
  return control_flow_util.GraphOrParentsInXlaContext(graph)
