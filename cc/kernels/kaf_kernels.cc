// OpKernels of Tfkaf>Kaf, Tfkaf>KafGrad, Tfkaf>Kaf2d and Tfkaf>Kaf2dGrad
// (ops in cc/ops/kaf_ops.cc, functors in kaf_kernels.h): attribute and input
// validation (the rules of cc/rules/kaf_rules.h), output allocation, and
// dispatch to the CPU functors (kaf_cpu.cc) or, when built with CUDA, the GPU
// functors (kaf_kernels.cu.cc).

#include <algorithm>
#include <functional>
#include <type_traits>
#include <string>

#include "absl/strings/str_cat.h"
#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/kaf_rules.h"
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

// Reads the attributes shared by all four ops and checks them at once.
absl::Status ReadAttrs(OpKernelConstruction* context, bool two_d,
                       KafAttrs* attrs, KafKernel* kernel) {
  TF_RETURN_IF_ERROR(context->GetAttr("boundary", &attrs->boundary));
  TF_RETURN_IF_ERROR(context->GetAttr("gamma", &attrs->gamma));
  TF_RETURN_IF_ERROR(context->GetAttr("axis", &attrs->axis));
  attrs->two_d = two_d;
  TF_RETURN_IF_ERROR(StatusOf(CheckKafAttrs(*attrs)));
  *kernel = KafKernel::kGaussian;
  if (two_d) return absl::OkStatus();
  std::string name;
  TF_RETURN_IF_ERROR(context->GetAttr("kernel", &name));
  return ParseKernel(name, kernel);
}

// The functors' configuration from the rule's facts (the real shapes).
KafConfig ConfigOf(const KafAttrs& attrs, KafKernel kernel,
                   const KafFacts& facts) {
  KafConfig config;
  config.layout = facts.layout;
  config.num_centres = facts.num_centres;
  config.boundary = attrs.boundary;
  config.gamma = facts.gamma;
  config.kernel = kernel;
  return config;
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
    OP_REQUIRES_OK(context, ReadAttrs(context, kTwoD, &attrs_, &kernel_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& alpha = context->input(1);
    KafFacts facts;
    OP_REQUIRES_OK(context, StatusOf(CheckKaf(attrs_, DimsOf(x.shape()),
                                              DimsOf(alpha.shape()), &facts)));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShapeOf(facts.y), &y));
    if (y->NumElements() == 0) return;
    Launch(context, ConfigOf(attrs_, kernel_, facts), x.flat<T>().data(),
           alpha.flat<T>().data(), y->flat<T>().data());
  }

 private:
  void Launch(OpKernelContext* context, const KafConfig& config, const T* x,
              const T* alpha, T* y);

  KafAttrs attrs_;
  KafKernel kernel_ = KafKernel::kGaussian;
};

// Backward: KafGrad and Kaf2dGrad, inputs (dy, x, alpha).
template <typename Device, typename T, bool kTwoD>
class KafGradOp : public OpKernel {
 public:
  explicit KafGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadAttrs(context, kTwoD, &attrs_, &kernel_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& alpha = context->input(2);
    KafFacts facts;
    OP_REQUIRES_OK(context, StatusOf(CheckKafGrad(
                                attrs_, DimsOf(dy.shape()), DimsOf(x.shape()),
                                DimsOf(alpha.shape()), &facts)));
    const KafConfig config = ConfigOf(attrs_, kernel_, facts);
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

  KafAttrs attrs_;
  KafKernel kernel_ = KafKernel::kGaussian;
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
