// Launch helpers shared by every .cu.cc file: the block size, the grid of a
// grid-stride loop, the last launch error, and the accumulator -> storage
// conversion kernel. nvcc-only, no TensorFlow.

#ifndef TFKAF_CC_KERNELS_CUDA_LAUNCH_CU_H_
#define TFKAF_CC_KERNELS_CUDA_LAUNCH_CU_H_

#include <cuda_runtime.h>

#include "cc/kernels/common.h"
#include "cc/kernels/cuda_convert.cu.h"

namespace tfkaf {
namespace cuda {

constexpr int kThreads = 256;              // threads per block
constexpr int64 kMaxBlocks = 1 << 16;      // blocks of a grid-stride loop
constexpr int64 kSharedBytes = 48 * 1024;  // shared memory without opt-in

// Blocks for a grid-stride loop over n items: one item per thread, capped.
inline int Blocks(int64 n) {
  int64 blocks = (n + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<int>(blocks < 1 ? 1 : blocks);
}

// nullptr, or the static message of the last launch's error.
inline const char* LastError() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

// nullptr, or the static message of `status`.
inline const char* ErrorOf(cudaError_t status) {
  return status == cudaSuccess ? nullptr : cudaGetErrorString(status);
}

// The device's stream.
inline cudaStream_t StreamOf(const GpuDevice& device) {
  return static_cast<cudaStream_t>(device.stream);
}

// Launches kernel(args...) for a grid-stride loop over `size` items on the
// device's stream (nothing for size 0) and returns its error.
template <typename... Params, typename... Args>
const char* LaunchGridStride(const GpuDevice& device, int64 size,
                             void (*kernel)(Params...), Args... args) {
  if (size == 0) return nullptr;
  kernel<<<Blocks(size), kThreads, 0, StreamOf(device)>>>(args...);
  return LastError();
}

// to[j] = from[j] rounded to the storage type T, j < n.
template <typename T, typename A>
__global__ void ConvertKernel(const A* __restrict__ from, T* __restrict__ to,
                              int64 n) {
  for (int64 j = int64(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += int64(gridDim.x) * blockDim.x) {
    to[j] = Cvt<T>::Out(from[j]);
  }
}

// Converts n accumulators to T on `stream` (nothing for n == 0).
template <typename T, typename A>
const char* Convert(cudaStream_t stream, const A* from, T* to, int64 n) {
  if (n > 0) {
    ConvertKernel<T, A><<<Blocks(n), kThreads, 0, stream>>>(from, to, n);
  }
  return LastError();
}

}  // namespace cuda
}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_CUDA_LAUNCH_CU_H_
