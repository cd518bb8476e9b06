"""Comparing the errors of the fused ops and of their composite forms.

The composite and portable forms raise what the fused op raises for the same
bad input (the op's own rule, docs/design.md, section 5): the same exception
type and message, eagerly and inside tf.function. TensorFlow decorates the
message differently on each path (the eager kernel's function node and op
name, the graph node a shape function failed on, tf.function's traceback of
user code); `rule_message` removes those decorations.
"""

import re

import tensorflow as tf


def error_of(fn):
  """The exception fn() raises (fails the test if it raises none)."""
  try:
    fn()
  except Exception as error:  # pylint: disable=broad-except
    return error
  raise AssertionError("expected an error, got none")


def rule_message(error):
  """The message without TensorFlow's decorations."""
  text = error.message if isinstance(error, tf.errors.OpError) else str(error)
  inner = re.search(r"(?:ValueError|InvalidArgumentError): (.*)", text, re.S)
  if inner and "in user code" in text:
    text = inner.group(1)
  text = re.sub(r"^\{\{function_node [^}]*\}\} ", "", text)
  text = text.split(" for '{{node ", 1)[0]
  return re.sub(r" \[Op:[^\]]*\].*$", "", text, flags=re.S).strip()


def run(fn, mode):
  """fn() called eagerly (mode "eager") or traced in a tf.function."""
  if mode == "eager":
    return fn()
  return tf.function(fn)()


def assert_same_error(reference, *others, mode):
  """Each of `others` raises what `reference` raises, in `mode`."""
  want = error_of(lambda: run(reference, mode))
  for other in others:
    got = error_of(lambda: run(other, mode))  # pylint: disable=cell-var-from-loop
    assert type(got) is type(want), (got, want)
    assert rule_message(got) == rule_message(want)
  return want
