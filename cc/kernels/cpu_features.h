// The instruction-set paths of the vectorised CPU kernels (KAF, 2D-KAF and
// the linear spline) and the one decision of which of them runs.
//
// TensorFlow's wheel, and so the plugin, targets baseline x86-64. The
// kernel sources are compiled once per path, each copy in its own namespace
// and for its own target (cpu_paths.h); TFKAF_CPU_DISPATCH calls the copy of
// the selected path. A new path is one more enum value, one more block in
// cpu_paths.h, one more copy of each kernel source (one more inclusion in
// spline_cpu.cc, one more kaf_cpu_<path>.cc with its namespace in
// kaf_cpu_tiles.h and its file in tests/native_driver.py's SOURCES),
// one more case here and in cpu_features.cc.

#ifndef TFKAF_CC_KERNELS_CPU_FEATURES_H_
#define TFKAF_CC_KERNELS_CPU_FEATURES_H_

namespace tfkaf {

// In increasing order: each path needs everything the previous one needs.
enum class CpuPath {
  kBaseline = 0,  // x86-64 baseline (SSE2)
  kAvx2 = 1,      // AVX2 and FMA
  kAvx512 = 2,    // AVX-512F, AVX2 and FMA
};

// Whether this CPU can run `path`.
bool CpuSupports(CpuPath path);

// The path every CPU kernel runs, decided once per process: the best path
// the CPU supports, unless the environment variable TFKAF_CPU_PATH names
// another supported path ("baseline", "avx2" or "avx512"). An unknown
// name, or a path this CPU lacks, falls back to the best supported path
// (never an error: a forced path is a testing aid, and the kernels'
// results do not depend on it beyond rounding).
CpuPath SelectedCpuPath();

// "baseline", "avx2" or "avx512".
const char* CpuPathName(CpuPath path);

// The data caches of one core, in bytes (what the system reports, read
// once per process; 32 KB and 512 KB where it reports nothing): the
// kernels size their cache blocks from them.
struct CpuCaches {
  long l1_data;
  long l2;
};
const CpuCaches& CpuCacheSizes();

}  // namespace tfkaf

// Evaluates `call` (a function call, template arguments allowed) in the
// namespace of `path`'s copy of the kernels: tfkaf::baseline, tfkaf::avx2
// or tfkaf::avx512 (cpu_paths.h). An expression, so a call's value (or a
// constant of the path's copy) can be used.
#define TFKAF_CPU_DISPATCH(path, ...)                               \
  ((path) == ::tfkaf::CpuPath::kAvx512                              \
       ? avx512::__VA_ARGS__                                        \
       : (path) == ::tfkaf::CpuPath::kAvx2 ? avx2::__VA_ARGS__      \
                                           : baseline::__VA_ARGS__)

#endif  // TFKAF_CC_KERNELS_CPU_FEATURES_H_
