// OpKernels of Tfkaf>Kaf, Tfkaf>KafGrad, Tfkaf>Kaf2d and Tfkaf>Kaf2dGrad
// (ops in cc/ops/kaf_ops.cc, functors in kaf_kernels.h): attribute and input
// validation (the rules of cc/rules/kaf_rules.h), output allocation, and
// dispatch to the CPU functors (kaf_cpu.cc) or, when built with CUDA, the GPU
// functors (kaf_kernels.cu.cc).

#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/op_attrs.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/kaf_rules.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace tfkaf {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

// Forward: Kaf (two_d = false) and Kaf2d (two_d = true). Unlike the spline,
// the KAF ops allocate their outputs instead of forwarding an input buffer:
// the CUDA kernels (kaf_kernels.cu.cc) take x, y, dy and dx as __restrict__
// pointers, so an output aliasing an input would be undefined behaviour
// there, and dropping __restrict__ would cost the kernels speed.
template <typename Device, typename T, bool kTwoD>
class KafOp : public OpKernel {
 public:
  explicit KafOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context,
                   ReadKafKernelAttrs(context, kTwoD, &attrs_, &kernel_));
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
    using Functors = functor::KafFunctors<kTwoD>;
    OP_REQUIRES_OK(context,
                   (LaunchForward<Functors::template Forward, Device, T>(
                       context, KafConfigOf(attrs_, kernel_, facts), x, alpha,
                       y)));
  }

 private:
  KafAttrs attrs_;
  KafKernel kernel_ = KafKernel::kGaussian;
};

// Backward: KafGrad and Kaf2dGrad, inputs (dy, x, alpha).
template <typename Device, typename T, bool kTwoD>
class KafGradOp : public OpKernel {
 public:
  explicit KafGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context,
                   ReadKafKernelAttrs(context, kTwoD, &attrs_, &kernel_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& alpha = context->input(2);
    KafFacts facts;
    OP_REQUIRES_OK(context, StatusOf(CheckKafGrad(
                                attrs_, DimsOf(dy.shape()), DimsOf(x.shape()),
                                DimsOf(alpha.shape()), &facts)));
    const KafConfig config = KafConfigOf(attrs_, kernel_, facts);
    Tensor* dx = nullptr;
    Tensor* dalpha = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, alpha.shape(), &dalpha));
    using Functors = functor::KafFunctors<kTwoD>;
    OP_REQUIRES_OK(context,
                   (LaunchBackward<Functors::template Backward, Device, T>(
                       context, config, dy, x, alpha, dx, dalpha)));
  }

 private:
  KafAttrs attrs_;
  KafKernel kernel_ = KafKernel::kGaussian;
};

// boundary, gamma and axis are attributes: no host-memory inputs needed.
#define TFKAF_REGISTER_KAF(DEVICE, FUNCTOR_DEVICE, T)                 \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf")                          \
                              .Device(tensorflow::DEVICE)            \
                              .TypeConstraint<T>("T"),               \
                          KafOp<FUNCTOR_DEVICE, T, false>);          \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>KafGrad")                      \
                              .Device(tensorflow::DEVICE)            \
                              .TypeConstraint<T>("T"),               \
                          KafGradOp<FUNCTOR_DEVICE, T, false>);      \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf2d")                        \
                              .Device(tensorflow::DEVICE)            \
                              .TypeConstraint<T>("T"),               \
                          KafOp<FUNCTOR_DEVICE, T, true>);           \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf2dGrad")                    \
                              .Device(tensorflow::DEVICE)            \
                              .TypeConstraint<T>("T"),               \
                          KafGradOp<FUNCTOR_DEVICE, T, true>);

TFKAF_REGISTER_KERNELS(TFKAF_REGISTER_KAF)
#undef TFKAF_REGISTER_KAF

}  // namespace
}  // namespace tfkaf
