"""Subprocess entry points (`python -m fuzz --leak|--threads|--concurrency`):
the leak check and the concurrency / determinism checks of
tests/test_reliability.py. Each prints one JSON report as its last line."""

import json
import os
import time

import numpy as np

from fuzz import common

__all__ = ["leak_main", "threads_main", "concurrency_main"]

DTYPES = ("float32", "float64", "float16", "bfloat16")
_OUTPUTS = ("y", "dx", "dalpha")


def _import_tf(intra=None, inter=None):
  """TensorFlow (quiet; thread pools set when given), tfkaf's raw ops."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if intra is not None:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
  import tfkaf  # pylint: disable=g-import-not-at-top
  return tf, tfkaf, tfkaf.load_ops()


def rss_bytes():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _leak_inputs(op, tf):
  rng = np.random.default_rng(7)
  if op == "kaf":
    x = rng.standard_normal((128, 32)) * 2
    a = rng.standard_normal((32, 20)) * 0.3
  elif op == "kaf2d":
    x = rng.standard_normal((128, 32)) * 2
    a = rng.standard_normal((16, 49)) * 0.3
  else:
    x = rng.standard_normal((128, 32)) * 3
    a = rng.standard_normal((32, 21))
  return (tf.constant(x, tf.float32), tf.constant(a, tf.float32),
          tf.constant(rng.standard_normal(x.shape if op != "kaf2d" else
                                          (128, 16)), tf.float32))


def _leak_calls(op, tfkaf, raw, x, a, dy):
  """(wrapper forward, raw gradient op, a failing raw call) of op."""
  if op == "kaf":
    return (lambda: tfkaf.ops.kaf(x, a),
            lambda: raw.tfkaf_kaf_grad(dy, x, a, boundary=3.0, gamma=0.5,
                                       kernel="gaussian", axis=-1),
            lambda: raw.tfkaf_kaf(x, a[:3], boundary=3.0, gamma=0.5))
  if op == "kaf2d":
    return (lambda: tfkaf.ops.kaf2d(x, a),
            lambda: raw.tfkaf_kaf2d_grad(dy, x, a, boundary=3.0, gamma=0.5,
                                         axis=-1),
            lambda: raw.tfkaf_kaf2d(x, a[:3], boundary=3.0, gamma=0.5))
  return (lambda: tfkaf.ops.linear_spline(x, a, -4.0, 4.0),
          lambda: raw.tfkaf_linear_spline_grad(dy, x, a, x_min=-4.0,
                                               x_max=4.0, axis=-1),
          lambda: raw.tfkaf_linear_spline(x, a[:3], x_min=-4.0, x_max=4.0))


def leak_main(op, iterations, warmup):
  """forward+backward `iterations` times; prints RSS numbers as JSON."""
  tf, tfkaf, raw = _import_tf()
  x, a, dy = _leak_inputs(op, tf)
  fwd, grad, bad = _leak_calls(op, tfkaf, raw, x, a, dy)

  def step():
    with tf.GradientTape() as tape:
      tape.watch([x, a])
      y = fwd()
    tape.gradient(y, [x, a], output_gradients=dy)
    grad()

  def error_step():
    try:
      bad()
    except tf.errors.InvalidArgumentError:
      pass

  for _ in range(warmup):
    step()
    error_step()
  before, t0, samples = rss_bytes(), time.time(), []
  for i in range(iterations):
    step()
    if (i + 1) % max(1, iterations // 10) == 0:
      samples.append(rss_bytes())
  after, elapsed = rss_bytes(), time.time() - t0
  e_before = rss_bytes()
  for _ in range(iterations // 4):
    error_step()
  print(json.dumps({"op": op, "iterations": iterations, "warmup": warmup,
                    "rss_before": before, "rss_after": after,
                    "samples": samples, "seconds": elapsed,
                    "error_iterations": iterations // 4,
                    "error_rss_before": e_before,
                    "error_rss_after": rss_bytes()}))


def determinism_inputs(tf, dtype):
  """Fixed inputs big enough for several parallel chunks of every kernel."""
  rng = np.random.default_rng(2024)
  cases = {
      "kaf_nc": ("kaf", rng.standard_normal((4096, 24)) * 2,
                 rng.standard_normal((24, 20)) * 0.5, -1),
      "kaf_nchw": ("kaf", rng.standard_normal((8, 12, 24, 24)) * 2,
                   rng.standard_normal((12, 20)) * 0.5, 1),
      "kaf2d_nc": ("kaf2d", rng.standard_normal((2048, 32)) * 2,
                   rng.standard_normal((16, 36)) * 0.5, -1),
      "kaf2d_nchw": ("kaf2d", rng.standard_normal((4, 8, 32, 32)) * 2,
                     rng.standard_normal((4, 49)) * 0.5, 1),
      "spline_nc": ("spline", rng.standard_normal((4096, 24)) * 3,
                    rng.standard_normal((24, 51)), -1),
      "spline_nchw": ("spline", rng.standard_normal((8, 12, 24, 24)) * 3,
                      rng.standard_normal((12, 51)), 1),
  }
  out = {}
  for name, (op, x, a, axis) in cases.items():
    y_shape = list(x.shape)
    if op == "kaf2d":
      y_shape[axis] //= 2
    dy = rng.standard_normal(y_shape)
    out[name] = (op, tf.cast(tf.constant(x), dtype),
                 tf.cast(tf.constant(a), dtype),
                 tf.cast(tf.constant(dy), dtype), axis)
  return out


def run_determinism_case(raw, op, x, a, dy, axis, kernel="gaussian"):
  """Bits of (y, dx, dalpha) of the raw forward and gradient ops."""
  if op == "kaf":
    y = raw.tfkaf_kaf(x, a, boundary=3.0, gamma=0.8, kernel=kernel, axis=axis)
    dx, da = raw.tfkaf_kaf_grad(dy, x, a, boundary=3.0, gamma=0.8,
                                kernel=kernel, axis=axis)
  elif op == "kaf2d":
    y = raw.tfkaf_kaf2d(x, a, boundary=3.0, gamma=0.6, axis=axis)
    dx, da = raw.tfkaf_kaf2d_grad(dy, x, a, boundary=3.0, gamma=0.6,
                                  axis=axis)
  else:
    y = raw.tfkaf_linear_spline(x, a, x_min=-4.0, x_max=4.0, axis=axis)
    dx, da = raw.tfkaf_linear_spline_grad(dy, x, a, x_min=-4.0, x_max=4.0,
                                          axis=axis)
  return [_bits(v) for v in (y, dx, da)]


def _bits(t):
  v = t.numpy()
  return v.view(np.uint16) if v.dtype.itemsize == 2 else v


def _differences(label, first, again):
  return [f"{label}/{part}" for part, u, v in zip(_OUTPUTS, first, again)
          if not np.array_equal(u, v)]


def threads_main(intra, inter, out_dir, dtypes):
  """Runs the determinism inputs with the given thread pools; saves .npy."""
  tf, _, raw = _import_tf(intra, inter)
  report = {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "run_to_run_differences": []}
  for dtype_name in dtypes:
    inputs = determinism_inputs(tf, getattr(tf, dtype_name))
    for name, (op, x, a, dy, axis) in inputs.items():
      for kernel in common.KERNELS if op == "kaf" else ("gaussian",):
        first = run_determinism_case(raw, op, x, a, dy, axis, kernel)
        for _ in range(2):
          again = run_determinism_case(raw, op, x, a, dy, axis, kernel)
          report["run_to_run_differences"] += _differences(
              f"{dtype_name}/{name}/{kernel}", first, again)
        for label, v in zip(_OUTPUTS, first):
          np.save(os.path.join(out_dir,
                               f"{dtype_name}-{name}-{kernel}-{label}.npy"), v)
  print(json.dumps(report))


def _threaded_op_mismatches(tf, raw, pool, repeats):
  """(calls, mismatches) of the raw ops run from threads vs serially."""
  jobs = []
  for dtype_name in DTYPES:
    inputs = determinism_inputs(tf, getattr(tf, dtype_name))
    for name, (op, x, a, dy, axis) in inputs.items():
      jobs.append((f"{dtype_name}/{name}", op, x, a, dy, axis))
  serial = {job[0]: run_determinism_case(raw, *job[1:]) for job in jobs}
  mismatches, calls = [], 0
  for _ in range(repeats):
    for label, outs in pool.map(
        lambda job: (job[0], run_determinism_case(raw, *job[1:])), jobs * 2):
      calls += 1
      mismatches += _differences(label, serial[label], outs)
  return calls, mismatches


def _threaded_tape_mismatches(tf, tfkaf, pool, num_threads):
  """(calls, mismatches) of wrapper + tape (the registered gradients)."""
  x = tf.constant(np.random.default_rng(3).standard_normal((256, 16)),
                  tf.float32)
  a = tf.constant(np.random.default_rng(4).standard_normal((16, 20)),
                  tf.float32)

  def tape_job(_):
    with tf.GradientTape() as tape:
      tape.watch([x, a])
      y = tfkaf.ops.kaf(x, a)
    g = tape.gradient(y, [x, a])
    return [y.numpy(), g[0].numpy(), g[1].numpy()]

  base = tape_job(0)
  mismatches, calls = [], 0
  for outs in pool.map(tape_job, range(num_threads * 4)):
    calls += 1
    if _differences("tape/kaf", base, outs):
      mismatches.append("tape/kaf")
  return calls, mismatches


def concurrency_main(num_threads, repeats):
  """Same ops from several Python threads at once; bitwise vs serial."""
  from concurrent import futures  # pylint: disable=g-import-not-at-top
  tf, tfkaf, raw = _import_tf()
  with futures.ThreadPoolExecutor(num_threads) as pool:
    calls, mismatches = _threaded_op_mismatches(tf, raw, pool, repeats)
  with futures.ThreadPoolExecutor(num_threads) as pool:
    more, tape = _threaded_tape_mismatches(tf, tfkaf, pool, num_threads)
  print(json.dumps({"calls": calls + more,
                    "mismatches": sorted(set(mismatches + tape))}))
