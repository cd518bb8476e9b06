// CPU functors of KAF and 2D-KAF (declared in kaf_kernels.h).
//
// Work is split into tiles (channels-last inputs: up to kTileRows rows x
// kSegment channels; otherwise a run of up to kSegment positions of one
// channel) and run on TensorFlow's intra-op pool. The vectorised tile loops
// live in kaf_cpu_simd.h, compiled once per CPU path (baseline x86-64,
// AVX2+FMA, AVX-512F) in kaf_cpu_<path>.cc; the tiles run the copy of the
// path that SelectedCpuPath (cpu_features.h) chose once per process, through
// that copy's table of entry points (KafTiles, kaf_cpu_tiles.h).
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
#include "cc/kernels/cpu_types.h"
#include "cc/kernels/common.h"
#include "cc/kernels/cpu_features.h"
#include "cc/kernels/kaf_cpu_tiles.h"
#include "cc/kernels/kaf_kernels.h"

namespace tfkaf {
namespace {

// Channels per tile (a multiple of every vector width) and rows per tile of
// channels-last inputs; positions per tile otherwise.
constexpr int64 kSegment = 256;
constexpr int64 kTileRows = 32;

// The widest vector of any path (avx512: 64 bytes): the unit of the buffers
// the tile loops read as vectors.
template <typename A>
struct alignas(64) Vec {
  A lanes[64 / sizeof(A)];
};

template <typename A>
constexpr int64 kVecLanes = 64 / sizeof(A);

// The tile kernels of the selected CPU path (kaf_cpu_tiles.h).
template <typename A>
const KafTiles<A>& SelectedTiles() {
  return TFKAF_CPU_DISPATCH(SelectedCpuPath(), Tiles<A>());
}

// Lanes of the selected path's vectors: the channels of one table block.
template <typename A>
int64 Width() {
  return SelectedTiles<A>().lanes;
}

// Vector-aligned, zero-initialised buffer of n scalars (rounded up).
template <typename A>
class AlignedBuffer {
 public:
  // zero: whether to zero-initialise (else the contents are unspecified).
  explicit AlignedBuffer(int64 n, bool zero = true)
      : data_(zero ? new Vec<A>[Units(n)]() : new Vec<A>[Units(n)]) {}
  static int64 Units(int64 n) {
    return (std::max<int64>(n, 1) + kVecLanes<A> - 1) / kVecLanes<A>;
  }
  A* get() { return reinterpret_cast<A*>(data_.get()); }
  const A* get() const { return reinterpret_cast<const A*>(data_.get()); }

 private:
  std::unique_ptr<Vec<A>[]> data_;
};

// The exponent range walk mode keeps its factors in: f and C_j within
// [e^-40, e^40], so that alpha_j C_j stays normal for |alpha_j| above
// ~1e-21 in float (Walkable; the 2D forward's walks from 1 and the walks
// from the middle, Setup).
constexpr double kWalkExponent = 40.0;

// Whether walk mode (kaf_cpu_simd.h) can evaluate n centres at once, with
// c = gamma step^2 and j0 = (n - 1) / 2: it needs gamma half-span^2 =
// c j0^2 <= kWalkExponent (f and C_j), c (n - 2) <= kWalkExponent (the
// ratios) and, where the ratio v underflows (2 gamma step |x| > 87), every
// basis value to be below e^-100 already: 43.5 / sqrt(c) - j0 sqrt(c) >= 10.
inline bool Walkable(double c, int64 n) {
  const double j0 = double(n - 1) / 2.0;
  return c * j0 * j0 <= kWalkExponent && c * double(n - 2) <= kWalkExponent &&
         43.5 / std::sqrt(c) - j0 * std::sqrt(c) >= 10.0;
}

// Fewest centres per walk run: a run costs two exponentials, a centre in
// direct mode one.
constexpr int64 kMinWalkRun = 3;

// Runs of a walk over D centres (2D: the grid side): the fewest runs of
// equal length (within one) that Walkable allows, none (direct mode) if
// that takes runs shorter than kMinWalkRun. gamma boundary^2 grows with D^2
// at a fixed overlap, so KAF's default gamma walks D <= 36 in one run,
// D = 37..72 in two (2D-KAF's: sides <= 26 in one, 27..52 in two; its
// forward walks sides <= 18 from 1, Bases2d::kUnit).
inline int64 WalkRunCount(double c, int64 D) {
  for (int64 n = 1; n == 1 || (D + n - 1) / n >= kMinWalkRun; ++n) {
    if (Walkable(c, (D + n - 1) / n)) return n;
  }
  return 0;
}

// Host-side setup shared by all CPU functors.
template <typename A>
struct Setup {
  KafCpuParams<A> params;
  // Per centre: its place on the whole grid (d), and its C_j, its position
  // and its mirror (the centre at the same place from the run's other end)
  // within its walk run (one run when the ops do not walk).
  std::vector<A> d, scale, run_d;
  std::vector<int64> mirror;
  std::vector<WalkRun<A>> runs;
  bool fold = false;  // 1D walk mode: C_j folded into the tables

