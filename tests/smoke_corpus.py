"""A fixed corpus of nasty cases for every op, run crash-isolated.

`cases(op)` yields (name, case) pairs built with `fuzz.cases.build_case`:
special values (NaN, +-Inf, +-1e30, the type's max, subnormals, exact grid
points) in x, alpha / coefficients and dy for every dtype; zero-sized
dimensions; rank 0 and rank 5; extreme and invalid axes, attributes and
kernel names; mismatched alpha / coefficient / dy shapes and dtypes; very
large D / K; channels-first layouts; graph mode with unknown dimensions.
tests/test_reliability.py runs them through `fuzz.worker.Worker`, so a
segfault or sanitizer abort fails the test naming the case.
"""

import itertools
import math

import numpy as np

from fuzz import cases as fuzz_cases
from fuzz import common

__all__ = ["cases"]

_CALLS = ("forward", "grad")
_FLOAT_TRIO = ("float32", "float16", "float64")


def _base(op, call, mode="raw", **kw):
  p = {
      "op": op, "call": call, "mode": mode, "dtype": "float32", "seed": 11,
      "rank": 2, "dims": [3, 2], "axis": -1,
      "channels": 4 if op == "kaf2d" else 2,
      "width": {"kaf": 8, "kaf2d": 9, "spline": 9}[op],
      "x_scale": 2.0, "x_special": 0.0, "alpha_scale": 0.5,
      "alpha_special": 0.0, "dy_special": 0.0, "dy_scale": 1.0,
      "boundary": 3.0, "gamma": None, "kernel": "gaussian",
      "x_min": -3.0, "x_max": 3.0,
  }
  p.update(kw)
  return p


def _specials_case(p, where):
  """Every special value of the dtype in x (or alpha / dy), cyclically."""
  case = fuzz_cases.build_case(p)
  values = fuzz_cases.specials(p["dtype"])
  key = {"x": "x", "alpha": "alpha", "dy": "dy"}[where]
  if case[key] is not None and case[key].size:
    flat = case[key].reshape(-1).copy()
    n = flat.size
    flat[:] = np.resize(values, n)
    case[key] = flat.reshape(case[key].shape)
  return case


def _raw_and_wrapper(name, p):
  """The case of p, then the same through the Python wrapper."""
  yield name, fuzz_cases.build_case(p)
  yield f"{name}/wrapper", fuzz_cases.build_case(dict(p, mode="wrapper"))


def _kernels(op):
  return common.KERNELS if op == "kaf" else ("gaussian",)


def _channels(op):
  """A valid channel count: 2-D KAF needs pairs."""
  return 4 if op == "kaf2d" else 2


def _special_values(op):
  """Special values everywhere, every dtype, raw op and wrapper."""
  c2 = _channels(op)
  for dtype, call, kernel, mode in itertools.product(
      common.FLOAT_DTYPES, _CALLS, _kernels(op), ("raw", "wrapper")):
    for where in ("x", "alpha") + (("dy",) if call == "grad" else ()):
      p = _base(op, call, mode, dtype=dtype, kernel=kernel,
                dims=[8, c2], rank=2)
      yield (f"specials-in-{where}/{dtype}/{call}/{kernel}/{mode}",
             _specials_case(p, where))
    p = _base(op, call, mode, dtype=dtype, kernel=kernel, x_special=0.5,
              alpha_special=0.2, dy_special=0.2, dims=[16, c2], seed=3)
    yield (f"mixed-specials/{dtype}/{call}/{kernel}/{mode}",
           fuzz_cases.build_case(p))
    for scale in (1e30, 1e-40, 1e4):
      p = _base(op, call, mode, dtype=dtype, kernel=kernel, x_scale=scale)
      yield (f"x-scale-{scale:g}/{dtype}/{call}/{kernel}/{mode}",
             fuzz_cases.build_case(p))


