// Learnable linear spline (DeepSplines): CPU functors and the OpKernels of
// Tfkaf>LinearSpline and Tfkaf>LinearSplineGrad (CPU always; GPU when built
// with TFKAF_WITH_CUDA, the functors living in spline_kernels.cu.cc).
//
// Formulas and the NaN/Inf-safe index rule: spline_kernels.h.
//
// CPU backward: one pass over (dy, x) writes dx and accumulates the
// coefficient gradient into per-chunk partial buffers ([C, K] pairs, see
// BackwardRun). The chunks are a fixed partition of the elements that
// depends only on the problem size (ReductionChunks), and the partials are
// summed in chunk order, so dcoefficients is bitwise identical from run to
// run whatever the number of threads.
//
// Float inputs use AVX2 gathers where the CPU has them (runtime dispatch;
// the plugin itself targets baseline x86-64), bitwise identical to the
// scalar loops.

#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif

#include "cc/kernels/spline_kernels.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cc/kernels/op_util.h"
#include "cc/rules/spline_rules.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/determinism.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TFKAF_SPLINE_AVX2 1
#include <immintrin.h>
#endif

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

#ifdef TFKAF_SPLINE_AVX2
// AVX2 versions for float, 8 elements at a time (coefficients by gather).
// Same operations in the same order as the scalar loops (no FMA
// contraction), so results are bitwise identical whichever path runs. They
// process the largest multiple of 8 of n and return it; the caller finishes
// with the scalar loop. Require channels * K < 2^31 and K <= 2^24 (int32
// indices; K - 2 exact in float), checked by UseAvx2.
bool CpuHasAvx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

bool UseAvx2(const SplineParams& params) {
  return CpuHasAvx2() && params.knots <= (int64{1} << 24) &&
         params.layout.channels * params.knots < (int64{1} << 31);
}

struct Avx2Segments {
  __m256i index;  // coefficient index (lane base + i)
  __m256 t;
  __m256 u;
};

__attribute__((target("avx2"))) inline Avx2Segments Avx2Segment(
    __m256 xv, __m256 x_min, __m256 scale, __m256 last_f, __m256i last,
    __m256i base) {
  const __m256 t = _mm256_mul_ps(_mm256_sub_ps(xv, x_min), scale);
  // max_ps returns its second operand when the first is NaN: NaN -> 0.
  const __m256 clamped =
      _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), last_f);
  const __m256i i = _mm256_min_epi32(_mm256_cvttps_epi32(clamped), last);
  Avx2Segments out;
  out.t = t;
  out.u = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
  out.index = _mm256_add_epi32(base, i);
  return out;
}

__attribute__((target("avx2"))) int64 ForwardRunAvx2(
    const Grid<float>& grid, const float* x, const float* coeff,
    int64 channel_stride, int64 n, float* y) {
  const __m256 x_min = _mm256_set1_ps(grid.x_min);
  const __m256 scale = _mm256_set1_ps(grid.scale);
  const __m256 last_f = _mm256_set1_ps(grid.last_f);
  const __m256i last = _mm256_set1_epi32(static_cast<int>(grid.last));
  const int stride = static_cast<int>(channel_stride);
  __m256i base = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                    _mm256_set1_epi32(stride));
  const __m256i step = _mm256_set1_epi32(8 * stride);
  const int64 done = n & ~int64{7};
  for (int64 j = 0; j < done; j += 8) {
    const Avx2Segments s = Avx2Segment(_mm256_loadu_ps(x + j), x_min, scale,
                                       last_f, last, base);
    const __m256 c0 = _mm256_i32gather_ps(coeff, s.index, 4);
    const __m256 c1 = _mm256_i32gather_ps(coeff + 1, s.index, 4);
    _mm256_storeu_ps(
        y + j, _mm256_add_ps(c0, _mm256_mul_ps(s.u, _mm256_sub_ps(c1, c0))));
    base = _mm256_add_epi32(base, step);
  }
  return done;
}

