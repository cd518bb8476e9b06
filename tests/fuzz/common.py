"""Dtypes, machine constants and attribute helpers shared by the harness."""

import math

import numpy as np

import reference

__all__ = ["FLOAT_DTYPES", "UNSUPPORTED_DTYPES", "OPS", "KERNELS", "EPS",
           "TINY", "MAX", "SUBNORMAL", "compute_dtype", "f32",
           "default_gamma"]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
UNSUPPORTED_DTYPES = ("int32", "int64", "uint8", "bool", "complex64")
OPS = ("kaf", "kaf2d", "spline")
KERNELS = reference.KERNELS

# Machine constants of the element types (bfloat16: 8-bit mantissa).
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23,
       "float64": 2.0**-52}
TINY = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126,
        "float64": 2.0**-1022}
MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38,
       "float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
SUBNORMAL = {"float16": 2.0**-20, "bfloat16": 2.0**-130,
             "float32": 2.0**-140, "float64": 2.0**-1060}


def compute_dtype(dtype):
  """The type the kernels compute in: float64 or float32."""
  return "float64" if dtype == "float64" else "float32"


def f32(value):
  """reference.f32 (the ops' float32 attributes) without overflow warnings:
  the fuzz cases draw attributes beyond the float32 range on purpose."""
  with np.errstate(over="ignore"):
    return reference.f32(value)


def default_gamma(op, boundary, width):
  """reference.np_gamma for a case's op and alpha width; None if undefined
  (too few centres, a non-positive or non-finite boundary), inf where the
  step squared underflows."""
  if op == "kaf2d":
    d = int(round(math.sqrt(width))) if width > 0 else 0
    if d * d != width or d < 2:
      return None
  elif width < 2:
    return None
  else:
    d = width
  if not (math.isfinite(boundary) and boundary > 0):
    return None
  try:
    return reference.np_gamma(boundary, d, two_d=op == "kaf2d")
  except ZeroDivisionError:
    return math.inf
