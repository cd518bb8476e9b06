// CPU functors of KAF and 2D-KAF (declared in kaf_kernels.h).
//
// Work is split into tiles (channels-last inputs: up to kTileRows rows x
// kSegment channels; otherwise a run of up to kSegment positions of one
// channel) and run on TensorFlow's intra-op pool. The vectorised tile loops
// live in kaf_cpu_simd.h, compiled twice (baseline x86-64 and AVX2+FMA) and
// chosen once at run time from the CPU's features.
//
// dalpha is deterministic: ReductionChunks (common.h) splits the rows into
// chunks that depend only on the problem size; each chunk (and, for
// channels-last inputs, each channel segment of it) accumulates into its own
// partial [C, D] buffer in a fixed order, and the partial buffers are summed
// in chunk order. The bits do not depend on the number of threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"

namespace tfkaf {

// Per-call constants, in the accumulation type A (float or double).
template <typename A>
struct KafCpuParams {
  int64 D = 0;  // centres (1D) or grid side (2D)
  A boundary = 0, gamma = 0;
  A two_gs = 0;  // 2 gamma step
  A gb2 = 0;     // gamma boundary^2
  A lo = 0, hi = 0;  // clamp range of x for the Gaussian
  bool walk = false;  // Gaussian recurrence (walk mode) or direct exps
  const A* d = nullptr;      // [D] centres, linspace(-boundary, boundary, D)
  const A* scale = nullptr;  // [D] C_j of walk mode (kaf_cpu_simd.h)
};

// Entries per centre of the 1D coefficient tables (kaf_cpu_simd.h).
constexpr int64 kTab1d = 3;

// A tile: `rows` rows of `len` elements, consecutive rows `stride` apart.
struct Tile {
  int64 rows;
  int64 stride;
  int64 len;
};

}  // namespace tfkaf

// 32-byte vector arguments of the baseline build: only inlined helpers.
#pragma GCC diagnostic ignored "-Wpsabi"

#define TFKAF_SIMD_NS generic
#include "cc/kernels/kaf_cpu_simd.h"  // NOLINT(build/include): twice on purpose
#undef TFKAF_SIMD_NS

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TFKAF_SIMD_NS avx2
#include "cc/kernels/kaf_cpu_simd.h"  // NOLINT(build/include)
#undef TFKAF_SIMD_NS
#pragma GCC pop_options

namespace tfkaf {
namespace {

// Channels per tile (a multiple of every vector width) and rows per tile of
// channels-last inputs; positions per tile otherwise.
constexpr int64 kSegment = 256;
constexpr int64 kTileRows = 32;
// Vectors per batch (kaf_cpu_simd.h).
constexpr int kBatch1dForward = 4;
constexpr int kBatch1dBackward = 4;
constexpr int kBatch2dForward = 8;
constexpr int kBatch2dBackward = 4;
constexpr int kMaxBatch = 8;

bool UseAvx2() {
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return avx2;
}

template <typename T>
struct CpuAcc {
  using type = float;
};
template <>
struct CpuAcc<double> {
  using type = double;
};

template <typename A>
using Vec = typename generic::Simd<A>::V;  // same type as avx2::Simd<A>::V

template <typename A>
constexpr int64 kWidth = generic::Simd<A>::W;

// Vector-aligned, zero-initialised buffer of n scalars (rounded up).
template <typename A>
class AlignedBuffer {
 public:
  // zero: whether to zero-initialise (else the contents are unspecified).
  explicit AlignedBuffer(int64 n, bool zero = true)
      : data_(zero ? new Vec<A>[Vectors(n)]() : new Vec<A>[Vectors(n)]) {}
  static int64 Vectors(int64 n) {
    return (std::max<int64>(n, 1) + kWidth<A> - 1) / kWidth<A>;
  }
  A* get() { return reinterpret_cast<A*>(data_.get()); }
  const A* get() const { return reinterpret_cast<const A*>(data_.get()); }
  Vec<A>* vectors() { return data_.get(); }

