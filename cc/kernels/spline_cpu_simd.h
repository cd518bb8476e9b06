// Vector loops of the linear spline's CPU functors (spline_cpu.cc), compiled
// once per CPU path through cpu_paths.h; deliberately without an include
// guard. The includer provides Grid, Tile, kPrefetchRows, <immintrin.h> and
// int64.
//
// Float only, 8 elements at a time on the avx2 and avx512 paths (scalar
// loads of the coefficient pairs, LoadPairs, and scalar updates of the
// partial-sum pairs, AddPairs; the avx512 path gathers and scatters them
// instead, GatherPairs and ScatterAddPairs), 4 with SSE2 on the baseline
// path (forward only: its backward returns 0). The avx512 path keeps 8
// lanes: on an Intel Xeon with AVX-512 (one thread, [4096, 1024], K = 51)
// 16 lanes with two AVX-512 gathers ran forward in 3.2 ms and backward in
// 7.0 ms, 16 lanes of scalar pair loads in 3.5 and 7.4 ms, and the 8-lane
// loops in 2.95 and 6.65 ms: the loop is bound by the table accesses at
// data-dependent indices, which wider vectors do not make fewer.
//
// The forward takes one run of n elements, the backward a tile (every row
// of a column block, spline_cpu.cc); each processes the largest multiple
// of the vector width of a row and returns it, and the caller finishes
// each row with the scalar loop. Same operations in the same order as the
// scalar loops, without FMA contraction (hence
// `optimize("fp-contract=off")` below, the paths' targets enabling FMA), so
// results are bitwise identical whichever path runs. Require channels * K <
// 2^31 and K <= 2^24 (int32 indices; K - 2 exact in float), checked by
// SplineLoopsFor (spline_cpu.cc).

#ifndef TFKAF_SIMD_NS
#error "include spline_cpu_simd.h through cpu_paths.h"
#endif

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace tfkaf {
namespace TFKAF_SIMD_NS {
namespace {

// table[a[0]], table[a[0] + 1], table[b[0]], table[b[0] + 1]: two 8-byte
// loads (bits moved, not converted). a and b are only float-aligned:
// _mm_loadu_si64 reads through an unaligned type, where GCC's _mm_load_sd
// dereferences a double pointer (undefined behaviour that UBSan reports);
// _mm_loadh_pd is a builtin without that dereference.
inline __m128 LoadTwoPairs(const float* a, const float* b) {
  const __m128d lo = _mm_castsi128_pd(_mm_loadu_si64(a));
  return _mm_castpd_ps(_mm_loadh_pd(lo, reinterpret_cast<const double*>(b)));
}

#if TFKAF_SIMD_AVX2

struct Segments {
  __m256i index;  // coefficient index (lane base + i)
  __m256 t;
  __m256 u;
};

// Broadcast constants of one run: the grid, and the lanes' coefficient
// offsets (lane l starts l * stride coefficients on).
struct RunConstants {
  RunConstants(const Grid<float>& grid, int64 channel_stride)
      : x_min(_mm256_set1_ps(grid.x_min)),
        scale(_mm256_set1_ps(grid.scale)),
        last_f(_mm256_set1_ps(grid.last_f)),
        last(_mm256_set1_epi32(static_cast<int>(grid.last))),
        base(_mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(static_cast<int>(channel_stride)))),
        step(_mm256_set1_epi32(8 * static_cast<int>(channel_stride))) {}
  __m256 x_min, scale, last_f;
  __m256i last, base, step;
};

// SplineSegment (spline_kernels.h) for 8 lanes.
inline Segments Segment(const RunConstants& k, __m256 xv, __m256i base) {
  const __m256 t = _mm256_mul_ps(_mm256_sub_ps(xv, k.x_min), k.scale);
  // max_ps returns its second operand when the first is NaN: NaN -> 0.
  const __m256 clamped =
      _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), k.last_f);
  const __m256i i = _mm256_min_epi32(_mm256_cvttps_epi32(clamped), k.last);
  Segments out;
  out.t = t;
  out.u = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
  out.index = _mm256_add_epi32(base, i);
  return out;
}

// pair[0..1] += the two low lanes of v (one 8-byte load and store; the
// intrinsics' operand types are may_alias, so float memory is fine).
inline void AddPair(float* pair, __m128 v) {
  __m128i* target = reinterpret_cast<__m128i*>(pair);
  const __m128 old = _mm_castsi128_ps(_mm_loadl_epi64(target));
  _mm_storel_epi64(target, _mm_castps_si128(_mm_add_ps(old, v)));
}

