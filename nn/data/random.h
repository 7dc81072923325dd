#pragma once
// Seeded random numbers for data pipelines: shuffling, splits and the synthetic dataset generators.
//
//   hg::data::Random rng({seed, epoch});          // one stream per (seed, epoch)
//   std::vector<int64_t> order = rng.permutation(n);
//
// Why not hg::Generator: it reserves Philox counters for tensor fills, while data code draws scalars one at a
// time (a bag length, a position, a signal). Why not std's distributions: std::mt19937_64's output is fixed by
// the C++ standard, and so is std::seed_seq, but uniform_int_distribution, normal_distribution and
// std::shuffle are implementation-defined. Everything above the engine is written out here, so a seed gives
// the same data with libstdc++ and libc++ (normals up to the last bit of libm's log/cos).
#include <cstdint>
#include <initializer_list>
#include <random>
#include <utility>
#include <vector>

namespace hg::data {

class Random {
 public:
  /// The engine is std::mt19937_64 seeded through std::seed_seq with every value split into two 32-bit words,
  /// so (seed, epoch) or (seed, repetition, fold) pairs give unrelated streams.
  explicit Random(std::initializer_list<uint64_t> seeds);
  explicit Random(uint64_t seed) : Random({seed}) {}

  /// 64 random bits.
  uint64_t bits() { return engine_(); }
  /// Uniform integer in [0, n), n ≥ 1, unbiased (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n);
  /// Uniform integer in [low, high), low < high.
  int64_t integer(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(below(static_cast<uint64_t>(high - low)));
  }
  /// Uniform double in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// N(mean, std²) by Box–Muller (one draw per call: two uniforms, so the stream position is predictable).
  double normal(double mean = 0.0, double std = 1.0);
  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }

  /// Fisher–Yates shuffle, last element first (the order numpy and Python's random.shuffle use).
  template <typename T> void shuffle(std::vector<T>& values) {
    for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[below(i)]);
  }
  /// A uniformly random permutation of 0..n-1.
  std::vector<int64_t> permutation(int64_t n);
  /// k distinct integers from [0, n) in random order, as Python's random.sample(range(n), k).
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  std::mt19937_64 engine_;
};

}  // namespace hg::data
