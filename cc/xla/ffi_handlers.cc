// Typed XLA FFI handlers of the tfkaf custom calls (custom_calls.h): they
// read the functor configuration from the call's attributes, check every
// buffer against it (an HLO module written by hand cannot make a functor
// read or write out of bounds), and run the fused functors: the CPU ones on
// the thread pool XLA:CPU passes ("Host"), the CUDA ones on the stream XLA:GPU
// passes ("CUDA", when built with CUDA). TensorFlow-free: only XLA's
// versioned FFI C API.

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"
#include "cc/kernels/storage.h"
#include "cc/rules/verdict.h"
#include "cc/xla/custom_calls.h"
#include "cc/xla/host_device.h"
#include "xla/ffi/api/c_api.h"
#include "xla/ffi/api/ffi.h"

namespace tfkaf {
namespace {

namespace ffi = ::xla::ffi;

// ---------------------------------------------------------------------------
// Attributes.

// Reads attribute `name` into *value; false (and *error set) when missing.
template <typename T, typename V>
bool Read(const ffi::Dictionary& attrs, const char* name, V* value,
          ffi::Error* error) {
  ffi::ErrorOr<T> read = attrs.get<T>(name);
  if (read.has_error()) {
    *error = ffi::Error::InvalidArgument(
        absl::StrCat("tfkaf custom call: attribute '", name,
                     "' missing or of the wrong type"));
    return false;
  }
  *value = static_cast<V>(read.value());
  return true;
}

bool ReadLayout(const ffi::Dictionary& attrs, ChannelLayout* layout,
                ffi::Error* error) {
  return Read<int64_t>(attrs, xla_call::kOuter, &layout->outer, error) &&
         Read<int64_t>(attrs, xla_call::kChannels, &layout->channels,
                       error) &&
         Read<int64_t>(attrs, xla_call::kInner, &layout->inner, error);
}

bool ReadConfig(const ffi::Dictionary& attrs, KafConfig* config,
                ffi::Error* error) {
  int64_t kernel = 0;
  if (!ReadLayout(attrs, &config->layout, error) ||
      !Read<int64_t>(attrs, xla_call::kCentres, &config->num_centres,
                     error) ||
      !Read<double>(attrs, xla_call::kBoundary, &config->boundary, error) ||
      !Read<double>(attrs, xla_call::kGamma, &config->gamma, error) ||
      !Read<int64_t>(attrs, xla_call::kKernel, &kernel, error)) {
    return false;
  }
  config->kernel = static_cast<KafKernel>(kernel);
  return true;
}

bool ReadConfig(const ffi::Dictionary& attrs, SplineParams* params,
                ffi::Error* error) {
  int64_t deterministic = 0;
  if (!ReadLayout(attrs, &params->layout, error) ||
      !Read<int64_t>(attrs, xla_call::kKnots, &params->knots, error) ||
      !Read<double>(attrs, xla_call::kXMin, &params->x_min, error) ||
      !Read<double>(attrs, xla_call::kScale, &params->scale, error) ||
      !Read<int64_t>(attrs, xla_call::kDeterministic, &deterministic,
                     error)) {
    return false;
  }
  params->deterministic = deterministic != 0;
  return true;
}

// ---------------------------------------------------------------------------
// The element counts a configuration implies.

struct Extents {
  int64 x = 0;      // x and dx
  int64 param = 0;  // alpha / coefficients and their gradient
  int64 y = 0;      // y and dy
};

template <bool kTwoD>
Extents ExtentsOf(const KafConfig& config) {
  const ChannelLayout& layout = config.layout;
  const int64 d = config.num_centres;
  if (!kTwoD) return {layout.size(), layout.channels * d, layout.size()};
  return {layout.size(), layout.channels / 2 * d * d, layout.size() / 2};
}

Extents SplineExtents(const SplineParams& params) {
  const ChannelLayout& layout = params.layout;
  return {layout.size(), layout.channels * params.knots, layout.size()};
}

// A configuration the functors can run: non-negative sizes, D >= 2 or
// K >= 2, a known basis kernel (the XLA kernels only emit such calls).
bool Plausible(const ChannelLayout& layout, int64 params_per_row) {
  return layout.outer >= 0 && layout.channels >= 0 && layout.inner >= 0 &&
         params_per_row >= 2;
}
bool Plausible(const KafConfig& c) {
  return Plausible(c.layout, c.num_centres) &&
         static_cast<int>(c.kernel) >= 0 && static_cast<int>(c.kernel) <= 2;
}
bool Plausible(const SplineParams& p) {
  return Plausible(p.layout, p.knots);
}

// ---------------------------------------------------------------------------
// Buffers.

ffi::Error CheckBuffer(const char* op, const char* name,
                       const ffi::AnyBuffer& buffer, ffi::DataType type,
                       int64 count) {
  if (buffer.element_type() == type &&
      static_cast<int64>(buffer.element_count()) == count) {
    return ffi::Error::Success();
  }
  return ffi::Error::InvalidArgument(absl::StrCat(
      op, " custom call: ", name, " has ", buffer.element_count(),
      " elements of type ", static_cast<int>(buffer.element_type()),
      ", its attributes need ", count, " of type ", static_cast<int>(type)));
}

template <typename S>
const S* Data(const ffi::AnyBuffer& buffer) {
  return reinterpret_cast<const S*>(buffer.untyped_data());
}
template <typename S>
S* Data(ffi::Result<ffi::AnyBuffer>& buffer) {
  return reinterpret_cast<S*>(buffer->untyped_data());
}

ffi::Error ErrorOf(const char* op, const char* error) {
  if (error == nullptr) return ffi::Error::Success();
  return ffi::Error::Internal(LaunchFailure(op, error));
}

// Calls fn(S()) with S the storage type of `type` for Device's functors.
template <typename Device, typename Fn>
ffi::Error ForType(const char* op, ffi::DataType type, Fn&& fn) {
  switch (type) {
    case ffi::DataType::F32:
      return fn(typename StorageOf<Device, float>::type());
    case ffi::DataType::F64:
      return fn(typename StorageOf<Device, double>::type());
    case ffi::DataType::F16:
      return fn(typename StorageOf<Device, Eigen::half>::type());
    case ffi::DataType::BF16:
      return fn(typename StorageOf<Device, Eigen::bfloat16>::type());
    default:
      return ffi::Error::InvalidArgument(
          absl::StrCat(op, " custom call: unsupported element type ",
                       static_cast<int>(type)));
  }
}

template <typename Acc>
ffi::DataType TypeOf() {
  return sizeof(Acc) == 8 ? ffi::DataType::F64 : ffi::DataType::F32;
}

// Reads the call's configuration and checks that it describes a problem.
template <typename Config>
ffi::Error ConfigOf(const char* op, const ffi::Dictionary& attrs,
                    Config* config) {
  ffi::Error error;
  if (!ReadConfig(attrs, config, &error)) return error;
  if (Plausible(*config)) return ffi::Error::Success();
  return ffi::Error::InvalidArgument(
      absl::StrCat(op, " custom call: its attributes describe no problem"));
}

// ---------------------------------------------------------------------------
// One forward and one backward runner for every op and device.

template <template <typename, typename> class Forward, typename Device,
          typename Config>
ffi::Error RunForward(const char* op, const Device& device,
                      const ffi::Dictionary& attrs,
                      Extents (*extents_of)(const Config&), ffi::AnyBuffer x,
                      ffi::AnyBuffer param, ffi::Result<ffi::AnyBuffer> y) {
  Config config;
  if (ffi::Error e = ConfigOf(op, attrs, &config); e.failure()) return e;
  const Extents n = extents_of(config);
  const ffi::DataType type = x.element_type();
  for (ffi::Error e : {CheckBuffer(op, "x", x, type, n.x),
                       CheckBuffer(op, "the parameters", param, type, n.param),
                       CheckBuffer(op, "y", *y, type, n.y)}) {
    if (e.failure()) return e;
  }
  if (n.y == 0) return ffi::Error::Success();
  return ForType<Device>(op, type, [&](auto storage) {
    using S = decltype(storage);
    return ErrorOf(op, Forward<Device, S>()(device, config, Data<S>(x),
                                             Data<S>(param), Data<S>(y)));
  });
}

template <template <typename, typename> class Backward, typename Device,
          typename Config>
ffi::Error RunBackward(const char* op, const Device& device,
                       const ffi::Dictionary& attrs,
                       Extents (*extents_of)(const Config&), ffi::AnyBuffer dy,
                       ffi::AnyBuffer x, ffi::AnyBuffer param,
                       ffi::Result<ffi::AnyBuffer> dx,
                       ffi::Result<ffi::AnyBuffer> dparam,
                       ffi::Result<ffi::AnyBuffer> scratch) {
  Config config;
  if (ffi::Error e = ConfigOf(op, attrs, &config); e.failure()) return e;
  const Extents n = extents_of(config);
  const ffi::DataType type = x.element_type();
  for (ffi::Error e :
       {CheckBuffer(op, "dy", dy, type, n.y),
        CheckBuffer(op, "x", x, type, n.x),
        CheckBuffer(op, "the parameters", param, type, n.param),
        CheckBuffer(op, "dx", *dx, type, n.x),
        CheckBuffer(op, "the parameters' gradient", *dparam, type, n.param)}) {
    if (e.failure()) return e;
  }
  if (n.param == 0) return ffi::Error::Success();
  return ForType<Device>(op, type, [&](auto storage) {
    using Functor = Backward<Device, decltype(storage)>;
    using S = decltype(storage);
    using Acc = typename Functor::Acc;
    const int64 need = Functor::ScratchSize(config);
    ffi::Error e = CheckBuffer(op, "scratch", *scratch, TypeOf<Acc>(), need);
    if (e.failure()) return e;
    return ErrorOf(op, Functor()(device, config, Data<S>(dy), Data<S>(x),
                                 Data<S>(param), Data<S>(dx), Data<S>(dparam),
                                 need > 0 ? Data<Acc>(scratch) : nullptr));
  });
}

// ---------------------------------------------------------------------------
// Handlers: the device from the call's context, then the runner.

template <const char* kOp, template <typename, typename> class Forward,
          typename Config, Extents (*kExtents)(const Config&)>
ffi::Error HostForward(ffi::ThreadPool pool, ffi::AnyBuffer x,
                       ffi::AnyBuffer param, ffi::Result<ffi::AnyBuffer> y,
                       ffi::Dictionary attrs) {
  return RunForward<Forward>(kOp, HostDevice(&pool), attrs, kExtents, x,
                             param, y);
}

template <const char* kOp, template <typename, typename> class Backward,
          typename Config, Extents (*kExtents)(const Config&)>
ffi::Error HostBackward(ffi::ThreadPool pool, ffi::AnyBuffer dy,
                        ffi::AnyBuffer x, ffi::AnyBuffer param,
                        ffi::Result<ffi::AnyBuffer> dx,
                        ffi::Result<ffi::AnyBuffer> dparam,
                        ffi::Result<ffi::AnyBuffer> scratch,
                        ffi::Dictionary attrs) {
  return RunBackward<Backward>(kOp, HostDevice(&pool), attrs, kExtents, dy, x,
                               param, dx, dparam, scratch);
}

#ifdef TFKAF_WITH_CUDA
GpuDevice StreamDevice(void* stream) {
  GpuDevice device;
  device.stream = stream;
  return device;
}

template <const char* kOp, template <typename, typename> class Forward,
          typename Config, Extents (*kExtents)(const Config&)>
ffi::Error CudaForward(void* stream, ffi::AnyBuffer x, ffi::AnyBuffer param,
                       ffi::Result<ffi::AnyBuffer> y, ffi::Dictionary attrs) {
  return RunForward<Forward>(kOp, StreamDevice(stream), attrs, kExtents, x,
                             param, y);
}

template <const char* kOp, template <typename, typename> class Backward,
          typename Config, Extents (*kExtents)(const Config&)>
ffi::Error CudaBackward(void* stream, ffi::AnyBuffer dy, ffi::AnyBuffer x,
                        ffi::AnyBuffer param, ffi::Result<ffi::AnyBuffer> dx,
                        ffi::Result<ffi::AnyBuffer> dparam,
                        ffi::Result<ffi::AnyBuffer> scratch,
                        ffi::Dictionary attrs) {
  return RunBackward<Backward>(kOp, StreamDevice(stream), attrs, kExtents, dy,
                               x, param, dx, dparam, scratch);
}
#endif  // TFKAF_WITH_CUDA

// The arguments of the forward (x, param -> y) and backward
// (dy, x, param -> dx, dparam, scratch) calls after the context Ctx.
template <typename Ctx>
auto ForwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<Ctx>()
      .template Arg<ffi::AnyBuffer>()
      .template Arg<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .Attrs();
}

template <typename Ctx>
auto BackwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<Ctx>()
      .template Arg<ffi::AnyBuffer>()
      .template Arg<ffi::AnyBuffer>()
      .template Arg<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .Attrs();
}

}  // namespace

