#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the op tests.
#
#   bash tools/asan_check.sh [extra pytest args]
#
# 1. Copies the source tree (without .venv, bazel-*, .git, built plugins) to
#    a scratch directory, so that the shared checkout's .bazelrc and plugin
#    are never touched.
# 2. There: PYTHON=<venv python> ./configure.sh --sanitize (which writes
#    --define=tfkaf_sanitize=1 and -fsanitize=address,undefined
#    -fno-sanitize-recover=undefined copts/linkopts into .bazelrc; CUDA off),
#    plus -fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute
#    (see below), and `bazel build //:_tfkaf_ops.so` (its own output base: another
#    workspace path), then puts the sanitized plugin into the copy's tfkaf/.
# 3. Runs the op tests against the copy (PYTHONPATH), with the sanitizer
#    runtimes preloaded into the (uninstrumented) Python: LD_PRELOAD of gcc's
#    libasan.so and libubsan.so, ASAN_OPTIONS=detect_leaks=0 (TensorFlow
#    leaks at exit by design) and halt/abort on the first error. The fuzz and
#    smoke-corpus cases run in worker subprocesses, which inherit all of
#    this, so a sanitizer report fails the case that caused it (naming it);
#    reports are also written to $work/logs/{asan,ubsan}.<pid>. Tests
#    marked rss_leak (tests/pytest.ini) are left out: the RSS leak check is
#    meaningless under ASan (its quarantine holds freed memory), and
#    LeakSanitizer is off because TensorFlow leaks at exit.
# 4. Exits non-zero if pytest failed or any sanitizer report was written.
#
# Environment: PYTHON (default: <repo>/.venv/bin/python), TFKAF_ASAN_DIR
# (scratch directory; default: a new /tmp/tfkaf-asan.XXXXXX),
# TFKAF_ASAN_TESTS (test files, relative to tests/; default: the fuzz and
# reliability suites plus every tests/test_*ops*.py), TFKAF_FUZZ_PROFILE
# (default asan: 250 cases per fuzz test, derandomized like CI).
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=${TFKAF_ASAN_DIR:-$(mktemp -d /tmp/tfkaf-asan.XXXXXX)}
src=$work/src
logs=$work/logs
mkdir -p "$src" "$logs"
rm -f "$logs"/*

echo "== copying $root to $src"
tar -C "$root" -cf - \
  --exclude=./.venv --exclude='./bazel-*' --exclude=./.git \
  --exclude='__pycache__' --exclude=.hypothesis --exclude='*.so' \
  --exclude=./.bazelrc . | tar -C "$src" -xf -

cd "$src"
echo "== configure.sh --sanitize"
PYTHON="$python" TFKAF_CUDA=0 ./configure.sh --sanitize
# GCC 12 rejects absl's constexpr function-pointer comparisons (included
# through TensorFlow's headers, e.g. absl/container/internal/
# hash_policy_traits.h:158 "... == nullptr is not a constant expression")
# under UBSan's null, nonnull-attribute and returns-nonnull-attribute checks:
# leave those three out (a null dereference still faults under ASan).
echo "build --copt=-fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute" >> .bazelrc
cat .bazelrc | sed 's/^/   /'

echo "== bazel build (ASan + UBSan)"
start=$(date +%s)
bazel build //:_tfkaf_ops.so
echo "   built in $(( $(date +%s) - start ))s"
cp -f bazel-bin/_tfkaf_ops.so tfkaf/_tfkaf_ops.so
chmod u+w tfkaf/_tfkaf_ops.so
if [ "$(nm -D tfkaf/_tfkaf_ops.so | grep -c __asan_init || true)" = 0 ]; then
  echo "asan_check.sh: the plugin is not instrumented" >&2
  exit 1
fi
echo "   $(ldd tfkaf/_tfkaf_ops.so | grep -E 'asan|ubsan' | tr -s ' ' | tr '\n' ' ')"

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$libasan:$libubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$logs/ubsan"
export PYTHONPATH="$src"
export TFKAF_FUZZ_PROFILE=${TFKAF_FUZZ_PROFILE:-asan}
export TFKAF_FUZZ_CASE_TIMEOUT=${TFKAF_FUZZ_CASE_TIMEOUT:-600}
export TF_CPP_MIN_LOG_LEVEL=2

if [ -n "${TFKAF_ASAN_TESTS:-}" ]; then
  read -r -a names <<< "$TFKAF_ASAN_TESTS"
else
  names=(test_fuzz_ops.py test_reliability.py)
  for f in tests/test_*ops*.py; do
    base=$(basename "$f")
    [ "$base" = test_fuzz_ops.py ] || names+=("$base")
  done
fi
tests=()
for n in "${names[@]}"; do tests+=("$src/tests/$n"); done

echo "== pytest under ASan/UBSan: ${names[*]}"
cd "$work"
status=0
"$python" -m pytest -p no:cacheprovider -q "${tests[@]}" \
  -m "not rss_leak" "$@" || status=$?

reports=$(ls "$logs" 2>/dev/null | wc -l)
echo "== sanitizer reports: $reports (in $logs)"
for f in "$logs"/*; do
  [ -e "$f" ] || continue
  echo "---- $f"
  head -60 "$f"
done
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
  echo "asan_check.sh: FAILED (pytest status $status, $reports sanitizer reports)"
  exit 1
fi
echo "asan_check.sh: clean (pytest passed, no sanitizer reports)"
