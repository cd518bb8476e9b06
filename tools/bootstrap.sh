#!/usr/bin/env bash
# Sets tfkaf up on a fresh Debian machine, then runs one job.
#
#   bash tools/bootstrap.sh demo [demo flags]   set up, then `tfkaf demo`
#   bash tools/bootstrap.sh test [pytest args]  set up, then the test suite
#   bash tools/bootstrap.sh setup               set up only
#
# Set-up: Debian's offline Bazel (bazel-bootstrap), a virtualenv in .venv with
# the build requirements of pyproject.toml (TensorFlow 2.21), and
# `pip install --no-build-isolation ".[test]"` of tfkaf, which builds the op
# plugin with Bazel (CUDA kernels too when nvcc is found; TFKAF_CUDA=0 turns
# that off) and installs every optional package the demo and the tests use.
# Re-running reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
job=${1:-setup}
[ $# -gt 0 ] && shift

log() { printf '\n== %s\n' "$*"; }

if ! command -v bazel >/dev/null 2>&1; then
  log "installing Bazel (Debian bazel-bootstrap)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bazel-bootstrap >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
venv=${TFKAF_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

log "installing the build requirements (pyproject.toml)"
mapfile -t build_requires < <("$venv/bin/python" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))')
"${pip[@]}" install "${build_requires[@]}"

if [ -z "${TFKAF_CUDA:-}" ]; then
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    export TFKAF_CUDA=1
  else
    export TFKAF_CUDA=0
  fi
fi
log "building and installing tfkaf[test] (CUDA kernels: $TFKAF_CUDA)"
# The fast path: build against the TensorFlow installed above. The test
# extra holds every optional package (demo, plots, export, tests).
"${pip[@]}" install --no-build-isolation ".[test]"

export PATH="$venv/bin:$PATH"
case "$job" in
  setup) ;;
  demo)
    log "tfkaf demo $*"
    tfkaf demo "$@" ;;
  test)
    log "tests"
    # Run from tests/ so that `import tfkaf` finds the installed package,
    # not the source tree.
    cd "$root/tests"
    pytest -p no:cacheprovider "$@" ;;
  *) echo "bootstrap.sh: unknown job '$job' (demo, test or setup)" >&2; exit 2 ;;
esac
