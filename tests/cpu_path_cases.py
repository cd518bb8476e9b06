"""The cases every CPU path of the fused ops is checked on, their NumPy
reference, and the comparisons: shared by tests/test_cpu_paths.py (the
plugin, one process per path) and tests/test_avx512_emulated.py (the CPU
functors outside TensorFlow, the avx512 path emulated).

KAF (all three kernels; the Gaussian also with 48 centres, which the CPU
walks in two runs), 2D-KAF (also on a 30 x 30 grid, two runs a side) and the
spline, forward and backward, channels-last and channels-first, float32 and
float64, with sizes that leave partial vectors of every width (4, 8 and 16
lanes). One more spline case, spline-wide ([301, 700], K = 11), is wide
enough for the backward's column blocks on any L1 data cache from 32 KB
to 64 KB (blocks of 192 to 400 channels, the last one ending in a scalar
tail), and long enough for reduction chunks that start and end inside a
row.
"""

import numpy as np

from reference import np_kaf, np_kaf_grads, np_kaf2d, np_kaf2d_grads
from reference import np_spline, np_spline_grad

__all__ = ["BOUNDARY", "DTYPES", "X_RANGE", "assert_agree",
           "assert_match_reference", "axis_of", "case_sets", "inputs",
           "names", "special_inputs"]

DTYPES = ("float32", "float64")
BOUNDARY = 2.0  # KAF and 2D-KAF
X_RANGE = (-2.0, 2.0)  # spline grid
# (shape, axis): channels-last rows of 19 channels (vectors of 16, 8 and 4
# with tails), channels-first runs of 21 positions, and channels-last rows of
# 37 channels (two full 16-lane vectors and a tail).
LAYOUTS = (((33, 19), -1), ((3, 19, 21), 1), ((9, 37), -1))
# spline-wide's [rows, channels]: 3 reduction chunks of ~100.3 rows.
SPLINE_WIDE_SHAPE = (301, 700)
TOL = {"float32": dict(rtol=1e-4, atol=1e-4),
       "float64": dict(rtol=1e-9, atol=1e-10)}
PARTS = ("y", "dx", "dparam")


def inputs():
  """"op/dtype/axis:channels/part" -> array, for the parts x, dy and param
  of every op, layout and dtype. op is gaussian, gaussian-48, relu,
  softplus, kaf2d, kaf2d-30, spline or spline-wide (one layout)."""
  rng = np.random.default_rng(7)
  cases = {}
  for dtype in DTYPES:
    for shape, axis in LAYOUTS:
      channels = shape[axis]
      x = rng.uniform(-3.0, 3.0, shape)
      dy = rng.standard_normal(shape)
      params = {"gaussian": rng.standard_normal((channels, 12)),
                # default gamma: the walk takes two runs of 24 centres
                "gaussian-48": rng.standard_normal((channels, 48)),
                "relu": rng.standard_normal((channels, 7)),
                "softplus": rng.standard_normal((channels, 7)),
                "spline": rng.standard_normal((channels, 11))}
      layout = f"{axis}:{channels}"  # axis, then what tells layouts apart
      for op, param in params.items():
        cases[(op, dtype, layout)] = (x, dy, param)
      x2 = np.concatenate([x, rng.uniform(-3.0, 3.0, shape)], axis)
      cases[("kaf2d", dtype, layout)] = (x2, dy, rng.standard_normal(
          (channels, 36)))
      # a 30 x 30 grid: the default gamma walks each side in two runs
      cases[("kaf2d-30", dtype, layout)] = (x2, dy, rng.standard_normal(
          (channels, 900)))
    shape = SPLINE_WIDE_SHAPE
    cases[("spline-wide", dtype, f"-1:{shape[1]}")] = (
        rng.uniform(-3.0, 3.0, shape), rng.standard_normal(shape),
        rng.standard_normal((shape[1], 11)))
  out = {}
  for (op, dtype, layout), arrays in cases.items():
    for part, value in zip(("x", "dy", "param"), arrays):
      out[f"{op}/{dtype}/{layout}/{part}"] = value.astype(dtype)
  return out


