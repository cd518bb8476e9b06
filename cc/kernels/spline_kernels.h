// Learnable linear spline (DeepSplines; Bohra et al. 2020, Aziznejad et al.
// 2020): device-generic functor declarations shared by the CPU (.cc) and CUDA
// (.cu.cc) sides. Includes no TensorFlow header (nvcc compiles it too).
//
// Per channel c, K coefficients on a uniform grid over [x_min, x_max]:
//   scale = (K - 1) / (x_max - x_min)        (= 1 / T)
//   t     = (x - x_min) * scale
//   i     = clamp(floor(t), 0, K - 2)        clamped in floating point, with
//                                            comparisons NaN fails (NaN -> 0)
//   u     = t - i                            (unclamped: linear extrapolation)
//   f(x)  = c[i] + u * (c[i+1] - c[i])
//   df/dx = (c[i+1] - c[i]) * scale
//   dL/dc[i] += (1 - u) * g,   dL/dc[i+1] += u * g
//
// The index is clamped before any conversion to an integer, and clamped again
// as an integer, so no input value (NaN, +-Inf, 1e30, subnormals) can address
// anything outside its own channel's K coefficients.

#ifndef TFKAF_CC_KERNELS_SPLINE_KERNELS_H_
#define TFKAF_CC_KERNELS_SPLINE_KERNELS_H_

#include <functional>

#include "cc/kernels/common.h"

namespace tfkaf {

// CPU device tag: a TF-free handle on the op's intra-op thread pool.
// parallel_for(units, cost_per_unit, fn) runs fn(begin, end) over [0, units).
struct SplineCpuDevice {
  std::function<void(int64, int64, const std::function<void(int64, int64)>&)>
      parallel_for;
};

// Everything the kernels need besides the tensors.
struct SplineParams {
  ChannelLayout layout;  // x seen as [outer, channels, inner]
  int64 knots = 2;       // K (coefficients are [channels, K], row-major)
  double x_min = 0.0;
  double scale = 1.0;    // (K - 1) / (x_max - x_min)
  // GPU only: use the deterministic (slower) coefficient-gradient kernel
  // instead of atomics (set when TensorFlow's op determinism is enabled).
  bool deterministic = false;
};

#if defined(__CUDACC__)
#define TFKAF_SPLINE_INLINE __host__ __device__ __forceinline__
#else
#define TFKAF_SPLINE_INLINE inline
#endif

// The segment index i of t = (x - x_min) * scale, clamped to [0, last] with
// last = K - 2, and the local coordinate u = t - i (from the unclamped t).
// t is clamped in floating point first, with comparisons that NaN fails
// (NaN -> 0, -Inf and negatives -> 0, +Inf and huge values -> K - 2), so the
// conversion to an integer is always defined; truncation equals floor on the
// clamped, non-negative value. The integer clamp covers K - 2 rounding up in
// Acc (K > 2^24 in float). A NaN t gives i = 0 and u = NaN.
template <typename Acc>
TFKAF_SPLINE_INLINE int64 SplineSegment(Acc t, Acc last_f, int64 last,
                                        Acc* u) {
  Acc clamped = t >= Acc(0) ? t : Acc(0);
  clamped = clamped <= last_f ? clamped : last_f;
  int64 i = static_cast<int64>(clamped);
  i = i < last ? i : last;
  *u = t - static_cast<Acc>(i);
  return i;
}

// y = f(x). Specialised for SplineCpuDevice (spline_cpu.cc) and for
// GpuDevice (spline_kernels.cu.cc, T one of float, double, HalfBits,
// BFloat16Bits). operator() returns nullptr on success, else a static error
// message (a CUDA error string on the GPU side).
//
//   const char* operator()(const Device& device, const SplineParams& params,
//                          const T* x, const T* coefficients, T* y) const;
template <typename Device, typename T>
struct LinearSplineForward;

// dx = dy * f'(x); dcoefficients[c, k] = sum over the positions of channel c
// of the basis weight of knot k times dy, in one pass that recomputes i and u.
// `accumulator` is scratch of Acc (float, or double for double): on the GPU
// channels * K entries that it accumulates into atomically and converts to T
// (for float and double it may alias dcoefficients); on the CPU
// LinearSplineCpuScratchSize(params) entries (slope table and per-chunk
// partial sums), or nullptr when that is 0.
//
//   const char* operator()(const Device& device, const SplineParams& params,
//                          const T* dy, const T* x, const T* coefficients,
//                          T* dx, T* dcoefficients, Acc* accumulator) const;
template <typename Device, typename T, typename Acc>
struct LinearSplineBackward;

// Entries of scratch the CPU backward needs (defined in spline_cpu.cc).
int64 LinearSplineCpuScratchSize(const SplineParams& params);

// CPU functors (spline_cpu.cc; T one of float, double, Eigen::half,
// Eigen::bfloat16, Acc its AccumulatorOf).
template <typename T>
struct LinearSplineForward<SplineCpuDevice, T> {
  const char* operator()(const SplineCpuDevice& device,
                         const SplineParams& params, const T* x,
                         const T* coefficients, T* y) const;
};

template <typename T, typename Acc>
struct LinearSplineBackward<SplineCpuDevice, T, Acc> {
  const char* operator()(const SplineCpuDevice& device,
                         const SplineParams& params, const T* dy, const T* x,
                         const T* coefficients, T* dx, T* dcoefficients,
                         Acc* scratch) const;
};

template <typename T>
struct LinearSplineForward<GpuDevice, T> {
  const char* operator()(const GpuDevice& device, const SplineParams& params,
                         const T* x, const T* coefficients, T* y) const;
};

template <typename T, typename Acc>
struct LinearSplineBackward<GpuDevice, T, Acc> {
  const char* operator()(const GpuDevice& device, const SplineParams& params,
                         const T* dy, const T* x, const T* coefficients,
                         T* dx, T* dcoefficients, Acc* accumulator) const;
};

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_SPLINE_KERNELS_H_
