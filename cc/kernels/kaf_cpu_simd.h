// Vectorised CPU tile kernels of KAF and 2D-KAF.
//
// Compiled once per CPU path (cpu_paths.h: namespaces tfkaf::baseline, the
// x86-64 baseline TensorFlow's wheel is built for, tfkaf::avx2 under
// `#pragma GCC target("avx2,fma")` and tfkaf::avx512 with AVX-512F), each
// copy in a file of its own (kaf_cpu_<path>.cc); kaf_cpu.cc calls the
// selected path's copy through the table of entry points that Tiles, at the
// end of this file, returns (kaf_cpu_tiles.h).
// Deliberately without an include guard. Everything here works on raw
// pointers and GCC vector types of TFKAF_SIMD_BYTES (one register: 16
// bytes, 4 floats / 2 doubles, on the baseline path; 32 on avx2; 64 on
// avx512) and uses no standard library template, so that no code compiled
// for one path can be shared with another. The includer provides
// kaf_cpu_tiles.h (KafCpuParams, Tile, kTab1d, kMaxBatch).
//
// Tiles. Channels-last inputs (inner == 1) are processed as tiles of rows x
// channels: the lanes of a vector are W consecutive channels, and a batch of
// U vectors takes the same channels from U rows, so that the batch shares
// its coefficient loads and its dalpha accumulators. Coefficient tables are
// blocked per W channels ([C/W][K][W], one vector load per coefficient).
// Otherwise (kUniform: the lanes are consecutive positions of one channel)
// a batch is U consecutive vectors of the row and coefficients are
// broadcast. Several independent vectors per batch also hide the latency of
// the per-vector dependency chains.
//
// Gaussian basis (walk mode). The recurrence exp(-g (x - d_{j+1})^2) =
// exp(-g (x - d_j)^2) r_j, r_{j+1} = r_j exp(-2 g step^2) is used in the
// factored form e_j = f_j C_j, f_{j+1} = f_j v, where v = exp(2 g step x),
// f_j = exp(-g x^2 + 2 g x d_j) and C_j = exp(-g d_j^2) is a per-call
// constant: two exponentials per element, then ONE multiply per centre, C_j
// being folded into the coefficient tables (forward, dx) or applied once to
// the summed dalpha. Every SIMD lane walks the centres in the same order, so
// coefficient loads and dalpha updates stay plain vector operations; to make
// that safe each lane starts at the grid end nearest to x. Negative x walks
// from d_0 upwards; x >= 0 is mirrored (d is symmetric, so
// exp(-g (x - d_i)^2) = exp(-g (-x - d_{D-1-i})^2); the tables hold both
// orders) and walks from d_{D-1} downwards. Then v <= 1 always: beyond the
// grid the walk goes outwards from the nearest centre, where the values only
// decrease; inside it f stays within [1, e^{g boundary^2}]. kaf_cpu.cc
// walks D centres at once only when g boundary^2 <= 40 and
// g step^2 (D - 2) <= 40 (nothing overflows, C_j and alpha C_j stay normal)
// and where v can underflow every basis value is already below e^-100.
// Otherwise it splits the centres into runs that meet these bounds, each a
// KAF of its own about its middle (WalkRunsForwardTile, GaussBasisN);
// where even runs of 3 centres would not (very narrow Gaussians), every
// centre gets its own exponential (direct mode). x is first clamped to
// [-boundary - L, boundary + L] with g L^2 = 800, where every basis value is
// exactly 0 in float and double, so +-Inf and 1e30 give finite zeros (never
// 0 * inf); NaN fails every comparison, passes the clamps and comes out as
// NaN. No value is ever converted to a memory index.
//
// Walks from the middle. Where every |x| of a batch is small enough that
// f_m = exp(-g x^2 + 2 g x d_m) of the middle centre m = D / 2 stays above
// e^-40 (the 2D forward's: e^-20 a side), one-run walks start at m
// instead and go both ways, upwards by v and downwards by u = 1 / v: then
// every lane visits the centres in the same order, without the mirrored
// walk's per-lane choices (CentredForward, CentredBackward, CentredBases).
// Other batches, NaN and Inf among them, take the mirrored walk.

#ifndef TFKAF_SIMD_NS
#error "include kaf_cpu_simd.h through cpu_paths.h"
#endif

namespace tfkaf {
namespace TFKAF_SIMD_NS {

#define TFKAF_AI inline __attribute__((always_inline))
#define TFKAF_UNROLL _Pragma("GCC unroll 8")

// Per-type vector types and the constants of Simd<A>'s exp and log1p.
template <typename A>
struct SimdType;

// Broadcasts: s - 0 is s for every s (-0.0, NaN and Inf included).
template <>
struct SimdType<float> {
  typedef float V __attribute__((vector_size(TFKAF_SIMD_BYTES)));
  typedef std::int32_t I __attribute__((vector_size(TFKAF_SIMD_BYTES)));
  static constexpr int W = TFKAF_SIMD_BYTES / 4;
  static TFKAF_AI V Bc(float s) { return s - V{}; }
  static TFKAF_AI I BcI(std::int32_t s) { return s - I{}; }
  // exp (Simd::ExpN): accurate to ~1 ulp down to -87.3 (the smallest
  // normal float), subnormal below, 0 from kExpZero = -127 ln 2 down.
  // Cephes' polynomial (ExpReduced).
  static constexpr float kExpZero = -88.0296919f;
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: rounds to int
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kExpPoly[] = {
      1.9875691500E-4f, 1.3981999507E-3f, 8.3334519073E-3f,
      4.1665795894E-2f, 1.6666665459E-1f, 5.0000001201E-1f};
  // exp(r) for |r| <= ln 2 / 2: p(r) r^2 + r + 1, p evaluated by Estrin's
  // scheme (three dependent steps instead of Horner's five; the exponentials
  // head the walk's dependency chains).
  static TFKAF_AI V ExpReduced(V r) {
    const float* c = kExpPoly;
    const V r2 = r * r, r4 = r2 * r2;
    const V p = (Bc(c[0]) * r + Bc(c[1])) * r4 +
                ((Bc(c[2]) * r + Bc(c[3])) * r2 + (Bc(c[4]) * r + Bc(c[5])));
    return p * r2 + r + Bc(1.0f);
  }
  static constexpr int kExpBias = 127, kExpShift = 23;
  static constexpr int kLog1pTop = 13;  // atanh series to z^13
  static constexpr std::int32_t kAbsMask = 0x7fffffff;
};

template <>
struct SimdType<double> {
  typedef double V __attribute__((vector_size(TFKAF_SIMD_BYTES)));
  typedef std::int64_t I __attribute__((vector_size(TFKAF_SIMD_BYTES)));
  static constexpr int W = TFKAF_SIMD_BYTES / 8;
  static TFKAF_AI V Bc(double s) { return s - V{}; }
  static TFKAF_AI I BcI(std::int64_t s) { return s - I{}; }
  static constexpr double kExpZero = -709.089565712824;  // -1023 ln 2
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kLog2e = 1.4426950408889634;
  static constexpr double kLn2Hi = 6.93145751953125E-1;
  static constexpr double kLn2Lo = 1.42860682030941723212E-6;
  // Taylor series to r^13 (|r| <= 0.347: truncation < 1e-17).
  static constexpr double kExpPoly[] = {
      1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
      1.0 / 3628800.0,    1.0 / 362880.0,    1.0 / 40320.0,
      1.0 / 5040.0,       1.0 / 720.0,       1.0 / 120.0,
      1.0 / 24.0,         1.0 / 6.0,         0.5,
      1.0,                1.0};
  // exp(r), Horner's rule.
  static TFKAF_AI V ExpReduced(V r) {
    V p = Bc(kExpPoly[0]);
    TFKAF_UNROLL
    for (int c = 1; c < int(sizeof(kExpPoly) / sizeof(double)); ++c) {
      p = p * r + Bc(kExpPoly[c]);
    }
    return p;
  }
  static constexpr int kExpBias = 1023, kExpShift = 52;
  static constexpr int kLog1pTop = 35;
  static constexpr std::int64_t kAbsMask = 0x7fffffffffffffffLL;
};

template <typename A>
struct Simd : SimdType<A> {
  using T = SimdType<A>;
  using V = typename T::V;
  using I = typename T::I;
  using T::Bc;
  using T::BcI;

#if TFKAF_SIMD_AVX512
  // AVX-512F instructions that GCC's vector extensions do not express, for
  // either lane type: rounding to the nearest (even) integer (vrndscale),
  // v 2^n (vscalef), the mask of the lanes where m is nonzero (vptestm) and
  // a store of the lanes in mask k.
  static constexpr bool kF32 = sizeof(A) == 4;
  static TFKAF_AI V RoundNearest(V v) {
    constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT;
    if constexpr (kF32) return (V)_mm512_roundscale_ps((__m512)v, kNearest);
    else return (V)_mm512_roundscale_pd((__m512d)v, kNearest);
  }
  static TFKAF_AI V Scale2(V v, V n) {
    if constexpr (kF32) return (V)_mm512_scalef_ps((__m512)v, (__m512)n);
    else return (V)_mm512_scalef_pd((__m512d)v, (__m512d)n);
  }
  static TFKAF_AI auto Mask(I m) {
    if constexpr (kF32) return _mm512_test_epi32_mask((__m512i)m, (__m512i)m);
    else return _mm512_test_epi64_mask((__m512i)m, (__m512i)m);
  }
  using K = decltype(Mask(I{}));  // __mmask16 or __mmask8
  static TFKAF_AI void StoreMasked(A* p, K k, V v) {
    if constexpr (kF32) _mm512_mask_storeu_ps(p, k, (__m512)v);
    else _mm512_mask_storeu_pd(p, k, (__m512d)v);
  }
#endif

