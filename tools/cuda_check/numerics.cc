// Element-type rounding, the result sets (V), comparison and small helpers.

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

#include "tools/cuda_check/check.h"

namespace cuda_check {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF64: return "float64";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
  }
  return "?";
}

bool ParseDType(const std::string& s, DType* t) {
  for (DType d : {DType::kF32, DType::kF64, DType::kF16, DType::kBF16}) {
    if (s == DTypeName(d)) {
      *t = d;
      return true;
    }
  }
  return false;
}

namespace {

// IEEE binary format with `mbits` stored mantissa bits and normal exponents
// in [emin, emax], in 16 bits (sign in bit 15).
std::uint16_t EncodeSmall(double v, int mbits, int emin, int emax) {
  const std::uint16_t all_ones = static_cast<std::uint16_t>(emax - emin + 2);
  const std::uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  const std::uint16_t inf = static_cast<std::uint16_t>(sign | (all_ones << mbits));
  if (std::isnan(v)) {
    return static_cast<std::uint16_t>(inf | (1u << (mbits - 1)));
  }
  const double a = std::fabs(v);
  if (std::isinf(a)) return inf;
  if (a < std::ldexp(1.0, emin)) {  // subnormal (or rounds up to the min normal)
    const double n = std::nearbyint(a / std::ldexp(1.0, emin - mbits));
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(n));
  }
  int e = 0;
  std::frexp(a, &e);
  int E = e - 1;  // a in [2^E, 2^(E+1))
  double n = std::nearbyint(std::ldexp(a, mbits - E));
  if (n == std::ldexp(1.0, mbits + 1)) {
    n /= 2;
    E += 1;
  }
  if (E > emax) return inf;
  const std::uint16_t biased = static_cast<std::uint16_t>(E - emin + 1);
  const std::uint16_t mant =
      static_cast<std::uint16_t>(static_cast<int>(n) - (1 << mbits));
  return static_cast<std::uint16_t>(sign | (biased << mbits) | mant);
}

double DecodeSmall(std::uint16_t bits, int mbits, int emin, int emax) {
  const int all_ones = emax - emin + 2;
  const double sign = (bits & 0x8000u) ? -1.0 : 1.0;
  const int biased = (bits >> mbits) & all_ones;
  const int mant = bits & ((1 << mbits) - 1);
  if (biased == all_ones) {
    return mant ? std::numeric_limits<double>::quiet_NaN()
                : sign * std::numeric_limits<double>::infinity();
  }
  if (biased == 0) return sign * std::ldexp(double(mant), emin - mbits);
  return sign * std::ldexp(double((1 << mbits) + mant),
                           biased - 1 + emin - mbits);
}

double RoundToFloat(double v) {
  if (std::isnan(v)) return v;
  // FLT_MAX + half an ulp: from there on round-to-nearest-even overflows.
  const double overflow = 3.4028235677973366e38;
  if (v >= overflow) return std::numeric_limits<double>::infinity();
  if (v <= -overflow) return -std::numeric_limits<double>::infinity();
  return static_cast<double>(static_cast<float>(v));
}

}  // namespace

std::uint16_t EncodeHalf(double v) { return EncodeSmall(v, 10, -14, 15); }
double DecodeHalf(std::uint16_t b) { return DecodeSmall(b, 10, -14, 15); }
std::uint16_t EncodeBFloat16(double v) {
  return EncodeSmall(v, 7, -126, 127);
}
double DecodeBFloat16(std::uint16_t b) { return DecodeSmall(b, 7, -126, 127); }

double RoundTo(DType t, double v) {
  switch (t) {
    case DType::kF64: return v;
    case DType::kF32: return RoundToFloat(v);
    case DType::kF16: return DecodeHalf(EncodeHalf(v));
    case DType::kBF16: return DecodeBFloat16(EncodeBFloat16(v));
  }
  return v;
}

namespace {
double Step(DType t, double v, bool up) {
  if (std::isnan(v)) return v;
  const double inf = std::numeric_limits<double>::infinity();
  switch (t) {
    case DType::kF64: return std::nextafter(v, up ? inf : -inf);
    case DType::kF32:
      return static_cast<double>(
          std::nextafter(static_cast<float>(v), up ? HUGE_VALF : -HUGE_VALF));
    default: break;
  }
  const bool half = t == DType::kF16;
  if (v == 0.0) {
    const double tiny = half ? DecodeHalf(1) : DecodeBFloat16(1);
    return up ? tiny : -tiny;
  }
  if (std::isinf(v) && ((v > 0) == up)) return v;
  std::uint16_t b = half ? EncodeHalf(v) : EncodeBFloat16(v);
  // Magnitude grows when moving away from zero.
  if ((v > 0) == up) ++b; else --b;
  return half ? DecodeHalf(b) : DecodeBFloat16(b);
}
}  // namespace

