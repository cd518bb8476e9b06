// Independent scalar reference of the three ops, from the formulas:
//
//   KAF     y = sum_i alpha[c,i] k(x, d_i),  d = linspace(-b, b, D)
//           gaussian k = exp(-gamma (x - d)^2), relu max(0, x - d),
//           softplus log(1 + exp(x - d)) (evaluated stably)
//   2D-KAF  channels 2H, channel j paired with j + H; centre k at
//           (d[k % D], d[k / D]); y = sum_k alpha[h,k] exp(-gamma ((x1 -
//           cx)^2 + (x2 - cy)^2))
//   spline  t = (x - x_min) * scale, i = clamp(floor(t), 0, K - 2),
//           u = t - i (unclamped: linear extrapolation),
//           f = c[i] (1 - u) + c[i+1] u, df/dx = (c[i+1] - c[i]) scale,
//           dc[i] += (1 - u) g, dc[i+1] += u g
//
// and their derivatives, in double. Every output is a set V (check.h): the
// exact value widened by a bound on what evaluating the formula in the
// kernels' compute type A (float, or double for float64) can change, plus
// the non-finite outcomes. The bound, per op:
//
// * An A-rounded argument: the centres d_i computed in A are within
//   8 eps b of linspace, x - d_i has a further eps (|x| + |x - d_i|), the
//   spline's t = (x - x_min) * scale has 3 eps |t|.
// * Gaussian basis values: relative eps (8 + 4 a_i + 4 a_m + (j + 1)(4 +
//   l) + 2 (j + 1)^2 (1 + gamma step^2)) plus the argument error times
//   |de/dt|, where a_i = gamma (x - d_i)^2, m is the centre nearest to x,
//   j = |i - m| and l = gamma step (step + 2 |x - d_m|): the kernels build
//   the basis by a recurrence walking out from the nearest centre (the
//   relative error of e_{m+j} grows like j^2 eps). Values below A's
//   underflow floor are [0, floor].
// * Sums of n terms: eps (n + 8) sum |terms| for the per-element sums over
//   the D (or D*D) centres, eps ReductionFactor(n) sum |terms| for dalpha
//   and dcoefficients (sums over positions in any order, numerics.cc).
// * Kinks: where x is within the argument error of a relu centre or of a
//   spline knot, either side is accepted (the union of both results).
//
// Limits that are not IEEE arithmetic on the formula: the Gaussian of an
// infinite or far-out x (gamma (|x| - b)^2 >= 780) is exactly 0 with
// e * (x - d) = 0 (its limit; the kernels clamp x there), and where dy is
// infinite the spline's (1 - u) dy may also be NaN (the kernels compute
// dy - u dy).

#include <algorithm>
#include <cmath>
#include <limits>

#include "tools/cuda_check/check.h"

namespace cuda_check {
namespace {

const double kRefEps = std::ldexp(1.0, -52);  // the reference's own error

// Properties of the compute type A.
struct Num {
  double eps, tiny, max;
  explicit Num(DType t) : eps(EpsA(t)), tiny(TinyA(t)), max(MaxA(t)) {}
};

struct KafCtx {
  int64 D;
  double b, gamma, step, c, eps, tiny;
  Num num;
  std::vector<double> d;

