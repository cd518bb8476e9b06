"""tools/avx512_bochs_check.py's own logic: what it reads from the guest's
console and disk, and what it says when it cannot run. The emulator run
itself (about 2 minutes, Debian's bochs packages) is on demand, like
tools/avx512_check.py."""

import importlib.util
import shutil
import subprocess
import sys
import tarfile

import pytest

import cpu_path_cases as cases
import native_driver


def _tool():
  spec = importlib.util.spec_from_file_location(
      "avx512_bochs_check",
      native_driver.ROOT / "tools" / "avx512_bochs_check.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_guest_report_reads_the_marked_lines():
  tool = _tool()
  serial = "\n".join([
      "[    0.1] boot noise tfkaf-guest: not at the start",
      "tfkaf-guest: flags\t\t: fpu sse2 avx2 avx512f avx512bw",
      "tfkaf-guest: cases/baseline exit 0",
      "tfkaf-guest: cases/avx512 exit 132",
      "tfkaf-guest: written",
  ])
  flags, status, written = tool.guest_report(serial)
  assert {"avx2", "avx512f", "avx512bw"} <= flags and "noise" not in flags
  assert status == {"cases/baseline": 0, "cases/avx512": 132}
  assert written
  assert tool.guest_report("kernel panic\n") == (set(), {}, False)


def test_a_path_that_died_in_the_guest_fails_with_its_error(tmp_path):
  """A driver killed in the guest (an illegal instruction: exit 132) fails
  its path with what it printed; the paths without output fail too."""
  tool = _tool()
  (tmp_path / "avx512.err").write_text("Illegal instruction")
  with tarfile.open(tmp_path / "out.img", "w") as tar:
    tar.add(tmp_path / "avx512.err", "./cases/avx512.err")
  outputs, failed = tool.guest_outputs(tmp_path, cases.case_sets(),
                                       {"cases/avx512": 132})
  assert outputs == {"cases": {}, "special": {}}
  assert failed["avx512"] == ("FAILED: the driver exited with 132: "
                              "Illegal instruction")
  assert set(failed) == set(tool.PATHS)


def test_missing_tools_name_the_packages(monkeypatch, capsys):
  tool = _tool()
  real = tool.shutil.which
  monkeypatch.setattr(tool.shutil, "which",
                      lambda c: None if c == "bochs" else real(c))
  assert tool.main(["--eigen", "/nonexistent"]) == 2
  err = capsys.readouterr().err
  assert "missing: bochs" in err
  assert "apt-get install -y bochs bochsbios" in err


def test_dynamic_tells_static_from_dynamic_executables(tmp_path):
  """The guest has no shared libraries: a dynamically linked busybox must
  be refused. Python itself is linked dynamically; a static program is
  built here where g++ can link one."""
  tool = _tool()
  assert tool.dynamic(sys.executable)
  if shutil.which("g++") is None:
    pytest.skip("no g++ on PATH")
  source = tmp_path / "main.c"
  source.write_text("int main(void) { return 0; }\n")
  built = subprocess.run(["g++", "-x", "c", str(source), "-static", "-o",
                          str(tmp_path / "static")], capture_output=True,
                         check=False)
  if built.returncode != 0:
    pytest.skip("g++ cannot link statically here")
  assert not tool.dynamic(tmp_path / "static")
