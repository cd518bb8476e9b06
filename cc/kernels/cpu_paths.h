// Compiles one kernel source for one CPU path (cpu_features.h), in the
// path's own namespace and for its own target:
//
//   #define TFKAF_CPU_KERNELS "cc/kernels/spline_cpu_simd.h"
//   #define TFKAF_CPU_PATH_AVX2
//   #include "cc/kernels/cpu_paths.h"
//
// TFKAF_CPU_PATH_BASELINE gives tfkaf::baseline (the plugin's x86-64
// baseline), TFKAF_CPU_PATH_AVX2 tfkaf::avx2 (`#pragma GCC
// target("avx2,fma")`) and TFKAF_CPU_PATH_AVX512 tfkaf::avx512 (AVX-512F on
// top of AVX2+FMA), for TFKAF_CPU_DISPATCH to choose from at run time.
// TFKAF_CPU_KERNELS and the TFKAF_CPU_PATH_* macro are undefined again at
// the end, so a file includes this once per path (spline_cpu.cc: all three
// copies in one file), or each copy has a file of its own
// (kaf_cpu_<path>.cc: the KAF copies take ~20 s each to compile, g++ -O3,
// and separate files compile in parallel). Deliberately without an include
// guard.
//
// Inside the kernel source TFKAF_SIMD_NS names the namespace,
// TFKAF_SIMD_AVX2 is 1 where AVX2+FMA can be used (the avx2 and avx512
// paths), TFKAF_SIMD_AVX512 is 1 on the avx512 path only, and
// TFKAF_SIMD_BYTES is the width of the path's vectors, one register (16 on
// the baseline path, 32 on avx2, 64 on avx512), and TFKAF_SIMD_ONE_REGISTER
// is 1 where one such vector fits one register (everywhere but the emulated
// avx512 build of tests/native, whose 64-byte vectors span two AVX2
// registers): code for some paths only (intrinsics such as gathers) goes
// under `#if`. Vectors wider than a register are not a free unroll: GCC 12
// lowers their comparisons and selects element by element (scalar compares
// and branches). With 32-byte vectors the baseline path ran 3-4x slower
// than with 16-byte ones (KAF D = 20 on 4096 x 1024, one thread: forward
// 119-129 -> 43 ms, backward 277-290 -> 67-70 ms).
// The compiler's own __AVX2__ / __AVX512F__ cannot be used: GCC's C++ front
// end reads the whole file before it applies `#pragma GCC target`, so they
// stay undefined there. The source must define everything it uses inside its
// namespace, always_inline or templates of its own (no standard-library
// template: one instantiation would be shared by the paths, and code
// compiled for AVX2 could then run on a CPU without it).

#ifndef TFKAF_CPU_KERNELS
#error "define TFKAF_CPU_KERNELS before including cpu_paths.h"
#endif
#if defined(TFKAF_CPU_PATH_BASELINE) + defined(TFKAF_CPU_PATH_AVX2) + \
        defined(TFKAF_CPU_PATH_AVX512) !=                             \
    1
#error "define one of TFKAF_CPU_PATH_{BASELINE,AVX2,AVX512}"
#endif

// 64-byte vector arguments in the avx512 copy: only inlined helpers take
// them, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#pragma GCC push_options
#if defined(TFKAF_CPU_PATH_BASELINE)
#define TFKAF_SIMD_NS baseline
#define TFKAF_SIMD_AVX2 0
#define TFKAF_SIMD_AVX512 0
#define TFKAF_SIMD_BYTES 16
#define TFKAF_SIMD_ONE_REGISTER 1
#elif defined(TFKAF_CPU_PATH_AVX2)
#pragma GCC target("avx2,fma")
#define TFKAF_SIMD_NS avx2
#define TFKAF_SIMD_AVX2 1
#define TFKAF_SIMD_AVX512 0
#define TFKAF_SIMD_BYTES 32
#define TFKAF_SIMD_ONE_REGISTER 1
#else
#ifdef TFKAF_AVX512_EMULATED
// tests/native only: the avx512 copy built for AVX2+FMA, its AVX-512
// intrinsics emulated (tests/native/avx512_emulation.h), so that its 16-lane
// logic runs on a CPU without AVX-512. Never set for the plugin.
#pragma GCC target("avx2,fma")
#define TFKAF_SIMD_ONE_REGISTER 0
#else
#pragma GCC target("avx512f,avx2,fma")
#define TFKAF_SIMD_ONE_REGISTER 1
#endif
#define TFKAF_SIMD_NS avx512
#define TFKAF_SIMD_AVX2 1
#define TFKAF_SIMD_AVX512 1
#define TFKAF_SIMD_BYTES 64
#endif

#include TFKAF_CPU_KERNELS  // NOLINT(build/include): once per path

#undef TFKAF_SIMD_ONE_REGISTER
#undef TFKAF_SIMD_BYTES
#undef TFKAF_SIMD_AVX512
#undef TFKAF_SIMD_AVX2
#undef TFKAF_SIMD_NS
#pragma GCC pop_options

#undef TFKAF_CPU_PATH_AVX512
#undef TFKAF_CPU_PATH_AVX2
#undef TFKAF_CPU_PATH_BASELINE
#undef TFKAF_CPU_KERNELS