  // exp(a[k]) for k < N, in place, for a[k] <= 88 (every caller's argument
  // is at most 40: g boundary^2 in walk mode, else -g t^2 or -|t|): 2^n
  // exp(r), r = a - n ln 2 (ln 2 in two parts), exp(r) by the polynomial
  // kExpPoly; NaN stays NaN. a is first raised to kExpZero (one max, NaN
  // failing the comparison), where n = -bias: the scale 2^n is then built
  // with a zero exponent field, i.e. it is +0, and so is the result. Between
  // kExpZero and the smallest normal the result is subnormal (with
  // TensorFlow's flush-to-zero, 0). Evaluated in groups of at most
  // kExpGroup independent evaluations, which interleave while a group's
  // state (r, the polynomial's terms, the scale 2^n) stays in registers (16
  // on AVX2).
  template <int N>
  static TFKAF_AI void ExpN(V* a) {
    constexpr int kExpGroup = 4;
    if constexpr (N > kExpGroup) {
      ExpGroup<kExpGroup>(a);
      ExpN<N - kExpGroup>(a + kExpGroup);
    } else {
      ExpGroup<N>(a);
    }
  }
  template <int N>
  static TFKAF_AI void ExpGroup(V* a) {
    const V lo = Bc(T::kExpZero);
    V r[N], pow2[N];
    TFKAF_UNROLL
    for (int k = 0; k < N; ++k) {
      const V ac = (a[k] < lo) ? lo : a[k];
      V nf;
      pow2[k] = Pow2(ac, &nf);
      r[k] = ac - nf * Bc(T::kLn2Hi);
      r[k] = r[k] - nf * Bc(T::kLn2Lo);
    }
    TFKAF_UNROLL
    for (int k = 0; k < N; ++k) a[k] = TimesPow2(T::ExpReduced(r[k]), pow2[k]);
  }
  // n = round(a log2 e) into *nf, and what TimesPow2 needs to scale by 2^n.
#if TFKAF_SIMD_AVX512
  // AVX-512F: n rounded by vrndscale and 2^n applied by vscalef, one
  // instruction each where the generic form below takes six (the magic
  // number's add and two subtracts, the exponent's add and shift, the
  // multiply). The same n, r and polynomial; a at kExpZero gives
  // p(r) 2^-127 (bias), a subnormal that flush-to-zero makes 0.
  static TFKAF_AI V Pow2(V a, V* nf) {
    *nf = RoundNearest(a * Bc(T::kLog2e));
    return *nf;
  }
  static TFKAF_AI V TimesPow2(V p, V n) { return Scale2(p, n); }
#else
  // Rounded by adding and subtracting the magic number; 2^n built in the
  // exponent field.
  static TFKAF_AI V Pow2(V a, V* nf) {
    const V magic = Bc(T::kMagic);
    const V fx = a * Bc(T::kLog2e) + magic;
    *nf = fx - magic;
    const I n = (I)fx - (I)magic;
    return (V)((n + BcI(T::kExpBias)) << T::kExpShift);
  }
  static TFKAF_AI V TimesPow2(V p, V scale) { return p * scale; }
#endif
  // 1 / v: a division, or on AVX-512 for float vrcp14 (relative error
  // below 2^-14) and one Newton step (then below ~0.6 ulp).
  static TFKAF_AI V Recip(V v) {
#if TFKAF_SIMD_AVX512
    if constexpr (kF32) {
      const V r = (V)_mm512_rcp14_ps((__m512)v);
      return r + r * (Bc(A(1)) - v * r);
    }
#endif
    return Bc(A(1)) / v;
  }
  // Whether every lane of m (each 0 or all ones) is set.
  static TFKAF_AI bool AllSet(I m) {
#if TFKAF_SIMD_AVX512
    return Mask(m) == K(~0u);
#else
    std::uint64_t words[sizeof(I) / 8];
    std::memcpy(words, &m, sizeof(I));
    std::uint64_t all = ~std::uint64_t(0);
    for (std::uint64_t w : words) all &= w;
    return all == ~std::uint64_t(0);
#endif
  }
  static TFKAF_AI V Exp(V a) {
    ExpN<1>(&a);
    return a;
  }

  // log(1 + y) for y in [0, 1]: 2 atanh(z), z = y / (2 + y) <= 1/3.
  static TFKAF_AI V Log1pUnit(V y) {
    const V z = y / (y + Bc(A(2)));
    const V w = z * z;
    V p = Bc(A(1) / A(T::kLog1pTop));
    TFKAF_UNROLL
    for (int k = T::kLog1pTop - 2; k >= 1; k -= 2) p = p * w + Bc(A(1) / A(k));
    return (z + z) * p;
  }

