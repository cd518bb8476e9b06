#include "cc/rules/spline_rules.h"

#include "absl/strings/str_cat.h"

namespace tfkaf {

Verdict CheckSpline(const SplineAttrs& attrs, const Dims& x,
                    const Dims& coefficients, SplineFacts* facts,
                    const char* tensor) {
  TFKAF_RETURN_IF_PROBLEM(CheckSplineGrid(attrs.x_min, attrs.x_max));
  int channel_axis = -1;
  TFKAF_RETURN_IF_PROBLEM(
      CheckChannelAxis(x, attrs.axis, tensor, &channel_axis));
  facts->channel_axis = channel_axis;
  if (x.FullyKnown()) facts->layout = LayoutAround(x, channel_axis);
  if (!coefficients.rank_known) return Verdict::Ok();
  if (coefficients.rank() != 2) {
    return Verdict::Problem(absl::StrCat(
        "coefficients must be a rank-2 tensor [channels, knots], got shape ",
        coefficients.DebugString()));
  }
  if (channel_axis >= 0 && x.known(channel_axis) && coefficients.known(0) &&
      x.size(channel_axis) != coefficients.size(0)) {
    return Verdict::Problem(absl::StrCat(
        "coefficients has ", coefficients.size(0), " channels (rows) but ",
        tensor, " has ", x.size(channel_axis), " channels along axis ",
        attrs.axis, " (", tensor, " shape ", x.DebugString(),
        ", coefficients shape ", coefficients.DebugString(), ")"));
  }
  const int64 knots = coefficients.size(1);
  if (knots != kUnknownDim && knots < 2) {
    return Verdict::Problem(absl::StrCat(
        "coefficients must have at least 2 knots (columns), got ", knots));
  }
  facts->knots = knots;
  return Verdict::Ok();
}

Verdict CheckSplineGrad(const SplineAttrs& attrs, const Dims& dy,
                        const Dims& x, const Dims& coefficients,
                        SplineFacts* facts) {
  TFKAF_RETURN_IF_PROBLEM(CheckSpline(attrs, x, coefficients, facts));
  if (!Compatible(dy, x)) {
    return Verdict::Problem(absl::StrCat(
        "dy must have the same shape as x, got dy shape ", dy.DebugString(),
        " and x shape ", x.DebugString()));
  }
  SplineFacts dy_facts;
  return CheckSpline(attrs, dy, coefficients, &dy_facts, "dy");
}

}  // namespace tfkaf
