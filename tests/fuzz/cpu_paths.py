"""The CPU kernel paths (cc/kernels/cpu_features.cc) and which of them this
machine can run: what tests/test_cpu_paths.py and the per-path fuzz runs
force through TFKAF_CPU_PATH."""

__all__ = ["NEEDS", "PATHS", "available", "best", "missing"]

# In increasing order; the CPU flags (/proc/cpuinfo) each path needs.
NEEDS = {"baseline": set(), "avx2": {"avx2", "fma"},
         "avx512": {"avx512f", "avx2", "fma"}}
PATHS = tuple(NEEDS)


def _cpu_flags():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def missing(path):
  """Why this machine cannot run `path`, or None."""
  lacking = NEEDS.get(path, set()) - _cpu_flags()
  if lacking:
    return "CPU lacks " + ", ".join(sorted(lacking))
  return None


def available():
  """The paths this machine runs, in increasing order."""
  return [path for path in PATHS if missing(path) is None]


def best():
  """The path the plugin picks when none is forced."""
  return available()[-1]