  static TFKAF_AI V Abs(V v) { return (V)((I)v & BcI(T::kAbsMask)); }
};

// Keeps v in a register from here on. Without it GCC folds each use of a
// vector it loaded from scratch into a memory-operand FMA of its own, i.e.
// loads it again per use (in Backward2Rows twice per coefficient, which
// left that loop bound by loads: the 2D backward ran ~10% slower). A no-op
// where a vector spans two registers (TFKAF_SIMD_ONE_REGISTER, cpu_paths.h:
// the emulated avx512 build of tests/native).
template <typename V>
TFKAF_AI void InRegister(V& v) {
#if TFKAF_SIMD_ONE_REGISTER
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

template <typename A>
TFKAF_AI typename Simd<A>::V Load(const A* p) {
  typename Simd<A>::V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename A>
TFKAF_AI void Store(A* p, typename Simd<A>::V v) {
  std::memcpy(p, &v, sizeof(v));
}

// The first n (<= W) lanes from p, zeros after.
template <typename A>
TFKAF_AI typename Simd<A>::V LoadN(const A* p, int64 n) {
  if (n >= Simd<A>::W) return Load(p);
  A buf[Simd<A>::W];
  for (int l = 0; l < Simd<A>::W; ++l) buf[l] = l < n ? p[l] : A(0);
  return Load(buf);
}

template <typename A>
TFKAF_AI void StoreN(A* p, typename Simd<A>::V v, int64 n) {
  if (n >= Simd<A>::W) {
    Store(p, v);
    return;
  }
  for (int l = 0; l < n; ++l) p[l] = v[l];
}

// Table entry k for the lanes of a batch: a broadcast (one channel) or a
// vector load from a blocked table.
template <typename A, bool kUniform>
TFKAF_AI typename Simd<A>::V TabAt(const A* tab, int64 k) {
  if (kUniform) return Simd<A>::Bc(tab[k]);
  return Load(tab + k * Simd<A>::W);
}

// Clamps x for the Gaussian (NaN passes).
template <typename A>
TFKAF_AI typename Simd<A>::V Clamp(const KafCpuParams<A>& p,
                                  typename Simd<A>::V x) {
  using S = Simd<A>;
  const typename S::V lo = S::Bc(p.lo), hi = S::Bc(p.hi);
  x = (x < lo) ? lo : x;
  return (x > hi) ? hi : x;
}

// dy * (-2 gamma) * acc, without forming -2 gamma (inf for float gammas
// above 1.7e38, and inf * 0 would be NaN where acc is 0).
template <typename A>
TFKAF_AI typename Simd<A>::V DxScale(const KafCpuParams<A>& p,
                                    typename Simd<A>::V acc,
                                    typename Simd<A>::V dy) {
  using S = Simd<A>;
  return ((acc * S::Bc(-p.gamma)) * S::Bc(A(2))) * dy;
}

// Walk mode in several runs (kaf_cpu.cc, WalkRun): the tiles then take the
// run-by-run instantiations.
template <typename A>
TFKAF_AI bool WalksInRuns(const KafCpuParams<A>& p) {
  return p.walk && p.num_runs > 1;
}

// Walk-mode start for N vectors: x' = -|x| clamped, the clamped x, and the
// exponents of f_0 and v (see the top of the file).
template <typename A, int N>
TFKAF_AI void WalkExponents(const KafCpuParams<A>& p,
                            const typename Simd<A>::V* x,
                            typename Simd<A>::I* neg, typename Simd<A>::V* xc,
                            typename Simd<A>::V* f, typename Simd<A>::V* v) {
  using S = Simd<A>;
  using V = typename S::V;
  const V lo = S::Bc(p.lo);
  TFKAF_UNROLL
  for (int k = 0; k < N; ++k) {
    neg[k] = x[k] < S::Bc(A(0));
    V xp = -S::Abs(x[k]);
    xp = (xp < lo) ? lo : xp;
    xc[k] = neg[k] ? xp : -xp;
    const V t0 = xp + S::Bc(p.boundary);
    f[k] = (S::Bc(-p.gamma) * t0) * t0 + S::Bc(p.gb2);
    v[k] = S::Bc(p.two_gs) * xp;
  }
}

// WalkExponents, then f_0 and v themselves.
template <typename A, int N>
TFKAF_AI void WalkStart(const KafCpuParams<A>& p, const typename Simd<A>::V* x,
                        typename Simd<A>::I* neg, typename Simd<A>::V* xc,
                        typename Simd<A>::V* f, typename Simd<A>::V* v) {
  WalkExponents<A, N>(p, x, neg, xc, f, v);
  Simd<A>::template ExpN<N>(f);
  Simd<A>::template ExpN<N>(v);
}

// Whether these U vectors may walk from the middle centre (CentredForward,
// CentredBackward, CentredBases): every |x| within p.centred_limit (NaN
// never is; the limit is negative where the call may not walk so at all).
template <typename A, int U>
TFKAF_AI bool CentredBatch(const KafCpuParams<A>& p,
                           const typename Simd<A>::V* x) {
  using S = Simd<A>;
  const typename S::V limit = S::Bc(p.centred_limit);
  typename S::I in = S::Abs(x[0]) <= limit;
  TFKAF_UNROLL
  for (int n = 1; n < U; ++n) in = in & (S::Abs(x[n]) <= limit);
  return S::AllSet(in);
}

// The start of the walks from the middle centre for N vectors: f_m's
// exponent -g x^2 + 2 g d_m x into f, v = exp(2 g step x) and u = 1 / v.
template <typename A, int N>
TFKAF_AI void CentredStart(const KafCpuParams<A>& p,
                           const typename Simd<A>::V* x,
                           typename Simd<A>::V* f, typename Simd<A>::V* v,
                           typename Simd<A>::V* u) {
  using S = Simd<A>;
  TFKAF_UNROLL
  for (int n = 0; n < N; ++n) {
    f[n] = x[n] * (S::Bc(p.two_g_dm) - S::Bc(p.gamma) * x[n]);
    v[n] = S::Bc(p.two_gs) * x[n];
  }
  S::template ExpN<N>(v);
  TFKAF_UNROLL
  for (int n = 0; n < N; ++n) u[n] = S::Recip(v[n]);
}

// Exact Gaussian basis E[i] = exp(-gamma (x - d_i)^2), one exponential per
// centre (direct mode; walk mode: WalkStart and its callers). Returns x
// clamped.
template <typename A>
TFKAF_AI typename Simd<A>::V GaussBasis(const KafCpuParams<A>& p,
                                       typename Simd<A>::V x,
                                       typename Simd<A>::V* E) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = p.D;
  const V xc = Clamp(p, x);
  for (int64 i = 0; i < D; ++i) {
    const V t = xc - S::Bc(p.d[i]);
    E[i] = S::Exp((S::Bc(-p.gamma) * t) * t);
  }
  return xc;
}

// How the 2D tiles compute the Gaussian bases of a grid side (GaussBasisN):
// kWhole, in one walk run (or direct mode); kRuns, in the walk runs of
// kaf_cpu.cc (WalkRun; one or several, or direct mode); kUnit, in one walk
// run from 1 (the 2D forward where KafCpuParams::unit): E'[i] = e_i / (f_0
// C_i), with f_0's exponent returned for the caller to apply (the forward:
// one exponential of the two sides' exponents summed for both f_0) and
// C_a C_b folded into the table. That saves a vector its fourth exponential
// and the 2 D multiplies by C (D = 10, one thread: the forward 4% faster on
// avx512, 5% on avx2, 11% on the baseline path). The backward keeps the
// exact bases: there dy f_0 would overflow sooner than dy does.
enum class Bases2d { kWhole, kRuns, kUnit };

#if TFKAF_SIMD_AVX512
// The walks of N vectors (WalkStart's neg, f, v) put in centre order in one
// pass, without WalkBasisN's scratch pass: step j's value f v^j, times
// scale[j] where kScaled (scale symmetric, scale[j] = scale[D - 1 - j], as a
// run's C_j is), goes to E[n * stride + j] in the lanes walking upwards and
// to E[n * stride + D - 1 - j] in the others, by two masked stores. 2D-KAF
// forward ~5% faster (docs/design.md, section 6). Not for the 1D backward's
// scratch: there each vector is loaded back right after its two masked
// stores, which the store buffer cannot forward, and it ran 20-30% slower.
template <typename A, int N, bool kScaled>
TFKAF_AI void WalkToCentres(const typename Simd<A>::I* neg,
                            typename Simd<A>::V* f,
                            const typename Simd<A>::V* v, int64 D,
                            const A* scale, typename Simd<A>::V* E,
                            int64 stride) {
  using S = Simd<A>;
  typename S::K up[N], down[N];
  TFKAF_UNROLL
  for (int n = 0; n < N; ++n) {
    up[n] = S::Mask(neg[n]);
    down[n] = S::Mask(~neg[n]);
  }
  for (int64 j = 0; j < D; ++j) {
    const typename S::V c = S::Bc(kScaled ? scale[j] : A(1));
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      const typename S::V e = kScaled ? f[n] * c : f[n];
      S::StoreMasked(reinterpret_cast<A*>(E + n * stride + j), up[n], e);
      S::StoreMasked(reinterpret_cast<A*>(E + n * stride + D - 1 - j),
                     down[n], e);
      f[n] = f[n] * v[n];
    }
  }
}
#endif

// The bases of N vectors whose |x| are all within p.centred_limit
// (CentredBatch), walked from the middle centre m = D / 2 both ways as in
// CentredForward: f_m at m, then times v^k upwards and u^k = v^-k
// downwards, times C_i, in centre order in every lane, so with plain
// stores: half the stores of WalkToCentres (D = 10, one thread, avx512: the
// forward ~17% faster, the backward ~7%). kUnit (Bases2d::kUnit): 1 in
// place of f_m and no C_i, f_m's exponent going to f0_exp. Within the
// limit, g x^2 + g step |x| <= 40 (kUnit: 20), f_m >= e^-40 (e^-20) and
// the values e_i / (f_m C_i) below e^40 (e^20; kaf_cpu.cc's SetCentred
// bounds alpha for that).
template <typename A, int N, bool kUnit>
TFKAF_AI void CentredBases(const KafCpuParams<A>& p,
                           const typename Simd<A>::V* x,
                           typename Simd<A>::V* E, int64 stride,
                           typename Simd<A>::V* xc,
                           typename Simd<A>::V* f0_exp) {
  using S = Simd<A>;
  using V = typename S::V;
  V f[N], v[N], u[N], up[N], down[N];
  CentredStart<A, N>(p, x, f, v, u);
  if constexpr (kUnit) {
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      f0_exp[n] = f[n];
      f[n] = S::Bc(A(1));
    }
  } else {
    S::template ExpN<N>(f);
    (void)f0_exp;
  }
  const int64 D = p.D, m = D / 2;
  // E[i] = e, times C_i unless kUnit.
  auto put = [&](int n, int64 i, V e) {
    E[n * stride + i] = kUnit ? e : e * S::Bc(p.scale[i]);
  };
  TFKAF_UNROLL
  for (int n = 0; n < N; ++n) {
    xc[n] = x[n];
    up[n] = down[n] = f[n];
    put(n, m, up[n]);
  }
  for (int64 k = 1; k < D - m; ++k) {
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      up[n] = up[n] * v[n];
      put(n, m + k, up[n]);
    }
  }
  for (int64 k = 1; k <= m; ++k) {
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      down[n] = down[n] * u[n];
      put(n, m - k, down[n]);
    }
  }
}

// Walk mode for N vectors: the basis of q's centres in natural order into
// E[n * stride + i] (the exponentials interleave, then each lane's walk is
// put in centre order); Em: N * q.D vectors of scratch (unused on avx512:
// WalkToCentres). xc: x clamped. kUnit: the walks start at 1 instead of f_0
// and skip the C_i (Bases2d::kUnit), f_0's exponent going to f0_exp.
template <typename A, int N, bool kUnit>
TFKAF_AI void WalkBasisN(const KafCpuParams<A>& q,
                         const typename Simd<A>::V* x, typename Simd<A>::V* E,
                         int64 stride, typename Simd<A>::V* Em,
                         typename Simd<A>::V* xc,
                         typename Simd<A>::V* f0_exp) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = q.D;
  typename S::I neg[N];
  V f[N], v[N];
  if (q.centred_limit >= A(0) && CentredBatch<A, N>(q, x)) {
    CentredBases<A, N, kUnit>(q, x, E, stride, xc, f0_exp);
    return;
  }
  if constexpr (kUnit) {
    WalkExponents<A, N>(q, x, neg, xc, f0_exp, v);
    S::template ExpN<N>(v);
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) f[n] = S::Bc(A(1));
  } else {
    WalkStart<A, N>(q, x, neg, xc, f, v);
    (void)f0_exp;
  }
#if TFKAF_SIMD_AVX512
  WalkToCentres<A, N, !kUnit>(neg, f, v, D, q.scale, E, stride);
  (void)Em;
#else
  for (int64 j = 0; j < D; ++j) {
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      Em[n * D + j] = f[n];
      f[n] = f[n] * v[n];
    }
  }
  for (int64 i = 0; i < D; ++i) {
    const V c = S::Bc(kUnit ? A(1) : q.scale[i]);
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) {
      const V* m = Em + n * D;
      const V e = neg[n] ? m[i] : m[D - 1 - i];
      E[n * stride + i] = kUnit ? e : e * c;
    }
  }
#endif
}

// The Gaussian basis of N vectors in natural order, computed as M says: E
// and Em hold N * D vectors ([n][i]); xc receives the clamped x, f0_exp
// (kUnit) f_0's exponent. kRuns: each run's centres from x - its shift (a
// separate instantiation: the run loop beside the one-run walk slowed
// 2D-KAF's forward by ~10% at D = 10).
template <typename A, int N, Bases2d M>
TFKAF_AI void GaussBasisN(const KafCpuParams<A>& p,
                          const typename Simd<A>::V* x,
                          typename Simd<A>::V* E, typename Simd<A>::V* Em,
                          typename Simd<A>::V* xc,
                          typename Simd<A>::V* f0_exp = nullptr) {
  using V = typename Simd<A>::V;
  const int64 D = p.D;
  if (M != Bases2d::kUnit && !p.walk) {
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) xc[n] = GaussBasis<A>(p, x[n], E + n * D);
    return;
  }
  if constexpr (M == Bases2d::kRuns) {
    for (int64 r = 0; r < p.num_runs; ++r) {
      const WalkRun<A>& run = p.runs[r];
      V xr[N], unused[N];
      TFKAF_UNROLL
      for (int n = 0; n < N; ++n) xr[n] = x[n] - Simd<A>::Bc(run.shift);
      WalkBasisN<A, N, false>(run.params, xr, E + run.first, D, Em, unused,
                              nullptr);
    }
    TFKAF_UNROLL
    for (int n = 0; n < N; ++n) xc[n] = Clamp(p, x[n]);
  } else {
    WalkBasisN<A, N, M == Bases2d::kUnit>(p, x, E, D, Em, xc, f0_exp);
  }
}

