// Runs the CPU functors of KAF, 2D-KAF and the linear spline outside
// TensorFlow, for tests/test_avx512_emulated.py: built with the kernel
// sources and -DTFKAF_AVX512_EMULATED, it runs the avx512 path's code on a
// CPU without AVX-512 (tests/native/avx512_emulation.h).
//
// Prints the CPU path it runs (TFKAF_CPU_PATH picks it, as in the plugin),
// then reads one job per line from standard input:
//
//   op dtype outer channels inner n kernel a b name
//
// op: kaf, kaf2d or spline; dtype: float32 or float64; [outer, channels,
// inner] is x's layout around its channel axis; n: D (KAF), the grid side
// (2D-KAF) or K (spline); kernel: gaussian, relu or softplus (KAF; "-"
// otherwise); a, b: boundary and gamma (KAF, 2D-KAF) or x_min and scale
// (spline), as the ops derive them. It reads name.x, name.param and name.dy
// (raw little-endian arrays, C order) and writes name.y, name.dx and
// name.dparam, then prints "ok name", or "error name: message" for an
// error the functor returned.

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

// Runs one op's forward and backward functors on the job's files.
template <typename T, typename Config, typename Forward, typename Backward>
const char* Run(const Job& job, const Config& config, int64 y_size,
                int64 param_size) {
  const int64 x_size = job.layout.size();
  const std::vector<T> x = Read<T>(job.name + ".x", x_size);
  const std::vector<T> param = Read<T>(job.name + ".param", param_size);
  const std::vector<T> dy = Read<T>(job.name + ".dy", y_size);
  std::vector<T> y(y_size), dx(x_size), dparam(param_size);
  std::vector<typename Backward::Acc> scratch(
      Backward::ScratchSize(config) + 1);
  const tfkaf::CpuDevice device = Device();
  const char* error = Forward()(device, config, x.data(), param.data(),
                                y.data());
  if (error == nullptr) {
    error = Backward()(device, config, dy.data(), x.data(), param.data(),
                       dx.data(), dparam.data(), scratch.data());
  }
  if (error == nullptr) {
    Write(job.name + ".y", y);
    Write(job.name + ".dx", dx);
    Write(job.name + ".dparam", dparam);
  }
  return error;
}

template <typename T>
const char* RunJob(const Job& job) {
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
    const char* error = job.dtype == "float64" ? RunJob<double>(job)
                                               : RunJob<float>(job);
    if (error != nullptr) {
      std::printf("error %s: %s\n", job.name.c_str(), error);
    } else {
      std::printf("ok %s\n", job.name.c_str());
    }
  }
  return 0;
}
