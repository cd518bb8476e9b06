// CUDA functors of KAF and 2D-KAF (declared in kaf_kernels.h). Compiled by
// nvcc without any TensorFlow header (third_party/cuda.bzl).
//
// Forward: one thread per output element (grid-stride loop). The Gaussian
// basis uses the recurrence exp(-g (x - d_{i+1})^2) = exp(-g (x - d_i)^2) r_i,
// r_{i+1} = r_i exp(-2 g step^2), started from the centre nearest to x and
// walking outwards in both directions, so that every ratio is <= 1: three
// exponentials per element instead of D, no overflow. x is clamped to
// [-boundary - L, boundary + L] (gamma L^2 = 800, where every basis value is
// exactly 0) so that +-Inf / 1e30 give zeros instead of 0 * inf; NaN passes
// the comparisons and propagates. The nearest index is computed from the
// clamped value with comparisons that NaN fails, never by casting NaN or Inf.
//
// Backward: each block owns a tile of up to 32 channels (lanes of a warp take
// different channels, so shared-memory atomics rarely collide) and a stripe
// of positions; dalpha is accumulated in shared memory and added to a global
// accumulator with one atomicAdd per (channel, centre) per block, then
// converted to T. Float atomics make dalpha's last bits order-dependent on the
// GPU (the CPU kernels are deterministic).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cc/kernels/common.h"
#include "cc/kernels/cuda_convert.cu.h"
#include "cc/kernels/cuda_launch.cu.h"
#include "cc/kernels/kaf_kernels.h"

namespace tfkaf {
namespace {

using cuda::Blocks;
using cuda::kSharedBytes;
using cuda::kThreads;
using cuda::LastError;

constexpr int kMaxTile = 32;         // channels per block in backward
constexpr int kMaxGrid2d = 32;       // 2D grid side kept in registers/local

__device__ __forceinline__ float Exp(float a) { return expf(a); }
__device__ __forceinline__ double Exp(double a) { return exp(a); }
__device__ __forceinline__ float Log1p(float a) { return log1pf(a); }
__device__ __forceinline__ double Log1p(double a) { return log1p(a); }

template <typename A>
struct Params {
  int D;
  A boundary, step, gamma;
  A q2;      // exp(-2 gamma step^2)
  A lo, hi;  // clamp range of x for the Gaussian

