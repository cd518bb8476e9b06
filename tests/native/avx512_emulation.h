// The AVX-512F intrinsics the CPU kernels use, emulated lane by lane in
// portable C++, for the native check of the avx512 path on CPUs without
// AVX-512 (tests/test_avx512_emulated.py). Force-included (g++ -include)
// ahead of the kernel sources together with -DTFKAF_AVX512_EMULATED, which
// builds the avx512 copy for AVX2+FMA (cc/kernels/cpu_paths.h): its GCC
// vector code (KAF, 2D-KAF: 64-byte vectors) is then compiled as pairs of
// AVX2 registers, and its intrinsics (the spline's) come from here.
//
// Each function follows Intel's definition of the instruction, including
// the cases the kernels rely on: max/min return the second operand when
// either is NaN; the truncating conversion gives INT32_MIN for NaN and out of
// range; gathers read base + index * scale bytes. Only the comparison
// predicate the kernels use (_CMP_ORD_Q) is provided; another one stops the
// build (static_assert). Never part of the plugin.

#ifndef TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_
#define TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_

#include <immintrin.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tfkaf_avx512_emulation {

typedef float F16 __attribute__((vector_size(64)));
typedef std::int32_t I16 __attribute__((vector_size(64)));
typedef std::uint32_t U16 __attribute__((vector_size(64)));

// The same 64 bytes as another type.
template <typename To, typename From>
inline To As(From v) {
  static_assert(sizeof(To) == sizeof(From), "same size only");
  To out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}
inline F16 F(__m512 v) { return As<F16>(v); }
inline I16 I(__m512i v) { return As<I16>(v); }
inline __m512 Ps(F16 v) { return As<__m512>(v); }
inline __m512i Si(I16 v) { return As<__m512i>(v); }

inline __m512 set1_ps(float s) { return Ps(F16{} + s); }
inline __m512i set1_epi32(int s) { return Si(I16{} + s); }
inline __m512 setzero_ps() { return Ps(F16{}); }
inline __m512i setr_epi32(int a0, int a1, int a2, int a3, int a4, int a5,
                          int a6, int a7, int a8, int a9, int a10, int a11,
                          int a12, int a13, int a14, int a15) {
  return Si(I16{a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13,
                a14, a15});
}
inline __m512 add_ps(__m512 a, __m512 b) { return Ps(F(a) + F(b)); }
inline __m512 sub_ps(__m512 a, __m512 b) { return Ps(F(a) - F(b)); }
inline __m512 mul_ps(__m512 a, __m512 b) { return Ps(F(a) * F(b)); }
inline __m512i add_epi32(__m512i a, __m512i b) {  // modulo 2^32
  return Si((I16)((U16)I(a) + (U16)I(b)));
}

// Lane-wise helpers over 16 lanes.
template <typename Op>
inline F16 MapF(F16 a, F16 b, Op op) {
  F16 out;
  for (int l = 0; l < 16; ++l) out[l] = op(a[l], b[l]);
  return out;
}

// MAX(a, b) = a > b ? a : b and MIN(a, b) = a < b ? a : b (Intel): the
// second operand when either is NaN.
inline __m512 max_ps(__m512 a, __m512 b) {
  return Ps(MapF(F(a), F(b), [](float p, float q) { return p > q ? p : q; }));
}
inline __m512 min_ps(__m512 a, __m512 b) {
  return Ps(MapF(F(a), F(b), [](float p, float q) { return p < q ? p : q; }));
}
inline __m512i min_epi32(__m512i a, __m512i b) {
  const I16 p = I(a), q = I(b);
  I16 out;
  for (int l = 0; l < 16; ++l) out[l] = p[l] < q[l] ? p[l] : q[l];
  return Si(out);
}
inline __m512i mullo_epi32(__m512i a, __m512i b) {
  const I16 p = I(a), q = I(b);
  I16 out;
  for (int l = 0; l < 16; ++l) {
    out[l] = static_cast<std::int32_t>(static_cast<std::uint32_t>(p[l]) *
                                       static_cast<std::uint32_t>(q[l]));
  }
  return Si(out);
}
// Truncation; NaN and values outside int32 give the "integer indefinite"
// INT32_MIN.
inline __m512i cvttps_epi32(__m512 a) {
  const F16 p = F(a);
  I16 out;
  for (int l = 0; l < 16; ++l) {
    const bool fits = p[l] > -2147483904.0f && p[l] < 2147483648.0f;
    out[l] = fits ? static_cast<std::int32_t>(p[l]) : INT32_MIN;
  }
  return Si(out);
}
inline __m512 cvtepi32_ps(__m512i a) {
  const I16 p = I(a);
  F16 out;
  for (int l = 0; l < 16; ++l) out[l] = static_cast<float>(p[l]);
  return Ps(out);
}

