// TensorFlow-free building blocks of the validation rules (docs/design.md,
// section 4): shapes as far as they are known, the outcome of a rule, and the
// rules every op shares (the channel axis, the KAF scales, the spline grid).
//
// The rules are called by the shape functions (with whatever dimensions are
// known at graph construction), by the OpKernels (with the real shapes) and
// by an XLA kernel, so they take plain integers and strings, never a
// TensorFlow type. Each message is written once, here or in the op's rules.

#ifndef TFKAF_CC_RULES_VERDICT_H_
#define TFKAF_CC_RULES_VERDICT_H_

#include <string>
#include <utility>
#include <vector>

#include "cc/kernels/common.h"

namespace tfkaf {

// A dimension not known at graph construction.
inline constexpr int64 kUnknownDim = -1;

// A tensor's shape as far as it is known: an unknown rank, or sizes of which
// some may be kUnknownDim.
struct Dims {
  bool rank_known = false;
  std::vector<int64> sizes;

  static Dims UnknownRank() { return Dims(); }
  static Dims Known(std::vector<int64> sizes) {
    return Dims{true, std::move(sizes)};
  }
  int rank() const { return rank_known ? static_cast<int>(sizes.size()) : -1; }
  int64 size(int d) const { return sizes[d]; }
  bool known(int d) const { return sizes[d] != kUnknownDim; }
  bool FullyKnown() const;
  // "[2,3]", "[?,3]" for an unknown dimension, "?" for an unknown rank (the
  // notation of TensorFlow's TensorShape and shape inference).
  std::string DebugString() const;
};

// The outcome of a rule: ok, or the one message that names the problem.
class Verdict {
 public:
  Verdict() = default;
  static Verdict Ok() { return Verdict(); }
  static Verdict Problem(std::string message) {
    Verdict verdict;
    verdict.message_ = std::move(message);
    return verdict;
  }
  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

#define TFKAF_RETURN_IF_PROBLEM(expr)      \
  do {                                     \
    ::tfkaf::Verdict verdict_ = (expr);    \
    if (!verdict_.ok()) return verdict_;   \
  } while (false)

// rank >= 1 and -rank <= axis < rank; sets *channel_axis to the normalised
// axis, or to -1 when the rank is unknown. `tensor` names the tensor.
Verdict CheckChannelAxis(const Dims& shape, int axis, const char* tensor,
                         int* channel_axis);

// The [outer, C, inner] view of a fully known shape around channel_axis.
ChannelLayout LayoutAround(const Dims& shape, int channel_axis);

// True when dims a and b can be the same shape (unknowns match anything).
bool Compatible(const Dims& a, const Dims& b);

// The KAF boundary and gamma rule: a positive, finite, normal float32 value
// (the CPU's flush-to-zero mode would turn a subnormal one into 0; float
// kernels compute with gamma in float32, so a derived gamma must fit too).
// The float overload checks a float32 attribute as it is, also on threads
// that flush subnormals.
Verdict CheckKafScale(const char* name, double value);
Verdict CheckKafScale(const char* name, float value);

// The linear-spline grid rule: finite x_min < x_max.
Verdict CheckSplineGrid(float x_min, float x_max);

// The message of a functor's error (a CUDA error string) from the OpKernel
// or the XLA custom call of op `op_type`:
// "<op type> kernel launch failed: <error>".
std::string LaunchFailure(const std::string& op_type, const char* error);

}  // namespace tfkaf

#endif  // TFKAF_CC_RULES_VERDICT_H_