// pair[0..1] += the two low lanes of v (one 8-byte load and store; the
// intrinsics' operand types are may_alias, so float memory is fine).
__attribute__((target("avx2"))) inline void AddPair(float* pair, __m128 v) {
  __m128i* target = reinterpret_cast<__m128i*>(pair);
  const __m128 old = _mm_castsi128_ps(_mm_loadl_epi64(target));
  _mm_storel_epi64(target, _mm_castps_si128(_mm_add_ps(old, v)));
}

__attribute__((target("avx2"))) int64 BackwardRunAvx2(
    const Grid<float>& grid, const float* dy, const float* x,
    const float* slopes, float* acc, int64 channel_stride, int64 n,
    float* dx) {
  const __m256 x_min = _mm256_set1_ps(grid.x_min);
  const __m256 scale = _mm256_set1_ps(grid.scale);
  const __m256 last_f = _mm256_set1_ps(grid.last_f);
  const __m256i last = _mm256_set1_epi32(static_cast<int>(grid.last));
  const int stride = static_cast<int>(channel_stride);
  __m256i base = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                    _mm256_set1_epi32(stride));
  const __m256i step = _mm256_set1_epi32(8 * stride);
  alignas(32) int index[8];
  const int64 done = n & ~int64{7};
  for (int64 j = 0; j < done; j += 8) {
    const Avx2Segments s = Avx2Segment(_mm256_loadu_ps(x + j), x_min, scale,
                                       last_f, last, base);
    // The slope, or t itself where t is NaN (as the scalar loop).
    const __m256 d = _mm256_blendv_ps(
        s.t, _mm256_i32gather_ps(slopes, s.index, 4),
        _mm256_cmp_ps(s.t, s.t, _CMP_ORD_Q));
    const __m256 g = _mm256_loadu_ps(dy + j);
    _mm256_storeu_ps(dx + j, _mm256_mul_ps(g, d));
    const __m256 ug = _mm256_mul_ps(s.u, g);
    const __m256 w0 = _mm256_sub_ps(g, ug);
    const __m256 lo = _mm256_unpacklo_ps(w0, ug);  // pairs of lanes 0 1 | 4 5
    const __m256 hi = _mm256_unpackhi_ps(w0, ug);  // pairs of lanes 2 3 | 6 7
    _mm256_store_si256(reinterpret_cast<__m256i*>(index), s.index);
    const __m128 p01 = _mm256_castps256_ps128(lo);
    const __m128 p23 = _mm256_castps256_ps128(hi);
    const __m128 p45 = _mm256_extractf128_ps(lo, 1);
    const __m128 p67 = _mm256_extractf128_ps(hi, 1);
    // In lane order, so conflicting lanes (one channel) add in order.
    AddPair(acc + 2 * int64{index[0]}, p01);
    AddPair(acc + 2 * int64{index[1]}, _mm_movehl_ps(p01, p01));
    AddPair(acc + 2 * int64{index[2]}, p23);
    AddPair(acc + 2 * int64{index[3]}, _mm_movehl_ps(p23, p23));
    AddPair(acc + 2 * int64{index[4]}, p45);
    AddPair(acc + 2 * int64{index[5]}, _mm_movehl_ps(p45, p45));
    AddPair(acc + 2 * int64{index[6]}, p67);
    AddPair(acc + 2 * int64{index[7]}, _mm_movehl_ps(p67, p67));
    base = _mm256_add_epi32(base, step);
  }
  return done;
}
#endif  // TFKAF_SPLINE_AVX2

// Dispatch: the AVX2 loop where it applies (float), then the scalar loop.
template <typename T, typename Acc>
inline void Forward(bool avx2, const Grid<Acc>& grid, const T* x,
                    const Acc* coeff, int64 channel_stride, int64 n, T* y) {
  int64 done = 0;
#ifdef TFKAF_SPLINE_AVX2
  if constexpr (std::is_same<T, float>::value) {
    if (avx2) done = ForwardRunAvx2(grid, x, coeff, channel_stride, n, y);
  }
#endif
  ForwardRun<T, Acc>(grid, x + done, coeff + done * channel_stride,
                     channel_stride, n - done, y + done);
}

