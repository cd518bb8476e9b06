// Shared by the CPU (.cc) and CUDA (.cu.cc) sides of every tfkaf kernel.
// Includes no TensorFlow header so that nvcc never sees TensorFlow's tree.

#ifndef TFKAF_CC_KERNELS_COMMON_H_
#define TFKAF_CC_KERNELS_COMMON_H_

#include <cstdint>
#include <functional>

namespace tfkaf {

using int64 = std::int64_t;

// A tensor seen as [outer, channels, inner] around its channel axis: element
// (o, c, i) sits at flat index (o * channels + c) * inner + i. Channels-last
// inputs have inner == 1; NCHW inputs have outer == N, inner == H * W.
struct ChannelLayout {
  int64 outer = 1;
  int64 channels = 1;
  int64 inner = 1;

  int64 rows() const { return outer * channels; }
  int64 size() const { return outer * channels * inner; }
};

// The devices of the functors (functor::KafForward<Device, T>, ...; see
// kaf_kernels.h, spline_kernels.h), TensorFlow-free. CpuDevice runs
// parallel_for(units, cost_per_unit, fn): fn(begin, end) over [0, units) on
// the op's intra-op thread pool, cost in ~cycles per unit. GpuDevice holds
// the op's stream as an opaque cudaStream_t. op_util.h makes both from an
// OpKernelContext (DeviceOf).
struct CpuDevice {
  std::function<void(int64, int64, const std::function<void(int64, int64)>&)>
      parallel_for;
};
struct GpuDevice {
  void* stream = nullptr;
};

// The type a functor computes and accumulates in: double stays double; every
// other type (float, half, bfloat16 and their raw-bit forms) uses float.
template <typename T>
struct AccumulatorOf {
  using type = float;
};
template <>
struct AccumulatorOf<double> {
  using type = double;
};

// Declares the two functors of one op for one device: Forward(device,
// config, x, param, y) and Backward(device, config, dy, x, param, dx, dparam,
// scratch), both returning nullptr on success, else a static error message
// (a CUDA error string on the GPU). Backward::ScratchSize(config) is the
// number of Acc entries of `scratch` it needs; when 0, scratch may be
// nullptr. Each op's header declares its functors for CpuDevice and GpuDevice
// with this one signature (TFKAF_DECLARE_OP_FUNCTORS); the CPU file and the
// .cu.cc define them.
#define TFKAF_DECLARE_FUNCTORS(Forward, Backward, Config, Device)           \
  template <typename T>                                                     \
  struct Forward<Device, T> {                                               \
    const char* operator()(const Device& device, const Config& config,      \
                           const T* x, const T* param, T* y) const;         \
  };                                                                        \
  template <typename T>                                                     \
  struct Backward<Device, T> {                                              \
    using Acc = typename AccumulatorOf<T>::type;                            \
    static int64 ScratchSize(const Config& config);                         \
    const char* operator()(const Device& device, const Config& config,      \
                           const T* dy, const T* x, const T* param, T* dx,  \
                           T* dparam, Acc* scratch) const;                  \
  };

// 16-bit float storage with the bit layout of Eigen::half / __half and
// Eigen::bfloat16 / __nv_bfloat16. The CUDA side computes in float; the CPU
// side keeps using the Eigen types.
struct HalfBits {
  std::uint16_t bits;
};
struct BFloat16Bits {
  std::uint16_t bits;
};

// M(T) for every value type of the CUDA functors: explicit instantiations.
#define TFKAF_FOR_GPU_TYPES(M) \
  M(float)                     \
  M(double)                    \
  M(HalfBits)                  \
  M(BFloat16Bits)

// Declares an op's functor pair (primary templates) and their
// specialisations for both devices.
#define TFKAF_DECLARE_OP_FUNCTORS(Forward, Backward, Config)    \
  template <typename Device, typename T>                        \
  struct Forward;                                               \
  template <typename Device, typename T>                        \
  struct Backward;                                              \
  TFKAF_DECLARE_FUNCTORS(Forward, Backward, Config, CpuDevice) \
  TFKAF_DECLARE_FUNCTORS(Forward, Backward, Config, GpuDevice)

// Explicit instantiation of the functor pair that TFKAF_DECLARE_FUNCTORS
// declared, for one device and value type (in namespace tfkaf).
#define TFKAF_INSTANTIATE_FUNCTORS(Forward, Backward, Device, T) \
  template struct functor::Forward<Device, T>;                   \
  template struct functor::Backward<Device, T>;

// Fixed partition of `rows` into chunks for deterministic reductions: chunk
// boundaries depend only on the problem size, never on the thread count, so
// per-chunk partial sums are added in the same order on every run.
struct ReductionChunks {
  int64 count = 1;
  int64 rows_per_chunk = 1;

