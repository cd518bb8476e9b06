"""What the op wrappers of `tfkaf.ops` share (docs/design.md, section 4).

* `coerce_inputs`: the one dtype coercion of every op's inputs.
* `check_like_op`: the composite and portable forms raise what the fused op
  would raise for the same inputs, without a copy of its rules: the fused op
  is built on placeholders of the inputs' static shapes in a throwaway graph,
  where its shape function runs the C++ rule (cc/rules), and the error is
  raised as the op raises it in the current context (ValueError while
  building a graph, InvalidArgumentError when executing eagerly).
"""

import functools

import numpy as np
import tensorflow as tf

from tfkaf import _loader

__all__ = ["attr_error", "check_like_op", "coerce_inputs", "compute_dtype",
           "f32", "no_autograph"]

# The wrappers branch on static values only: no AutoGraph conversion needed.
no_autograph = tf.autograph.experimental.do_not_convert

_HALF_TYPES = (tf.float16, tf.bfloat16)
_PLAIN = (np.ndarray, np.generic, list, tuple, float, int)


def f32(value):
  """value rounded to float32 (the ops' float attributes), as a float."""
  with np.errstate(over="ignore"):
    return float(np.float32(value))


def compute_dtype(dtype):
  """The dtype the ops compute in: float32 for 16-bit types."""
  return tf.float32 if dtype in _HALF_TYPES else dtype


def coerce_inputs(x, params, params_name, op_label):
  """x and its parameter tensor (alpha, coefficients) in the op's dtype.

  Integer x is cast to float32, complex x refused; plain Python / NumPy
  parameters take x's dtype, tensors must already have it (as for
  TensorFlow's own ops).
  """
  x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
  if x.dtype.is_complex:
    raise TypeError(f"{op_label} inputs must be real floating-point tensors "
                    "(float16, bfloat16, float32 or float64), got x of type "
                    f"{x.dtype.name}")
  if not x.dtype.is_floating:
    x = tf.cast(x, tf.float32)
  plain = isinstance(params, _PLAIN)
  params = tf.convert_to_tensor(params, dtype_hint=x.dtype)
  if params.dtype != x.dtype:
    if not plain:
      raise TypeError(
          f"{params_name} must have the dtype of x ({x.dtype.name}), got "
          f"{params.dtype.name}: cast one of them first")
    params = tf.cast(params, x.dtype)
  return x, params


@functools.lru_cache(maxsize=512)
def _rule_error(op_name, dtype, shapes, attrs):
  """The error of building raw op `op_name` on placeholders, or None."""
  fn = getattr(_loader.load_ops(), op_name)
  with tf.Graph().as_default():
    inputs = [tf.compat.v1.placeholder(dtype, shape) for shape in shapes]
    try:
      fn(*inputs, **dict(attrs))
    except (TypeError, ValueError) as error:
      return error
  return None


def _message(error):
  """The rule's message, without the node that graph construction names."""
  return str(error).split(" for '{{node ", 1)[0]


def attr_error(op_name, **attrs):
  """The message of the op's rule on attributes alone, or None."""
  error = _rule_error(op_name, "float32", (None, None),
                      tuple(sorted(attrs.items())))
  return None if error is None else _message(error)


def _static_shape(tensor):
  return None if tensor.shape.rank is None else tuple(tensor.shape.as_list())


def check_like_op(op_name, inputs, **attrs):
  """Raises what raw op `op_name` raises here for `inputs` and `attrs`."""
  error = _rule_error(op_name, inputs[0].dtype.name,
                      tuple(_static_shape(t) for t in inputs),
                      tuple(sorted(attrs.items())))
  if error is None:
    return
  if isinstance(error, ValueError) and tf.executing_eagerly():
    raise tf.errors.InvalidArgumentError(None, None, _message(error))
  raise type(error)(*error.args)
