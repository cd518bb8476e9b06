"""The fused ops inside XLA, and the composite fallback.

The plugin registers an XLA kernel for every tfkaf op (cc/xla/): inside a
function compiled by XLA (`tf.function(jit_compile=True)`, or a Keras model
compiled with `jit_compile`, which Keras turns on by default on GPU) each op
lowers to an XLA custom call that runs the same fused CPU (or CUDA) kernel,
and XLA fuses everything around it. The op wrappers switch to the composite
pure-TF forms, with the same numbers and a D-fold memory cost, only where
that route is unavailable, with one warning per process:

- the plugin has no XLA kernels (built without them);
- a GPU is visible and the plugin was built without CUDA (XLA would place
  the op on the GPU and find no kernel);
- the environment variable TFKAF_XLA_FALLBACK is set to 1 (to compare the
  two routes, or to step around a problem in the XLA route).
"""

import ctypes
import functools
import os
import threading
import warnings

from tensorflow.python.framework import ops as framework_ops  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

__all__ = ["FALLBACK_ENV", "fused_available", "in_xla_context",
           "use_composite"]

# Set to 1 to make the wrappers use the composite forms inside XLA.
FALLBACK_ENV = "TFKAF_XLA_FALLBACK"

_warned = False
_warn_lock = threading.Lock()


def in_xla_context():
  """True while tracing a function (or a function inside one) for XLA."""
  graph = framework_ops.get_default_graph()
  return control_flow_util.GraphOrParentsInXlaContext(graph)


@functools.lru_cache(maxsize=None)
def _unavailable_reason():
  """Why the plugin's XLA kernels cannot serve this process, or None."""
  from tfkaf import _loader  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  library = _loader._library()  # pylint: disable=protected-access
  if not hasattr(library, "tfkaf_xla_kernels"):
    return "this tfkaf plugin was built without XLA kernels"
  if (tf.config.list_physical_devices("GPU")
      and not library.tfkaf_cuda_compiled()):
    return ("a GPU is visible and this tfkaf plugin was built without CUDA, "
            "so XLA would find no GPU kernel")
  return None


def _reason():
  if os.environ.get(FALLBACK_ENV, "0") not in ("", "0"):
    return f"{FALLBACK_ENV} is set"
  return _unavailable_reason()


def fused_available():
  """True when the fused ops run inside XLA in this process (see module
  docstring); the layers' `supports_jit` follows it."""
  return _reason() is None


def use_composite():
  """True while tracing for XLA where the fused ops cannot be compiled: the
  wrappers then build the composite form. Warns once per process."""
  global _warned
  if not in_xla_context():
    return False
  reason = _reason()
  if reason is None:
    return False
  with _warn_lock:
    if not _warned:
      _warned = True
      warnings.warn(
          f"tfkaf: inside XLA the activations use their composite TF form "
          f"(same numbers, D times the memory of the fused kernel): "
          f"{reason}.", RuntimeWarning, stacklevel=3)
  return True
