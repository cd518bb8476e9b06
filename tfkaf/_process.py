"""Python subprocesses that import this very tfkaf, wherever they run from.

A plain `python -c "import tfkaf"` puts its working directory first on
sys.path, so run from a source checkout it imports the source tree (which
holds no compiled plugin) instead of the installed package. Every
subprocess tfkaf starts goes through `run_python`: `-P` keeps the working
directory off sys.path, and the folder that holds the running tfkaf package
is put first, ahead of PYTHONPATH.
"""

import os
import subprocess
import sys

__all__ = ["package_root", "run_python"]


def package_root():
  """The folder that holds the imported `tfkaf` package."""
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, args=(), timeout=600, cwd=None):
  """Runs `code` in a fresh interpreter that imports this tfkaf.

  Returns the CompletedProcess (text, stdout and stderr captured). Paths in
  `args` should be absolute when `cwd` is given.
  """
  prologue = f"import sys; sys.path.insert(0, {package_root()!r})\n"
  command = [sys.executable, "-P", "-c", prologue + code]
  command += [str(arg) for arg in args]
  return subprocess.run(command, capture_output=True, text=True,
                        timeout=timeout, check=False, cwd=cwd)
