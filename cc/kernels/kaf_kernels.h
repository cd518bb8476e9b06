// Device-generic functors of the KAF and 2D-KAF ops (docs/design.md,
// sections 1, 2).
// TensorFlow-free: included by the CPU kernels (kaf_cpu.cc), the OpKernels
// (kaf_kernels.cc) and the CUDA kernels (kaf_kernels.cu.cc, nvcc).
//
// Element types: the CPU functors are instantiated for float, double,
// Eigen::half and Eigen::bfloat16; the GPU functors for float, double,
// HalfBits and BFloat16Bits (same bits as the Eigen types, see common.h).
// 16-bit types are computed and accumulated in float, double in double.

#ifndef TFKAF_CC_KERNELS_KAF_KERNELS_H_
#define TFKAF_CC_KERNELS_KAF_KERNELS_H_

#include <cmath>
#include <limits>

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

// Where x is clamped to [-limit, limit] before the Gaussian basis is
// evaluated: boundary + margin with gamma margin^2 = 800 (every basis value
// is exactly 0 beyond it), rounded up in A so that the clamped x keeps at
// least `margin` from every centre even where margin is below A's resolution
// at boundary (huge gamma); A's largest finite value if that overflows.
// Host-side; shared by the CPU (kaf_cpu.cc) and CUDA (kaf_kernels.cu.cc)
// setups.
template <typename A>
A KafClampLimit(const KafConfig& config) {
  const double margin = std::sqrt(800.0 / config.gamma);
  A limit = static_cast<A>(config.boundary + margin);
  while (std::isfinite(limit) &&
         double(limit) - double(static_cast<A>(config.boundary)) < margin) {
    limit = std::nextafter(limit, std::numeric_limits<A>::infinity());
  }
  return std::isfinite(limit) ? limit : std::numeric_limits<A>::max();
}

// The functors (TFKAF_DECLARE_OP_FUNCTORS, common.h): param is alpha ([C, D],
// or [H, D*D] for Kaf2d). Backward writes dalpha in full (zeros for empty
// x); on the CPU deterministically, on the GPU through float atomics in
// `scratch` (H or C rows of D or D*D accumulators).
namespace functor {
TFKAF_DECLARE_OP_FUNCTORS(KafForward, KafBackward, KafConfig)
TFKAF_DECLARE_OP_FUNCTORS(Kaf2dForward, Kaf2dBackward, KafConfig)

// The functors of Kaf (kTwoD false) or Kaf2d (kTwoD true).
template <bool kTwoD>
struct KafFunctors {
  template <typename Device, typename T>
  using Forward = KafForward<Device, T>;
  template <typename Device, typename T>
  using Backward = KafBackward<Device, T>;
};
template <>
struct KafFunctors<true> {
  template <typename Device, typename T>
  using Forward = Kaf2dForward<Device, T>;
  template <typename Device, typename T>
  using Backward = Kaf2dBackward<Device, T>;
};
}  // namespace functor

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_KAF_KERNELS_H_
