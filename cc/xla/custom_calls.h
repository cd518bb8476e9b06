// The XLA custom calls of the tfkaf ops: one target per op, and the
// attributes that carry the functor configuration. TensorFlow- and XLA-free:
// the XLA kernels (xla_kernels.cc) write the attribute dictionary, the typed
// FFI handlers (ffi_handlers.cc) read it, with the names defined here.
//
// Each custom call takes the op's inputs and returns its outputs; the
// gradient calls return one more buffer, the backward functor's scratch
// (Backward::ScratchSize accumulators, possibly none), so XLA allocates it.

#ifndef TFKAF_CC_XLA_CUSTOM_CALLS_H_
#define TFKAF_CC_XLA_CUSTOM_CALLS_H_

#include <string>

#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"

namespace tfkaf {
namespace xla_call {

// The op types, as errors name them ("Tfkaf>Kaf kernel launch failed: ...").
inline constexpr char kKafOp[] = "Tfkaf>Kaf";
inline constexpr char kKafGradOp[] = "Tfkaf>KafGrad";
inline constexpr char kKaf2dOp[] = "Tfkaf>Kaf2d";
inline constexpr char kKaf2dGradOp[] = "Tfkaf>Kaf2dGrad";
inline constexpr char kLinearSplineOp[] = "Tfkaf>LinearSpline";
inline constexpr char kLinearSplineGradOp[] = "Tfkaf>LinearSplineGrad";

// The custom-call targets, one per op (the op's type in snake case).
inline constexpr char kKaf[] = "tfkaf_kaf";
inline constexpr char kKafGrad[] = "tfkaf_kaf_grad";
inline constexpr char kKaf2d[] = "tfkaf_kaf2d";
inline constexpr char kKaf2dGrad[] = "tfkaf_kaf2d_grad";
inline constexpr char kLinearSpline[] = "tfkaf_linear_spline";
inline constexpr char kLinearSplineGrad[] = "tfkaf_linear_spline_grad";

// Attribute names. Every call: the [outer, channels, inner] view of x.
inline constexpr char kOuter[] = "outer";
inline constexpr char kChannels[] = "channels";
inline constexpr char kInner[] = "inner";
// KAF and 2D-KAF: D, boundary, the bandwidth in double and the basis kernel
// (KafKernel as an integer).
inline constexpr char kCentres[] = "centres";
inline constexpr char kBoundary[] = "boundary";
inline constexpr char kGamma[] = "gamma";
inline constexpr char kKernel[] = "kernel";
// Spline: K, x_min, (K - 1) / (x_max - x_min), and whether the GPU gradient
// takes its deterministic path (TensorFlow's op determinism at compile time).
inline constexpr char kKnots[] = "knots";
inline constexpr char kXMin[] = "x_min";
inline constexpr char kScale[] = "scale";
inline constexpr char kDeterministic[] = "deterministic";

// The backend-config dictionary of a call (MLIR attribute syntax). Doubles
// are written as their exact bits (0x... : f64), so the handler sees the
// value the rule derived, to the last bit.
std::string KafAttributes(const KafConfig& config);
std::string SplineAttributes(const SplineParams& params);

}  // namespace xla_call
}  // namespace tfkaf

#endif  // TFKAF_CC_XLA_CUSTOM_CALLS_H_