 private:
  std::unique_ptr<Vec<A>[]> data_;
};

// boundary + margin rounded up in A, so that the clamped x keeps at least
// `margin` from every centre even where margin is below A's resolution at
// boundary (huge gamma): there every basis value is exactly 0.
template <typename A>
A ClampLimit(double boundary, double margin) {
  A limit = static_cast<A>(boundary + margin);
  while (std::isfinite(limit) &&
         double(limit) - double(static_cast<A>(boundary)) < margin) {
    limit = std::nextafter(limit, std::numeric_limits<A>::infinity());
  }
  return std::isfinite(limit) ? limit : std::numeric_limits<A>::max();
}

// Host-side setup shared by all CPU functors.
template <typename A>
struct Setup {
  KafCpuParams<A> params;
  std::vector<A> d, scale;
  bool fold = false;  // 1D walk mode: C_j folded into the tables

  Setup(const KafConfig& config, bool two_d) {
    const int64 D = config.num_centres;
    const double boundary = config.boundary;
    const double gamma = config.gamma;
    const double step = 2.0 * boundary / double(D - 1);
    const double c = gamma * step * step;
    const double j0 = double(D - 1) / 2.0;
    d.resize(D);
    scale.resize(D);
    for (int64 i = 0; i < D; ++i) {
      d[i] = static_cast<A>(-boundary + double(i) * step);
      const double k = double(i) - j0;
      scale[i] = static_cast<A>(std::exp(-c * k * k));  // exp(-gamma d_i^2)
    }
    d[D - 1] = static_cast<A>(boundary);
    const double margin = std::sqrt(800.0 / gamma);
    KafCpuParams<A>& p = params;
    p.D = D;
    p.boundary = static_cast<A>(boundary);
    p.gamma = static_cast<A>(gamma);
    p.two_gs = static_cast<A>(2.0 * gamma * step);
    p.gb2 = static_cast<A>(c * j0 * j0);  // gamma boundary^2
    p.hi = ClampLimit<A>(boundary, margin);
    p.lo = -p.hi;
    // Walk mode (kaf_cpu_simd.h) needs gamma boundary^2 = c j0^2 <= 40 (f
    // and C_j within [e^-40, e^40]), c (D - 2) <= 40 (the ratios) and, where
    // the ratio v underflows (2 gamma step |x| > 87), every basis value to
    // be below e^-100 already: 43.5 / sqrt(c) - j0 sqrt(c) >= 10.
    p.walk = (two_d || config.kernel == KafKernel::kGaussian) &&
             c * j0 * j0 <= 40.0 && c * double(D - 2) <= 40.0 &&
             43.5 / std::sqrt(c) - j0 * std::sqrt(c) >= 10.0;
    fold = p.walk && !two_d;
    p.d = d.data();
    p.scale = scale.data();
  }
};

template <typename From, typename To>
inline void Convert(const From* from, To* to, int64 n) {
  for (int64 i = 0; i < n; ++i) to[i] = static_cast<To>(from[i]);
}

// Coefficient tables (kaf_cpu_simd.h). 1D: per channel [D][3] entries
// (alpha_j C_j, alpha_{D-1-j} C_j, alpha_j C_j d_j), C_j = 1 unless walk
// mode; 2D: per channel pair the D*D coefficients. Blocked:
// [ceil(rows/W)][K][W], zero padded; otherwise [rows][K].
template <typename A, typename T>
AlignedBuffer<A> MakeTable(const KafParallelFor& parallel_for,
                           const Setup<A>& setup, const T* alpha, int64 rows,
                           bool two_d, bool blocked) {
  constexpr int64 W = kWidth<A>;
  const int64 D = setup.params.D;
  const int64 K = two_d ? D * D : kTab1d * D;  // table entries per channel
  const int64 A_cols = two_d ? D * D : D;
  const int64 groups = blocked ? (rows + W - 1) / W : rows;
  const int64 lanes = blocked ? W : 1;
  AlignedBuffer<A> table(groups * K * lanes);
  A* out = table.get();
  const A* scale = setup.scale.data();
  const bool fold = setup.fold;
  parallel_for(groups, K * lanes * 4, [&](int64 begin, int64 end) {
    for (int64 g = begin; g < end; ++g) {
      for (int64 l = 0; l < lanes; ++l) {
        const int64 r = g * lanes + l;
        if (r >= rows) break;
        const T* a = alpha + r * A_cols;
        A* o = out + g * K * lanes + l;
        if (two_d) {
          for (int64 k = 0; k < K; ++k) o[k * lanes] = static_cast<A>(a[k]);
        } else {
          for (int64 j = 0; j < D; ++j) {
            const A cj = fold ? scale[j] : A(1);
            const A aj = static_cast<A>(a[j]) * cj;
            o[(kTab1d * j) * lanes] = aj;
            o[(kTab1d * j + 1) * lanes] = static_cast<A>(a[D - 1 - j]) * cj;
            o[(kTab1d * j + 2) * lanes] = aj * setup.d[j];
          }
        }
      }
    }
  });
  return table;
}

// ---------------------------------------------------------------------------
// Dispatch to the tile loops of the selected instruction set.

#define TFKAF_DISPATCH(...)  \
  do {                       \
    if (UseAvx2()) {         \
      avx2::__VA_ARGS__;     \
    } else {                 \
      generic::__VA_ARGS__;  \
    }                        \
  } while (false)

template <typename A, bool kUniform>
void ForwardTile(KafKernel kernel, const KafCpuParams<A>& p, const Tile& t,
                 const A* x, A* y, const A* tab, Vec<A>* scratch) {
  constexpr int U = kBatch1dForward;
  switch (kernel) {
    case KafKernel::kGaussian:
      TFKAF_DISPATCH(ForwardTile<A, KafKernel::kGaussian, kUniform, U>(
          p, t, x, y, tab, scratch));
      break;
    case KafKernel::kRelu:
      TFKAF_DISPATCH(ForwardTile<A, KafKernel::kRelu, kUniform, 1>(
          p, t, x, y, tab, scratch));
      break;
    case KafKernel::kSoftplus:
      TFKAF_DISPATCH(ForwardTile<A, KafKernel::kSoftplus, kUniform, 1>(
          p, t, x, y, tab, scratch));
      break;
  }
}

template <typename A, bool kUniform>
void BackwardTile(KafKernel kernel, const KafCpuParams<A>& p, const Tile& t,
                  const A* dy, const A* x, A* dx, const A* tab, A* dA,
                  Vec<A>* scratch) {
  constexpr int U = kBatch1dBackward;
  switch (kernel) {
    case KafKernel::kGaussian:
      TFKAF_DISPATCH(BackwardTile<A, KafKernel::kGaussian, kUniform, U>(
          p, t, dy, x, dx, tab, dA, scratch));
      break;
    case KafKernel::kRelu:
      TFKAF_DISPATCH(BackwardTile<A, KafKernel::kRelu, kUniform, 1>(
          p, t, dy, x, dx, tab, dA, scratch));
      break;
    case KafKernel::kSoftplus:
      TFKAF_DISPATCH(BackwardTile<A, KafKernel::kSoftplus, kUniform, 1>(
          p, t, dy, x, dx, tab, dA, scratch));
      break;
  }
}

template <typename A, bool kUniform>
void Forward2Tile(const KafCpuParams<A>& p, const Tile& t, const A* x1,
                  const A* x2, A* y, int64 y_stride, const A* tab,
                  Vec<A>* scratch) {
  TFKAF_DISPATCH(Forward2Tile<A, kUniform, kBatch2dForward>(
      p, t, x1, x2, y, y_stride, tab, scratch));
}

template <typename A, bool kUniform>
void Backward2Tile(const KafCpuParams<A>& p, const Tile& t, const A* dy,
                   int64 dy_stride, const A* x1, const A* x2, A* dx1, A* dx2,
                   const A* tab, A* dA, Vec<A>* scratch) {
  TFKAF_DISPATCH(Backward2Tile<A, kUniform, kBatch2dBackward>(
      p, t, dy, dy_stride, x1, x2, dx1, dx2, tab, dA, scratch));
}

#undef TFKAF_DISPATCH

// Scratch vectors one thread needs (see the tile functions).
int64 ScratchVectors(int64 D) {
  return D * D + (3 * kMaxBatch + 2) * D + 8;
}

// A tile's operands as contiguous A arrays. For float/double the tensors are
// used in place; 16-bit types are converted into per-thread buffers (rows of
// `len` elements, `stride` apart in the tensor, packed in the buffer).
template <typename A, typename T>
class TileBuffers {
 public:
  static constexpr bool kConvert = !std::is_same_v<A, T>;

