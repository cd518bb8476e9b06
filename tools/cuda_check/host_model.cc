// Host model of the ops in the kernels' compute type (see check.h).
//
// Written from the formulas and from the algorithm the kernel comments
// describe -- the Gaussian basis by a recurrence from the nearest centre,
// x clamped at boundary + sqrt(800 / gamma), 16-bit types computed in float
// -- but with its own code and its own summation order for dalpha (blocks of
// 37 positions, block sums added last to first). The self-test checks it
// against the reference with the GPU tolerances: if a plain float
// implementation did not pass, the tolerances would be too tight to judge
// the GPU.

#include <algorithm>
#include <cmath>
#include <limits>

#include "tools/cuda_check/check.h"

namespace cuda_check {
namespace {

template <typename A>
class Model {
 public:
  Model(const Case& c, const Inputs& in, ModelBug bug)
      : c_(c), in_(in), bug_(bug), D_(c.D) {
    if (c.op != Op::kSpline) {
      b_ = A(c.boundary);
      gamma_ = A(c.gamma);
      const double step = 2.0 * c.boundary / double(c.D - 1);
      step_ = A(step);
      q2_ = A(std::exp(-2.0 * c.gamma * step * step));
      const double margin = std::sqrt(800.0 / c.gamma);
      A lim = A(c.boundary + margin);
      while (std::isfinite(lim) && double(lim) - c.boundary < margin) {
        lim = std::nextafter(lim, std::numeric_limits<A>::infinity());
      }
      hi_ = std::isfinite(lim) ? lim : std::numeric_limits<A>::max();
    }
  }

  Outputs Run() {
    Outputs out;
    out.y.assign(c_.YSize(), 0.0);
    out.dx.assign(c_.XSize(), 0.0);
    const int64 rows = c_.Rows(), K = c_.K();
    out.dalpha.assign(rows * K, 0.0);
    const tfkaf::ChannelLayout& L = c_.layout;
    const int64 positions = L.outer * L.inner;
    std::vector<A> contrib(K), block(K), total(K);
    std::vector<std::vector<A>> blocks;
    constexpr int64 kBlock = 37;
    for (int64 row = 0; row < rows; ++row) {
      int64 arow = row;
      if (bug_ == ModelBug::kWrongChannel) arow = (row + 1) % rows;
      const double* a = in_.alpha.data() + arow * K;
      std::vector<A> alpha(a, a + K);
      blocks.clear();
      std::fill(block.begin(), block.end(), A(0));
      int64 used = positions;
      if (bug_ == ModelBug::kDropPosition && used > 0) --used;
      for (int64 p = 0; p < positions; ++p) {
        const int64 o = p / L.inner, ii = p % L.inner;
        std::fill(contrib.begin(), contrib.end(), A(0));
        if (c_.op == Op::kKaf2d) {
          const int64 H = rows;
          const int64 at1 = (o * 2 * H + row) * L.inner + ii;
          const int64 at2 = at1 + H * L.inner;
          const int64 yi = (o * H + row) * L.inner + ii;
          A y, dx1, dx2;
          Kaf2d(alpha.data(), A(in_.x[at1]), A(in_.x[at2]), A(in_.dy[yi]), &y,
                &dx1, &dx2, contrib.data());
          out.y[yi] = Out(y);
          out.dx[at1] = Out(dx1);
          out.dx[at2] = Out(dx2);
        } else {
          const int64 idx = (o * L.channels + row) * L.inner + ii;
          A y, dx;
          if (c_.op == Op::kKaf) {
            Kaf(alpha.data(), A(in_.x[idx]), A(in_.dy[idx]), &y, &dx,
                contrib.data());
          } else {
            Spline(alpha.data(), A(in_.x[idx]), A(in_.dy[idx]), &y, &dx,
                   contrib.data());
          }
          out.y[idx] = Out(y);
          out.dx[idx] = Out(dx);
        }
        if (p < used) {
          for (int64 k = 0; k < K; ++k) block[k] += contrib[k];
        }
        if ((p + 1) % kBlock == 0 || p + 1 == positions) {
          blocks.push_back(block);
          std::fill(block.begin(), block.end(), A(0));
        }
      }
      std::fill(total.begin(), total.end(), A(0));
      for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
        for (int64 k = 0; k < K; ++k) total[k] += (*it)[k];
      }
      for (int64 k = 0; k < K; ++k) out.dalpha[row * K + k] = Out(total[k]);
    }
    if (bug_ == ModelBug::kDxSign) {
      for (double& v : out.dx) v = -v;
    }
    return out;
  }

 private:
  double Out(A v) const { return RoundTo(c_.dtype, double(v)); }

  A Centre(int64 i) const {
    A d = i == D_ - 1 ? b_ : -b_ + A(i) * step_;
    if (bug_ == ModelBug::kCentreShift) d += step_ / A(100);
    return d;
  }

  A Clamp(A x) const {
    if (bug_ == ModelBug::kInfGivesNaN) return x;
    A xc = x < -hi_ ? -hi_ : x;
    return xc > hi_ ? hi_ : xc;
  }

