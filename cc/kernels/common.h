// Shared by the CPU (.cc) and CUDA (.cu.cc) sides of every tfkaf kernel.
// Includes no TensorFlow header so that nvcc never sees TensorFlow's tree.

#ifndef TFKAF_CC_KERNELS_COMMON_H_
#define TFKAF_CC_KERNELS_COMMON_H_

#include <cstdint>

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

// Device tag for the CUDA functors: the TensorFlow stream as a cudaStream_t.
struct GpuDevice {
  void* stream = nullptr;
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

// Fixed partition of `rows` into chunks for deterministic reductions: chunk
// boundaries depend only on the problem size, never on the thread count, so
// per-chunk partial sums are added in the same order on every run.
struct ReductionChunks {
  int64 count = 1;
  int64 rows_per_chunk = 1;

  // rows: independent units of work; work_per_row: elements in one row;
  // scratch_per_chunk: accumulator entries each chunk needs; the chunk count
  // is capped so that all accumulators together stay under ~64 MiB of floats.
  static ReductionChunks For(int64 rows, int64 work_per_row,
                             int64 scratch_per_chunk) {
    constexpr int64 kMinWorkPerChunk = 1 << 15;
    constexpr int64 kMaxChunks = 64;
    constexpr int64 kMaxScratchEntries = int64{16} << 20;
    ReductionChunks chunks;
    if (rows <= 0) return chunks;
    const int64 work = rows * (work_per_row > 0 ? work_per_row : 1);
    int64 count = work / kMinWorkPerChunk;
    if (count > kMaxChunks) count = kMaxChunks;
    if (scratch_per_chunk > 0 && count * scratch_per_chunk > kMaxScratchEntries)
      count = kMaxScratchEntries / scratch_per_chunk;
    if (count > rows) count = rows;
    if (count < 1) count = 1;
    chunks.rows_per_chunk = (rows + count - 1) / count;
    chunks.count = (rows + chunks.rows_per_chunk - 1) / chunks.rows_per_chunk;
    return chunks;
  }
};

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_COMMON_H_
