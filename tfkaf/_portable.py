"""`tfkaf.portable()`: trace tfkaf's ops to standard TensorFlow ops only.

Inside the scope, every op wrapper of `tfkaf.ops` (and so every tfkaf layer)
and the few fixed activations of `tfkaf.activations` whose usual form uses an
op that LiteRT or ONNX lacks trace to inference forms built from builtin
TensorFlow ops that the LiteRT converter maps to TFLite builtins (no Flex /
Select TF ops) and that tf2onnx converts. A graph traced in the scope names
no `Tfkaf>*` op, so the SavedModel, LiteRT or ONNX file it gives runs where
tfkaf is not installed.

Outside the scope nothing changes: eager calls, training and the default
`model.export` use the fused ops.

The state is per thread (entering the scope in one thread does not affect
another) and nests; it is restored on exit, also when the body raises.

Only tracing reads the state: a `tf.function` traced before entering the
scope keeps the fused ops when called inside it (and one traced inside the
scope keeps the portable forms outside it). Keras's `model.export` traces a
new function on every call, so calling it inside the scope is enough.
"""

import contextlib
import threading

__all__ = ["is_active", "portable"]

_STATE = threading.local()


def is_active():
  """True while the current thread is inside `tfkaf.portable()`."""
  return getattr(_STATE, "depth", 0) > 0


class portable(contextlib.ContextDecorator):  # pylint: disable=invalid-name
  """Context manager (and decorator): tfkaf traces to standard TF ops only.

  Usage::

      with tfkaf.portable():
        model.export("m.tflite", format="litert")

      @tfkaf.portable()
      def export_all(model):
        ...

  What the portable forms compute (same numbers as the fused ops, to float32
  rounding; written for inference: plain forward ops, no gradient
  registrations, no float64 for float32 inputs, 16-bit inputs computed in
  float32):

  * KAF (`tfkaf.ops.kaf`, every kernel): the sum over the D centres in steps
    of at most `tfkaf._kaf_ops.PORTABLE_CENTRES_PER_STEP` (8) centres, so
    the largest intermediate holds min(D, 8) times as many numbers as the
    input (the reference form builds [..., C, D]: D times).
  * 2D-KAF: the Gaussian grid kernel factorises into two 1-D ones; the
    largest intermediate holds D/2 times as many numbers as the input (the
    reference form builds [..., H, D*D]: D*D/2 times).
  * Linear spline (extrapolation included): segment index, two gathers from
    the [C*K] coefficient table; intermediates of the input's size.
  * `gelu` uses erf instead of erfc, `elu` / `selu` / `celu` an expm1 built
    from exp and log (ONNX has neither Erfc nor Expm1).

  The instance holds no state, so one instance can be entered again, nested
  or used from several threads.
  """

  def __enter__(self):
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    return self

  def __exit__(self, *exc_info):
    _STATE.depth -= 1
    return False
