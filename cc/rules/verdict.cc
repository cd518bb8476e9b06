#include "cc/rules/verdict.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tfkaf {

namespace {

// value as a double, also on threads that read subnormal floats as zero
// (TensorFlow's CPU threads do): a subnormal is rebuilt from its bits with
// integer arithmetic, so that eager kernels and shape functions print the
// same message.
double ExactDouble(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) != 0) return value;  // normal, inf or NaN
  const double magnitude =
      std::ldexp(static_cast<double>(bits & 0x007fffffu), -149);
  return (bits >> 31) != 0 ? -magnitude : magnitude;
}

}  // namespace

bool Dims::FullyKnown() const {
  if (!rank_known) return false;
  for (int64 size : sizes) {
    if (size == kUnknownDim) return false;
  }
  return true;
}

std::string Dims::DebugString() const {
  if (!rank_known) return "?";
  std::string out = "[";
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (d > 0) out += ",";
    out += sizes[d] == kUnknownDim ? std::string("?")
                                   : absl::StrCat(sizes[d]);
  }
  return out + "]";
}

Verdict CheckChannelAxis(const Dims& shape, int axis, const char* tensor,
                         int* channel_axis) {
  *channel_axis = -1;
  if (!shape.rank_known) return Verdict::Ok();
  const int rank = shape.rank();
  if (rank < 1) {
    return Verdict::Problem(absl::StrCat(
        tensor, " must have rank >= 1 (a channel axis is needed), got rank ",
        rank));
  }
  if (axis < -rank || axis >= rank) {
    return Verdict::Problem(absl::StrCat(
        "axis ", axis, " is out of range for ", tensor, " of rank ", rank,
        " (expected ", -rank, " <= axis < ", rank, ")"));
  }
  *channel_axis = axis < 0 ? axis + rank : axis;
  return Verdict::Ok();
}

ChannelLayout LayoutAround(const Dims& shape, int channel_axis) {
  ChannelLayout layout;
  for (int d = 0; d < channel_axis; ++d) layout.outer *= shape.size(d);
  layout.channels = shape.size(channel_axis);
  for (int d = channel_axis + 1; d < shape.rank(); ++d) {
    layout.inner *= shape.size(d);
  }
  return layout;
}

bool Compatible(const Dims& a, const Dims& b) {
  if (!a.rank_known || !b.rank_known) return true;
  if (a.rank() != b.rank()) return false;
  for (int d = 0; d < a.rank(); ++d) {
    if (a.known(d) && b.known(d) && a.size(d) != b.size(d)) return false;
  }
  return true;
}

Verdict CheckKafScale(const char* name, double value) {
  constexpr float kSmallestNormal = std::numeric_limits<float>::min();
  constexpr float kLargest = std::numeric_limits<float>::max();
  if (!(std::isfinite(value) && value >= kSmallestNormal)) {
    return Verdict::Problem(absl::StrCat(
        name, " must be a positive finite number of at least ",
        kSmallestNormal, " (the smallest normal float32), got ", value));
  }
  if (value > kLargest) {  // only a derived gamma: attributes are float32
    return Verdict::Problem(absl::StrCat(
        name, " must be a positive finite number of at most ", kLargest,
        " (the largest float32), got ", value));
  }
  return Verdict::Ok();
}

Verdict CheckKafScale(const char* name, float value) {
  return CheckKafScale(name, ExactDouble(value));
}

Verdict CheckSplineGrid(float x_min, float x_max) {
  if (!std::isfinite(x_min) || !std::isfinite(x_max)) {
    return Verdict::Problem(
        absl::StrCat("x_min and x_max must be finite, got x_min = ",
                     ExactDouble(x_min), " and x_max = ", ExactDouble(x_max)));
  }
  if (!(x_min < x_max)) {
    return Verdict::Problem(
        absl::StrCat("x_min must be less than x_max, got x_min = ",
                     ExactDouble(x_min), " and x_max = ", ExactDouble(x_max)));
  }
  return Verdict::Ok();
}

std::string LaunchFailure(const std::string& op_type, const char* error) {
  return absl::StrCat(op_type, " kernel launch failed: ", error);
}

}  // namespace tfkaf
