// The value types of the CPU functors (they compute and accumulate in
// AccumulatorOf, common.h). TensorFlow-free, so that the CPU kernel files
// need no TensorFlow header for them.

#ifndef TFKAF_CC_KERNELS_CPU_TYPES_H_
#define TFKAF_CC_KERNELS_CPU_TYPES_H_

#include "cc/kernels/common.h"

// M(T) for every value type of the CPU functors (the includer provides
// Eigen/Core): explicit instantiations.
#define TFKAF_FOR_CPU_TYPES(M) \
  M(float)                     \
  M(double)                    \
  M(Eigen::half)               \
  M(Eigen::bfloat16)

#endif  // TFKAF_CC_KERNELS_CPU_TYPES_H_
