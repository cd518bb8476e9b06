// Compiles one kernel source once per CPU path (cpu_features.h), each copy
// in its own namespace and for its own target:
//
//   #define TFKAF_CPU_KERNELS "cc/kernels/kaf_cpu_simd.h"
//   #include "cc/kernels/cpu_paths.h"
//
// gives tfkaf::baseline (the plugin's x86-64 baseline) and tfkaf::avx2
// (`#pragma GCC target("avx2,fma")`), for TFKAF_CPU_DISPATCH to choose from
// at run time. Deliberately without an include guard.
//
// Inside the kernel source TFKAF_SIMD_NS names the namespace and
// TFKAF_SIMD_AVX2 is 1 on the AVX2 path, 0 otherwise: code for one path
// only (intrinsics such as gathers) goes under `#if TFKAF_SIMD_AVX2`. The
// compiler's own __AVX2__ cannot be used: GCC's C++ front end reads the
// whole file before it applies `#pragma GCC target`, so __AVX2__ stays
// undefined there. The source must define everything it uses inside its
// namespace, always_inline or templates of its own (no standard-library
// template: one instantiation would be shared by the paths, and code
// compiled for AVX2 could then run on a CPU without it).

#ifndef TFKAF_CPU_KERNELS
#error "define TFKAF_CPU_KERNELS before including cpu_paths.h"
#endif

// 32-byte vector arguments in the baseline copy: only inlined helpers take
// them, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define TFKAF_SIMD_NS baseline
#define TFKAF_SIMD_AVX2 0
#include TFKAF_CPU_KERNELS  // NOLINT(build/include): once per path
#undef TFKAF_SIMD_AVX2
#undef TFKAF_SIMD_NS

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TFKAF_SIMD_NS avx2
#define TFKAF_SIMD_AVX2 1
#include TFKAF_CPU_KERNELS  // NOLINT(build/include)
#undef TFKAF_SIMD_AVX2
#undef TFKAF_SIMD_NS
#pragma GCC pop_options

#undef TFKAF_CPU_KERNELS
