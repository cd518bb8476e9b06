// CPU functors of the learnable linear spline (declared in
// spline_kernels.h; the OpKernels live in spline_kernels.cc).
//
// Formulas and the NaN/Inf-safe index rule: spline_kernels.h.
//
// Work runs on TensorFlow's intra-op pool in flat element ranges, cut at row
// ends (RowView, ForEachRun). Float inputs go through the vector loops of
// the selected CPU path (spline_cpu_simd.h, compiled per path by
// cpu_paths.h, chosen by SplineLoopsFor), then the scalar loop finishes each
// run; every path is bitwise identical to the scalar loop.
//
// Backward: one pass over (dy, x) writes dx and accumulates the coefficient
// gradient into per-chunk partial buffers ([C, K] pairs, see BackwardRun).
// The chunks are a fixed partition of the elements that depends only on the
// problem size (ReductionChunks), and the partials are summed in chunk
// order, so dcoefficients is bitwise identical from run to run whatever the
// number of threads. Within a chunk, channels-last rows go in column
// blocks whose tables stay in L1 (ForEachColumnTile, TileChannels); each
// table entry still sums its elements in row order, so the blocks change
// no bit of the result.

// GCC 12's AVX-512 intrinsics start from an intentionally undefined vector
// (_mm512_undefined_*), which -Wmaybe-uninitialized reports wherever they
// are inlined; the warning is located in this header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "cc/kernels/cpu_types.h"
#include "cc/kernels/common.h"
#include "cc/kernels/cpu_features.h"
#include "cc/kernels/cpu_tile.h"
#include "cc/kernels/spline_kernels.h"

namespace tfkaf {
namespace {

// Constants of one call, in the accumulation type.
template <typename Acc>
struct Grid {
  explicit Grid(const SplineParams& params)
      : x_min(static_cast<Acc>(params.x_min)),
        scale(static_cast<Acc>(params.scale)),
        last_f(static_cast<Acc>(params.knots - 2)),
        last(params.knots - 2),
        knots(params.knots) {}
  Acc x_min;
  Acc scale;
  Acc last_f;
  int64 last;
  int64 knots;
};

}  // namespace
}  // namespace tfkaf

// The vector loops, once per CPU path (they compile in seconds, so the three
// copies share this file).
#define TFKAF_CPU_KERNELS "cc/kernels/spline_cpu_simd.h"
#define TFKAF_CPU_PATH_BASELINE
#include "cc/kernels/cpu_paths.h"
#define TFKAF_CPU_KERNELS "cc/kernels/spline_cpu_simd.h"
#define TFKAF_CPU_PATH_AVX2
#include "cc/kernels/cpu_paths.h"  // NOLINT(build/include)
#define TFKAF_CPU_KERNELS "cc/kernels/spline_cpu_simd.h"
#define TFKAF_CPU_PATH_AVX512
#include "cc/kernels/cpu_paths.h"  // NOLINT(build/include)

namespace tfkaf {
namespace {

// The coefficients as Acc: the tensor itself for float and double, a
// converted copy ([C, K], small) for half and bfloat16.
template <typename T, typename Acc>
class CoefficientTable {
 public:
  CoefficientTable(const T* coefficients, int64 count) {
    if constexpr (std::is_same<T, Acc>::value) {
      data_ = coefficients;
    } else {
      copy_.resize(count);
      for (int64 j = 0; j < count; ++j) {
        copy_[j] = static_cast<Acc>(coefficients[j]);
      }
      data_ = copy_.data();
    }
  }
  const Acc* data() const { return data_; }

