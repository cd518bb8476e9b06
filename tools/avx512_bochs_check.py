"""The avx512 CPU path executed for real, on a machine without AVX-512.

    python3 tools/avx512_bochs_check.py [--eigen DIR] [--kernel-deb FILE]
        [--json FILE]

tests/test_avx512_emulated.py runs the avx512 copy of the kernels compiled
for AVX2 (its 16-lane logic, not GCC's AVX-512 instructions), and
tools/avx512_check.py needs a CPU with AVX-512. This runs the real
instructions on any x86-64 Linux machine, in Bochs, an instruction-set
emulator that implements AVX-512 (model corei7_skylake_x: AVX-512F, CD,
BW, DQ, VL):

1. builds the CPU functors with g++ as they are, linked statically
   (tests/native_driver.py);
2. boots a Debian cloud kernel in Bochs with an initramfs that holds the
   driver, the cases of tests/cpu_path_cases.py and busybox; the guest runs
   every case forward and backward on the baseline, avx2 and avx512 paths
   and writes the outputs to a disk image (about 2 minutes);
3. holds each path's outputs to the NumPy reference and to the baseline
   path, also on inputs full of NaN, inf, huge and subnormal values
   (native_driver.verdicts; cpu_path_cases.special_inputs), and each path
   this CPU also has to this CPU's own run of the same binary, bitwise:
   the emulator's fidelity.

Timing inside an emulator means nothing; tools/avx512_check.py times the
paths on real hardware.

Needs Debian's packages (apt-get install -y bochs bochsbios vgabios
bochs-term isolinux syslinux-common genisoimage cpio busybox-static),
g++, NumPy and Eigen's headers (--eigen, as for tools/avx512_check.py).
The kernel: --kernel-deb, else `apt-get download` fetches the current
linux-image-*-cloud-amd64 package from Debian's archive (~26 MB).

Exit status: 0 when every check passed, 1 when one failed, 2 when the
check could not run.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# pylint: disable=g-import-not-at-top,wrong-import-position
try:
  import numpy as np  # pylint: disable=unused-import
except ImportError:
  sys.exit("tools/avx512_bochs_check.py needs NumPy "
           "(python3 -m pip install numpy)")

import cpu_path_cases as cases
import native_driver
from fuzz import cpu_paths

sys.path.insert(0, str(ROOT / "tools"))
import avx512_check  # the shared options, where Eigen's headers are
# pylint: enable=g-import-not-at-top,wrong-import-position

PATHS = ("baseline", "avx2", "avx512")
PACKAGES = ("bochs bochsbios vgabios bochs-term isolinux syslinux-common "
            "genisoimage cpio busybox-static")
FILES = {"bios": "/usr/share/bochs/BIOS-bochs-latest",
         "vgabios": "/usr/share/vgabios/vgabios.bin",
         "isolinux": "/usr/lib/ISOLINUX/isolinux.bin",
         "ldlinux": "/usr/lib/syslinux/modules/bios/ldlinux.c32",
         "busybox": "/bin/busybox"}
COMMANDS = ("bochs", "genisoimage", "cpio", "gzip", "script", "g++",
            "dpkg-deb")
# The block-device modules the guest loads to write its results, in order.
MODULES = ("drivers/scsi/scsi_common", "drivers/scsi/scsi_mod",
           "drivers/ata/libata", "drivers/ata/ata_piix", "drivers/scsi/sd_mod")
# Bochs 2.7 reports the standard-format XSAVE size (CPUID 0xD, sub-leaf 1)
# for the compacted format, and Linux 6.1 then turns XSAVE off, and AVX and
# AVX-512 with it ("XSAVE consistency problem"). Without XSAVES and XSAVEC
# the kernel takes the standard format, whose layout Bochs reports right;
# nopku leaves out PKRU, whose state the kernel also found misplaced.
KERNEL_ARGS = ("console=ttyS0,115200 loglevel=4 nokaslr nopku "
               "clearcpuid=xsaves,xsavec mitigations=off tsc=reliable")
DISK_CYLINDERS = 130  # x 16 heads x 63 sectors x 512 bytes: ~64 MiB
MARK = "tfkaf-guest:"

BOCHSRC = f"""megs: 512
cpu: model=corei7_skylake_x, count=1, ips=200000000
romimage: file={FILES["bios"]}
vgaromimage: file={FILES["vgabios"]}
display_library: term
ata0-master: type=disk, path=out.img, mode=flat, cylinders={DISK_CYLINDERS}, \
heads=16, spt=63
ata0-slave: type=cdrom, path=boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=serial.log
log: bochs.log
panic: action=fatal
error: action=report
info: action=ignore
clock: sync=none, time0=local
speaker: enabled=0
"""


def _init_script(sets):
  """The guest's /init: runs the driver on every path for every case set
  (a folder /g/<set> each), then writes /g to the disk image."""
  return f"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
echo "{MARK} $($B grep -m1 '^flags' /proc/cpuinfo)"
for s in {" ".join(sets)}; do
  cd /g/$s
  for p in {" ".join(PATHS)}; do
    TFKAF_CPU_PATH=$p /driver < $p.jobs > $p.out 2> $p.err
    echo "{MARK} $s/$p exit $?"
  done
done
cd /g
for m in {" ".join(m.rsplit("/", 1)[1] for m in MODULES)}; do
  $B insmod /mod/$m.ko
done
$B tar cf /dev/sda . && echo "{MARK} written"
$B sync
$B poweroff -f
"""