// ---------------------------------------------------------------------------
// Batches of U vectors sharing coefficients (and dalpha accumulators).

// 1D Gaussian forward, walk mode, for U vectors whose |x| are all within
// p.centred_limit (CentredBatch): from the middle centre m = D / 2 both
// ways, e_j = f_m v^(j - m) C_j with f_m = exp(-g x^2 + 2 g d_m x),
// v = exp(2 g step x) upwards and u = 1 / v downwards. Every lane then takes
// the coefficients in the same order, which saves the mirrored walk's
// per-lane choice of coefficient, one operation per centre (D = 20, one
// thread, avx512: ~20% faster; docs/design.md, section 6). Within the limit
// f_m >= e^-40, so no term alpha_j e_j / f_m of the two Horner sums, nor
// their sum (kaf_cpu.cc's SetCentred bounds alpha for that), overflows;
// |2 g step x| <= 80, so neither v nor u does. tab: as WalkForward's.
template <typename A, int U, bool kUniform>
TFKAF_AI void CentredForward(const KafCpuParams<A>& p,
                             const typename Simd<A>::V* x, const A* tab,
                             typename Simd<A>::V* y) {
  using S = Simd<A>;
  using V = typename S::V;
  V f[U], v[U], u[U], up[U], down[U];
  CentredStart<A, U>(p, x, f, v, u);
  S::template ExpN<U>(f);
  TFKAF_UNROLL
  for (int n = 0; n < U; ++n) up[n] = down[n] = S::Bc(A(0));
  // Horner: up = sum_{j >= m} c_j v^(j - m) from the top centre down,
  // down = sum_{j < m} c_j u^(m - 1 - j) from centre 0 up.
  const int64 D = p.D, m = D / 2;
  int64 top = D - 1;
  if (D - m > m) {
    const V c = TabAt<A, kUniform>(tab, kTab1d * top--);
    TFKAF_UNROLL
    for (int n = 0; n < U; ++n) up[n] = c;
  }
  for (int64 k = 0; k < m; ++k) {
    const V cu = TabAt<A, kUniform>(tab, kTab1d * (top - k));
    const V cd = TabAt<A, kUniform>(tab, kTab1d * k);
    TFKAF_UNROLL
    for (int n = 0; n < U; ++n) {
      up[n] = up[n] * v[n] + cu;
      down[n] = down[n] * u[n] + cd;
    }
  }
  TFKAF_UNROLL
  for (int n = 0; n < U; ++n) y[n] = (up[n] + u[n] * down[n]) * f[n];
}

// 1D Gaussian forward, walk mode. tab: [D][kTab1d] entries (alpha_j C_j,
// alpha_{D-1-j} C_j, alpha_j C_j d_j; C is symmetric). Along a lane's walk
// e_j = f_0 v^j C_j, so y = f_0 sum_j c_j v^j with c_j = alpha_j C_j in walk
// order, evaluated by Horner's rule in w = v^2 for the even and the odd j
// (two independent FMA chains per vector; 0 <= v <= 1 keeps every partial
// sum within sum_j |c_j|): y = f_0 (P_even(w) + v P_odd(w)).
template <typename A, int U, bool kUniform>
TFKAF_AI void WalkForward(const KafCpuParams<A>& p,
                          const typename Simd<A>::V* x, const A* tab,
                          typename Simd<A>::V* y) {
  using S = Simd<A>;
  using V = typename S::V;
  using I = typename S::I;
  if (p.centred_limit >= A(0) && CentredBatch<A, U>(p, x)) {
    CentredForward<A, U, kUniform>(p, x, tab, y);
    return;
  }
  I neg[U];
  V xc[U], f[U], v[U], w[U], even[U], odd[U];
  WalkStart<A, U>(p, x, neg, xc, f, v);
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    w[u] = v[u] * v[u];
    even[u] = S::Bc(A(0));
    odd[u] = S::Bc(A(0));
  }
  // One Horner step of the chain `acc` with coefficient j (an where the
  // lane walks upwards, else ap).
  auto step = [&](V* acc, int64 j) {
    const V an = TabAt<A, kUniform>(tab, kTab1d * j);
    const V ap = TabAt<A, kUniform>(tab, kTab1d * j + 1);
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) acc[u] = acc[u] * w[u] + (neg[u] ? an : ap);
  };
  const int64 D = p.D;
  int64 j = D - 1;
  if (j % 2 == 0) step(even, j--);
  for (; j > 0; j -= 2) {
    step(odd, j);
    step(even, j - 1);
  }
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) y[u] = (even[u] + v[u] * odd[u]) * f[u];
}

// WalkBackward for U vectors whose |x| are all within p.centred_limit
// (CentredBatch): e_i / C_i = f_m v^(i - m) walked from the middle centre
// both ways as in CentredForward, in centre order in every lane, so without
// the mirrored walk's scratch and per-lane choice (D = 20, one thread,
// avx512: ~30% faster).
template <typename A, int U, bool kUniform>
TFKAF_AI void CentredBackward(const KafCpuParams<A>& p,
                              const typename Simd<A>::V* x,
                              const typename Simd<A>::V* dy, const A* tab,
                              typename Simd<A>::V* dA,
                              typename Simd<A>::V* dx) {
  using S = Simd<A>;
  using V = typename S::V;
  V f[U], v[U], u[U], e[U], acc[U], acc_d[U];
  CentredStart<A, U>(p, x, f, v, u);
  S::template ExpN<U>(f);
  TFKAF_UNROLL
  for (int n = 0; n < U; ++n) {
    e[n] = f[n];
    acc[n] = acc_d[n] = S::Bc(A(0));
  }
  // Centre i's sums, e holding e_i / C_i for each vector; then e *= r.
  auto centre = [&](int64 i, const V* r) {
    const V an = TabAt<A, kUniform>(tab, kTab1d * i);
    const V ad = TabAt<A, kUniform>(tab, kTab1d * i + 2);
    V sum = S::Bc(A(0));
    TFKAF_UNROLL
    for (int n = 0; n < U; ++n) {
      acc[n] = acc[n] + an * e[n];
      acc_d[n] = acc_d[n] + ad * e[n];
      sum = sum + dy[n] * e[n];
      e[n] = e[n] * r[n];
    }
    dA[i] = dA[i] + sum;
  };
  const int64 D = p.D, m = D / 2;
  for (int64 i = m; i < D; ++i) centre(i, v);
  TFKAF_UNROLL
  for (int n = 0; n < U; ++n) e[n] = f[n] * u[n];
  for (int64 i = m - 1; i >= 0; --i) centre(i, u);
  TFKAF_UNROLL
  for (int n = 0; n < U; ++n) {
    dx[n] = DxScale(p, x[n] * acc[n] - acc_d[n], dy[n]);
  }
}

// 1D Gaussian backward, walk mode: dx for each vector; adds
// sum_u dy_u e_i / C_i to dA[i] (kaf_cpu.cc multiplies the sums by C_i).
// scratch: U * D vectors.
template <typename A, int U, bool kUniform>
TFKAF_AI void WalkBackward(const KafCpuParams<A>& p,
                           const typename Simd<A>::V* x,
                           const typename Simd<A>::V* dy, const A* tab,
                           typename Simd<A>::V* dA,
                           typename Simd<A>::V* scratch,
                           typename Simd<A>::V* dx) {
  using S = Simd<A>;
  using V = typename S::V;
  using I = typename S::I;
  const int64 D = p.D;
  if (p.centred_limit >= A(0) && CentredBatch<A, U>(p, x)) {
    CentredBackward<A, U, kUniform>(p, x, dy, tab, dA, dx);
    return;
  }
  I neg[U];
  V xc[U], f[U], v[U], acc[U];
  WalkStart<A, U>(p, x, neg, xc, f, v);
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) acc[u] = S::Bc(A(0));
  for (int64 j = 0; j < D; ++j) {
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      scratch[u * D + j] = f[u];
      f[u] = f[u] * v[u];
    }
  }
  V acc_d[U];
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) acc_d[u] = S::Bc(A(0));
  // sum_i alpha_i e_i (x - d_i) = x sum_i alpha_i e_i - sum_i alpha_i d_i e_i
  for (int64 i = 0; i < D; ++i) {
    const V an = TabAt<A, kUniform>(tab, kTab1d * i);
    const V ad = TabAt<A, kUniform>(tab, kTab1d * i + 2);
    V sum = S::Bc(A(0));
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      const V* Em = scratch + u * D;
      const V e = neg[u] ? Em[i] : Em[D - 1 - i];
      acc[u] = acc[u] + an * e;
      acc_d[u] = acc_d[u] + ad * e;
      sum = sum + dy[u] * e;
    }
    dA[i] = dA[i] + sum;
  }
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    dx[u] = DxScale(p, xc[u] * acc[u] - acc_d[u], dy[u]);
  }
}

// Table entry `first` * kTab1d onwards (1D tables; see TabAt).
template <typename A, bool kUniform>
TFKAF_AI const A* TabFrom(const A* tab, int64 first) {
  return tab + kTab1d * first * (kUniform ? 1 : Simd<A>::W);
}

