#!/usr/bin/env bash
# The long, on-demand fuzz profile of the reliability suite (not part of CI).
#
#   bash tools/fuzz_long.sh [extra pytest args]
#
# Runs tests/test_fuzz_ops.py with TFKAF_FUZZ_PROFILE=long: a random seed
# (printed by hypothesis on failure, with @reproduce_failure blobs) and
# TFKAF_FUZZ_EXAMPLES cases per test (default 10,000), i.e. >= 10,000 cases
# for each op's forward, its gradient op and graph construction: 90,000
# cases in all, each crash-isolated in a worker subprocess. Then the rest of
# tests/test_reliability.py (smoke corpus, 10,000-iteration leak check,
# threads), without the in-process shape-function tests (marker
# symbolic_shapes, tests/pytest.ini). Per-test case counts go to
# $TFKAF_FUZZ_STATS (default /tmp/tfkaf_fuzz_long_stats.json) and are
# printed at the end.
#
# Environment: PYTHON (default <repo>/.venv/bin/python), TFKAF_FUZZ_EXAMPLES,
# TFKAF_FUZZ_STATS, PYTHONPATH (default: the repository root, i.e. the
# in-tree tfkaf package with its built plugin).
# A dry run: bash tools/fuzz_long.sh --collect-only -q
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
export TFKAF_FUZZ_PROFILE=long
export TFKAF_FUZZ_EXAMPLES=${TFKAF_FUZZ_EXAMPLES:-10000}
export TFKAF_FUZZ_STATS=${TFKAF_FUZZ_STATS:-/tmp/tfkaf_fuzz_long_stats.json}
export TFKAF_LEAK_ITERATIONS=${TFKAF_LEAK_ITERATIONS:-10000}
export PYTHONPATH=${PYTHONPATH:-$root}
export TF_CPP_MIN_LOG_LEVEL=2
rm -f "$TFKAF_FUZZ_STATS"

cd "$(mktemp -d /tmp/tfkaf-fuzz-long.XXXXXX)"
start=$(date +%s)
status=0
"$python" -m pytest -p no:cacheprovider -q -s \
  "$root/tests/test_fuzz_ops.py" "$root/tests/test_reliability.py" \
  -m "not symbolic_shapes" "$@" || status=$?
echo "== fuzz_long.sh: pytest status $status after $(( $(date +%s) - start ))s"
[ -f "$TFKAF_FUZZ_STATS" ] || { echo "   (no case counts written)"; exit $status; }
"$python" - "$TFKAF_FUZZ_STATS" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
profile = stats.pop("_profile", {})
print(f"profile {profile}")
per_op = {}
for test, counts in sorted(stats.items()):
  print(f"  {test:18s} {counts['cases']:7d} cases ({counts.get('returned', 0)}"
        f" compared with the reference, {counts.get('raised', 0)} raised)")
  per_op[test.split('_')[0]] = per_op.get(test.split('_')[0], 0) + counts["cases"]
for op, n in per_op.items():
  print(f"  {op}: {n} cases in all")
PY
exit $status
