"""Memory budgets: how much a command may use, and sizes as people write them.

The project's bound is that no command needs more than half of a 16 GiB
machine. `default_budget()` is therefore half of the memory available now
(Linux `MemAvailable`), and never more than 8 GiB.
"""

import re

__all__ = ["DEFAULT_BUDGET_TEXT", "available_bytes", "default_budget",
           "format_size", "parse_size"]

GIB = 1 << 30
_CAP = 8 * GIB
DEFAULT_BUDGET_TEXT = "half of the available memory, at most 8 GiB"

_UNITS = {"": GIB, "k": 1 << 10, "m": 1 << 20, "g": GIB, "t": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*$",
                   re.IGNORECASE)
_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")


def available_bytes():
  """Linux MemAvailable in bytes, or None where /proc/meminfo has none."""
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def default_budget():
  """Half of the available memory, capped at 8 GiB (8 GiB if unknown)."""
  available = available_bytes()
  return _CAP if available is None else min(available // 2, _CAP)


def parse_size(text):
  """'6G', '6GiB', '512M', '4' (GiB) or '50%' (of available memory) -> bytes.

  Raises ValueError naming the accepted forms.
  """
  percent = _PERCENT.match(str(text))
  if percent:
    available = available_bytes()
    if available is None:
      raise ValueError(f"{text!r}: a percentage needs /proc/meminfo; give a "
                       "size such as 6G instead")
    return int(available * float(percent.group(1)) / 100)
  match = _SIZE.match(str(text))
  if not match or float(match.group(1)) <= 0:
    raise ValueError(f"invalid memory size {text!r}: use a positive size "
                     "such as 6G, 512M, 4 (GiB) or 50% (of available memory)")
  return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size):
  """Bytes as a short human-readable string ("1.5 GiB", "300 MiB")."""
  if size >= GIB:
    return f"{size / GIB:.1f} GiB"
  return f"{size / (1 << 20):.0f} MiB"