def special_inputs():
  """inputs()-style cases (one channels-last layout, [9, 37]) whose x holds
  the fuzz harness's special values (fuzz.cases.specials: NaN, +-inf,
  +-huge, subnormals, signed zeros) in the first 10 channels, the rest
  finite so that their dparam stays finite. Held to the baseline path, not
  to the reference (assert_agree(..., rounding_differs=False)): the
  baseline path's handling of them is checked against the fuzz oracles on
  every machine (test_cpu_paths.py). The ReLU and softplus kernels grow
  linearly in x, and near the dtype's largest values the paths, which
  round differently, overflow in different places (the baseline's inf or
  NaN is the avx2 path's finite and closer value): their x is clipped to
  +-1e4 (NaN kept)."""
  from fuzz.cases import specials  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(11)
  out = {}
  for dtype in DTYPES:
    x = rng.uniform(-3.0, 3.0, (9, 37))
    x[:, :10] = rng.choice(specials(dtype), (9, 10))
    dy = rng.standard_normal(x.shape)
    for op, n in (("gaussian", 12), ("gaussian-48", 48), ("relu", 7),
                  ("softplus", 7), ("spline", 11), ("kaf2d", 36)):
      name = f"{op}/{dtype}/-1:37"
      xs = np.concatenate([x, x[:, ::-1]], 1) if op == "kaf2d" else x
      if op in ("relu", "softplus"):
        xs = np.clip(x, -1e4, 1e4)
      for part, value in (("x", xs), ("dy", dy),
                          ("param", rng.standard_normal((37, n)))):
        out[f"{name}/{part}"] = value.astype(dtype)
  return out


def case_sets():
  """{set name: its cases}: the reference cases (inputs()) and the special
  values (special_inputs()), each set run in a folder of its own."""
  return {"cases": inputs(), "special": special_inputs()}


def names(cases):
  """The case names ("op/dtype/axis:channels") of inputs()."""
  return sorted({k.rsplit("/", 1)[0] for k in cases})


def axis_of(name):
  """The channel axis of case `name` ("op/dtype/axis:channels")."""
  return int(name.split("/")[2].split(":")[0])


def _reference(op, x, dy, param, axis):
  if op.startswith("spline"):
    y = np_spline(x, param, *X_RANGE, axis=axis)
    return (y,) + np_spline_grad(dy, x, param, *X_RANGE, axis=axis)
  if op.startswith("kaf2d"):
    return ((np_kaf2d(x, param, BOUNDARY, axis=axis),) +
            np_kaf2d_grads(dy, x, param, BOUNDARY, axis=axis))
  kernel = op.split("-")[0]  # gaussian-48: 48 centres
  return ((np_kaf(x, param, BOUNDARY, kernel, axis=axis),) +
          np_kaf_grads(dy, x, param, BOUNDARY, kernel, axis=axis))


def assert_match_reference(got, cases, label):
  """got["name/y"], ["name/dx"] and ["name/dparam"] of every case against
  the NumPy reference, in float64, within the dtype's tolerance."""
  for name in names(cases):
    op, dtype, _ = name.split("/")
    expected = _reference(op, *(cases[f"{name}/{p}"].astype(np.float64)
                                for p in ("x", "dy", "param")),
                          axis_of(name))
    for part, want in zip(PARTS, expected):
      np.testing.assert_allclose(got[f"{name}/{part}"], want, **TOL[dtype],
                                 err_msg=f"{label} {name} {part}")


def assert_agree(base, other, rounding_differs=True):
  """The baseline path's outputs (as assert_match_reference's `got`) and a
  vector path's: the spline's bitwise equal (no FMA on any path), KAF's and
  2D-KAF's within the dtype's tolerance (NaN and inf where the baseline has
  them) but, with rounding_differs, rounded differently (FMA on the vector
  paths, a separate multiply and add on the baseline)."""
  for key in base:
    if key == "cpu_path":
      continue
    if key.startswith("spline"):
      np.testing.assert_array_equal(other[key], base[key], err_msg=key)
    else:
      dtype = key.split("/")[1]
      np.testing.assert_allclose(other[key], base[key], **TOL[dtype],
                                 err_msg=key)
  if rounding_differs:
    key = "gaussian/float32/-1:19/y"
    assert not np.array_equal(other[key], base[key])
