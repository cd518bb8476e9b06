#include "cc/kernels/op_util.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/device_base.h"
#include "tensorflow/core/platform/threadpool.h"
#include "xla/stream_executor/stream.h"

namespace tfkaf {

absl::Status NormalizeAxis(int axis, int rank, int* normalized,
                           const char* tensor) {
  if (rank < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, " must have rank >= 1 (a channel axis is needed), "
                     "got rank ", rank));
  }
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for ", tensor,
                     " of rank ", rank,
                     " (expected ", -rank, " <= axis < ", rank, ")"));
  }
  *normalized = axis < 0 ? axis + rank : axis;
  return absl::OkStatus();
}

absl::Status ChannelLayoutOf(const tensorflow::TensorShape& shape, int axis,
                             ChannelLayout* layout) {
  int channel_axis = 0;
  absl::Status status = NormalizeAxis(axis, shape.dims(), &channel_axis);
  if (!status.ok()) return status;
  ChannelLayout result;
  for (int d = 0; d < channel_axis; ++d) result.outer *= shape.dim_size(d);
  result.channels = shape.dim_size(channel_axis);
  for (int d = channel_axis + 1; d < shape.dims(); ++d) {
    result.inner *= shape.dim_size(d);
  }
  *layout = result;
  return absl::OkStatus();
}

absl::Status CheckKafScale(const char* name, float value) {
  constexpr float kSmallestNormal = std::numeric_limits<float>::min();
  if (!(std::isfinite(value) && value >= kSmallestNormal)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be a positive finite number of at least ",
        kSmallestNormal, " (the smallest normal float32), got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckSplineGrid(float x_min, float x_max) {
  if (!std::isfinite(x_min) || !std::isfinite(x_max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("x_min and x_max must be finite, got x_min = ", x_min,
                     " and x_max = ", x_max));
  }
  if (!(x_min < x_max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("x_min must be less than x_max, got x_min = ", x_min,
                     " and x_max = ", x_max));
  }
  return absl::OkStatus();
}

void ParallelFor(tensorflow::OpKernelContext* context, int64 units,
                 int64 cost_per_unit,
                 const std::function<void(int64, int64)>& fn) {
  if (units <= 0) return;
  auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
  workers->ParallelFor(
      units, tsl::thread::ThreadPool::SchedulingParams::Adaptive(cost_per_unit),
      fn);
}

void* GpuStreamOf(tensorflow::OpKernelContext* context) {
  tensorflow::DeviceContext* device_context = context->op_device_context();
  if (device_context == nullptr || device_context->stream() == nullptr) {
    return nullptr;
  }
  return device_context->stream()->platform_specific_handle().stream;
}

}  // namespace tfkaf
