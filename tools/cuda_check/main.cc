// cuda_check: standalone check of the tfkaf CUDA kernels without TensorFlow
// (tools/cuda_check/README.md).
//
//   cuda_check selftest [--full]          CPU only: reference and tolerances
//   cuda_check devices                    exit 0 if a CUDA device is usable
//   cuda_check check [--small] [--filter S] [--max-print N]
//   cuda_check determinism [--small] [--runs N]
//   cuda_check bench [--shapes 4096x1024,65536x4096] [--iters N]
//   cuda_check list [--small]             the correctness cases
//
// Exit status: 0 passed, 1 mismatches or failures, 2 CUDA error, 3 usage,
// 4 no CUDA device.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tools/cuda_check/check.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: cuda_check selftest [--full]\n"
               "       cuda_check devices\n"
               "       cuda_check check [--small] [--filter S] [--max-print N]\n"
               "       cuda_check determinism [--small] [--runs N]\n"
               "       cuda_check bench [--shapes NxC,...] [--iters N]\n"
               "       cuda_check list [--small]\n");
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argv[1];
  bool small = false, full = false;
  std::string filter, shapes = "4096x1024,65536x4096";
  int max_print = 8, runs = 5, iters = 20;
  for (int j = 2; j < argc; ++j) {
    const std::string a = argv[j];
    auto value = [&]() -> const char* {
      if (j + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(Usage());
      }
      return argv[++j];
    };
    if (a == "--small") {
      small = true;
    } else if (a == "--full") {
      full = true;
    } else if (a == "--filter") {
      filter = value();
    } else if (a == "--max-print") {
      max_print = std::atoi(value());
    } else if (a == "--runs") {
      runs = std::max(2, std::atoi(value()));
    } else if (a == "--shapes") {
      shapes = value();
    } else if (a == "--iters") {
      iters = std::max(1, std::atoi(value()));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return Usage();
    }
  }
  if (mode == "selftest") return cuda_check::RunSelfTest(full);
  if (mode == "devices") return cuda_check::RunDevices();
  if (mode == "check") return cuda_check::RunGpuCheck(small, filter, max_print);
  if (mode == "determinism") return cuda_check::RunDeterminism(small, runs);
  if (mode == "bench") return cuda_check::RunBench(shapes, iters);
  if (mode == "list") {
    for (const auto& c : cuda_check::MakeCases(small)) {
      std::printf("%s\n", c.name.c_str());
    }
    return 0;
  }
  return Usage();
}
