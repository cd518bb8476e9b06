// Learnable linear spline (DeepSplines): CUDA functors. Compiled by nvcc
// without any TensorFlow header (see common.h); formulas and the NaN/Inf-safe
// index rule in spline_kernels.h.
//
// Forward: one grid-stride elementwise kernel.
// Backward (default): one pass writing dx and accumulating dcoefficients.
//   Each block owns a tile of channels and a range of positions, accumulates
//   its tile's [tile, K] gradient in shared memory (shared atomics), then adds
//   each non-zero entry to the global accumulator with one atomicAdd per
//   (channel, knot) per block. Not bitwise deterministic (float atomics).
// Backward (TensorFlow op determinism enabled): dx elementwise, then one warp
//   per (channel, knot) sums that knot's contributions over every position of
//   the channel in a fixed order, with a fixed shuffle reduction.
//
// All sizes and indices are int64; no thread returns before a __syncthreads.
// y may alias x, and dx may alias dy or x (buffer forwarding): each element is
// read before it is written, by the same thread, so those pointers carry no
// __restrict__.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "cc/kernels/common.h"
#include "cc/kernels/cuda_convert.cu.h"
#include "cc/kernels/cuda_launch.cu.h"
#include "cc/kernels/spline_kernels.h"

namespace tfkaf {
namespace {

using cuda::Blocks;
using cuda::ErrorOf;
using cuda::kMaxBlocks;
using cuda::kSharedBytes;
using cuda::kThreads;
using cuda::LastError;

// Shape and grid constants passed by value to every kernel.
template <typename Acc>
struct DeviceGrid {
  int64 outer;
  int64 channels;
  int64 inner;
  int64 knots;
  Acc x_min;
  Acc scale;

