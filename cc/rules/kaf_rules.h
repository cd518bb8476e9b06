// The validation rules of Tfkaf>Kaf, Tfkaf>Kaf2d and their gradients, and the
// default Gaussian bandwidth (docs/design.md, sections 1, 2 and 4).
// TensorFlow-free: the shape functions (cc/ops/kaf_ops.cc), the OpKernels
// (cc/kernels/kaf_kernels.cc) and an XLA kernel call the same functions.

#ifndef TFKAF_CC_RULES_KAF_RULES_H_
#define TFKAF_CC_RULES_KAF_RULES_H_

#include "cc/kernels/common.h"
#include "cc/rules/verdict.h"

namespace tfkaf {

// The default of the ops' `gamma` attribute (-1e30, written in the op
// registrations): derive gamma from boundary and D (DefaultKafGamma). No
// caller means it as a bandwidth (an explicit gamma must be positive), and
// it survives TensorFlow's generated Python wrappers, which print attribute
// defaults in six digits (a negative zero would come back as 0). Graphs with
// an explicit gamma keep it.
inline constexpr float kDeriveGamma = -1e30f;
inline bool DerivesGamma(float gamma) { return gamma == kDeriveGamma; }

// The default Gaussian bandwidth for D centres on [-boundary, boundary]:
// 1 / (8 step^2) for KAF (sigma = 2 step, the kafnets rule) and 1 / (4 step^2)
// for the D x D grid of 2D-KAF, step = 2 boundary / (D - 1). Computed in
// double: float64 kernels use it as is, the others round it once to their
// float compute type.
inline double DefaultKafGamma(double boundary, int64 num_centres, bool two_d) {
  const double step = 2.0 * boundary / static_cast<double>(num_centres - 1);
  return 1.0 / ((two_d ? 4.0 : 8.0) * step * step);
}

struct KafAttrs {
  float boundary = 3.0f;
  float gamma = kDeriveGamma;
  int axis = -1;
  bool two_d = false;  // Kaf2d / Kaf2dGrad
};

// What a passing rule knows; unknown parts are -1 (kUnknownDim).
struct KafFacts {
  int channel_axis = -1;
  int64 num_centres = kUnknownDim;  // D (the grid side for 2D-KAF)
  double gamma = 0.0;  // the bandwidth the op uses; 0 while D is unknown
  Dims y;              // the forward output's shape
  ChannelLayout layout;  // x's [outer, C, inner] view, once x is fully known
};

// boundary and an explicit gamma.
Verdict CheckKafAttrs(const KafAttrs& attrs);

// Forward: x (C channels along axis; 2H for 2D-KAF) against alpha ([C, D] or
// [H, D*D]), then the derived gamma once D is known.
Verdict CheckKaf(const KafAttrs& attrs, const Dims& x, const Dims& alpha,
                 KafFacts* facts);

// Gradient: the forward rule, then dy against the forward output's shape.
Verdict CheckKafGrad(const KafAttrs& attrs, const Dims& dy, const Dims& x,
                     const Dims& alpha, KafFacts* facts);

}  // namespace tfkaf

#endif  // TFKAF_CC_RULES_KAF_RULES_H_
