// `cuda_check bench`: CUDA-event timings of the fused kernels, forward and
// backward, on float32 [N, C] channels-last inputs, next to a trivial
// elementwise relu of this driver's own on the same buffers, and the
// achieved memory bandwidth against a measured device-to-device copy.
//
// Bandwidth counts the bytes a kernel must move at least: forward reads x
// and writes y, backward reads dy and x and writes dx (alpha and dalpha are
// negligible); the copy counts its read and its write. Times are the mean
// over `iters` back-to-back launches after one warm-up launch.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "cc/kernels/common.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"
#include "tools/cuda_check/check.h"
#include "tools/cuda_check/gpu.h"

namespace cuda_check {
namespace {

constexpr int kThreads = 256;

int Blocks(int64 n) {
  return static_cast<int>(std::max<int64>(1, std::min<int64>((n + kThreads - 1) / kThreads, 65536)));
}

__device__ __forceinline__ float HashUniform(std::uint64_t i,
                                             std::uint32_t seed) {
  std::uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);
}

__global__ void InitUniform(float* p, int64 n, float lo, float hi,
                            std::uint32_t seed) {
  for (int64 j = int64(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += int64(gridDim.x) * blockDim.x) {
    p[j] = lo + (hi - lo) * HashUniform(std::uint64_t(j), seed);
  }
}

// The baseline: y = max(x, 0) and dx = x > 0 ? dy : 0, one thread per
// element in a grid-stride loop like the fused kernels.
__global__ void ReluForward(const float* __restrict__ x, float* __restrict__ y,
                            int64 n) {
  for (int64 j = int64(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += int64(gridDim.x) * blockDim.x) {
    const float v = x[j];
    y[j] = v > 0.0f ? v : 0.0f;
  }
}

__global__ void ReluBackward(const float* __restrict__ dy,
                             const float* __restrict__ x,
                             float* __restrict__ dx, int64 n) {
  for (int64 j = int64(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += int64(gridDim.x) * blockDim.x) {
    dx[j] = x[j] > 0.0f ? dy[j] : 0.0f;
  }
}

struct Timer {
  cudaEvent_t start, stop;
  Timer() {
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  // Mean milliseconds of fn() over `iters` launches on `stream`.
  template <typename F>
  double Time(cudaStream_t stream, int iters, F&& fn) {
    fn();  // warm-up
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaEventRecord(start, stream));
    for (int k = 0; k < iters; ++k) fn();
    CUDA_OK(cudaEventRecord(stop, stream));
    CUDA_OK(cudaEventSynchronize(stop));
    CUDA_OK(cudaGetLastError());
    float ms = 0.0f;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    return double(ms) / iters;
  }
};

void FunctorOk(const char* err, const char* what) {
  if (err != nullptr) {
    std::fprintf(stderr, "bench: %s returned \"%s\" (%s)\n", what, err,
                 g_context.c_str());
    std::exit(2);
  }
}

struct Row {
  std::string name;
  double fwd_ms = 0, bwd_ms = 0, fwd_bytes = 0, bwd_bytes = 0;
};

std::vector<std::pair<int64, int64>> ParseShapes(const std::string& s) {
  std::vector<std::pair<int64, int64>> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t x = item.find('x');
    if (x == std::string::npos) continue;
    out.emplace_back(std::atoll(item.substr(0, x).c_str()),
                     std::atoll(item.substr(x + 1).c_str()));
  }
  return out;
}

}  // namespace

int RunBench(const std::string& shapes_arg, int iters) {
  if (!SelectDevice()) return 4;
  const auto shapes = ParseShapes(shapes_arg);
  if (shapes.empty()) {
    std::fprintf(stderr, "bench: no shape in '%s' (expected NxC,...)\n",
                 shapes_arg.c_str());
    return 3;
  }
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  tfkaf::GpuDevice device;
  device.stream = stream;
  Timer timer;

  std::printf("bench: float32, channels-last [N, C]; KAF D=20 (boundary 3, "
              "default gamma), 2D-KAF D=10 (C = 2H), spline K=51 on [-4, 4]; "
              "inputs uniform in [-4, 4], dy in [-1, 1]\n");
  for (const auto& shape : shapes) {
    const int64 N = shape.first, C = shape.second, n = N * C;
    if (C % 2 != 0 || n <= 0) {
      std::fprintf(stderr, "bench: shape %lldx%lld: C must be even\n",
                   static_cast<long long>(N), static_cast<long long>(C));
      return 3;
    }
    const int it = std::max(3, int(std::min<int64>(
                                   iters, iters * (int64(1) << 22) / n)));
    g_context = "bench allocation " + std::to_string(N) + "x" +
                std::to_string(C);
    DevBuf x(n, 4, "x"), dy(n, 4, "dy"), y(n, 4, "y"), dx(n, 4, "dx");
    InitUniform<<<Blocks(n), kThreads, 0, stream>>>(x.as<float>(), n, -4.0f,
                                                    4.0f, 1u);
    InitUniform<<<Blocks(n), kThreads, 0, stream>>>(dy.as<float>(), n, -1.0f,
                                                    1.0f, 2u);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaStreamSynchronize(stream));

    // Device-to-device copy of one buffer.
    g_context = "bench copy";
    const double copy_ms = timer.Time(stream, it, [&] {
      CUDA_OK(cudaMemcpyAsync(y.ptr(), x.ptr(), size_t(n) * 4,
                              cudaMemcpyDeviceToDevice, stream));
    });
    const double copy_gbs = 2.0 * double(n) * 4 / (copy_ms * 1e6);

    std::vector<Row> rows;
    {
      g_context = "bench relu";
      Row r;
      r.name = "relu (baseline)";
      r.fwd_bytes = 8.0 * n;
      r.bwd_bytes = 12.0 * n;
      r.fwd_ms = timer.Time(stream, it, [&] {
        ReluForward<<<Blocks(n), kThreads, 0, stream>>>(x.as<float>(),
                                                        y.as<float>(), n);
      });
      r.bwd_ms = timer.Time(stream, it, [&] {
        ReluBackward<<<Blocks(n), kThreads, 0, stream>>>(
            dy.as<float>(), x.as<float>(), dx.as<float>(), n);
      });
      rows.push_back(r);
    }
    std::vector<float> host_alpha;
    auto random_alpha = [&](int64 count) {
      host_alpha.resize(count);
      std::uint64_t s = 7;
      for (float& v : host_alpha) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v = float(double(s >> 11) * 0x1.0p-53) * 2.0f - 1.0f;
      }
      return host_alpha.data();
    };
    for (KafKernel k :
         {KafKernel::kGaussian, KafKernel::kRelu, KafKernel::kSoftplus}) {
      const int64 D = 20;
      tfkaf::KafConfig cfg;
      cfg.layout.outer = N;
      cfg.layout.channels = C;
      cfg.layout.inner = 1;
      cfg.num_centres = D;
      cfg.boundary = 3.0;
      const double step = 6.0 / double(D - 1);
      cfg.gamma = double(float(1.0 / (8.0 * step * step)));
      cfg.kernel = k;
      DevBuf alpha(C * D, 4, "alpha"), dalpha(C * D, 4, "dalpha"),
          scratch(C * D, 4, "scratch");
      alpha.Upload(random_alpha(C * D));
      Row r;
      r.name = std::string("kaf ") +
               (k == KafKernel::kGaussian ? "gaussian"
                                          : k == KafKernel::kRelu ? "relu"
                                                                  : "softplus") +
               " D=20";
      g_context = "bench " + r.name;
      r.fwd_bytes = 8.0 * n;
      r.bwd_bytes = 12.0 * n;
      r.fwd_ms = timer.Time(stream, it, [&] {
        FunctorOk(tfkaf::functor::KafForward<tfkaf::GpuDevice, float>()(
                      device, cfg, x.as<float>(), alpha.as<float>(),
                      y.as<float>()),
                  "KafForward");
      });
      r.bwd_ms = timer.Time(stream, it, [&] {
        FunctorOk(tfkaf::functor::KafBackward<tfkaf::GpuDevice, float>()(
                      device, cfg, dy.as<float>(), x.as<float>(),
                      alpha.as<float>(), dx.as<float>(), dalpha.as<float>(),
                      scratch.as<float>()),
                  "KafBackward");
      });
      rows.push_back(r);
    }
    {
      const int64 D = 10, H = C / 2;
      tfkaf::KafConfig cfg;
      cfg.layout.outer = N;
      cfg.layout.channels = C;
      cfg.layout.inner = 1;
      cfg.num_centres = D;
      cfg.boundary = 3.0;
      const double step = 6.0 / double(D - 1);
      cfg.gamma = double(float(1.0 / (4.0 * step * step)));
      DevBuf alpha(H * D * D, 4, "alpha"), dalpha(H * D * D, 4, "dalpha"),
          scratch(H * D * D, 4, "scratch");
      alpha.Upload(random_alpha(H * D * D));
      Row r;
      r.name = "kaf2d D=10";
      g_context = "bench " + r.name;
      r.fwd_bytes = 4.0 * n + 2.0 * n;
      r.bwd_bytes = 2.0 * n + 4.0 * n + 4.0 * n;
      r.fwd_ms = timer.Time(stream, it, [&] {
        FunctorOk(tfkaf::functor::Kaf2dForward<tfkaf::GpuDevice, float>()(
                      device, cfg, x.as<float>(), alpha.as<float>(),
                      y.as<float>()),
                  "Kaf2dForward");
      });
      r.bwd_ms = timer.Time(stream, it, [&] {
        FunctorOk(tfkaf::functor::Kaf2dBackward<tfkaf::GpuDevice, float>()(
                      device, cfg, dy.as<float>(), x.as<float>(),
                      alpha.as<float>(), dx.as<float>(), dalpha.as<float>(),
                      scratch.as<float>()),
                  "Kaf2dBackward");
      });
      rows.push_back(r);
    }
    for (bool det : {false, true}) {
      const int64 K = 51;
      tfkaf::SplineParams p;
      p.layout.outer = N;
      p.layout.channels = C;
      p.layout.inner = 1;
      p.knots = K;
      p.x_min = -4.0;
      p.scale = double(K - 1) / 8.0;
      p.deterministic = det;
      DevBuf coef(C * K, 4, "coefficients"), dcoef(C * K, 4, "dcoefficients");
      coef.Upload(random_alpha(C * K));
      Row r;
      r.name = det ? "spline K=51 deterministic" : "spline K=51";
      g_context = "bench " + r.name;
      r.fwd_bytes = 8.0 * n;
      r.bwd_bytes = 12.0 * n;
      // The deterministic flag only changes the backward pass; its
      // per-(channel, knot) warps rescan x, so it runs fewer iterations.
      const int bwd_it = det ? std::max(1, it / 4) : it;
      r.fwd_ms = timer.Time(stream, it, [&] {
        FunctorOk(tfkaf::functor::SplineForward<tfkaf::GpuDevice, float>()(
                      device, p, x.as<float>(), coef.as<float>(),
                      y.as<float>()),
                  "SplineForward");
      });
      r.bwd_ms = timer.Time(stream, bwd_it, [&] {
        FunctorOk(tfkaf::functor::SplineBackward<tfkaf::GpuDevice, float>()(
                      device, p, dy.as<float>(), x.as<float>(),
                      coef.as<float>(), dx.as<float>(), dcoef.as<float>(),
                      dcoef.as<float>()),
                  "SplineBackward");
      });
      rows.push_back(r);
    }

    std::printf("\nshape [%lld, %lld] (%.1f MiB per buffer), %d iterations; "
                "device-to-device copy %.0f GB/s (read + write)\n",
                static_cast<long long>(N), static_cast<long long>(C),
                double(n) * 4 / (1 << 20), it, copy_gbs);
    std::printf("%-28s %9s %7s %6s %6s | %9s %7s %6s %6s | %10s %6s\n",
                "kernel", "fwd ms", "GB/s", "%copy", "x relu", "bwd ms",
                "GB/s", "%copy", "x relu", "fwd+bwd ms", "x relu");
    const Row& base = rows[0];
    for (const Row& r : rows) {
      const double fg = r.fwd_bytes / (r.fwd_ms * 1e6);
      const double bg = r.bwd_bytes / (r.bwd_ms * 1e6);
      std::printf("%-28s %9.4f %7.0f %5.0f%% %6.2f | %9.4f %7.0f %5.0f%% "
                  "%6.2f | %10.4f %6.2f\n",
                  r.name.c_str(), r.fwd_ms, fg, 100.0 * fg / copy_gbs,
                  r.fwd_ms / base.fwd_ms, r.bwd_ms, bg, 100.0 * bg / copy_gbs,
                  r.bwd_ms / base.bwd_ms, r.fwd_ms + r.bwd_ms,
                  (r.fwd_ms + r.bwd_ms) / (base.fwd_ms + base.bwd_ms));
    }
    std::fflush(stdout);
  }
  CUDA_OK(cudaStreamDestroy(stream));
  CUDA_OK(cudaDeviceReset());
  std::printf("\nbench: done\n");
  return 0;
}

}  // namespace cuda_check
