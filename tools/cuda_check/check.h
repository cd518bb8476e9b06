// Standalone check of the tfkaf CUDA kernels (tools/cuda_check/README.md).
//
// Shared declarations of the driver: element types and their rounding, the
// set type `V` the reference produces for every output element, the case
// list, the independent scalar reference, the host model used by the
// self-test, and the entry points of each mode. Host-only: the GPU parts
// live in gpu_check.cu and bench.cu.

#ifndef TFKAF_TOOLS_CUDA_CHECK_CHECK_H_
#define TFKAF_TOOLS_CUDA_CHECK_CHECK_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"

namespace cuda_check {

using tfkaf::int64;
using tfkaf::KafKernel;

// ---------------------------------------------------------------------------
// Element types.

enum class DType { kF32, kF64, kF16, kBF16 };

const char* DTypeName(DType t);
bool ParseDType(const std::string& s, DType* t);

// Round-to-nearest-even of a double to the element type, returned as a
// double (overflow gives +-inf, subnormals are kept, NaN stays NaN).
double RoundTo(DType t, double v);
// The neighbouring representable values of v (a value of type t).
double NextUp(DType t, double v);
double NextDown(DType t, double v);
// Bit patterns of the 16-bit types (round to nearest even) and back.
std::uint16_t EncodeHalf(double v);
double DecodeHalf(std::uint16_t bits);
std::uint16_t EncodeBFloat16(double v);
double DecodeBFloat16(std::uint16_t bits);

// The kernels' compute/accumulation type A: double for float64, float for
// the other three. Unit roundoff of A, a floor below which A's results may
// underflow to zero, and the largest finite value of A.
double EpsA(DType t);
double TinyA(DType t);
double MaxA(DType t);
// Smallest positive subnormal of the element type.
double SubnormalOf(DType t);

// ---------------------------------------------------------------------------
// Sets of acceptable results.
//
// The reference describes each output element as a set: a finite interval
// [m - r, m + r] (when `fin`) plus any of NaN, +inf and -inf. Arithmetic on
// sets is exact set arithmetic (interval arithmetic extended to the IEEE
// specials: inf - inf and 0 * inf give NaN, inf times an interval that
// contains positive, negative and zero values gives +inf, -inf and NaN), so
// an input that is non-finite, or a product whose sign or zero-ness is
// within rounding, carries exactly the outcomes a correct float computation
// can produce.
struct V {
  double m = 0.0, r = 0.0;
  bool fin = true, nan = false, pinf = false, ninf = false;
  // The reference's own value inside [m - r, m + r] (the interval need not
  // be centred on it: clipped at zero, say); only for statistics.
  double x = 0.0;
  // The finite part is the hull of alternatives (a kink or a spline knot
  // within rounding), not a value with an error bar: excluded from the
  // "fraction of the tolerance used" statistics.
  bool hull = false;

