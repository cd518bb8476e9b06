// XLA kernels of every tfkaf op: each lowers to a typed-FFI custom call
// (custom_calls.h) whose handler runs the fused functors (ffi_handlers.cc).
// The rules of cc/rules run here at compile time, on XLA's static shapes, so
// a bad input fails the compilation with the op's own message.
//
// Registered with REGISTER_KERNEL_BUILDER on the XLA_CPU_JIT (and, built with
// CUDA, XLA_GPU_JIT) devices, not with REGISTER_XLA_OP: TensorFlow turns the
// tf2xla registry into kernels once per process, so REGISTER_XLA_OP would be
// ignored when tfkaf is imported after TensorFlow has run anything. The two
// ways cannot be combined (the kernels would be registered twice).

#include <vector>

#include "cc/kernels/op_attrs.h"
#include "cc/kernels/op_util.h"
#include "cc/xla/custom_calls.h"
#include "tensorflow/compiler/tf2xla/type_util.h"
#include "tensorflow/compiler/tf2xla/xla_op_kernel.h"
#include "tensorflow/compiler/tf2xla/xla_op_registry.h"
#include "tensorflow/core/util/determinism.h"
#include "xla/hlo/builder/xla_builder.h"
#include "xla/shape_util.h"

namespace tfkaf {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::XlaOpKernel;
using ::tensorflow::XlaOpKernelContext;

// The XLA array shape of fully known dims, row-major (the layout the
// functors index).
absl::StatusOr<xla::Shape> ArrayShape(DataType dtype, const Dims& dims) {
  xla::PrimitiveType type;
  TF_RETURN_IF_ERROR(tensorflow::DataTypeToPrimitiveType(dtype, &type));
  return xla::ShapeUtil::MakeShapeWithDescendingLayout(type, dims.sizes);
}

// The scratch buffer of Backward<Device, S> (S the storage type of dtype):
// ScratchSize accumulators of its accumulation type.
template <template <typename, typename> class Backward, typename Device,
          typename T, typename Config>
absl::StatusOr<xla::Shape> ScratchOf(const Config& config) {
  using Functor = Backward<Device, typename StorageOf<Device, T>::type>;
  return ArrayShape(tensorflow::DataTypeToEnum<typename Functor::Acc>::value,
                    Dims::Known({Functor::ScratchSize(config)}));
}

template <template <typename, typename> class Backward, typename Device,
          typename Config>
absl::StatusOr<xla::Shape> ScratchShape(DataType dtype, const Config& config) {
  switch (dtype) {
    case tensorflow::DT_FLOAT:
      return ScratchOf<Backward, Device, float>(config);
    case tensorflow::DT_DOUBLE:
      return ScratchOf<Backward, Device, double>(config);
    case tensorflow::DT_HALF:
      return ScratchOf<Backward, Device, Eigen::half>(config);
    case tensorflow::DT_BFLOAT16:
      return ScratchOf<Backward, Device, Eigen::bfloat16>(config);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("no tfkaf kernel for ", DataTypeString(dtype)));
  }
}

// Emits the custom call `target` over all the op's inputs, returning
// `results` (a tuple when there are several), and sets the op's first
// `num_outputs` outputs from them.
absl::Status EmitCall(XlaOpKernelContext* ctx, const char* target,
                      const std::string& attributes,
                      const std::vector<xla::Shape>& results,
                      int num_outputs) {
  std::vector<xla::XlaOp> operands;
  std::vector<xla::Shape> operand_shapes;
  for (int i = 0; i < ctx->num_inputs(); ++i) {
    operands.push_back(ctx->Input(i));
    TF_ASSIGN_OR_RETURN(xla::Shape shape,
                        ArrayShape(ctx->input_type(i),
                                   DimsOf(ctx->InputShape(i))));
    operand_shapes.push_back(shape);
  }
  const xla::Shape shape = results.size() == 1
                               ? results[0]
                               : xla::ShapeUtil::MakeTupleShape(results);
  xla::XlaOp call = xla::CustomCallWithLayout(
      ctx->builder(), target, operands, shape, operand_shapes, attributes,
      /*has_side_effect=*/false, /*output_operand_aliasing=*/{},
      /*literal=*/nullptr, xla::CustomCallSchedule::SCHEDULE_NONE,
      xla::API_VERSION_TYPED_FFI);
  if (results.size() == 1) {
    ctx->SetOutput(0, call);
  } else {
    for (int i = 0; i < num_outputs; ++i) {
      ctx->SetOutput(i, xla::GetTupleElement(call, i));
    }
  }
  return absl::OkStatus();
}

