// Facts about this build, read by tfkaf.build_info() through ctypes.

#include "cc/kernels/cpu_features.h"

#ifndef TFKAF_TF_VERSION
#define TFKAF_TF_VERSION "unknown"
#endif

#define TFKAF_EXPORT extern "C" __attribute__((visibility("default")))

#ifdef TFKAF_WITH_CUDA
// Defined in cuda_info.cu.cc (compiled by nvcc).
extern "C" int TfkafCudaToolkitVersion();
#endif

TFKAF_EXPORT const char* tfkaf_tf_version() { return TFKAF_TF_VERSION; }

TFKAF_EXPORT int tfkaf_cuda_compiled() {
#ifdef TFKAF_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

TFKAF_EXPORT int tfkaf_cuda_toolkit_version() {
#ifdef TFKAF_WITH_CUDA
  return TfkafCudaToolkitVersion();
#else
  return 0;
#endif
}

TFKAF_EXPORT const char* tfkaf_cuda_archs() {
#ifdef TFKAF_CUDA_ARCHS
  return TFKAF_CUDA_ARCHS;
#else
  return "";
#endif
}

// The CPU kernel path this process runs (baseline, avx2, avx512;
// TFKAF_CPU_PATH forces one), so benchmark records name it.
TFKAF_EXPORT const char* tfkaf_cpu_path() {
  return tfkaf::CpuPathName(tfkaf::SelectedCpuPath());
}
