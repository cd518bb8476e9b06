// TensorFlow-side helpers shared by the tfkaf OpKernels (never seen by nvcc).

#ifndef TFKAF_CC_KERNELS_OP_UTIL_H_
#define TFKAF_CC_KERNELS_OP_UTIL_H_

#include <string>

#include "cc/kernels/common.h"
#include "cc/kernels/storage.h"
#include "cc/rules/verdict.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace tfkaf {

// Shapes for the TensorFlow-free rules (cc/rules): a kernel's real shape, a
// shape function's partial one, and back.
Dims DimsOf(const tensorflow::TensorShape& shape);
Dims DimsOf(tensorflow::shape_inference::InferenceContext* context,
            tensorflow::shape_inference::ShapeHandle shape);
tensorflow::shape_inference::ShapeHandle ShapeOf(
    tensorflow::shape_inference::InferenceContext* context, const Dims& dims);
tensorflow::TensorShape TensorShapeOf(const Dims& dims);  // fully known dims

// A rule's verdict as a Status: OK, or InvalidArgument with its message.
absl::Status StatusOf(const Verdict& verdict);

// The functor devices (common.h) of an OpKernel: the intra-op thread pool,
// or the op's CUDA stream (nullptr on CPU).
CpuDevice CpuDeviceOf(tensorflow::OpKernelContext* context);
GpuDevice GpuDeviceOf(tensorflow::OpKernelContext* context);

template <typename Device>
Device DeviceOf(tensorflow::OpKernelContext* context);
template <>
inline CpuDevice DeviceOf<CpuDevice>(tensorflow::OpKernelContext* context) {
  return CpuDeviceOf(context);
}
template <>
inline GpuDevice DeviceOf<GpuDevice>(tensorflow::OpKernelContext* context) {
  return GpuDeviceOf(context);
}

// A functor's error (nullptr: none) as a Status:
// "<op type> kernel launch failed: <error>".
absl::Status LaunchStatus(tensorflow::OpKernelContext* context,
                          const char* error);

// A tensor's elements as the storage type of Device's functors.
template <typename Device, typename T>
const typename StorageOf<Device, T>::type* DataOf(
    const tensorflow::Tensor& tensor) {
  return StoragePointer<Device>(tensor.flat<T>().data());
}
template <typename Device, typename T>
typename StorageOf<Device, T>::type* DataOf(tensorflow::Tensor* tensor) {
  return StoragePointer<Device>(tensor->flat<T>().data());
}

// The one launch path of every op: Forward<Device, S> / Backward<Device, S>
// (TFKAF_DECLARE_FUNCTORS, common.h; S the storage type of T) on the
// context's device, the backward's scratch from allocate_temp, the functor's
// error as LaunchStatus.
template <template <typename, typename> class Forward, typename Device,
          typename T, typename Config>
absl::Status LaunchForward(tensorflow::OpKernelContext* context,
                           const Config& config, const tensorflow::Tensor& x,
                           const tensorflow::Tensor& param,
                           tensorflow::Tensor* y) {
  using S = typename StorageOf<Device, T>::type;
  return LaunchStatus(
      context, Forward<Device, S>()(DeviceOf<Device>(context), config,
                                    DataOf<Device, T>(x),
                                    DataOf<Device, T>(param),
                                    DataOf<Device, T>(y)));
}

template <template <typename, typename> class Backward, typename Device,
          typename T, typename Config>
absl::Status LaunchBackward(tensorflow::OpKernelContext* context,
                            const Config& config, const tensorflow::Tensor& dy,
                            const tensorflow::Tensor& x,
                            const tensorflow::Tensor& param,
                            tensorflow::Tensor* dx,
                            tensorflow::Tensor* dparam) {
  using Functor = Backward<Device, typename StorageOf<Device, T>::type>;
  using Acc = typename Functor::Acc;
  const int64 scratch_size = Functor::ScratchSize(config);
  tensorflow::Tensor scratch;
  Acc* scratch_data = nullptr;
  if (scratch_size > 0) {
    TF_RETURN_IF_ERROR(context->allocate_temp(
        tensorflow::DataTypeToEnum<Acc>::value,
        tensorflow::TensorShape({scratch_size}), &scratch));
    scratch_data = scratch.flat<Acc>().data();
  }
  return LaunchStatus(
      context, Functor()(DeviceOf<Device>(context), config,
                         DataOf<Device, T>(dy), DataOf<Device, T>(x),
                         DataOf<Device, T>(param), DataOf<Device, T>(dx),
                         DataOf<Device, T>(dparam), scratch_data));
}

}  // namespace tfkaf

// Registers an op's OpKernels for every element type on the CPU and, when
// built with CUDA, the GPU: REGISTER(DEVICE, FUNCTOR_DEVICE, T) with DEVICE
// the tensorflow:: device name and FUNCTOR_DEVICE CpuDevice or GpuDevice.
#define TFKAF_REGISTER_ON(DEVICE, FUNCTOR_DEVICE, REGISTER) \
  REGISTER(DEVICE, FUNCTOR_DEVICE, float)                   \
  REGISTER(DEVICE, FUNCTOR_DEVICE, double)                  \
  REGISTER(DEVICE, FUNCTOR_DEVICE, Eigen::half)             \
  REGISTER(DEVICE, FUNCTOR_DEVICE, Eigen::bfloat16)
#ifdef TFKAF_WITH_CUDA
#define TFKAF_REGISTER_KERNELS(REGISTER)                \
  TFKAF_REGISTER_ON(DEVICE_CPU, CpuDevice, REGISTER) \
  TFKAF_REGISTER_ON(DEVICE_GPU, GpuDevice, REGISTER)
#else
#define TFKAF_REGISTER_KERNELS(REGISTER) \
  TFKAF_REGISTER_ON(DEVICE_CPU, CpuDevice, REGISTER)
#endif

#endif  // TFKAF_CC_KERNELS_OP_UTIL_H_