  // Gaussian basis of every centre by the ratio recurrence from the centre
  // nearest to xc: e_{i+1} / e_i = exp(-gamma step (step - 2 (xc - d_i)))
  // changes by the factor exp(-2 gamma step^2) from one centre to the next.
  void Basis(A xc, A* e) const {
    A u = (xc + b_) / step_;
    u = u > A(0) ? u : A(0);
    u = u < A(D_ - 1) ? u : A(D_ - 1);
    int64 m = static_cast<int64>(u + A(0.5));
    if (m > D_ - 1) m = D_ - 1;
    const A tm = xc - Centre(m);
    const A em = std::exp(-gamma_ * tm * tm);
    e[m] = em;
    A v = em;
    A r = std::exp(-gamma_ * ((step_ - A(2) * tm) * step_));
    for (int64 i = m + 1; i < D_; ++i) {
      v *= r;
      r *= q2_;
      e[i] = v;
    }
    v = em;
    r = std::exp(-gamma_ * ((step_ + A(2) * tm) * step_));
    for (int64 i = m - 1; i >= 0; --i) {
      v *= r;
      r *= q2_;
      e[i] = v;
    }
  }

  void Kaf(const A* alpha, A x, A g, A* y, A* dx, A* contrib) const {
    std::vector<A> e(D_);
    A sy = 0, sd = 0;
    if (c_.kernel == KafKernel::kGaussian) {
      const A xc = Clamp(x);
      Basis(xc, e.data());
      for (int64 i = 0; i < D_; ++i) {
        sy += alpha[i] * e[i];
        sd += alpha[i] * e[i] * (xc - Centre(i));
        contrib[i] = g * e[i];
      }
      *dx = A(-2) * gamma_ * sd * g;
    } else {
      for (int64 i = 0; i < D_; ++i) {
        const A t = x - Centre(i);
        A k, dk;
        if (c_.kernel == KafKernel::kRelu) {
          k = t > A(0) ? t : (t != t ? t : A(0));
          dk = t > A(0) ? A(1) : (t != t ? t : A(0));
        } else {
          const A z = std::exp(-std::fabs(t));
          k = std::log1p(z) + (t > A(0) ? t : A(0));
          dk = t >= A(0) ? A(1) / (A(1) + z) : z / (A(1) + z);
          if (t != t) k = dk = t;
        }
        sy += alpha[i] * k;
        sd += alpha[i] * dk;
        contrib[i] = g * k;
      }
      *dx = g * sd;
    }
    *y = sy;
  }

  void Kaf2d(const A* alpha, A x1, A x2, A g, A* y, A* dx1, A* dx2,
             A* contrib) const {
    const A xc1 = Clamp(x1), xc2 = Clamp(x2);
    std::vector<A> e1(D_), e2(D_);
    if (D_ <= 32) {
      Basis(xc1, e1.data());
      Basis(xc2, e2.data());
    } else {
      for (int64 i = 0; i < D_; ++i) {
        const A t1 = xc1 - Centre(i), t2 = xc2 - Centre(i);
        e1[i] = std::exp(-gamma_ * t1 * t1);
        e2[i] = std::exp(-gamma_ * t2 * t2);
      }
    }
    A sy = 0, s1 = 0, s2 = 0;
    for (int64 b = 0; b < D_; ++b) {
      for (int64 k = 0; k < D_; ++k) {
        const A e = e1[k] * e2[b];
        const A w = alpha[b * D_ + k] * e;
        sy += w;
        s1 += w * (xc1 - Centre(k));
        s2 += w * (xc2 - Centre(b));
        contrib[b * D_ + k] = g * e;
      }
    }
    *y = sy;
    *dx1 = A(-2) * gamma_ * s1 * g;
    *dx2 = A(-2) * gamma_ * s2 * g;
  }

  void Spline(const A* coef, A x, A g, A* y, A* dx, A* contrib) const {
    const int64 last = D_ - 2;
    A xm = A(c_.x_min), scale = A(c_.SplineScale());
    if (bug_ == ModelBug::kCentreShift) xm += A(0.01) / scale;
    const A t = (x - xm) * scale;
    A tc = t >= A(0) ? t : A(0);
    tc = tc <= A(last) ? tc : A(last);
    int64 i = static_cast<int64>(tc);
    if (bug_ == ModelBug::kSegmentOffByOne && i < last) ++i;
    const A u = t - A(i);
    const A c0 = coef[i], c1 = coef[i + 1];
    *y = c0 + u * (c1 - c0);
    *dx = t != t ? t : g * ((c1 - c0) * scale);
    contrib[i] += (A(1) - u) * g;
    contrib[i + 1] += u * g;
  }

  const Case& c_;
  const Inputs& in_;
  ModelBug bug_;
  int64 D_;
  A b_ = 0, gamma_ = 0, step_ = 0, q2_ = 0, hi_ = 0;
};

}  // namespace

Outputs HostModel(const Case& c, const Inputs& in, ModelBug bug) {
  if (c.dtype == DType::kF64) return Model<double>(c, in, bug).Run();
  return Model<float>(c, in, bug).Run();
}

}  // namespace cuda_check
