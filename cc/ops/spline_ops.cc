// Op registrations for the learnable linear spline (DeepSplines; Bohra et
// al. 2020, "Learning activation functions in deep (spline) neural
// networks"; Aziznejad et al. 2020, "Deep neural networks with trainable
// activations and controlled Lipschitz constant"). docs/design.md, section 3.
// The shape functions run the rules of cc/rules/spline_rules.h on what is
// known at graph construction; the kernels run them again on the real shapes.

#include "cc/kernels/op_attrs.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/spline_rules.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tfkaf {
namespace {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

absl::Status LinearSplineShape(InferenceContext* c) {
  SplineAttrs attrs;
  TF_RETURN_IF_ERROR(ReadSplineAttrs(c, &attrs));
  SplineFacts facts;
  TF_RETURN_IF_ERROR(StatusOf(CheckSpline(attrs, DimsOf(c, c->input(0)),
                                          DimsOf(c, c->input(1)), &facts)));
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

absl::Status LinearSplineGradShape(InferenceContext* c) {
  SplineAttrs attrs;
  TF_RETURN_IF_ERROR(ReadSplineAttrs(c, &attrs));
  SplineFacts facts;
  TF_RETURN_IF_ERROR(StatusOf(CheckSplineGrad(
      attrs, DimsOf(c, c->input(0)), DimsOf(c, c->input(1)),
      DimsOf(c, c->input(2)), &facts)));
  ShapeHandle x_shape;
  TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &x_shape));
  c->set_output(0, x_shape);
  c->set_output(1, c->input(2));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Tfkaf>LinearSpline")
    .Input("x: T")
    .Input("coefficients: T")
    .Output("y: T")
    .Attr("x_min: float")
    .Attr("x_max: float")
    .Attr("axis: int = -1")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn(LinearSplineShape)
    .Doc(R"doc(
Learnable linear spline activation (DeepSplines), one spline per channel.

Per channel c (the index along `axis`), K = coefficients.shape[1] values on a
uniform grid over [x_min, x_max]:
  T = (x_max - x_min) / (K - 1);  t = (x - x_min) / T
  i = clamp(floor(t), 0, K - 2);  u = t - i   (u from the unclamped x)
  y = c[i] + u * (c[i+1] - c[i])
Outside [x_min, x_max] this extrapolates linearly with the end slopes. The
index is clamped in floating point before any integer conversion: NaN gives
NaN, +-Inf gives +-Inf (or NaN where the end slope is zero), and no input
reads another channel's coefficients. Half types compute in float32.

x: input, any rank >= 1.
coefficients: [C, K], C = x.shape[axis], K >= 2; c[c, k] = f(x_min + k*T).
y: same shape and type as x.
x_min: left end of the grid (finite, < x_max).
x_max: right end of the grid (finite).
axis: the channel axis of x (negative counts from the end).
)doc");

REGISTER_OP("Tfkaf>LinearSplineGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("coefficients: T")
    .Output("dx: T")
    .Output("dcoefficients: T")
    .Attr("x_min: float")
    .Attr("x_max: float")
    .Attr("axis: int = -1")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn(LinearSplineGradShape)
    .Doc(R"doc(
Gradient of Tfkaf>LinearSpline in one fused pass (i and u are recomputed
from x; nothing per element is stored by the forward):
  dx = dy * (c[i+1] - c[i]) / T
  dcoefficients[c, i]   += (1 - u) * dy
  dcoefficients[c, i+1] += u * dy     summed over every position of channel c
A NaN x gets a NaN dx and adds NaN to dcoefficients[c, 0] and [c, 1] of its
own channel only (its clamped index is 0); an infinite x gets dy times the
end slope as dx and
adds +-Inf (NaN where dy is 0) to the two coefficients of the end segment
on its side, in its own channel. The CPU reduction is bitwise
deterministic; the GPU one uses atomics unless op determinism is enabled.

dy: upstream gradient, the shape of x.
x: the forward input.
coefficients: [C, K], as in the forward.
dx: gradient with respect to x.
dcoefficients: gradient with respect to coefficients, [C, K].
)doc");

}  // namespace tfkaf