  // params and runs point into the vectors: never copied.
  Setup(const Setup&) = delete;
  Setup& operator=(const Setup&) = delete;
  // forward: the call is a forward (a 2D one may take Bases2d::kUnit, and
  // the walks from the middle if alpha_max(), the largest |alpha|, allows;
  // called only where that decides).
  template <typename AlphaMax>
  Setup(const KafConfig& config, bool two_d, bool forward,
        AlphaMax alpha_max) {
    const int64 D = config.num_centres;
    const double step = 2.0 * config.boundary / double(D - 1);
    const double c = config.gamma * step * step;
    d.resize(D);
    for (int64 i = 0; i < D; ++i) {
      d[i] = static_cast<A>(-config.boundary + double(i) * step);
    }
    d[D - 1] = static_cast<A>(config.boundary);
    const bool gaussian = two_d || config.kernel == KafKernel::kGaussian;
    const int64 count = WalkRunCount(c, D);
    scale.resize(D);
    run_d.resize(D);
    mirror.resize(D);
    params = MakeRun(config, 0, D, step, c).params;  // then the runs' own
    runs.resize(gaussian && count > 0 ? count : 1);
    const int64 num_runs = int64(runs.size());
    for (int64 r = 0, first = 0; r < num_runs; ++r) {
      const int64 n = D / num_runs + (r < D % num_runs ? 1 : 0);
      runs[r] = MakeRun(config, first, n, step, c);
      first += n;
    }
    params.walk = gaussian && count > 0;
    params.d = d.data();
    params.scale = scale.data();
    params.num_runs = num_runs;
    params.runs = runs.data();
    fold = params.walk && !two_d;
    // The 2D forward's one-run walks from 1 (kaf_cpu_simd.h, Bases2d) leave
    // f_0 of both sides, up to e^(2 gamma half-span^2), to the end and fold
    // C_a C_b, down to its inverse, into the table: each side gets half of
    // kWalkExponent.
    const double j0 = double(D - 1) / 2.0;
    params.unit = two_d && forward && params.walk && num_runs == 1 &&
                  c * j0 * j0 <= kWalkExponent / 2.0;
    // The backwards' sums are those of the mirrored walks (1D: alpha_j e_j
    // and dy e_j / C_j; 2D: of the exact bases): no bound on alpha there.
    if (params.walk && num_runs == 1 && (!forward || fold || params.unit)) {
      SetCentred(config, two_d && forward, step,
                 forward ? alpha_max() : 0.0);
    }
  }

 private:
  // The constants of the walks from the middle centre (kaf_cpu_simd.h,
  // CentredForward, CentredBackward, CentredBases): the limit L on |x|
  // where g x^2 + g step |x| = kWalkExponent (unit, Bases2d::kUnit: half of
  // it a side), so that f_m >= e^-40 (e^-20; |d_m| <= step / 2), if the
  // sums' terms, below max|alpha| e^40 and D (unit: D^2) of them, stay 4x
  // below A's largest value (NaN in alpha fails the test).
  void SetCentred(const KafConfig& config, bool unit, double step,
                  double alpha_max) {
    const double D = double(config.num_centres), g = config.gamma;
    const double big = double(std::numeric_limits<A>::max()) / 4.0;
    const double terms = unit ? D * D : D;
    const double budget = unit ? kWalkExponent / 2.0 : kWalkExponent;
    if (!(alpha_max * terms * std::exp(kWalkExponent) <= big)) return;
    const double gs = g * step;
    params.centred_limit = static_cast<A>(
        (std::sqrt(gs * gs + 4.0 * budget * g) - gs) / (2.0 * g));
    params.two_g_dm = static_cast<A>(2.0 * g * d[config.num_centres / 2]);
  }