double NextUp(DType t, double v) { return Step(t, v, true); }
double NextDown(DType t, double v) { return Step(t, v, false); }

double EpsA(DType t) {
  return t == DType::kF64 ? std::ldexp(1.0, -53) : std::ldexp(1.0, -24);
}
double TinyA(DType t) { return t == DType::kF64 ? 1e-300 : 1e-36; }
double MaxA(DType t) { return t == DType::kF64 ? DBL_MAX : FLT_MAX; }
double SubnormalOf(DType t) {
  switch (t) {
    case DType::kF16: return std::ldexp(1.0, -20);
    case DType::kBF16: return std::ldexp(1.0, -130);
    case DType::kF32: return std::ldexp(1.0, -140);
    case DType::kF64: return std::ldexp(1.0, -1060);
  }
  return 0.0;
}

// ---------------------------------------------------------------------------
// V

std::string V::Describe() const {
  std::string s;
  char buf[128];
  if (fin) {
    std::snprintf(buf, sizeof buf, "%.9g +- %.3g", m, r);
    s = buf;
  }
  auto add = [&](bool on, const char* what) {
    if (!on) return;
    if (!s.empty()) s += " or ";
    s += what;
  };
  add(nan, "nan");
  add(pinf, "+inf");
  add(ninf, "-inf");
  return s.empty() ? "(empty)" : s;
}

namespace {
// Neumaier's compensated summation of the finite centres.
void Compensated(double* s, double* c, double v) {
  const double t = *s + v;
  if (std::fabs(*s) >= std::fabs(v)) {
    *c += (*s - t) + v;
  } else {
    *c += (v - t) + *s;
  }
  *s = t;
}
}  // namespace

void VSum::Add(const V& v) {
  const bool was_fin = fin, p = pinf, q = ninf;
  nan = nan || v.nan || (p && v.ninf) || (q && v.pinf);
  pinf = (p && (v.fin || v.pinf)) || (v.pinf && was_fin);
  ninf = (q && (v.fin || v.ninf)) || (v.ninf && was_fin);
  fin = was_fin && v.fin;
  hull = hull || v.hull;
  if (v.fin) {
    Compensated(&s, &c, v.m);
    r += v.r;
    mag += std::fabs(v.m);
    x += v.x;
  }
  ++n;
}

void VSum::Merge(const VSum& o) {
  const bool was_fin = fin, p = pinf, q = ninf;
  nan = nan || o.nan || (p && o.ninf) || (q && o.pinf);
  pinf = (p && (o.fin || o.pinf)) || (o.pinf && was_fin);
  ninf = (q && (o.fin || o.ninf)) || (o.ninf && was_fin);
  fin = was_fin && o.fin;
  hull = hull || o.hull;
  Compensated(&s, &c, o.s);
  c += o.c;
  x += o.x;
  r += o.r;
  mag += o.mag;
  n += o.n;
}

V VSum::Value() const {
  V v;
  v.fin = fin;
  v.nan = nan;
  v.pinf = pinf;
  v.ninf = ninf;
  v.hull = hull;
  if (fin) {
    v.m = s + c;
    v.r = r;
    v.x = x;
  } else {
    v.m = v.r = 0.0;
  }
  return v;
}

double ReductionFactor(int64 n) {
  const double dn = static_cast<double>(n);
  return std::min(dn + 2.0, 10.0 + 4.0 * std::sqrt(dn));
}

bool Accept(double got, const V& want, DType t, double* ratio) {
  if (ratio) *ratio = 0.0;
  // Intermediate overflow of A: a finite set that reaches near A's range
  // also accepts any non-finite value (see README, "Tolerances").
  const bool near_overflow =
      want.fin && std::fabs(want.m) + want.r > MaxA(t) / 8.0;
  if (std::isnan(got)) return want.nan || near_overflow;
  if (std::isinf(got)) {
    if (got > 0 && want.pinf) return true;
    if (got < 0 && want.ninf) return true;
    if (near_overflow) return true;
    if (want.fin) {
      // The allowance interval itself rounds to this infinity.
      if (got > 0 && RoundTo(t, want.m + want.r) == got) return true;
      if (got < 0 && RoundTo(t, want.m - want.r) == got) return true;
    }
    return false;
  }
  if (!want.fin) return false;
  const double lo = RoundTo(t, want.m - want.r);
  const double hi = RoundTo(t, want.m + want.r);
  const bool ok = lo <= got && got <= hi;
  if (ratio && ok) {
    // The share of the allowance on got's side of the reference value that
    // got uses (16-bit types: plus half an ulp of output rounding).
    const double x = std::min(std::max(want.x, want.m - want.r), want.m + want.r);
    double half_ulp = 0.0;
    if (t == DType::kF16 || t == DType::kBF16) {
      const double ra = RoundTo(t, std::fabs(x));
      if (std::isfinite(ra)) half_ulp = 0.5 * (NextUp(t, ra) - ra);
      if (!std::isfinite(half_ulp)) half_ulp = 0.0;
    }
    const double err = std::fabs(got - x);
    const double room =
        (got >= x ? want.m + want.r - x : x - (want.m - want.r)) + half_ulp;
    *ratio = err == 0.0 ? 0.0 : (room > 0.0 ? err / room : 1.0);
  }
  return ok;
}

