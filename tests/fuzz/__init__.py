"""Crash-isolated execution and checking of tfkaf op cases.

Used by tests/test_fuzz_ops.py (hypothesis), tests/test_reliability.py (smoke
corpus, leaks, concurrency) and tools/fuzz_long.sh / tools/asan_check.sh.

Modules:
- `common`: dtypes, machine constants, float32 attributes, default gamma.
- `strategies`: hypothesis strategies drawing case parameters.
- `cases`: `build_case(params)`, a case (op, call, mode, dtypes, float64
  values, attributes, graph-mode placeholder shapes) from a dict of
  parameters, deterministically (values come from a seeded NumPy generator);
  `describe(case)`, a label and a stand-alone reproducer.
- `errors`: the validity oracle `expected_problems(...)` (what must be
  rejected, with which words in the message), from full shapes (run time) or
  from partially-known shapes (what must fail at graph construction), and the
  check of a raised error.
- `oracle_kaf`, `oracle_spline` (on `bounds`): the formulas of
  docs/design.md, sections 1-3, in float64 NumPy, with a first-order
  rounding-error bound per output element, the positions where NaN inputs
  must give NaN, and where infinities are involved; `compare.np_oracle`
  picks one.
- `check`: `check_case(case, result)`, a list of failure strings (empty:
  the case passed).
- `worker`: `Worker`, a persistent subprocess (`python -m fuzz --worker`)
  that imports TensorFlow and tfkaf once and runs cases sent over a pipe
  (`ipc`) with `execute`. A crash (signal, sanitizer abort) or a hang kills
  only the worker: it is reported as `OpCrashed` / `OpHung` (a
  BaseException, so that hypothesis stops at once instead of shrinking
  through worker restarts) naming the case and with a reproducer; the next
  case gets a fresh worker.
- `cpu_paths`: the CPU kernel paths and which of them this machine runs
  (the fuzz tests run once per path, forcing it with TFKAF_CPU_PATH in the
  worker: `Worker(cpu_path=...)`).
- `stress`: the subprocess entry points of the leak check and the
  concurrency / determinism checks (`python -m fuzz --leak|--threads|...`).
"""
