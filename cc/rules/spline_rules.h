// The validation rules of Tfkaf>LinearSpline and Tfkaf>LinearSplineGrad
// (docs/design.md, sections 3 and 4). TensorFlow-free: the shape functions
// (cc/ops/spline_ops.cc), the OpKernels (cc/kernels/spline_kernels.cc) and an
// XLA kernel call the same functions.

#ifndef TFKAF_CC_RULES_SPLINE_RULES_H_
#define TFKAF_CC_RULES_SPLINE_RULES_H_

#include "cc/kernels/common.h"
#include "cc/rules/verdict.h"

namespace tfkaf {

struct SplineAttrs {
  float x_min = 0.0f;
  float x_max = 1.0f;
  int axis = -1;
};

// What a passing rule knows; unknown parts are -1 (kUnknownDim).
struct SplineFacts {
  int channel_axis = -1;
  int64 knots = kUnknownDim;  // K
  ChannelLayout layout;       // x's [outer, C, inner] view, once x is known
};

// Forward: the grid, then x (C channels along axis) against coefficients
// [C, K], K >= 2. `tensor` names x (or a tensor that must have x's shape).
Verdict CheckSpline(const SplineAttrs& attrs, const Dims& x,
                    const Dims& coefficients, SplineFacts* facts,
                    const char* tensor = "x");

// Gradient: the forward rule on x, dy against x, then the forward rule on dy
// (which answers for x where x's shape is unknown).
Verdict CheckSplineGrad(const SplineAttrs& attrs, const Dims& dy,
                        const Dims& x, const Dims& coefficients,
                        SplineFacts* facts);

}  // namespace tfkaf

#endif  // TFKAF_CC_RULES_SPLINE_RULES_H_
