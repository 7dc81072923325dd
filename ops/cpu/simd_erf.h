#pragma once
// erf for float32 `omp simd` loops (GELU forward and backward, hg::erf): polynomials and an exp, no branch, no
// table and no call, so GCC vectorises it inline instead of calling libmvec's erff. Internal to ops/cpu.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace hg::cpu {

namespace detail {

// e^q = e^r · 2^n with q = n·ln2 + r, |r| ≤ ln2/2: returns e^r = 1 + r + r²·P(r) (P a degree-4 minimax fit,
// relative error 3.3e-9) and sets `shifted` to 1.5·2^23 + n, whose low bits hold n in two's complement.
[[gnu::always_inline]] inline float exp_reduced(float q, float& shifted) {
  constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-6f;
  constexpr float kRoundShift = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer held in the low bits
  shifted = std::fma(q, kLog2e, kRoundShift);
  const float n = shifted - kRoundShift;
  const float r = std::fma(n, -kLn2Lo, std::fma(n, -kLn2Hi, q));  // ln2 in two parts: n·ln2_hi is exact
  float p = 1.38131459e-3f;
  p = std::fma(p, r, 8.36942066e-3f);
  p = std::fma(p, r, 4.16684560e-2f);
  p = std::fma(p, r, 1.66665152e-1f);
  p = std::fma(p, r, 4.99999940e-1f);
  return 1.0f + std::fma(r * r, p, r);
}

}  // namespace detail

// Inline exps rather than libmvec's expf: a vector-ABI call clobbers every zmm register, and the spills and
// reloads of the polynomials' constants around it cost as much as the erf itself. Over every float32 q ≤ 0 (the
// first) and q ∈ [−87, 0] (the second) the results are within 1.01 ulp of double exp
// (scripts/erf_f32_accuracy.cpp).

// e^q for q ≤ 0 (GELU's φ), with 2^n built in exponent bits as 2^⌊n/2⌋·2^(n−⌊n/2⌋) so that results down to the
// denormals (q ≥ −103.3) round as they should. q is first clamped at −110, where e^q rounds to 0; a NaN q also
// gives 0, so callers must let NaN through another way (GELU's x·φ(x) is NaN for a NaN x).
[[gnu::always_inline]] inline float exp_of_nonpositive(float q) {
  // −min(−q, 110) on the bit patterns (they order as the values for non-negative floats, NaN above inf): an
  // integer min is one instruction, where float std::min/max keep NaN with a compare and a blend.
  q = -std::bit_cast<float>(std::min(std::bit_cast<uint32_t>(-q), std::bit_cast<uint32_t>(110.0f)));
  float shifted;
  const float exp_r = detail::exp_reduced(q, shifted);
  const int32_t n = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(12582912.0f), n_half = n >> 1;
  const float two_to_half = std::bit_cast<float>(static_cast<uint32_t>(n_half + 127) << 23);  // n ∈ [−159, 0]
  const float two_to_rest = std::bit_cast<float>(static_cast<uint32_t>(n - n_half + 127) << 23);
  return exp_r * two_to_half * two_to_rest;
}

// e^q for q ∈ [−87, 0], where e^q is a normal float (erf's tail): one 2^n, no clamp. Undefined outside.
[[gnu::always_inline]] inline float exp_of_normal_nonpositive(float q) {
  float shifted;
  const float exp_r = detail::exp_reduced(q, shifted);
  // n + 127 is 2^n's biased exponent; shifted's bits are 0x4B400000 + n, whose low 9 bits are n + 512 mod 512.
  return exp_r * std::bit_cast<float>((std::bit_cast<uint32_t>(shifted) + 127u) << 23);
}

// erf(x) for float32, in two pieces chosen by |x| (both are computed and one is selected, so loops vectorise):
//   |x| < 0.921875:  erf(x) = x + x·P(x²)       P ≈ erf(x)/x − 1, degree 5
//   |x| ≥ 0.921875:  erf(x) = ±(1 − e^Q(|x|))   Q ≈ log erfc(|x|) on [0.921875, 4], degree 6; |x| is clamped at
//                                               4, where erfc(4) = 1.5e-8 < 2^−25 and 1 − e^Q rounds to 1.
//                                               Q ∈ [−18, 0], so e^Q is exp_of_normal_nonpositive.
// The coefficients are Lawson-iterated minimax fits (relative error of erf for P, absolute error of log erfc
// weighted by erfc/erf for Q) rounded to float. Q's fit error only enters erf multiplied by erfc ≤ 0.19, and so
// does the exp's, which is why modest degrees are enough.
//
// Accuracy, measured over all 2^32 float32 inputs against double std::erf (scripts/erf_f32_accuracy.cpp):
//   max 1.21 ulp (at x = ±0.92493), max absolute error 7.2e-8; libmvec's erff on the same sweep: max 4.0 ulp (at
//   x = ±3.6533), absolute 2.4e-7. Relative error is 0.11 at most, for both, only at denormal results (erf(3·2^−149)
//   is 3.39·2^−149, which the denormal grid must round). NaN → NaN, ±inf → ±1, ±0 → ±0, as libm.
[[gnu::always_inline]] inline float erf_f32(float x) {
  const float abs_x = std::fabs(x);

  const float x_sq = x * x;
  float p = -5.99085470e-4f;
  p = std::fma(p, x_sq, 4.99318214e-3f);
  p = std::fma(p, x_sq, -2.67666187e-2f);
  p = std::fma(p, x_sq, 1.12818167e-1f);
  p = std::fma(p, x_sq, -3.76124948e-1f);
  p = std::fma(p, x_sq, 1.28379151e-1f);
  const float near_zero = std::fma(x, p, x);

  // min(|x|, 4) on the bit patterns, as in exp_of_nonpositive (NaN becomes 4 here and takes the other piece).
  const float t = std::bit_cast<float>(std::min(std::bit_cast<uint32_t>(abs_x), std::bit_cast<uint32_t>(4.0f)));
  float q = 1.95722328e-4f;
  q = std::fma(q, t, -3.04110907e-3f);
  q = std::fma(q, t, 2.22185161e-2f);
  q = std::fma(q, t, -1.03914157e-1f);
  q = std::fma(q, t, -6.37202144e-1f);
  q = std::fma(q, t, -1.12766385e+0f);
  q = std::fma(q, t, -1.98532944e-4f);
  const float tail = std::copysign(1.0f - exp_of_normal_nonpositive(q), x);

  // Selected with bit masks. NaN fails the comparison and takes near_zero, x + x·P = NaN. With float std::min/max
  // and `?:` here and above, and exp_of_nonpositive as the exp, the erf of 4096 floats in cache took 0.68 ns per
  // element; as written, 0.48 (libmvec's erff: 0.62). With libmvec's expf as the exp, the `?:` stayed a branch
  // around the call that GCC 12 did not if-convert, and the loop did not vectorise at all.
  const uint32_t use_tail = abs_x >= 0.921875f ? ~uint32_t{0} : 0;
  return std::bit_cast<float>((std::bit_cast<uint32_t>(tail) & use_tail) |
                              (std::bit_cast<uint32_t>(near_zero) & ~use_tail));
}

}  // namespace hg::cpu