// The input shapes, for the rules.
Dims InputDims(XlaOpKernelContext* ctx, int i) {
  return DimsOf(ctx->InputShape(i));
}

// A forward call (x, param) -> y, y of the given dims.
absl::Status EmitForward(XlaOpKernelContext* ctx, const char* target,
                         const std::string& attributes, const Dims& y) {
  TF_ASSIGN_OR_RETURN(xla::Shape shape, ArrayShape(ctx->input_type(0), y));
  return EmitCall(ctx, target, attributes, {shape}, 1);
}

// A gradient call (dy, x, param) -> (dx, dparam), plus Backward's scratch.
template <template <typename, typename> class Backward, typename Device,
          typename Config>
absl::Status EmitBackward(XlaOpKernelContext* ctx, const char* target,
                          const std::string& attributes,
                          const Config& config) {
  const DataType dtype = ctx->input_type(1);
  TF_ASSIGN_OR_RETURN(xla::Shape dx, ArrayShape(dtype, InputDims(ctx, 1)));
  TF_ASSIGN_OR_RETURN(xla::Shape dparam,
                      ArrayShape(dtype, InputDims(ctx, 2)));
  TF_ASSIGN_OR_RETURN(xla::Shape scratch,
                      (ScratchShape<Backward, Device>(dtype, config)));
  return EmitCall(ctx, target, attributes, {dx, dparam, scratch}, 2);
}

// What every KAF XLA kernel holds: the attributes, checked once.
template <bool kTwoD>
class KafXlaOpBase : public XlaOpKernel {
 public:
  explicit KafXlaOpBase(OpKernelConstruction* context)
      : XlaOpKernel(context) {
    OP_REQUIRES_OK(context,
                   ReadKafKernelAttrs(context, kTwoD, &attrs_, &kernel_));
  }

 protected:
  KafAttrs attrs_;
  KafKernel kernel_ = KafKernel::kGaussian;
};

// The custom-call targets of Kaf (kTwoD false) or Kaf2d (kTwoD true).
template <bool kTwoD>
struct KafCall {
  static constexpr const char* kForward = xla_call::kKaf;
  static constexpr const char* kBackward = xla_call::kKafGrad;
};
template <>
struct KafCall<true> {
  static constexpr const char* kForward = xla_call::kKaf2d;
  static constexpr const char* kBackward = xla_call::kKaf2dGrad;
};

// Kaf and Kaf2d: (x, alpha) -> y.
template <typename Device, bool kTwoD>
class KafXlaOp : public KafXlaOpBase<kTwoD> {
 public:
  using KafXlaOpBase<kTwoD>::KafXlaOpBase;

  void Compile(XlaOpKernelContext* ctx) override {
    KafFacts facts;
    OP_REQUIRES_OK(ctx, StatusOf(CheckKaf(this->attrs_, InputDims(ctx, 0),
                                          InputDims(ctx, 1), &facts)));
    const KafConfig config = KafConfigOf(this->attrs_, this->kernel_, facts);
    OP_REQUIRES_OK(ctx, EmitForward(ctx, KafCall<kTwoD>::kForward,
                                    xla_call::KafAttributes(config),
                                    facts.y));
  }
};

// KafGrad and Kaf2dGrad: (dy, x, alpha) -> (dx, dalpha).
template <typename Device, bool kTwoD>
class KafGradXlaOp : public KafXlaOpBase<kTwoD> {
 public:
  using KafXlaOpBase<kTwoD>::KafXlaOpBase;