  __device__ __forceinline__ A Centre(int i) const {
    return i == D - 1 ? boundary : -boundary + A(i) * step;
  }
  // x clamped to [lo, hi]; NaN stays NaN.
  __device__ __forceinline__ A Clamp(A x) const {
    const A low = x < lo ? lo : x;
    return low > hi ? hi : low;
  }
};

template <typename A>
Params<A> MakeParams(const KafConfig& config) {
  const double D = double(config.num_centres);
  const double step = 2.0 * config.boundary / (D - 1.0);
  const double c = config.gamma * step * step;
  Params<A> p;
  p.D = static_cast<int>(config.num_centres);
  p.boundary = A(config.boundary);
  p.step = A(step);
  p.gamma = A(config.gamma);
  p.q2 = A(std::exp(-2.0 * c));
  p.hi = KafClampLimit<A>(config);
  p.lo = -p.hi;
  return p;
}

// Calls f(i, exp(-gamma (x - d_i)^2)) for every centre i, walking outwards
// from the nearest centre. Returns x clamped (NaN stays NaN).
template <typename A, typename F>
__device__ __forceinline__ A GaussWalk(const Params<A>& p, A x, F& f) {
  const A xc = p.Clamp(x);
  A u = (xc + p.boundary) / p.step;
  u = u > A(0) ? u : A(0);                  // NaN -> 0
  u = u < A(p.D - 1) ? u : A(p.D - 1);
  int m = static_cast<int>(u + A(0.5));     // finite, in [0, D - 1]
  m = m < p.D - 1 ? m : p.D - 1;
  const A tm = xc - p.Centre(m);
  const A em = Exp(-p.gamma * tm * tm);
  f(m, em);
  A e = em;
  // e_{m+1} / e_m = exp(-g ((tm - step)^2 - tm^2)), written so that no
  // product of gamma can overflow to inf and meet a zero (inf * 0 = NaN).
  A r = Exp(-p.gamma * ((p.step - A(2) * tm) * p.step));
  for (int i = m + 1; i < p.D; ++i) {
    e *= r;
    r *= p.q2;
    f(i, e);
  }
  e = em;
  r = Exp(-p.gamma * ((p.step + A(2) * tm) * p.step));  // e_{m-1} / e_m
  for (int i = m - 1; i >= 0; --i) {
    e *= r;
    r *= p.q2;
    f(i, e);
  }
  return xc;
}

// k(x, d_i) and dk/dx for the relu and softplus kernels.
template <typename A>
__device__ __forceinline__ void ReluSoftplus(KafKernel kernel, A t, A* k,
                                             A* dk) {
  if (kernel == KafKernel::kRelu) {
    *k = t <= A(0) ? A(0) : t;  // NaN stays NaN
    *dk = t > A(0) ? A(1) : A(0);
  } else {
    const A ez = Exp(-fabs(t));
    *k = Log1p(ez) + (t <= A(0) ? A(0) : t);
    const A inv = A(1) / (A(1) + ez);
    *dk = t >= A(0) ? inv : ez * inv;
  }
}

template <typename T, typename A>
struct ForwardSum {
  const T* alpha;
  A sum;
  __device__ __forceinline__ void operator()(int i, A e) {
    sum += Cvt<T>::In(alpha[i]) * e;
  }
};

template <typename T, typename A>
__global__ void KafForwardKernel(const T* __restrict__ x,
                                 const T* __restrict__ alpha,
                                 T* __restrict__ y, int64 size, int64 C,
                                 int64 inner, KafKernel kernel, Params<A> p) {
  for (int64 idx = int64(blockIdx.x) * blockDim.x + threadIdx.x; idx < size;
       idx += int64(gridDim.x) * blockDim.x) {
    const int64 c = (idx / inner) % C;
    const T* a = alpha + c * p.D;
    const A xv = Cvt<T>::In(x[idx]);
    A acc = A(0);
    if (kernel == KafKernel::kGaussian) {
      ForwardSum<T, A> f{a, A(0)};
      GaussWalk(p, xv, f);
      acc = f.sum;
    } else {
      for (int i = 0; i < p.D; ++i) {
        A k, dk;
        ReluSoftplus(kernel, xv - p.Centre(i), &k, &dk);
        acc += Cvt<T>::In(a[i]) * k;
      }
    }
    y[idx] = Cvt<T>::Out(acc);
  }
}

template <typename T, typename A>
struct BackwardSum {
  const T* alpha;
  A* acc_row;  // dalpha accumulators of this channel (shared or global)
  A g;         // dy
  A xc;        // clamped x (for x - d_i)
  const Params<A>* p;
  A sum;
  __device__ __forceinline__ void operator()(int i, A e) {
    sum += Cvt<T>::In(alpha[i]) * e * (xc - p->Centre(i));
    atomicAdd(acc_row + i, g * e);
  }
};

// The block's n shared-memory accumulators: zeroed before its work, and
// after it the non-zero ones (NaN too) added to `global`, one atomicAdd each.
template <typename A>
__device__ __forceinline__ void ZeroShared(A* shared, int n) {
  for (int j = threadIdx.x; j < n; j += blockDim.x) shared[j] = A(0);
  __syncthreads();
}
template <typename A>
__device__ __forceinline__ void FlushShared(const A* shared, A* global,
                                            int n) {
  __syncthreads();
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const A v = shared[j];
    if (v != A(0)) atomicAdd(global + j, v);
  }
}

// The work of one backward block: rows (channels) [r0, r0 + count) of the
// tile blockIdx.x and a stripe of positions (blockIdx.y); lanes of a warp
// take different rows. f(position, row, acc_row) runs once per (position,
// row), acc_row the row's K dalpha accumulators: in shared memory (kShared;
// zeroed first, flushed to dalpha at the end) or dalpha itself.
template <bool kShared, typename A, typename F>
__device__ __forceinline__ void ForEachTileItem(int64 rows, int tile,
                                                int64 positions, int K,
                                                A* shared, A* dalpha, F&& f) {
  const int64 r0 = int64(blockIdx.x) * tile;
  const int count = static_cast<int>(rows - r0 < tile ? rows - r0 : tile);
  if (kShared) ZeroShared(shared, count * K);
  const int64 work = positions * count;
  for (int64 w = int64(blockIdx.y) * blockDim.x + threadIdx.x; w < work;
       w += int64(gridDim.y) * blockDim.x) {
    const int local = static_cast<int>(w % count);
    const int64 row = r0 + local;
    f(w / count, row, kShared ? shared + local * K : dalpha + row * K);
  }
  if (kShared) FlushShared(shared, dalpha + r0 * K, count * K);
}

template <typename T, typename A, bool kShared>
__global__ void KafBackwardKernel(const T* __restrict__ dy,
                                  const T* __restrict__ x,
                                  const T* __restrict__ alpha,
                                  T* __restrict__ dx, A* __restrict__ dalpha,
                                  int64 outer, int64 C, int64 inner, int tile,
                                  KafKernel kernel, Params<A> p) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int D = p.D;
  ForEachTileItem<kShared>(
      C, tile, outer * inner, D, reinterpret_cast<A*>(shared_raw), dalpha,
      [&](int64 position, int64 c, A* acc_row) {
        const int64 o = position / inner;
        const int64 idx = (o * C + c) * inner + position % inner;
        const A xv = Cvt<T>::In(x[idx]);
        const A g = Cvt<T>::In(dy[idx]);
        const T* a = alpha + c * D;
        A dxv;
        if (kernel == KafKernel::kGaussian) {
          BackwardSum<T, A> f{a, acc_row, g, p.Clamp(xv), &p, A(0)};
          GaussWalk(p, xv, f);
          dxv = ((f.sum * -p.gamma) * A(2)) * g;  // never forms -2 gamma
        } else {
          A sum = A(0);
          for (int i = 0; i < D; ++i) {
            A k, dk;
            ReluSoftplus(kernel, xv - p.Centre(i), &k, &dk);
            sum += Cvt<T>::In(a[i]) * dk;
            atomicAdd(acc_row + i, g * k);
          }
          dxv = g * sum;
          if (kernel == KafKernel::kRelu && xv != xv) dxv = xv;
        }
        dx[idx] = Cvt<T>::Out(dxv);
      });
}