// 1D forward, one vector, any kernel (Gaussian in direct mode). tab:
// [D][kTab1d], entry (j, 0) = alpha_j. scratch: D vectors.
template <typename A, KafKernel K, bool kUniform>
TFKAF_AI typename Simd<A>::V Forward1(const KafCpuParams<A>& p,
                                     typename Simd<A>::V x, const A* tab,
                                     typename Simd<A>::V* scratch) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = p.D;
  const V zero = S::Bc(A(0));
  V acc = zero;
  if (K == KafKernel::kGaussian) {
    V* E = scratch;
    GaussBasis<A>(p, x, E);
    for (int64 i = 0; i < D; ++i) {
      acc = acc + TabAt<A, kUniform>(tab, kTab1d * i) * E[i];
    }
    return acc;
  }
  for (int64 i = 0; i < D; ++i) {
    const V t = x - S::Bc(p.d[i]);
    V b;
    if (K == KafKernel::kRelu) {
      b = (t <= zero) ? zero : t;  // NaN stays NaN
    } else {
      const V ez = S::Exp(-S::Abs(t));
      b = S::Log1pUnit(ez) + ((t <= zero) ? zero : t);
    }
    acc = acc + TabAt<A, kUniform>(tab, kTab1d * i) * b;
  }
  return acc;
}

// 1D backward, one vector, any kernel (Gaussian in direct mode): dx; adds
// dy * k(x, d_i) to dA[i]. scratch: D vectors.
template <typename A, KafKernel K, bool kUniform>
TFKAF_AI typename Simd<A>::V Backward1(const KafCpuParams<A>& p,
                                      typename Simd<A>::V x,
                                      typename Simd<A>::V dy, const A* tab,
                                      typename Simd<A>::V* dA,
                                      typename Simd<A>::V* scratch) {
  using S = Simd<A>;
  using V = typename S::V;
  using I = typename S::I;
  const int64 D = p.D;
  const V zero = S::Bc(A(0));
  V acc = zero;
  if (K == KafKernel::kGaussian) {
    V* E = scratch;
    const V xc = GaussBasis<A>(p, x, E);
    for (int64 i = 0; i < D; ++i) {
      const V e = E[i];
      acc = acc + (TabAt<A, kUniform>(tab, kTab1d * i) * e) *
                      (xc - S::Bc(p.d[i]));
      dA[i] = dA[i] + dy * e;
    }
    return DxScale(p, acc, dy);
  }
  for (int64 i = 0; i < D; ++i) {
    const V t = x - S::Bc(p.d[i]);
    const V a = TabAt<A, kUniform>(tab, kTab1d * i);
    if (K == KafKernel::kRelu) {
      const V b = (t <= zero) ? zero : t;
      acc = acc + ((t > zero) ? a : zero);
      dA[i] = dA[i] + dy * b;
    } else {
      const V ez = S::Exp(-S::Abs(t));
      const V inv = S::Bc(A(1)) / (S::Bc(A(1)) + ez);
      const V sig = (t >= zero) ? inv : ez * inv;  // sigmoid(t), stable
      const V b = S::Log1pUnit(ez) + ((t <= zero) ? zero : t);
      acc = acc + a * sig;
      dA[i] = dA[i] + dy * b;
    }
  }
  V dx = dy * acc;
  if (K == KafKernel::kRelu) {
    const I nan = x != x;
    dx = nan ? x : dx;
  }
  return dx;
}

// out[r U + u] = sum over k < D of table entry (first + r line + k step)
// times E[u D + k], for r < R: R rows (line D, step 1) or columns (line 1,
// step D) of the 2D coefficient grid against U bases. With R > 1 each basis
// value is loaded once for the R lines (kept in a register: GCC would fold
// each use into a memory-operand FMA, one load per use): at R = 2 and U = 4
// that is 6 loads per 8 FMAs, against 9 per 8 for one line at U = 8.
template <typename A, int R, int U, bool kUniform>
TFKAF_AI void TabDot(const A* tab, int64 first, int64 line, int64 step,
                     int64 D, const typename Simd<A>::V* E,
                     typename Simd<A>::V* out) {
  using V = typename Simd<A>::V;
  TFKAF_UNROLL
  for (int k = 0; k < R * U; ++k) out[k] = Simd<A>::Bc(A(0));
  for (int64 k = 0; k < D; ++k) {
    V al[R];
    TFKAF_UNROLL
    for (int r = 0; r < R; ++r) {
      al[r] = TabAt<A, kUniform>(tab, first + r * line + k * step);
    }
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      V e = E[u * D + k];
      if (R > 1) InRegister(e);
      TFKAF_UNROLL
      for (int r = 0; r < R; ++r) out[r * U + u] = out[r * U + u] + al[r] * e;
    }
  }
}

// Lines of the 2D coefficient grid per TabDot call in the 2D-KAF forward and
// the backward's dx1 pass. 2, with the forward's batches of 4 vectors,
// measured fastest from D = 5 to 20 (docs/design.md, section 6: ~13% off
// the forward at D = 10). A forward not in kUnit (Bases2d::kRuns: sides
// above 18 at the default gamma) keeps batches of 8 vectors on one line:
// its table (32 D^2 bytes a channel block on avx2) no longer stays in L1,
// and a coefficient load then serves 8 vectors instead of 4.
constexpr int kTabLines = 2;
// Grid columns per TabDot call in the 2D-KAF backward's dx1 pass (its
// batches: 4 vectors). On avx512 5: their 20 sums fit its 32 registers, and
// D = 10 splits into two (one thread, [4096, 2048]: backward 33.4-33.6 ->
// 31.2-31.4 ms; 4 columns 32.0-32.2 ms).
constexpr int kColumnLines = TFKAF_SIMD_AVX512 ? 5 : kTabLines;

// Forward2's grid rows b .. b + R - 1: acc[u] += sum_a alpha_ab E1_u[a]
// E2_u[b], row by row.
template <typename A, int R, int U, bool kUniform>
TFKAF_AI void Forward2Rows(const A* tab, int64 b, int64 D,
                           const typename Simd<A>::V* E1,
                           const typename Simd<A>::V* E2,
                           typename Simd<A>::V* acc) {
  typename Simd<A>::V q[R * U];
  TabDot<A, R, U, kUniform>(tab, b * D, D, 1, D, E1, q);
  TFKAF_UNROLL
  for (int r = 0; r < R; ++r) {
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      acc[u] = acc[u] + q[r * U + u] * E2[u * D + b + r];
    }
  }
}

// 2D-KAF forward. tab: [D*D] entries, k = b * D + a for (x1 - d_a, x2 - d_b)
// (kUnit: times C_a C_b). scratch: 3 U D vectors.
template <typename A, int U, bool kUniform, Bases2d M>
TFKAF_AI void Forward2(const KafCpuParams<A>& p, const typename Simd<A>::V* x1,
                       const typename Simd<A>::V* x2, const A* tab,
                       typename Simd<A>::V* scratch, typename Simd<A>::V* y) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = p.D;
  V* E1 = scratch;           // [U][D]
  V* E2 = scratch + U * D;   // [U][D]
  V* Em = scratch + 2 * U * D;
  V xc[U], f1[U], f2[U];
  GaussBasisN<A, U, M>(p, x1, E1, Em, xc, f1);
  GaussBasisN<A, U, M>(p, x2, E2, Em, xc, f2);
  V acc[U];
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) acc[u] = S::Bc(A(0));
  constexpr int R = M == Bases2d::kRuns ? 1 : kTabLines;
  int64 b = 0;
  for (; b + R <= D; b += R) {
    Forward2Rows<A, R, U, kUniform>(tab, b, D, E1, E2, acc);
  }
  for (; b < D; ++b) Forward2Rows<A, 1, U, kUniform>(tab, b, D, E1, E2, acc);
  if constexpr (M == Bases2d::kUnit) {
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) f1[u] = f1[u] + f2[u];
    S::template ExpN<U>(f1);  // f_0 of x1 times f_0 of x2
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) y[u] = acc[u] * f1[u];
  } else {
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) y[u] = acc[u];
  }
}

// Backward2's grid columns a .. a + R - 1, for dx1: accumulates
// (x1 - d_a) E1_u[a] P_u[a] into acc1, P_u[a] = sum_b alpha_ab E2_u[b].
template <typename A, int R, int U, bool kUniform>
TFKAF_AI void Backward2Columns(const KafCpuParams<A>& p, const A* tab,
                               int64 a, const typename Simd<A>::V* E1,
                               const typename Simd<A>::V* E2,
                               const typename Simd<A>::V* xc1,
                               typename Simd<A>::V* acc1) {
  using V = typename Simd<A>::V;
  const int64 D = p.D;
  V pa[R * U];
  TabDot<A, R, U, kUniform>(tab, a, 1, D, D, E2, pa);
  TFKAF_UNROLL
  for (int r = 0; r < R; ++r) {
    const V d = Simd<A>::Bc(p.d[a + r]);
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      acc1[u] = acc1[u] + (xc1[u] - d) * E1[u * D + a + r] * pa[r * U + u];
    }
  }
}

// Grid rows per step of the 2D-KAF backward's row pass (Backward2Rows):
// each load of an E1 vector then serves 2 rows. On avx512 2 (their 16 sums
// and 8 dy E2 products fit its 32 registers; one thread, D = 10, [4096,
// 2048]: backward 37.7-38.2 -> 35.6-36.2 ms; 3 rows: 35.1-36.7 ms, 4 and 5
// spill: 38.7-41.2 ms); AVX2's 16 registers keep one row.
constexpr int kRowLines = TFKAF_SIMD_AVX512 ? 2 : 1;