  // The run of n centres from `first`, filling its entries of scale, run_d
  // and mirror. The whole grid as one run gives the call's own constants.
  WalkRun<A> MakeRun(const KafConfig& config, int64 first, int64 n,
                     double step, double c) {
    const int64 D = config.num_centres;
    const double j0 = double(n - 1) / 2.0;
    KafConfig local = config;
    local.boundary = config.boundary * (double(n - 1) / double(D - 1));
    WalkRun<A> run;
    run.first = first;
    run.shift = static_cast<A>((double(first) + j0 - double(D - 1) / 2.0) *
                               step);  // 0 for the whole grid
    KafCpuParams<A>& p = run.params;
    p.D = n;
    p.boundary = static_cast<A>(local.boundary);
    p.gamma = static_cast<A>(config.gamma);
    p.two_gs = static_cast<A>(2.0 * config.gamma * step);
    p.gb2 = static_cast<A>(c * j0 * j0);  // gamma half-span^2
    p.hi = KafClampLimit<A>(local);
    p.lo = -p.hi;
    p.walk = true;
    for (int64 i = 0; i < n; ++i) {
      const double k = double(i) - j0;
      scale[first + i] = static_cast<A>(std::exp(-c * k * k));
      run_d[first + i] = static_cast<A>(-local.boundary + double(i) * step);
      mirror[first + i] = first + n - 1 - i;
    }
    run_d[first + n - 1] = p.boundary;
    p.d = run_d.data() + first;
    p.scale = scale.data() + first;
    return run;
  }
};

template <typename From, typename To>
inline void Convert(const From* from, To* to, int64 n) {
  for (int64 i = 0; i < n; ++i) to[i] = static_cast<To>(from[i]);
}

// Coefficient tables (kaf_cpu_simd.h). 1D: per channel [D][3] entries
// (alpha_j C_j, alpha_m C_j, alpha_j C_j d_j) with C_j, m (the mirror of j)
// and d_j within j's walk run (Setup), C_j = 1 unless walk mode; 2D: per
// channel pair the D*D coefficients alpha_ab (k = b * D + a), times C_a C_b
// where params.unit. Blocked: [ceil(rows/W)][K][W], zero
// padded; otherwise [rows][K].
template <typename A, typename T>
AlignedBuffer<A> MakeTable(const CpuDevice& device,
                           const Setup<A>& setup, const T* alpha, int64 rows,
                           bool two_d, bool blocked) {
  const int64 W = Width<A>();
  const int64 D = setup.params.D;
  const int64 K = two_d ? D * D : kTab1d * D;  // table entries per channel
  const int64 A_cols = two_d ? D * D : D;
  const int64 groups = blocked ? (rows + W - 1) / W : rows;
  const int64 lanes = blocked ? W : 1;
  AlignedBuffer<A> table(groups * K * lanes);
  A* out = table.get();
  const A* scale = setup.scale.data();
  const bool fold = setup.fold;
  device.parallel_for(groups, K * lanes * 4, [&](int64 begin, int64 end) {
    for (int64 g = begin; g < end; ++g) {
      for (int64 l = 0; l < lanes; ++l) {
        const int64 r = g * lanes + l;
        if (r >= rows) break;
        const T* a = alpha + r * A_cols;
        A* o = out + g * K * lanes + l;
        if (two_d) {
          const bool unit = setup.params.unit;
          for (int64 b = 0; b < D; ++b) {
            for (int64 i = 0; i < D; ++i) {  // k = b * D + i
              const A cc = unit ? scale[b] * scale[i] : A(1);
              o[(b * D + i) * lanes] = static_cast<A>(a[b * D + i]) * cc;
            }
          }
        } else {
          for (int64 j = 0; j < D; ++j) {
            const A cj = fold ? scale[j] : A(1);
            const A aj = static_cast<A>(a[j]) * cj;
            o[(kTab1d * j) * lanes] = aj;
            o[(kTab1d * j + 1) * lanes] =
                static_cast<A>(a[setup.mirror[j]]) * cj;
            o[(kTab1d * j + 2) * lanes] = aj * setup.run_d[j];
          }
        }
      }
    }
  });
  return table;
}

// Scratch vectors one thread needs (see the tile functions), in units of
// the widest path's vectors.
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
      : scratch_(ScratchVectors(D) * kVecLanes<A>) {
    if (kConvert) {
      for (auto& b : buffers_) b.resize(capacity);
    }
  }
  A* scratch() { return scratch_.get(); }

