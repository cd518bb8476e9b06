// Device-generic functors of the KAF and 2D-KAF ops (docs/design.md, sections 1, 2).
// TensorFlow-free: included by the CPU kernels (kaf_cpu.cc), the OpKernels
// (kaf_kernels.cc) and the CUDA kernels (kaf_kernels.cu.cc, nvcc).
//
// Element types: the CPU functors are instantiated for float, double,
// Eigen::half and Eigen::bfloat16; the GPU functors for float, double,
// HalfBits and BFloat16Bits (same bits as the Eigen types, see common.h).
// 16-bit types are computed and accumulated in float, double in double.

#ifndef TFKAF_CC_KERNELS_KAF_KERNELS_H_
#define TFKAF_CC_KERNELS_KAF_KERNELS_H_

#include <functional>

#include "cc/kernels/common.h"

namespace tfkaf {

enum class KafKernel : int { kGaussian = 0, kRelu = 1, kSoftplus = 2 };

// One KAF call. For Kaf, `layout` is x's [outer, C, inner] view and alpha is
// [C, D]. For Kaf2d, `layout` is x's view with channels == 2H, the output has
// H channels, and alpha is [H, D*D] (`num_centres` is then D, the grid side).
struct KafConfig {
  ChannelLayout layout;
  int64 num_centres = 0;  // D
  double boundary = 3.0;
  double gamma = 1.0;
  KafKernel kernel = KafKernel::kGaussian;
};

// CPU thread pool: runs fn(begin, end) over [0, units), cost in ~cycles/unit.
using KafParallelFor = std::function<void(
    int64 units, int64 cost_per_unit, const std::function<void(int64, int64)>&)>;

template <typename T>
struct KafForwardCpu {
  void operator()(const KafParallelFor& parallel_for, const KafConfig& config,
                  const T* x, const T* alpha, T* y) const;
};

// dalpha is written in full (zeros for empty x), deterministically.
template <typename T>
struct KafBackwardCpu {
  void operator()(const KafParallelFor& parallel_for, const KafConfig& config,
                  const T* dy, const T* x, const T* alpha, T* dx,
                  T* dalpha) const;
};

template <typename T>
struct Kaf2dForwardCpu {
  void operator()(const KafParallelFor& parallel_for, const KafConfig& config,
                  const T* x, const T* alpha, T* y) const;
};

template <typename T>
struct Kaf2dBackwardCpu {
  void operator()(const KafParallelFor& parallel_for, const KafConfig& config,
                  const T* dy, const T* x, const T* alpha, T* dx,
                  T* dalpha) const;
};

// GPU functors return nullptr on success, else a static error string (from
// cudaGetErrorString). `scratch` is device memory for num_rows * (D or D*D)
// accumulators of type Acc (float, or double for double) for dalpha.
template <typename T>
struct KafForwardGpu {
  const char* operator()(const GpuDevice& device, const KafConfig& config,
                         const T* x, const T* alpha, T* y) const;
};

template <typename T, typename Acc>
struct KafBackwardGpu {
  const char* operator()(const GpuDevice& device, const KafConfig& config,
                         const T* dy, const T* x, const T* alpha, T* dx,
                         T* dalpha, Acc* scratch) const;
};

template <typename T>
struct Kaf2dForwardGpu {
  const char* operator()(const GpuDevice& device, const KafConfig& config,
                         const T* x, const T* alpha, T* y) const;
};

template <typename T, typename Acc>
struct Kaf2dBackwardGpu {
  const char* operator()(const GpuDevice& device, const KafConfig& config,
                         const T* dy, const T* x, const T* alpha, T* dx,
                         T* dalpha, Acc* scratch) const;
};

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_KAF_KERNELS_H_