// Adds the 8 lanes' ((1 - u) g, u g) pairs to acc at their indices (at), in
// lane order, so that conflicting lanes (one channel) add in order.
inline void AddPairs(float* acc, const int* at, __m256 w0, __m256 ug) {
  const __m256 lo = _mm256_unpacklo_ps(w0, ug);  // pairs of lanes 0 1 | 4 5
  const __m256 hi = _mm256_unpackhi_ps(w0, ug);  // pairs of lanes 2 3 | 6 7
  const __m128 p01 = _mm256_castps256_ps128(lo);
  const __m128 p23 = _mm256_castps256_ps128(hi);
  const __m128 p45 = _mm256_extractf128_ps(lo, 1);
  const __m128 p67 = _mm256_extractf128_ps(hi, 1);
  AddPair(acc + 2 * int64{at[0]}, p01);
  AddPair(acc + 2 * int64{at[1]}, _mm_movehl_ps(p01, p01));
  AddPair(acc + 2 * int64{at[2]}, p23);
  AddPair(acc + 2 * int64{at[3]}, _mm_movehl_ps(p23, p23));
  AddPair(acc + 2 * int64{at[4]}, p45);
  AddPair(acc + 2 * int64{at[5]}, _mm_movehl_ps(p45, p45));
  AddPair(acc + 2 * int64{at[6]}, p67);
  AddPair(acc + 2 * int64{at[7]}, _mm_movehl_ps(p67, p67));
}

// The 8 lanes' indices, stored once per vector for the scalar loads below.
inline void StoreIndices(int* at, __m256i index) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(at), index);
}

// first = table[at[l]] and second = table[at[l] + 1] for the 8 lanes l. Each
// pair is adjacent, so eight 8-byte scalar loads fetch both (lanes 0 1 4 5
// into lo, 2 3 6 7 into hi) and two shuffles put them in lane order. On
// Zen 3 this is ~25% faster than two 8-lane gathers (~10% faster than two
// 4-lane 64-bit gathers); the index is >= 0 and at most K - 2, so
// at[l] + 1 stays inside the row.
inline void LoadPairs(const float* table, const int* at, __m256* first,
                      __m256* second) {
  const __m256 lo = _mm256_set_m128(LoadTwoPairs(table + at[4], table + at[5]),
                                    LoadTwoPairs(table + at[0], table + at[1]));
  const __m256 hi = _mm256_set_m128(LoadTwoPairs(table + at[6], table + at[7]),
                                    LoadTwoPairs(table + at[2], table + at[3]));
  *first = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  *second = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}


#if TFKAF_SIMD_AVX512
// The index vector's lanes in the order 0 1 4 5 2 3 6 7 (one vpermq): that
// of the pairs that _mm256_unpack{lo,hi}_ps make of two vectors, and that
// _mm256_shuffle_ps takes them apart from.
inline __m256i PairOrder(__m256i index) {
  return _mm256_permute4x64_epi64(index, _MM_SHUFFLE(3, 1, 2, 0));
}

// LoadPairs by two 4-lane 64-bit gathers straight from the index vector,
// in PairOrder: lanes 0 1 4 5 into lo, 2 3 6 7 into hi, so that LoadPairs'
// shuffles put the pairs in lane order. The avx512 path's
// forward only: on an Intel Xeon with AVX-512 (one thread, [4096, 1024],
// K = 51) it took 2.2-2.4 ms this way against 2.9-3.0 ms with LoadPairs,
// whose lane extractions (GCC turns StoreIndices' reloads into vpextrd) and
// pair inserts all queue for one shuffle port. Not on the avx2 path: on
// Zen 3 LoadPairs was ~10% faster than these gathers.
inline void GatherPairs(const float* table, __m256i index, __m256* first,
                        __m256* second) {
  const __m256i order = PairOrder(index);
  const double* base = reinterpret_cast<const double*>(table);
  const __m256 lo = _mm256_castpd_ps(
      _mm256_i32gather_pd(base, _mm256_castsi256_si128(order), 4));
  const __m256 hi = _mm256_castpd_ps(
      _mm256_i32gather_pd(base, _mm256_extracti128_si256(order, 1), 4));
  *first = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  *second = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}

