#!/usr/bin/env bash
# On-demand check that plain `pip install .` works: a fresh virtualenv that
# holds nothing but pip, an isolated build (pyproject.toml installs a
# TensorFlow of the package's release series into the build environment and
# the plugin is compiled against it), then `import tfkaf` and one fused op
# from a neutral folder. Needs Bazel (apt-get install bazel-bootstrap).
# Builds from a clean copy of the committed tree, so the checkout's own
# .bazelrc and bazel-* links are left alone. About 7 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git clone -q . "$scratch/src"
"$python" -m venv "$scratch/venv"
echo "== pip install . (isolated build) in a bare virtualenv"
TFKAF_CUDA=${TFKAF_CUDA:-0} "$scratch/venv/bin/pip" install -q \
  --disable-pip-version-check "$scratch/src"
echo "== import tfkaf and run an op"
cd "$scratch"
TF_CPP_MIN_LOG_LEVEL=2 "$scratch/venv/bin/python" -P - <<'PY'
import tensorflow as tf
import tfkaf
info = tfkaf.build_info()
y = tfkaf.ops.kaf(tf.ones([2, 3]), tf.ones([3, 20]))
print(f"tfkaf {info['version']} built against TensorFlow "
      f"{info['tensorflow_built_against']}, running on "
      f"{info['tensorflow_runtime']}: kaf -> {y.shape}")
PY
echo "pip install . in a bare virtualenv: OK"
