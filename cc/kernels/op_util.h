// TensorFlow-side helpers shared by the tfkaf OpKernels (never seen by nvcc).

#ifndef TFKAF_CC_KERNELS_OP_UTIL_H_
#define TFKAF_CC_KERNELS_OP_UTIL_H_

#include <functional>
#include <string>

#include "cc/kernels/common.h"
#include "cc/rules/verdict.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
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

// Runs fn(begin, end) over [0, units) on TensorFlow's intra-op thread pool.
void ParallelFor(tensorflow::OpKernelContext* context, int64 units,
                 int64 cost_per_unit,
                 const std::function<void(int64, int64)>& fn);

// The op's CUDA stream as an opaque cudaStream_t (nullptr on CPU).
void* GpuStreamOf(tensorflow::OpKernelContext* context);

// Maps a TensorFlow element type to the type the CUDA functors are
// instantiated for (same bits; see common.h).
template <typename T>
struct GpuStorage {
  using type = T;
};
template <>
struct GpuStorage<Eigen::half> {
  using type = HalfBits;
};
template <>
struct GpuStorage<Eigen::bfloat16> {
  using type = BFloat16Bits;
};

template <typename T>
typename GpuStorage<T>::type* GpuPointer(T* pointer) {
  return reinterpret_cast<typename GpuStorage<T>::type*>(pointer);
}
template <typename T>
const typename GpuStorage<T>::type* GpuPointer(const T* pointer) {
  return reinterpret_cast<const typename GpuStorage<T>::type*>(pointer);
}

// Float type used for accumulation: double stays double, others use float.
template <typename T>
struct AccumulatorOf {
  using type = float;
};
template <>
struct AccumulatorOf<double> {
  using type = double;
};

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_OP_UTIL_H_
