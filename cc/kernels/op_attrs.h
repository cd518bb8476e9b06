// The attributes of the tfkaf ops, read one way by the shape functions
// (InferenceContext), the OpKernels and the XLA kernels
// (OpKernelConstruction), and the functor configurations built from a passing
// rule's facts (cc/rules).

#ifndef TFKAF_CC_KERNELS_OP_ATTRS_H_
#define TFKAF_CC_KERNELS_OP_ATTRS_H_

#include "absl/status/status.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"
#include "cc/rules/kaf_rules.h"
#include "cc/rules/spline_rules.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/errors.h"

namespace tfkaf {

// boundary, gamma and axis of Kaf, KafGrad, Kaf2d and Kaf2dGrad.
template <typename Context>
absl::Status ReadKafAttrs(Context* context, bool two_d, KafAttrs* attrs) {
  TF_RETURN_IF_ERROR(context->GetAttr("boundary", &attrs->boundary));
  TF_RETURN_IF_ERROR(context->GetAttr("gamma", &attrs->gamma));
  TF_RETURN_IF_ERROR(context->GetAttr("axis", &attrs->axis));
  attrs->two_d = two_d;
  return absl::OkStatus();
}

// x_min, x_max and axis of LinearSpline and LinearSplineGrad.
template <typename Context>
absl::Status ReadSplineAttrs(Context* context, SplineAttrs* attrs) {
  TF_RETURN_IF_ERROR(context->GetAttr("x_min", &attrs->x_min));
  TF_RETURN_IF_ERROR(context->GetAttr("x_max", &attrs->x_max));
  return context->GetAttr("axis", &attrs->axis);
}

// A kernel's KAF attributes, checked at once (CheckKafAttrs), and its basis
// kernel: the `kernel` attribute of Kaf / KafGrad, gaussian for 2D-KAF.
absl::Status ReadKafKernelAttrs(tensorflow::OpKernelConstruction* context,
                                bool two_d, KafAttrs* attrs,
                                KafKernel* kernel);

// The functors' configuration from the rule's facts (the real shapes).
KafConfig KafConfigOf(const KafAttrs& attrs, KafKernel kernel,
                      const KafFacts& facts);
SplineParams SplineParamsOf(const SplineAttrs& attrs,
                            const SplineFacts& facts);

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_OP_ATTRS_H_
