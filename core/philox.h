#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a counter-based
// generator. Element i of a random fill uses counter (offset + i) under key `seed`, so the CPU and CUDA
// backends produce identical numbers for the same seed, whatever the thread or block layout.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define HG_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HG_HOST_DEVICE inline
#endif

namespace hg::philox {

struct Uint4 {
  uint32_t x, y, z, w;
};

HG_HOST_DEVICE uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

/// Ten rounds of Philox4x32 on counter (counter_lo, counter_hi, 0, 0) with key `seed`.
HG_HOST_DEVICE Uint4 philox4x32(uint64_t seed, uint64_t counter) {
  Uint4 c{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c.x, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c.z, &hi1);
    c = Uint4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

/// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
HG_HOST_DEVICE float uniform_float(const Uint4& r) { return static_cast<float>(r.x >> 8) * (1.0f / 16777216.0f); }
HG_HOST_DEVICE double uniform_double(const Uint4& r) {
  uint64_t bits = (static_cast<uint64_t>(r.x) << 21) ^ (static_cast<uint64_t>(r.y) >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// Standard normal by Box–Muller from the counter's first two words: z = sqrt(-2 ln u1) cos(2π u2), u1 ∈ (0, 1].
HG_HOST_DEVICE double normal_double(const Uint4& r) {
  double u1 = (static_cast<double>(r.x) + 1.0) * (1.0 / 4294967296.0);
  double u2 = static_cast<double>(r.y) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// Integer uniform in [0, range) from 64 random bits (the modulo bias is below 2^-32 for ranges < 2^32).
HG_HOST_DEVICE uint64_t uniform_index(const Uint4& r, uint64_t range) {
  uint64_t bits = (static_cast<uint64_t>(r.z) << 32) | r.w;
  return bits % range;
}

}  // namespace hg::philox