// The handlers of one op pair (forward OP, backward OP##Grad) on one
// platform: RUN is Host or Cuda, CTX the context the handler receives.
#define TFKAF_OP_HANDLERS(OP, FORWARD, BACKWARD, CONFIG, EXTENTS, RUN, CTX,  \
                          PLATFORM)                                          \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(                                             \
      Tfkaf##RUN##OP, (RUN##Forward<xla_call::k##OP##Op, FORWARD, CONFIG,    \
                                    EXTENTS>),                               \
      ForwardBinding<CTX>());                                                \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(                                             \
      Tfkaf##RUN##OP##Grad,                                                  \
      (RUN##Backward<xla_call::k##OP##GradOp, BACKWARD, CONFIG, EXTENTS>),   \
      BackwardBinding<CTX>());                                               \
  XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), xla_call::k##OP, PLATFORM,      \
                           Tfkaf##RUN##OP);                                  \
  XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), xla_call::k##OP##Grad,          \
                           PLATFORM, Tfkaf##RUN##OP##Grad);

// Every op on one platform.
#define TFKAF_ALL_HANDLERS(RUN, CTX, PLATFORM)                               \
  TFKAF_OP_HANDLERS(Kaf, functor::KafForward, functor::KafBackward,          \
                    KafConfig, &ExtentsOf<false>, RUN, CTX, PLATFORM)        \
  TFKAF_OP_HANDLERS(Kaf2d, functor::Kaf2dForward, functor::Kaf2dBackward,    \
                    KafConfig, &ExtentsOf<true>, RUN, CTX, PLATFORM)         \
  TFKAF_OP_HANDLERS(LinearSpline, functor::SplineForward,                    \
                    functor::SplineBackward, SplineParams, &SplineExtents,   \
                    RUN, CTX, PLATFORM)

TFKAF_ALL_HANDLERS(Host, ffi::ThreadPool, "Host")
#ifdef TFKAF_WITH_CUDA
TFKAF_ALL_HANDLERS(Cuda, ffi::PlatformStream<void*>, "CUDA")
#endif

}  // namespace tfkaf