template <typename T, typename Acc>
inline void Backward(bool avx2, const Grid<Acc>& grid, const T* dy,
                     const T* x, const Acc* slopes, Acc* acc,
                     int64 channel_stride, int64 n, T* dx) {
  int64 done = 0;
#ifdef TFKAF_SPLINE_AVX2
  if constexpr (std::is_same<T, float>::value) {
    if (avx2) {
      done = BackwardRunAvx2(grid, dy, x, slopes, acc, channel_stride, n, dx);
    }
  }
#endif
  BackwardRun<T, Acc>(grid, dy + done, x + done,
                      slopes + done * channel_stride,
                      acc + 2 * done * channel_stride, channel_stride,
                      n - done, dx + done);
}

bool Avx2Applies(const SplineParams& params) {
#ifdef TFKAF_SPLINE_AVX2
  return UseAvx2(params);
#else
  (void)params;
  return false;
#endif
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

// fn(offset, table_offset, stride, n) for each run of flat elements
// [offset, offset + n) inside one row, covering [begin, end): the run's
// first element uses coefficient row table_offset / K, the next ones step
// by `stride` coefficients (K channels-last, 0 within one channel's run).
template <typename Fn>
inline void ForEachRun(const RowView& view, int64 knots, int64 begin,
                       int64 end, Fn fn) {
  int64 e = begin;
  while (e < end) {
    const int64 row = e / view.row_length;
    const int64 column = e - row * view.row_length;
    const int64 n = std::min(end - e, view.row_length - column);
    if (view.channels_last) {
      fn(e, column * knots, knots, n);
    } else {
      fn(e, (row % view.channels) * knots, int64{0}, n);
    }
    e += n;
  }
}

constexpr int64 kCyclesPerElement = 12;
constexpr int64 kForwardBlock = 4096;  // elements per forward work unit

// Fixed partition of the flat elements for the backward's reduction:
// ReductionChunks' size-only rule, further capped so that the partial
// buffers (zeroing + reduction) stay a small fraction of the element work
// (at most one buffer per 4 * buffer-size elements). Never depends on the
// thread count.
ReductionChunks BackwardChunks(const SplineParams& params) {
  const int64 size = params.layout.size();
  const int64 pair_size = 2 * params.layout.channels * params.knots;
  ReductionChunks chunks = ReductionChunks::For(size, 1, pair_size);
  const int64 max_chunks = std::max<int64>(1, size / (4 * pair_size));
  if (chunks.count > max_chunks) {
    chunks.rows_per_chunk = (size + max_chunks - 1) / max_chunks;
    chunks.count = (size + chunks.rows_per_chunk - 1) / chunks.rows_per_chunk;
  }
  return chunks;
}

}  // namespace

int64 LinearSplineCpuScratchSize(const SplineParams& params) {
  const int64 table_size = params.layout.channels * params.knots;
  if (table_size == 0 || params.layout.size() == 0) return 0;
  return table_size + BackwardChunks(params).count * 2 * table_size;
}

template <typename T>
struct LinearSplineForward<SplineCpuDevice, T> {
  const char* operator()(const SplineCpuDevice& device,
                         const SplineParams& params, const T* x,
                         const T* coefficients, T* y) const {
    using Acc = typename AccumulatorOf<T>::type;
    const ChannelLayout& layout = params.layout;
    if (layout.size() == 0) return nullptr;
    const int64 knots = params.knots;
    const CoefficientTable<T, Acc> table(coefficients,
                                         layout.channels * knots);
    const Grid<Acc> grid(params);
    const RowView view(layout);
    const Acc* coeff = table.data();
    const bool avx2 = Avx2Applies(params);
    const int64 blocks = (view.size + kForwardBlock - 1) / kForwardBlock;
    device.parallel_for(
        blocks, kForwardBlock * kCyclesPerElement,
        [&](int64 begin, int64 end) {
          ForEachRun(view, knots, begin * kForwardBlock,
                     std::min(view.size, end * kForwardBlock),
                     [&](int64 offset, int64 table_offset, int64 stride,
                         int64 n) {
                       Forward<T, Acc>(avx2, grid, x + offset,
                                       coeff + table_offset, stride, n,
                                       y + offset);
                     });
        });
    return nullptr;
  }
};