template <typename T, typename A>
struct StoreBasis {
  A* E;
  __device__ __forceinline__ void operator()(int i, A e) { E[i] = e; }
};

template <typename T, typename A>
__global__ void Kaf2dForwardKernel(const T* __restrict__ x,
                                   const T* __restrict__ alpha,
                                   T* __restrict__ y, int64 size, int64 H,
                                   int64 inner, Params<A> p) {
  const int D = p.D;
  const int64 D2 = int64(D) * D;
  for (int64 idx = int64(blockIdx.x) * blockDim.x + threadIdx.x; idx < size;
       idx += int64(gridDim.x) * blockDim.x) {
    const int64 i = idx % inner;
    const int64 oh = idx / inner;  // o * H + h
    const int64 h = oh % H;
    const int64 o = oh / H;
    const int64 at1 = (o * 2 * H + h) * inner + i;
    const A x1 = Cvt<T>::In(x[at1]);
    const A x2 = Cvt<T>::In(x[at1 + H * inner]);
    const T* a = alpha + h * D2;
    A acc = A(0);
    if (D <= kMaxGrid2d) {
      A E1[kMaxGrid2d], E2[kMaxGrid2d];
      StoreBasis<T, A> s1{E1}, s2{E2};
      GaussWalk(p, x1, s1);
      GaussWalk(p, x2, s2);
      for (int b = 0; b < D; ++b) {
        A q = A(0);
        for (int k = 0; k < D; ++k) q += Cvt<T>::In(a[b * D + k]) * E1[k];
        acc += q * E2[b];
      }
    } else {
      const A xc1 = p.Clamp(x1);
      const A xc2 = p.Clamp(x2);
      for (int b = 0; b < D; ++b) {
        const A t2 = xc2 - p.Centre(b);
        const A e2 = Exp(-p.gamma * t2 * t2);
        for (int k = 0; k < D; ++k) {
          const A t1 = xc1 - p.Centre(k);
          acc += Cvt<T>::In(a[b * D + k]) * Exp(-p.gamma * t1 * t1) * e2;
        }
      }
    }
    y[idx] = Cvt<T>::Out(acc);
  }
}

