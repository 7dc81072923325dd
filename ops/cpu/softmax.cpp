// CPU softmax / log_softmax along one dim of a contiguous tensor viewed as [outer, n, inner] (n = the softmax dim):
// fused OpenMP + SIMD loops, one for rows (inner = 1) and one for strided columns (inner > 1).
//
// Why not oneDNN's softmax_v2 primitive (oneDNN 2.6, this machine's AVX-512 cores, float32, one thread):
//  - a row holding NaN comes out as finite numbers (0 / −inf beside the NaN) and a row holding +inf as zeros,
//    where PyTorch gives NaN: a silent wrong result; an all −inf row gives NaN instead of the zeros promised;
//  - its exp/log are off by up to ~10 ulp (log_softmax of one element gives 1.4e-6, not 0); glibc's libmvec
//    expf, called below, stays within 4 ulp;
//  - it is slower along rows (medians: [4096, 512] 1.5 ms vs 1.0 ms here; [65536, 16] log_softmax 3.8 ms vs
//    1.5 ms; [64, 32000] 1.6 ms vs 1.1 ms) and, with the softmax axis not innermost, falls back to a reference
//    kernel (~50× slower than the column loop).
#include <cmath>
#include <limits>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/simd_exp.h>

namespace hg::cpu {

namespace {

template <typename T> constexpr T kNegInf = -std::numeric_limits<T>::infinity();

struct SoftmaxGeometry {
  int64_t outer = 1, n = 1, inner = 1;
};

SoftmaxGeometry geometry(const Tensor& x, int64_t dim) {
  SoftmaxGeometry g;
  if (x.dim() == 0) return g;  // a scalar is one row of length 1
  for (int64_t d = 0; d < dim; ++d) g.outer *= x.size(d);
  g.n = x.size(dim);
  for (int64_t d = dim + 1; d < x.dim(); ++d) g.inner *= x.size(d);
  return g;
}

// Both kernels compute, per row with max m:
//   softmax:      y = exp(x − m) / Σ exp(x − m)
//   log_softmax:  y = (x − m) − log Σ exp(x − m)
// A row whose max is −inf (all −inf) gives zeros, or NaN if it holds a NaN; a live row's sum is ≥ 1 (its max
// contributes exp(0)). NaN anywhere in a row makes the sum NaN and the whole row NaN, as in PyTorch; +inf gives
// exp(inf − inf) = NaN likewise. (The column kernel below shifts an all −inf column by 0, so its sum is exactly 0,
// which marks it for zeros.)

template <typename T> void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      T m = kNegInf<T>;
#pragma omp simd reduction(max : m)
      for (int64_t i = 0; i < n; ++i) m = xr[i] > m ? xr[i] : m;
      if (m == kNegInf<T>) {  // no value above −inf: zeros for an all −inf row, NaN if the row holds a NaN
        bool nan = false;
        for (int64_t i = 0; i < n && !nan; ++i) nan = xr[i] != xr[i];
        std::fill(yr, yr + n, nan ? std::numeric_limits<T>::quiet_NaN() : T(0));
        continue;
      }
      // x − m clamped from below at kExpLowest first, in a loop of its own: libmvec's expf sends every lane
      // below about −87.3 to scalar libm, one lane at a time, which made a softmax over widely spread scores
      // (β = 1 over 784-wide patterns) several times slower. The clamped exps (≤ 1.7e-38 each) are nothing in a
      // sum ≥ 1, and softmax writes those entries as 0 below. NaN is not clamped and still spreads over the row.
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const T d = xr[i] - m;
        yr[i] = d < kExpLowest<T> ? kExpLowest<T> : d;
      }
      T sum = 0;
      if (log) {
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) sum += exp_of(yr[i]);
        const T log_sum = std::log(sum);
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) - log_sum;
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) {
          const T e = exp_of(yr[i]);
          yr[i] = e;
          sum += e;
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - m < kExpLowest<T> ? T(0) * inv : yr[i] * inv;  // 0·NaN: NaN
      }
    }
  });
}

// Along a strided dim: blocks of up to kColumns neighbouring columns of one outer slice are reduced together, so
// every pass walks contiguous memory and vectorises across the columns.
template <typename T> void softmax_columns(const T* x, T* y, const SoftmaxGeometry& g, bool log) {
  constexpr int64_t kColumns = 256;
  const int64_t n = g.n, inner = g.inner, blocks_per_slice = (inner + kColumns - 1) / kColumns;
  parallel_for(g.outer * blocks_per_slice, std::max<int64_t>(1, kParallelGrain / (n * kColumns)),
               [&](int64_t lo, int64_t hi) {
                 T m[kColumns], sum[kColumns];
                 for (int64_t block = lo; block < hi; ++block) {
                   const int64_t c0 = (block % blocks_per_slice) * kColumns, w = std::min(kColumns, inner - c0);
                   const T* xs = x + (block / blocks_per_slice) * n * inner + c0;
                   T* ys = y + (block / blocks_per_slice) * n * inner + c0;
                   std::fill(m, m + w, kNegInf<T>);
                   std::fill(sum, sum + w, T(0));
                   for (int64_t i = 0; i < n; ++i) {
                     const T* xr = xs + i * inner;
#pragma omp simd
                     for (int64_t c = 0; c < w; ++c) m[c] = xr[c] > m[c] ? xr[c] : m[c];
                   }
#pragma omp simd
                   for (int64_t c = 0; c < w; ++c) m[c] = m[c] == kNegInf<T> ? T(0) : m[c];
                   for (int64_t i = 0; i < n; ++i) {
                     const T* xr = xs + i * inner;
                     T* yr = ys + i * inner;
                     if (log) {
#pragma omp simd
                       for (int64_t c = 0; c < w; ++c) sum[c] += exp_of(xr[c] - m[c]);
                     } else {
#pragma omp simd
                       for (int64_t c = 0; c < w; ++c) sum[c] += (yr[c] = exp_of(xr[c] - m[c]));
                     }
                   }
                   if (log) {
                     // sum becomes log Σ exp(x − m); −inf marks an all −inf column.
                     for (int64_t c = 0; c < w; ++c) sum[c] = std::log(sum[c]);
                     for (int64_t i = 0; i < n; ++i) {
                       const T* xr = xs + i * inner;
                       T* yr = ys + i * inner;
#pragma omp simd
                       for (int64_t c = 0; c < w; ++c) yr[c] = sum[c] == kNegInf<T> ? T(0) : (xr[c] - m[c]) - sum[c];
                     }
                   } else {
#pragma omp simd
                     for (int64_t c = 0; c < w; ++c) sum[c] = sum[c] == T(0) ? T(0) : T(1) / sum[c];
                     for (int64_t i = 0; i < n; ++i) {
                       T* yr = ys + i * inner;
#pragma omp simd
                       for (int64_t c = 0; c < w; ++c) yr[c] *= sum[c];
                     }
                   }
                 }
               });
}

}  // namespace

void CpuBackend::softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) {
  HG_CHECK(x.is_contiguous() && out.is_contiguous() && x.sizes() == out.sizes() && x.dtype() == out.dtype(),
           "softmax kernel: expects contiguous input and output of one shape and dtype, got {} and {}", x.desc(),
           out.desc());
  if (x.numel() == 0) return;
  const SoftmaxGeometry g = geometry(x, dim);
  HG_DISPATCH_FLOATING(x.dtype(), log ? "log_softmax" : "softmax", [&] {
    if (g.inner == 1)
      softmax_rows(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g.outer, g.n, log);
    else
      softmax_columns(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g, log);
  });
}

}  // namespace hg::cpu
