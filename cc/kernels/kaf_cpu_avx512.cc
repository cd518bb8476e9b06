// The avx512 copy of the KAF and 2D-KAF tile kernels (kaf_cpu_simd.h; one
// file per CPU path, kaf_cpu_tiles.h).

#include <immintrin.h>  // vrndscale and vscalef in Simd's exponential

#include "cc/kernels/kaf_cpu_tiles.h"

#define TFKAF_CPU_KERNELS "cc/kernels/kaf_cpu_simd.h"
#define TFKAF_CPU_PATH_AVX512
#include "cc/kernels/cpu_paths.h"