  // rows: independent units of work; work_per_row: their work (elements
  // times a per-element weight); elements_per_row: elements in one row;
  // scratch_per_chunk: accumulator entries each chunk zeroes, fills and has
  // summed. The count is the work over kMinWorkPerChunk, capped at
  // kMaxChunks, so that all accumulators together stay under ~64 MiB of
  // floats, and so that each chunk covers at least kMinElementsPerEntry
  // elements per accumulator entry: zeroing and summing the partial sums
  // then stays a small part of the pass (without it, 256 rows of 1024
  // channels with D = 20 took 64 chunks of [C, D] partials, 20 entries per
  // 4 elements, and the sums cost more than the elements).
  static ReductionChunks For(int64 rows, int64 work_per_row,
                             int64 elements_per_row,
                             int64 scratch_per_chunk) {
    constexpr int64 kMinWorkPerChunk = 1 << 15;
    constexpr int64 kMaxChunks = 64;
    constexpr int64 kMaxScratchEntries = int64{16} << 20;
    constexpr int64 kMinElementsPerEntry = 4;
    ReductionChunks chunks;
    if (rows <= 0) return chunks;
    const int64 work = rows * (work_per_row > 0 ? work_per_row : 1);
    int64 count = work / kMinWorkPerChunk;
    if (count > kMaxChunks) count = kMaxChunks;
    if (scratch_per_chunk > 0) {
      if (count * scratch_per_chunk > kMaxScratchEntries)
        count = kMaxScratchEntries / scratch_per_chunk;
      const int64 elements = rows * (elements_per_row > 0 ? elements_per_row
                                                          : 1);
      const int64 by_elements =
          elements / (kMinElementsPerEntry * scratch_per_chunk);
      if (count > by_elements) count = by_elements;
    }
    if (count > rows) count = rows;
    if (count < 1) count = 1;
    chunks.rows_per_chunk = (rows + count - 1) / count;
    chunks.count = (rows + chunks.rows_per_chunk - 1) / chunks.rows_per_chunk;
    return chunks;
  }
};

// Adds the partial-sum buffers 1 .. count - 1 (`size` entries each, one
// after another at `partials`) into buffer 0, each entry in chunk order,
// block by block: each chunk's block then streams through memory. (KAF
// summed one entry over all chunks before the next, reading `count`
// buffers 80 KB apart at once for D = 20 on 1024 channels: 6.3% of the
// samples of a forward and backward on 4096 x 1024, one thread, avx2;
// 2.9% block by block.)
template <typename Acc>
void SumPartials(const CpuDevice& device, int64 count, int64 size,
                 Acc* partials) {
  constexpr int64 kBlock = 2048;  // entries per unit of work: L1-sized
  if (count <= 1) return;
  const int64 blocks = (size + kBlock - 1) / kBlock;
  device.parallel_for(blocks, kBlock * count, [&](int64 begin, int64 end) {
    for (int64 b = begin; b < end; ++b) {
      const int64 lo = b * kBlock;
      const int64 hi = size < lo + kBlock ? size : lo + kBlock;
      for (int64 chunk = 1; chunk < count; ++chunk) {
        const Acc* part = partials + chunk * size;
        for (int64 m = lo; m < hi; ++m) partials[m] += part[m];
      }
    }
  });
}

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_COMMON_H_
