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

#include "cc/kernels/common.h"

namespace tfkaf {

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

// The functors (TFKAF_DECLARE_OP_FUNCTORS, common.h): param is the
// coefficients [C, K]. Forward: y = f(x). Backward: dx = dy * f'(x) and
// dcoefficients[c, k] = sum over the positions of channel c of the basis
// weight of knot k times dy, in one pass that recomputes i and u. On the CPU
// `scratch` holds the slope table and per-chunk partial sums
// (deterministic); on the GPU the C * K accumulators it adds into
// atomically and converts to T. For float and double the GPU needs no
// scratch (ScratchSize 0): with scratch == nullptr it accumulates in
// dcoefficients itself.
namespace functor {
TFKAF_DECLARE_OP_FUNCTORS(SplineForward, SplineBackward, SplineParams)
}  // namespace functor

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_SPLINE_KERNELS_H_
