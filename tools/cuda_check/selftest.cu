// CPU self-test of the driver (no GPU needed; `cuda_check selftest`):
//
//  1. 16-bit conversions against CUDA's own host conversions (every half
//     and bfloat16 bit pattern, and a sweep of float values).
//  2. Set arithmetic and the acceptance rule on hand-made sets.
//  3. The reference against values computed by hand from the formulas
//     (literals below), including the documented treatment of NaN, +-inf
//     and the spline's extrapolation and knots.
//  4. The reference's derivatives against central differences of its own
//     forward values, and dalpha against its definition (y is linear in
//     alpha).
//  5. The host model (a plain float/double implementation) through the
//     same comparison as the GPU on the small case list and a sample of the
//     full one: no mismatch, and the worst error must use at most half of a
//     tolerance; then the host model with injected defects must fail.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>

#include "tools/cuda_check/check.h"

namespace cuda_check {
namespace {

int g_failures = 0;

void Fail(const char* what, const std::string& detail) {
  ++g_failures;
  if (g_failures <= 60) {
    std::printf("SELFTEST FAIL %s: %s\n", what, detail.c_str());
  }
}

bool Close(double got, double want, double rel = 1e-13) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= rel * std::max(1.0, std::fabs(want));
}

std::string Num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// -------------------------------------------------------------------------
// 1. Conversions

double CudaHalf(float f) { return __half2float(__float2half_rn(f)); }
double CudaBf16(float f) { return __bfloat162float(__float2bfloat16_rn(f)); }

void TestConversions() {
  int bad = 0;
  for (unsigned bits = 0; bits < 65536; ++bits) {
    __half_raw hr;
    hr.x = static_cast<unsigned short>(bits);
    const double cuda_h = __half2float(__half(hr));
    const double mine_h = DecodeHalf(static_cast<std::uint16_t>(bits));
    if (!(std::isnan(cuda_h) ? std::isnan(mine_h) : cuda_h == mine_h)) {
      if (bad++ < 5) Fail("half decode", Num(bits));
    }
    if (!std::isnan(mine_h) && EncodeHalf(mine_h) != bits) {
      if (bad++ < 5) Fail("half encode round trip", Num(bits));
    }
    __nv_bfloat16_raw br;
    br.x = static_cast<unsigned short>(bits);
    const double cuda_b = __bfloat162float(__nv_bfloat16(br));
    const double mine_b = DecodeBFloat16(static_cast<std::uint16_t>(bits));
    if (!(std::isnan(cuda_b) ? std::isnan(mine_b) : cuda_b == mine_b)) {
      if (bad++ < 5) Fail("bfloat16 decode", Num(bits));
    }
    if (!std::isnan(mine_b) && EncodeBFloat16(mine_b) != bits) {
      if (bad++ < 5) Fail("bfloat16 encode round trip", Num(bits));
    }
  }
  // Rounding of float values: random bit patterns plus the edges.
  std::vector<float> values = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f,
                               65536.0f, 5.9604645e-8f, 2.9802322e-8f,
                               2.9802326e-8f, 6.1035156e-5f, 3.3895314e38f,
                               3.4028235e38f, 1e-40f, 1e-45f, 1.00048828125f,
                               1.00146484375f, 1.00390625f, 1.01171875f};
  std::uint64_t s = 12345;
  for (int j = 0; j < 400000; ++j) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const std::uint32_t bits = static_cast<std::uint32_t>(s >> 32);
    float f;
    std::memcpy(&f, &bits, 4);
    values.push_back(f);
    // Values near the 16-bit types' range.
    values.push_back(std::ldexp(float((s >> 8) & 0xffffff) / float(1 << 24),
                                int((s >> 40) % 48) - 30));
  }
  for (float f : values) {
    for (float v : {f, -f}) {
      const double h = RoundTo(DType::kF16, v), ch = CudaHalf(v);
      if (!(std::isnan(ch) ? std::isnan(h) : h == ch)) {
        if (bad++ < 10) Fail("half rounding", Num(v) + " -> " + Num(h) +
                                                  ", CUDA " + Num(ch));
      }
      const double b = RoundTo(DType::kBF16, v), cb = CudaBf16(v);
      if (!(std::isnan(cb) ? std::isnan(b) : b == cb)) {
        if (bad++ < 10) Fail("bfloat16 rounding", Num(v) + " -> " + Num(b) +
                                                      ", CUDA " + Num(cb));
      }
      if (!(std::isnan(v) ? std::isnan(RoundTo(DType::kF32, v))
                          : RoundTo(DType::kF32, v) == double(v))) {
        if (bad++ < 10) Fail("float rounding", Num(v));
      }
    }
  }
  if (RoundTo(DType::kF32, 3.4028235677973366e38) !=
      std::numeric_limits<double>::infinity()) {
    Fail("float overflow", "FLT_MAX + half ulp must round to inf");
  }
  if (RoundTo(DType::kF32, 3.4028235677973362e38) != 3.4028234663852886e38) {
    Fail("float overflow", "just below FLT_MAX + half ulp must stay finite");
  }
  if (NextUp(DType::kF16, 1.0) != 1.0 + std::ldexp(1.0, -10) ||
      NextDown(DType::kBF16, 1.0) != 1.0 - std::ldexp(1.0, -8) ||
      NextUp(DType::kF16, -0.0) != std::ldexp(1.0, -24)) {
    Fail("NextUp/NextDown", "16-bit neighbours");
  }
  std::printf("selftest: conversions checked (%zu float values, all 65536 "
              "half and bfloat16 patterns)\n",
              values.size() * 2);
}

