// The case list and the generated inputs.

#include <cmath>
#include <cstdio>
#include <limits>

#include "tools/cuda_check/check.h"

namespace cuda_check {

int64 Case::YSize() const {
  if (op == Op::kKaf2d) {
    return layout.outer * (layout.channels / 2) * layout.inner;
  }
  return layout.size();
}

int64 Case::Rows() const {
  return op == Op::kKaf2d ? layout.channels / 2 : layout.channels;
}

int64 Case::K() const { return op == Op::kKaf2d ? D * D : D; }

double Case::SplineScale() const {
  return static_cast<double>(D - 1) / (x_max - x_min);
}

std::string OpName(const Case& c) {
  switch (c.op) {
    case Op::kKaf:
      switch (c.kernel) {
        case KafKernel::kGaussian: return "kaf-gaussian";
        case KafKernel::kRelu: return "kaf-relu";
        case KafKernel::kSoftplus: return "kaf-softplus";
      }
      return "kaf-?";
    case Op::kKaf2d: return "kaf2d";
    case Op::kSpline: return "spline";
  }
  return "?";
}

namespace {

struct LayoutSpec {
  const char* name;  // the tensor shape and channel axis it stands for
  int64 outer, channels, inner;
};

// [outer, C, inner] views of rank 1-4 tensors, channels-last and
// channels-first, sizes that are not multiples of the 256-thread block.
// For 2D-KAF the channel count is doubled (C = 2H, H = `channels`).
const LayoutSpec kLayouts[] = {
    {"rank1[C]", 1, 37, 1},
    {"rank2[33,C]", 33, 7, 1},
    {"rank2[C,129]axis0", 1, 6, 129},
    {"rank3[5,13,C]", 65, 9, 1},
    {"rank3[3,C,100]axis1", 3, 5, 100},
    {"rank4[2,7,9,C]nhwc", 126, 6, 1},
    {"rank4[2,C,11,13]nchw", 2, 6, 143},
    {"rank4[2,3,C,37]axis2", 6, 4, 37},
    {"rank2[1031,C]", 1031, 3, 1},
    {"rank4[3,C,33,31]nchw", 3, 4, 1023},
};
constexpr int kSmallLayouts[] = {1, 6};  // the sanitizer subset
constexpr int kSpecialLayouts[] = {1, 6, 2};

const LayoutSpec kEmptyLayouts[] = {
    {"rank2[0,C]empty", 0, 4, 1},
    {"rank3[3,C,0]empty", 3, 4, 0},
    {"rank2[5,0]empty", 5, 0, 1},
};

// Tiny layouts for the kernels' global-atomics paths (D or K so large that
// one channel's accumulators do not fit in 48 KiB of shared memory).
const LayoutSpec kTinyLayouts[] = {
    {"rank3[2,C,7]axis1", 2, 3, 7},
    {"rank2[11,C]", 11, 5, 1},
};

std::uint64_t Hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

double F32(double v) { return RoundTo(DType::kF32, v); }

double DefaultGamma(Op op, double boundary, int64 D) {
  const double step = 2.0 * boundary / double(D - 1);
  return F32(op == Op::kKaf2d ? 1.0 / (4.0 * step * step)
                              : 1.0 / (8.0 * step * step));
}

std::string KindName(unsigned kind) {
  if (kind == kPlain) return "plain";
  std::string s;
  if (kind & kSpecialX) s += "sx";
  if (kind & kSpecialDy) s += s.empty() ? "sdy" : "+sdy";
  if (kind & kSpecialAlpha) s += s.empty() ? "salpha" : "+salpha";
  if (kind & kNoNaN) s += "-nonan";
  return s;
}

struct Builder {
  std::vector<Case> cases;

