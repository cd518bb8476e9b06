"""`tfkaf bench`'s memory budget, and memory sizes as the command reads them."""

import pytest

from fuzz import cpu_paths
from tfkaf import _memory
from tfkaf import _peak
from tfkaf import benchmark

GIB = 1 << 30


@pytest.mark.parametrize("text,size", [
    ("6G", 6 * GIB), ("6GiB", 6 * GIB), ("6gb", 6 * GIB), ("4", 4 * GIB),
    ("512M", 512 << 20), ("1.5G", 3 * GIB // 2), ("100k", 100 << 10),
])
def test_parse_size_reads_units(text, size):
  assert _memory.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "-1G", "0", "6X", "5%%"])
def test_parse_size_refuses_nonsense_with_the_accepted_forms(text):
  with pytest.raises(ValueError, match="use a positive size such as 6G"):
    _memory.parse_size(text)


def test_percent_is_of_available_memory():
  available = _memory.available_bytes()
  if available is None:
    pytest.skip("no /proc/meminfo here")
  assert abs(_memory.parse_size("50%") - available // 2) < 64 << 20


def test_default_budget_is_half_of_available_at_most_8_gib():
  budget = _memory.default_budget()
  available = _memory.available_bytes()
  assert 0 < budget <= 8 * GIB
  if available is not None:
    assert budget <= available // 2 + (1 << 20)


def test_composite_estimate_grows_with_the_expansion():
  kaf = benchmark.CASES["kaf"](quick=False)
  kaf2d = benchmark.CASES["kaf2d"](quick=False)
  # [4096, 1024] x D=20 float32 is 320 MiB per [..., C, D] intermediate.
  assert kaf.composite_bytes("forward") >= 320 << 20
  assert (kaf.composite_bytes("forward_backward")
          > kaf.composite_bytes("forward"))
  # 2D-KAF's [4096, 1024, 100] intermediate alone is 1.6 GiB; its training
  # step peaked above 12 GiB, which must not fit an 8 GiB budget.
  assert kaf2d.composite_bytes("forward_backward") > 8 * GIB


def test_over_budget_baselines_are_skipped_fused_and_relu_always_run():
  records = benchmark.run(["kaf"], quick=True, repeats=1, max_memory=1 << 20,
                          log=lambda *_: None)
  by_variant = {(r["variant"], r["pass"]): r for r in records}
  assert len(by_variant) == 10
  for pass_name in benchmark.PASSES:
    for variant in ("fused", "fused_xla", "relu"):
      assert by_variant[(variant, pass_name)]["ms"] > 0
    for variant in ("composite", "composite_xla"):
      record = by_variant[(variant, pass_name)]
      assert "ms" not in record
      assert "over the 1 MiB budget" in record["skipped"], record
  table = benchmark.ratio_table(records)
  assert "composite=skipped (needs ~" in table
  assert "fused=" in table


def test_within_budget_every_variant_runs():
  records = benchmark.run(["linear_spline"], quick=True, repeats=1,
                          max_memory=4 * GIB, log=lambda *_: None)
  assert all("ms" in r and "skipped" not in r for r in records), records
  assert len(records) == 10


def test_relu_runs_first_in_every_repetition():
  calls = []

  def timed(name):
    return lambda x, param: calls.append(name)

  fns = {v: timed(v) for v in ("fused", "composite", "relu")}
  times = benchmark._time_interleaved(fns, None, None, repeats=3)  # pylint: disable=protected-access
  assert calls[6:] == ["relu", "fused", "composite"] * 3  # after warm-up
  assert {v: len(t) for v, t in times.items()} == {
      "fused": 3, "composite": 3, "relu": 3}


def test_ratio_is_the_median_of_paired_repetitions(monkeypatch):
  """A slow spell (relu 5 ms, fused 10 ms in the third repetition) must not
  decide the ratio: pairs give 2, 6, 2 -> 2, where the medians (6 ms over
  1 ms) would give 6."""
  times = {"relu": [1.0, 1.0, 5.0], "fused": [2.0, 6.0, 10.0]}
  monkeypatch.setattr(benchmark, "_time_interleaved",
                      lambda fns, *unused: {v: times[v] for v in fns})
  monkeypatch.setattr(benchmark, "VARIANTS", ("fused", "relu"))
  lines = []
  records = benchmark._bench_pass(  # pylint: disable=protected-access
      benchmark.CASES["kaf"](quick=True), "forward", None, None, 3,
      peak=None, budget=0, log=lines.append)
  fused = next(r for r in records if r["variant"] == "fused")
  assert fused["ms"] == 6.0
  assert fused["relu_ratio"] == 2.0
  assert fused["relu_ratio_range"] == [2.0, 6.0]
  assert benchmark.ratios(records) == {
      ("kaf", "forward"): {"fused": 2.0, "relu": 1.0}}
  assert "2.00x relu (2.00-6.00)" in lines[0]


def _proc_cpuinfo_model():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown"


def test_records_name_the_machine_they_ran_on():
  lines = []
  records = benchmark.run(["linear_spline"], quick=True, repeats=1,
                          log=lines.append)
  machine = records[0]["machine"]
  assert all(r["machine"] == machine for r in records)
  assert machine["cpu_model"] == _proc_cpuinfo_model()
  assert machine["cpu_path"] in ("baseline", "avx2", "avx512")
  assert machine["threads"] >= 1
  assert set(machine["cpu_features"]) <= {"avx2", "fma", "avx512f"}
  assert cpu_paths.NEEDS[machine["cpu_path"]] <= set(machine["cpu_features"])
  assert lines[0].startswith(f"machine: {machine['cpu_model']}; CPU kernel "
                             f"path {machine['cpu_path']}")
  assert machine["allocator"] == _peak.allocator()
  assert f"; {machine['allocator']} allocator" in lines[0]
  assert machine["onednn"] in (True, False)
  assert lines[0].endswith("; oneDNN " + ("on" if machine["onednn"] else "off"))


# Run in a fresh process: the CPU allocator is chosen once per process. It
# prints the allocator, whether oneDNN is on, the minor page faults per call
# of relu on 16 MiB in a tf.function, and the peak the meter gives for a
# call that holds two 16 MiB tensors at once (zeros and zeros + 1).
_ALLOCATOR_SCRIPT = """
import json, resource, sys
from tfkaf import _machine, _peak
if sys.argv[1] == "pooled":
  _peak.use_pooled_allocator()
import tensorflow as tf
x = tf.ones([4 << 20])
relu = tf.function(tf.nn.relu)
relu(x); relu(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  relu(x)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 10
def call():
  y = tf.zeros([4 << 20]) + 1.0
  return float(tf.reduce_sum(y[: 1 << 20]))
peak = _peak.peak_meter("/CPU:0").measure(call)
print(json.dumps({"allocator": _peak.allocator(), "faults": faults,
                  "peak_mb": peak, "onednn": _machine.onednn()}))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("asked, onednn, expected", [
    ("pooled", "0", "pooled"),
    ("default", "0", "malloc"),
    ("default", "1", "pooled"),
])
def test_allocator_choice_and_peak_meter(asked, onednn, expected,
                                         monkeypatch):
  """use_pooled_allocator gives TensorFlow's pooled CPU allocator: relu's
  16 MiB output reuses memory instead of page-faulting fresh pages on every
  call (4096 pages of 4 KiB). With oneDNN on (TF_ENABLE_ONEDNN_OPTS=1, the
  default on CPUs with AVX512_VNNI, BF16 or AMX) the default allocator is
  oneDNN's, which pools too. A pooled allocator's statistics give the
  call's peak exactly (32 MiB); the resident high-water mark of malloc at
  least sees the first tensor."""
  import json  # pylint: disable=g-import-not-at-top

  from tfkaf import _process  # pylint: disable=g-import-not-at-top

  monkeypatch.delenv(_peak.POOLED_ALLOCATOR_ENV, raising=False)
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
  result = _process.run_python(_ALLOCATOR_SCRIPT, [asked])
  assert result.returncode == 0, result.stderr[-2000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["onednn"] is (onednn == "1"), out
  assert out["allocator"] == expected, out
  if expected == "pooled":
    assert out["faults"] < 64, out
    assert 32.0 <= out["peak_mb"] < 33.0, out
  else:
    assert out["peak_mb"] >= 16.0, out


@pytest.mark.parametrize("forced", ["baseline", "no-such-path"])
def test_cpu_path_follows_tfkaf_cpu_path(forced, monkeypatch):
  """The reported path is the one the kernels run: forced to baseline, or
  the best supported one for an unknown name (read once per process)."""
  import json  # pylint: disable=g-import-not-at-top

  from tfkaf import _machine  # pylint: disable=g-import-not-at-top
  from tfkaf import _process  # pylint: disable=g-import-not-at-top

  script = ("import json, tfkaf; from tfkaf import _machine; "
            "print(json.dumps(_machine.describe()))")
  monkeypatch.setenv("TFKAF_CPU_PATH", forced)
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
  result = _process.run_python(script)
  assert result.returncode == 0, result.stderr[-2000:]
  reported = json.loads(result.stdout.strip().splitlines()[-1])["cpu_path"]
  features = set(_machine.describe()["cpu_features"])
  best = ("avx512" if {"avx512f", "avx2", "fma"} <= features else
          "avx2" if {"avx2", "fma"} <= features else "baseline")
  assert reported == ("baseline" if forced == "baseline" else best)


def test_fused_cpu_records_carry_the_compute_floor_fraction():
  """floor_ms = flops/element x elements / (threads x lanes x 2 x clock),
  recomputed here from the record's own basis and the machine it names."""
  from tfkaf import _floor  # pylint: disable=g-import-not-at-top

  records = benchmark.run(["kaf2d"], quick=True, repeats=1,
                          max_memory=1 << 20, log=lambda *_: None)
  fused = {(r["pass"], r["variant"]): r for r in records
           if r["variant"] in ("fused", "fused_xla")}
  assert set(fused) == {(p, v) for p in benchmark.PASSES
                        for v in ("fused", "fused_xla")}
  for (pass_name, _), record in fused.items():
    basis, machine = record["floor_basis"], record["machine"]
    # [512, 2048] -> [512, 1024]; D = 10: 2 D^2 + 4 D forward, plus
    # 6 D^2 + 11 D backward.
    assert basis["elements"] == 512 * 1024
    assert basis["flops_per_element"] == (
        240 if pass_name == "forward" else 240 + 710)
    assert basis["lanes"] == {"baseline": 4, "avx2": 8,
                              "avx512": 16}[machine["cpu_path"]]
    assert basis["cores"] == machine["threads"]
    assert basis["clock_mhz"] == _floor.clock_mhz() > 0
    want = (basis["flops_per_element"] * basis["elements"]
            / (basis["cores"] * basis["lanes"] * 2 * basis["clock_mhz"] * 1e3))
    assert abs(record["floor_ms"] - want) <= 1e-9 * want
    assert record["floor_fraction"] == record["floor_ms"] / record["ms"]
  others = [r for r in records if not r["variant"].startswith("fused")]
  assert others and not any("floor_ms" in r or "floor_fraction" in r
                            for r in others)


@pytest.mark.parametrize("op,size,forward,step", [
    ("kaf", 20, 60, 160),          # the ~60 + ~100 of docs/design.md
    ("kaf2d", 10, 240, 950),
    ("linear_spline", 51, 6, 14),
])
def test_flops_per_element(op, size, forward, step):
  from tfkaf import _floor  # pylint: disable=g-import-not-at-top

  assert _floor.flops_per_element(op, "forward", size) == forward
  assert _floor.flops_per_element(op, "forward_backward", size) == step


def test_clock_is_read_from_proc_cpuinfo():
  from tfkaf import _floor  # pylint: disable=g-import-not-at-top

  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      lines = [l for l in f if l.startswith("cpu MHz")]
  except OSError:
    lines = []
  if not lines:
    assert _floor.clock_mhz() is None
    assert _floor.estimate("kaf", "forward", (8, 8), (8, 20), "avx2", 2) == {}
  else:
    assert _floor.clock_mhz() == float(lines[0].split(":")[1])
