// What kaf_cpu.cc and the per-path copies of the KAF and 2D-KAF tile
// kernels share: the per-call constants, the tile, and the entry points of
// each copy.
//
// kaf_cpu_simd.h is compiled once per CPU path (cpu_paths.h), each copy in a
// file of its own (kaf_cpu_baseline.cc, kaf_cpu_avx2.cc, kaf_cpu_avx512.cc)
// so that the copies, ~20 s of compiling each, build in parallel.
// Each copy gives kaf_cpu.cc a table of its entry points (KafTiles), for the
// accumulation types (float and double); kaf_cpu.cc calls the selected
// path's (TFKAF_CPU_DISPATCH, cpu_features.h).

#ifndef TFKAF_CC_KERNELS_KAF_CPU_TILES_H_
#define TFKAF_CC_KERNELS_KAF_CPU_TILES_H_

#include <cstdint>
#include <cstring>

#include "cc/kernels/common.h"
#include "cc/kernels/cpu_tile.h"
#include "cc/kernels/kaf_kernels.h"

namespace tfkaf {

template <typename A>
struct WalkRun;

// Per-call constants, in the accumulation type A (float or double).
template <typename A>
struct KafCpuParams {
  int64 D = 0;  // centres (1D) or grid side (2D)
  A boundary = 0, gamma = 0;
  A two_gs = 0;  // 2 gamma step
  A gb2 = 0;     // gamma boundary^2
  A lo = 0, hi = 0;  // clamp range of x for the Gaussian
  bool walk = false;  // Gaussian recurrence (walk mode) or direct exps
  // 2D forward: one walk run a side from 1, C_a C_b folded into the table
  // and f_0 of both sides applied to the sum (kaf_cpu_simd.h, Bases2d).
  bool unit = false;
  // One-run walk mode (kaf_cpu_simd.h, CentredBatch): the |x| up to which
  // a batch may walk from the middle centre m = D / 2 (negative: never),
  // and 2 gamma d_m.
  A centred_limit = -1, two_g_dm = 0;
  const A* d = nullptr;      // [D] centres, linspace(-boundary, boundary, D)
  const A* scale = nullptr;  // [D] C_j of walk mode (kaf_cpu_simd.h)
  // Walk mode: the centres (2D: of the grid side) as runs of consecutive
  // centres, each walked as a KAF of its own (kaf_cpu_simd.h).
  int64 num_runs = 0;
  const WalkRun<A>* runs = nullptr;
};

// Centres first .. first + params.D - 1 of a walk: a KAF of their own,
// symmetric about 0 (params.boundary: half their span), on x - shift.
template <typename A>
struct WalkRun {
  KafCpuParams<A> params;
  int64 first = 0;
  A shift = 0;
};

// Entries per centre of the 1D coefficient tables (kaf_cpu_simd.h).
constexpr int64 kTab1d = 3;

// Most vectors in one batch of a tile loop, on any path (kaf_cpu_simd.h).
constexpr int kMaxBatch = 8;

// The entry points of one path's copy of the tile kernels (kaf_cpu_simd.h
// documents them), by KafKernel and by kUniform (whether a vector's lanes
// are positions of one channel rather than channels).
template <typename A>
struct KafTiles {
  typedef void (*Forward)(const KafCpuParams<A>& p, const Tile& t,
                          const A* x, A* y, const A* tab, A* scratch);
  typedef void (*Backward)(const KafCpuParams<A>& p, const Tile& t,
                           const A* dy, const A* x, A* dx, const A* tab,
                           A* dA, A* scratch);
  typedef void (*Forward2)(const KafCpuParams<A>& p, const Tile& t,
                           const A* x1, const A* x2, A* y, int64 y_stride,
                           const A* tab, A* scratch);
  typedef void (*Backward2)(const KafCpuParams<A>& p, const Tile& t,
                            const A* dy, int64 dy_stride, const A* x1,
                            const A* x2, A* dx1, A* dx2, const A* tab, A* dA,
                            A* scratch);
  static constexpr int kKernels = 3;  // KafKernel's values (KafTileIndex)

  int64 lanes;  // of the path's vectors: the channels of one table block
  Forward forward[kKernels][2];
  Backward backward[kKernels][2];
  Forward2 forward2[2];  // 2D-KAF (Gaussian)
  Backward2 backward2[2];
};

// The row of `kernel` in KafTiles' forward and backward tables (a switch,
// so that a new KafKernel gets -Wswitch's warning here).
constexpr int KafTileIndex(KafKernel kernel) {
  switch (kernel) {
    case KafKernel::kGaussian:
      return 0;
    case KafKernel::kRelu:
      return 1;
    case KafKernel::kSoftplus:
      return 2;
  }
  return 0;
}

// Each path's tiles, for A = float and double (kaf_cpu_<path>.cc).
namespace baseline {
template <typename A>
const KafTiles<A>& Tiles();
}  // namespace baseline
namespace avx2 {
template <typename A>
const KafTiles<A>& Tiles();
}  // namespace avx2
namespace avx512 {
template <typename A>
const KafTiles<A>& Tiles();
}  // namespace avx512

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_KAF_CPU_TILES_H_
