// TensorFlow-side helpers shared by the tfkaf OpKernels (never seen by nvcc).

#ifndef TFKAF_CC_KERNELS_OP_UTIL_H_
#define TFKAF_CC_KERNELS_OP_UTIL_H_

#include <functional>
#include <string>

#include "cc/kernels/common.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace tfkaf {

// Checks rank >= 1 and -rank <= axis < rank; fills the [outer, C, inner] view.
absl::Status ChannelLayoutOf(const tensorflow::TensorShape& shape, int axis,
                             ChannelLayout* layout);

// Same axis rule, for shape functions and error messages; `tensor` names the
// tensor whose axis it is.
absl::Status NormalizeAxis(int axis, int rank, int* normalized,
                           const char* tensor = "x");

// The KAF boundary and gamma rule: a positive, finite, normal float (the
// CPU's flush-to-zero mode would turn a subnormal one into 0).
absl::Status CheckKafScale(const char* name, float value);

// The linear-spline grid rule (docs/design.md, section 3): finite x_min < x_max.
// Used by the spline shape functions and kernels alike.
absl::Status CheckSplineGrid(float x_min, float x_max);

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
