#pragma once
// exp and log for the CPU kernels' `omp simd` loops (softmax, fused attention, cross entropy).
//
// glibc ≥ 2.35 ships SIMD variants of expf and logf in libmvec; math.h declares them only under -ffast-math, so they are
// declared here with `omp declare simd` for the vectoriser to call its 16-lane variant with strict IEEE semantics
// kept. Internal to ops/cpu.
#include <cmath>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(_OPENMP) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
extern "C" {
#pragma omp declare simd notinbranch
float expf(float) noexcept;
#pragma omp declare simd notinbranch
float logf(float) noexcept;
}
#endif

namespace hg::cpu {

// expf spelled as the C function (std::exp(float) is a builtin the vectoriser does not map to libmvec); double
// keeps glibc's scalar exp (< 1 ulp), for gradient checks.
inline float exp_of(float x) { return ::expf(x); }
inline double exp_of(double x) { return std::exp(x); }
// Below this, exp(x) leaves the type's normal range (float: 1.2e-38 at −87.3; double: 2.2e-308 at −708.4), and
// libmvec's expf hands such lanes to scalar libm one at a time; the softmax and cross-entropy kernels clamp their
// shifted inputs here before the vector exp.
template <typename T> constexpr T kExpLowest = sizeof(T) == 4 ? T(-87) : T(-708);

// logf likewise (libmvec's 16-lane logf, for loops over many rows' sums).
inline float log_of(float x) { return ::logf(x); }
inline double log_of(double x) { return std::log(x); }

}  // namespace hg::cpu