// AddPairs for a channels-last vector, whose 8 lanes are 8 channels and so
// 8 distinct pairs: the lanes' (w0, ug) pairs as _mm256_unpack{lo,hi}_ps
// leave them (PairOrder), the old pairs read in that order by one 64-bit
// gather, and the sums written back by one 64-bit
// scatter. The same additions as AddPairs', so the same bits. With the
// slope gathered too, `tfkaf bench`'s spline forward+backward went from
// 1.34-1.38x to 1.28-1.32x relu (2 threads, Intel Xeon); without the
// column blocks (partial sums in L2) these gained nothing. (GCC vector
// casts and __builtin_shufflevector instead of intrinsics, so that the
// native check's AVX-512 emulation needs only the gather and the scatter.)
inline void ScatterAddPairs(float* acc, __m256i index, __m256 w0,
                            __m256 ug) {
  const __m256i order = PairOrder(index);
  const __m256d lo = _mm256_castps_pd(_mm256_unpacklo_ps(w0, ug));
  const __m256d hi = _mm256_castps_pd(_mm256_unpackhi_ps(w0, ug));
  const __m512d pairs = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6,
                                                7);
  const __m512d old = _mm512_i32gather_pd(order, acc, 8);
  _mm512_i32scatter_pd(acc, order, (__m512d)((__m512)old + (__m512)pairs),
                       8);
}
#endif

// Each path's table accesses in the loops below: the coefficient pairs of
// the forward, the slopes and the pair updates of the backward. `at`
// receives the lanes' indices where a path reads through them
// (StoreIndices).
#if TFKAF_SIMD_AVX512
inline void CoefficientPairs(const float* coeff, __m256i index, __m256* c0,
                             __m256* c1) {
  GatherPairs(coeff, index, c0, c1);
}
inline __m256 Slopes(const float* slopes, __m256i index, int*) {
  return _mm256_i32gather_ps(slopes, index, 4);
}
// ScatterAddPairs where the lanes are channels (channel_stride > 0), else
// AddPairs: the lanes of one channel's run may share a pair.
inline void UpdatePairs(float* acc, __m256i index, int* at,
                        int64 channel_stride, __m256 w0, __m256 ug) {
  if (channel_stride > 0) {
    ScatterAddPairs(acc, index, w0, ug);
    return;
  }
  StoreIndices(at, index);
  AddPairs(acc, at, w0, ug);
}
#else
inline void CoefficientPairs(const float* coeff, __m256i index, __m256* c0,
                             __m256* c1) {
  alignas(32) int at[8];
  StoreIndices(at, index);
  LoadPairs(coeff, at, c0, c1);
}
inline __m256 Slopes(const float* slopes, __m256i index, int* at) {
  StoreIndices(at, index);
  __m256 slope, unused;  // (slopes[i + 1] is unused)
  LoadPairs(slopes, at, &slope, &unused);
  return slope;
}
// AddPairs at the indices that Slopes stored.
inline void UpdatePairs(float* acc, __m256i, int* at, int64, __m256 w0,
                        __m256 ug) {
  AddPairs(acc, at, w0, ug);
}
#endif

inline int64 ForwardVector(const Grid<float>& grid, const float* x,
                           const float* coeff, int64 channel_stride, int64 n,
                           float* y) {
  const RunConstants k(grid, channel_stride);
  __m256i base = k.base;
  const int64 done = n & ~int64{7};
  for (int64 j = 0; j < done; j += 8) {
    const Segments s = Segment(k, _mm256_loadu_ps(x + j), base);
    __m256 c0, c1;
    CoefficientPairs(coeff, s.index, &c0, &c1);
    _mm256_storeu_ps(
        y + j, _mm256_add_ps(c0, _mm256_mul_ps(s.u, _mm256_sub_ps(c1, c0))));
    base = _mm256_add_epi32(base, k.step);
  }
  return done;
}

