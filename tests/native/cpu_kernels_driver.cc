// Runs the CPU functors of KAF, 2D-KAF and the linear spline outside
// TensorFlow (tests/native_driver.py builds and drives it). For
// tests/test_avx512_emulated.py, built with -DTFKAF_AVX512_EMULATED, it runs
// the avx512 path's code on a CPU without AVX-512
// (tests/native/avx512_emulation.h); for tools/avx512_check.py, built as it
// is, every path on a machine without TensorFlow.
//
// Prints the CPU path it runs (TFKAF_CPU_PATH picks it, as in the plugin),
// then reads one job per line from standard input:
//
//   op dtype outer channels inner n kernel a b name
//
// op: kaf, kaf2d, spline or relu (a plain elementwise loop, the benchmark's
// yardstick; n 0, no param); dtype: float32 or float64; [outer, channels,
// inner] is x's layout around its channel axis; n: D (KAF), the grid side
// (2D-KAF) or K (spline); kernel: gaussian, relu or softplus (KAF; "-"
// otherwise); a, b: boundary and gamma (KAF, 2D-KAF) or x_min and scale
// (spline), as the ops derive them. It reads name.x, name.param and name.dy
// (raw little-endian arrays, C order) and writes name.y, name.dx and
// name.dparam, then prints "ok name F B", F and B the forward's and the
// backward's best time in milliseconds over TFKAF_DRIVER_REPS calls (1 by
// default; one thread), or "error name: message" for an error the functor
// returned.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cc/kernels/cpu_features.h"
#include "cc/kernels/kaf_kernels.h"
#include "cc/kernels/spline_kernels.h"

namespace {

using tfkaf::int64;

struct Job {
  std::string op, dtype, kernel, name;
  tfkaf::ChannelLayout layout;
  int64 n = 0;
  double a = 0, b = 0;
};

template <typename T>
std::vector<T> Read(const std::string& path, int64 count) {
  std::vector<T> out(count);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr ||
      std::fread(out.data(), sizeof(T), count, f) != size_t(count)) {
    std::fprintf(stderr, "cannot read %lld values from %s\n",
                 static_cast<long long>(count), path.c_str());
    std::exit(2);
  }
  std::fclose(f);
  return out;
}

template <typename T>
void Write(const std::string& path, const std::vector<T>& values) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(values.data(), sizeof(T), values.size(),
                                  f) != values.size()) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(2);
  }
  std::fclose(f);
}

// The work in three uneven pieces, one after the other: the functors must
// not depend on how TensorFlow's pool cuts it.
tfkaf::CpuDevice Device() {
  tfkaf::CpuDevice device;
  device.parallel_for = [](int64 units, int64,
                           const std::function<void(int64, int64)>& fn) {
    const int64 cuts[] = {0, units / 5, units / 2, units};
    for (int p = 0; p < 3; ++p) {
      if (cuts[p] < cuts[p + 1]) fn(cuts[p], cuts[p + 1]);
    }
  };
  return device;
}

// The best time of `reps` calls of fn (returning a functor's error), in
// milliseconds; stops at the first error.
template <typename Fn>
double BestMs(int reps, const char** error, Fn&& fn) {
  double best = 0;
  for (int r = 0; r < reps && *error == nullptr; ++r) {
    const auto start = std::chrono::steady_clock::now();
    *error = fn();
    const std::chrono::duration<double, std::milli> took =
        std::chrono::steady_clock::now() - start;
    if (r == 0 || took.count() < best) best = took.count();
  }
  return best;
}

int Reps() {
  const char* reps = std::getenv("TFKAF_DRIVER_REPS");
  return reps == nullptr ? 1 : std::max(1, std::atoi(reps));
}

struct Result {
  const char* error = nullptr;
  double forward_ms = 0, backward_ms = 0;
};

// Runs one op's forward and backward functors on the job's files.
template <typename T, typename Config, typename Forward, typename Backward>
Result Run(const Job& job, const Config& config, int64 y_size,
           int64 param_size) {
  const int64 x_size = job.layout.size();
  const std::vector<T> x = Read<T>(job.name + ".x", x_size);
  const std::vector<T> param = Read<T>(job.name + ".param", param_size);
  const std::vector<T> dy = Read<T>(job.name + ".dy", y_size);
  std::vector<T> y(y_size), dx(x_size), dparam(param_size);
  std::vector<typename Backward::Acc> scratch(
      Backward::ScratchSize(config) + 1);
  const tfkaf::CpuDevice device = Device();
  Result out;
  out.forward_ms = BestMs(Reps(), &out.error, [&] {
    return Forward()(device, config, x.data(), param.data(), y.data());
  });
  out.backward_ms = BestMs(Reps(), &out.error, [&] {
    return Backward()(device, config, dy.data(), x.data(), param.data(),
                      dx.data(), dparam.data(), scratch.data());
  });
  if (out.error == nullptr) {
    Write(job.name + ".y", y);
    Write(job.name + ".dx", dx);
    Write(job.name + ".dparam", dparam);
  }
  return out;
}

