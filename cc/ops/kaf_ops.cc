// Op registrations for the Kernel Activation Function (KAF) and 2D-KAF
// (docs/design.md, sections 1 and 2): Tfkaf>Kaf, Tfkaf>KafGrad, Tfkaf>Kaf2d and
// Tfkaf>Kaf2dGrad. The shape functions run the rules of cc/rules/kaf_rules.h
// on what is known at graph construction; the kernels run them again on the
// real shapes.

#include "cc/kernels/op_attrs.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/kaf_rules.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tfkaf {
namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Kaf and Kaf2d: inputs (x, alpha).
template <bool kTwoD>
absl::Status KafShape(InferenceContext* c) {
  KafAttrs attrs;
  TF_RETURN_IF_ERROR(ReadKafAttrs(c, kTwoD, &attrs));
  KafFacts facts;
  TF_RETURN_IF_ERROR(StatusOf(CheckKaf(attrs, DimsOf(c, c->input(0)),
                                       DimsOf(c, c->input(1)), &facts)));
  c->set_output(0, kTwoD ? ShapeOf(c, facts.y) : c->input(0));
  return absl::OkStatus();
}

// KafGrad and Kaf2dGrad: inputs (dy, x, alpha), outputs (dx, dalpha).
template <bool kTwoD>
absl::Status KafGradShape(InferenceContext* c) {
  KafAttrs attrs;
  TF_RETURN_IF_ERROR(ReadKafAttrs(c, kTwoD, &attrs));
  KafFacts facts;
  TF_RETURN_IF_ERROR(StatusOf(CheckKafGrad(
      attrs, DimsOf(c, c->input(0)), DimsOf(c, c->input(1)),
      DimsOf(c, c->input(2)), &facts)));
  ShapeHandle dx = c->input(1);
  // For KAF, dy has x's shape: it may know what x's shape does not.
  if (!kTwoD) TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &dx));
  ShapeHandle alpha;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &alpha));
  c->set_output(0, dx);
  c->set_output(1, alpha);
  return absl::OkStatus();
}

constexpr char kTypeAttr[] = "T: {half, bfloat16, float, double}";

}  // namespace

REGISTER_OP("Tfkaf>Kaf")
    .Input("x: T")
    .Input("alpha: T")
    .Output("y: T")
    .Attr(kTypeAttr)
    .Attr("boundary: float = 3.0")
    .Attr("gamma: float = -1e30")
    .Attr("kernel: {'gaussian', 'relu', 'softplus'} = 'gaussian'")
    .Attr("axis: int = -1")
    .SetShapeFn(KafShape<false>)
    .Doc(R"doc(
Kernel Activation Function (Scardapane et al., arXiv:1707.04035), fused.

For every element of x in channel c (channels along `axis`):
  y = sum_{i<D} alpha[c, i] * k(x, d_i),  d = linspace(-boundary, boundary, D)
with k(x, d) = exp(-gamma (x - d)^2) (gaussian), max(0, x - d) (relu) or
log(1 + exp(x - d)) (softplus). Never materialises an [..., C, D] tensor.
Half types are computed in float32.

x: input of rank >= 1 with C channels along `axis`.
alpha: [C, D] mixing coefficients, D >= 2.
y: same shape and type as x.
boundary: the dictionary spans [-boundary, boundary]; a normal float32 > 0.
gamma: Gaussian kernel bandwidth, a normal float32 > 0; unused by relu/softplus.
  The default, -1e30, derives it in the compute precision: 1 / (8 step^2),
  step = 2 boundary / (D - 1).
kernel: 'gaussian', 'relu' or 'softplus'.
axis: the channel axis; negative values count from the end.
)doc");

REGISTER_OP("Tfkaf>KafGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("alpha: T")
    .Output("dx: T")
    .Output("dalpha: T")
    .Attr(kTypeAttr)
    .Attr("boundary: float = 3.0")
    .Attr("gamma: float = -1e30")
    .Attr("kernel: {'gaussian', 'relu', 'softplus'} = 'gaussian'")
    .Attr("axis: int = -1")
    .SetShapeFn(KafGradShape<false>)
    .Doc(R"doc(
Gradient of Tfkaf>Kaf in one fused pass.

dx = dy * sum_i alpha[c, i] * dk/dx(x, d_i); dalpha[c, i] = sum over every
position of channel c of dy * k(x, d_i) (a deterministic reduction on CPU).

dy: upstream gradient, shape of x.
dx: gradient with respect to x.
dalpha: gradient with respect to alpha, [C, D].
)doc");

REGISTER_OP("Tfkaf>Kaf2d")
    .Input("x: T")
    .Input("alpha: T")
    .Output("y: T")
    .Attr(kTypeAttr)
    .Attr("boundary: float = 3.0")
    .Attr("gamma: float = -1e30")
    .Attr("axis: int = -1")
    .SetShapeFn(KafShape<true>)
    .Doc(R"doc(
2D Kernel Activation Function, fused.

x has 2H channels along `axis`; channel j (x1) is paired with channel j+H
(x2) and the output has H channels:
  y = sum_k alpha[h, k] exp(-gamma ((x1 - d[k % D])^2 + (x2 - d[k // D])^2))
with d = linspace(-boundary, boundary, D) and D*D centres.

x: input of rank >= 1 with an even channel count 2H along `axis`.
alpha: [H, D*D] mixing coefficients, D >= 2.
y: x's shape with H channels along `axis`.
boundary: the grid spans [-boundary, boundary]^2; a normal float32 > 0.
gamma: Gaussian bandwidth, a normal float32 > 0. The default, -1e30, derives
  it in the compute precision: 1 / (4 step^2), step = 2 boundary / (D - 1).
axis: the channel axis; negative values count from the end.
)doc");

REGISTER_OP("Tfkaf>Kaf2dGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("alpha: T")
    .Output("dx: T")
    .Output("dalpha: T")
    .Attr(kTypeAttr)
    .Attr("boundary: float = 3.0")
    .Attr("gamma: float = -1e30")
    .Attr("axis: int = -1")
    .SetShapeFn(KafGradShape<true>)
    .Doc(R"doc(
Gradient of Tfkaf>Kaf2d in one fused pass.

dy: upstream gradient, the shape of the 2D-KAF output.
dx: gradient with respect to x (both halves of the channels).
dalpha: gradient with respect to alpha, [H, D*D].
)doc");

}  // namespace tfkaf
