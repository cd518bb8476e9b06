"""The crash-isolated worker: subprocess start-up, the case loop (worker
side) and `Worker` with crash / hang handling (test-process side)."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from fuzz import cases
from fuzz import ipc

__all__ = ["OpCrashed", "OpHung", "Worker", "command", "subprocess_env",
           "worker_main"]

# The folder holding the fuzz package (tests/): on the subprocesses' path.
_TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OpCrashed(BaseException):
  """The worker died while running a case (a crash is never shrunk)."""


class OpHung(BaseException):
  """A case ran past its time limit."""


def package_parent():
  """The directory holding the tfkaf package the tests import."""
  import tfkaf  # pylint: disable=g-import-not-at-top
  return os.path.dirname(os.path.dirname(os.path.abspath(tfkaf.__file__)))


def subprocess_env(extra=None):
  """The environment of the harness's subprocesses: the tests' tfkaf and
  the fuzz package first on PYTHONPATH, quiet TensorFlow, plus `extra`."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [package_parent(), _TESTS_DIR]
      + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.update(extra or {})
  return env


def command(*args):
  """The command line of a harness subprocess (`python -m fuzz ARGS`); -P
  keeps its working directory off sys.path. Run it with subprocess_env()."""
  return [sys.executable, "-P", "-m", "fuzz"] + [str(a) for a in args]


def worker_main():
  """Loop: read a case from stdin, execute it, write the result."""
  import faulthandler  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  faulthandler.enable()
  # The protocol owns the original stdout; anything printed goes to stderr.
  proto_out = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfkaf  # pylint: disable=g-import-not-at-top
  import tfkaf.reference  # pylint: disable=g-import-not-at-top
  from fuzz import execute  # pylint: disable=g-import-not-at-top
  execute.State.tf = tf
  execute.State.tfkaf = tfkaf
  execute.State.raw = tfkaf.load_ops()
  execute.State.reference = tfkaf.reference
  ipc.send(proto_out, {"ready": True, "tfkaf": tfkaf.__file__,
                       "cpu_path": tfkaf.build_info()["cpu_path"]})
  fd = sys.stdin.fileno()
  while True:
    try:
      case = ipc.recv(fd)
    except EOFError:
      return
    sys.stderr.write(f"[case] {cases.describe(case)[0]}\n")
    sys.stderr.flush()
    try:
      result = execute.execute(case)
    except Exception as e:  # pylint: disable=broad-except
      result = {"harness_error": f"{type(e).__name__}: {e}\n"
                                 + traceback.format_exc()[-2000:]}
    ipc.send(proto_out, result)


class Worker:
  """A persistent crash-isolated executor of cases.

  cpu_path: the CPU kernel path forced in the worker (TFKAF_CPU_PATH), or
  None for the one the plugin picks; the worker must run it.
  """

  def __init__(self, case_timeout=None, startup_timeout=300, cpu_path=None):
    self.case_timeout = case_timeout or float(
        os.environ.get("TFKAF_FUZZ_CASE_TIMEOUT", "120"))
    self.startup_timeout = startup_timeout
    self.cpu_path = cpu_path
    self.proc = None
    self.stderr_file = None
    self.restarts = 0
    self.cases = 0

  def _start(self):
    forced = {"TFKAF_CPU_PATH": self.cpu_path} if self.cpu_path else None
    self.stderr_file = tempfile.TemporaryFile()
    self.proc = subprocess.Popen(
        command("--worker"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=self.stderr_file, env=subprocess_env(forced),
        cwd=tempfile.gettempdir())
    try:
      hello = ipc.recv(self.proc.stdout.fileno(),
                       time.time() + self.startup_timeout)
    except (EOFError, TimeoutError):
      tail = self._stderr_tail()
      self.close()
      raise RuntimeError(f"fuzz worker failed to start:\n{tail}")
    assert hello.get("ready"), hello
    if self.cpu_path not in (None, hello["cpu_path"]):
      self.close()
      raise RuntimeError(f"fuzz worker runs CPU path {hello['cpu_path']}, "
                         f"not the forced {self.cpu_path}")

  def _stderr_tail(self, n=6000):
    if self.stderr_file is None:
      return ""
    self.stderr_file.flush()
    self.stderr_file.seek(0, os.SEEK_END)
    size = self.stderr_file.tell()
    self.stderr_file.seek(max(0, size - n))
    return self.stderr_file.read().decode(errors="replace")

  def _lost(self, case, what):
    """Message of a lost worker (after _reset): the case, its reproducer
    and the worker's stderr tail."""
    tail = self._stderr_tail()
    self._reset()
    label, repro = cases.describe(case, self.cpu_path)
    return (f"{what}: {label}\nreproducer:\n{repro}\nworker stderr tail:\n"
            f"{tail}")

  def run(self, case):
    """The worker's result dict for case; OpHung / OpCrashed if it hangs
    or dies (the next case gets a fresh worker)."""
    if self.proc is None or self.proc.poll() is not None:
      self._start()
    self.cases += 1
    try:
      ipc.send(self.proc.stdin, case)
      return ipc.recv(self.proc.stdout.fileno(),
                      time.time() + self.case_timeout)
    except TimeoutError:
      self.proc.kill()
      self.proc.wait()
      raise OpHung(self._lost(
          case, f"case ran longer than {self.case_timeout}s")) from None
    except (EOFError, BrokenPipeError):
      code = self.proc.wait()
      sig = (f"signal {signal.Signals(-code).name}" if code < 0 else
             f"exit status {code}")
      raise OpCrashed(self._lost(
          case, f"the op crashed the worker process ({sig}) on case")
                      ) from None

  def _reset(self):
    self.restarts += 1
    self._close_pipes()
    self.proc = None
    self._close_stderr()

  def _close_pipes(self):
    for pipe in (self.proc.stdin, self.proc.stdout):
      try:
        pipe.close()
      except OSError:  # a broken pipe to a dead worker
        pass

  def _close_stderr(self):
    if self.stderr_file is not None:
      self.stderr_file.close()
      self.stderr_file = None

  def close(self):
    if self.proc is not None:
      try:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
      except Exception:  # pylint: disable=broad-except
        self.proc.kill()
        self.proc.wait()
      self._close_pipes()
      self.proc = None
    self._close_stderr()