// The vector loop over every row of a tile (t.len elements a row, from
// dy, x and dx; the rows share their coefficient rows), prefetching the
// row kPrefetchRows on as it goes: a column tile's rows are 256-byte
// pieces 4 KB apart, which the hardware prefetchers do not follow (the
// backward took twice as long without). One call per tile rather than per
// row: the call and the constants' setup cost ~25% of a 64-element row.
inline int64 BackwardVector(const Grid<float>& grid, const Tile& t,
                            const float* dy, const float* x,
                            const float* slopes, float* acc,
                            int64 channel_stride, float* dx) {
  const RunConstants k(grid, channel_stride);
  const int64 done = t.len & ~int64{7};
  const int64 ahead = kPrefetchRows * t.stride;
  for (int64 r = 0; r < t.rows;
       ++r, dy += t.stride, x += t.stride, dx += t.stride) {
    __m256i base = k.base;
    for (int64 j = 0; j < done; j += 8) {
      if ((j & 15) == 0) {  // once a line
        __builtin_prefetch(x + j + ahead, 0);
        __builtin_prefetch(dy + j + ahead, 0);
        __builtin_prefetch(dx + j + ahead, 1);
      }
      const Segments s = Segment(k, _mm256_loadu_ps(x + j), base);
      alignas(32) int at[8];
      const __m256 slope = Slopes(slopes, s.index, at);
      // The slope, or t itself where t is NaN (as the scalar loop).
      const __m256 d =
          _mm256_blendv_ps(s.t, slope, _mm256_cmp_ps(s.t, s.t, _CMP_ORD_Q));
      const __m256 g = _mm256_loadu_ps(dy + j);
      _mm256_storeu_ps(dx + j, _mm256_mul_ps(g, d));
      const __m256 ug = _mm256_mul_ps(s.u, g);
      const __m256 w0 = _mm256_sub_ps(g, ug);
      UpdatePairs(acc, s.index, at, channel_stride, w0, ug);
      base = _mm256_add_epi32(base, k.step);
    }
  }
  return done;
}

#else  // baseline (SSE2): 4 lanes forward, no backward vector loop

// The grid's constants broadcast once per run (read through `grid` inside
// the loop, they were reloaded per vector: y's stores may alias them).
struct RunConstants4 {
  explicit RunConstants4(const Grid<float>& grid)
      : x_min(_mm_set1_ps(grid.x_min)),
        scale(_mm_set1_ps(grid.scale)),
        last_f(_mm_set1_ps(grid.last_f)),
        last(_mm_set1_epi32(static_cast<int>(grid.last))) {}
  __m128 x_min, scale, last_f;
  __m128i last;
};

// SplineSegment for 4 lanes: the coefficient index (lane base + i) and u.
// SSE2 has no pminsd: i = min(i, last) by a compare and a select.
inline __m128i Segment4(const RunConstants4& k, __m128 xv, __m128i base,
                        __m128* u) {
  const __m128 t = _mm_mul_ps(_mm_sub_ps(xv, k.x_min), k.scale);
  // max_ps returns its second operand when the first is NaN: NaN -> 0.
  const __m128 clamped =
      _mm_min_ps(_mm_max_ps(t, _mm_setzero_ps()), k.last_f);
  __m128i i = _mm_cvttps_epi32(clamped);
  const __m128i over = _mm_cmpgt_epi32(i, k.last);
  i = _mm_or_si128(_mm_and_si128(over, k.last), _mm_andnot_si128(over, i));
  *u = _mm_sub_ps(t, _mm_cvtepi32_ps(i));
  return _mm_add_epi32(base, i);
}

inline int64 ForwardVector(const Grid<float>& grid, const float* x,
                           const float* coeff, int64 channel_stride, int64 n,
                           float* y) {
  const RunConstants4 k(grid);
  const int s = static_cast<int>(channel_stride);
  __m128i base = _mm_setr_epi32(0, s, 2 * s, 3 * s);
  const __m128i step = _mm_set1_epi32(4 * s);
  const int64 done = n & ~int64{3};
  for (int64 j = 0; j < done; j += 4) {
    __m128 u;
    alignas(16) int at[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(at),
                    Segment4(k, _mm_loadu_ps(x + j), base, &u));
    // Lanes 0 1 into lo, 2 3 into hi, each (c[i], c[i + 1]).
    const __m128 lo = LoadTwoPairs(coeff + at[0], coeff + at[1]);
    const __m128 hi = LoadTwoPairs(coeff + at[2], coeff + at[3]);
    const __m128 c0 = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    const __m128 c1 = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    _mm_storeu_ps(y + j, _mm_add_ps(c0, _mm_mul_ps(u, _mm_sub_ps(c1, c0))));
    base = _mm_add_epi32(base, step);
  }
  return done;
}

inline int64 BackwardVector(const Grid<float>&, const Tile&, const float*,
                            const float*, const float*, float*, int64,
                            float*) {
  return 0;
}

#endif  // TFKAF_SIMD_AVX2

}  // namespace
}  // namespace TFKAF_SIMD_NS
}  // namespace tfkaf

#pragma GCC pop_options