  void Add(Op op, KafKernel kernel, DType dt, const LayoutSpec& L, int64 D,
           unsigned kind, const std::string& extra = std::string(),
           double boundary = 0.0, double gamma = 0.0, double x_min = 0.0,
           double x_max = 0.0, bool big = false) {
    Case c;
    c.op = op;
    c.kernel = op == Op::kKaf ? kernel : KafKernel::kGaussian;
    c.dtype = dt;
    c.layout.outer = L.outer;
    c.layout.channels = op == Op::kKaf2d ? 2 * L.channels : L.channels;
    c.layout.inner = L.inner;
    c.D = D;
    c.kind = kind;
    c.big = big;
    if (op == Op::kSpline) {
      if (x_min == x_max) {
        if (D == 2) {
          x_min = 0.0, x_max = 1.0;
        } else if (D <= 51) {
          x_min = -2.5, x_max = 3.5;
        } else if (D <= 1000) {
          x_min = -1.0, x_max = 1.0;
        } else {
          x_min = -3.0, x_max = 3.0;
        }
      }
      c.x_min = F32(x_min);
      c.x_max = F32(x_max);
    } else {
      if (boundary == 0.0) {
        boundary = D == 2 ? 1.5 : (D <= 51 ? 3.0 : (D <= 1000 ? 4.0 : 3.0));
      }
      c.boundary = F32(boundary);
      c.gamma = gamma > 0.0 ? F32(gamma) : DefaultGamma(op, c.boundary, D);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "D=%lld", static_cast<long long>(D));
    c.name = std::string(big ? "big:" : "") + OpName(c) + "/" +
             DTypeName(dt) + "/" + (op == Op::kSpline ? "K" : "") + buf +
             "/" + L.name + "(" + std::to_string(c.layout.outer) + "," +
             std::to_string(c.layout.channels) + "," +
             std::to_string(c.layout.inner) + ")/" + KindName(kind) + extra;
    c.seed = Hash(c.name);
    cases.push_back(c);
  }
};

struct OpSpec {
  Op op;
  KafKernel kernel;
  int64 d_min, d_typical, d_large;
};
const OpSpec kOps[] = {
    {Op::kKaf, KafKernel::kGaussian, 2, 20, 200},
    {Op::kKaf, KafKernel::kRelu, 2, 20, 200},
    {Op::kKaf, KafKernel::kSoftplus, 2, 20, 200},
    {Op::kKaf2d, KafKernel::kGaussian, 2, 10, 33},
    {Op::kSpline, KafKernel::kGaussian, 2, 51, 1000},
};
const DType kDTypes[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16};

}  // namespace

std::vector<Case> MakeCases(bool small) {
  Builder b;
  for (const OpSpec& op : kOps) {
    for (DType dt : kDTypes) {
      std::vector<int64> Ds = {op.d_min, op.d_typical};
      if (!small) Ds.push_back(op.d_large);
      for (int64 D : Ds) {
        if (small) {
          for (int li : kSmallLayouts) {
            b.Add(op.op, op.kernel, dt, kLayouts[li], D, kSpecialX);
          }
          b.Add(op.op, op.kernel, dt, kLayouts[kSmallLayouts[0]], D,
                kSpecialDy | kSpecialAlpha);
          continue;
        }
        for (const LayoutSpec& L : kLayouts) {
          b.Add(op.op, op.kernel, dt, L, D, kPlain);
        }
        for (int li : kSpecialLayouts) {
          for (unsigned kind : {unsigned(kSpecialX), unsigned(kSpecialDy),
                                unsigned(kSpecialAlpha),
                                unsigned(kSpecialX | kSpecialDy)}) {
            b.Add(op.op, op.kernel, dt, kLayouts[li], D, kind);
          }
        }
      }
      for (const LayoutSpec& L : kEmptyLayouts) {
        b.Add(op.op, op.kernel, dt, L, op.d_typical, kSpecialX);
      }
    }
  }
  // Global-atomics paths (one channel's accumulators exceed 48 KiB).
  for (const LayoutSpec& L : kTinyLayouts) {
    for (KafKernel k :
         {KafKernel::kGaussian, KafKernel::kRelu, KafKernel::kSoftplus}) {
      b.Add(Op::kKaf, k, DType::kF32, L, 12300, kSpecialX);
      b.Add(Op::kKaf, k, DType::kF16, L, 12300, kSpecialX);
      b.Add(Op::kKaf, k, DType::kF64, L, 6200, kSpecialX);
    }
    b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kF32, L, 111, kSpecialX);
    b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kBF16, L, 111, kSpecialX);
    b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kF64, L, 80, kSpecialX);
    b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kF32, L, 80, kSpecialX);
    b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF32, L, 12300, kSpecialX);
    b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF16, L, 12300, kSpecialX);
    b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF64, L, 6200, kSpecialX);
  }
  auto with_alias_variants = [](std::vector<Case> cases) {
    for (Case& c : cases) {
      if (c.op == Op::kSpline && !c.big && c.layout.size() > 0) {
        c.alias_variants = true;
      }
    }
    return cases;
  };
  if (small) return with_alias_variants(b.cases);

  // Other parameters: small and huge gamma, a narrow boundary, spline grids.
  for (DType dt : {DType::kF32, DType::kF64, DType::kBF16}) {
    for (int li : kSmallLayouts) {
      const LayoutSpec& L = kLayouts[li];
      for (double g : {0.01, 1e4}) {
        const std::string tag = g < 1 ? "/gamma=0.01" : "/gamma=1e4";
        b.Add(Op::kKaf, KafKernel::kGaussian, dt, L, 20, kSpecialX, tag, 3.0,
              g);
        b.Add(Op::kKaf2d, KafKernel::kGaussian, dt, L, 10, kSpecialX, tag,
              3.0, g);
      }
      b.Add(Op::kKaf, KafKernel::kGaussian, dt, L, 51, kSpecialX, "/b=1", 1.0);
      b.Add(Op::kKaf, KafKernel::kSoftplus, dt, L, 20, kSpecialX, "/b=0.5",
            0.5);
      b.Add(Op::kSpline, KafKernel::kGaussian, dt, L, 51, kSpecialX,
            "/range=[0.1,0.35]", 0, 0, 0.1, 0.35);
      b.Add(Op::kSpline, KafKernel::kGaussian, dt, L, 21, kSpecialX,
            "/range=[-1000,3000]", 0, 0, -1000.0, 3000.0);
    }
  }

  // Reductions spanning many blocks: the KAF backward grid is capped at
  // 2048 blocks of 256 threads, so ~70k positions x 8 channels also make
  // every thread loop; the spline's chunks of 256 positions give ~270 blocks
  // per channel tile.
  const LayoutSpec last{"rank2[70001,C]", 70001, 8, 1};
  const LayoutSpec first{"rank3[4,C,40001]axis1", 4, 4, 40001};
  const LayoutSpec tiles{"rank2[2053,C]", 2053, 100, 1};
  const LayoutSpec last2d{"rank2[40001,C]", 40001, 4, 1};
  const LayoutSpec first2d{"rank3[4,C,10007]axis1", 4, 4, 10007};
  const LayoutSpec wide{"rank2[20011,C]", 20011, 40, 1};
  for (DType dt : {DType::kF32, DType::kF64, DType::kBF16}) {
    b.Add(Op::kKaf, KafKernel::kGaussian, dt, last, 20, kPlain, "", 0, 0, 0, 0,
          true);
    b.Add(Op::kKaf, KafKernel::kGaussian, dt, first, 20, kPlain, "", 0, 0, 0,
          0, true);
    b.Add(Op::kKaf2d, KafKernel::kGaussian, dt, last2d, 10, kPlain, "", 0, 0,
          0, 0, true);
    b.Add(Op::kKaf2d, KafKernel::kGaussian, dt, first2d, 10, kPlain, "", 0, 0,
          0, 0, true);
    b.Add(Op::kSpline, KafKernel::kGaussian, dt, last, 51, kPlain, "", 0, 0, 0,
          0, true);
    b.Add(Op::kSpline, KafKernel::kGaussian, dt, first, 51, kPlain, "", 0, 0,
          0, 0, true);
  }
  for (DType dt : {DType::kF32, DType::kF64, DType::kF16}) {
    b.Add(Op::kKaf, KafKernel::kRelu, dt, last, 20, kPlain, "", 0, 0, 0, 0,
          true);
    b.Add(Op::kKaf, KafKernel::kSoftplus, dt, last, 20, kPlain, "", 0, 0, 0,
          0, true);
  }
  b.Add(Op::kKaf, KafKernel::kGaussian, DType::kF32, last, 20,
        kSpecialX | kNoNaN, "", 0, 0, 0, 0, true);
  b.Add(Op::kKaf, KafKernel::kGaussian, DType::kF32, tiles, 20, kPlain, "", 0,
        0, 0, 0, true);
  b.Add(Op::kKaf, KafKernel::kGaussian, DType::kF64, tiles, 200, kPlain, "", 0,
        0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF32, tiles, 51,
        kSpecialX | kNoNaN, "", 0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF32, wide, 1000, kPlain, "",
        0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF64, wide, 1000, kPlain, "",
        0, 0, 0, 0, true);
  return with_alias_variants(b.cases);
}