// relu with the functors' signatures: y = max(x, 0), dx = dy where x > 0,
// else 0. A yardstick like TensorFlow's relu, which is vectorized and
// branch-free: GCC's -O2 cost model leaves these loops scalar (a branch per
// element, mispredicted half the time on random signs, made it 5x slower),
// hence the dynamic model, and dy is loaded unconditionally.
#define TFKAF_VECTORIZE __attribute__((optimize("vect-cost-model=dynamic")))

template <typename T>
struct ReluForward {
  TFKAF_VECTORIZE const char* operator()(const tfkaf::CpuDevice&,
                                         const tfkaf::KafConfig& config,
                                         const T* x, const T*, T* y) const {
    for (int64 i = 0, n = config.layout.size(); i < n; ++i) {
      y[i] = std::max(x[i], T(0));
    }
    return nullptr;
  }
};

template <typename T>
struct ReluBackward {
  typedef T Acc;
  static int64 ScratchSize(const tfkaf::KafConfig&) { return 0; }
  TFKAF_VECTORIZE const char* operator()(const tfkaf::CpuDevice&,
                                         const tfkaf::KafConfig& config,
                                         const T* dy, const T* x, const T*,
                                         T* dx, T*, Acc*) const {
    for (int64 i = 0, n = config.layout.size(); i < n; ++i) {
      const T g = dy[i];
      dx[i] = x[i] > T(0) ? g : T(0);
    }
    return nullptr;
  }
};

template <typename T>
Result RunJob(const Job& job) {
  namespace f = tfkaf::functor;
  const int64 channels = job.layout.channels;
  const int64 positions = job.layout.outer * job.layout.inner;
  if (job.op == "spline") {
    tfkaf::SplineParams params;
    params.layout = job.layout;
    params.knots = job.n;
    params.x_min = job.a;
    params.scale = job.b;
    return Run<T, tfkaf::SplineParams, f::SplineForward<tfkaf::CpuDevice, T>,
               f::SplineBackward<tfkaf::CpuDevice, T>>(
        job, params, job.layout.size(), channels * job.n);
  }
  tfkaf::KafConfig config;
  config.layout = job.layout;
  config.num_centres = job.n;
  config.boundary = job.a;
  config.gamma = job.b;
  config.kernel = job.kernel == "relu"       ? tfkaf::KafKernel::kRelu
                  : job.kernel == "softplus" ? tfkaf::KafKernel::kSoftplus
                                             : tfkaf::KafKernel::kGaussian;
  if (job.op == "relu") {
    return Run<T, tfkaf::KafConfig, ReluForward<T>, ReluBackward<T>>(
        job, config, job.layout.size(), 0);
  }
  if (job.op == "kaf2d") {
    return Run<T, tfkaf::KafConfig, f::Kaf2dForward<tfkaf::CpuDevice, T>,
               f::Kaf2dBackward<tfkaf::CpuDevice, T>>(
        job, config, positions * (channels / 2),
        (channels / 2) * job.n * job.n);
  }
  return Run<T, tfkaf::KafConfig, f::KafForward<tfkaf::CpuDevice, T>,
             f::KafBackward<tfkaf::CpuDevice, T>>(
      job, config, job.layout.size(), channels * job.n);
}

}  // namespace

int main() {
  std::printf("path %s\n", tfkaf::CpuPathName(tfkaf::SelectedCpuPath()));
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    std::istringstream in(line);
    Job job;
    in >> job.op >> job.dtype >> job.layout.outer >> job.layout.channels >>
        job.layout.inner >> job.n >> job.kernel >> job.a >> job.b >> job.name;
    if (!in) {
      std::fprintf(stderr, "bad job line: %s\n", line.c_str());
      return 2;
    }
    const Result result = job.dtype == "float64" ? RunJob<double>(job)
                                                 : RunJob<float>(job);
    if (result.error != nullptr) {
      std::printf("error %s: %s\n", job.name.c_str(), result.error);
    } else {
      std::printf("ok %s %.6f %.6f\n", job.name.c_str(), result.forward_ms,
                  result.backward_ms);
    }
    std::fflush(stdout);
  }
  return 0;
}