// -------------------------------------------------------------------------
// 2. Sets

void Expect(bool cond, const char* what) {
  if (!cond) Fail("sets", what);
}

void TestSets() {
  const double inf = std::numeric_limits<double>::infinity();
  const V pinf = V::Point(inf), ninf = V::Point(-inf), zero = V::Point(0.0);
  V p = Mul(pinf, zero);
  Expect(p.OnlyNaN(), "inf * 0 is NaN only");
  p = Mul(pinf, V::Fin(0.0, 1.0));
  Expect(p.nan && p.pinf && p.ninf && !p.fin, "inf * [-1,1]: nan, +-inf");
  p = Mul(ninf, V::Fin(2.0, 1.0));
  Expect(!p.nan && p.ninf && !p.pinf && !p.fin, "-inf * [1,3] = -inf");
  p = Add(pinf, ninf);
  Expect(p.OnlyNaN(), "inf - inf is NaN");
  p = Add(pinf, V::Fin(3, 1));
  Expect(p.pinf && !p.nan && !p.fin, "inf + finite = inf");
  p = Union(V::Fin(1, 0), V::Fin(3, 0));
  Expect(p.m == 2 && p.r >= 1 && p.r < 1 + 1e-14 && p.hull, "hull of 1 and 3");
  VSum s;
  s.Add(V::Fin(1e16, 0));
  s.Add(V::Fin(1.0, 0));
  s.Add(V::Fin(-1e16, 0));
  Expect(s.Value().m == 1.0, "compensated sum");
  s.Add(pinf);
  Expect(s.Value().pinf && !s.Value().fin, "sum with inf");
  s.Add(ninf);
  Expect(s.Value().nan, "sum with +inf and -inf is NaN");
  // Acceptance.
  Expect(Accept(65504.0, V::Fin(65519.0, 0.0), DType::kF16),
         "65519 rounds to 65504 in half");
  Expect(!Accept(inf, V::Fin(65519.0, 0.0), DType::kF16),
         "65519 does not round to inf in half");
  Expect(Accept(inf, V::Fin(65520.0, 0.0), DType::kF16),
         "65520 rounds to inf in half");
  Expect(Accept(inf, V::Fin(65500.0, 30.0), DType::kF16),
         "an allowance reaching 65520 accepts inf");
  Expect(!Accept(std::nan(""), V::Fin(1.0, 1.0), DType::kF32),
         "NaN is not in a finite set");
  Expect(!Accept(1.0, V::NaN(), DType::kF32), "a finite value is not NaN");
  Expect(Accept(1.0 + 1e-7, V::Fin(1.0, 2e-7), DType::kF32), "within");
  Expect(!Accept(1.0 + 4e-7, V::Fin(1.0, 2e-7), DType::kF32), "outside");
  Expect(Accept(1.0, V::Fin(1.0009765625, 0.0), DType::kF16) == false,
         "a half ulp away is a mismatch when the set is a point");
  Expect(Accept(0.0, V::Point(0.0), DType::kF32), "zero");
  std::printf("selftest: set arithmetic checked\n");
}