std::vector<Case> MakeDeterminismCases(bool small) {
  Builder b;
  const LayoutSpec last = small ? LayoutSpec{"rank2[20003,C]", 20003, 8, 1}
                                : LayoutSpec{"rank2[70001,C]", 70001, 8, 1};
  const LayoutSpec first =
      small ? LayoutSpec{"rank3[2,C,10001]axis1", 2, 4, 10001}
            : LayoutSpec{"rank3[4,C,40001]axis1", 4, 4, 40001};
  const LayoutSpec last2d = small
                                ? LayoutSpec{"rank2[10007,C]", 10007, 4, 1}
                                : LayoutSpec{"rank2[40001,C]", 40001, 4, 1};
  b.Add(Op::kKaf, KafKernel::kGaussian, DType::kF32, last, 20, kPlain, "", 0,
        0, 0, 0, true);
  b.Add(Op::kKaf, KafKernel::kGaussian, DType::kF64, first, 20, kPlain, "", 0,
        0, 0, 0, true);
  b.Add(Op::kKaf, KafKernel::kRelu, DType::kF32, first, 20, kPlain, "", 0, 0,
        0, 0, true);
  b.Add(Op::kKaf, KafKernel::kSoftplus, DType::kF16, last, 20, kPlain, "", 0,
        0, 0, 0, true);
  b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kF32, last2d, 10, kPlain, "",
        0, 0, 0, 0, true);
  b.Add(Op::kKaf2d, KafKernel::kGaussian, DType::kBF16,
        small ? LayoutSpec{"rank3[2,C,5003]axis1", 2, 4, 5003}
              : LayoutSpec{"rank3[4,C,10007]axis1", 4, 4, 10007},
        10, kPlain, "", 0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF32, last, 51, kPlain, "",
        0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF32, first, 51, kPlain, "",
        0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kBF16, last, 51, kPlain, "",
        0, 0, 0, 0, true);
  b.Add(Op::kSpline, KafKernel::kGaussian, DType::kF64, first, 1000, kPlain,
        "", 0, 0, 0, 0, true);
  return b.cases;
}

