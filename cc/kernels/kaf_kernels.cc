// OpKernels of Tfkaf>Kaf, Tfkaf>KafGrad, Tfkaf>Kaf2d and Tfkaf>Kaf2dGrad
// (ops in cc/ops/kaf_ops.cc, functors in kaf_kernels.h): attribute and input
// validation, output allocation, and dispatch to the CPU functors
// (kaf_cpu.cc) or, when built with CUDA, the GPU functors
// (kaf_kernels.cu.cc).

#include <algorithm>
#include <cmath>
#include <functional>
#include <type_traits>
#include <string>

#include "absl/strings/str_cat.h"
#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/op_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace tfkaf {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

struct CpuTag {};
struct GpuTag {};

absl::Status ParseKernel(const std::string& name, KafKernel* kernel) {
  if (name == "gaussian") {
    *kernel = KafKernel::kGaussian;
  } else if (name == "relu") {
    *kernel = KafKernel::kRelu;
  } else if (name == "softplus") {
    *kernel = KafKernel::kSoftplus;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown KAF kernel '", name,
                     "': expected one of 'gaussian', 'relu', 'softplus'"));
  }
  return absl::OkStatus();
}

// Reads and validates the attributes shared by all four ops.
absl::Status ReadAttrs(OpKernelConstruction* context, bool has_kernel,
                       KafConfig* config, int* axis) {
  float boundary = 0.f;
  float gamma = 0.f;
  TF_RETURN_IF_ERROR(context->GetAttr("boundary", &boundary));
  TF_RETURN_IF_ERROR(context->GetAttr("gamma", &gamma));
  TF_RETURN_IF_ERROR(context->GetAttr("axis", axis));
  TF_RETURN_IF_ERROR(CheckKafScale("boundary", boundary));
  TF_RETURN_IF_ERROR(CheckKafScale("gamma", gamma));
  config->boundary = boundary;
  config->gamma = gamma;
  config->kernel = KafKernel::kGaussian;
  if (has_kernel) {
    std::string kernel;
    TF_RETURN_IF_ERROR(context->GetAttr("kernel", &kernel));
    TF_RETURN_IF_ERROR(ParseKernel(kernel, &config->kernel));
  }
  return absl::OkStatus();
}

// Validates x and alpha; fills config->layout and config->num_centres and
// the output shape.
absl::Status ValidateInputs(const TensorShape& x, const TensorShape& alpha,
                            int axis, bool two_d, KafConfig* config,
                            TensorShape* y_shape) {
  ChannelLayout layout;
  TF_RETURN_IF_ERROR(ChannelLayoutOf(x, axis, &layout));
  if (alpha.dims() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alpha must be a 2-D tensor ", two_d ? "[H, D*D]" : "[channels, D]",
        ", got shape ", alpha.DebugString()));
  }
  int64 rows = layout.channels;
  if (two_d) {
    if (layout.channels % 2 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "2D-KAF needs an even number of channels (2H, channel j paired with "
          "channel j+H) along axis ",
          axis, ", got ", layout.channels, " (x shape ", x.DebugString(),
          ")"));
    }
    rows = layout.channels / 2;
  }
  if (alpha.dim_size(0) != rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "channel count mismatch: alpha has ", alpha.dim_size(0),
        " rows but x has ", layout.channels, " channels along axis ", axis,
        two_d ? absl::StrCat(" (alpha needs one row per channel pair, H = ",
                             rows, ")")
              : std::string(),
        " (x shape ", x.DebugString(), ", alpha shape ", alpha.DebugString(),
        ")"));
  }
  int64 D = alpha.dim_size(1);
  if (two_d) {
    const int64 n = D;
    D = static_cast<int64>(std::llround(std::sqrt(static_cast<double>(n))));
    if (D * D != n || D < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "alpha's second dimension must be a perfect square D*D with D >= 2 "
          "(a D x D grid of centres), got ",
          n));
    }
  } else if (D < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alpha must have D >= 2 columns (dictionary centres), got D = ", D));
  }
  config->layout = layout;
  config->num_centres = D;
  *y_shape = x;
  if (two_d) {
    int channel_axis = 0;
    TF_RETURN_IF_ERROR(NormalizeAxis(axis, x.dims(), &channel_axis));
    y_shape->set_dim(channel_axis, rows);
  }
  return absl::OkStatus();
}