 private:
  const Acc* data_ = nullptr;
  std::vector<Acc> copy_;
};

// The vector loops of this call: the selected CPU path's (cpu_features.h),
// or none (`vector` false: the scalar loops do everything) where their int32
// indices cannot address the coefficients (channels * K >= 2^31) or K - 2
// is not exact in float (K > 2^24).
struct SplineLoops {
  CpuPath path;
  bool vector;
};

SplineLoops SplineLoopsFor(const SplineParams& params) {
  const bool fits = params.knots <= (int64{1} << 24) &&
                    params.layout.channels * params.knots < (int64{1} << 31);
  return {SelectedCpuPath(), fits};
}

// y[j] = f(x[j]) for n elements of one channel row (stride 1 in x and y;
// `channel_stride` between the coefficient rows of consecutive elements: K
// for channels-last rows, 0 for a run of one channel).
template <typename T, typename Acc>
inline void ForwardRun(const Grid<Acc>& grid, const T* x, const Acc* coeff,
                       int64 channel_stride, int64 n, T* y) {
  for (int64 j = 0; j < n; ++j) {
    const Acc* c = coeff + j * channel_stride;
    Acc u;
    const int64 i = SplineSegment<Acc>(
        (static_cast<Acc>(x[j]) - grid.x_min) * grid.scale, grid.last_f,
        grid.last, &u);
    const Acc c0 = c[i];
    const Acc c1 = c[i + 1];
    y[j] = static_cast<T>(c0 + u * (c1 - c0));
  }
}

// dx and the coefficient-gradient contributions of n elements. `slopes`
// holds (c[k+1] - c[k]) * scale (computed once per call), so dx needs one
// lookup per element. `acc` is the chunk's partial buffer in segment-pair
// layout, offset like `slopes` times 2: acc[2 s] sums (1 - u) g and
// acc[2 s + 1] sums u g over the elements in segment s (adjacent, so one
// element updates one 8-byte pair); the final reduction forms
// dcoefficients[k] = acc[2 k] + acc[2 (k - 1) + 1].
template <typename T, typename Acc>
inline void BackwardRun(const Grid<Acc>& grid, const T* dy, const T* x,
                        const Acc* slopes, Acc* acc, int64 channel_stride,
                        int64 n, T* dx) {
  for (int64 j = 0; j < n; ++j) {
    const Acc* d = slopes + j * channel_stride;
    Acc* a = acc + 2 * j * channel_stride;
    const Acc g = static_cast<Acc>(dy[j]);
    const Acc t = (static_cast<Acc>(x[j]) - grid.x_min) * grid.scale;
    Acc u;
    const int64 i = SplineSegment<Acc>(t, grid.last_f, grid.last, &u);
    // t is NaN only for a NaN x: NaN in, NaN dx (not the clamped slope).
    const Acc slope = t == t ? d[i] : t;
    dx[j] = static_cast<T>(g * slope);
    const Acc ug = u * g;
    a[2 * i] += g - ug;
    a[2 * i + 1] += ug;
  }
}

// A piece of the [outer, C, inner] view: `tile` from flat element `offset`
// on. Its first element's coefficient row starts at `table_offset`, each
// next element's `channel_stride` coefficients on (K channels-last, 0
// within one channel's run); every row of the tile uses the same rows.
struct Piece {
  int64 offset;
  int64 table_offset;
  int64 channel_stride;
  Tile tile;
};

// The path's vector loop where it applies (float), then the scalar loop,
// for one row (the forward's pieces are one-row runs).
template <typename T, typename Acc>
inline void Forward(const SplineLoops& loops, const Grid<Acc>& grid,
                    const Piece& p, const T* x, const Acc* coeff, T* y) {
  const int64 n = p.tile.len;
  const int64 cs = p.channel_stride;
  x += p.offset;
  y += p.offset;
  coeff += p.table_offset;
  int64 done = 0;
  if constexpr (std::is_same<T, float>::value) {
    if (loops.vector) {
      done = TFKAF_CPU_DISPATCH(loops.path,
                                ForwardVector(grid, x, coeff, cs, n, y));
    }
  }
  ForwardRun<T, Acc>(grid, x + done, coeff + done * cs, cs, n - done,
                     y + done);
}

// The path's vector loop where it applies (float) over the tile's rows,
// then the scalar loop on each row's other elements (in column tiles, the
// fewer than 8 left of a block). Each channel's elements still add into
// `acc` in row order.
template <typename T, typename Acc>
inline void Backward(const SplineLoops& loops, const Grid<Acc>& grid,
                     const Piece& p, const T* dy, const T* x,
                     const Acc* slopes, Acc* acc, T* dx) {
  const Tile& t = p.tile;
  const int64 cs = p.channel_stride;
  dy += p.offset;
  x += p.offset;
  dx += p.offset;
  slopes += p.table_offset;
  acc += 2 * p.table_offset;
  int64 done = 0;
  if constexpr (std::is_same<T, float>::value) {
    if (loops.vector) {
      done = TFKAF_CPU_DISPATCH(
          loops.path, BackwardVector(grid, t, dy, x, slopes, acc, cs, dx));
    }
  }
  if (done == t.len) return;
  for (int64 r = 0; r < t.rows; ++r) {
    const int64 at = r * t.stride + done;
    BackwardRun<T, Acc>(grid, dy + at, x + at, slopes + done * cs,
                        acc + 2 * done * cs, cs, t.len - done, dx + at);
  }
}

// The [outer, C, inner] view as rows: channels-last (inner == 1) rows are
// the `outer` rows of C elements, one per channel; otherwise a row is the
// inner-contiguous run of one (outer, channel) pair. Work is split in flat
// element ranges, which ForEachRun cuts at row ends.
struct RowView {
  explicit RowView(const ChannelLayout& layout)
      : channels_last(layout.inner == 1),
        row_length(layout.inner == 1 ? layout.channels : layout.inner),
        channels(layout.channels),
        size(layout.size()) {}
  bool channels_last;
  int64 row_length;
  int64 channels;
  int64 size;
};

// fn(piece) for each run of flat elements [offset, offset + n) inside one
// row, covering [begin, end), as one-row pieces.
template <typename Fn>
inline void ForEachRun(const RowView& view, int64 knots, int64 begin,
                       int64 end, Fn fn) {
  int64 e = begin;
  while (e < end) {
    const int64 row = e / view.row_length;
    const int64 column = e - row * view.row_length;
    const int64 n = std::min(end - e, view.row_length - column);
    const Tile one_row{1, view.row_length, n};
    if (view.channels_last) {
      fn(Piece{e, column * knots, knots, one_row});
    } else {
      fn(Piece{e, (row % view.channels) * knots, 0, one_row});
    }
    e += n;
  }
}

// Channels in one column block of the backward's channels-last tiles
// (ForEachColumnTile), from the tables that each element reads or updates
// at a data-dependent segment: K slopes and 2 K segment sums a channel.
// - Where 64 channels or more have their tables in 5/6 of the L1 data
//   cache: as many as fit (a multiple of 16), so that a block's tables
//   stay in L1 across the tile's rows.
// - Else, where the whole rows' tables overflow L2: 64 (from L2, not L3).
// - Else whole rows (`channels`).
// Blocks under 64 channels read rows in pieces under 256 bytes, 4 KB
// apart, and ran slower than whole rows. On an Intel Xeon with AVX-512
// (48 KB L1, 2 MB L2; [4096, 1024], 2 threads, ms), whole rows against
// blocks: K = 21 4.2-4.5 / 3.2-3.6 (blocks of 160), K = 51 5.0-5.2 /
// 3.8-5.0 (64), K = 101 5.3-5.6 / 5.0-5.6 (64; whole rows kept), K = 201
// 9.1-9.8 / 4.9-5.9 (64). Only for the vector loops (float, avx2 and
// avx512 paths): the scalar loop is not bound by the tables, and double
// (K = 51) went from 13 to 16 ms in blocks.
template <typename T, typename Acc>
int64 TileChannels(const SplineLoops& loops, int64 knots, int64 channels) {
  constexpr int64 kMinChannels = 64;
  if (!std::is_same<T, float>::value || !loops.vector ||
      loops.path == CpuPath::kBaseline) {
    return channels;
  }
  const CpuCaches& caches = CpuCacheSizes();
  const int64 per_channel = 3 * knots * int64{sizeof(Acc)};
  const int64 fit = caches.l1_data * 5 / 6 / per_channel;
  if (fit >= kMinChannels) return fit / 16 * 16;
  if (channels * per_channel > caches.l2) return kMinChannels;
  return channels;
}

// fn(piece) over [begin, end) as ForEachRun, but channels-last ranges go
// column block by column block (`width` channels), each block as tiles of
// its rows: the first and last row (which may be partial) on their own,
// the full rows between as one tile. Each channel still sees its
// elements in row order, so sums per table entry add in ForEachRun's
// order.
template <typename Fn>
inline void ForEachColumnTile(const RowView& view, int64 knots, int64 width,
                              int64 begin, int64 end, Fn fn) {
  if (!view.channels_last || width >= view.row_length || begin >= end) {
    ForEachRun(view, knots, begin, end, fn);
    return;
  }
  const int64 C = view.row_length;
  const int64 first = begin / C;
  const int64 last = (end - 1) / C;
  auto one_row = [&](int64 row, int64 c0, int64 c1) {
    const int64 lo = std::max(row * C + c0, begin);
    const int64 hi = std::min(row * C + c1, end);
    if (lo < hi) fn(Piece{lo, (lo - row * C) * knots, knots, {1, C, hi - lo}});
  };
  for (int64 c0 = 0; c0 < C; c0 += width) {
    const int64 c1 = std::min(C, c0 + width);
    one_row(first, c0, c1);
    if (last - first > 1) {
      fn(Piece{(first + 1) * C + c0, c0 * knots, knots,
               {last - first - 1, C, c1 - c0}});
    }
    if (last > first) one_row(last, c0, c1);
  }
}

constexpr int64 kCyclesPerElement = 12;
constexpr int64 kForwardBlock = 4096;  // elements per forward work unit

// Fixed partition of the flat elements for the backward's reduction
// (ReductionChunks' size-only rule: never depends on the thread count).
ReductionChunks BackwardChunks(const SplineParams& params) {
  const int64 pair_size = 2 * params.layout.channels * params.knots;
  return ReductionChunks::For(params.layout.size(), 1, 1, pair_size);
}

// slopes[c, k] = (c[k+1] - c[k]) * scale (last column 0, unused).
template <typename T, typename Acc>
void ComputeSlopes(const CpuDevice& device, const SplineParams& params,
                   const Grid<Acc>& grid, const T* coefficients,
                   Acc* slopes) {
  const int64 knots = params.knots;
  device.parallel_for(
      params.layout.channels, knots * 4, [&](int64 begin, int64 end) {
        for (int64 c = begin; c < end; ++c) {
          const T* row = coefficients + c * knots;
          Acc* slope = slopes + c * knots;
          for (int64 k = 0; k + 1 < knots; ++k) {
            slope[k] = (static_cast<Acc>(row[k + 1]) -
                        static_cast<Acc>(row[k])) *
                       grid.scale;
          }
          slope[knots - 1] = Acc(0);
        }
      });
}

// Pass over (dy, x): dx, and each chunk's segment-pair partial sums
// (chunks.count buffers of pair_size entries at `partials`).
template <typename T, typename Acc>
void AccumulateChunks(const CpuDevice& device, const SplineParams& params,
                      const ReductionChunks& chunks, const T* dy, const T* x,
                      const Acc* slopes, T* dx, Acc* partials) {
  const Grid<Acc> grid(params);
  const RowView view(params.layout);
  const SplineLoops loops = SplineLoopsFor(params);
  const int64 knots = params.knots;
  const int64 pair_size = 2 * params.layout.channels * knots;
  const int64 width = TileChannels<T, Acc>(loops, knots, view.row_length);
  device.parallel_for(
      chunks.count, chunks.rows_per_chunk * 2 * kCyclesPerElement,
      [&](int64 begin, int64 end) {
        for (int64 chunk = begin; chunk < end; ++chunk) {
          Acc* acc = partials + chunk * pair_size;
          std::fill(acc, acc + pair_size, Acc(0));
          const int64 first = chunk * chunks.rows_per_chunk;
          const int64 last = std::min(view.size, first + chunks.rows_per_chunk);
          ForEachColumnTile(view, knots, width, first, last,
                            [&](const Piece& piece) {
                              Backward<T, Acc>(loops, grid, piece, dy, x,
                                               slopes, acc, dx);
                            });
        }
      });
}

// dcoefficients[c, k] = P[c, k].first + P[c, k-1].second from the summed
// segment pairs P.
template <typename T, typename Acc>
void PairsToCoefficients(const CpuDevice& device,
                         const SplineParams& params, const Acc* sum,
                         T* dcoefficients) {
  const int64 knots = params.knots;
  device.parallel_for(
      params.layout.channels, knots * 4, [&](int64 begin, int64 end) {
        for (int64 c = begin; c < end; ++c) {
          const Acc* p = sum + 2 * c * knots;
          T* out = dcoefficients + c * knots;
          out[0] = static_cast<T>(p[0]);
          for (int64 k = 1; k < knots; ++k) {
            out[k] = static_cast<T>(p[2 * k] + p[2 * k - 1]);
          }
        }
      });
}

}  // namespace

template <typename T>
int64 functor::SplineBackward<CpuDevice, T>::ScratchSize(
    const SplineParams& params) {
  const int64 table_size = params.layout.channels * params.knots;
  if (table_size == 0 || params.layout.size() == 0) return 0;
  return table_size + BackwardChunks(params).count * 2 * table_size;
}

template <typename T>
const char* functor::SplineForward<CpuDevice, T>::operator()(
    const CpuDevice& device, const SplineParams& params, const T* x,
    const T* coefficients, T* y) const {
  using Acc = typename AccumulatorOf<T>::type;
  const ChannelLayout& layout = params.layout;
  if (layout.size() == 0) return nullptr;
  const int64 knots = params.knots;
  const CoefficientTable<T, Acc> table(coefficients, layout.channels * knots);
  const Grid<Acc> grid(params);
  const RowView view(layout);
  const Acc* coeff = table.data();
  const SplineLoops loops = SplineLoopsFor(params);
  const int64 blocks = (view.size + kForwardBlock - 1) / kForwardBlock;
  device.parallel_for(
      blocks, kForwardBlock * kCyclesPerElement, [&](int64 begin, int64 end) {
        ForEachRun(view, knots, begin * kForwardBlock,
                   std::min(view.size, end * kForwardBlock),
                   [&](const Piece& piece) {
                     Forward<T, Acc>(loops, grid, piece, x, coeff, y);
                   });
      });
  return nullptr;
}

template <typename T>
const char* functor::SplineBackward<CpuDevice, T>::operator()(
    const CpuDevice& device, const SplineParams& params, const T* dy,
    const T* x, const T* coefficients, T* dx, T* dcoefficients,
    Acc* scratch) const {
  const int64 table_size = params.layout.channels * params.knots;
  if (table_size == 0) return nullptr;
  if (params.layout.size() == 0) {
    std::fill(dcoefficients, dcoefficients + table_size, T(0));
    return nullptr;
  }
  const ReductionChunks chunks = BackwardChunks(params);
  Acc* slopes = scratch;                 // [C, K]
  Acc* partials = scratch + table_size;  // chunks.count x [C, K, 2]
  ComputeSlopes(device, params, Grid<Acc>(params), coefficients, slopes);
  AccumulateChunks(device, params, chunks, dy, x, slopes, dx, partials);
  SumPartials(device, chunks.count, 2 * table_size, partials);
  PairsToCoefficients(device, params, partials, dcoefficients);
  return nullptr;
}

#define TFKAF_INSTANTIATE(T) \
  TFKAF_INSTANTIATE_FUNCTORS(SplineForward, SplineBackward, CpuDevice, T)

TFKAF_FOR_CPU_TYPES(TFKAF_INSTANTIATE)
#undef TFKAF_INSTANTIATE

}  // namespace tfkaf