template <typename T, typename Acc>
struct LinearSplineBackward<SplineCpuDevice, T, Acc> {
  const char* operator()(const SplineCpuDevice& device,
                         const SplineParams& params, const T* dy, const T* x,
                         const T* coefficients, T* dx, T* dcoefficients,
                         Acc* scratch) const {
    const ChannelLayout& layout = params.layout;
    const int64 knots = params.knots;
    const int64 table_size = layout.channels * knots;
    if (table_size == 0) return nullptr;
    if (layout.size() == 0) {
      std::fill(dcoefficients, dcoefficients + table_size, T(0));
      return nullptr;
    }
    const Grid<Acc> grid(params);
    const RowView view(layout);
    const bool avx2 = Avx2Applies(params);
    const int64 pair_size = 2 * table_size;  // segment-pair partials
    const ReductionChunks chunks = BackwardChunks(params);
    Acc* slopes = scratch;                 // [C, K]
    Acc* partials = scratch + table_size;  // chunks.count x [C, K, 2]

    // slopes[c, k] = (c[k+1] - c[k]) * scale (last column unused).
    device.parallel_for(
        layout.channels, knots * 4, [&](int64 begin, int64 end) {
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

    device.parallel_for(
        chunks.count,
        chunks.rows_per_chunk * 2 * kCyclesPerElement,
        [&](int64 begin, int64 end) {
          for (int64 chunk = begin; chunk < end; ++chunk) {
            Acc* acc = partials + chunk * pair_size;
            std::fill(acc, acc + pair_size, Acc(0));
            const int64 first = chunk * chunks.rows_per_chunk;
            const int64 last =
                std::min(view.size, first + chunks.rows_per_chunk);
            ForEachRun(view, knots, first, last,
                       [&](int64 offset, int64 table_offset, int64 stride,
                           int64 n) {
                         Backward<T, Acc>(avx2, grid, dy + offset, x + offset,
                                          slopes + table_offset,
                                          acc + 2 * table_offset, stride, n,
                                          dx + offset);
                       });
          }
        });

    // 1. Sum the partials in chunk order into chunk 0's buffer, per block of
    //    entries. 2. dcoefficients[c, k] = P[c, k].first + P[c, k-1].second.
    constexpr int64 kBlock = 2048;
    Acc* sum = partials;
    if (chunks.count > 1) {
      const int64 blocks = (pair_size + kBlock - 1) / kBlock;
      device.parallel_for(
          blocks, kBlock * chunks.count, [&](int64 begin, int64 end) {
            for (int64 b = begin; b < end; ++b) {
              const int64 lo = b * kBlock;
              const int64 hi = std::min(pair_size, lo + kBlock);
              for (int64 chunk = 1; chunk < chunks.count; ++chunk) {
                const Acc* part = partials + chunk * pair_size;
                for (int64 m = lo; m < hi; ++m) sum[m] += part[m];
              }
            }
          });
    }
    device.parallel_for(
        layout.channels, knots * 4, [&](int64 begin, int64 end) {
          for (int64 c = begin; c < end; ++c) {
            const Acc* p = sum + 2 * c * knots;
            T* out = dcoefficients + c * knots;
            out[0] = static_cast<T>(p[0]);
            for (int64 k = 1; k < knots; ++k) {
              out[k] = static_cast<T>(p[2 * k] + p[2 * k - 1]);
            }
          }
        });
    return nullptr;
  }
};

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

struct CpuTag {};
struct GpuTag {};

// The functors' parameters from the rule's facts (the real shapes).
SplineParams ParamsOf(const SplineAttrs& attrs, const SplineFacts& facts) {
  SplineParams params;
  params.layout = facts.layout;
  params.knots = facts.knots;
  params.x_min = static_cast<double>(attrs.x_min);
  params.scale =
      static_cast<double>(facts.knots - 1) /
      (static_cast<double>(attrs.x_max) - static_cast<double>(attrs.x_min));
  return params;
}

SplineCpuDevice CpuDeviceOf(OpKernelContext* context) {
  SplineCpuDevice device;
  device.parallel_for = [context](int64 units, int64 cost,
                                  const std::function<void(int64, int64)>& fn) {
    ParallelFor(context, units, cost, fn);
  };
  return device;
}

template <typename Tag, typename T>
struct Launch;

template <typename T>
struct Launch<CpuTag, T> {
  using Acc = typename AccumulatorOf<T>::type;
  static const char* Forward(OpKernelContext* context,
                             const SplineParams& params, const T* x,
                             const T* coefficients, T* y) {
    return LinearSplineForward<SplineCpuDevice, T>()(
        CpuDeviceOf(context), params, x, coefficients, y);
  }
  static absl::Status Backward(OpKernelContext* context,
                               const SplineParams& params, const T* dy,
                               const T* x, const T* coefficients, T* dx,
                               T* dcoefficients, const char** error) {
    Tensor scratch;
    Acc* scratch_data = nullptr;
    const int64 scratch_size = LinearSplineCpuScratchSize(params);
    if (scratch_size > 0) {
      absl::Status status = context->allocate_temp(
          tensorflow::DataTypeToEnum<Acc>::value, TensorShape({scratch_size}),
          &scratch);
      if (!status.ok()) return status;
      scratch_data = scratch.flat<Acc>().data();
    }
    *error = LinearSplineBackward<SplineCpuDevice, T, Acc>()(
        CpuDeviceOf(context), params, dy, x, coefficients, dx, dcoefficients,
        scratch_data);
    return absl::OkStatus();
  }
};

#ifdef TFKAF_WITH_CUDA
template <typename T>
struct Launch<GpuTag, T> {
  using Acc = typename AccumulatorOf<T>::type;
  using Storage = typename GpuStorage<T>::type;
  static const char* Forward(OpKernelContext* context,
                             const SplineParams& params, const T* x,
                             const T* coefficients, T* y) {
    GpuDevice device;
    device.stream = GpuStreamOf(context);
    return LinearSplineForward<GpuDevice, Storage>()(
        device, params, GpuPointer(x), GpuPointer(coefficients),
        GpuPointer(y));
  }
  static absl::Status Backward(OpKernelContext* context,
                               const SplineParams& params, const T* dy,
                               const T* x, const T* coefficients, T* dx,
                               T* dcoefficients, const char** error) {
    GpuDevice device;
    device.stream = GpuStreamOf(context);
    Acc* accumulator = nullptr;
    Tensor scratch;
    if constexpr (std::is_same<T, Acc>::value) {
      accumulator = dcoefficients;
    } else {
      const int64 count = params.layout.channels * params.knots;
      absl::Status status = context->allocate_temp(
          tensorflow::DataTypeToEnum<Acc>::value, TensorShape({count}),
          &scratch);
      if (!status.ok()) return status;
      accumulator = scratch.flat<Acc>().data();
    }
    *error = LinearSplineBackward<GpuDevice, Storage, Acc>()(
        device, params, GpuPointer(dy), GpuPointer(x),
        GpuPointer(coefficients), GpuPointer(dx), GpuPointer(dcoefficients),
        accumulator);
    return absl::OkStatus();
  }
};
#endif  // TFKAF_WITH_CUDA

class SplineOpBase : public OpKernel {
 public:
  explicit SplineOpBase(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("x_min", &attrs_.x_min));
    OP_REQUIRES_OK(context, context->GetAttr("x_max", &attrs_.x_max));
    OP_REQUIRES_OK(context, context->GetAttr("axis", &attrs_.axis));
  }

 protected:
  SplineAttrs attrs_;
};

// Tfkaf>LinearSpline: (x, coefficients) -> y.
template <typename Tag, typename T>
class LinearSplineOp : public SplineOpBase {
 public:
  using SplineOpBase::SplineOpBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& coefficients = context->input(1);
    SplineFacts facts;
    OP_REQUIRES_OK(context,
                   StatusOf(CheckSpline(attrs_, DimsOf(x.shape()),
                                        DimsOf(coefficients.shape()), &facts)));
    const SplineParams params = ParamsOf(attrs_, facts);
    // y may take x's buffer when nothing else holds it: every element is
    // read before it is written, by the same thread.
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output(
                                {0}, 0, x.shape(), &y));
    if (x.NumElements() == 0) return;
    const char* error = Launch<Tag, T>::Forward(
        context, params, x.flat<T>().data(), coefficients.flat<T>().data(),
        y->flat<T>().data());
    OP_REQUIRES(context, error == nullptr,
                absl::InternalError(absl::StrCat(
                    "Tfkaf>LinearSpline kernel launch failed: ", error)));
  }
};