KafParallelFor CpuParallelFor(OpKernelContext* context) {
  return [context](int64 units, int64 cost,
                   const std::function<void(int64, int64)>& fn) {
    ParallelFor(context, units, cost, fn);
  };
}

// Forward: Kaf (two_d = false) and Kaf2d (two_d = true).
template <typename Device, typename T, bool kTwoD>
class KafOp : public OpKernel {
 public:
  explicit KafOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadAttrs(context, !kTwoD, &config_, &axis_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& alpha = context->input(1);
    KafConfig config = config_;
    TensorShape y_shape;
    OP_REQUIRES_OK(context, ValidateInputs(x.shape(), alpha.shape(), axis_,
                                           kTwoD, &config, &y_shape));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, y_shape, &y));
    if (y->NumElements() == 0) return;
    Launch(context, config, x.flat<T>().data(), alpha.flat<T>().data(),
           y->flat<T>().data());
  }

 private:
  void Launch(OpKernelContext* context, const KafConfig& config, const T* x,
              const T* alpha, T* y);

  KafConfig config_;
  int axis_ = -1;
};

// Backward: KafGrad and Kaf2dGrad, inputs (dy, x, alpha).
template <typename Device, typename T, bool kTwoD>
class KafGradOp : public OpKernel {
 public:
  explicit KafGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadAttrs(context, !kTwoD, &config_, &axis_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& alpha = context->input(2);
    KafConfig config = config_;
    TensorShape y_shape;
    OP_REQUIRES_OK(context, ValidateInputs(x.shape(), alpha.shape(), axis_,
                                           kTwoD, &config, &y_shape));
    OP_REQUIRES(context, dy.shape() == y_shape,
                absl::InvalidArgumentError(absl::StrCat(
                    "dy must have the shape of the ",
                    kTwoD ? "2D-KAF" : "KAF", " output ",
                    y_shape.DebugString(), ", got ",
                    dy.shape().DebugString())));
    Tensor* dx = nullptr;
    Tensor* dalpha = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, alpha.shape(), &dalpha));
    Launch(context, config, dy.flat<T>().data(), x.flat<T>().data(),
           alpha.flat<T>().data(), dx->flat<T>().data(),
           dalpha->flat<T>().data());
  }

 private:
  void Launch(OpKernelContext* context, const KafConfig& config, const T* dy,
              const T* x, const T* alpha, T* dx, T* dalpha);

  KafConfig config_;
  int axis_ = -1;
};

// CPU launches.
template <typename Device, typename T, bool kTwoD>
void KafOp<Device, T, kTwoD>::Launch(OpKernelContext* context,
                                     const KafConfig& config, const T* x,
                                     const T* alpha, T* y) {
  if constexpr (std::is_same_v<Device, CpuTag>) {
    if (kTwoD) {
      Kaf2dForwardCpu<T>()(CpuParallelFor(context), config, x, alpha, y);
    } else {
      KafForwardCpu<T>()(CpuParallelFor(context), config, x, alpha, y);
    }
  }
#ifdef TFKAF_WITH_CUDA
  if constexpr (std::is_same_v<Device, GpuTag>) {
    using G = typename GpuStorage<T>::type;
    GpuDevice device;
    device.stream = GpuStreamOf(context);
    const char* error =
        kTwoD ? Kaf2dForwardGpu<G>()(device, config, GpuPointer(x),
                                     GpuPointer(alpha), GpuPointer(y))
              : KafForwardGpu<G>()(device, config, GpuPointer(x),
                                   GpuPointer(alpha), GpuPointer(y));
    OP_REQUIRES(context, error == nullptr,
                absl::InternalError(absl::StrCat(
                    "CUDA error in ", kTwoD ? "Kaf2d" : "Kaf", ": ", error)));
  }
#endif
}