  TileBuffers(int64 D, int64 capacity)
      : scratch_(ScratchVectors(D) * kWidth<A>) {
    if (kConvert) {
      for (auto& b : buffers_) b.resize(capacity);
    }
  }
  Vec<A>* scratch() { return scratch_.vectors(); }

  // Returns the operand and its row stride as seen by the kernels.
  const A* In(int slot, const T* src, int64 rows, int64 stride, int64 len,
              int64* out_stride) {
    if constexpr (kConvert) {
      A* b = buffers_[slot].data();
      for (int64 r = 0; r < rows; ++r) Convert(src + r * stride, b + r * len, len);
      *out_stride = len;
      return b;
    } else {
      (void)slot, (void)rows, (void)len;
      *out_stride = stride;
      return src;
    }
  }
  A* Out(int slot, T* dst, int64 stride, int64* out_stride) {
    if constexpr (kConvert) {
      (void)dst, (void)stride;
      return buffers_[slot].data();
    } else {
      (void)slot;
      *out_stride = stride;
      return dst;
    }
  }
  void Flush(int slot, T* dst, int64 rows, int64 stride, int64 len) {
    if constexpr (kConvert) {
      const A* b = buffers_[slot].data();
      for (int64 r = 0; r < rows; ++r) Convert(b + r * len, dst + r * stride, len);
    } else {
      (void)slot, (void)dst, (void)rows, (void)stride, (void)len;
    }
  }