def _on_grid(op):
  """Values exactly on the grid / knots and one ulp away."""
  if op == "spline":
    grid = np.linspace(-3.0, 3.0, 9)
  else:
    grid = np.linspace(-3.0, 3.0, 8 if op == "kaf" else 3)
  g = np.concatenate([grid, np.nextafter(grid, np.inf),
                      np.nextafter(grid, -np.inf)])
  for dtype, call in itertools.product(common.FLOAT_DTYPES, _CALLS):
    case = fuzz_cases.build_case(_base(op, call, dtype=dtype,
                                       dims=[12, _channels(op)]))
    case["x"] = np.resize(g, case["x"].shape)
    for kernel in _kernels(op):
      c = dict(case)
      c["attrs"] = dict(case["attrs"])
      if op == "kaf":
        c["attrs"]["kernel"] = kernel
      yield f"on-grid/{dtype}/{call}/{kernel}", c


def _shapes(op):
  """Zero-sized dimensions, rank 0, rank 5, channels-first."""
  c2 = _channels(op)
  shapes = [
      ("n0", 2, [0, c2], -1), ("c0", 2, [3, 0], -1), ("all0", 2, [0, 0], -1),
      ("rank1", 1, [c2], 0), ("rank1-empty", 1, [0], 0),
      ("rank5-mid", 5, [2, 1, c2, 1, 2], 2),
      ("rank5-zero", 5, [2, 0, c2, 1, 2], 2),
      ("nchw", 4, [2, c2, 3, 3], 1), ("nchw-neg", 4, [2, c2, 3, 3], -3),
      ("nchw-empty", 4, [2, c2, 0, 3], 1),
  ]
  for (name, rank, dims, axis), call, dtype in itertools.product(
      shapes, _CALLS, _FLOAT_TRIO):
    p = _base(op, call, dtype=dtype, rank=rank, dims=dims, axis=axis,
              channels=dims[axis], x_special=0.2)
    yield from _raw_and_wrapper(f"shape-{name}/{dtype}/{call}", p)
  for call, mode in itertools.product(_CALLS, ("raw", "wrapper", "graph")):
    p = _base(op, call, mode, rank=0, dims=[], axis=-1)
    yield f"rank0/{call}/{mode}", fuzz_cases.build_case(p)


def _axes(op):
  """Axis extremes."""
  for axis, call in itertools.product((2, -3, 7, 2**31 - 1, -2**31), _CALLS):
    yield from _raw_and_wrapper(f"axis-{axis}/{call}",
                                _base(op, call, axis=axis))


def _mismatched_shapes(op):
  """Mismatched alpha / coefficients and dy shapes."""
  for kind, call in itertools.product(
      ("rows+1", "rows-1", "rank1", "rank3", "rank0"), _CALLS):
    yield from _raw_and_wrapper(f"alpha-{kind}/{call}",
                                _base(op, call, alpha_kind=kind))
  bad_widths = {"kaf": (0, 1), "kaf2d": (0, 1, 2, 3, 8, 10),
                "spline": (0, 1)}[op]
  for width, call in itertools.product(bad_widths, _CALLS):
    yield from _raw_and_wrapper(f"width-{width}/{call}",
                                _base(op, call, width=width))
  if op == "kaf2d":
    for channels, call in itertools.product((1, 3, 5), _CALLS):
      yield (f"odd-{channels}/{call}",
             fuzz_cases.build_case(_base(op, call, channels=channels)))
  for kind in ("bad_dim", "bad_rank"):
    yield f"dy-{kind}", fuzz_cases.build_case(_base(op, "grad",
                                                    dy_kind=kind))