  static V Point(double x);
  static V Fin(double m, double r);
  // [lo, hi], padded by a few double ulps so that m -+ r still covers both
  // ends after rounding.
  static V Bounds(double lo, double hi, double x);
  static V NaN();
  bool HasZero() const { return fin && m - r <= 0.0 && m + r >= 0.0; }
  bool HasPos() const { return fin && m + r > 0.0; }
  bool HasNeg() const { return fin && m - r < 0.0; }
  bool OnlyNaN() const { return !fin && nan && !pinf && !ninf; }
  std::string Describe() const;
};

V Add(const V& a, const V& b);
V Sub(const V& a, const V& b);
V Mul(const V& a, const V& b);
V Union(const V& a, const V& b);
// Widens the finite part by r (rounding error of the kernel's arithmetic).
V Widen(V a, double r);
// A non-negative quantity that A may flush to zero below `tiny`.
V Underflow(V a, double tiny);
// A finite part that reaches max / 8 may overflow in A on the way: then
// +-inf and NaN are possible too.
V Overflow(V a, double max);

// Running sum of sets (compensated for the finite centre), with the sum of
// |centres| (`mag`) and the number of terms, for the reduction tolerance.
struct VSum {
  double s = 0.0, c = 0.0, r = 0.0, mag = 0.0, x = 0.0;
  bool fin = true, nan = false, pinf = false, ninf = false, hull = false;
  int64 n = 0;
  void Add(const V& v);
  void Merge(const VSum& o);
  V Value() const;  // the sum as a set, without rounding allowance
};

// Inline definitions of the set operations (hot in the reference).
inline V V::Point(double x) {
  V v;
  if (std::isnan(x)) return NaN();
  if (std::isinf(x)) {
    v.fin = false;
    (x > 0 ? v.pinf : v.ninf) = true;
    return v;
  }
  v.m = v.x = x;
  return v;
}

inline V V::Fin(double m, double r) {
  V v;
  v.m = v.x = m;
  v.r = std::fabs(r);
  return v;
}

inline V V::Bounds(double lo, double hi, double x) {
  V v;
  const double pad =
      0x1.0p-50 * std::max(std::fabs(lo), std::fabs(hi));
  v.m = 0.5 * lo + 0.5 * hi;
  v.r = 0.5 * (hi - lo) + pad;
  v.x = x;
  return v;
}

inline V V::NaN() {
  V v;
  v.fin = false;
  v.nan = true;
  return v;
}

inline V Add(const V& a, const V& b) {
  V o;
  o.fin = a.fin && b.fin;
  if (o.fin) {
    o.m = a.m + b.m;
    o.r = a.r + b.r;
    o.x = a.x + b.x;
  } else {
    o.m = o.r = 0.0;
  }
  o.nan = a.nan || b.nan || (a.pinf && b.ninf) || (a.ninf && b.pinf);
  o.pinf = (a.pinf && (b.fin || b.pinf)) || (b.pinf && a.fin);
  o.ninf = (a.ninf && (b.fin || b.ninf)) || (b.ninf && a.fin);
  o.hull = a.hull || b.hull;
  return o;
}

inline V Sub(const V& a, const V& b) {
  V nb = b;
  nb.m = -b.m;
  nb.x = -b.x;
  std::swap(nb.pinf, nb.ninf);
  return Add(a, nb);
}

inline V Mul(const V& a, const V& b) {
  V o;
  o.fin = a.fin && b.fin;
  if (o.fin) {
    o.m = a.m * b.m;
    o.r = std::fabs(a.m) * b.r + std::fabs(b.m) * a.r + a.r * b.r;
    o.x = a.x * b.x;
  } else {
    o.m = o.r = 0.0;
  }
  o.nan = a.nan || b.nan;
  // An infinity times the other operand's finite part.
  auto inf_times = [&o](bool positive_inf, const V& other) {
    if (other.HasPos()) (positive_inf ? o.pinf : o.ninf) = true;
    if (other.HasNeg()) (positive_inf ? o.ninf : o.pinf) = true;
    if (other.HasZero()) o.nan = true;
  };
  if (a.pinf) inf_times(true, b);
  if (a.ninf) inf_times(false, b);
  if (b.pinf) inf_times(true, a);
  if (b.ninf) inf_times(false, a);
  if ((a.pinf && b.pinf) || (a.ninf && b.ninf)) o.pinf = true;
  if ((a.pinf && b.ninf) || (a.ninf && b.pinf)) o.ninf = true;
  o.hull = a.hull || b.hull;
  return o;
}

inline V Union(const V& a, const V& b) {
  V o;
  if (a.fin && b.fin) {
    o = V::Bounds(std::min(a.m - a.r, b.m - b.r),
                  std::max(a.m + a.r, b.m + b.r), a.x);
    o.hull = true;
  } else if (a.fin) {
    o.m = a.m, o.r = a.r, o.x = a.x;
  } else if (b.fin) {
    o.m = b.m, o.r = b.r, o.x = b.x;
  } else {
    o.fin = false;
  }
  o.nan = a.nan || b.nan;
  o.pinf = a.pinf || b.pinf;
  o.ninf = a.ninf || b.ninf;
  o.hull = o.hull || a.hull || b.hull;
  return o;
}

inline V Widen(V a, double r) {
  if (a.fin) a.r += std::fabs(r);
  return a;
}

inline V Underflow(V a, double tiny) {
  if (a.fin && a.m - a.r < tiny) {
    const double hi = std::max(a.m + a.r, tiny);
    const V old = a;
    a = V::Bounds(0.0, hi, old.x);
    a.hull = old.hull, a.nan = old.nan, a.pinf = old.pinf, a.ninf = old.ninf;
  }
  return a;
}

inline V Overflow(V a, double max) {
  if (a.fin && std::fabs(a.m) + a.r > max / 8.0) {
    a.pinf = a.ninf = a.nan = true;
  }
  return a;
}


// Reduction allowance: a sum of n terms computed in A in any order (shared
// and global atomics) is within eps * ReductionFactor(n) * sum|terms| of the
// exact sum: min(n + 2, 10 + 4 sqrt(n)) (the worst case for small n, a
// bound far above the random-walk growth of rounding errors for large n).
double ReductionFactor(int64 n);

// Is `got` (a value of type t, as a double) in the set? `ratio`, if given
// and got is accepted, receives the share of the allowance on got's side of
// the reference value that got uses (0 for non-finite matches).
bool Accept(double got, const V& want, DType t, double* ratio = nullptr);

// ---------------------------------------------------------------------------
// Cases.

enum class Op { kKaf, kKaf2d, kSpline };

// Input variants.
enum InputKind : unsigned {
  kPlain = 0,          // finite x (incl. exact centres/knots and 1-ulp
                       // neighbours), finite dy and alpha
  kSpecialX = 1u,      // + NaN, +-inf, +-1e30, subnormals, +-0, far x
  kSpecialDy = 2u,     // + NaN, +-inf, +-1e30, subnormals, 0 in dy
  kSpecialAlpha = 4u,  // + NaN, +-inf, subnormals, 0 in alpha/coefficients
  kNoNaN = 8u,         // specials without NaN (reductions stay finite)
};

struct Case {
  std::string name;
  Op op = Op::kKaf;
  KafKernel kernel = KafKernel::kGaussian;
  DType dtype = DType::kF32;
  tfkaf::ChannelLayout layout;  // x's [outer, C, inner] (C = 2H for 2D)
  int64 D = 2;                  // KAF: centres / grid side; spline: knots
  double boundary = 3.0, gamma = 1.0;  // KAF (float32 values)
  double x_min = -1.0, x_max = 1.0;    // spline (float32 values)
  unsigned kind = kPlain;
  bool big = false;          // reduction-size case (not in --small)
  bool alias_variants = false;  // spline: also in-place / aliased buffers
  std::uint64_t seed = 1;