// Backward2's grid rows b .. b + R - 1: accumulates (x2 - d_b) E2[b] Q[b]
// into acc2, Q_u[b] = sum_a alpha_ab E1_u[a] (for dx2), and adds the
// dalpha outer products sum_u dy_u E1_u[a] E2_u[b] to dA[b * D + a]; row
// after row into acc2, as one row at a time would.
template <typename A, int R, int U, bool kUniform>
TFKAF_AI void Backward2RowsOf(const KafCpuParams<A>& p, int64 b,
                              const typename Simd<A>::V* E1,
                              const typename Simd<A>::V* E2,
                              const typename Simd<A>::V* xc2,
                              const typename Simd<A>::V* dy, const A* tab,
                              typename Simd<A>::V* dA,
                              typename Simd<A>::V* acc2) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = p.D;
  V q[R * U], w[R * U];
  TFKAF_UNROLL
  for (int r = 0; r < R; ++r) {
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      q[r * U + u] = S::Bc(A(0));
      w[r * U + u] = dy[u] * E2[u * D + b + r];
    }
  }
  for (int64 a = 0; a < D; ++a) {
    V al[R], sum[R];
    TFKAF_UNROLL
    for (int r = 0; r < R; ++r) {
      al[r] = TabAt<A, kUniform>(tab, (b + r) * D + a);
      sum[r] = S::Bc(A(0));
    }
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      V e1 = E1[u * D + a];
      InRegister(e1);
      TFKAF_UNROLL
      for (int r = 0; r < R; ++r) {
        q[r * U + u] = q[r * U + u] + al[r] * e1;
        sum[r] = sum[r] + w[r * U + u] * e1;
      }
    }
    TFKAF_UNROLL
    for (int r = 0; r < R; ++r) {
      dA[(b + r) * D + a] = dA[(b + r) * D + a] + sum[r];
    }
  }
  TFKAF_UNROLL
  for (int r = 0; r < R; ++r) {
    const V d = S::Bc(p.d[b + r]);
    TFKAF_UNROLL
    for (int u = 0; u < U; ++u) {
      acc2[u] = acc2[u] + (xc2[u] - d) * E2[u * D + b + r] * q[r * U + u];
    }
  }
}

// Backward2's pass over the grid rows, kRowLines at a time.
template <typename A, int U, bool kUniform>
TFKAF_AI void Backward2Rows(const KafCpuParams<A>& p,
                            const typename Simd<A>::V* E1,
                            const typename Simd<A>::V* E2,
                            const typename Simd<A>::V* xc2,
                            const typename Simd<A>::V* dy, const A* tab,
                            typename Simd<A>::V* dA,
                            typename Simd<A>::V* acc2) {
  int64 b = 0;
  for (; b + kRowLines <= p.D; b += kRowLines) {
    Backward2RowsOf<A, kRowLines, U, kUniform>(p, b, E1, E2, xc2, dy, tab,
                                               dA, acc2);
  }
  for (; b < p.D; ++b) {
    Backward2RowsOf<A, 1, U, kUniform>(p, b, E1, E2, xc2, dy, tab, dA, acc2);
  }
}

// 2D-KAF backward: dx1, dx2 for each vector; adds sum_u dy_u E1_u[a] E2_u[b]
// to dA[b * D + a]. scratch: 3 U D vectors.
template <typename A, int U, bool kUniform, Bases2d M>
TFKAF_AI void Backward2(const KafCpuParams<A>& p,
                        const typename Simd<A>::V* x1,
                        const typename Simd<A>::V* x2,
                        const typename Simd<A>::V* dy, const A* tab,
                        typename Simd<A>::V* dA, typename Simd<A>::V* scratch,
                        typename Simd<A>::V* dx1, typename Simd<A>::V* dx2) {
  using S = Simd<A>;
  using V = typename S::V;
  const int64 D = p.D;
  V* E1 = scratch;
  V* E2 = scratch + U * D;
  V* Em = scratch + 2 * U * D;
  V xc1[U], xc2[U], acc1[U], acc2[U];
  static_assert(M != Bases2d::kUnit, "the backward needs the exact bases");
  GaussBasisN<A, U, M>(p, x1, E1, Em, xc1);
  GaussBasisN<A, U, M>(p, x2, E2, Em, xc2);
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    acc1[u] = S::Bc(A(0));
    acc2[u] = S::Bc(A(0));
  }
  Backward2Rows<A, U, kUniform>(p, E1, E2, xc2, dy, tab, dA, acc2);
  int64 a = 0;
  for (; a + kColumnLines <= D; a += kColumnLines) {
    Backward2Columns<A, kColumnLines, U, kUniform>(p, tab, a, E1, E2, xc1,
                                                   acc1);
  }
  for (; a < D; ++a) {
    Backward2Columns<A, 1, U, kUniform>(p, tab, a, E1, E2, xc1, acc1);
  }
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    dx1[u] = DxScale(p, acc1[u], dy[u]);
    dx2[u] = DxScale(p, acc2[u], dy[u]);
  }
}

// ---------------------------------------------------------------------------
// Tile loops (not inlined; one call per tile).
//
// Vectors per batch of the Gaussian tile loops (relu and softplus tiles take
// one vector at a time): more vectors share each coefficient load and dalpha
// update and hide more latency, as long as a batch's state (per vector: f,
// v, the sums, the lanes' walk directions) stays in registers. 4 measured
// best with AVX2's 16 registers (3 and 2 are slower); AVX-512's 32, with the
// walk directions in mask registers, hold 8 forward walks (on an Intel Xeon,
// D = 20, [4096, 1024], one thread: 3.61-3.68 ms against 3.81-3.85 with 6).
#if TFKAF_SIMD_AVX512
constexpr int kBatch1dForward = 8;
#else
constexpr int kBatch1dForward = 4;
#endif
constexpr int kBatch1dBackward = 4;
// 2D forward: 4 vectors of kTabLines grid rows, 8 of one row in runs. On
// avx512, 8 vectors of kTabLines rows: their 16 sums fit its 32 registers,
// and each coefficient load serves twice the vectors (D = 10, one thread,
// [4096, 2048] -> [4096, 1024]: 19.7-20.0 -> 15.3-15.9 ms; 6 vectors
// 15.7-17.5 ms).
template <Bases2d M>
constexpr int kBatch2dForward =
    M == Bases2d::kRuns || TFKAF_SIMD_AVX512 ? 8 : 4;
constexpr int kBatch2dBackward = 4;
static_assert(kBatch1dForward <= kMaxBatch && kBatch1dBackward <= kMaxBatch &&
                  kBatch2dForward<Bases2d::kRuns> <= kMaxBatch &&
                  kBatch2dForward<Bases2d::kUnit> <= kMaxBatch &&
                  kBatch2dBackward <= kMaxBatch,
              "kaf_cpu.cc sizes the scratch for kMaxBatch vectors per batch");

// The tile loops' scratch (kaf_cpu.cc: aligned to 64 bytes) as vectors.
template <typename A>
TFKAF_AI typename Simd<A>::V* Vectors(A* lanes) {
  return reinterpret_cast<typename Simd<A>::V*>(lanes);
}

// Channels-last (kUniform = false): `rows` rows of `len` channels starting at
// x, consecutive rows `stride` elements apart; `tab` is the blocked table at
// the tile's first channel block (tab_stride entries per channel); dA (1D:
// [blocks][D][W], 2D: [blocks][D*D][W]) the tile's slice of the chunk's
// partial sums (vector aligned).
// kUniform: one row of `len` positions of one channel (rows = 1); `tab` that
// channel's table; dA its row of partial sums (scalars), to which the tile
// adds its total.

// Calls body(at, column) for batches of U full vectors and tail(at, lanes,
// column) for the vectors left over (lanes: valid lanes, possibly < W), in
// an order fixed by the tile's geometry. at: element offsets of the vectors
// from the tile start; column: the vector column (channel block) index.
template <int U, int W, bool kUniform, typename Body, typename Tail>
TFKAF_AI void ForEachBatch(const Tile& t, Body body, Tail tail) {
  if (kUniform) {
    const int64 full = t.len / W;
    int64 v = 0;
    for (; v + U <= full; v += U) {
      int64 at[U];
      TFKAF_UNROLL
      for (int u = 0; u < U; ++u) at[u] = (v + u) * W;
      body(at, int64(0));
    }
    for (; v * W < t.len; ++v) tail(v * W, t.len - v * W, int64(0));
    return;
  }
  // Rows (U at a time) outer, columns inner: streams through memory.
  const int64 full = t.len / W;
  int64 o = 0;
  for (; o + U <= t.rows; o += U) {
    for (int64 v = 0; v < full; ++v) {
      int64 at[U];
      TFKAF_UNROLL
      for (int u = 0; u < U; ++u) at[u] = (o + u) * t.stride + v * W;
      body(at, v);
    }
  }
  for (int64 v = 0; v * W < t.len; ++v) {
    const int64 lanes = t.len - v * W;
    for (int64 r = v < full ? o : 0; r < t.rows; ++r) {
      tail(r * t.stride + v * W, lanes, v);
    }
  }
}

// Prefetches (kWrite: for writing) the vectors kPrefetchRows (cpu_tile.h)
// rows of `stride` elements past p + at[u]: a channels-last tile's rows
// are 1 KB pieces (kaf_cpu.cc: kSegment channels). kUniform: none (one
// row's positions in order, which the hardware prefetchers follow).
template <typename A, int U, bool kUniform, bool kWrite>
TFKAF_AI void PrefetchBatch(const A* p, const int64* at, int64 stride) {
  if (kUniform) return;
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    __builtin_prefetch(p + at[u] + kPrefetchRows * stride, kWrite ? 1 : 0);
  }
}