  __device__ __forceinline__ int64 size() const {
    return outer * channels * inner;
  }
  // The coefficient row of flat element e.
  template <typename T>
  __device__ __forceinline__ const T* Row(const T* coefficients,
                                          int64 e) const {
    return coefficients + ((e / inner) % channels) * knots;
  }
  // t = (x - x_min) * scale of a stored x.
  template <typename T>
  __device__ __forceinline__ Acc Position(T x) const {
    return (Cvt<T>::In(x) - x_min) * scale;
  }
  // SplineSegment (spline_kernels.h) of t: i, and u = t - i.
  __device__ __forceinline__ int64 Segment(Acc t, Acc* u) const {
    const int64 last = knots - 2;
    return SplineSegment<Acc>(t, static_cast<Acc>(last), last, u);
  }
};

template <typename Acc>
DeviceGrid<Acc> MakeGrid(const SplineParams& params) {
  DeviceGrid<Acc> grid;
  grid.outer = params.layout.outer;
  grid.channels = params.layout.channels;
  grid.inner = params.layout.inner;
  grid.knots = params.knots;
  grid.x_min = static_cast<Acc>(params.x_min);
  grid.scale = static_cast<Acc>(params.scale);
  return grid;
}

template <typename T, typename Acc>
__global__ void ForwardKernel(const T* x, const T* __restrict__ coefficients,
                              T* y, DeviceGrid<Acc> grid) {
  for (int64 e = blockIdx.x * static_cast<int64>(blockDim.x) + threadIdx.x;
       e < grid.size(); e += static_cast<int64>(blockDim.x) * gridDim.x) {
    const T* row = grid.Row(coefficients, e);
    Acc u;
    const int64 i = grid.Segment(grid.Position(x[e]), &u);
    const Acc c0 = Cvt<T>::In(row[i]);
    const Acc c1 = Cvt<T>::In(row[i + 1]);
    y[e] = Cvt<T>::Out(c0 + u * (c1 - c0));
  }
}

// dx only (the deterministic path computes dcoefficients separately).
template <typename T, typename Acc>
__global__ void InputGradKernel(const T* dy, const T* x,
                                const T* __restrict__ coefficients, T* dx,
                                DeviceGrid<Acc> grid) {
  for (int64 e = blockIdx.x * static_cast<int64>(blockDim.x) + threadIdx.x;
       e < grid.size(); e += static_cast<int64>(blockDim.x) * gridDim.x) {
    const T* row = grid.Row(coefficients, e);
    const Acc t = grid.Position(x[e]);
    Acc u;
    const int64 i = grid.Segment(t, &u);
    const Acc c0 = Cvt<T>::In(row[i]);
    const Acc c1 = Cvt<T>::In(row[i + 1]);
    const Acc g = Cvt<T>::In(dy[e]);
    const Acc slope = t == t ? (c1 - c0) * grid.scale : t;  // NaN x: NaN
    dx[e] = Cvt<T>::Out(g * slope);
  }
}

// Fused backward. Block (bx, by): channels [bx * tile, bx * tile + tile) and
// position chunks by, by + gridDim.y, ... of `chunk` positions each (a
// position is an (outer, inner) pair). kShared: accumulate the tile's
// [tile, K] gradient in shared memory first; else atomics go straight to the
// global accumulator (K too large for shared memory).
template <typename T, typename Acc, bool kShared>
__global__ void BackwardKernel(const T* dy, const T* x,
                               const T* __restrict__ coefficients, T* dx,
                               Acc* __restrict__ accumulator,
                               DeviceGrid<Acc> grid, int64 tile, int64 chunk) {
  extern __shared__ __align__(sizeof(double)) unsigned char shared_raw[];
  const int64 channel0 = blockIdx.x * tile;
  const int64 tile_channels = min(tile, grid.channels - channel0);
  const int64 table = tile_channels * grid.knots;
  Acc* target = kShared ? reinterpret_cast<Acc*>(shared_raw)
                        : accumulator + channel0 * grid.knots;
  if (kShared) {
    for (int64 j = threadIdx.x; j < table; j += blockDim.x) target[j] = Acc(0);
  }
  __syncthreads();

  const int64 positions = grid.outer * grid.inner;
  const int64 chunks = (positions + chunk - 1) / chunk;
  const bool channels_last = grid.inner == 1;
  for (int64 ch = blockIdx.y; ch < chunks; ch += gridDim.y) {
    const int64 p0 = ch * chunk;
    const int64 np = min(chunk, positions - p0);
    const int64 items = tile_channels * np;
    for (int64 w = threadIdx.x; w < items; w += blockDim.x) {
      int64 local;
      int64 e;
      if (channels_last) {  // consecutive threads: consecutive channels
        local = w % tile_channels;
        e = (p0 + w / tile_channels) * grid.channels + channel0 + local;
      } else {  // consecutive threads: consecutive inner positions
        local = w / np;
        const int64 p = p0 + (w - local * np);
        const int64 o = p / grid.inner;
        e = (o * grid.channels + channel0 + local) * grid.inner +
            (p - o * grid.inner);
      }
      const int64 row = (channel0 + local) * grid.knots;
      const Acc t = grid.Position(x[e]);
      Acc u;
      const int64 i = grid.Segment(t, &u);
      const Acc c0 = Cvt<T>::In(coefficients[row + i]);
      const Acc c1 = Cvt<T>::In(coefficients[row + i + 1]);
      const Acc g = Cvt<T>::In(dy[e]);
      const Acc slope = t == t ? (c1 - c0) * grid.scale : t;  // NaN x: NaN
      dx[e] = Cvt<T>::Out(g * slope);  // as on the CPU
      const Acc ug = u * g;
      Acc* a = target + local * grid.knots;
      atomicAdd(a + i, g - ug);
      atomicAdd(a + i + 1, ug);
    }
  }

  __syncthreads();
  if (kShared) {
    Acc* global = accumulator + channel0 * grid.knots;
    for (int64 j = threadIdx.x; j < table; j += blockDim.x) {
      const Acc v = target[j];
      if (v != Acc(0)) atomicAdd(global + j, v);  // NaN != 0 too
    }
  }
}

// Deterministic dcoefficients: warp w handles (channel, knot) = (w / K,
// w % K) and sums over every position of the channel in a fixed order.
template <typename T, typename Acc>
__global__ void CoefficientGradDeterministicKernel(
    const T* dy, const T* x, T* __restrict__ dcoefficients,
    DeviceGrid<Acc> grid) {
  const int lane = threadIdx.x & 31;
  const int64 warp =
      (blockIdx.x * static_cast<int64>(blockDim.x) + threadIdx.x) >> 5;
  const int64 warps = (static_cast<int64>(gridDim.x) * blockDim.x) >> 5;
  const int64 entries = grid.channels * grid.knots;
  const int64 positions = grid.outer * grid.inner;
  for (int64 w = warp; w < entries; w += warps) {  // uniform within a warp
    const int64 channel = w / grid.knots;
    const int64 knot = w - channel * grid.knots;
    Acc sum = Acc(0);
    for (int64 p = lane; p < positions; p += 32) {
      const int64 o = p / grid.inner;
      const int64 e =
          (o * grid.channels + channel) * grid.inner + (p - o * grid.inner);
      Acc u;
      const int64 i = grid.Segment(grid.Position(x[e]), &u);
      if (i == knot || i + 1 == knot) {
        const Acc g = Cvt<T>::In(dy[e]);
        const Acc ug = u * g;
        sum += i == knot ? g - ug : ug;
      }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      sum += __shfl_down_sync(0xffffffffu, sum, offset);
    }
    if (lane == 0) dcoefficients[w] = Cvt<T>::Out(sum);
  }
}

// Deterministic backward: dcoefficients first (one warp per (channel,
// knot)), then dx, which may share its buffer with dy or x.
template <typename T, typename Acc>
const char* DeterministicBackward(cudaStream_t stream,
                                  const DeviceGrid<Acc>& grid, int64 entries,
                                  const T* dy, const T* x,
                                  const T* coefficients, T* dx,
                                  T* dcoefficients) {
  const int64 warps_per_block = kThreads / 32;
  const int64 blocks = std::max<int64>(
      1, std::min((entries + warps_per_block - 1) / warps_per_block,
                  kMaxBlocks));
  CoefficientGradDeterministicKernel<T, Acc><<<blocks, kThreads, 0, stream>>>(
      dy, x, dcoefficients, grid);
  const char* error = LastError();
  if (error != nullptr) return error;
  const int64 size = grid.outer * grid.channels * grid.inner;
  InputGradKernel<T, Acc><<<Blocks(size), kThreads, 0, stream>>>(
      dy, x, coefficients, dx, grid);
  return LastError();
}

// Launch geometry of the fused backward. Channel tile: 32 channels (one
// coalesced row segment) for channels-last inputs, one channel otherwise;
// fewer if [tile, K] does not fit in shared memory, and no shared memory at
// all when one row does not. Positions per chunk: at least 8 items per
// thread, and at least 4 * K so that the per-block flush stays a small
// fraction of the work.
struct FusedGeometry {
  int64 tile = 1;
  int64 chunk = 1;
  bool use_shared = false;
  size_t shared_bytes = 0;
  dim3 blocks;
  const char* error = nullptr;

