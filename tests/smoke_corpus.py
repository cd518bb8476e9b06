"""A fixed corpus of nasty cases for every op, run crash-isolated (#8).

`cases(op)` yields (name, case) pairs built with `fuzz_harness.build_case`:
special values (NaN, +-Inf, +-1e30, the type's max, subnormals, exact grid
points) in x, alpha / coefficients and dy for every dtype; zero-sized
dimensions; rank 0 and rank 5; extreme and invalid axes, attributes and
kernel names; mismatched alpha / coefficient / dy shapes and dtypes; very
large D / K; channels-first layouts; graph mode with unknown dimensions.
tests/test_reliability.py runs them through `fuzz_harness.Worker`, so a
segfault or sanitizer abort fails the test naming the case.
"""

import itertools
import math

import numpy as np

import fuzz_harness as harness


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
  case = harness.build_case(p)
  values = harness.specials(p["dtype"])
  key = {"x": "x", "alpha": "alpha", "dy": "dy"}[where]
  if case[key] is not None and case[key].size:
    flat = case[key].reshape(-1).copy()
    n = flat.size
    flat[:] = np.resize(values, n)
    case[key] = flat.reshape(case[key].shape)
  return case


def cases(op):
  """Yields (name, case) for `op` in "kaf", "kaf2d", "spline"."""
  kernels = harness.KERNELS if op == "kaf" else ("gaussian",)
  calls = ("forward", "grad")
  c2 = 4 if op == "kaf2d" else 2

  # 1. Special values everywhere, every dtype, raw op and wrapper.
  for dtype, call, kernel, mode in itertools.product(
      harness.FLOAT_DTYPES, calls, kernels, ("raw", "wrapper")):
    for where in ("x", "alpha") + (("dy",) if call == "grad" else ()):
      p = _base(op, call, mode, dtype=dtype, kernel=kernel,
                dims=[8, c2], rank=2)
      yield (f"specials-in-{where}/{dtype}/{call}/{kernel}/{mode}",
             _specials_case(p, where))
    p = _base(op, call, mode, dtype=dtype, kernel=kernel, x_special=0.5,
              alpha_special=0.2, dy_special=0.2, dims=[16, c2], seed=3)
    yield f"mixed-specials/{dtype}/{call}/{kernel}/{mode}", harness.build_case(p)
    for scale in (1e30, 1e-40, 1e4):
      p = _base(op, call, mode, dtype=dtype, kernel=kernel, x_scale=scale)
      yield (f"x-scale-{scale:g}/{dtype}/{call}/{kernel}/{mode}",
             harness.build_case(p))

  # 2. Values exactly on the grid / knots and one ulp away.
  for dtype, call in itertools.product(harness.FLOAT_DTYPES, calls):
    p = _base(op, call, dtype=dtype, dims=[12, c2])
    case = harness.build_case(p)
    if op == "spline":
      grid = np.linspace(-3.0, 3.0, 9)
    else:
      side = 8 if op == "kaf" else 3
      grid = np.linspace(-3.0, 3.0, side)
    g = np.concatenate([grid, np.nextafter(grid, np.inf),
                        np.nextafter(grid, -np.inf)])
    case["x"] = np.resize(g, case["x"].shape)
    for kernel in kernels:
      c = dict(case)
      c["attrs"] = dict(case["attrs"])
      if op == "kaf":
        c["attrs"]["kernel"] = kernel
      yield f"on-grid/{dtype}/{call}/{kernel}", c

  # 3. Zero-sized dimensions, rank 0, rank 5, channels-first.
  shapes = [
      ("n0", 2, [0, c2], -1), ("c0", 2, [3, 0], -1), ("all0", 2, [0, 0], -1),
      ("rank1", 1, [c2], 0), ("rank1-empty", 1, [0], 0),
      ("rank5-mid", 5, [2, 1, c2, 1, 2], 2), ("rank5-zero", 5,
                                              [2, 0, c2, 1, 2], 2),
      ("nchw", 4, [2, c2, 3, 3], 1), ("nchw-neg", 4, [2, c2, 3, 3], -3),
      ("nchw-empty", 4, [2, c2, 0, 3], 1),
  ]
  for (name, rank, dims, axis), call, dtype in itertools.product(
      shapes, calls, ("float32", "float16", "float64")):
    channels = dims[axis]
    p = _base(op, call, dtype=dtype, rank=rank, dims=dims, axis=axis,
              channels=channels, x_special=0.2)
    yield f"shape-{name}/{dtype}/{call}", harness.build_case(p)
    yield (f"shape-{name}/{dtype}/{call}/wrapper",
           harness.build_case(dict(p, mode="wrapper")))
  for call, mode in itertools.product(calls, ("raw", "wrapper", "graph")):
    p = _base(op, call, mode, rank=0, dims=[], axis=-1)
    yield f"rank0/{call}/{mode}", harness.build_case(p)

  # 4. Axis extremes.
  for axis, call in itertools.product(
      (2, -3, 7, 2**31 - 1, -2**31), calls):
    p = _base(op, call, axis=axis)
    yield f"axis-{axis}/{call}", harness.build_case(p)
    yield f"axis-{axis}/{call}/wrapper", harness.build_case(
        dict(p, mode="wrapper"))

  # 5. Mismatched alpha / coefficients and dy.
  for kind, call in itertools.product(
      ("rows+1", "rows-1", "rank1", "rank3", "rank0"), calls):
    p = _base(op, call, alpha_kind=kind)
    yield f"alpha-{kind}/{call}", harness.build_case(p)
    yield f"alpha-{kind}/{call}/wrapper", harness.build_case(
        dict(p, mode="wrapper"))
  bad_widths = {"kaf": (0, 1), "kaf2d": (0, 1, 2, 3, 8, 10),
                "spline": (0, 1)}[op]
  for width, call in itertools.product(bad_widths, calls):
    p = _base(op, call, width=width)
    yield f"width-{width}/{call}", harness.build_case(p)
    yield f"width-{width}/{call}/wrapper", harness.build_case(
        dict(p, mode="wrapper"))
  if op == "kaf2d":
    for channels, call in itertools.product((1, 3, 5), calls):
      p = _base(op, call, channels=channels)
      yield f"odd-{channels}/{call}", harness.build_case(p)
  for kind in ("bad_dim", "bad_rank"):
    p = _base(op, "grad", dy_kind=kind)
    yield f"dy-{kind}", harness.build_case(p)
  for dt_x, dt_a in itertools.permutations(harness.FLOAT_DTYPES, 2):
    p = _base(op, "forward", dtype=dt_x, alpha_dtype=dt_a)
    yield f"alpha-dtype-{dt_x}-{dt_a}", harness.build_case(p)
    yield f"alpha-dtype-{dt_x}-{dt_a}/wrapper", harness.build_case(
        dict(p, mode="wrapper"))
    p = _base(op, "grad", dtype=dt_x, dy_dtype=dt_a)
    yield f"dy-dtype-{dt_x}-{dt_a}", harness.build_case(p)
  for dtype, call, mode in itertools.product(
      harness.UNSUPPORTED_DTYPES, calls, ("raw", "wrapper")):
    p = _base(op, call, mode, dtype=dtype)
    yield f"unsupported-{dtype}/{call}/{mode}", harness.build_case(p)
    p = _base(op, call, mode, dtype=dtype, alpha_dtype="float32")
    yield (f"unsupported-{dtype}-alpha-float32/{call}/{mode}",
           harness.build_case(p))

  # 6. Attribute extremes (x beyond the grid, on it, and specials).
  if op == "spline":
    ranges = [(0.0, 0.0), (1.0, -1.0), (math.nan, 1.0), (-math.inf, 1.0),
              (0.0, math.inf), (-3.4e38, 3.4e38), (0.0, 1e-45),
              (0.0, 1e-38), (1e30, 1.0000001e30), (1.0, 1.0000001),
              (-1e-30, 1e-30), (1e39, 2e39)]
    for (lo, hi), call, dtype in itertools.product(
        ranges, calls, ("float32", "float16", "float64")):
      p = _base(op, call, dtype=dtype, x_min=lo, x_max=hi, x_special=0.3,
                x_scale=5.0)
      yield f"range-{lo:g}-{hi:g}/{dtype}/{call}", harness.build_case(p)
      yield (f"range-{lo:g}-{hi:g}/{dtype}/{call}/wrapper",
             harness.build_case(dict(p, mode="wrapper")))
  else:
    boundaries = (0.0, -0.0, -1.0, math.nan, math.inf, 1e-45, 1e-38, 1e-7,
                  1e7, 1e38, 3.4e38)
    gammas = (0.0, -1.0, math.nan, math.inf, 1e-45, 1e-38, 1e-7, 1e7,
              1e13, 1e20, 1e30, 3.4e38)
    for b, call, dtype in itertools.product(
        boundaries, calls, ("float32", "float64")):
      for kernel in kernels:
        p = _base(op, call, dtype=dtype, boundary=b, kernel=kernel,
                  x_special=0.3, x_scale=5.0)
        yield f"boundary-{b:g}/{dtype}/{call}/{kernel}", harness.build_case(p)
        yield (f"boundary-{b:g}/{dtype}/{call}/{kernel}/wrapper",
               harness.build_case(dict(p, mode="wrapper")))
    for g, call, dtype in itertools.product(
        gammas, calls, ("float32", "float16", "float64")):
      for kernel in kernels:
        p = _base(op, call, dtype=dtype, gamma=g, kernel=kernel,
                  x_special=0.3, x_scale=5.0)
        yield f"gamma-{g:g}/{dtype}/{call}/{kernel}", harness.build_case(p)
    if op == "kaf":
      for name, call, mode in itertools.product(
          ("tanh", "", "Gaussian", "relu ", "gaussian\x00"), calls,
          ("raw", "wrapper")):
        p = _base(op, call, mode, kernel=name)
        yield f"kernel-{name!r}/{call}/{mode}", harness.build_case(p)

  # 7. Large dictionaries / many knots.
  big = {"kaf": [("D1000", 1000)], "kaf2d": [("D40", 1600)],
         "spline": [("K100001", 100001)]}[op]
  for (name, width), call, dtype in itertools.product(
      big, calls, ("float32", "float64", "bfloat16")):
    for kernel in kernels:
      p = _base(op, call, dtype=dtype, width=width, kernel=kernel,
                x_special=0.2, x_scale=3.0, alpha_scale=0.01)
      yield f"large-{name}/{dtype}/{call}/{kernel}", harness.build_case(p)

  # 8. Graph mode with unknown dimensions, valid and invalid.
  graph = [
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
  if op == "kaf2d":
    graph += [("odd-static", {"channels": 3}, {}),
              ("odd-runtime", {"channels": 3}, {"x_none": [False, True]})]
  for (name, kw, shapes), call in itertools.product(graph, calls):
    if name.startswith("dy") and call != "grad":
      continue
    p = _base(op, call, "graph", x_special=0.2, **kw)
    p.update(shapes)
    yield f"graph-{name}/{call}", harness.build_case(p)