// One position of 2D-KAF's backward: s1 and s2, the sums over the grid of
// alpha * basis * (xc1 - d_k) and * (xc2 - d_b), and the dalpha terms
// g * basis added to acc_row. The basis comes from the walk (D <=
// kMaxGrid2d, kept in local arrays) or is evaluated directly.
template <typename T, typename A>
__device__ __forceinline__ void Kaf2dBackwardSums(const Params<A>& p,
                                                  const T* a, A x1, A x2,
                                                  A xc1, A xc2, A g,
                                                  A* acc_row, A* sum1,
                                                  A* sum2) {
  const int D = p.D;
  A s1 = A(0), s2 = A(0);
  if (D <= kMaxGrid2d) {
    A E1[kMaxGrid2d], E2[kMaxGrid2d];
    StoreBasis<T, A> b1{E1}, b2{E2};
    GaussWalk(p, x1, b1);
    GaussWalk(p, x2, b2);
    for (int b = 0; b < D; ++b) {
      const A e2 = E2[b];
      const A t2 = xc2 - p.Centre(b);
      for (int k = 0; k < D; ++k) {
        const A e = E1[k] * e2;
        const A w_al = Cvt<T>::In(a[b * D + k]) * e;
        s1 += w_al * (xc1 - p.Centre(k));
        s2 += w_al * t2;
        atomicAdd(acc_row + b * D + k, g * e);
      }
    }
  } else {
    for (int b = 0; b < D; ++b) {
      const A t2 = xc2 - p.Centre(b);
      const A e2 = Exp(-p.gamma * t2 * t2);
      for (int k = 0; k < D; ++k) {
        const A t1 = xc1 - p.Centre(k);
        const A e = Exp(-p.gamma * t1 * t1) * e2;
        const A w_al = Cvt<T>::In(a[b * D + k]) * e;
        s1 += w_al * t1;
        s2 += w_al * t2;
        atomicAdd(acc_row + b * D + k, g * e);
      }
    }
  }
  *sum1 = s1;
  *sum2 = s2;
}

template <typename T, typename A, bool kShared>
__global__ void Kaf2dBackwardKernel(const T* __restrict__ dy,
                                    const T* __restrict__ x,
                                    const T* __restrict__ alpha,
                                    T* __restrict__ dx,
                                    A* __restrict__ dalpha, int64 outer,
                                    int64 H, int64 inner, int tile,
                                    Params<A> p) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int D2 = p.D * p.D;
  ForEachTileItem<kShared>(
      H, tile, outer * inner, D2, reinterpret_cast<A*>(shared_raw), dalpha,
      [&](int64 position, int64 h, A* acc_row) {
        const int64 o = position / inner;
        const int64 i = position % inner;
        const int64 at_y = (o * H + h) * inner + i;
        const int64 at1 = (o * 2 * H + h) * inner + i;
        const int64 at2 = at1 + H * inner;
        const A x1 = Cvt<T>::In(x[at1]);
        const A x2 = Cvt<T>::In(x[at2]);
        const A g = Cvt<T>::In(dy[at_y]);
        A s1, s2;
        Kaf2dBackwardSums<T>(p, alpha + h * D2, x1, x2, p.Clamp(x1),
                             p.Clamp(x2), g, acc_row, &s1, &s2);
        dx[at1] = Cvt<T>::Out(((s1 * -p.gamma) * A(2)) * g);
        dx[at2] = Cvt<T>::Out(((s2 * -p.gamma) * A(2)) * g);
      });
}

// Backward launch geometry: x = channel tiles, y = position stripes.
dim3 BackwardGrid(int64 rows, int tile, int64 positions) {
  const int64 tiles = (rows + tile - 1) / tile;
  int64 stripes = (positions * tile + kThreads - 1) / kThreads;
  int64 cap = 2048 / (tiles > 0 ? tiles : 1);
  if (cap < 1) cap = 1;
  if (stripes > cap) stripes = cap;
  if (stripes > 65535) stripes = 65535;
  if (stripes < 1) stripes = 1;
  return dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(stripes));
}

// Channels per block so that tile * K accumulators fit in shared memory;
// 0 if not even one channel's fit (then the kernel uses global atomics).
template <typename A>
int SharedTile(int64 K) {
  const int64 fit = kSharedBytes / (K * int64(sizeof(A)));
  return static_cast<int>(fit < kMaxTile ? fit : kMaxTile);
}

