// The CPU functors' device (CpuDevice, common.h) inside an XLA:CPU custom
// call: parallel_for runs on the thread pool XLA hands the FFI handler (its
// size follows TensorFlow's intra-op setting). TensorFlow-free.

#ifndef TFKAF_CC_XLA_HOST_DEVICE_H_
#define TFKAF_CC_XLA_HOST_DEVICE_H_

#include "cc/kernels/common.h"
#include "xla/ffi/api/ffi.h"

namespace tfkaf {

// `pool` must outlive the device (the handler's call). The work [0, units)
// is cut into blocks by its cost (cycles per unit) as TensorFlow's
// ParallelFor does, at most a few per thread; the calling thread claims
// blocks too, so the call never waits on a block nobody runs. The functors'
// reductions partition their work by size only (ReductionChunks), so the
// results do not depend on how the blocks fall on threads.
CpuDevice HostDevice(xla::ffi::ThreadPool* pool);

}  // namespace tfkaf

#endif  // TFKAF_CC_XLA_HOST_DEVICE_H_