def dynamic(elf):
  """Whether the ELF-64 file `elf` asks for a program interpreter (the
  guest has no shared libraries: /bin/busybox must be busybox-static's)."""
  data = pathlib.Path(elf).read_bytes()
  phoff = int.from_bytes(data[0x20:0x28], "little")
  size, count = (int.from_bytes(data[o:o + 2], "little") for o in (0x36, 0x38))
  return any(data[phoff + i * size:phoff + i * size + 4] == b"\3\0\0\0"
             for i in range(count))


def _missing(eigen):
  """What the check lacks on this machine, as a message, or None."""
  lacking = [c for c in COMMANDS if shutil.which(c) is None]
  lacking += [f for f in FILES.values() if not pathlib.Path(f).is_file()]
  if not lacking and dynamic(FILES["busybox"]):
    lacking.append(f"a static {FILES['busybox']}")
  if lacking:
    return (f"missing: {', '.join(lacking)}; on Debian: apt-get install -y "
            f"{PACKAGES} g++")
  if eigen is None:
    return ("needs Eigen's headers (--eigen DIR holding Eigen/Core); see "
            "tools/avx512_check.py")
  return None


def _kernel_deb(folder):
  """Downloads the current Debian cloud kernel package into `folder`."""
  depends = subprocess.run(
      ["apt-cache", "depends", "--important", "linux-image-cloud-amd64"],
      capture_output=True, text=True, check=True).stdout
  found = re.search(r"Depends: (linux-image-\S+)", depends)
  if not found:
    raise RuntimeError(f"no cloud kernel package in apt's lists:\n{depends}")
  subprocess.run(["apt-get", "download", found.group(1)], cwd=folder,
                 check=True, capture_output=True)
  return next(pathlib.Path(folder).glob("linux-image-*.deb"))


def _kernel(folder, deb):
  """(vmlinuz, the modules folder) from the kernel package `deb`."""
  tree = folder / "kernel"
  subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
  vmlinuz = next(tree.glob("boot/vmlinuz-*"))
  modules = next(tree.glob("lib/modules/*/kernel"))
  return vmlinuz, modules


