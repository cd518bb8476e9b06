#!/usr/bin/env bash
# Standalone check of the tfkaf CUDA kernels, without TensorFlow or Bazel
# (tools/cuda_check/README.md).
#
#   bash tools/cuda_check/run.sh         # GPU present: build, self-test,
#                                        # correctness, determinism,
#                                        # sanitizers, benchmark; no GPU: --ci
#   bash tools/cuda_check/run.sh --ci    # build with nvcc + CPU self-test only
#   bash tools/cuda_check/run.sh --gpu   # as the default, but fail without GPU
#
# Environment:
#   CUDA_CHECK_ARCH   SM architecture to build, e.g. 90 / sm_90 / 9.0 (default:
#                     the card's compute capability from nvidia-smi, else 90)
#   NVCC              the nvcc to use (default: nvcc on PATH, else
#                     /usr/local/cuda/bin/nvcc)
#   CUDA_CHECK_BUILD  build directory (default tools/cuda_check/build)
#   OUT               when set, logs and summary.txt go to $OUT/cuda_check
#                     (else to the build directory's logs/)
#   CUDA_CHECK_STEPS  GPU steps to run (default: "check determinism memcheck
#                     racecheck bench"; also available: initcheck synccheck)
#   CUDA_CHECK_JOBS   parallel compile jobs (default: number of CPUs, <= 8)
#   CUDA_CHECK_REQUIRE_NVCC=1  make a missing nvcc an error in --ci mode
#
# Exit status: 0 when every step that ran passed (sanitizer steps the
# sanitizer refuses to run count as skipped, not failed), 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tools/cuda_check
mode=auto
case "${1:-}" in
  --ci) mode=ci ;;
  --gpu) mode=gpu ;;
  "") ;;
  -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--ci|--gpu]" >&2; exit 2 ;;
esac

build=${CUDA_CHECK_BUILD:-$here/build}
if [[ -n "${OUT:-}" ]]; then logs=$OUT/cuda_check; else logs=$build/logs; fi
mkdir -p "$build/obj" "$logs"
summary=$logs/summary.txt
: > "$summary"
failed=0
t_start=$SECONDS

note() { echo "$*" | tee -a "$summary"; }
step_result() {  # name status detail
  printf '%-12s %-8s %s\n' "$1:" "$2" "$3" | tee -a "$summary"
  [[ $2 == FAILED || $2 == TIMEOUT ]] && failed=1
  return 0
}

note "cuda_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), mode $mode"

# --- nvcc -----------------------------------------------------------------
nvcc=${NVCC:-}
if [[ -z "$nvcc" ]]; then
  nvcc=$(command -v nvcc || true)
  [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [[ -z "$nvcc" || ! -x "$nvcc" ]]; then
  if [[ $mode == ci && "${CUDA_CHECK_REQUIRE_NVCC:-0}" != 1 ]]; then
    step_result build SKIPPED "nvcc not found: nothing to build"
    note "GPU parts skipped: no nvcc"
    exit 0
  fi
  step_result build FAILED "nvcc not found (set NVCC)"
  exit 1
fi
note "nvcc: $nvcc ($("$nvcc" --version | tail -1))"

# --- GPU and architecture ------------------------------------------------
gpu_cap=""
if [[ $mode != ci ]] && command -v nvidia-smi > /dev/null 2>&1; then
  gpu_cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
            | head -1 | tr -d ' ')
  nvidia-smi > "$logs/nvidia-smi.txt" 2>&1 || true
fi
arch=${CUDA_CHECK_ARCH:-}
if [[ -z "$arch" && "$gpu_cap" =~ ^[0-9]+\.[0-9]+$ ]]; then
  arch=${gpu_cap/./}