// Tfkaf>LinearSplineGrad: (dy, x, coefficients) -> (dx, dcoefficients).
template <typename Tag, typename T>
class LinearSplineGradOp : public SplineOpBase {
 public:
  using SplineOpBase::SplineOpBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& coefficients = context->input(2);
    SplineFacts facts;
    OP_REQUIRES_OK(context, StatusOf(CheckSplineGrad(
                                attrs_, DimsOf(dy.shape()), DimsOf(x.shape()),
                                DimsOf(coefficients.shape()), &facts)));
    SplineParams params = ParamsOf(attrs_, facts);
    params.deterministic = tensorflow::OpDeterminismRequired();
    // dx may take dy's (or x's) buffer, as ReluGrad does: each element of dy
    // and x is read before dx is written there, by the same thread (on the
    // GPU's deterministic path dcoefficients is computed before dx).
    Tensor* dx = nullptr;
    Tensor* dcoefficients = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output(
                                {0, 1}, 0, x.shape(), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(
                                1, coefficients.shape(), &dcoefficients));
    if (dcoefficients->NumElements() == 0) return;
    const char* error = nullptr;
    OP_REQUIRES_OK(context,
                   Launch<Tag, T>::Backward(
                       context, params, dy.flat<T>().data(),
                       x.flat<T>().data(), coefficients.flat<T>().data(),
                       dx->flat<T>().data(), dcoefficients->flat<T>().data(),
                       &error));
    OP_REQUIRES(context, error == nullptr,
                absl::InternalError(absl::StrCat(
                    "Tfkaf>LinearSplineGrad kernel launch failed: ", error)));
  }
};

