#include "cc/rules/kaf_rules.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace tfkaf {
namespace {

// alpha is 2-D; its rows match x's channels (pairs for 2D-KAF).
Verdict CheckAlphaRows(const KafAttrs& attrs, const Dims& x,
                       const Dims& alpha, int channel_axis) {
  const bool two_d = attrs.two_d;
  if (alpha.rank_known && alpha.rank() != 2) {
    return Verdict::Problem(absl::StrCat(
        "alpha must be a 2-D tensor ", two_d ? "[H, D*D]" : "[channels, D]",
        ", got shape ", alpha.DebugString()));
  }
  if (channel_axis < 0 || !x.known(channel_axis)) return Verdict::Ok();
  const int64 channels = x.size(channel_axis);
  if (two_d && channels % 2 != 0) {
    return Verdict::Problem(absl::StrCat(
        "2D-KAF needs an even number of channels (2H, channel j paired with "
        "channel j+H) along axis ",
        attrs.axis, ", got ", channels, " (x shape ", x.DebugString(), ")"));
  }
  const int64 rows = two_d ? channels / 2 : channels;
  if (!alpha.rank_known || !alpha.known(0) || alpha.size(0) == rows) {
    return Verdict::Ok();
  }
  return Verdict::Problem(absl::StrCat(
      "channel count mismatch: alpha has ", alpha.size(0), " rows but x has ",
      channels, " channels along axis ", attrs.axis,
      two_d ? absl::StrCat(" (alpha needs one row per channel pair, H = ",
                           rows, ")")
            : std::string(),
      " (x shape ", x.DebugString(), ", alpha shape ", alpha.DebugString(),
      ")"));
}

// alpha's columns: D >= 2 centres (a D x D grid for 2D-KAF); sets *d.
Verdict CheckCentres(bool two_d, const Dims& alpha, int64* d) {
  *d = kUnknownDim;
  if (!alpha.rank_known || !alpha.known(1)) return Verdict::Ok();
  const int64 n = alpha.size(1);
  if (two_d) {
    const int64 side =
        static_cast<int64>(std::llround(std::sqrt(static_cast<double>(n))));
    if (side * side != n || side < 2) {
      return Verdict::Problem(absl::StrCat(
          "alpha's second dimension must be a perfect square D*D with D >= 2 "
          "(a D x D grid of centres), got ",
          n));
    }
    *d = side;
  } else if (n < 2) {
    return Verdict::Problem(absl::StrCat(
        "alpha must have D >= 2 columns (dictionary centres), got D = ", n));
  } else {
    *d = n;
  }
  return Verdict::Ok();
}

// The output's shape: x's, with the channel axis halved for 2D-KAF.
Dims OutputDims(const KafAttrs& attrs, const Dims& x, int channel_axis) {
  if (!attrs.two_d) return x;
  if (channel_axis < 0) return Dims::UnknownRank();
  Dims y = x;
  if (x.known(channel_axis)) y.sizes[channel_axis] = x.size(channel_axis) / 2;
  return y;
}

}  // namespace

Verdict CheckKafAttrs(const KafAttrs& attrs) {
  TFKAF_RETURN_IF_PROBLEM(CheckKafScale("boundary", attrs.boundary));
  if (DerivesGamma(attrs.gamma)) return Verdict::Ok();
  return CheckKafScale("gamma", attrs.gamma);
}

Verdict CheckKaf(const KafAttrs& attrs, const Dims& x, const Dims& alpha,
                 KafFacts* facts) {
  TFKAF_RETURN_IF_PROBLEM(CheckKafAttrs(attrs));
  int channel_axis = -1;
  TFKAF_RETURN_IF_PROBLEM(CheckChannelAxis(x, attrs.axis, "x", &channel_axis));
  TFKAF_RETURN_IF_PROBLEM(CheckAlphaRows(attrs, x, alpha, channel_axis));
  int64 d = kUnknownDim;
  TFKAF_RETURN_IF_PROBLEM(CheckCentres(attrs.two_d, alpha, &d));
  double gamma = attrs.gamma;
  if (DerivesGamma(attrs.gamma)) {
    gamma = 0.0;
    if (d != kUnknownDim) {
      gamma = DefaultKafGamma(attrs.boundary, d, attrs.two_d);
      const Verdict derived = CheckKafScale("gamma", gamma);
      if (!derived.ok()) {
        return Verdict::Problem(absl::StrCat(
            derived.message(), ": the default for boundary ",
            double(attrs.boundary), " and ", d,
            attrs.two_d ? " centres a side" : " centres",
            "; pass gamma, or a boundary nearer 1"));
      }
    }
  }
  facts->channel_axis = channel_axis;
  facts->num_centres = d;
  facts->gamma = gamma;
  facts->y = OutputDims(attrs, x, channel_axis);
  if (x.FullyKnown()) facts->layout = LayoutAround(x, channel_axis);
  return Verdict::Ok();
}

Verdict CheckKafGrad(const KafAttrs& attrs, const Dims& dy, const Dims& x,
                     const Dims& alpha, KafFacts* facts) {
  TFKAF_RETURN_IF_PROBLEM(CheckKaf(attrs, x, alpha, facts));
  if (Compatible(dy, facts->y)) return Verdict::Ok();
  return Verdict::Problem(absl::StrCat(
      "dy must have the shape of the ", attrs.two_d ? "2D-KAF" : "KAF",
      " output ", facts->y.DebugString(), ", got ", dy.DebugString()));
}

}  // namespace tfkaf