// v[u] = the vector at p + at[u] / stores it there, u < U, each first
// prefetching the batch kPrefetchRows rows (of `stride` elements) on.
template <typename A, int U, bool kUniform>
TFKAF_AI void LoadBatch(const A* p, const int64* at, int64 stride,
                        typename Simd<A>::V* v) {
  PrefetchBatch<A, U, kUniform, false>(p, at, stride);
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) v[u] = Load(p + at[u]);
}

template <typename A, int U, bool kUniform>
TFKAF_AI void StoreBatch(A* p, const int64* at, int64 stride,
                         const typename Simd<A>::V* v) {
  PrefetchBatch<A, U, kUniform, true>(p, at, stride);
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) Store(p + at[u], v[u]);
}

// out[u]: the offset at[u] of an operand with rows t.stride apart, in one
// with rows `out_stride` apart (the 2D output; kUniform: one row, the same).
template <int U, bool kUniform>
TFKAF_AI void MapOffsets(const Tile& t, int64 out_stride, const int64* at,
                         int64* out) {
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) {
    out[u] = kUniform ? at[u]
                      : (at[u] / t.stride) * out_stride + at[u] % t.stride;
  }
}

// The dalpha accumulators of a vector column: the tile's blocked partial
// sums (block entries per column), or the per-lane sums `acc` (kUniform).
template <typename A, bool kUniform>
TFKAF_AI typename Simd<A>::V* DAColumn(typename Simd<A>::V* acc, A* dA,
                                       int64 block, int64 column) {
  return kUniform ? acc
                  : reinterpret_cast<typename Simd<A>::V*>(dA + column * block);
}

// The table block (channels-last) or table (kUniform) of a vector column;
// `block`: entries per block.
template <typename A, bool kUniform>
TFKAF_AI const A* TabColumn(const A* tab, int64 block, int64 column) {
  return kUniform ? tab : tab + column * block;
}

// kUniform backward tiles accumulate dalpha per lane in n vectors: zeroed
// first, their lane sums added to dA[k] last.
template <typename A>
TFKAF_AI void ZeroVectors(typename Simd<A>::V* acc, int64 n) {
  for (int64 k = 0; k < n; ++k) acc[k] = Simd<A>::Bc(A(0));
}

template <typename A>
TFKAF_AI void AddLaneSums(const typename Simd<A>::V* acc, int64 n, A* dA) {
  for (int64 k = 0; k < n; ++k) {
    A s = dA[k];
    for (int l = 0; l < Simd<A>::W; ++l) s += acc[k][l];
    dA[k] = s;
  }
}

// Walk mode in several runs (kaf_cpu.cc, WalkRun): each run of centres is
// a KAF of its own, symmetric about its `shift`, walked on x - shift from
// its own end nearest to x; y and dx sum the runs, run after run over the
// whole tile (the outputs never alias the inputs). Tile loops of their own:
// the run loop inside ForwardTile's batch slowed one-run walks by ~25%.
//
// Calls body(r, run, shift, tab_at) for run r of p: shift broadcast,
// tab_at(column) the run's entries of a column's table.
template <typename A, bool kUniform, typename Body>
TFKAF_AI void ForEachWalkRun(const KafCpuParams<A>& p, const A* tab,
                             Body body) {
  const int64 tab_block = kTab1d * p.D * Simd<A>::W;
  for (int64 r = 0; r < p.num_runs; ++r) {
    const WalkRun<A>& run = p.runs[r];
    auto tab_at = [&](int64 column) {
      return TabFrom<A, kUniform>(
          TabColumn<A, kUniform>(tab, tab_block, column), run.first);
    };
    body(r, run, Simd<A>::Bc(run.shift), tab_at);
  }
}

// A run's x: v[u] - shift, u < U.
template <typename A, int U>
TFKAF_AI void ShiftBatch(typename Simd<A>::V* v, typename Simd<A>::V shift) {
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) v[u] = v[u] - shift;
}

// Runs after the first add the sum of those before, stored at p + at[u].
template <typename A, int U>
TFKAF_AI void AddEarlierRuns(int64 r, const A* p, const int64* at,
                             typename Simd<A>::V* v) {
  if (r == 0) return;
  TFKAF_UNROLL
  for (int u = 0; u < U; ++u) v[u] = v[u] + Load(p + at[u]);
}

template <typename A, bool kUniform>
__attribute__((noinline)) void WalkRunsForwardTile(const KafCpuParams<A>& p,
                                                   const Tile& t, const A* x,
                                                   A* y, const A* tab) {
  using V = typename Simd<A>::V;
  constexpr int U = kBatch1dForward;
  ForEachWalkRun<A, kUniform>(p, tab, [&](int64 r, const WalkRun<A>& run,
                                          V shift, auto tab_at) {
    ForEachBatch<U, Simd<A>::W, kUniform>(
        t,
        [&](const int64* at, int64 column) {
          V xv[U], yv[U];
          LoadBatch<A, U, kUniform>(x, at, t.stride, xv);
          ShiftBatch<A, U>(xv, shift);
          WalkForward<A, U, kUniform>(run.params, xv, tab_at(column), yv);
          AddEarlierRuns<A, U>(r, y, at, yv);
          StoreBatch<A, U, kUniform>(y, at, t.stride, yv);
        },
        [&](int64 at, int64 lanes, int64 column) {
          V xv = LoadN(x + at, lanes), yv;
          ShiftBatch<A, 1>(&xv, shift);
          WalkForward<A, 1, kUniform>(run.params, &xv, tab_at(column), &yv);
          if (r > 0) yv = yv + LoadN(y + at, lanes);
          StoreN(y + at, yv, lanes);
        });
  });
}

// The backward of WalkRunsForwardTile: each run adds to its own centres'
// dalpha sums (dA as in BackwardTile; kUniform: `acc`, D vectors).
template <typename A, bool kUniform>
__attribute__((noinline)) void WalkRunsBackwardTile(
    const KafCpuParams<A>& p, const Tile& t, const A* dy, const A* x, A* dx,
    const A* tab, A* dA, typename Simd<A>::V* acc,
    typename Simd<A>::V* work) {
  using V = typename Simd<A>::V;
  constexpr int W = Simd<A>::W;
  constexpr int U = kBatch1dBackward;
  ForEachWalkRun<A, kUniform>(p, tab, [&](int64 r, const WalkRun<A>& run,
                                          V shift, auto tab_at) {
    auto dA_at = [&](int64 column) {
      return DAColumn<A, kUniform>(acc, dA, p.D * W, column) + run.first;
    };
    ForEachBatch<U, W, kUniform>(
        t,
        [&](const int64* at, int64 column) {
          V xv[U], dyv[U], dxv[U];
          LoadBatch<A, U, kUniform>(x, at, t.stride, xv);
          LoadBatch<A, U, kUniform>(dy, at, t.stride, dyv);
          ShiftBatch<A, U>(xv, shift);
          WalkBackward<A, U, kUniform>(run.params, xv, dyv, tab_at(column),
                                       dA_at(column), work, dxv);
          AddEarlierRuns<A, U>(r, dx, at, dxv);
          StoreBatch<A, U, kUniform>(dx, at, t.stride, dxv);
        },
        [&](int64 at, int64 lanes, int64 column) {
          V xv = LoadN(x + at, lanes), dxv;
          const V dyv = LoadN(dy + at, lanes);
          ShiftBatch<A, 1>(&xv, shift);
          WalkBackward<A, 1, kUniform>(run.params, &xv, &dyv, tab_at(column),
                                       dA_at(column), work, &dxv);
          if (r > 0) dxv = dxv + LoadN(dx + at, lanes);
          StoreN(dx + at, dxv, lanes);
        });
  });
}

template <typename A, KafKernel K, bool kUniform>
__attribute__((noinline)) void ForwardTile(const KafCpuParams<A>& p,
                                           const Tile& t, const A* x, A* y,
                                           const A* tab, A* scratch_lanes) {
  using S = Simd<A>;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int U = K == KafKernel::kGaussian ? kBatch1dForward : 1;
  V* scratch = Vectors<A>(scratch_lanes);
  const int64 tab_block = kTab1d * p.D * W;  // one table block per column
  const bool walk = K == KafKernel::kGaussian && p.walk;
  if (K == KafKernel::kGaussian && WalksInRuns(p)) {
    WalkRunsForwardTile<A, kUniform>(p, t, x, y, tab);
    return;
  }
  auto tab_at = [&](int64 column) {
    return TabColumn<A, kUniform>(tab, tab_block, column);
  };
  ForEachBatch<U, W, kUniform>(
      t,
      [&](const int64* at, int64 column) {
        V xv[U], yv[U];
        LoadBatch<A, U, kUniform>(x, at, t.stride, xv);
        if (walk) {
          WalkForward<A, U, kUniform>(p, xv, tab_at(column), yv);
        } else {
          TFKAF_UNROLL
          for (int u = 0; u < U; ++u) {
            yv[u] = Forward1<A, K, kUniform>(p, xv[u], tab_at(column),
                                             scratch);
          }
        }
        StoreBatch<A, U, kUniform>(y, at, t.stride, yv);
      },
      [&](int64 at, int64 lanes, int64 column) {
        const V xv = LoadN(x + at, lanes);
        V yv;
        if (walk) {
          WalkForward<A, 1, kUniform>(p, &xv, tab_at(column), &yv);
        } else {
          yv = Forward1<A, K, kUniform>(p, xv, tab_at(column), scratch);
        }
        StoreN(y + at, yv, lanes);
      });
}

