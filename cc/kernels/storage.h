// The element types the functors take on each device: a CPU functor takes
// the Eigen type itself, a CUDA functor the same bits (HalfBits,
// BFloat16Bits; common.h). TensorFlow-free, shared by the OpKernels
// (op_util.h) and the XLA FFI handlers (cc/xla).

#ifndef TFKAF_CC_KERNELS_STORAGE_H_
#define TFKAF_CC_KERNELS_STORAGE_H_

#include "Eigen/Core"
#include "cc/kernels/common.h"

namespace tfkaf {

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

// The element type a Device's functors take for T: T itself on the CPU, the
// same bits as GpuStorage on the GPU; StoragePointer reinterprets.
template <typename Device, typename T>
struct StorageOf {
  using type = T;
};
template <typename T>
struct StorageOf<GpuDevice, T> {
  using type = typename GpuStorage<T>::type;
};

template <typename Device, typename T>
typename StorageOf<Device, T>::type* StoragePointer(T* pointer) {
  return reinterpret_cast<typename StorageOf<Device, T>::type*>(pointer);
}
template <typename Device, typename T>
const typename StorageOf<Device, T>::type* StoragePointer(const T* pointer) {
  return reinterpret_cast<const typename StorageOf<Device, T>::type*>(pointer);
}

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_STORAGE_H_