  explicit KafCtx(const Case& cs)
      : D(cs.D),
        b(cs.boundary),
        gamma(cs.gamma),
        step(2.0 * cs.boundary / double(cs.D - 1)),
        eps(EpsA(cs.dtype)),
        tiny(TinyA(cs.dtype)),
        num(cs.dtype) {
    c = gamma * step * step;
    d.resize(D);
    for (int64 i = 0; i < D; ++i) d[i] = -b + double(i) * step;
    d[D - 1] = b;
  }
  // Error bound of x - d_i computed in A: d_i = -b + i * step with step
  // rounded, the product and the sum (5 b eps), or implied by the
  // recurrence from the nearest centre (another 2 b eps at most), then the
  // subtraction.
  double ArgError(double x, double t) const {
    return 8.0 * eps * b + eps * (std::fabs(x) + std::fabs(t));
  }
};

// e_i = exp(-gamma (x - d_i)^2) and h_i = e_i (x - d_i) for every centre.
void GaussBasis(const KafCtx& K, double x, V* e, V* h) {
  if (std::isnan(x)) {
    for (int64 i = 0; i < K.D; ++i) e[i] = h[i] = V::NaN();
    return;
  }
  const double far = std::fabs(x) - K.b;
  if (std::isinf(x) || (far > 0 && K.gamma * far * far >= 780.0)) {
    for (int64 i = 0; i < K.D; ++i) e[i] = h[i] = V::Point(0.0);
    return;
  }
  double u = (x + K.b) / K.step;
  u = u < 0 ? 0 : (u > double(K.D - 1) ? double(K.D - 1) : u);
  const int64 m = std::min<int64>(K.D - 1, static_cast<int64>(u + 0.5));
  const double tm = x - K.d[m];
  const double arg_m = K.gamma * tm * tm;
  const double lam = K.gamma * K.step * (K.step + 2.0 * std::fabs(tm));
  for (int64 i = 0; i < K.D; ++i) {
    const double t = x - K.d[i];
    const double arg = K.gamma * t * t;
    const double ev = std::exp(-arg);
    const double j1 = double(std::llabs(i - m) + 1);
    const double dt = K.ArgError(x, t);
    const double rel =
        K.eps * (8.0 + 4.0 * arg + 4.0 * arg_m + j1 * (4.0 + lam) +
                 2.0 * j1 * j1 * (1.0 + K.c)) +
        2.0 * K.gamma * (std::fabs(t) + std::fabs(tm) + K.step) * dt +
        4.0 * kRefEps * (1.0 + arg);
    double lo = ev * (1.0 - rel), hi = ev * (1.0 + rel);
    if (lo < K.tiny) lo = 0.0;
    if (ev < K.tiny) hi = std::max(hi, K.tiny);
    e[i] = V::Bounds(lo, hi, ev);
    h[i] = Mul(e[i], V::Fin(t, dt));
  }
}

double Sigmoid(double t) {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  const double z = std::exp(t);
  return z / (1.0 + z);
}

// k(x, d_i) and dk/dx for relu and softplus.
void ReluSoftplusBasis(const KafCtx& K, KafKernel kernel, double x, V* k,
                       V* dk) {
  for (int64 i = 0; i < K.D; ++i) {
    const double t = x - K.d[i];
    if (std::isnan(t)) {
      k[i] = dk[i] = V::NaN();
      continue;
    }
    if (std::isinf(t)) {
      k[i] = V::Point(t > 0 ? t : 0.0);
      dk[i] = V::Point(t > 0 ? 1.0 : 0.0);
      continue;
    }
    const double dt = K.ArgError(x, t);
    if (kernel == KafKernel::kRelu) {
      const double lo = std::max(0.0, t - dt), hi = std::max(0.0, t + dt);
      k[i] = V::Bounds(lo, hi, std::max(0.0, t));
      k[i].hull = lo == 0.0 && hi > 0.0;  // at the kink
      if (t - dt > 0) {
        dk[i] = V::Point(1.0);
      } else if (t + dt <= 0) {
        dk[i] = V::Point(0.0);
      } else {
        dk[i] = V::Bounds(0.0, 1.0, t > 0 ? 1.0 : 0.0);  // kink: 0 or 1
        dk[i].hull = true;
      }
      continue;
    }
    // softplus = log1p(exp(-|t|)) + max(t, 0); its derivative sigmoid(t).
    if (t <= -780.0) {  // exp underflows to exactly 0 in float and double
      k[i] = dk[i] = V::Point(0.0);
      continue;
    }
    const double k0 = std::log1p(std::exp(-std::fabs(t))) + std::max(t, 0.0);
    const double s = Sigmoid(t);
    const double s1 = s * (1.0 - s);
    const double rk = K.eps * (6.0 * k0 + 2.0 * s * std::fabs(t)) + s * dt +
                      4.0 * kRefEps * (k0 + s * std::fabs(x));
    const double rs = K.eps * (6.0 * s + 2.0 * s1 * std::fabs(t)) + s1 * dt +
                      4.0 * kRefEps * (s + s1 * std::fabs(x));
    auto make = [&K](double v, double r) {
      double lo = v - r, hi = v + r;
      if (lo < K.tiny) lo = 0.0;
      if (v < K.tiny) hi = std::max(hi, K.tiny);
      return V::Bounds(lo, hi, v);
    };
    k[i] = make(k0, rk);
    dk[i] = make(s, rs);
  }
}

// sum_i a_i * v_i with the per-element summation allowance.
V Dot(const double* a, const V* v, int64 n, const Num& num) {
  V acc = V::Point(0.0);
  double mag = 0.0;
  bool finite = true;
  for (int64 i = 0; i < n && finite; ++i) {
    finite = v[i].fin && !v[i].nan && !v[i].pinf && !v[i].ninf &&
             std::isfinite(a[i]);
  }
  if (finite) {  // the common case, without the non-finite bookkeeping
    double m = 0.0, r = 0.0, x = 0.0;
    bool hull = false;
    for (int64 i = 0; i < n; ++i) {
      const double am = a[i] * v[i].m;
      m += am;
      r += std::fabs(a[i]) * v[i].r;
      x += a[i] * v[i].x;
      mag += std::fabs(am);
      hull = hull || v[i].hull;
    }
    acc = V::Fin(m, r);
    acc.x = x;
    acc.hull = hull;
    acc = Overflow(acc, num.max);
  } else {
    for (int64 i = 0; i < n; ++i) {
      const V term = Overflow(Mul(V::Point(a[i]), v[i]), num.max);
      acc = Add(acc, term);
      mag += std::fabs(term.m);
    }
  }
  // (A sum of exact zeros is an exact zero: no underflow allowance.)
  const bool exact_zero = acc.fin && acc.m == 0.0 && acc.r == 0.0;
  if (!exact_zero) {
    acc = Widen(acc, (num.eps + kRefEps) * double(n + 8) * mag + num.tiny);
  }
  if (mag > num.max / 8.0) acc.pinf = acc.ninf = acc.nan = true;
  return acc;
}

// Rounding of a few A operations on a result, and overflow of A.
V Rounded(const V& v, const Num& num, double ops = 4.0) {
  if (v.fin && v.m == 0.0 && v.r == 0.0) return v;  // exact zero
  return Overflow(Widen(v, ops * num.eps * std::fabs(v.m) + num.tiny),
                  num.max);
}

void KafElementCtx(const KafCtx& K, KafKernel kernel, const double* alpha,
                   double x, double g, ElementResult* out,
                   std::vector<V>* k, std::vector<V>* dk) {
  const int64 D = K.D;
  k->resize(D);
  dk->resize(D);
  if (kernel == KafKernel::kGaussian) {
    GaussBasis(K, x, k->data(), dk->data());
  } else {
    ReluSoftplusBasis(K, kernel, x, k->data(), dk->data());
  }
  const V gv = V::Point(g);
  out->y = Dot(alpha, k->data(), D, K.num);
  const V s = Dot(alpha, dk->data(), D, K.num);
  V dx = kernel == KafKernel::kGaussian
             ? Mul(Mul(s, V::Point(-2.0 * K.gamma)), gv)
             : Mul(s, gv);
  out->dx = Rounded(dx, K.num);
  out->contrib.resize(D);
  for (int64 i = 0; i < D; ++i) {
    out->contrib[i] = Rounded(Mul(gv, (*k)[i]), K.num, 2.0);
  }
}

void Kaf2dElementCtx(const KafCtx& K, const double* alpha, double x1,
                     double x2, double g, ElementResult* out,
                     std::vector<V>* buf) {
  const int64 D = K.D;
  buf->resize(4 * D);
  V* e1 = buf->data();
  V* h1 = e1 + D;
  V* e2 = h1 + D;
  V* h2 = e2 + D;
  GaussBasis(K, x1, e1, h1);
  GaussBasis(K, x2, e2, h2);
  const V gv = V::Point(g);
  V y = V::Point(0.0), s1 = y, s2 = y;
  double my = 0, m1 = 0, m2 = 0;
  out->contrib.resize(D * D);
  bool finite = std::isfinite(g);
  for (int64 i = 0; i < 4 * D && finite; ++i) {
    const V& v = (*buf)[i];
    finite = v.fin && !v.nan && !v.pinf && !v.ninf;
  }
  for (int64 i = 0; i < D * D && finite; ++i) finite = std::isfinite(alpha[i]);
  if (finite) {
    // The common case: the same interval arithmetic on plain doubles.
    struct I {
      double m, r, x;
    };
    auto mul = [](const V& a, const V& b) {
      return I{a.m * b.m,
               std::fabs(a.m) * b.r + std::fabs(b.m) * a.r + a.r * b.r,
               a.x * b.x};
    };
    double ym = 0, yr = 0, yx = 0, am = 0, ar = 0, ax = 0, bm = 0, br = 0,
           bx = 0;
    const double ag = std::fabs(g);
    for (int64 b = 0; b < D; ++b) {
      for (int64 k = 0; k < D; ++k) {
        const double a = alpha[b * D + k], aa = std::fabs(a);
        I e = mul(e1[k], e2[b]);
        if (e.m - e.r < K.tiny) {  // may underflow to zero in A
          const double hi = std::max(e.m + e.r, K.tiny);
          e.m = 0.5 * hi;
          e.r = 0.5 * hi + 0x1.0p-50 * hi;
        }
        const I p1 = mul(h1[k], e2[b]), p2 = mul(e1[k], h2[b]);
        ym += a * e.m, yr += aa * e.r, yx += a * e.x, my += aa * std::fabs(e.m);
        am += a * p1.m, ar += aa * p1.r, ax += a * p1.x;
        m1 += aa * std::fabs(p1.m);
        bm += a * p2.m, br += aa * p2.r, bx += a * p2.x;
        m2 += aa * std::fabs(p2.m);
        V c = V::Fin(g * e.m, ag * e.r);
        c.x = g * e.x;
        out->contrib[b * D + k] = Rounded(c, K.num, 3.0);
      }
    }
    y = V::Fin(ym, yr), y.x = yx;
    s1 = V::Fin(am, ar), s1.x = ax;
    s2 = V::Fin(bm, br), s2.x = bx;
  }
  for (int64 b = 0; b < D && !finite; ++b) {
    for (int64 k = 0; k < D; ++k) {
      const V a = V::Point(alpha[b * D + k]);
      const V e = Underflow(Mul(e1[k], e2[b]), K.tiny);
      const V ty = Mul(a, e);
      const V t1 = Mul(a, Mul(h1[k], e2[b]));
      const V t2 = Mul(a, Mul(e1[k], h2[b]));
      y = Add(y, ty);
      s1 = Add(s1, t1);
      s2 = Add(s2, t2);
      my += std::fabs(ty.m);
      m1 += std::fabs(t1.m);
      m2 += std::fabs(t2.m);
      out->contrib[b * D + k] = Rounded(Mul(gv, e), K.num, 3.0);
    }
  }
  const double f = (K.eps + kRefEps) * double(D * D + 8);
  auto finish = [&K, f](const V& v, double mag) {
    if (v.fin && v.m == 0.0 && v.r == 0.0) return v;  // exact zero
    return Widen(v, f * mag + K.tiny);
  };
  out->y = finish(y, my);
  s1 = finish(s1, m1);
  s2 = finish(s2, m2);
  const V scale = V::Point(-2.0 * K.gamma);
  out->dx = Rounded(Mul(Mul(s1, scale), gv), K.num);
  out->dx2 = Rounded(Mul(Mul(s2, scale), gv), K.num);
}

struct SplineCtx {
  int64 K;
  double x_min, scale, eps, tiny;
  Num num;
  explicit SplineCtx(const Case& cs)
      : K(cs.D),
        x_min(cs.x_min),
        scale(cs.SplineScale()),
        eps(EpsA(cs.dtype)),
        tiny(TinyA(cs.dtype)),
        num(cs.dtype) {}
};

void SplineElementCtx(const SplineCtx& S, const double* coef, double x,
                      double g, ElementResult* out) {
  const int64 last = S.K - 2;
  const double t = (x - S.x_min) * S.scale;
  const V gv = V::Point(g);
  struct Alt {
    int64 i;
    V u;
  };
  Alt alts[2];
  int n_alts = 1;
  if (std::isnan(t)) {
    alts[0] = {0, V::NaN()};
  } else if (std::isinf(t)) {
    const int64 i = t > 0 ? last : 0;
    alts[0] = {i, V::Point(t - double(i))};
  } else {
    const double dt = 3.0 * S.eps * std::fabs(t) + S.tiny;
    const double ft = std::floor(t);
    const int64 i = ft <= 0 ? 0 : (ft >= double(last) ? last : int64(ft));
    auto u_of = [&](int64 seg) {
      const double u = t - double(seg);
      return V::Fin(u, dt + S.eps * std::fabs(u) + kRefEps * std::fabs(t));
    };
    alts[0] = {i, u_of(i)};
    if (std::fabs(t) < 1e15) {
      const double k = std::nearbyint(t);
      if (k >= 1 && k <= double(last) && std::fabs(t - k) <= dt) {
        const int64 other = i == int64(k) ? i - 1 : int64(k);
        alts[1] = {other, u_of(other)};
        n_alts = 2;
      }
    }
  }
  const int64 first = std::min(alts[0].i, alts[n_alts - 1].i);
  const int64 span = std::max(alts[0].i, alts[n_alts - 1].i) + 2 - first;
  out->contrib_first = first;
  out->contrib.assign(span, V::Point(0.0));
  std::vector<bool> touched_all(span, true);
  V y, dx;
  std::vector<V> per_alt[2];
  for (int a = 0; a < n_alts; ++a) {
    const int64 i = alts[a].i;
    const V& u = alts[a].u;
    const double c0 = coef[i], c1 = coef[i + 1];
    const V delta = Widen(Sub(V::Point(c1), V::Point(c0)),
                          kRefEps * std::fabs(c1 - c0));
    const V ud = Mul(u, delta);
    V ya = Add(V::Point(c0), ud);
    ya = Overflow(Widen(ya, S.eps * (2.0 * std::fabs(ud.m) + std::fabs(c0) +
                                     std::fabs(ya.m)) +
                                S.tiny),
                  S.num.max);
    V slope = std::isnan(t) ? V::NaN()
                            : Rounded(Mul(delta, V::Point(S.scale)), S.num,
                                      3.0);
    const V dxa = Rounded(Mul(gv, slope), S.num, 1.0);
    V c_lo = Mul(Sub(V::Point(1.0), u), gv);
    if (std::isinf(g)) c_lo.nan = true;  // computed as dy - u dy
    const V ug = Mul(u, gv);
    c_lo = Overflow(
        Widen(c_lo, S.eps * (std::fabs(g) + 2.0 * std::fabs(ug.m)) + S.tiny),
        S.num.max);
    const V c_hi = Rounded(ug, S.num, 1.0);
    per_alt[a].assign(span, V::Point(0.0));
    per_alt[a][i - first] = c_lo;
    per_alt[a][i + 1 - first] = c_hi;
    y = a == 0 ? ya : Union(y, ya);
    dx = a == 0 ? dxa : Union(dx, dxa);
  }
  for (int64 j = 0; j < span; ++j) {
    out->contrib[j] =
        n_alts == 1 ? per_alt[0][j] : Union(per_alt[0][j], per_alt[1][j]);
  }
  out->y = y;
  out->dx = dx;
}

}  // namespace

void KafElement(const Case& c, const double* alpha, double x, double g,
                ElementResult* out) {
  const KafCtx K(c);
  std::vector<V> k, dk;
  out->contrib_first = 0;
  KafElementCtx(K, c.kernel, alpha, x, g, out, &k, &dk);
}

void Kaf2dElement(const Case& c, const double* alpha, double x1, double x2,
                  double g, ElementResult* out) {
  const KafCtx K(c);
  std::vector<V> buf;
  out->contrib_first = 0;
  Kaf2dElementCtx(K, alpha, x1, x2, g, out, &buf);
}

void SplineElement(const Case& c, const double* coef, double x, double g,
                   ElementResult* out) {
  SplineElementCtx(SplineCtx(c), coef, x, g, out);
}

Expected Reference(const Case& c, const Inputs& in) {
  Expected ex;
  const tfkaf::ChannelLayout& L = c.layout;
  const int64 rows = c.Rows(), K = c.K();
  const int64 positions = L.outer * L.inner;
  ex.y.resize(c.YSize());
  ex.dx.resize(c.XSize());
  ex.dalpha.resize(rows * K);
  const double eps = EpsA(c.dtype), tiny = TinyA(c.dtype);
  constexpr int64 kChunk = 4096;
  const int64 chunks = std::max<int64>(1, (positions + kChunk - 1) / kChunk);
  std::vector<std::vector<VSum>> partial(rows * chunks);
  const KafCtx* kaf = c.op == Op::kSpline ? nullptr : new KafCtx(c);
  const SplineCtx spline(c);

  ParallelFor(rows * chunks, [&](int64 begin, int64 end) {
    ElementResult r;
    std::vector<V> b1, b2;
    for (int64 unit = begin; unit < end; ++unit) {
      const int64 row = unit / chunks, chunk = unit % chunks;
      std::vector<VSum>& acc = partial[unit];
      acc.assign(K, VSum());
      const double* a = in.alpha.data() + row * K;
      const int64 p_end = std::min(positions, (chunk + 1) * kChunk);
      for (int64 p = chunk * kChunk; p < p_end; ++p) {
        const int64 o = p / L.inner, ii = p % L.inner;
        r.contrib_first = 0;
        if (c.op == Op::kKaf2d) {
          const int64 H = rows;
          const int64 at1 = (o * 2 * H + row) * L.inner + ii;
          const int64 at2 = at1 + H * L.inner;
          const int64 yi = (o * H + row) * L.inner + ii;
          Kaf2dElementCtx(*kaf, a, in.x[at1], in.x[at2], in.dy[yi], &r, &b1);
          ex.y[yi] = r.y;
          ex.dx[at1] = r.dx;
          ex.dx[at2] = r.dx2;
        } else {
          const int64 idx = (o * L.channels + row) * L.inner + ii;
          if (c.op == Op::kKaf) {
            KafElementCtx(*kaf, c.kernel, a, in.x[idx], in.dy[idx], &r, &b1,
                          &b2);
          } else {
            SplineElementCtx(spline, a, in.x[idx], in.dy[idx], &r);
          }
          ex.y[idx] = r.y;
          ex.dx[idx] = r.dx;
        }
        for (size_t j = 0; j < r.contrib.size(); ++j) {
          acc[r.contrib_first + int64(j)].Add(r.contrib[j]);
        }
      }
    }
  });
  delete kaf;

  ParallelFor(rows, [&](int64 begin, int64 end) {
    for (int64 row = begin; row < end; ++row) {
      for (int64 k = 0; k < K; ++k) {
        VSum total;
        for (int64 ch = 0; ch < chunks; ++ch) {
          if (!partial[row * chunks + ch].empty()) {
            total.Merge(partial[row * chunks + ch][k]);
          }
        }
        V v = total.Value();
        if (total.mag > MaxA(c.dtype) / 8.0) {
          v.pinf = v.ninf = v.nan = true;
        }
        if (total.n > 0) {
          v = Widen(v, eps * ReductionFactor(total.n) * total.mag +
                           kRefEps * 4.0 * total.mag +
                           tiny * double(total.n));
        }
        ex.dalpha[row * K + k] = v;
      }
    }
  });
  return ex;
}

}  // namespace cuda_check
