#include "cc/xla/host_device.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

namespace tfkaf {
namespace {

// Below this many cycles a block is not worth a thread hand-off.
constexpr int64 kMinBlockCost = 50000;
// Blocks per thread: some slack for uneven threads, few enough to keep the
// per-block overhead small.
constexpr int64 kBlocksPerThread = 4;

// The blocks of one parallel_for. Tasks hold it by shared_ptr: a task the
// pool starts after every block is done finds nothing to claim and never
// touches the caller's (by then gone) function.
struct Blocks {
  int64 units = 0;
  int64 count = 0;
  std::function<void(int64, int64)> fn;
  std::atomic<int64> next{0};
  std::atomic<int64> done{0};
  std::mutex mutex;
  std::condition_variable finished;

  // Runs blocks until none is left to claim.
  void Drain() {
    for (int64 b = next++; b < count; b = next++) {
      fn(b * units / count, (b + 1) * units / count);
      if (++done == count) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [this] { return done.load() == count; });
  }
};

int64 BlockCount(int64 units, int64 cost_per_unit, int64 threads) {
  const int64 cost = std::max<int64>(cost_per_unit, 1);
  const int64 by_cost = std::max<int64>(units / std::max<int64>(
                                                    kMinBlockCost / cost, 1),
                                        1);
  return std::min({units, by_cost, threads * kBlocksPerThread});
}

}  // namespace

CpuDevice HostDevice(xla::ffi::ThreadPool* pool) {
  CpuDevice device;
  device.parallel_for = [pool](int64 units, int64 cost_per_unit,
                               const std::function<void(int64, int64)>& fn) {
    if (units <= 0) return;
    const int64 threads = std::max<int64>(pool->num_threads(), 1);
    const int64 count = BlockCount(units, cost_per_unit, threads);
    if (count <= 1 || threads <= 1) {
      fn(0, units);
      return;
    }
    auto blocks = std::make_shared<Blocks>();
    blocks->units = units;
    blocks->count = count;
    blocks->fn = fn;
    const int64 helpers = std::min(threads, count) - 1;
    for (int64 t = 0; t < helpers; ++t) {
      pool->Schedule([blocks] { blocks->Drain(); });
    }
    blocks->Drain();
    blocks->Wait();
  };
  return device;
}

}  // namespace tfkaf
