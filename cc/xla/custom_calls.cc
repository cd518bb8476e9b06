#include "cc/xla/custom_calls.h"

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace tfkaf {
namespace xla_call {
namespace {

std::string Int(const char* name, int64 value) {
  return absl::StrCat(name, " = ", value, " : i64");
}

std::string Double(const char* name, double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  return absl::StrFormat("%s = 0x%016X : f64", name, bits);
}

std::string Dictionary(const ChannelLayout& layout,
                       std::initializer_list<std::string> rest) {
  std::vector<std::string> entries = {Int(kOuter, layout.outer),
                                      Int(kChannels, layout.channels),
                                      Int(kInner, layout.inner)};
  entries.insert(entries.end(), rest.begin(), rest.end());
  return absl::StrCat("{", absl::StrJoin(entries, ", "), "}");
}

}  // namespace

std::string KafAttributes(const KafConfig& config) {
  return Dictionary(config.layout,
                    {Int(kCentres, config.num_centres),
                     Double(kBoundary, config.boundary),
                     Double(kGamma, config.gamma),
                     Int(kKernel, static_cast<int64>(config.kernel))});
}

std::string SplineAttributes(const SplineParams& params) {
  return Dictionary(params.layout,
                    {Int(kKnots, params.knots), Double(kXMin, params.x_min),
                     Double(kScale, params.scale),
                     Int(kDeterministic, params.deterministic ? 1 : 0)});
}

}  // namespace xla_call
}  // namespace tfkaf