#define TFKAF_REGISTER_SPLINE(DEVICE, TAG, T)                         \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>LinearSpline")                  \
                              .Device(tensorflow::DEVICE)             \
                              .TypeConstraint<T>("T"),                \
                          LinearSplineOp<TAG, T>);                    \
  REGISTER_KERNEL_BUILDER(Name("Tfkaf>LinearSplineGrad")              \
                              .Device(tensorflow::DEVICE)             \
                              .TypeConstraint<T>("T"),                \
                          LinearSplineGradOp<TAG, T>);

TFKAF_REGISTER_SPLINE(DEVICE_CPU, CpuTag, float)
TFKAF_REGISTER_SPLINE(DEVICE_CPU, CpuTag, double)
TFKAF_REGISTER_SPLINE(DEVICE_CPU, CpuTag, Eigen::half)
TFKAF_REGISTER_SPLINE(DEVICE_CPU, CpuTag, Eigen::bfloat16)

#ifdef TFKAF_WITH_CUDA
TFKAF_REGISTER_SPLINE(DEVICE_GPU, GpuTag, float)
TFKAF_REGISTER_SPLINE(DEVICE_GPU, GpuTag, double)
TFKAF_REGISTER_SPLINE(DEVICE_GPU, GpuTag, Eigen::half)
TFKAF_REGISTER_SPLINE(DEVICE_GPU, GpuTag, Eigen::bfloat16)
#endif  // TFKAF_WITH_CUDA

#undef TFKAF_REGISTER_SPLINE

}  // namespace
}  // namespace tfkaf