// ---------------------------------------------------------------------------
// Inputs

namespace {

struct Rng {
  std::uint64_t state;
  explicit Rng(std::uint64_t seed) : state(seed) {}
  std::uint64_t Next() {  // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return double(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  int64 Index(int64 n) { return static_cast<int64>(Next() % std::uint64_t(n)); }
};

}  // namespace

Inputs MakeInputs(const Case& c) {
  Inputs in;
  Rng rng(c.seed);
  const DType dt = c.dtype;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const bool no_nan = (c.kind & kNoNaN) != 0;

  // Centres / knots, where the kernels have kinks or segment boundaries.
  std::vector<double> centres;
  double lo, hi;
  std::vector<double> far;
  if (c.op == Op::kSpline) {
    const double w = c.x_max - c.x_min;
    for (int64 k = 0; k < c.D; ++k) {
      centres.push_back(c.x_min + double(k) * w / double(c.D - 1));
    }
    lo = c.x_min - 0.25 * w;
    hi = c.x_max + 0.25 * w;
    far = {c.x_max + 1e3 * w, c.x_min - 1e3 * w, 1e6, -1e6};
  } else {
    const double b = c.boundary;
    for (int64 i = 0; i < c.D; ++i) {
      centres.push_back(i == c.D - 1 ? b
                                     : -b + double(i) * 2.0 * b / double(c.D - 1));
    }
    lo = -1.25 * b - 0.25;
    hi = 1.25 * b + 0.25;
    // Around the kernels' clamp at boundary + sqrt(800 / gamma), where
    // every basis value underflows.
    const double L = std::sqrt(800.0 / c.gamma);
    for (double f : {0.5, 0.97, 1.03, 3.0}) {
      far.push_back(b + f * L);
      far.push_back(-b - f * L);
    }
  }
  std::vector<double> specials = {inf,  -inf, 1e30, -1e30, SubnormalOf(dt),
                                  -SubnormalOf(dt), NextUp(dt, 0.0), 0.0,
                                  -0.0};
  if (!no_nan) specials.push_back(nan);
  for (double f : far) specials.push_back(f);

  const int64 nx = c.XSize();
  in.x.resize(nx);
  for (int64 j = 0; j < nx; ++j) {
    const double u = rng.Uniform();
    double v;
    if ((c.kind & kSpecialX) && u < 0.12) {
      v = specials[rng.Index(int64(specials.size()))];
    } else if (u < 0.22) {
      v = centres[rng.Index(int64(centres.size()))];
    } else if (u < 0.30) {
      const double at = RoundTo(dt, centres[rng.Index(int64(centres.size()))]);
      v = rng.Uniform() < 0.5 ? NextUp(dt, at) : NextDown(dt, at);
    } else {
      v = rng.Uniform(lo, hi);
    }
    in.x[j] = RoundTo(dt, v);
  }

  const int64 na = c.Rows() * c.K();
  in.alpha.resize(na);
  std::vector<double> alpha_specials = {inf, -inf, SubnormalOf(dt),
                                        -SubnormalOf(dt), 0.0};
  if (!no_nan) alpha_specials.push_back(nan);
  for (int64 j = 0; j < na; ++j) {
    double v = rng.Uniform(-1.0, 1.0);
    if ((c.kind & kSpecialAlpha) && rng.Uniform() < 0.08) {
      v = alpha_specials[rng.Index(int64(alpha_specials.size()))];
    }
    in.alpha[j] = RoundTo(dt, v);
  }

  const int64 ny = c.YSize();
  in.dy.resize(ny);
  std::vector<double> dy_specials = {inf,  -inf, 1e30, -1e30, SubnormalOf(dt),
                                     0.0, -0.0};
  if (!no_nan) dy_specials.push_back(nan);
  for (int64 j = 0; j < ny; ++j) {
    double v = rng.Uniform(-1.0, 1.0);
    if ((c.kind & kSpecialDy) && rng.Uniform() < 0.10) {
      v = dy_specials[rng.Index(int64(dy_specials.size()))];
    }
    in.dy[j] = RoundTo(dt, v);
  }
  return in;
}

}  // namespace cuda_check