def _initramfs(folder, driver, modules, sets):
  """The guest's initramfs (gzipped cpio): busybox, /init, the driver, the
  block-device modules and, under /g/<set>, every path's job list and
  inputs. sets: {set: its cases} (cpu_path_cases.case_sets())."""
  root = folder / "root"
  for sub in ("bin", "dev", "proc", "mod", "g"):
    (root / sub).mkdir(parents=True)
  shutil.copy(FILES["busybox"], root / "bin" / "busybox")
  shutil.copy(driver, root / "driver")
  for module in MODULES:
    name = module.rsplit("/", 1)[1] + ".ko"
    shutil.copy(modules / (module + ".ko"), root / "mod" / name)
  for (name, inputs), path in ((s, p) for s in sets.items() for p in PATHS):
    jobs = native_driver.write_jobs(root / "g" / name, inputs, path)
    (root / "g" / name / f"{path}.jobs").write_text(jobs)
  (root / "init").write_text(_init_script(sets))
  (root / "init").chmod(0o755)
  archive = folder / "initrd.gz"
  with open(archive, "wb") as out:
    subprocess.run("find . | cpio -o -H newc | gzip -1", shell=True,
                   cwd=root, stdout=out, stderr=subprocess.PIPE, check=True)
  return archive


def _boot_image(folder, vmlinuz, initrd):
  """boot.iso: isolinux, the kernel and the initramfs."""
  iso = folder / "iso"
  iso.mkdir()
  for name, source in (("isolinux.bin", FILES["isolinux"]),
                       ("ldlinux.c32", FILES["ldlinux"]),
                       ("vmlinuz", vmlinuz), ("initrd.gz", initrd)):
    shutil.copy(source, iso / name)
  (iso / "isolinux.cfg").write_text(
      "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n"
      f"  APPEND initrd=initrd.gz {KERNEL_ARGS}\n")
  subprocess.run(["genisoimage", "-quiet", "-o", str(folder / "boot.iso"),
                  "-b", "isolinux.bin", "-c", "boot.cat", "-no-emul-boot",
                  "-boot-load-size", "4", "-boot-info-table", str(iso)],
                 check=True)


def _boot(folder, timeout):
  """Runs the guest to its power-off; returns its serial console's text.
  Bochs's terminal display wants a terminal, which `script` gives it; its
  debugger's prompt is answered with `c` (continue)."""
  with open(folder / "out.img", "wb") as disk:
    disk.truncate(DISK_CYLINDERS * 16 * 63 * 512)
  (folder / "bochsrc").write_text(BOCHSRC)
  (folder / "commands").write_text("c\n")
  subprocess.run(["script", "-qfec", "bochs -q -f bochsrc -rc commands",
                  "/dev/null"], cwd=folder, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 timeout=timeout, check=False)
  log = folder / "serial.log"
  return log.read_text(errors="replace") if log.is_file() else ""


def guest_report(serial):
  """(the guest CPU's flags, {path: the driver's exit status}, whether the
  results were written) from the guest's serial console text."""
  flags, status, written = set(), {}, False
  for line in serial.splitlines():
    if not line.startswith(MARK):
      continue
    words = line[len(MARK):].split()
    if words[:1] == ["flags"]:
      flags = set(words[2:])
    elif len(words) == 3 and words[1] == "exit":
      status[words[0]] = int(words[2])
    elif words == ["written"]:
      written = True
  return flags, status, written


def _guest_set(results, inputs, status):
  """One case set's {path: (the path the driver reported, its outputs)}
  from the guest's `results` folder, and {path: why it has none}."""
  outputs, failed = {}, {}
  for path in PATHS:
    out, code = results / f"{path}.out", status.get(path)
    if code != 0 or not out.is_file():
      err = results / f"{path}.err"
      failed[path] = (f"FAILED: the driver exited with {code}: "
                      f"{err.read_text()[:1000] if err.is_file() else ''}")
      continue
    try:
      outputs[path] = native_driver.read_outputs(
          results, inputs, path, out.read_text())[:2]
    except RuntimeError as e:
      failed[path] = f"FAILED: {e}"[:2000]
  return outputs, failed


