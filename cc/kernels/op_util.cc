#include "cc/kernels/op_util.h"

#include <functional>
#include <vector>


#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/platform/threadpool.h"
#include "xla/stream_executor/stream.h"

namespace tfkaf {

Dims DimsOf(const tensorflow::TensorShape& shape) {
  Dims dims = Dims::Known({});
  for (int d = 0; d < shape.dims(); ++d) {
    dims.sizes.push_back(shape.dim_size(d));
  }
  return dims;
}

Dims DimsOf(tensorflow::shape_inference::InferenceContext* context,
            tensorflow::shape_inference::ShapeHandle shape) {
  if (!context->RankKnown(shape)) return Dims::UnknownRank();
  Dims dims = Dims::Known({});
  for (int d = 0; d < context->Rank(shape); ++d) {
    auto dim = context->Dim(shape, d);
    dims.sizes.push_back(context->ValueKnown(dim) ? context->Value(dim)
                                                  : kUnknownDim);
  }
  return dims;
}

tensorflow::shape_inference::ShapeHandle ShapeOf(
    tensorflow::shape_inference::InferenceContext* context, const Dims& dims) {
  if (!dims.rank_known) return context->UnknownShape();
  std::vector<tensorflow::shape_inference::DimensionHandle> handles;
  for (int64 size : dims.sizes) {
    handles.push_back(size == kUnknownDim ? context->UnknownDim()
                                          : context->MakeDim(size));
  }
  return context->MakeShape(handles);
}

tensorflow::TensorShape TensorShapeOf(const Dims& dims) {
  tensorflow::TensorShape shape;
  for (int64 size : dims.sizes) shape.AddDim(size);
  return shape;
}

absl::Status StatusOf(const Verdict& verdict) {
  if (verdict.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(verdict.message());
}

CpuDevice CpuDeviceOf(tensorflow::OpKernelContext* context) {
  CpuDevice device;
  device.parallel_for = [context](int64 units, int64 cost_per_unit,
                                  const std::function<void(int64, int64)>& fn) {
    if (units <= 0) return;
    auto* workers =
        context->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(
        units,
        tsl::thread::ThreadPool::SchedulingParams::Adaptive(cost_per_unit),
        fn);
  };
  return device;
}

GpuDevice GpuDeviceOf(tensorflow::OpKernelContext* context) {
  GpuDevice device;
  tensorflow::DeviceContext* device_context = context->op_device_context();
  if (device_context != nullptr && device_context->stream() != nullptr) {
    device.stream = device_context->stream()->platform_specific_handle().stream;
  }
  return device;
}

absl::Status LaunchStatus(tensorflow::OpKernelContext* context,
                          const char* error) {
  if (error == nullptr) return absl::OkStatus();
  return absl::InternalError(
      LaunchFailure(context->op_kernel().type_string(), error));
}

}  // namespace tfkaf