// -------------------------------------------------------------------------
// 3. Hand values

Case KafCase(KafKernel kernel, int64 D, double b, double gamma) {
  Case c;
  c.op = Op::kKaf;
  c.kernel = kernel;
  c.dtype = DType::kF64;
  c.D = D;
  c.boundary = b;
  c.gamma = gamma;
  return c;
}

void CheckV(const char* what, const V& v, double want) {
  bool ok;
  if (std::isnan(want)) {
    ok = v.OnlyNaN();
  } else if (std::isinf(want)) {
    ok = !v.fin && !v.nan && (want > 0 ? v.pinf && !v.ninf : v.ninf && !v.pinf);
  } else {
    ok = v.fin && !v.nan && !v.pinf && !v.ninf && Close(v.m, want) &&
         v.r <= 1e-12 * std::max(1.0, std::fabs(want));
  }
  if (!ok) Fail(what, "reference " + v.Describe() + ", expected " + Num(want));
}

void TestHandValues() {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double alpha[3] = {0.5, -1.0, 2.0};
  ElementResult r;
  // KAF, D = 3, boundary 1 (centres -1, 0, 1), gamma 0.5, x = 0.3, dy = 1.5.
  Case g = KafCase(KafKernel::kGaussian, 3, 1.0, 0.5);
  KafElement(g, alpha, 0.3, 1.5, &r);
  CheckV("gaussian y", r.y, 0.82419027375600584);
  CheckV("gaussian dx", r.dx, 1.6550599728773476);
  CheckV("gaussian dalpha[0]", r.contrib[0], 0.64433603731610867);
  CheckV("gaussian dalpha[1]", r.contrib[1], 1.4339962227496499);
  CheckV("gaussian dalpha[2]", r.contrib[2], 1.1740568073628022);
  KafElement(g, alpha, inf, 1.5, &r);
  CheckV("gaussian y(+inf) = 0", r.y, 0.0);
  CheckV("gaussian dx(+inf) = 0", r.dx, 0.0);
  CheckV("gaussian dalpha(+inf) = 0", r.contrib[1], 0.0);
  KafElement(g, alpha, -1e30, inf, &r);
  CheckV("gaussian dx(-1e30, dy=inf) = 0*inf", r.dx, nan);
  KafElement(g, alpha, nan, 1.5, &r);
  CheckV("gaussian y(NaN)", r.y, nan);
  CheckV("gaussian dx(NaN)", r.dx, nan);
  CheckV("gaussian dalpha(NaN)", r.contrib[0], nan);

  Case re = KafCase(KafKernel::kRelu, 3, 1.0, 0.5);
  KafElement(re, alpha, 0.3, 1.5, &r);
  CheckV("relu y", r.y, 0.35);
  CheckV("relu dx", r.dx, -0.75);
  CheckV("relu dalpha[0]", r.contrib[0], 1.95);
  CheckV("relu dalpha[1]", r.contrib[1], 0.45);
  CheckV("relu dalpha[2]", r.contrib[2], 0.0);
  KafElement(re, alpha, inf, 1.5, &r);
  CheckV("relu y(+inf), mixed-sign alpha", r.y, nan);
  CheckV("relu dx(+inf)", r.dx, 2.25);
  CheckV("relu dalpha(+inf)", r.contrib[2], inf);
  KafElement(re, alpha, -inf, 1.5, &r);
  CheckV("relu y(-inf)", r.y, 0.0);
  CheckV("relu dx(-inf)", r.dx, 0.0);
  KafElement(re, alpha, nan, 0.0, &r);
  CheckV("relu dx(NaN, dy=0)", r.dx, nan);
  // At a centre: dx may take either side of the kink.
  KafElement(re, alpha, 0.0, 1.0, &r);
  if (!(r.dx.fin && r.dx.m - r.dx.r <= -0.5 + 1e-12 &&
        r.dx.m + r.dx.r >= 0.5 - 1e-12)) {
    Fail("relu dx at a centre", r.dx.Describe() + " must hold -0.5 and 0.5");
  }

  Case sp = KafCase(KafKernel::kSoftplus, 3, 1.0, 0.5);
  KafElement(sp, alpha, 0.3, 1.5, &r);
  CheckV("softplus y", r.y, 0.72252108021888473);
  CheckV("softplus dx", r.dx, 0.72314914555993215);
  CheckV("softplus dalpha[0]", r.contrib[0], 2.3115126807494883);
  CheckV("softplus dalpha[1]", r.contrib[1], 1.2815328667027908);
  CheckV("softplus dalpha[2]", r.contrib[2], 0.60477907332818681);
  KafElement(sp, alpha, -40.0, 1.5, &r);
  CheckV("softplus y(-40) (stable)", r.y, 4.6515222098862818e-18);
  KafElement(sp, alpha, inf, 1.5, &r);
  CheckV("softplus y(+inf)", r.y, nan);
  CheckV("softplus dx(+inf)", r.dx, 2.25);

  // 2D-KAF, D = 2, boundary 1: centre k at (d[k % 2], d[k / 2]).
  Case k2 = KafCase(KafKernel::kGaussian, 2, 1.0, 0.25);
  k2.op = Op::kKaf2d;
  const double a2[4] = {1.0, -2.0, 0.5, 3.0};
  Kaf2dElement(k2, a2, 0.2, -0.7, -0.8, &r);
  CheckV("kaf2d y", r.y, 0.42640015026977018);
  CheckV("kaf2d dx1", r.dx, 0.54477410356804867);
  CheckV("kaf2d dx2", r.dx2, -1.0773244196876106);
  CheckV("kaf2d dalpha[0]", r.contrib[0], -0.54572311278116181);
  CheckV("kaf2d dalpha[1]", r.contrib[1], -0.66654771514266442);
  CheckV("kaf2d dalpha[2]", r.contrib[2], -0.27099807774642687);
  CheckV("kaf2d dalpha[3]", r.contrib[3], -0.33099779961558995);
  Kaf2dElement(k2, a2, -inf, -0.7, -0.8, &r);
  CheckV("kaf2d y(-inf, x2)", r.y, 0.0);
  CheckV("kaf2d dx1(-inf, x2)", r.dx, 0.0);
  CheckV("kaf2d dx2(-inf, x2)", r.dx2, 0.0);
  Kaf2dElement(k2, a2, 0.2, nan, -0.8, &r);
  CheckV("kaf2d dx1(x1, NaN)", r.dx, nan);

  // Spline, K = 4 on [-1, 2] (T = 1): c = [1, -1, 2, 0.5], dy = 2.
  Case s;
  s.op = Op::kSpline;
  s.dtype = DType::kF64;
  s.D = 4;
  s.x_min = -1.0;
  s.x_max = 2.0;
  const double c4[4] = {1.0, -1.0, 2.0, 0.5};
  auto contrib = [&r](int64 k) {
    const int64 j = k - r.contrib_first;
    return j >= 0 && j < int64(r.contrib.size()) ? r.contrib[j]
                                                 : V::Point(0.0);
  };
  SplineElement(s, c4, 0.25, 2.0, &r);
  CheckV("spline y(0.25)", r.y, -0.25);
  CheckV("spline dx(0.25)", r.dx, 6.0);
  CheckV("spline dc[1](0.25)", contrib(1), 1.5);
  CheckV("spline dc[2](0.25)", contrib(2), 0.5);
  SplineElement(s, c4, -3.0, 2.0, &r);
  CheckV("spline y(-3) extrapolated", r.y, 5.0);
  CheckV("spline dx(-3)", r.dx, -4.0);
  CheckV("spline dc[0](-3)", contrib(0), 6.0);
  CheckV("spline dc[1](-3)", contrib(1), -4.0);
  SplineElement(s, c4, 4.0, 2.0, &r);
  CheckV("spline y(4) extrapolated", r.y, -2.5);
  CheckV("spline dx(4)", r.dx, -3.0);
  CheckV("spline dc[2](4)", contrib(2), -4.0);
  CheckV("spline dc[3](4)", contrib(3), 6.0);
  SplineElement(s, c4, 1.0, 2.0, &r);  // on knot 2
  CheckV("spline y(knot)", r.y, 2.0);
  if (!(r.dx.fin && r.dx.m - r.dx.r <= -3.0 + 1e-9 &&
        r.dx.m + r.dx.r >= 6.0 - 1e-9)) {
    Fail("spline dx at a knot", r.dx.Describe() + " must hold -3 and 6");
  }
  CheckV("spline dc[2](knot)", contrib(2), 2.0);
  SplineElement(s, c4, nan, 2.0, &r);
  CheckV("spline y(NaN)", r.y, nan);
  CheckV("spline dx(NaN)", r.dx, nan);
  CheckV("spline dc[0](NaN)", contrib(0), nan);
  SplineElement(s, c4, inf, 2.0, &r);
  CheckV("spline y(+inf)", r.y, -inf);
  CheckV("spline dx(+inf)", r.dx, -3.0);
  CheckV("spline dc[2](+inf)", contrib(2), -inf);
  CheckV("spline dc[3](+inf)", contrib(3), inf);
  SplineElement(s, c4, 0.25, inf, &r);
  if (!(contrib(2).pinf && !contrib(2).fin && contrib(1).pinf &&
        contrib(1).nan)) {
    Fail("spline dc with dy = inf",
         "u dy = +inf; (1 - u) dy = +inf or NaN (dy - u dy)");
  }
  std::printf("selftest: reference matches the hand-computed values\n");
}