  void Compile(XlaOpKernelContext* ctx) override {
    KafFacts facts;
    OP_REQUIRES_OK(ctx, StatusOf(CheckKafGrad(
                            this->attrs_, InputDims(ctx, 0),
                            InputDims(ctx, 1), InputDims(ctx, 2), &facts)));
    const KafConfig config = KafConfigOf(this->attrs_, this->kernel_, facts);
    using Functors = functor::KafFunctors<kTwoD>;
    OP_REQUIRES_OK(ctx, (EmitBackward<Functors::template Backward, Device>(
                            ctx, KafCall<kTwoD>::kBackward,
                            xla_call::KafAttributes(config), config)));
  }
};

// What both spline XLA kernels hold: the attributes.
class SplineXlaOpBase : public XlaOpKernel {
 public:
  explicit SplineXlaOpBase(OpKernelConstruction* context)
      : XlaOpKernel(context) {
    OP_REQUIRES_OK(context, ReadSplineAttrs(context, &attrs_));
  }

 protected:
  SplineAttrs attrs_;
};

// LinearSpline: (x, coefficients) -> y.
template <typename Device>
class LinearSplineXlaOp : public SplineXlaOpBase {
 public:
  using SplineXlaOpBase::SplineXlaOpBase;

  void Compile(XlaOpKernelContext* ctx) override {
    SplineFacts facts;
    OP_REQUIRES_OK(ctx, StatusOf(CheckSpline(attrs_, InputDims(ctx, 0),
                                             InputDims(ctx, 1), &facts)));
    OP_REQUIRES_OK(ctx, EmitForward(ctx, xla_call::kLinearSpline,
                                    xla_call::SplineAttributes(
                                        SplineParamsOf(attrs_, facts)),
                                    InputDims(ctx, 0)));
  }
};

// LinearSplineGrad: (dy, x, coefficients) -> (dx, dcoefficients).
template <typename Device>
class LinearSplineGradXlaOp : public SplineXlaOpBase {
 public:
  using SplineXlaOpBase::SplineXlaOpBase;

  void Compile(XlaOpKernelContext* ctx) override {
    SplineFacts facts;
    OP_REQUIRES_OK(ctx, StatusOf(CheckSplineGrad(attrs_, InputDims(ctx, 0),
                                                 InputDims(ctx, 1),
                                                 InputDims(ctx, 2), &facts)));
    SplineParams params = SplineParamsOf(attrs_, facts);
    params.deterministic = tensorflow::OpDeterminismRequired();
    OP_REQUIRES_OK(ctx, (EmitBackward<functor::SplineBackward, Device>(
                            ctx, xla_call::kLinearSplineGrad,
                            xla_call::SplineAttributes(params), params)));
  }
};

#define TFKAF_REGISTER_XLA(JIT_DEVICE, FUNCTOR_DEVICE)                    \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf").Device(JIT_DEVICE),           \
                          KafXlaOp<FUNCTOR_DEVICE, false>);               \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>KafGrad").Device(JIT_DEVICE),       \
                          KafGradXlaOp<FUNCTOR_DEVICE, false>);           \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf2d").Device(JIT_DEVICE),         \
                          KafXlaOp<FUNCTOR_DEVICE, true>);                \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>Kaf2dGrad").Device(JIT_DEVICE),     \
                          KafGradXlaOp<FUNCTOR_DEVICE, true>);            \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>LinearSpline").Device(JIT_DEVICE),  \
                          LinearSplineXlaOp<FUNCTOR_DEVICE>);             \
  REGISTER_KERNEL_BUILDER(                                                \
      Name("Tfkaf>LinearSplineGrad").Device(JIT_DEVICE),                  \
      LinearSplineGradXlaOp<FUNCTOR_DEVICE>);

TFKAF_REGISTER_XLA(tensorflow::DEVICE_CPU_XLA_JIT, CpuDevice)
#ifdef TFKAF_WITH_CUDA
TFKAF_REGISTER_XLA(tensorflow::DEVICE_GPU_XLA_JIT, GpuDevice)
#endif
#undef TFKAF_REGISTER_XLA

}  // namespace
}  // namespace tfkaf

// 1 when the plugin registered the XLA kernels and FFI handlers (read by
// tfkaf._xla through ctypes).
extern "C" __attribute__((visibility("default"))) int tfkaf_xla_kernels() {
  return 1;
}
