// Op registrations for the Kernel Activation Function (KAF) and 2D-KAF
// (docs/design.md, sections 1 and 2): Tfkaf>Kaf, Tfkaf>KafGrad, Tfkaf>Kaf2d and
// Tfkaf>Kaf2dGrad, with shape functions that reject what is already known to
// be wrong at graph construction (the kernels validate everything again).

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "cc/kernels/op_util.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tfkaf {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status CheckScalarAttrs(InferenceContext* c) {
  float boundary = 0.f;
  float gamma = 0.f;
  TF_RETURN_IF_ERROR(c->GetAttr("boundary", &boundary));
  TF_RETURN_IF_ERROR(c->GetAttr("gamma", &gamma));
  TF_RETURN_IF_ERROR(CheckKafScale("boundary", boundary));
  return CheckKafScale("gamma", gamma);
}

// Validates x against alpha where the shapes are known; sets *channel_axis to
// the normalised axis (or -1 if x's rank is unknown).
absl::Status CheckKafShapes(InferenceContext* c, int x_index,
                            ShapeHandle* alpha, bool two_d,
                            int* channel_axis) {
  const ShapeHandle x = c->input(x_index);
  const ShapeHandle alpha_in = c->input(x_index + 1);
  TF_RETURN_IF_ERROR(CheckScalarAttrs(c));
  int axis = -1;
  TF_RETURN_IF_ERROR(c->GetAttr("axis", &axis));
  absl::Status rank_status = c->WithRank(alpha_in, 2, alpha);
  if (!rank_status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("alpha must be a 2-D tensor ",
                     two_d ? "[H, D*D]" : "[channels, D]", ", got shape ",
                     c->DebugString(alpha_in)));
  }
  *channel_axis = -1;
  if (c->RankKnown(x)) {
    const int rank = c->Rank(x);
    TF_RETURN_IF_ERROR(NormalizeAxis(axis, rank, channel_axis));
    DimensionHandle channels = c->Dim(x, *channel_axis);
    DimensionHandle rows = c->Dim(*alpha, 0);
    if (c->ValueKnown(channels)) {
      int64 expected_rows = c->Value(channels);
      if (two_d) {
        if (expected_rows % 2 != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "2D-KAF needs an even number of channels (2H, channel j paired "
              "with channel j+H) along axis ",
              axis, ", got ", expected_rows, " (x shape ", c->DebugString(x),
              ")"));
        }
        expected_rows /= 2;
      }
      if (c->ValueKnown(rows) && c->Value(rows) != expected_rows) {
        return absl::InvalidArgumentError(absl::StrCat(
            "channel count mismatch: alpha has ", c->Value(rows),
            " rows but x has ", c->Value(channels), " channels along axis ",
            axis, two_d ? " (alpha needs one row per channel pair, H = " : "",
            two_d ? absl::StrCat(expected_rows, ")") : std::string(),
            " (x shape ", c->DebugString(x), ", alpha shape ",
            c->DebugString(*alpha), ")"));
      }
    }
  }
  DimensionHandle centres = c->Dim(*alpha, 1);
  if (c->ValueKnown(centres)) {
    const int64 n = c->Value(centres);
    if (two_d) {
      int64 d = static_cast<int64>(std::llround(std::sqrt(double(n))));
      if (d * d != n || d < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "alpha's second dimension must be a perfect square D*D with D >= "
            "2 (a D x D grid of centres), got ",
            n));
      }
    } else if (n < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "alpha must have D >= 2 columns (dictionary centres), got D = ", n));
    }
  }
  return absl::OkStatus();
}

absl::Status KafShape(InferenceContext* c) {
  ShapeHandle alpha;
  int channel_axis;
  TF_RETURN_IF_ERROR(CheckKafShapes(c, 0, &alpha, false,
                                    &channel_axis));
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

absl::Status KafGradShape(InferenceContext* c) {
  ShapeHandle alpha;
  int channel_axis;
  TF_RETURN_IF_ERROR(CheckKafShapes(c, 1, &alpha, false,
                                    &channel_axis));
  ShapeHandle dx;
  absl::Status merged = c->Merge(c->input(0), c->input(1), &dx);
  if (!merged.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dy must have the shape of the KAF output (= x's shape ",
        c->DebugString(c->input(1)), "), got ", c->DebugString(c->input(0))));
  }
  c->set_output(0, dx);
  c->set_output(1, alpha);
  return absl::OkStatus();
}

// The 2D-KAF output: x with the channel dimension halved.
absl::Status Kaf2dOutputShape(InferenceContext* c, ShapeHandle x,
                              int channel_axis, ShapeHandle* out) {
  if (channel_axis < 0) {
    *out = c->UnknownShape();
    return absl::OkStatus();
  }
  DimensionHandle channels = c->Dim(x, channel_axis);
  DimensionHandle half = c->UnknownDim();
  if (c->ValueKnown(channels)) half = c->MakeDim(c->Value(channels) / 2);
  return c->ReplaceDim(x, channel_axis, half, out);
}

absl::Status Kaf2dShape(InferenceContext* c) {
  ShapeHandle alpha;
  int channel_axis;
  TF_RETURN_IF_ERROR(CheckKafShapes(c, 0, &alpha, true,
                                    &channel_axis));
  ShapeHandle out;
  TF_RETURN_IF_ERROR(Kaf2dOutputShape(c, c->input(0), channel_axis, &out));
  c->set_output(0, out);
  return absl::OkStatus();
}

absl::Status Kaf2dGradShape(InferenceContext* c) {
  ShapeHandle alpha;
  int channel_axis;
  TF_RETURN_IF_ERROR(CheckKafShapes(c, 1, &alpha, true,
                                    &channel_axis));
  ShapeHandle y;
  TF_RETURN_IF_ERROR(Kaf2dOutputShape(c, c->input(1), channel_axis, &y));
  ShapeHandle unused;
  if (!c->Merge(c->input(0), y, &unused).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dy must have the shape of the 2D-KAF output ", c->DebugString(y),
        " (x's shape with the channel axis halved), got ",
        c->DebugString(c->input(0))));
  }
  c->set_output(0, c->input(1));
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
    .Attr("gamma: float")
    .Attr("kernel: {'gaussian', 'relu', 'softplus'} = 'gaussian'")
    .Attr("axis: int = -1")
    .SetShapeFn(KafShape)
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
gamma: Gaussian kernel bandwidth, a normal float32 > 0 (the Python wrapper's default is
  1 / (8 step^2), step = 2 boundary / (D - 1)); unused by relu/softplus.
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
    .Attr("gamma: float")
    .Attr("kernel: {'gaussian', 'relu', 'softplus'} = 'gaussian'")
    .Attr("axis: int = -1")
    .SetShapeFn(KafGradShape)
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
    .Attr("gamma: float")
    .Attr("axis: int = -1")
    .SetShapeFn(Kaf2dShape)
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
gamma: Gaussian bandwidth, a normal float32 > 0 (the Python wrapper's default is
  1 / (4 step^2)).
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
    .Attr("gamma: float")
    .Attr("axis: int = -1")
    .SetShapeFn(Kaf2dGradShape)
    .Doc(R"doc(
Gradient of Tfkaf>Kaf2d in one fused pass.

dy: upstream gradient, the shape of the 2D-KAF output.
dx: gradient with respect to x (both halves of the channels).
dalpha: gradient with respect to alpha, [H, D*D].
)doc");

}  // namespace tfkaf
