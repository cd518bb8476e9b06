"""`tfkaf bench`'s memory budget, and memory sizes as the command reads them."""

import pytest

from tfkaf import _memory
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
  assert len(by_variant) == 8
  for pass_name in benchmark.PASSES:
    for variant in ("fused", "relu"):
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
  assert len(records) == 8