fi
arch=${arch:-90}
arch=${arch#sm_}
arch=${arch/./}
if ! [[ "$arch" =~ ^[0-9]+[a-z]?$ ]]; then
  step_result build FAILED "bad CUDA_CHECK_ARCH '$arch'"
  exit 1
fi

# --- build ----------------------------------------------------------------
# Every source to an object in parallel (kernels exactly as the plugin's
# nvcc rule compiles them, at -O2), then one link. Equivalent to the single
# command in README.md.
jobs=${CUDA_CHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}
(( jobs > 8 )) && jobs=8
flags=(-std=c++17 -O2 --expt-relaxed-constexpr -lineinfo "-arch=sm_$arch"
       "-I$root" -DTFKAF_WITH_CUDA=1)
sources=("$here"/*.cc "$here"/*.cu "$root"/cc/kernels/*.cu.cc)
headers=("$here"/*.h "$root"/cc/kernels/*.h)
stamp="$build/obj/flags.txt"
echo "${flags[*]} $("$nvcc" --version | tail -1)" > "$stamp.new"
if ! cmp -s "$stamp" "$stamp.new"; then rm -f "$build"/obj/*.o; fi
mv "$stamp.new" "$stamp"
newest_header=0
for h in "${headers[@]}"; do
  m=$(stat -c %Y "$h"); (( m > newest_header )) && newest_header=$m
done
build_log=$logs/build.log
: > "$build_log"
t0=$SECONDS
objects=()
pids=()
names=()
for src in "${sources[@]}"; do
  rel=${src#$root/}
  obj="$build/obj/$(echo "$rel" | tr '/' '_').o"
  objects+=("$obj")
  if [[ -f "$obj" && $(stat -c %Y "$obj") -ge $(stat -c %Y "$src") &&
        $(stat -c %Y "$obj") -ge $newest_header ]]; then
    continue
  fi
  lang=()
  [[ $src == *.cu.cc || $src == *.cu ]] && lang=(-x cu)
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  ( "$nvcc" "${flags[@]}" "${lang[@]}" -c "$src" -o "$obj.tmp" \
      > "$build_log.$(basename "$obj").txt" 2>&1 && mv "$obj.tmp" "$obj" ) &
  pids+=($!)
  names+=("$rel")
done
build_ok=1
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then build_ok=0; echo "FAILED: ${names[$i]}" >> "$build_log"; fi
done
for f in "$build_log".*.txt; do
  [[ -f $f ]] || continue
  if [[ -s $f ]]; then echo "== ${f#$build_log.}" >> "$build_log"; cat "$f" >> "$build_log"; fi
  rm -f "$f"
done
exe=$build/cuda_check
if (( build_ok )); then
  "$nvcc" "-arch=sm_$arch" -o "$exe" "${objects[@]}" -Xcompiler -pthread \
    >> "$build_log" 2>&1 || build_ok=0
fi
if (( ! build_ok )); then
  step_result build FAILED "see $build_log"
  tail -40 "$build_log"
  exit 1
fi
step_result build OK "sm_$arch, ${#names[@]} of ${#sources[@]} sources compiled, $((SECONDS - t0)) s"

# --- steps ----------------------------------------------------------------
# run_step NAME TIMEOUT_S CMD...: runs CMD with its output in NAME.log and
# reports the last line that starts with "NAME" (or the tail on failure).
run_step() {
  local name=$1 limit=$2
  shift 2
  local log=$logs/$name.log t=$SECONDS rc
  timeout -k 15 "$limit" "$@" > "$log" 2>&1
  rc=$?
  local line
  line=$(grep -E "^$name" "$log" | tail -1)
  if (( rc == 124 || rc == 137 )); then
    step_result "$name" TIMEOUT "after ${limit} s (log $log)"
  elif (( rc == 0 )); then
    step_result "$name" PASSED "${line:-ok} [$((SECONDS - t)) s]"
  else
    step_result "$name" FAILED "exit $rc: ${line:-see $log} [$((SECONDS - t)) s]"
    grep -E "^(MISMATCH|FAIL|FUNCTOR|CUDA ERROR|SELFTEST FAIL)" "$log" | head -20
    tail -5 "$log"
  fi
}

run_step selftest 240 "$exe" selftest

have_gpu=0
if [[ $mode != ci ]] && "$exe" devices > "$logs/devices.log" 2>&1; then
  have_gpu=1
  note "$(head -1 "$logs/devices.log")"
fi
if (( ! have_gpu )); then
  if [[ $mode == gpu ]]; then
    step_result gpu FAILED "no usable CUDA device: $(head -1 "$logs/devices.log" 2>/dev/null)"
  else
    why="no GPU present"
    [[ $mode == ci ]] && why="--ci mode"
    note "GPU parts skipped ($why): correctness, determinism, sanitizers and benchmark need a CUDA device"
  fi
  note "total: $((SECONDS - t_start)) s; logs in $logs"
  exit $failed
fi

# Sanitizer: compute-sanitizer --tool TOOL on the small case list.
sanitizer=$(command -v compute-sanitizer || true)
for cand in "$(dirname "$nvcc")/compute-sanitizer" \
            "$(dirname "$nvcc")/../compute-sanitizer/compute-sanitizer" \
            /usr/local/cuda/bin/compute-sanitizer; do
  [[ -z "$sanitizer" && -x "$cand" ]] && sanitizer=$cand
done
run_sanitizer() {
  local tool=$1 limit=$2
  shift 2
  local log=$logs/$tool.log t=$SECONDS rc
  if [[ -z "$sanitizer" ]]; then
    step_result "$tool" SKIPPED "compute-sanitizer not found"
    return
  fi
  timeout -k 15 "$limit" "$sanitizer" --tool "$tool" --error-exitcode 86 \
    --print-limit 50 "$@" "$exe" check --small --max-print 3 > "$log" 2>&1
  rc=$?
  local summary_line refused
  summary_line=$(grep -E "ERROR SUMMARY" "$log" | tail -1 | sed 's/^=* *//')
  [[ -z "$summary_line" ]] &&
    summary_line=$(grep -E "RACECHECK SUMMARY" "$log" | tail -1 | sed 's/^=* *//')
  # The sanitizer's own complaints (its lines start with "=====").
  refused=$(grep -E '^=+' "$log" |
            grep -iE "not supported|unsupported|unable to|could not|cannot|failed to" |
            head -1 | sed 's/^=* *//')
  if (( rc == 124 || rc == 137 )); then
    step_result "$tool" TIMEOUT "after ${limit} s (log $log)"
  elif [[ -n "$refused" ]] && (( rc != 86 )); then
    step_result "$tool" SKIPPED "the sanitizer refused to run: $refused (log $log)"
  elif [[ -z "$summary_line" ]]; then
    if (( rc == 0 )); then
      step_result "$tool" SKIPPED "no sanitizer summary in $log (did it attach?)"
    else
      step_result "$tool" FAILED "exit $rc, no sanitizer summary (log $log)"
      tail -10 "$log"
    fi
  elif (( rc == 0 )); then
    step_result "$tool" PASSED "$summary_line [$((SECONDS - t)) s]"
  elif (( rc == 86 )); then
    step_result "$tool" FAILED "$summary_line (log $log)"
    grep -E '^=+ ' "$log" | grep -vE "ERROR SUMMARY|^=+ *$" | head -12
  else
    step_result "$tool" FAILED "the check failed under the sanitizer, exit $rc: $summary_line"
    grep -E "^(MISMATCH|FAIL|FUNCTOR|CUDA ERROR)" "$log" | head -10
  fi
}

steps=${CUDA_CHECK_STEPS:-check determinism memcheck racecheck bench}
for s in $steps; do
  case $s in
    check) run_step check 300 "$exe" check ;;
    determinism) run_step determinism 180 "$exe" determinism ;;
    memcheck) run_sanitizer memcheck 240 --leak-check full ;;
    racecheck) run_sanitizer racecheck 300 --racecheck-report all ;;
    initcheck) run_sanitizer initcheck 240 ;;
    synccheck) run_sanitizer synccheck 240 ;;
    bench)
      t=$SECONDS
      if timeout -k 15 240 "$exe" bench > "$logs/bench.txt" 2>&1; then
        step_result bench DONE "$logs/bench.txt [$((SECONDS - t)) s]"
        grep -E "^(shape|kernel|relu|kaf|spline)" "$logs/bench.txt" | tee -a "$summary"
      else
        step_result bench FAILED "see $logs/bench.txt"
        tail -10 "$logs/bench.txt"
      fi
      ;;
    *) step_result "$s" FAILED "unknown step (CUDA_CHECK_STEPS)" ;;
  esac
done
note "total: $((SECONDS - t_start)) s; logs in $logs"
exit $failed
