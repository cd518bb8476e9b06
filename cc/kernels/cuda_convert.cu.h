// Element type <-> accumulation type on the CUDA side, shared by every
// .cu.cc file. nvcc-only: needs cuda_fp16.h / cuda_bf16.h, no TensorFlow.

#ifndef TFKAF_CC_KERNELS_CUDA_CONVERT_CU_H_
#define TFKAF_CC_KERNELS_CUDA_CONVERT_CU_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cc/kernels/common.h"

namespace tfkaf {

// Cvt<T>::A is the type kernels accumulate in (float for the 16-bit types,
// which are stored as raw bits; see common.h), In widens a stored value and
// Out rounds an accumulator back to nearest-even storage.
template <typename T>
struct Cvt;
template <>
struct Cvt<float> {
  using A = float;
  static __device__ __forceinline__ float In(float v) { return v; }
  static __device__ __forceinline__ float Out(float a) { return a; }
};
template <>
struct Cvt<double> {
  using A = double;
  static __device__ __forceinline__ double In(double v) { return v; }
  static __device__ __forceinline__ double Out(double a) { return a; }
};
template <>
struct Cvt<HalfBits> {
  using A = float;
  static __device__ __forceinline__ float In(HalfBits v) {
    return __half2float(__ushort_as_half(v.bits));
  }
  static __device__ __forceinline__ HalfBits Out(float a) {
    HalfBits h;
    h.bits = __half_as_ushort(__float2half_rn(a));
    return h;
  }
};
template <>
struct Cvt<BFloat16Bits> {
  using A = float;
  static __device__ __forceinline__ float In(BFloat16Bits v) {
    return __bfloat162float(__ushort_as_bfloat16(v.bits));
  }
  static __device__ __forceinline__ BFloat16Bits Out(float a) {
    BFloat16Bits h;
    h.bits = __bfloat16_as_ushort(__float2bfloat16_rn(a));
    return h;
  }
};

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_CUDA_CONVERT_CU_H_