// -------------------------------------------------------------------------
// 4. Derivatives

void TestDerivatives() {
  std::uint64_t s = 99;
  auto uniform = [&s](double lo, double hi) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * double(s >> 11) * 0x1.0p-53;
  };
  int checked = 0;
  for (KafKernel kernel :
       {KafKernel::kGaussian, KafKernel::kRelu, KafKernel::kSoftplus}) {
    Case c = KafCase(kernel, 7, 2.0, 0.9);
    double alpha[7];
    for (double& a : alpha) a = uniform(-1, 1);
    for (int j = 0; j < 200; ++j) {
      const double x = uniform(-3, 3), g = uniform(-2, 2);
      if (kernel == KafKernel::kRelu &&
          std::fabs(std::remainder(x + 2.0, 2.0 / 3.0)) < 1e-3) {
        continue;
      }
      const double h = 1e-6;
      ElementResult r, rp, rm;
      KafElement(c, alpha, x, g, &r);
      KafElement(c, alpha, x + h, 1.0, &rp);
      KafElement(c, alpha, x - h, 1.0, &rm);
      const double fd = g * (rp.y.m - rm.y.m) / (2 * h);
      if (std::fabs(fd - r.dx.m) > 1e-6 * (1 + std::fabs(fd))) {
        Fail("dx vs central difference", OpName(c) + " x=" + Num(x) +
                                             " dx=" + Num(r.dx.m) +
                                             " fd=" + Num(fd));
      }
      for (int i = 0; i < 7; ++i) {  // y is linear in alpha
        double a2[7];
        std::memcpy(a2, alpha, sizeof a2);
        a2[i] += 1.0;
        ElementResult r2;
        KafElement(c, a2, x, 1.0, &r2);
        const double want = g * (r2.y.m - r.y.m);
        if (std::fabs(want - r.contrib[i].m) > 1e-9 * (1 + std::fabs(want))) {
          Fail("dalpha vs definition", OpName(c) + " x=" + Num(x));
        }
      }
      ++checked;
    }
  }
  Case k2 = KafCase(KafKernel::kGaussian, 4, 1.5, 0.7);
  k2.op = Op::kKaf2d;
  double a2[16];
  for (double& a : a2) a = uniform(-1, 1);
  for (int j = 0; j < 200; ++j) {
    const double x1 = uniform(-2.5, 2.5), x2 = uniform(-2.5, 2.5);
    const double g = uniform(-2, 2), h = 1e-6;
    ElementResult r, p1, m1, p2, m2;
    Kaf2dElement(k2, a2, x1, x2, g, &r);
    Kaf2dElement(k2, a2, x1 + h, x2, 1, &p1);
    Kaf2dElement(k2, a2, x1 - h, x2, 1, &m1);
    Kaf2dElement(k2, a2, x1, x2 + h, 1, &p2);
    Kaf2dElement(k2, a2, x1, x2 - h, 1, &m2);
    const double fd1 = g * (p1.y.m - m1.y.m) / (2 * h);
    const double fd2 = g * (p2.y.m - m2.y.m) / (2 * h);
    if (std::fabs(fd1 - r.dx.m) > 1e-6 * (1 + std::fabs(fd1)) ||
        std::fabs(fd2 - r.dx2.m) > 1e-6 * (1 + std::fabs(fd2))) {
      Fail("kaf2d dx vs central difference", "x1=" + Num(x1) + " x2=" + Num(x2));
    }
    ++checked;
  }
  Case sc;
  sc.op = Op::kSpline;
  sc.dtype = DType::kF64;
  sc.D = 9;
  sc.x_min = -2.0;
  sc.x_max = 2.0;
  double coef[9];
  for (double& v : coef) v = uniform(-1, 1);
  for (int j = 0; j < 200; ++j) {
    const double x = uniform(-3, 3), g = uniform(-2, 2), h = 1e-7;
    const double t = (x + 2.0) * 2.0;
    if (std::fabs(t - std::nearbyint(t)) < 1e-4) continue;
    ElementResult r, p, m;
    SplineElement(sc, coef, x, g, &r);
    SplineElement(sc, coef, x + h, 1, &p);
    SplineElement(sc, coef, x - h, 1, &m);
    const double fd = g * (p.y.m - m.y.m) / (2 * h);
    if (std::fabs(fd - r.dx.m) > 1e-6 * (1 + std::fabs(fd))) {
      Fail("spline dx vs central difference", "x=" + Num(x));
    }
    // dcoef: y = sum_k c_k w_k(x); contributions are g w_k.
    for (size_t k = 0; k < r.contrib.size(); ++k) {
      double c2[9];
      std::memcpy(c2, coef, sizeof c2);
      c2[r.contrib_first + int64(k)] += 1.0;
      ElementResult r2;
      SplineElement(sc, c2, x, 1, &r2);
      const double want = g * (r2.y.m - r.y.m);
      if (std::fabs(want - r.contrib[k].m) > 1e-9 * (1 + std::fabs(want))) {
        Fail("spline dcoef vs definition", "x=" + Num(x));
      }
    }
    ++checked;
  }
  std::printf("selftest: %d derivative checks against central differences\n",
              checked);
}

