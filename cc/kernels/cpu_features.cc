// CPU feature detection and TFKAF_CPU_PATH (cpu_features.h).

#include "cc/kernels/cpu_features.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace tfkaf {
namespace {

constexpr CpuPath kPaths[] = {CpuPath::kBaseline, CpuPath::kAvx2,
                              CpuPath::kAvx512};

// The path named by TFKAF_CPU_PATH, or `fallback` when it is unset, unknown
// or not supported by this CPU.
CpuPath PathFromEnvironment(CpuPath fallback) {
  const char* name = std::getenv("TFKAF_CPU_PATH");
  if (name == nullptr) return fallback;
  for (CpuPath path : kPaths) {
    if (std::strcmp(name, CpuPathName(path)) == 0 && CpuSupports(path)) {
      return path;
    }
  }
  return fallback;
}

}  // namespace

bool CpuSupports(CpuPath path) {
  switch (path) {
    case CpuPath::kBaseline:
      return true;
    case CpuPath::kAvx2: {
      static const bool avx2 = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
      }();
      return avx2;
    }
    case CpuPath::kAvx512: {
#ifdef TFKAF_AVX512_EMULATED  // tests/native: emulated on AVX2 (cpu_paths.h)
      return CpuSupports(CpuPath::kAvx2);
#else
      static const bool avx512 = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") &&
               CpuSupports(CpuPath::kAvx2);
      }();
      return avx512;
#endif
    }
  }
  return false;
}

CpuPath SelectedCpuPath() {
  static const CpuPath selected = [] {
    CpuPath best = CpuPath::kBaseline;
    for (CpuPath path : kPaths) {
      if (CpuSupports(path)) best = path;
    }
    return PathFromEnvironment(best);
  }();
  return selected;
}

const CpuCaches& CpuCacheSizes() {
  static const CpuCaches caches = [] {
    auto size = [](int name, long fallback) {
      const long bytes = sysconf(name);  // glibc: from CPUID
      return bytes > 0 ? bytes : fallback;
    };
    return CpuCaches{size(_SC_LEVEL1_DCACHE_SIZE, 32L << 10),
                     size(_SC_LEVEL2_CACHE_SIZE, 512L << 10)};
  }();
  return caches;
}

const char* CpuPathName(CpuPath path) {
  switch (path) {
    case CpuPath::kBaseline:
      return "baseline";
    case CpuPath::kAvx2:
      return "avx2";
    case CpuPath::kAvx512:
      return "avx512";
  }
  return "unknown";
}

}  // namespace tfkaf