def guest_outputs(folder, sets, status):
  """{set: {path: (the path the driver reported, its outputs)}} read back
  from the guest's disk image, only for the paths that gave every set, and
  {path: why it has none}. sets: {set: its cases}; status: {"set/path":
  the driver's exit status} (guest_report)."""
  results = folder / "results"
  with tarfile.open(folder / "out.img") as tar:
    tar.extractall(results, filter="data")
  outputs, failed = {}, {}
  for name, inputs in sets.items():
    codes = {k.split("/")[1]: v for k, v in status.items()
             if k.startswith(name + "/")}
    outputs[name], lost = _guest_set(results / name, inputs, codes)
    failed = {**lost, **failed}
  for got in outputs.values():
    for path in failed:
      got.pop(path, None)
  return outputs, failed


def fidelity(driver, folder, sets, guest):
  """{path: "bitwise equal" or what differs}: for every path this CPU has,
  the guest's outputs (guest_outputs) of every set against this CPU's run
  of the same binary."""
  result = {}
  for path in cpu_paths.available():
    if any(path not in got for got in guest.values()):
      continue
    differ = []
    for name, inputs in sets.items():
      _, here, _ = native_driver.run(driver, folder / "host" / name, inputs,
                                     path)
      there = guest[name][path][1]
      differ += [k for k in here if here[k].tobytes() != there[k].tobytes()]
    result[path] = ("bitwise equal" if not differ else
                    f"DIFFERS in {len(differ)} outputs, first {differ[0]}")
  return result


def _run(folder, args, eigen):
  """The whole check in `folder`; returns the JSON record."""
  sets = cases.case_sets()
  (folder / "build").mkdir()
  driver = native_driver.build(folder / "build", eigen, static=True)
  deb = args.kernel_deb or _kernel_deb(folder)
  vmlinuz, modules = _kernel(folder, deb)
  _boot_image(folder, vmlinuz, _initramfs(folder, driver, modules, sets))
  serial = _boot(folder, args.timeout)
  flags, status, written = guest_report(serial)
  record = {"emulator": "Bochs, corei7_skylake_x",
            "kernel": pathlib.Path(deb).name,
            "guest_avx512": sorted(f for f in flags if f.startswith("avx512")),
            "driver_exit": status}
  if not written:
    record["cases"] = {p: "FAILED: no results from the guest" for p in PATHS}
    record["serial_tail"] = serial[-3000:]
    return record
  outputs, failed = guest_outputs(folder, sets, status)
  record["cases"] = {**native_driver.verdicts(
      outputs["cases"], sets["cases"], outputs["special"]), **failed}
  record["fidelity"] = fidelity(driver, folder, sets, outputs)
  return record


def _parse(argv):
  parser = avx512_check.arguments(
      "Runs every CPU path, avx512 included, in the Bochs emulator and "
      "checks it (see the module's docstring).")
  parser.add_argument("--kernel-deb", help="a Debian linux-image .deb "
                      "(default: apt-get download the cloud kernel)")
  parser.add_argument("--timeout", type=int, default=1200,
                      help="seconds the emulator may run")
  return parser.parse_args(argv)


def main(argv=None):
  args = _parse(argv)
  eigen = avx512_check.eigen_folder(args.eigen)
  why = _missing(eigen)
  if why:
    print(f"tools/avx512_bochs_check.py: {why}", file=sys.stderr)
    return 2
  with tempfile.TemporaryDirectory(prefix="tfkaf_bochs_") as tmp:
    try:
      record = _run(pathlib.Path(tmp), args, eigen)
    except (native_driver.BuildError, RuntimeError, OSError,
            subprocess.SubprocessError) as e:
      print(f"tools/avx512_bochs_check.py: could not run: {e}",
            file=sys.stderr)
      return 2
  print(json.dumps(record, indent=1))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(record, indent=1))
  passed = all(v == "passed" for v in record["cases"].values()) and all(
      v == "bitwise equal" for v in record.get("fidelity", {}).values())
  return 0 if passed else 1


if __name__ == "__main__":
  sys.exit(main())