// -------------------------------------------------------------------------
// 5. Host model through the comparison

// Compares the three outputs; stats[0..2]: y, dx, dalpha.
void CompareModel(const Case& c, const Inputs& in, const Expected& ex,
                  const Outputs& out, int max_print, CompareStats stats[3]) {
  CompareArray(c, "y", out.y, ex.y,
               [&](int64 j) { return WhereY(c, in, j); }, max_print,
               &stats[0]);
  CompareArray(c, "dx", out.dx, ex.dx,
               [&](int64 j) { return WhereX(c, in, j); }, max_print,
               &stats[1]);
  CompareArray(c, "dalpha", out.dalpha, ex.dalpha,
               [&](int64 j) { return WhereAlpha(c, j); }, max_print,
               &stats[2]);
}

int64 Mismatches(const CompareStats stats[3]) {
  return stats[0].mismatches + stats[1].mismatches + stats[2].mismatches;
}

void TestHostModel(bool full) {
  std::vector<Case> cases = MakeCases(/*small=*/true);
  const std::vector<Case> all = MakeCases(/*small=*/false);
  int64 sampled = 0;
  for (size_t j = 0; j < all.size(); ++j) {
    if (all[j].big) continue;
    if (full || j % 5 == 0) {
      cases.push_back(all[j]);
      ++sampled;
    }
  }
  // Worst fraction of a tolerance per (dtype, output).
  std::map<std::string, CompareStats> worst;
  int64 compared = 0, mismatches = 0;
  const char* kOutputs[3] = {"y", "dx", "dalpha"};
  for (const Case& c : cases) {
    const Inputs in = MakeInputs(c);
    const Expected ex = Reference(c, in);
    const Outputs out = HostModel(c, in, ModelBug::kNone);
    CompareStats st[3];
    CompareModel(c, in, ex, out, 3, st);
    for (int k = 0; k < 3; ++k) {
      compared += st[k].compared;
      const char* family = c.op == Op::kSpline ? "spline" : "kaf";
      CompareStats& w = worst[std::string(DTypeName(c.dtype)) + " " +
                              family + " " + kOutputs[k]];
      w.compared += st[k].compared;
      if (st[k].max_ratio > w.max_ratio) {
        w.max_ratio = st[k].max_ratio;
        w.worst = st[k].worst;
      }
    }
    mismatches += Mismatches(st);
    if (Mismatches(st)) {
      Fail("host model vs reference",
           c.name + ": " + std::to_string(Mismatches(st)) + " mismatches");
    }
  }
  std::printf("selftest: host model on %zu cases (%lld sampled from the full "
              "list): %lld values compared, %lld mismatches\n",
              cases.size(), static_cast<long long>(sampled),
              static_cast<long long>(compared),
              static_cast<long long>(mismatches));
  // Margins. The KAF bounds (the Gaussian recurrence, exp/log1p accuracy,
  // the order-dependent reductions) must leave at least a factor 2 over a
  // plain implementation (limit 0.5): the GPU's exp and summation order
  // differ from the host's. The spline's bounds are rigorous for the
  // expressions its kernels evaluate, where one element may come close
  // (limit 0.9). 16-bit results are rounded once more and may use the whole
  // allowance next to a rounding boundary: reported only (their compute
  // type is float32's).
  for (const auto& kv : worst) {
    std::printf("selftest:   %-22s worst error = %.3f of its tolerance (%s)\n",
                kv.first.c_str(), kv.second.max_ratio,
                kv.second.worst.c_str());
    const bool wide = kv.first.rfind("float32", 0) == 0 ||
                      kv.first.rfind("float64", 0) == 0;
    const bool spline = kv.first.find("spline") != std::string::npos;
    const double limit = spline ? 0.9 : 0.5;
    if (wide && kv.second.max_ratio > limit) {
      Fail("tolerance margin", kv.first + ": the host model uses " +
                                   Num(kv.second.max_ratio) +
                                   " of a tolerance (limit " + Num(limit) +
                                   ")");
    }
  }

  // Injected defects must be caught.
  struct Mutation {
    ModelBug bug;
    const char* what;
    Op op;
    KafKernel kernel;
    DType dtype;
    int64 D;
    unsigned kind;
  };
  const Mutation mutations[] = {
      {ModelBug::kWrongChannel, "alpha of the wrong channel", Op::kKaf,
       KafKernel::kGaussian, DType::kF32, 20, kPlain},
      {ModelBug::kWrongChannel, "alpha of the wrong channel pair", Op::kKaf2d,
       KafKernel::kGaussian, DType::kBF16, 10, kPlain},
      {ModelBug::kCentreShift, "centres moved by 1% of a step", Op::kKaf,
       KafKernel::kRelu, DType::kF32, 20, kPlain},
      {ModelBug::kCentreShift, "centres moved by 1% of a step", Op::kKaf,
       KafKernel::kGaussian, DType::kF16, 20, kPlain},
      {ModelBug::kCentreShift, "knots moved by 1% of a step", Op::kSpline,
       KafKernel::kGaussian, DType::kF32, 51, kPlain},
      {ModelBug::kDropPosition, "dalpha misses a position", Op::kKaf,
       KafKernel::kSoftplus, DType::kF32, 20, kPlain},
      {ModelBug::kDropPosition, "dcoefficients miss a position", Op::kSpline,
       KafKernel::kGaussian, DType::kF64, 51, kPlain},
      {ModelBug::kSegmentOffByOne, "spline segment off by one", Op::kSpline,
       KafKernel::kGaussian, DType::kBF16, 51, kPlain},
      {ModelBug::kInfGivesNaN, "inf x not clamped", Op::kKaf,
       KafKernel::kGaussian, DType::kF32, 20, kSpecialX},
      {ModelBug::kInfGivesNaN, "inf x not clamped", Op::kKaf2d,
       KafKernel::kGaussian, DType::kF64, 10, kSpecialX},
      {ModelBug::kDxSign, "dx with the wrong sign", Op::kKaf,
       KafKernel::kSoftplus, DType::kF16, 20, kPlain},
  };
  int caught = 0;
  for (const Mutation& m : mutations) {
    Case c;
    for (const Case& k : all) {
      if (k.op == m.op && (k.op != Op::kKaf || k.kernel == m.kernel) &&
          k.dtype == m.dtype && k.D == m.D && k.kind == m.kind && !k.big &&
          k.layout.outer == 33) {
        c = k;
        break;
      }
    }
    if (c.name.empty()) {
      Fail("mutation case", m.what);
      continue;
    }
    const Inputs in = MakeInputs(c);
    const Expected ex = Reference(c, in);
    CompareStats st[3];
    CompareModel(c, in, ex, HostModel(c, in, m.bug), 0, st);
    if (Mismatches(st) == 0) {
      Fail("defect not detected", std::string(m.what) + " in " + c.name);
    } else {
      ++caught;
      std::printf("selftest:   defect detected: %-34s %-40s %6lld "
                  "mismatches\n",
                  m.what, c.name.c_str(),
                  static_cast<long long>(Mismatches(st)));
    }
  }
  std::printf("selftest: %d of %zu injected defects detected\n", caught,
              sizeof(mutations) / sizeof(mutations[0]));
}

}  // namespace

int RunSelfTest(bool full) {
  const auto t0 = std::chrono::steady_clock::now();
  TestConversions();
  TestSets();
  TestHandValues();
  TestDerivatives();
  TestHostModel(full);
  const double secs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
  if (g_failures) {
    std::printf("selftest: FAILED (%d failures, %.1f s)\n", g_failures, secs);
    return 1;
  }
  std::printf("selftest: PASSED (%.1f s)\n", secs);
  return 0;
}

}  // namespace cuda_check
