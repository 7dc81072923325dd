// Portable seeded random numbers (see random.h).
#include <hopgrad/nn/data/random.h>

#include <cmath>
#include <numbers>
#include <numeric>
#include <unordered_set>

#include <hopgrad/core/error.h>

namespace hg::data {

namespace {

std::seed_seq make_seed_seq(std::initializer_list<uint64_t> seeds) {
  std::vector<uint32_t> words;
  words.reserve(2 * seeds.size());
  for (uint64_t s : seeds) {
    words.push_back(static_cast<uint32_t>(s));
    words.push_back(static_cast<uint32_t>(s >> 32));
  }
  return std::seed_seq(words.begin(), words.end());
}

}  // namespace

Random::Random(std::initializer_list<uint64_t> seeds) {
  std::seed_seq seq = make_seed_seq(seeds);
  engine_.seed(seq);
}

uint64_t Random::below(uint64_t n) {
  HG_CHECK(n > 0, "Random::below: the range [0, n) is empty (n = 0)");
  // Lemire (2019): the high word of x·n is uniform on [0, n) once the low words below 2⁶⁴ mod n are rejected.
  unsigned __int128 product = static_cast<unsigned __int128>(engine_()) * n;
  auto low = static_cast<uint64_t>(product);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;  // 2⁶⁴ mod n
    while (low < threshold) {
      product = static_cast<unsigned __int128>(engine_()) * n;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

double Random::normal(double mean, double std) {
  // z = √(−2 ln u₁) cos(2π u₂), with u₁ in (0, 1] so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::vector<int64_t> Random::permutation(int64_t n) {
  HG_CHECK(n >= 0, "Random::permutation: n must be non-negative, got {}", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  shuffle(order);
  return order;
}

std::vector<int64_t> Random::sample(int64_t n, int64_t k) {
  HG_CHECK(k >= 0 && k <= n, "Random::sample: cannot draw {} distinct values from a population of {}", k, n);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(k));
  if (k * 4 <= n) {
    // Few draws from many: rejection keeps the cost O(k) instead of materialising the population.
    std::unordered_set<int64_t> taken;
    while (static_cast<int64_t>(out.size()) < k) {
      const int64_t v = integer(0, n);
      if (taken.insert(v).second) out.push_back(v);
    }
    return out;
  }
  // Otherwise a partial Fisher–Yates over the whole population.
  std::vector<int64_t> pool(static_cast<size_t>(n));
  std::iota(pool.begin(), pool.end(), int64_t{0});
  for (int64_t i = 0; i < k; ++i) {
    const int64_t j = integer(i, n);
    std::swap(pool[i], pool[j]);
    out.push_back(pool[i]);
  }
  return out;
}

}  // namespace hg::data