// ---------------------------------------------------------------------------
// Comparison

void CompareArray(const Case& c, const char* output,
                  const std::vector<double>& got, const std::vector<V>& want,
                  const std::function<std::string(int64)>& where,
                  int max_print, CompareStats* stats) {
  if (got.size() != want.size()) {
    std::printf("MISMATCH %s %s: %zu values, expected %zu\n", c.name.c_str(),
                output, got.size(), want.size());
    ++stats->mismatches;
    return;
  }
  int printed = 0;
  for (size_t j = 0; j < got.size(); ++j) {
    double ratio = 0.0;
    const bool ok = Accept(got[j], want[j], c.dtype, &ratio);
    ++stats->compared;
    if (ok && !want[j].hull && ratio > stats->max_ratio) {
      stats->max_ratio = ratio;
      stats->worst = c.name + " " + output + where(int64(j));
    }
    if (ok) continue;
    ++stats->mismatches;
    if (printed < max_print) {
      ++printed;
      std::printf("MISMATCH %s %s%s: got %.9g, expected %s\n", c.name.c_str(),
                  output, where(int64(j)).c_str(), got[j],
                  want[j].Describe().c_str());
    }
  }
}

namespace {
std::string Fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

std::string WhereX(const Case& c, const Inputs& in, int64 idx) {
  const int64 C = c.layout.channels, inner = c.layout.inner;
  const int64 i = idx % inner, ch = (idx / inner) % C, o = idx / inner / C;
  std::string s = "[o=" + std::to_string(o) + ",c=" + std::to_string(ch) +
                  ",i=" + std::to_string(i) + "] x=" + Fmt(in.x[idx]);
  if (c.op == Op::kKaf2d) {
    const int64 H = C / 2;
    const int64 h = ch % H;
    const int64 yi = (o * H + h) * inner + i;
    const int64 other = ch < H ? idx + H * inner : idx - H * inner;
    s += " partner x=" + Fmt(in.x[other]) + " dy=" + Fmt(in.dy[yi]);
  } else {
    s += " dy=" + Fmt(in.dy[idx]);
  }
  return s;
}

std::string WhereY(const Case& c, const Inputs& in, int64 idx) {
  if (c.op != Op::kKaf2d) return WhereX(c, in, idx);
  const int64 H = c.layout.channels / 2, inner = c.layout.inner;
  const int64 i = idx % inner, h = (idx / inner) % H, o = idx / inner / H;
  const int64 at1 = (o * 2 * H + h) * inner + i;
  return "[o=" + std::to_string(o) + ",h=" + std::to_string(h) +
         ",i=" + std::to_string(i) + "] x1=" + Fmt(in.x[at1]) +
         " x2=" + Fmt(in.x[at1 + H * inner]) + " dy=" + Fmt(in.dy[idx]);
}

std::string WhereAlpha(const Case& c, int64 idx) {
  const int64 K = c.K();
  return "[row=" + std::to_string(idx / K) + ",k=" + std::to_string(idx % K) +
         "]";
}

void ParallelFor(int64 n, const std::function<void(int64, int64)>& fn) {
  if (n <= 0) return;
  static const int threads = [] {
    const char* env = std::getenv("CUDA_CHECK_THREADS");
    int t = env ? std::atoi(env) : 0;
    if (t <= 0) t = static_cast<int>(std::thread::hardware_concurrency());
    return std::max(1, std::min(t, 64));
  }();
  const int64 workers = std::min<int64>(threads, n);
  if (workers <= 1) {
    fn(0, n);
    return;
  }
  std::atomic<int64> next{0};
  auto work = [&] {
    for (;;) {
      const int64 j = next.fetch_add(1);
      if (j >= n) return;
      fn(j, j + 1);
    }
  };
  std::vector<std::thread> pool;
  for (int64 t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

}  // namespace cuda_check