  int64 XSize() const { return layout.size(); }
  int64 YSize() const;       // y and dy elements
  int64 Rows() const;        // alpha rows: C, H or C
  int64 K() const;           // alpha columns: D, D*D or knots
  double SplineScale() const;  // (K - 1) / (x_max - x_min), as the op
};

// All correctness cases (`small`: the sanitizer subset).
std::vector<Case> MakeCases(bool small);
// Reduction-size cases used by the determinism mode.
std::vector<Case> MakeDeterminismCases(bool small);

std::string OpName(const Case& c);  // "kaf-gaussian", "kaf2d", "spline"

// Inputs as values of the element type (exact doubles).
struct Inputs {
  std::vector<double> x, alpha, dy;
};
Inputs MakeInputs(const Case& c);

// ---------------------------------------------------------------------------
// Reference (reference.cc): the formulas in double, as sets (see V).

struct Expected {
  std::vector<V> y, dx, dalpha;
};
Expected Reference(const Case& c, const Inputs& in);

// Per-element pieces, also used by the self-test. `alpha` is the row of the
// element's channel (pair).
struct ElementResult {
  V y, dx, dx2;  // dx2: 2D-KAF's second input
  // Contributions to alpha's row entries [contrib_first, contrib_first +
  // contrib.size()) (all D or D*D for KAF, two or three knots for the
  // spline).
  int64 contrib_first = 0;
  std::vector<V> contrib;
};
void KafElement(const Case& c, const double* alpha, double x, double g,
                ElementResult* out);
void Kaf2dElement(const Case& c, const double* alpha, double x1, double x2,
                  double g, ElementResult* out);
void SplineElement(const Case& c, const double* coef, double x, double g,
                   ElementResult* out);

// ---------------------------------------------------------------------------
// Host model (host_model.cc): a plain implementation of the ops in the
// kernels' compute type with a different summation order, written from the
// formulas and the algorithm the kernel comments describe. The self-test
// runs it through the same comparison as the GPU, to show that the
// tolerances accept a correct float implementation; `bug` injects a defect
// to show that they reject a wrong one.
enum class ModelBug {
  kNone,
  kWrongChannel,    // alpha row of the next channel
  kCentreShift,     // centres / knots moved by 1% of a step
  kDropPosition,    // dalpha misses the last position
  kSegmentOffByOne, // spline: segment i + 1 where possible
  kInfGivesNaN,     // KAF: +-inf x gives NaN y (no clamping)
  kDxSign,          // dx with the wrong sign
};
struct Outputs {
  std::vector<double> y, dx, dalpha;
};
Outputs HostModel(const Case& c, const Inputs& in, ModelBug bug);

// ---------------------------------------------------------------------------
// Comparison and reporting.

struct CompareStats {
  int64 compared = 0, mismatches = 0;
  double max_ratio = 0.0;  // largest fraction of a tolerance used
  std::string worst;       // where max_ratio occurred
};
// Compares one output array; prints up to `max_print` mismatches with the
// case, output name and index decoded by `where`.
void CompareArray(const Case& c, const char* output,
                  const std::vector<double>& got, const std::vector<V>& want,
                  const std::function<std::string(int64)>& where,
                  int max_print, CompareStats* stats);
// Descriptions of element indices of x/dx, y/dy and alpha for messages.
std::string WhereX(const Case& c, const Inputs& in, int64 idx);
std::string WhereY(const Case& c, const Inputs& in, int64 idx);
std::string WhereAlpha(const Case& c, int64 idx);

// Runs fn(begin, end) over [0, n) on the host's threads (CUDA_CHECK_THREADS
// overrides the count).
void ParallelFor(int64 n, const std::function<void(int64, int64)>& fn);

// ---------------------------------------------------------------------------
// Modes (each returns the process exit code).

int RunSelfTest(bool full);                             // selftest.cc
int RunDevices();                                       // gpu_check.cu
int RunGpuCheck(bool small, const std::string& filter,  // gpu_check.cu
                int max_print);
int RunDeterminism(bool small, int runs);               // gpu_check.cu
int RunBench(const std::string& shapes, int iters);     // bench.cu

}  // namespace cuda_check

#endif  // TFKAF_TOOLS_CUDA_CHECK_CHECK_H_