inline __m512 loadu_ps(const void* p) {
  F16 out;
  std::memcpy(&out, p, 64);
  return Ps(out);
}
inline void storeu_ps(void* p, __m512 v) { std::memcpy(p, &v, 64); }
// The aligned store: the address must be 64-byte aligned, as the instruction
// requires (it faults otherwise).
inline void store_si512(void* p, __m512i v) {
  if (reinterpret_cast<std::uintptr_t>(p) % 64 != 0) __builtin_trap();
  std::memcpy(p, &v, 64);
}
inline __m512 i32gather_ps(__m512i index, const void* base, int scale) {
  const I16 at = I(index);
  F16 out;
  for (int l = 0; l < 16; ++l) {
    const char* where = static_cast<const char*>(base) +
                        static_cast<std::int64_t>(at[l]) * scale;
    std::memcpy(&out[l], where, sizeof(float));
  }
  return Ps(out);
}

// _CMP_ORD_Q only: bit l set where neither a[l] nor b[l] is NaN.
template <int kPredicate>
inline __mmask16 cmp_ps_mask(__m512 a, __m512 b) {
  static_assert(kPredicate == _CMP_ORD_Q, "emulated: _CMP_ORD_Q only");
  const F16 p = F(a), q = F(b);
  unsigned mask = 0;
  for (int l = 0; l < 16; ++l) {
    if (!std::isnan(p[l]) && !std::isnan(q[l])) mask |= 1u << l;
  }
  return static_cast<__mmask16>(mask);
}
// Lane l from b where bit l of k is set, else from a.
inline __m512 mask_blend_ps(__mmask16 k, __m512 a, __m512 b) {
  const F16 p = F(a), q = F(b);
  F16 out;
  for (int l = 0; l < 16; ++l) out[l] = (k >> l) & 1 ? q[l] : p[l];
  return Ps(out);
}

inline __m512d castps_pd(__m512 a) { return As<__m512d>(a); }
inline __m256 castps512_ps256(__m512 a) {
  __m256 out;
  std::memcpy(&out, &a, 32);
  return out;
}
// Half `imm` (0: lanes 0-3, 1: lanes 4-7) of eight doubles.
inline __m256d extractf64x4_pd(__m512d a, int imm) {
  __m256d out;
  std::memcpy(&out, reinterpret_cast<const char*>(&a) + 32 * (imm & 1), 32);
  return out;
}

}  // namespace tfkaf_avx512_emulation

// Some of these are macros in GCC's headers (without optimisation or
// always): each is undefined first.
#define TFKAF_AVX512_EMULATE(name) ::tfkaf_avx512_emulation::name
#undef _mm512_set1_ps
#define _mm512_set1_ps TFKAF_AVX512_EMULATE(set1_ps)
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 TFKAF_AVX512_EMULATE(set1_epi32)
#undef _mm512_setzero_ps
#define _mm512_setzero_ps TFKAF_AVX512_EMULATE(setzero_ps)
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 TFKAF_AVX512_EMULATE(setr_epi32)
#undef _mm512_add_ps
#define _mm512_add_ps TFKAF_AVX512_EMULATE(add_ps)
#undef _mm512_sub_ps
#define _mm512_sub_ps TFKAF_AVX512_EMULATE(sub_ps)
#undef _mm512_mul_ps
#define _mm512_mul_ps TFKAF_AVX512_EMULATE(mul_ps)
#undef _mm512_add_epi32
#define _mm512_add_epi32 TFKAF_AVX512_EMULATE(add_epi32)
#undef _mm512_max_ps
#define _mm512_max_ps TFKAF_AVX512_EMULATE(max_ps)
#undef _mm512_min_ps
#define _mm512_min_ps TFKAF_AVX512_EMULATE(min_ps)
#undef _mm512_min_epi32
#define _mm512_min_epi32 TFKAF_AVX512_EMULATE(min_epi32)
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 TFKAF_AVX512_EMULATE(mullo_epi32)
#undef _mm512_cvttps_epi32
#define _mm512_cvttps_epi32 TFKAF_AVX512_EMULATE(cvttps_epi32)
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps TFKAF_AVX512_EMULATE(cvtepi32_ps)
#undef _mm512_loadu_ps
#define _mm512_loadu_ps TFKAF_AVX512_EMULATE(loadu_ps)
#undef _mm512_storeu_ps
#define _mm512_storeu_ps TFKAF_AVX512_EMULATE(storeu_ps)
#undef _mm512_store_si512
#define _mm512_store_si512 TFKAF_AVX512_EMULATE(store_si512)
#undef _mm512_i32gather_ps
#define _mm512_i32gather_ps TFKAF_AVX512_EMULATE(i32gather_ps)
#undef _mm512_cmp_ps_mask
#define _mm512_cmp_ps_mask(a, b, p) \
  TFKAF_AVX512_EMULATE(cmp_ps_mask<(p)>)((a), (b))
#undef _mm512_mask_blend_ps
#define _mm512_mask_blend_ps TFKAF_AVX512_EMULATE(mask_blend_ps)
#undef _mm512_castps_pd
#define _mm512_castps_pd TFKAF_AVX512_EMULATE(castps_pd)
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 TFKAF_AVX512_EMULATE(castps512_ps256)
#undef _mm512_extractf64x4_pd
#define _mm512_extractf64x4_pd TFKAF_AVX512_EMULATE(extractf64x4_pd)

#endif  // TFKAF_TESTS_NATIVE_AVX512_EMULATION_H_
