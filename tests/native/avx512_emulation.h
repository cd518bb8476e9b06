// The AVX-512F intrinsics the CPU kernels use, emulated lane by lane in
// portable C++, for the native check of the avx512 path on CPUs without
// AVX-512 (tests/test_avx512_emulated.py). Force-included (g++ -include)
// ahead of the kernel sources together with -DTFKAF_AVX512_EMULATED, which
// builds the avx512 copy for AVX2+FMA (cc/kernels/cpu_paths.h): its GCC
// vector code (KAF, 2D-KAF: 64-byte vectors) is then compiled as pairs of
// AVX2 registers, and its intrinsics (kaf_cpu_simd.h: the exponential's
// vrndscale and vscalef, the Gaussian bases' masked stores, the reciprocal's
// vrcp14; spline_cpu_simd.h: the backward's 64-bit gather and scatter) come
// from here.
//
// Each function follows Intel's definition of the instruction for the
// operands the kernels pass: vrndscale with imm 0 (round to nearest even,
// no fraction bits kept) and vscalef with an integral, finite second
// operand. Without flush-to-zero, as the driver runs. Never part of the
// plugin.

#ifndef TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_
#define TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tfkaf_avx512_emulation {

// Applies op to each lane of a (and b) viewed as N lanes of type T.
template <typename T, int N, typename V, typename Op>
inline V Map(V a, V b, Op op) {
  static_assert(sizeof(V) == N * sizeof(T), "64-byte vectors");
  T p[N], q[N];
  std::memcpy(p, &a, sizeof(V));
  std::memcpy(q, &b, sizeof(V));
  for (int l = 0; l < N; ++l) p[l] = op(p[l], q[l]);
  V out;
  std::memcpy(&out, p, sizeof(V));
  return out;
}

// imm 0: nearest, ties to even (the default rounding mode's nearbyint).
template <typename T>
inline T RoundNearest(T v, int imm) {
  if (imm != _MM_FROUND_TO_NEAREST_INT) __builtin_trap();
  return std::nearbyint(v);
}

// v 2^floor(n); NaN in either gives NaN.
template <typename T>
inline T Scale(T v, T n) {
  if (std::isnan(v) || std::isnan(n)) return v + n;
  const T e = std::floor(n);
  return std::ldexp(v, e < -4096 ? -4096 : e > 4096 ? 4096 : int(e));
}

inline __m512 roundscale_ps(__m512 a, int imm) {
  return Map<float, 16>(a, a, [imm](float v, float) {
    return RoundNearest(v, imm);
  });
}
inline __m512d roundscale_pd(__m512d a, int imm) {
  return Map<double, 8>(a, a, [imm](double v, double) {
    return RoundNearest(v, imm);
  });
}
inline __m512 scalef_ps(__m512 a, __m512 b) {
  return Map<float, 16>(a, b, Scale<float>);
}
inline __m512d scalef_pd(__m512d a, __m512d b) {
  return Map<double, 8>(a, b, Scale<double>);
}

// vrcp14: within 2^-14 of 1 / v; here exactly 1 / v rounded.
inline __m512 rcp14_ps(__m512 a) {
  return Map<float, 16>(a, a, [](float v, float) { return 1.0f / v; });
}
// Bit l set where lane l of a & b is nonzero (N lanes of T).
template <typename T, int N, typename K>
inline K TestMask(__m512i a, __m512i b) {
  T p[N], q[N];
  std::memcpy(p, &a, 64);
  std::memcpy(q, &b, 64);
  unsigned bits = 0;
  for (int l = 0; l < N; ++l) bits |= (p[l] & q[l]) != 0 ? 1u << l : 0u;
  return static_cast<K>(bits);
}
inline __mmask16 test_epi32_mask(__m512i a, __m512i b) {
  return TestMask<std::int32_t, 16, __mmask16>(a, b);
}
inline __mmask8 test_epi64_mask(__m512i a, __m512i b) {
  return TestMask<std::int64_t, 8, __mmask8>(a, b);
}

// Stores lane l of v to p[l] where bit l of k is set; the others untouched.
template <typename T, int N, typename K, typename V>
inline void StoreMasked(T* p, K k, V v) {
  T lanes[N];
  std::memcpy(lanes, &v, 64);
  for (int l = 0; l < N; ++l) {
    if ((k >> l) & 1) std::memcpy(p + l, lanes + l, sizeof(T));
  }
}
inline void mask_storeu_ps(void* p, __mmask16 k, __m512 v) {
  StoreMasked<float, 16>(static_cast<float*>(p), k, v);
}
inline void mask_storeu_pd(void* p, __mmask8 k, __m512d v) {
  StoreMasked<double, 8>(static_cast<double*>(p), k, v);
}

// vgatherdpd / vscatterdpd with all lanes enabled: lane l at
// base + index[l] * scale bytes (8-byte lanes, moved as bits). The
// scatter writes the lanes in order, as the instruction does.
inline __m512d i32gather_pd(__m256i index, void const* base, int scale) {
  std::int32_t at[8];
  double lanes[8];
  std::memcpy(at, &index, 32);
  for (int l = 0; l < 8; ++l) {
    std::memcpy(lanes + l,
                static_cast<const char*>(base) + std::int64_t{at[l]} * scale,
                8);
  }
  __m512d out;
  std::memcpy(&out, lanes, 64);
  return out;
}
inline void i32scatter_pd(void* base, __m256i index, __m512d v, int scale) {
  std::int32_t at[8];
  double lanes[8];
  std::memcpy(at, &index, 32);
  std::memcpy(lanes, &v, 64);
  for (int l = 0; l < 8; ++l) {
    std::memcpy(static_cast<char*>(base) + std::int64_t{at[l]} * scale,
                lanes + l, 8);
  }
}

}  // namespace tfkaf_avx512_emulation

// Some of these are macros in GCC's headers (without optimisation or
// always): each is undefined first.
#define TFKAF_AVX512_EMULATE(name) ::tfkaf_avx512_emulation::name
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps TFKAF_AVX512_EMULATE(roundscale_ps)
#undef _mm512_roundscale_pd
#define _mm512_roundscale_pd TFKAF_AVX512_EMULATE(roundscale_pd)
#undef _mm512_scalef_ps
#define _mm512_scalef_ps TFKAF_AVX512_EMULATE(scalef_ps)
#undef _mm512_scalef_pd
#define _mm512_scalef_pd TFKAF_AVX512_EMULATE(scalef_pd)
#undef _mm512_rcp14_ps
#define _mm512_rcp14_ps TFKAF_AVX512_EMULATE(rcp14_ps)
#undef _mm512_test_epi32_mask
#define _mm512_test_epi32_mask TFKAF_AVX512_EMULATE(test_epi32_mask)
#undef _mm512_test_epi64_mask
#define _mm512_test_epi64_mask TFKAF_AVX512_EMULATE(test_epi64_mask)
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps TFKAF_AVX512_EMULATE(mask_storeu_ps)
#undef _mm512_mask_storeu_pd
#define _mm512_mask_storeu_pd TFKAF_AVX512_EMULATE(mask_storeu_pd)
#undef _mm512_i32gather_pd
#define _mm512_i32gather_pd TFKAF_AVX512_EMULATE(i32gather_pd)
#undef _mm512_i32scatter_pd
#define _mm512_i32scatter_pd TFKAF_AVX512_EMULATE(i32scatter_pd)

#endif  // TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_