def _mismatched_dtypes(op):
  """Mixed x / alpha / dy dtypes and unsupported dtypes."""
  for dt_x, dt_a in itertools.permutations(common.FLOAT_DTYPES, 2):
    yield from _raw_and_wrapper(
        f"alpha-dtype-{dt_x}-{dt_a}",
        _base(op, "forward", dtype=dt_x, alpha_dtype=dt_a))
    p = _base(op, "grad", dtype=dt_x, dy_dtype=dt_a)
    yield f"dy-dtype-{dt_x}-{dt_a}", fuzz_cases.build_case(p)
  for dtype, call, mode in itertools.product(
      common.UNSUPPORTED_DTYPES, _CALLS, ("raw", "wrapper")):
    p = _base(op, call, mode, dtype=dtype)
    yield f"unsupported-{dtype}/{call}/{mode}", fuzz_cases.build_case(p)
    p = _base(op, call, mode, dtype=dtype, alpha_dtype="float32")
    yield (f"unsupported-{dtype}-alpha-float32/{call}/{mode}",
           fuzz_cases.build_case(p))


def _spline_ranges(op):
  """Extreme and invalid x_min / x_max (x beyond the knots, on them, and
  specials)."""
  ranges = [(0.0, 0.0), (1.0, -1.0), (math.nan, 1.0), (-math.inf, 1.0),
            (0.0, math.inf), (-3.4e38, 3.4e38), (0.0, 1e-45),
            (0.0, 1e-38), (1e30, 1.0000001e30), (1.0, 1.0000001),
            (-1e-30, 1e-30), (1e39, 2e39)]
  for (lo, hi), call, dtype in itertools.product(ranges, _CALLS,
                                                 _FLOAT_TRIO):
    p = _base(op, call, dtype=dtype, x_min=lo, x_max=hi, x_special=0.3,
              x_scale=5.0)
    yield from _raw_and_wrapper(f"range-{lo:g}-{hi:g}/{dtype}/{call}", p)
  # dy at the type's maximum on the widest range: the slope (dc / 6.8e38)
  # keeps dy * slope finite, while the composite's dy * dc, scaled
  # afterwards, overflows (a case the random fuzz found).
  p = _base(op, "grad", dtype="float64", seed=1, dims=[3, 5], axis=1,
            channels=5, width=2, x_min=-3.4e38, x_max=3.4e38, x_scale=0.001,
            x_special=0.1, dy_special=0.1)
  yield "range-max-dy/float64/grad", fuzz_cases.build_case(p)


def _kaf_attributes(op):
  """Extreme and invalid boundary, gamma and kernel names."""
  boundaries = (0.0, -0.0, -1.0, math.nan, math.inf, 1e-45, 1e-38, 1e-7,
                1e7, 1e38, 3.4e38)
  gammas = (0.0, -1.0, math.nan, math.inf, 1e-45, 1e-38, 1e-7, 1e7,
            1e13, 1e20, 1e30, 3.4e38)
  for b, call, dtype in itertools.product(boundaries, _CALLS,
                                          ("float32", "float64")):
    for kernel in _kernels(op):
      p = _base(op, call, dtype=dtype, boundary=b, kernel=kernel,
                x_special=0.3, x_scale=5.0)
      yield from _raw_and_wrapper(f"boundary-{b:g}/{dtype}/{call}/{kernel}",
                                  p)
  for g, call, dtype in itertools.product(gammas, _CALLS, _FLOAT_TRIO):
    for kernel in _kernels(op):
      p = _base(op, call, dtype=dtype, gamma=g, kernel=kernel,
                x_special=0.3, x_scale=5.0)
      yield f"gamma-{g:g}/{dtype}/{call}/{kernel}", fuzz_cases.build_case(p)
  # dy a few times the smallest normal: the composite's gradient chain (dy
  # alpha, then times k, gamma and 2 t) flushes products to 0 where the op,
  # scaling by dy last, does not (cases the random fuzz found).
  shape = (dict(rank=3, dims=[1, 3, 2], channels=2, width=4)
           if op == "kaf2d" else dict(dims=[3, 2], channels=2, width=6))
  for seed in (0, 1):
    p = _base(op, "grad", dtype="float64", seed=seed, dy_scale=1e-307,
              alpha_scale=10.0, x_scale=3.0, **shape)
    yield f"tiny-dy-{seed}/float64/grad", fuzz_cases.build_case(p)
  if op == "kaf":
    # dy = 1e30 with gamma boundary^2 = 23: dalpha's walk-mode
    # intermediates dy e / C overflow float, and the op sums those entries
    # again directly (docs/design.md, section 4); a case the random fuzz
    # found.
    p = _base(op, "grad", dtype="bfloat16", seed=116, rank=3,
              dims=[0, 2, 4, 0, 0], axis=0, width=8, x_scale=1.0,
              alpha_scale=0.05, dy_special=0.1, boundary=1.0, gamma=23.0)
    yield "walk-huge-dy/bfloat16/grad", fuzz_cases.build_case(p)
    for name, call, mode in itertools.product(
        ("tanh", "", "Gaussian", "relu ", "gaussian\x00"), _CALLS,
        ("raw", "wrapper")):
      p = _base(op, call, mode, kernel=name)
      yield f"kernel-{name!r}/{call}/{mode}", fuzz_cases.build_case(p)


