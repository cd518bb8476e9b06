// Learnable linear spline (DeepSplines): the OpKernels of Tfkaf>LinearSpline
// and Tfkaf>LinearSplineGrad (CPU always; GPU when built with
// TFKAF_WITH_CUDA). The functors live in spline_cpu.cc (CPU) and
// spline_kernels.cu.cc (GPU).
//
// Formulas and the NaN/Inf-safe index rule: spline_kernels.h.

#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif

#include "cc/kernels/spline_kernels.h"

#include "cc/kernels/op_attrs.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/spline_rules.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/determinism.h"

namespace tfkaf {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

class SplineOpBase : public OpKernel {
 public:
  explicit SplineOpBase(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, ReadSplineAttrs(context, &attrs_));
  }

 protected:
  SplineAttrs attrs_;
};

// Tfkaf>LinearSpline: (x, coefficients) -> y.
template <typename Device, typename T>
class LinearSplineOp : public SplineOpBase {
 public:
  using SplineOpBase::SplineOpBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& coefficients = context->input(1);
    SplineFacts facts;
    OP_REQUIRES_OK(context,
                   StatusOf(CheckSpline(attrs_, DimsOf(x.shape()),
                                        DimsOf(coefficients.shape()), &facts)));
    const SplineParams params = SplineParamsOf(attrs_, facts);
    // y may take x's buffer when nothing else holds it: every element is
    // read before it is written, by the same thread.
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output(
                                {0}, 0, x.shape(), &y));
    if (x.NumElements() == 0) return;
    OP_REQUIRES_OK(context, (LaunchForward<functor::SplineForward, Device, T>(
                                context, params, x, coefficients, y)));
  }
};

// Tfkaf>LinearSplineGrad: (dy, x, coefficients) -> (dx, dcoefficients).
template <typename Device, typename T>
class LinearSplineGradOp : public SplineOpBase {
 public:
  using SplineOpBase::SplineOpBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& coefficients = context->input(2);
    SplineFacts facts;
    OP_REQUIRES_OK(context, StatusOf(CheckSplineGrad(
                                attrs_, DimsOf(dy.shape()), DimsOf(x.shape()),
                                DimsOf(coefficients.shape()), &facts)));
    SplineParams params = SplineParamsOf(attrs_, facts);
    params.deterministic = tensorflow::OpDeterminismRequired();
    // dx may take dy's (or x's) buffer, as ReluGrad does: each element of dy
    // and x is read before dx is written there, by the same thread (on the
    // GPU's deterministic path dcoefficients is computed before dx).
    Tensor* dx = nullptr;
    Tensor* dcoefficients = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output(
                                {0, 1}, 0, x.shape(), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(
                                1, coefficients.shape(), &dcoefficients));
    if (dcoefficients->NumElements() == 0) return;
    OP_REQUIRES_OK(context,
                   (LaunchBackward<functor::SplineBackward, Device, T>(
                       context, params, dy, x, coefficients, dx,
                       dcoefficients)));
  }
};

#define TFKAF_REGISTER_SPLINE(DEVICE, FUNCTOR_DEVICE, T)      \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>LinearSpline")              \
                              .Device(tensorflow::DEVICE)         \
                              .TypeConstraint<T>("T"),            \
                          LinearSplineOp<FUNCTOR_DEVICE, T>);     \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>LinearSplineGrad")          \
                              .Device(tensorflow::DEVICE)         \
                              .TypeConstraint<T>("T"),            \
                          LinearSplineGradOp<FUNCTOR_DEVICE, T>);

TFKAF_REGISTER_KERNELS(TFKAF_REGISTER_SPLINE)
#undef TFKAF_REGISTER_SPLINE

}  // namespace
}  // namespace tfkaf