  // Returns the operand and its row stride as seen by the kernels.
  const A* In(int slot, const T* src, int64 rows, int64 stride, int64 len,
              int64* out_stride) {
    if constexpr (kConvert) {
      A* b = buffers_[slot].data();
      for (int64 r = 0; r < rows; ++r) {
        Convert(src + r * stride, b + r * len, len);
      }
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
      for (int64 r = 0; r < rows; ++r) {
        Convert(b + r * len, dst + r * stride, len);
      }
    } else {
      (void)slot, (void)dst, (void)rows, (void)stride, (void)len;
    }
  }

 private:
  AlignedBuffer<A> scratch_;
  std::vector<A> buffers_[5];
};

// dalpha[r, k] = scale[k] * sum over chunks of partial[chunk][r, k], summed
// in chunk order (SumPartials, into chunk 0). blocked: partial sums in the
// [rows/W][K][W] layout (one unit of work per block of W rows), else
// [rows][K].
template <typename A, typename T>
void ReducePartials(const CpuDevice& device, A* partial, int64 count,
                    int64 chunk_stride, int64 rows, int64 K, bool blocked,
                    const A* scale, T* dalpha) {
  SumPartials(device, count, chunk_stride, partial);
  const int64 group = blocked ? Width<A>() : 1;
  const int64 groups = (rows + group - 1) / group;
  device.parallel_for(groups, K * group * 2, [&](int64 begin, int64 end) {
    for (int64 b = begin; b < end; ++b) {
      const int64 lanes = std::min(group, rows - b * group);
      for (int64 k = 0; k < K; ++k) {
        const A* at = partial + (b * K + k) * group;
        const A s = scale != nullptr ? scale[k] : A(1);
        for (int64 l = 0; l < lanes; ++l) {
          dalpha[(b * group + l) * K + k] = static_cast<T>(at[l] * s);
        }
      }
    }
  });
}

// The largest |a[i]|, i < n (infinity if one is NaN).
template <typename T>
double MaxAbs(const T* a, int64 n) {
  double most = 0.0;
  bool nan = false;
  for (int64 i = 0; i < n; ++i) {
    const double v = std::abs(static_cast<double>(a[i]));
    most = v > most ? v : most;
    nan = nan | (v != v);
  }
  return nan ? HUGE_VAL : most;
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

// Where one tile's operands sit in the tensors: x (for 2D its first channel
// half) and dx at offset `x`, the second half at `x2`, y and dy at `y`;
// `rows` rows of `len` elements, x_stride / y_stride apart. `channel` is the
// tile's first alpha row (channels-last: its first channel, a multiple of
// the vector width; channels-first: its channel), which locates its
// coefficient table and dalpha partial sums.
struct TileAt {
  int64 x, x2, y;
  int64 rows, len;
  int64 x_stride, y_stride;
  int64 channel;
};

// The tiles of one call. Channels-last (blocked): up to kTileRows rows x
// kSegment channels; channels-first: kSegment positions of one (outer,
// channel) row. `segments`: tiles per row.
struct TileGrid {
  TileGrid(const ChannelLayout& layout, bool two_d)
      : L(layout),
        rows(two_d ? layout.channels / 2 : layout.channels),
        blocked(layout.inner == 1),
        segments(((blocked ? rows : layout.inner) + kSegment - 1) / kSegment) {}

  // Channels-last: rows [o, o + nrows) of channel segment `segment`.
  TileAt Last(int64 o, int64 nrows, int64 segment) const {
    const int64 c0 = segment * kSegment;
    const int64 x = o * L.channels + c0;
    return TileAt{x, x + rows, o * rows + c0, nrows,
                  std::min(kSegment, rows - c0), L.channels, rows, c0};
  }
  // Channels-first: tile u of the (outer, channel, segment) tiles.
  TileAt First(int64 u) const {
    const int64 row = u / segments;  // o * rows + channel
    const int64 ch = row % rows;
    const int64 p0 = (u % segments) * kSegment;
    const int64 len = std::min(kSegment, L.inner - p0);
    const int64 x = ((row / rows) * L.channels + ch) * L.inner + p0;
    return TileAt{x, x + rows * L.inner, row * L.inner + p0, 1, len, len, len,
                  ch};
  }
  int64 tiles_first() const { return L.outer * rows * segments; }

  ChannelLayout L;
  int64 rows;  // alpha rows
  bool blocked;
  int64 segments;
};

// One call's constants, shared by its tiles.
template <typename A>
struct CallContext {
  const KafCpuParams<A>& p;
  const KafTiles<A>& tiles;  // of the selected CPU path
  int kernel;      // KafTileIndex of the call's KafKernel
  const A* table;  // MakeTable
  int64 K;         // table entries per alpha row
  int64 KA;        // dalpha entries per alpha row
};

template <typename A>
CallContext<A> MakeContext(const Setup<A>& setup, const KafConfig& config,
                           const AlignedBuffer<A>& table, bool two_d) {
  const int64 D = setup.params.D;
  return CallContext<A>{setup.params, SelectedTiles<A>(),
                        KafTileIndex(config.kernel), table.get(),
                        two_d ? D * D : kTab1d * D, two_d ? D * D : D};
}

// The forward of one tile (both layouts, 1D and 2D).
template <bool kTwoD, bool kUniform, typename A, typename T>
void ForwardTileAt(const CallContext<A>& c, TileBuffers<A, T>& buf,
                   const TileAt& at, const T* x, T* y) {
  int64 xs = 0, ys = 0;
  const A* tab = c.table + at.channel * c.K;
  const A* a1 = buf.In(0, x + at.x, at.rows, at.x_stride, at.len, &xs);
  A* yo = buf.Out(2, y + at.y, at.y_stride, &ys);
  const Tile t{at.rows, xs, at.len};
  if constexpr (kTwoD) {
    const A* a2 = buf.In(1, x + at.x2, at.rows, at.x_stride, at.len, &xs);
    c.tiles.forward2[kUniform](c.p, t, a1, a2, yo,
                               TileBuffers<A, T>::kConvert ? at.len : ys,
                               tab, buf.scratch());
  } else {  // x and y share their layout
    c.tiles.forward[c.kernel][kUniform](c.p, t, a1, yo, tab, buf.scratch());
  }
  buf.Flush(2, y + at.y, at.rows, at.y_stride, at.len);
}

// The backward of one tile: dx, and its dalpha sums added to the partial
// buffer `partial` ([alpha rows][KA], blocked per W rows channels-last).
template <bool kTwoD, bool kUniform, typename A, typename T>
void BackwardTileAt(const CallContext<A>& c, TileBuffers<A, T>& buf,
                    const TileAt& at, const T* dy, const T* x, T* dx,
                    A* partial) {
  int64 xs = 0, gs = 0, ds = 0;
  const A* tab = c.table + at.channel * c.K;
  A* dA = partial + at.channel * c.KA;
  const A* a1 = buf.In(0, x + at.x, at.rows, at.x_stride, at.len, &xs);
  const A* ga = buf.In(2, dy + at.y, at.rows, at.y_stride, at.len, &gs);
  A* d1 = buf.Out(3, dx + at.x, at.x_stride, &ds);
  const Tile t{at.rows, xs, at.len};
  if constexpr (kTwoD) {
    const A* a2 = buf.In(1, x + at.x2, at.rows, at.x_stride, at.len, &xs);
    A* d2 = buf.Out(4, dx + at.x2, at.x_stride, &ds);
    c.tiles.backward2[kUniform](c.p, t, ga, gs, a1, a2, d1, d2, tab, dA,
                                buf.scratch());
    buf.Flush(4, dx + at.x2, at.rows, at.x_stride, at.len);
  } else {  // x, dy and dx share their layout
    c.tiles.backward[c.kernel][kUniform](c.p, t, ga, a1, d1, tab, dA,
                                         buf.scratch());
  }
  buf.Flush(3, dx + at.x, at.rows, at.x_stride, at.len);
}

template <bool kTwoD, typename T>
void RunForward(const CpuDevice& device, const KafConfig& config,
                const T* x, const T* alpha, T* y) {
  using A = typename AccumulatorOf<T>::type;
  const ChannelLayout& L = config.layout;
  if (L.size() == 0) return;
  const TileGrid grid(L, kTwoD);
  const int64 alpha_size =
      grid.rows * config.num_centres * (kTwoD ? config.num_centres : 1);
  const Setup<A> setup(config, kTwoD, /*forward=*/true,
                       [&] { return MaxAbs(alpha, alpha_size); });
  const AlignedBuffer<A> table =
      MakeTable<A>(device, setup, alpha, grid.rows, kTwoD, grid.blocked);
  const CallContext<A> c = MakeContext(setup, config, table, kTwoD);
  const int64 D = setup.params.D;
  const int64 cost = ElementCost(config, kTwoD, false);
  if (grid.blocked) {
    const int64 row_tiles = (L.outer + kTileRows - 1) / kTileRows;
    device.parallel_for(
        row_tiles * grid.segments, kTileRows * kSegment * cost,
        [&](int64 begin, int64 end) {
          TileBuffers<A, T> buf(D, kTileRows * kSegment);
          for (int64 u = begin; u < end; ++u) {
            const int64 o = (u / grid.segments) * kTileRows;
            const TileAt at = grid.Last(o, std::min(kTileRows, L.outer - o),
                                        u % grid.segments);
            ForwardTileAt<kTwoD, false>(c, buf, at, x, y);
          }
        });
    return;
  }
  device.parallel_for(
      grid.tiles_first(), std::min(kSegment, L.inner) * cost,
      [&](int64 begin, int64 end) {
        TileBuffers<A, T> buf(D, kSegment);
        for (int64 u = begin; u < end; ++u) {
          ForwardTileAt<kTwoD, true>(c, buf, grid.First(u), x, y);
        }
      });
}

// Channels-last backward. Units: (row chunk, channel segment); each writes
// only its own slice of its chunk's partial sums, row tiles in order.
template <bool kTwoD, typename A, typename T>
void BackwardLast(const CpuDevice& device, const CallContext<A>& c,
                  const TileGrid& grid, int64 cost, const T* dy, const T* x,
                  T* dx, T* dalpha, const A* scale) {
  const int64 W = Width<A>();
  const int64 outer = grid.L.outer;
  const int64 padded = ((grid.rows + W - 1) / W) * W;
  const int64 stride = padded * c.KA;
  const ReductionChunks chunks =
      ReductionChunks::For(outer, grid.rows * c.KA, grid.rows, stride);
  AlignedBuffer<A> partial(chunks.count * stride, /*zero=*/false);
  device.parallel_for(
      chunks.count * grid.segments,
      chunks.rows_per_chunk * std::min(kSegment, grid.rows) * cost,
      [&](int64 begin, int64 end) {
        TileBuffers<A, T> buf(c.p.D, kTileRows * kSegment);
        for (int64 u = begin; u < end; ++u) {
          const int64 chunk = u / grid.segments;
          A* part = partial.get() + chunk * stride;
          const int64 o_begin = chunk * chunks.rows_per_chunk;
          const int64 o_end = std::min(outer, o_begin + chunks.rows_per_chunk);
          for (int64 o = o_begin; o < o_end; o += kTileRows) {
            const TileAt at = grid.Last(o, std::min(kTileRows, o_end - o),
                                        u % grid.segments);
            if (o == o_begin) {
              A* dA = part + at.channel * c.KA;
              std::fill(dA, dA + ((at.len + W - 1) / W) * c.KA * W, A(0));
            }
            BackwardTileAt<kTwoD, false>(c, buf, at, dy, x, dx, part);
          }
        }
      });
  ReducePartials(device, partial.get(), chunks.count, stride,
                 grid.rows, c.KA, /*blocked=*/true, scale, dalpha);
}

// Channels-first backward. Units: row chunks over (o, channel, segment)
// tiles.
template <bool kTwoD, typename A, typename T>
void BackwardFirst(const CpuDevice& device, const CallContext<A>& c,
                   const TileGrid& grid, int64 cost, const T* dy, const T* x,
                   T* dx, T* dalpha, const A* scale) {
  const int64 total = grid.tiles_first();
  const int64 stride = grid.rows * c.KA;
  const int64 tile_len = std::min(kSegment, grid.L.inner);
  const ReductionChunks chunks =
      ReductionChunks::For(total, tile_len * c.KA, tile_len, stride);
  AlignedBuffer<A> partial(chunks.count * stride, /*zero=*/false);
  device.parallel_for(
      chunks.count, chunks.rows_per_chunk * tile_len * cost,
      [&](int64 begin, int64 end) {
        TileBuffers<A, T> buf(c.p.D, kSegment);
        for (int64 chunk = begin; chunk < end; ++chunk) {
          A* part = partial.get() + chunk * stride;
          std::fill(part, part + stride, A(0));
          const int64 u_begin = chunk * chunks.rows_per_chunk;
          const int64 u_end = std::min(total, u_begin + chunks.rows_per_chunk);
          for (int64 u = u_begin; u < u_end; ++u) {
            BackwardTileAt<kTwoD, true>(c, buf, grid.First(u), dy, x, dx,
                                        part);
          }
        }
      });
  ReducePartials(device, partial.get(), chunks.count, stride,
                 grid.rows, c.KA, /*blocked=*/false, scale, dalpha);
}

// Walk mode sums dy e_j / C_j, up to |dy| exp(gamma boundary^2), and
// scales by C_j once per call (ReducePartials). Where |dy| times that passes
// A's largest value an entry comes out non-finite though the exact dalpha
// may be finite. The non-finite entries of every channel whose x and dy are
// all finite are summed again here directly, dy exp(-gamma (x - d_j)^2)
// over the channel's positions in order: deterministic, one scalar exp per
// redone entry and position (about 10x the whole backward where every entry
// overflows). Otherwise this costs one scan of dalpha (and of the inputs of
// channels with non-finite entries).
template <typename A, typename T>
void RedoNonFinite(const CpuDevice& device, const KafConfig& config,
                   const Setup<A>& setup, const T* dy, const T* x,
                   T* dalpha) {
  const ChannelLayout& L = config.layout;
  const KafCpuParams<A>& p = setup.params;
  const int64 D = p.D;
  auto finite = [](T v) { return std::isfinite(static_cast<A>(v)); };
  std::vector<int64> rows;
  for (int64 r = 0; r < L.channels; ++r) {
    const T* row = dalpha + r * D;
    if (!std::all_of(row, row + D, finite)) rows.push_back(r);
  }
  if (rows.empty()) return;
  // Calls f(x, dy) for channel r's positions, in order.
  auto each = [&](int64 r, auto f) {
    for (int64 o = 0; o < L.outer; ++o) {
      const int64 at = (o * L.channels + r) * L.inner;
      for (int64 i = 0; i < L.inner; ++i) f(x[at + i], dy[at + i]);
    }
  };
  const int64 positions = L.outer * L.inner;
  device.parallel_for(int64(rows.size()), positions * D * 40,
                      [&](int64 begin, int64 end) {
    std::vector<int64> redo;
    std::vector<A> sum;
    for (int64 u = begin; u < end; ++u) {
      bool inputs_finite = true;
      each(rows[u], [&](T xv, T g) {
        inputs_finite = inputs_finite && finite(xv) && finite(g);
      });
      T* row = dalpha + rows[u] * D;
      redo.clear();
      for (int64 j = 0; inputs_finite && j < D; ++j) {
        if (!finite(row[j])) redo.push_back(j);
      }
      sum.assign(redo.size(), A(0));
      if (!redo.empty()) each(rows[u], [&](T xv, T g) {
        // x is finite here: far from d_j the exp is 0 without a clamp.
        for (size_t n = 0; n < redo.size(); ++n) {
          const A t = static_cast<A>(xv) - setup.d[redo[n]];
          sum[n] += static_cast<A>(g) * std::exp(-p.gamma * t * t);
        }
      });
      for (size_t n = 0; n < redo.size(); ++n) {
        row[redo[n]] = static_cast<T>(sum[n]);
      }
    }
  });
}

template <bool kTwoD, typename T>
void RunBackward(const CpuDevice& device, const KafConfig& config,
                 const T* dy, const T* x, const T* alpha, T* dx, T* dalpha) {
  using A = typename AccumulatorOf<T>::type;
  const TileGrid grid(config.layout, kTwoD);
  const int64 D = config.num_centres;
  if (config.layout.size() == 0) {
    ZeroOutput(dalpha, grid.rows * (kTwoD ? D * D : D));
    return;
  }
  const Setup<A> setup(config, kTwoD, /*forward=*/false, [] { return 0.0; });
  const AlignedBuffer<A> table =
      MakeTable<A>(device, setup, alpha, grid.rows, kTwoD, grid.blocked);
  const CallContext<A> c = MakeContext(setup, config, table, kTwoD);
  const int64 cost = ElementCost(config, kTwoD, true);
  const A* scale = setup.fold ? setup.scale.data() : nullptr;
  if (grid.blocked) {
    BackwardLast<kTwoD>(device, c, grid, cost, dy, x, dx, dalpha, scale);
  } else {
    BackwardFirst<kTwoD>(device, c, grid, cost, dy, x, dx, dalpha, scale);
  }
  if (setup.fold) RedoNonFinite(device, config, setup, dy, x, dalpha);
}

}  // namespace

// The functors (kaf_kernels.h); 2D-KAF is Gaussian only.
template <typename T>
const char* functor::KafForward<CpuDevice, T>::operator()(
    const CpuDevice& device, const KafConfig& config, const T* x,
    const T* alpha, T* y) const {
  RunForward</*kTwoD=*/false>(device, config, x, alpha, y);
  return nullptr;
}

template <typename T>
int64 functor::KafBackward<CpuDevice, T>::ScratchSize(const KafConfig&) {
  return 0;
}

template <typename T>
const char* functor::KafBackward<CpuDevice, T>::operator()(
    const CpuDevice& device, const KafConfig& config, const T* dy, const T* x,
    const T* alpha, T* dx, T* dalpha, Acc*) const {
  RunBackward</*kTwoD=*/false>(device, config, dy, x, alpha, dx, dalpha);
  return nullptr;
}

template <typename T>
const char* functor::Kaf2dForward<CpuDevice, T>::operator()(
    const CpuDevice& device, const KafConfig& config, const T* x,
    const T* alpha, T* y) const {
  KafConfig c = config;
  c.kernel = KafKernel::kGaussian;
  RunForward</*kTwoD=*/true>(device, c, x, alpha, y);
  return nullptr;
}

template <typename T>
int64 functor::Kaf2dBackward<CpuDevice, T>::ScratchSize(const KafConfig&) {
  return 0;
}

template <typename T>
const char* functor::Kaf2dBackward<CpuDevice, T>::operator()(
    const CpuDevice& device, const KafConfig& config, const T* dy, const T* x,
    const T* alpha, T* dx, T* dalpha, Acc*) const {
  KafConfig c = config;
  c.kernel = KafKernel::kGaussian;
  RunBackward</*kTwoD=*/true>(device, c, dy, x, alpha, dx, dalpha);
  return nullptr;
}

#define TFKAF_INSTANTIATE(T) \
  TFKAF_INSTANTIATE_FUNCTORS(KafForward, KafBackward, CpuDevice, T) \
  TFKAF_INSTANTIATE_FUNCTORS(Kaf2dForward, Kaf2dBackward, CpuDevice, T)

TFKAF_FOR_CPU_TYPES(TFKAF_INSTANTIATE)
#undef TFKAF_INSTANTIATE

}  // namespace tfkaf