def _large(op):
  """Large dictionaries / many knots."""
  big = {"kaf": [("D1000", 1000)], "kaf2d": [("D40", 1600)],
         "spline": [("K100001", 100001)]}[op]
  for (name, width), call, dtype in itertools.product(
      big, _CALLS, ("float32", "float64", "bfloat16")):
    for kernel in _kernels(op):
      p = _base(op, call, dtype=dtype, width=width, kernel=kernel,
                x_special=0.2, x_scale=3.0, alpha_scale=0.01)
      yield f"large-{name}/{dtype}/{call}/{kernel}", fuzz_cases.build_case(p)


# Graph mode: (name, case parameters, placeholder parameters); "-static"
# problems are knowable at construction, "-runtime" ones only at run time.
_GRAPH = [
    ("valid-none", {}, {"x_none": [True, False],
                        "alpha_none": [True, True]}),
    ("valid-unknown-rank", {}, {"x_unknown_rank": True,
                                "alpha_unknown_rank": True}),
    ("rows-static", {"alpha_kind": "rows+1"}, {}),
    ("rows-runtime", {"alpha_kind": "rows+1"},
     {"x_none": [False, True], "alpha_none": [True, False]}),
    ("axis-static", {"axis": 5}, {}),
    ("axis-runtime", {"axis": 5}, {"x_unknown_rank": True}),
    ("rank0-static", {"rank": 0, "dims": []}, {}),
    ("rank0-runtime", {"rank": 0, "dims": []}, {"x_unknown_rank": True}),
    ("width-static", {"width": 1}, {}),
    ("width-runtime", {"width": 1}, {"alpha_none": [False, True]}),
    ("dy-static", {"dy_kind": "bad_dim"}, {}),
    ("dy-runtime", {"dy_kind": "bad_dim"}, {"dy_none": [False, True]}),
]
_GRAPH_KAF2D = [
    ("odd-static", {"channels": 3}, {}),
    ("odd-runtime", {"channels": 3}, {"x_none": [False, True]}),
]


def _graph(op):
  """Graph mode with unknown dimensions, valid and invalid."""
  graph = _GRAPH + (_GRAPH_KAF2D if op == "kaf2d" else [])
  for (name, kw, shapes), call in itertools.product(graph, _CALLS):
    if name.startswith("dy") and call != "grad":
      continue
    p = _base(op, call, "graph", x_special=0.2, **kw)
    p.update(shapes)
    yield f"graph-{name}/{call}", fuzz_cases.build_case(p)


def cases(op):
  """Yields (name, case) for `op` in "kaf", "kaf2d", "spline"."""
  yield from _special_values(op)
  yield from _on_grid(op)
  yield from _shapes(op)
  yield from _axes(op)
  yield from _mismatched_shapes(op)
  yield from _mismatched_dtypes(op)
  yield from _spline_ranges(op) if op == "spline" else _kaf_attributes(op)
  yield from _large(op)
  yield from _graph(op)