 private:
  AlignedBuffer<A> scratch_;
  std::vector<A> buffers_[5];
};

// dalpha[r, k] = scale[k] * sum over chunks of partial[chunk][r, k], summed
// in chunk order. blocked: partial sums in the [rows/W][K][W] layout (one
// unit of work per block of W rows), else [rows][K].
template <typename A, typename T>
void ReducePartials(const KafParallelFor& parallel_for, const A* partial,
                    int64 count, int64 chunk_stride, int64 rows, int64 K,
                    bool blocked, const A* scale, T* dalpha) {
  constexpr int64 W = kWidth<A>;
  const int64 group = blocked ? W : 1;
  const int64 groups = (rows + group - 1) / group;
  parallel_for(groups, K * group * (count + 1), [&](int64 begin, int64 end) {
    A sum[W];
    for (int64 b = begin; b < end; ++b) {
      const int64 lanes = std::min(group, rows - b * group);
      for (int64 k = 0; k < K; ++k) {
        const A* at = partial + (b * K + k) * group;
        for (int64 l = 0; l < group; ++l) sum[l] = at[l];
        for (int64 chunk = 1; chunk < count; ++chunk) {
          const A* c = at + chunk * chunk_stride;
          for (int64 l = 0; l < group; ++l) sum[l] += c[l];
        }
        const A s = scale != nullptr ? scale[k] : A(1);
        for (int64 l = 0; l < lanes; ++l) {
          dalpha[(b * group + l) * K + k] = static_cast<T>(sum[l] * s);
        }
      }
    }
  });
}

template <typename T>
void ZeroOutput(T* out, int64 n) {
  for (int64 i = 0; i < n; ++i) out[i] = static_cast<T>(0.0f);
}

// Rough cost of one element in cycles, for the thread pool's sharding.
int64 ElementCost(const KafConfig& config, bool two_d, bool backward) {
  const int64 D = config.num_centres;
  if (two_d) return D * D * (backward ? 3 : 1) + 10 * D;
  if (config.kernel == KafKernel::kSoftplus) return D * (backward ? 60 : 40);
  if (config.kernel == KafKernel::kRelu) return D * (backward ? 6 : 3);
  return D * (backward ? 3 : 1) + 20;
}

// ---------------------------------------------------------------------------
// Drivers. For 2D, `layout` is x's (2H channels) and the output has H.

template <typename T>
void RunForward(const KafParallelFor& parallel_for, const KafConfig& config,
                bool two_d, const T* x, const T* alpha, T* y) {
  using A = typename CpuAcc<T>::type;
  const ChannelLayout& L = config.layout;
  if (L.size() == 0) return;
  const Setup<A> setup(config, two_d);
  const KafCpuParams<A>& p = setup.params;
  const int64 D = p.D;
  const int64 rows = two_d ? L.channels / 2 : L.channels;  // alpha rows
  const int64 cost = ElementCost(config, two_d, false);
  const KafKernel kernel = config.kernel;
  const bool blocked = L.inner == 1;
  const AlignedBuffer<A> table =
      MakeTable<A>(parallel_for, setup, alpha, rows, two_d, blocked);
  const int64 K = two_d ? D * D : kTab1d * D;
  if (blocked) {
    // Channels-last: tiles of kTileRows rows x kSegment channels.
    const int64 segments = (rows + kSegment - 1) / kSegment;
    const int64 row_tiles = (L.outer + kTileRows - 1) / kTileRows;
    parallel_for(
        row_tiles * segments, kTileRows * kSegment * cost,
        [&](int64 begin, int64 end) {
          TileBuffers<A, T> buf(D, kTileRows * kSegment);
          for (int64 u = begin; u < end; ++u) {
            const int64 o = (u / segments) * kTileRows;
            const int64 c0 = (u % segments) * kSegment;
            const int64 len = std::min(kSegment, rows - c0);
            const int64 nrows = std::min(kTileRows, L.outer - o);
            const A* tab = table.get() + (c0 / kWidth<A>) * K * kWidth<A>;
            int64 xs = 0, ys = 0;
            if (two_d) {
              const T* x1 = x + o * L.channels + c0;
              T* y_tile = y + o * rows + c0;
              const A* a1 = buf.In(0, x1, nrows, L.channels, len, &xs);
              const A* a2 = buf.In(1, x1 + rows, nrows, L.channels, len, &xs);
              A* yo = buf.Out(2, y_tile, rows, &ys);
              Forward2Tile<A, false>(p, Tile{nrows, xs, len}, a1, a2, yo,
                                     TileBuffers<A, T>::kConvert ? len : ys,
                                     tab, buf.scratch());
              buf.Flush(2, y_tile, nrows, rows, len);
            } else {
              const T* x_tile = x + o * rows + c0;
              T* y_tile = y + o * rows + c0;
              const A* a = buf.In(0, x_tile, nrows, rows, len, &xs);
              A* yo = buf.Out(1, y_tile, rows, &ys);
              ForwardTile<A, false>(kernel, p, Tile{nrows, xs, len}, a, yo,
                                    tab, buf.scratch());
              buf.Flush(1, y_tile, nrows, rows, len);
            }
          }
        });
    return;
  }
  // Channels-first (inner > 1): tiles of kSegment positions of one channel.
  const int64 segments = (L.inner + kSegment - 1) / kSegment;
  parallel_for(
      L.outer * rows * segments, std::min(kSegment, L.inner) * cost,
      [&](int64 begin, int64 end) {
        TileBuffers<A, T> buf(D, kSegment);
        for (int64 u = begin; u < end; ++u) {
          const int64 row = u / segments;  // o * rows + channel
          const int64 o = row / rows;
          const int64 ch = row % rows;
          const int64 p0 = (u % segments) * kSegment;
          const int64 len = std::min(kSegment, L.inner - p0);
          const A* tab = table.get() + ch * K;
          const Tile t{1, len, len};
          int64 unused = 0;
          T* y_tile = y + row * L.inner + p0;
          if (two_d) {
            const T* x1 = x + (o * L.channels + ch) * L.inner + p0;
            const A* a1 = buf.In(0, x1, 1, len, len, &unused);
            const A* a2 = buf.In(1, x1 + rows * L.inner, 1, len, len, &unused);
            A* yo = buf.Out(2, y_tile, len, &unused);
            Forward2Tile<A, true>(p, t, a1, a2, yo, len, tab, buf.scratch());
            buf.Flush(2, y_tile, 1, len, len);
          } else {
            const A* a = buf.In(0, x + row * L.inner + p0, 1, len, len, &unused);
            A* yo = buf.Out(1, y_tile, len, &unused);
            ForwardTile<A, true>(kernel, p, t, a, yo, tab, buf.scratch());
            buf.Flush(1, y_tile, 1, len, len);
          }
        }
      });
}

template <typename T>
void RunBackward(const KafParallelFor& parallel_for, const KafConfig& config,
                 bool two_d, const T* dy, const T* x, const T* alpha, T* dx,
                 T* dalpha) {
  using A = typename CpuAcc<T>::type;
  constexpr int64 W = kWidth<A>;
  const ChannelLayout& L = config.layout;
  const int64 D = config.num_centres;
  const int64 KA = two_d ? D * D : D;  // dalpha entries per row
  const int64 rows = two_d ? L.channels / 2 : L.channels;
  if (L.size() == 0) {
    ZeroOutput(dalpha, rows * KA);
    return;
  }
  const Setup<A> setup(config, two_d);
  const KafCpuParams<A>& p = setup.params;
  const int64 cost = ElementCost(config, two_d, true);
  const KafKernel kernel = config.kernel;
  const bool blocked = L.inner == 1;
  const AlignedBuffer<A> table =
      MakeTable<A>(parallel_for, setup, alpha, rows, two_d, blocked);
  const int64 K = two_d ? D * D : kTab1d * D;  // table entries per row
  const A* scale = setup.fold ? setup.scale.data() : nullptr;
  if (blocked) {
    // Channels-last. Units: (row chunk, channel segment); each writes only
    // its own slice of its chunk's partial sums, row tiles in order.
    const int64 padded = ((rows + W - 1) / W) * W;
    const ReductionChunks chunks =
        ReductionChunks::For(L.outer, rows * KA, padded * KA);
    const int64 stride = padded * KA;
    AlignedBuffer<A> partial(chunks.count * stride, /*zero=*/false);
    A* part = partial.get();
    const int64 segments = (rows + kSegment - 1) / kSegment;
    parallel_for(
        chunks.count * segments,
        chunks.rows_per_chunk * std::min(kSegment, rows) * cost,
        [&](int64 begin, int64 end) {
          TileBuffers<A, T> buf(D, kTileRows * kSegment);
          for (int64 u = begin; u < end; ++u) {
            const int64 chunk = u / segments;
            const int64 c0 = (u % segments) * kSegment;
            const int64 len = std::min(kSegment, rows - c0);
            const A* tab = table.get() + (c0 / W) * K * W;
            A* dA = part + chunk * stride + (c0 / W) * KA * W;
            std::fill(dA, dA + ((len + W - 1) / W) * KA * W, A(0));
            const int64 o_begin = chunk * chunks.rows_per_chunk;
            const int64 o_end =
                std::min(L.outer, o_begin + chunks.rows_per_chunk);
            for (int64 o = o_begin; o < o_end; o += kTileRows) {
              const int64 nrows = std::min(kTileRows, o_end - o);
              int64 xs = 0, gs = 0, ds = 0;
              if (two_d) {
                const T* x1 = x + o * L.channels + c0;
                T* dx1 = dx + o * L.channels + c0;
                const T* g = dy + o * rows + c0;
                const A* a1 = buf.In(0, x1, nrows, L.channels, len, &xs);
                const A* a2 = buf.In(1, x1 + rows, nrows, L.channels, len, &xs);
                const A* ga = buf.In(2, g, nrows, rows, len, &gs);
                A* d1 = buf.Out(3, dx1, L.channels, &ds);
                A* d2 = buf.Out(4, dx1 + rows, L.channels, &ds);
                Backward2Tile<A, false>(p, Tile{nrows, xs, len}, ga, gs, a1,
                                        a2, d1, d2, tab, dA, buf.scratch());
                buf.Flush(3, dx1, nrows, L.channels, len);
                buf.Flush(4, dx1 + rows, nrows, L.channels, len);
              } else {
                const int64 at = o * rows + c0;
                const A* a = buf.In(0, x + at, nrows, rows, len, &xs);
                const A* ga = buf.In(1, dy + at, nrows, rows, len, &gs);
                A* d = buf.Out(2, dx + at, rows, &ds);
                BackwardTile<A, false>(kernel, p, Tile{nrows, xs, len}, ga, a,
                                       d, tab, dA, buf.scratch());
                buf.Flush(2, dx + at, nrows, rows, len);
              }
            }
          }
        });
    ReducePartials(parallel_for, part, chunks.count, stride, rows, KA,
                   /*blocked=*/true, scale, dalpha);
    return;
  }
  // Channels-first. Units: row chunks over (o, channel, segment) tiles.
  const int64 segments = (L.inner + kSegment - 1) / kSegment;
  const int64 total = L.outer * rows * segments;
  const int64 stride = rows * KA;
  const ReductionChunks chunks = ReductionChunks::For(
      total, std::min(kSegment, L.inner) * KA, stride);
  AlignedBuffer<A> partial(chunks.count * stride, /*zero=*/false);
  A* part = partial.get();
  parallel_for(
      chunks.count, chunks.rows_per_chunk * std::min(kSegment, L.inner) * cost,
      [&](int64 begin, int64 end) {
        TileBuffers<A, T> buf(D, kSegment);
        for (int64 chunk = begin; chunk < end; ++chunk) {
          A* dA_chunk = part + chunk * stride;
          std::fill(dA_chunk, dA_chunk + stride, A(0));
          const int64 u_begin = chunk * chunks.rows_per_chunk;
          const int64 u_end = std::min(total, u_begin + chunks.rows_per_chunk);
          for (int64 u = u_begin; u < u_end; ++u) {
            const int64 row = u / segments;
            const int64 o = row / rows;
            const int64 ch = row % rows;
            const int64 p0 = (u % segments) * kSegment;
            const int64 len = std::min(kSegment, L.inner - p0);
            const Tile t{1, len, len};
            const A* tab = table.get() + ch * K;
            const T* g = dy + row * L.inner + p0;
            int64 unused = 0;
            if (two_d) {
              const int64 at1 = (o * L.channels + ch) * L.inner + p0;
              const int64 at2 = at1 + rows * L.inner;
              const A* a1 = buf.In(0, x + at1, 1, len, len, &unused);
              const A* a2 = buf.In(1, x + at2, 1, len, len, &unused);
              const A* ga = buf.In(2, g, 1, len, len, &unused);
              A* d1 = buf.Out(3, dx + at1, len, &unused);
              A* d2 = buf.Out(4, dx + at2, len, &unused);
              Backward2Tile<A, true>(p, t, ga, len, a1, a2, d1, d2, tab,
                                     dA_chunk + ch * KA, buf.scratch());
              buf.Flush(3, dx + at1, 1, len, len);
              buf.Flush(4, dx + at2, 1, len, len);
            } else {
              const int64 at = row * L.inner + p0;
              const A* a = buf.In(0, x + at, 1, len, len, &unused);
              const A* ga = buf.In(1, g, 1, len, len, &unused);
              A* d = buf.Out(2, dx + at, len, &unused);
              BackwardTile<A, true>(kernel, p, t, ga, a, d, tab,
                                    dA_chunk + ch * KA, buf.scratch());
              buf.Flush(2, dx + at, 1, len, len);
            }
          }
        }
      });
  ReducePartials(parallel_for, part, chunks.count, stride, rows, KA,
                 /*blocked=*/false, scale, dalpha);
}

}  // namespace

template <typename T>
void KafForwardCpu<T>::operator()(const KafParallelFor& parallel_for,
                                  const KafConfig& config, const T* x,
                                  const T* alpha, T* y) const {
  RunForward(parallel_for, config, /*two_d=*/false, x, alpha, y);
}

template <typename T>
void KafBackwardCpu<T>::operator()(const KafParallelFor& parallel_for,
                                   const KafConfig& config, const T* dy,
                                   const T* x, const T* alpha, T* dx,
                                   T* dalpha) const {
  RunBackward(parallel_for, config, /*two_d=*/false, dy, x, alpha, dx, dalpha);
}

template <typename T>
void Kaf2dForwardCpu<T>::operator()(const KafParallelFor& parallel_for,
                                    const KafConfig& config, const T* x,
                                    const T* alpha, T* y) const {
  KafConfig c = config;
  c.kernel = KafKernel::kGaussian;
  RunForward(parallel_for, c, /*two_d=*/true, x, alpha, y);
}

template <typename T>
void Kaf2dBackwardCpu<T>::operator()(const KafParallelFor& parallel_for,
                                     const KafConfig& config, const T* dy,
                                     const T* x, const T* alpha, T* dx,
                                     T* dalpha) const {
  KafConfig c = config;
  c.kernel = KafKernel::kGaussian;
  RunBackward(parallel_for, c, /*two_d=*/true, dy, x, alpha, dx, dalpha);
}

#define TFKAF_INSTANTIATE(T)          \
  template struct KafForwardCpu<T>;   \
  template struct KafBackwardCpu<T>;  \
  template struct Kaf2dForwardCpu<T>; \
  template struct Kaf2dBackwardCpu<T>;

TFKAF_INSTANTIATE(float)
TFKAF_INSTANTIATE(double)
TFKAF_INSTANTIATE(Eigen::half)
TFKAF_INSTANTIATE(Eigen::bfloat16)
#undef TFKAF_INSTANTIATE

}  // namespace tfkaf
