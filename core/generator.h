#pragma once
// Seedable random-number generators, one default per device. A generator is a (seed, offset) pair: each
// random fill of n elements uses Philox counters [offset, offset + n) and then advances offset by n.
#include <cstdint>
#include <mutex>
#include <utility>

#include <hopgrad/core/device.h>

namespace hg {

class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ull) : seed_(seed) {}
  void manual_seed(uint64_t seed) {
    std::lock_guard lock(mutex_);
    seed_ = seed;
    offset_ = 0;
  }
  // Read under the lock too: another thread may be drawing (reserve) or reseeding.
  uint64_t seed() const {
    std::lock_guard lock(mutex_);
    return seed_;
  }
  uint64_t offset() const {
    std::lock_guard lock(mutex_);
    return offset_;
  }
  /// (seed, offset) read together: a pair that existed at one moment (for checkpoints).
  std::pair<uint64_t, uint64_t> state() const {
    std::lock_guard lock(mutex_);
    return {seed_, offset_};
  }
  /// Reserves `n` counters; returns the (seed, first counter) to use.
  std::pair<uint64_t, uint64_t> reserve(uint64_t n) {
    std::lock_guard lock(mutex_);
    uint64_t start = offset_;
    offset_ += n;
    return {seed_, start};
  }
  void set_state(uint64_t seed, uint64_t offset) {
    std::lock_guard lock(mutex_);
    seed_ = seed;
    offset_ = offset;
  }

 private:
  mutable std::mutex mutex_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

/// How many CUDA devices have a default generator (indices 0 to kMaxCudaGenerators − 1).
inline constexpr int kMaxCudaGenerators = 16;
/// The default generator of a device.
Generator& default_generator(Device device = kCPU);
/// Seeds the default generators of every device (as torch.manual_seed).
void manual_seed(uint64_t seed);

}  // namespace hg
