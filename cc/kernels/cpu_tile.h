// The tile of the CPU kernels' channels-last loops (KAF, 2D-KAF and the
// linear spline), and how far ahead those loops prefetch. TensorFlow-free.

#ifndef TFKAF_CC_KERNELS_CPU_TILE_H_
#define TFKAF_CC_KERNELS_CPU_TILE_H_

#include "cc/kernels/common.h"

namespace tfkaf {

// A tile: `rows` rows of `len` elements, consecutive rows `stride` apart.
struct Tile {
  int64 rows;
  int64 stride;
  int64 len;
};

// Rows ahead that the tile loops prefetch. A channels-last tile reads each
// row as a short piece (KAF: 1 KB; the spline: 256 bytes) 4 KB or more
// from the next, too short a stream for the hardware prefetchers, so that
// with cold caches (as in `tfkaf bench`, which runs the composite
// baselines between calls) the loads of each new batch of rows waited on
// memory: the KAF forward, 2 threads on avx512, took 3.7-3.9 ms without,
// 3.1 ms with 8 rows ahead and 3.3-3.5 ms with 16.
constexpr int kPrefetchRows = 8;

}  // namespace tfkaf

#endif  // TFKAF_CC_KERNELS_CPU_TILE_H_