template <typename Device, typename T, bool kTwoD>
void KafGradOp<Device, T, kTwoD>::Launch(OpKernelContext* context,
                                         const KafConfig& config, const T* dy,
                                         const T* x, const T* alpha, T* dx,
                                         T* dalpha) {
  if constexpr (std::is_same_v<Device, CpuTag>) {
    if (kTwoD) {
      Kaf2dBackwardCpu<T>()(CpuParallelFor(context), config, dy, x, alpha, dx,
                            dalpha);
    } else {
      KafBackwardCpu<T>()(CpuParallelFor(context), config, dy, x, alpha, dx,
                          dalpha);
    }
  }
#ifdef TFKAF_WITH_CUDA
  if constexpr (std::is_same_v<Device, GpuTag>) {
    using G = typename GpuStorage<T>::type;
    using Acc = typename AccumulatorOf<T>::type;
    const int64 rows =
        kTwoD ? config.layout.channels / 2 : config.layout.channels;
    const int64 K = kTwoD ? config.num_centres * config.num_centres
                          : config.num_centres;
    Tensor scratch;
    OP_REQUIRES_OK(context, context->allocate_temp(
                                tensorflow::DataTypeToEnum<Acc>::value,
                                TensorShape({std::max<int64>(rows * K, 1)}),
                                &scratch));
    GpuDevice device;
    device.stream = GpuStreamOf(context);
    Acc* acc = scratch.flat<Acc>().data();
    const char* error =
        kTwoD ? Kaf2dBackwardGpu<G, Acc>()(device, config, GpuPointer(dy),
                                           GpuPointer(x), GpuPointer(alpha),
                                           GpuPointer(dx), GpuPointer(dalpha),
                                           acc)
              : KafBackwardGpu<G, Acc>()(device, config, GpuPointer(dy),
                                         GpuPointer(x), GpuPointer(alpha),
                                         GpuPointer(dx), GpuPointer(dalpha),
                                         acc);
    OP_REQUIRES(context, error == nullptr,
                absl::InternalError(absl::StrCat(
                    "CUDA error in ", kTwoD ? "Kaf2dGrad" : "KafGrad", ": ",
                    error)));
  }
#endif
}

#define TFKAF_REGISTER_CPU(T)                                              \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf").Device(DEVICE_CPU).TypeConstraint<T>("T"),         \
      KafOp<CpuTag, T, false>);                                            \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>KafGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
      KafGradOp<CpuTag, T, false>);                                        \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf2d").Device(DEVICE_CPU).TypeConstraint<T>("T"),       \
      KafOp<CpuTag, T, true>);                                             \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf2dGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),   \
      KafGradOp<CpuTag, T, true>);

TFKAF_REGISTER_CPU(float)
TFKAF_REGISTER_CPU(double)
TFKAF_REGISTER_CPU(Eigen::half)
TFKAF_REGISTER_CPU(Eigen::bfloat16)
#undef TFKAF_REGISTER_CPU

#ifdef TFKAF_WITH_CUDA
using ::tensorflow::DEVICE_GPU;
// boundary, gamma and axis are attributes: no host-memory inputs needed.
#define TFKAF_REGISTER_GPU(T)                                              \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf").Device(DEVICE_GPU).TypeConstraint<T>("T"),         \
      KafOp<GpuTag, T, false>);                                            \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>KafGrad").Device(DEVICE_GPU).TypeConstraint<T>("T"),     \
      KafGradOp<GpuTag, T, false>);                                        \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf2d").Device(DEVICE_GPU).TypeConstraint<T>("T"),       \
      KafOp<GpuTag, T, true>);                                             \
  REGISTER_KERNEL_BUILDER(                                                 \
      Name("Tfkaf>Kaf2dGrad").Device(DEVICE_GPU).TypeConstraint<T>("T"),   \
      KafGradOp<GpuTag, T, true>);

TFKAF_REGISTER_GPU(float)
TFKAF_REGISTER_GPU(double)
TFKAF_REGISTER_GPU(Eigen::half)
TFKAF_REGISTER_GPU(Eigen::bfloat16)
#undef TFKAF_REGISTER_GPU
#endif  // TFKAF_WITH_CUDA

}  // namespace
}  // namespace tfkaf