// The backward pass shared by KAF and 2D-KAF: clears the rows * K
// accumulators, calls launch(kShared, grid, tile, shared_bytes, stream)
// (kShared a std::integral_constant<bool>: the tile's accumulators fit in
// shared memory) and converts the accumulators to dalpha.
template <typename T, typename A, typename Launch>
const char* BackwardPass(const GpuDevice& device, const ChannelLayout& L,
                         int64 rows, int64 K, A* scratch, T* dalpha,
                         const Launch& launch) {
  static_assert(std::is_same<typename Cvt<T>::A, A>::value,
                "accumulator type mismatch");
  const int64 n = rows * K;
  cudaStream_t stream = cuda::StreamOf(device);
  if (n > 0) cudaMemsetAsync(scratch, 0, n * sizeof(A), stream);
  if (L.size() > 0) {
    const int shared_tile = SharedTile<A>(K);
    const int tile = shared_tile > 0 ? shared_tile : kMaxTile;
    const dim3 grid = BackwardGrid(rows, tile, L.outer * L.inner);
    if (shared_tile > 0) {
      launch(std::true_type(), grid, tile, tile * K * sizeof(A), stream);
    } else {
      launch(std::false_type(), grid, tile, size_t{0}, stream);
    }
    const char* error = LastError();
    if (error != nullptr) return error;
  }
  return cuda::Convert(stream, scratch, dalpha, n);
}

}  // namespace

template <typename T>
const char* functor::KafForward<GpuDevice, T>::operator()(
    const GpuDevice& device, const KafConfig& config, const T* x,
    const T* alpha, T* y) const {
  using A = typename Cvt<T>::A;
  const ChannelLayout& L = config.layout;
  return cuda::LaunchGridStride(device, L.size(), KafForwardKernel<T, A>, x,
                                alpha, y, L.size(), L.channels, L.inner,
                                config.kernel, MakeParams<A>(config));
}

template <typename T>
int64 functor::KafBackward<GpuDevice, T>::ScratchSize(
    const KafConfig& config) {
  return config.layout.channels * config.num_centres;
}

template <typename T>
const char* functor::KafBackward<GpuDevice, T>::operator()(
    const GpuDevice& device, const KafConfig& config, const T* dy, const T* x,
    const T* alpha, T* dx, T* dalpha, Acc* scratch) const {
  const ChannelLayout& L = config.layout;
  const Params<Acc> p = MakeParams<Acc>(config);
  return BackwardPass(
      device, L, L.channels, config.num_centres, scratch, dalpha,
      [&](auto shared, dim3 grid, int tile, size_t bytes, cudaStream_t s) {
        KafBackwardKernel<T, Acc, decltype(shared)::value>
            <<<grid, kThreads, bytes, s>>>(dy, x, alpha, dx, scratch, L.outer,
                                           L.channels, L.inner, tile,
                                           config.kernel, p);
      });
}

template <typename T>
const char* functor::Kaf2dForward<GpuDevice, T>::operator()(
    const GpuDevice& device, const KafConfig& config, const T* x,
    const T* alpha, T* y) const {
  using A = typename Cvt<T>::A;
  const ChannelLayout& L = config.layout;
  const int64 H = L.channels / 2;
  const int64 size = L.outer * H * L.inner;
  return cuda::LaunchGridStride(device, size, Kaf2dForwardKernel<T, A>, x,
                                alpha, y, size, H, L.inner,
                                MakeParams<A>(config));
}

template <typename T>
int64 functor::Kaf2dBackward<GpuDevice, T>::ScratchSize(
    const KafConfig& config) {
  return config.layout.channels / 2 * config.num_centres * config.num_centres;
}

template <typename T>
const char* functor::Kaf2dBackward<GpuDevice, T>::operator()(
    const GpuDevice& device, const KafConfig& config, const T* dy, const T* x,
    const T* alpha, T* dx, T* dalpha, Acc* scratch) const {
  const ChannelLayout& L = config.layout;
  const int64 H = L.channels / 2;
  const Params<Acc> p = MakeParams<Acc>(config);
  return BackwardPass(
      device, L, H, config.num_centres * config.num_centres, scratch, dalpha,
      [&](auto shared, dim3 grid, int tile, size_t bytes, cudaStream_t s) {
        Kaf2dBackwardKernel<T, Acc, decltype(shared)::value>
            <<<grid, kThreads, bytes, s>>>(dy, x, alpha, dx, scratch, L.outer,
                                           H, L.inner, tile, p);
      });
}

#define TFKAF_INSTANTIATE(T) \
  TFKAF_INSTANTIATE_FUNCTORS(KafForward, KafBackward, GpuDevice, T) \
  TFKAF_INSTANTIATE_FUNCTORS(Kaf2dForward, Kaf2dBackward, GpuDevice, T)

TFKAF_FOR_GPU_TYPES(TFKAF_INSTANTIATE)
#undef TFKAF_INSTANTIATE

}  // namespace tfkaf