template <typename A, KafKernel K, bool kUniform>
__attribute__((noinline)) void BackwardTile(const KafCpuParams<A>& p,
                                            const Tile& t, const A* dy,
                                            const A* x, A* dx, const A* tab,
                                            A* dA, A* scratch_lanes) {
  using S = Simd<A>;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int U = K == KafKernel::kGaussian ? kBatch1dBackward : 1;
  V* scratch = Vectors<A>(scratch_lanes);
  const int64 D = p.D;
  const int64 tab_block = kTab1d * D * W;
  const int64 dA_block = D * W;
  const bool walk = K == KafKernel::kGaussian && p.walk;
  V* acc = scratch;  // kUniform: per-lane partial sums, D vectors
  V* work = scratch + D;
  if (kUniform) ZeroVectors<A>(acc, D);
  if (K == KafKernel::kGaussian && WalksInRuns(p)) {
    WalkRunsBackwardTile<A, kUniform>(p, t, dy, x, dx, tab, dA, acc, work);
    if (kUniform) AddLaneSums<A>(acc, D, dA);
    return;
  }
  auto tab_at = [&](int64 column) {
    return TabColumn<A, kUniform>(tab, tab_block, column);
  };
  auto dA_at = [&](int64 column) {
    return DAColumn<A, kUniform>(acc, dA, dA_block, column);
  };
  ForEachBatch<U, W, kUniform>(
      t,
      [&](const int64* at, int64 column) {
        V xv[U], dyv[U], dxv[U];
        LoadBatch<A, U, kUniform>(x, at, t.stride, xv);
        LoadBatch<A, U, kUniform>(dy, at, t.stride, dyv);
        if (walk) {
          WalkBackward<A, U, kUniform>(p, xv, dyv, tab_at(column),
                                       dA_at(column), work, dxv);
        } else {
          TFKAF_UNROLL
          for (int u = 0; u < U; ++u) {
            dxv[u] = Backward1<A, K, kUniform>(p, xv[u], dyv[u],
                                               tab_at(column), dA_at(column),
                                               work);
          }
        }
        StoreBatch<A, U, kUniform>(dx, at, t.stride, dxv);
      },
      [&](int64 at, int64 lanes, int64 column) {
        const V xv = LoadN(x + at, lanes);
        const V dyv = LoadN(dy + at, lanes);  // zero lanes add nothing
        V dxv;
        if (walk) {
          WalkBackward<A, 1, kUniform>(p, &xv, &dyv, tab_at(column),
                                       dA_at(column), work, &dxv);
        } else {
          dxv = Backward1<A, K, kUniform>(p, xv, dyv, tab_at(column),
                                          dA_at(column), work);
        }
        StoreN(dx + at, dxv, lanes);
      });
  if (kUniform) AddLaneSums<A>(acc, D, dA);
}

// 2D: x1 / x2 / dx1 / dx2 are the two channel halves (same offsets), y / dy
// the output (row stride y_stride / dy_stride instead of t.stride). M: how
// the bases are computed (Bases2d).
template <typename A, bool kUniform, Bases2d M>
__attribute__((noinline)) void Forward2TileOf(const KafCpuParams<A>& p,
                                              const Tile& t, const A* x1,
                                              const A* x2, A* y,
                                              int64 y_stride, const A* tab,
                                              A* scratch_lanes) {
  using S = Simd<A>;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int U = kBatch2dForward<M>;
  V* scratch = Vectors<A>(scratch_lanes);
  const int64 tab_block = p.D * p.D * W;
  auto tab_at = [&](int64 column) {
    return TabColumn<A, kUniform>(tab, tab_block, column);
  };
  ForEachBatch<U, W, kUniform>(
      t,
      [&](const int64* at, int64 column) {
        V a[U], b[U], yv[U];
        int64 out[U];
        MapOffsets<U, kUniform>(t, y_stride, at, out);
        LoadBatch<A, U, kUniform>(x1, at, t.stride, a);
        LoadBatch<A, U, kUniform>(x2, at, t.stride, b);
        Forward2<A, U, kUniform, M>(p, a, b, tab_at(column), scratch, yv);
        StoreBatch<A, U, kUniform>(y, out, y_stride, yv);
      },
      [&](int64 at, int64 lanes, int64 column) {
        const V a = LoadN(x1 + at, lanes);
        const V b = LoadN(x2 + at, lanes);
        V yv;
        Forward2<A, 1, kUniform, M>(p, &a, &b, tab_at(column), scratch, &yv);
        int64 out;
        MapOffsets<1, kUniform>(t, y_stride, &at, &out);
        StoreN(y + out, yv, lanes);
      });
}

template <typename A, bool kUniform, Bases2d M>
__attribute__((noinline)) void Backward2TileOf(
    const KafCpuParams<A>& p, const Tile& t, const A* dy, int64 dy_stride,
    const A* x1, const A* x2, A* dx1, A* dx2, const A* tab, A* dA,
    A* scratch_lanes) {
  using S = Simd<A>;
  using V = typename S::V;
  constexpr int W = S::W;
  constexpr int U = kBatch2dBackward;
  V* scratch = Vectors<A>(scratch_lanes);
  const int64 D2 = p.D * p.D;
  const int64 tab_block = D2 * W;
  V* acc = scratch;  // kUniform: D*D vectors
  V* work = scratch + D2;
  if (kUniform) ZeroVectors<A>(acc, D2);
  auto tab_at = [&](int64 column) {
    return TabColumn<A, kUniform>(tab, tab_block, column);
  };
  auto dA_at = [&](int64 column) {
    return DAColumn<A, kUniform>(acc, dA, tab_block, column);
  };
  ForEachBatch<U, W, kUniform>(
      t,
      [&](const int64* at, int64 column) {
        V a[U], b[U], g[U], d1[U], d2[U];
        int64 out[U];
        MapOffsets<U, kUniform>(t, dy_stride, at, out);
        LoadBatch<A, U, kUniform>(x1, at, t.stride, a);
        LoadBatch<A, U, kUniform>(x2, at, t.stride, b);
        LoadBatch<A, U, kUniform>(dy, out, dy_stride, g);
        Backward2<A, U, kUniform, M>(p, a, b, g, tab_at(column),
                                     dA_at(column), work, d1, d2);
        StoreBatch<A, U, kUniform>(dx1, at, t.stride, d1);
        StoreBatch<A, U, kUniform>(dx2, at, t.stride, d2);
      },
      [&](int64 at, int64 lanes, int64 column) {
        const V a = LoadN(x1 + at, lanes);
        const V b = LoadN(x2 + at, lanes);
        int64 out;
        MapOffsets<1, kUniform>(t, dy_stride, &at, &out);
        const V g = LoadN(dy + out, lanes);
        V d1, d2;
        Backward2<A, 1, kUniform, M>(p, &a, &b, &g, tab_at(column),
                                     dA_at(column), work, &d1, &d2);
        StoreN(dx1 + at, d1, lanes);
        StoreN(dx2 + at, d2, lanes);
      });
  if (kUniform) AddLaneSums<A>(acc, D2, dA);
}

template <typename A, bool kUniform>
__attribute__((noinline)) void Forward2Tile(const KafCpuParams<A>& p,
                                            const Tile& t, const A* x1,
                                            const A* x2, A* y,
                                            int64 y_stride, const A* tab,
                                            A* scratch) {
  if (p.unit) {
    Forward2TileOf<A, kUniform, Bases2d::kUnit>(p, t, x1, x2, y, y_stride,
                                                tab, scratch);
  } else {
    Forward2TileOf<A, kUniform, Bases2d::kRuns>(p, t, x1, x2, y, y_stride,
                                                tab, scratch);
  }
}

template <typename A, bool kUniform>
__attribute__((noinline)) void Backward2Tile(
    const KafCpuParams<A>& p, const Tile& t, const A* dy, int64 dy_stride,
    const A* x1, const A* x2, A* dx1, A* dx2, const A* tab, A* dA,
    A* scratch) {
  if (WalksInRuns(p)) {
    Backward2TileOf<A, kUniform, Bases2d::kRuns>(p, t, dy, dy_stride, x1, x2,
                                                 dx1, dx2, tab, dA, scratch);
  } else {
    Backward2TileOf<A, kUniform, Bases2d::kWhole>(p, t, dy, dy_stride, x1,
                                                  x2, dx1, dx2, tab, dA,
                                                  scratch);
  }
}

// This path's entry points (kaf_cpu_tiles.h).
template <typename A>
const KafTiles<A>& Tiles() {
  constexpr KafKernel kG = KafKernel::kGaussian, kR = KafKernel::kRelu,
                      kS = KafKernel::kSoftplus;
  static_assert(KafTiles<A>::kKernels == 3 && KafTileIndex(kG) == 0 &&
                KafTileIndex(kR) == 1 && KafTileIndex(kS) == 2);
  static constexpr KafTiles<A> tiles = {
      Simd<A>::W,
      {{ForwardTile<A, kG, false>, ForwardTile<A, kG, true>},
       {ForwardTile<A, kR, false>, ForwardTile<A, kR, true>},
       {ForwardTile<A, kS, false>, ForwardTile<A, kS, true>}},
      {{BackwardTile<A, kG, false>, BackwardTile<A, kG, true>},
       {BackwardTile<A, kR, false>, BackwardTile<A, kR, true>},
       {BackwardTile<A, kS, false>, BackwardTile<A, kS, true>}},
      {Forward2Tile<A, false>, Forward2Tile<A, true>},
      {Backward2Tile<A, false>, Backward2Tile<A, true>}};
  return tiles;
}

template const KafTiles<float>& Tiles<float>();
template const KafTiles<double>& Tiles<double>();

#undef TFKAF_UNROLL
#undef TFKAF_AI

}  // namespace TFKAF_SIMD_NS
}  // namespace tfkaf
