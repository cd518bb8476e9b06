"""The compute floor of the fused ops, for `tfkaf bench`'s floor fraction.

floor_ms = flops per element x elements / (cores x SIMD lanes x 2 flops per
FMA x clock): the time the op's arithmetic needs if every cycle of every
core retired one full-width fused multiply-add. The counts per element and
how they are made are in docs/design.md, section 6; the clock is the "cpu
MHz" line of /proc/cpuinfo (the kernel's reading, not a measurement). A
record's `floor_fraction` is floor_ms / measured ms: 1.0 is that peak,
and a core that retires two FMAs per cycle can exceed it.
"""

import math

from tfkaf import _machine

__all__ = ["LANES", "clock_mhz", "estimate", "flops_per_element"]

# float32 lanes of one vector on each CPU kernel path (cpu_features.h).
LANES = {"baseline": 4, "avx2": 8, "avx512": 16}


def flops_per_element(op, pass_name, size):
  """Floating-point operations per output element (an FMA counts 2).

  size: KAF's D, 2D-KAF's grid side D, the spline's K (unused: its work does
  not grow with K). pass_name: "forward" or "forward_backward" (the training
  step runs the forward, then the backward).
  """
  forward, backward = {
      # Per centre: the recurrence's multiply and a coefficient FMA; the
      # backward adds the dalpha FMA and one FMA for sum alpha_i d_i e_i.
      "kaf": (3 * size, 5 * size),
      # Two 1D bases (D multiplies each), the D x D coefficient sums (one
      # FMA per coefficient per sum: 1 forward, 3 backward with the dalpha
      # outer product) and O(D) to finish.
      "kaf2d": (2 * size**2 + 4 * size, 6 * size**2 + 11 * size),
      # Position (2), fraction (1), interpolation (3); backward: position,
      # fraction, dx, u g, g - u g and the two accumulations.
      "linear_spline": (6, 8),
  }[op]
  return forward if pass_name == "forward" else forward + backward


def clock_mhz():
  """The first "cpu MHz" of /proc/cpuinfo, or None where there is none."""
  return _machine.cpuinfo()["mhz"]


def _size_and_elements(op, x_shape, param_shape):
  """(size for flops_per_element, output elements) of one bench case."""
  elements = 1
  for n in x_shape:
    elements *= n
  if op == "kaf2d":  # alpha [H, D*D]; pairs of channels in, one out
    return math.isqrt(param_shape[-1]), elements // 2
  return param_shape[-1], elements


def estimate(op, pass_name, x_shape, param_shape, cpu_path, cores):
  """The floor of one timed pass of the fused op: {"floor_ms",
  "floor_basis"}, or {} where the clock or the path's width is unknown."""
  clock, lanes = clock_mhz(), LANES.get(cpu_path)
  if not clock or lanes is None:
    return {}
  size, elements = _size_and_elements(op, x_shape, param_shape)
  flops = flops_per_element(op, pass_name, size)
  peak_per_ms = cores * lanes * 2 * clock * 1e3  # flops per millisecond
  return {"floor_ms": flops * elements / peak_per_ms,
          "floor_basis": {"flops_per_element": flops, "elements": elements,
                          "cores": cores, "lanes": lanes, "clock_mhz": clock,
                          "clock_source": "/proc/cpuinfo cpu MHz"}}