  FusedGeometry(const SplineParams& params, int64 acc_bytes) {
    const ChannelLayout& layout = params.layout;
    const int64 row_bytes = params.knots * acc_bytes;
    tile = layout.inner == 1 ? std::min<int64>(layout.channels, 32) : 1;
    use_shared = row_bytes <= kSharedBytes;
    if (use_shared) {
      tile = std::max<int64>(1, std::min(tile, kSharedBytes / row_bytes));
      shared_bytes = static_cast<size_t>(tile * row_bytes);
    }
    const int64 tiles = (layout.channels + tile - 1) / tile;
    const int64 positions = layout.outer * layout.inner;
    chunk = std::max<int64>(std::max<int64>(1, (8 * kThreads) / tile),
                            4 * params.knots);
    const int64 chunks = (positions + chunk - 1) / chunk;
    const int64 grid_y = std::max<int64>(
        1, std::min<int64>(chunks, std::max<int64>(1, kMaxBlocks / tiles)));
    if (tiles > 0x7fffffff) error = "too many channels for one CUDA launch";
    blocks = dim3(static_cast<unsigned int>(tiles),
                  static_cast<unsigned int>(std::min<int64>(grid_y, 65535)));
  }
};

}  // namespace

template <typename T>
const char* functor::SplineForward<GpuDevice, T>::operator()(
    const GpuDevice& device, const SplineParams& params, const T* x,
    const T* coefficients, T* y) const {
  using Acc = typename Cvt<T>::A;
  return cuda::LaunchGridStride(device, params.layout.size(),
                                ForwardKernel<T, Acc>, x, coefficients, y,
                                MakeGrid<Acc>(params));
}

template <typename T>
int64 functor::SplineBackward<GpuDevice, T>::ScratchSize(
    const SplineParams& params) {
  if (std::is_same<T, Acc>::value) return 0;  // accumulates in dcoefficients
  return params.layout.channels * params.knots;
}

template <typename T>
const char* functor::SplineBackward<GpuDevice, T>::operator()(
    const GpuDevice& device, const SplineParams& params, const T* dy,
    const T* x, const T* coefficients, T* dx, T* dcoefficients,
    Acc* scratch) const {
  static_assert(std::is_same<Acc, typename Cvt<T>::A>::value,
                "accumulator type mismatch");
  cudaStream_t stream = cuda::StreamOf(device);
  const int64 entries = params.layout.channels * params.knots;
  if (entries == 0) return nullptr;
  if (params.layout.size() == 0) {  // zero bits are 0.0 in every type
    return ErrorOf(
        cudaMemsetAsync(dcoefficients, 0, entries * sizeof(T), stream));
  }
  const DeviceGrid<Acc> grid = MakeGrid<Acc>(params);
  if (params.deterministic) {
    return DeterministicBackward(stream, grid, entries, dy, x, coefficients,
                                 dx, dcoefficients);
  }
  // Without scratch (float, double), T is Acc: accumulate in dcoefficients.
  Acc* accumulator =
      scratch != nullptr ? scratch : reinterpret_cast<Acc*>(dcoefficients);
  const char* error = ErrorOf(
      cudaMemsetAsync(accumulator, 0, entries * sizeof(Acc), stream));
  if (error != nullptr) return error;
  const FusedGeometry geometry(params, sizeof(Acc));
  if (geometry.error != nullptr) return geometry.error;
  if (geometry.use_shared) {
    BackwardKernel<T, Acc, true>
        <<<geometry.blocks, kThreads, geometry.shared_bytes, stream>>>(
            dy, x, coefficients, dx, accumulator, grid, geometry.tile,
            geometry.chunk);
  } else {
    BackwardKernel<T, Acc, false><<<geometry.blocks, kThreads, 0, stream>>>(
        dy, x, coefficients, dx, accumulator, grid, geometry.tile,
        geometry.chunk);
  }
  error = LastError();
  if (error != nullptr) return error;
  if (static_cast<const void*>(accumulator) ==
      static_cast<const void*>(dcoefficients)) {
    return nullptr;
  }
  return cuda::Convert(stream, accumulator, dcoefficients, entries);
}

#define TFKAF_INSTANTIATE(T) \
  TFKAF_INSTANTIATE_FUNCTORS(SplineForward, SplineBackward, GpuDevice, T)

TFKAF_FOR_GPU_TYPES(TFKAF_INSTANTIATE)
#undef TFKAF_INSTANTIATE

}  // namespace tfkaf
