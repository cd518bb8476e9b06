#!/usr/bin/env bash
# Writes .bazelrc for building the tfkaf plugin against the TensorFlow of the
# Python this script runs with. Non-interactive.
#
#   ./configure.sh                 CPU kernels only (no CUDA needed)
#   ./configure.sh --cuda          also compile the CUDA kernels with nvcc
#   TFKAF_CUDA=1 ./configure.sh    same as --cuda
#   ./configure.sh --sanitize      AddressSanitizer + UBSan build (tests only)
#
# Environment: PYTHON (default: python3), CUDA_HOME or NVCC (default: nvcc on
# PATH, else /usr/local/cuda/bin/nvcc), TFKAF_CUDA_ARCHS (default "80 90").
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
cuda=${TFKAF_CUDA:-0}
sanitize=0
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --no-cuda) cuda=0 ;;
    --sanitize) sanitize=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "configure.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# One TensorFlow import (a few seconds) gives every fact we need.
sysconfig=$("$python" - 2>/dev/null <<'PY'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
print("include", tf.sysconfig.get_include())
print("lib", tf.sysconfig.get_lib())
print("version", tf.__version__)
for flag in tf.sysconfig.get_compile_flags():
    if not flag.startswith("-I"):
        print("cflag", flag)
for flag in tf.sysconfig.get_link_flags():
    if flag.startswith("-l:"):
        print("libname", flag[3:])
PY
) || { echo "configure.sh: cannot import tensorflow with $python" >&2; exit 1; }
field() { printf '%s\n' "$sysconfig" | awk -v k="$1" '$1 == k {print $2}'; }
tf_include=$(field include)
tf_lib=$(field lib)
tf_version=$(field version)
tf_libname=$(field libname)
mapfile -t tf_cflags < <(field cflag)

{
  echo "# Written by configure.sh for TensorFlow $tf_version ($python); do not edit."
  echo "build --repo_env=TF_HEADER_DIR=$tf_include"
  echo "build --repo_env=TF_SHARED_LIBRARY_DIR=$tf_lib"
  echo "build --repo_env=TF_SHARED_LIBRARY_NAME=$tf_libname"
  echo "build --define=TFKAF_TF_VERSION=$tf_version"
  for flag in "${tf_cflags[@]}"; do
    case "$flag" in
      --std=*|-std=*) echo "build --cxxopt=$flag" ;;
      *) echo "build --copt=$flag" ;;
    esac
  done
  echo "build --copt=-DEIGEN_USE_THREADS"
  echo "build --copt=-DTFKAF_TF_VERSION=\\\"$tf_version\\\""
  # TensorFlow's header tree is large; sandboxing it per action is slow.
  echo "build --spawn_strategy=local"
  echo "build --compilation_mode=opt"
  if [ "$cuda" = 1 ]; then
    nvcc=${NVCC:-}
    if [ -z "$nvcc" ] && [ -n "${CUDA_HOME:-}" ]; then nvcc=$CUDA_HOME/bin/nvcc; fi
    if [ -z "$nvcc" ]; then nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc); fi
    [ -x "$nvcc" ] || { echo "configure.sh: --cuda given but nvcc not found ($nvcc)" >&2; exit 1; }
    gencode=""
    for arch in ${TFKAF_CUDA_ARCHS:-80 90}; do
      gencode="$gencode -gencode=arch=compute_${arch},code=sm_${arch}"
    done
    last_arch=$(echo ${TFKAF_CUDA_ARCHS:-80 90} | awk '{print $NF}')
    gencode="$gencode -gencode=arch=compute_${last_arch},code=compute_${last_arch}"
    echo "build --define=tfkaf_cuda=1"
    echo "build --define=TFKAF_NVCC=$nvcc"
    echo "build \"--define=TFKAF_CUDA_GENCODE=${gencode# }\""
    archs=$(for arch in ${TFKAF_CUDA_ARCHS:-80 90}; do printf 'sm_%s,' "$arch"; done)
    echo "build --copt=-DTFKAF_CUDA_ARCHS=\\\"${archs%,}\\\""
  fi
  if [ "$sanitize" = 1 ]; then
    echo "build --define=tfkaf_sanitize=1"
    echo "build --copt=-fsanitize=address,undefined --copt=-fno-omit-frame-pointer --copt=-fno-sanitize-recover=undefined"
    echo "build --linkopt=-fsanitize=address,undefined"
    echo "build --compilation_mode=dbg --copt=-O1"
  fi
} > .bazelrc

echo "configure.sh: TensorFlow $tf_version at $tf_lib; CUDA kernels: $([ "$cuda" = 1 ] && echo on || echo off); wrote .bazelrc"
