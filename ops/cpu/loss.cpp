// CPU cross entropy: log-sum-exp, the target's term and the label-smoothing term in one pass over each row of
// classes, and the gradient (softmax − one-hot, weighted) in one more; no [N, C] temporaries beyond a block of
// shifted logits (rows of contiguous classes are exponentiated a block at a time: see kBlockElements). The
// formulas are in ops/backend.h; the composite they replace (log_softmax, gather, where, ...) is the test's
// reference.
// The running max is `v > m ? v : m` as in ops/cpu/softmax.cpp: NaN never becomes the max, it poisons the sum.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/simd_exp.h>

namespace hg::cpu {

namespace {

struct CrossEntropyShape {
  int64_t outer, classes, inner;
};

CrossEntropyShape check_cross_entropy(const char* kernel, const Tensor& logits, const Tensor& target,
                                      const Tensor* weight, const Tensor& per_target) {
  HG_CHECK(logits.is_contiguous() && target.is_contiguous() && per_target.is_contiguous() &&
               target.dtype() == kInt64 && per_target.dtype() == logits.dtype() && logits.dim() == 3 &&
               target.dim() == 2 && per_target.sizes() == target.sizes() && target.size(0) == logits.size(0) &&
               target.size(1) == logits.size(2),
           "{} kernel: expects contiguous logits [outer, C, inner], int64 target and per-target {} [outer, inner], "
           "got {}, {} and {}",
           kernel, logits.dtype(), logits.desc(), target.desc(), per_target.desc());
  HG_CHECK(!weight || (weight->is_contiguous() && weight->dtype() == logits.dtype() &&
                       weight->numel() == logits.size(1)),
           "{} kernel: weight must be contiguous [{}] {}, got {}", kernel, logits.size(1), logits.dtype(),
           weight ? weight->desc() : "");
  return {logits.size(0), logits.size(1), logits.size(2)};
}

// Rows of contiguous classes (inner = 1: logits [N, C]) are taken a block at a time: their shifted logits go into
// one buffer and are exponentiated in a single flat loop, which runs on libmvec's 16-lane expf (simd_exp.h). A
// loop per row is all scalar remainder when classes are few: C = 10 made a batch of 128 rows 1280 scalar expf
// calls, 7 µs of forward and 6 µs of backward. As in ops/cpu/softmax.cpp, shifted logits below kExpLowest are
// clamped before the exp (libmvec hands such lanes to scalar libm one at a time): their exponentials (≤ 1.7e-38)
// vanish in a live row's sum ≥ 1, and the gradient writes those probabilities as 0.
constexpr int64_t kBlockElements = 2048;
// Below this many classes a row's max and sum are plain scalar loops: a vectorised reduction over one short row
// spends more on its masked tail and horizontal folding than the compares (rows overlap in the core anyway).
constexpr int64_t kVectorRowClasses = 32;

int64_t rows_per_block(int64_t classes) { return std::max<int64_t>(1, kBlockElements / std::max<int64_t>(classes, 1)); }

// Room for one block of shifted logits: on the stack unless a single row is longer than kBlockElements.
template <typename T> struct BlockBuffer {
  T local[kBlockElements];
  std::vector<T> heap;
  T* get(int64_t n) {
    if (n <= kBlockElements) return local;
    heap.resize(static_cast<size_t>(n));
    return heap.data();
  }
};

// The row's shift m: its max, or 0 when no entry is above −inf. The running max is `v > m ? v : m`, so NaN never
// becomes it.
template <typename T> T row_shift(const T* row, int64_t C, int64_t stride) {
  T m = -std::numeric_limits<T>::infinity();
  if (stride == 1 && C >= kVectorRowClasses) {
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < C; ++c) m = row[c] > m ? row[c] : m;
  } else {
    for (int64_t c = 0; c < C; ++c) m = row[c * stride] > m ? row[c * stride] : m;
  }
  return m == -std::numeric_limits<T>::infinity() ? T(0) : m;
}

template <typename T> T block_sum(const T* row, int64_t C) {
  T sum = 0;
  if (C >= kVectorRowClasses) {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += row[c];
  } else {
    for (int64_t c = 0; c < C; ++c) sum += row[c];
  }
  return sum;
}

// Blocks of 1024 summed in T (across vector lanes where the compiler vectorises), the block sums in double: a row
// of 10⁶ float32 classes keeps float32's precision whether or not the block loop is vectorised (a sequential
// float32 sum drifts by ~3e-4 relative there).
template <typename T> T row_sum(const T* row, int64_t C) {
  constexpr int64_t kBlock = 1024;
  if (C <= kBlock) return block_sum(row, C);
  double total = 0;
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) total += block_sum(row + c0, std::min(kBlock, C - c0));
  return static_cast<T>(total);
}

// For rows [lo, hi) of contiguous classes: shift[r − lo] = m and log_sum[r] = log Σ_c exp(x[r, c] − m). A row
// with no entry above −inf sums to exactly 0 (log_sum = −inf, the dead-row mark; it is not clamped), NaN anywhere
// makes the sum NaN, and so does +inf (inf − inf).
template <typename T>
void shift_and_log_sum_contiguous(const T* x, int64_t lo, int64_t hi, int64_t C, T* shift, T* log_sum) {
  const int64_t block = rows_per_block(C);
  BlockBuffer<T> buffer;
  T* e = buffer.get(block * C);
  T sums[kBlockElements];
  for (int64_t b0 = lo; b0 < hi; b0 += block) {
    const int64_t b1 = std::min(hi, b0 + block), n = (b1 - b0) * C;
    for (int64_t r = b0; r < b1; ++r) {
      const T* row = x + r * C;
      T* d = e + (r - b0) * C;
      const T m = shift[r - lo] = row_shift(row, C, 1);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T t = row[c] - m;
        d[c] = t < kExpLowest<T> && t != -std::numeric_limits<T>::infinity() ? kExpLowest<T> : t;
      }
    }
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) e[i] = exp_of(e[i]);
    for (int64_t r = b0; r < b1; ++r) sums[r - b0] = row_sum(e + (r - b0) * C, C);
#pragma omp simd
    for (int64_t r = b0; r < b1; ++r) log_sum[r] = log_of(sums[r - b0]);
  }
}

// Per row, with m the row's shift and ℓ = log Σ_c exp(x_c − m) (so log p_c = (x_c − m) − ℓ, as log_softmax forms
// it: the loss keeps its precision when the logits are large, where m + ℓ would round to the logits' ulp):
//   loss = (1 − ε)·w_t·(ℓ − (x_t − m)) + (ε/C)·Σ_c w_c·(ℓ − (x_c − m)).
template <typename T>
void cross_entropy_forward(const T* x, const int64_t* target, const T* weight, CrossEntropyShape s,
                           int64_t ignore_index, double label_smoothing, T* loss, T* log_sum, T* target_weight) {
  const int64_t C = s.classes, inner = s.inner;
  const T keep = static_cast<T>(1.0 - label_smoothing);
  const T smooth = C > 0 ? static_cast<T>(label_smoothing / static_cast<double>(C)) : T(0);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  parallel_for(s.outer * inner, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    std::vector<T> shift(static_cast<size_t>(hi - lo));
    if (inner == 1) {
      shift_and_log_sum_contiguous(x, lo, hi, C, shift.data(), log_sum);
    } else {
      for (int64_t r = lo; r < hi; ++r) {
        const T* row = x + (r / inner) * C * inner + r % inner;
        const T m = shift[r - lo] = row_shift(row, C, inner);
        double sum = 0;  // strided, so not vectorised anyway: in double, as row_sum's blocks
        for (int64_t c = 0; c < C; ++c) sum += exp_of(row[c * inner] - m);
        log_sum[r] = log_of(static_cast<T>(sum));
      }
    }
    for (int64_t r = lo; r < hi; ++r) {
      const T* row = x + (r / inner) * C * inner + r % inner;
      const T m = shift[r - lo], l_sum = log_sum[r];
      const int64_t t = target[r];
      if (t == ignore_index) {
        loss[r] = target_weight[r] = 0;
        continue;
      }
      const T w_t = weight ? weight[t] : T(1);
      target_weight[r] = w_t;
      if (l_sum == neg_inf) {
        loss[r] = 0;
        continue;
      }
      T l = keep * w_t * (l_sum - (row[t * inner] - m));  // (1 − ε)·w_t·(−log p_t)
      if (smooth != T(0)) {                                // (ε/C)·Σ_c w_c·(−log p_c)
        double acc = 0;  // in double: a float32 running sum over 10⁶ classes drifts by ~3e-4 relative
        for (int64_t c = 0; c < C; ++c) acc += (weight ? weight[c] : T(1)) * (l_sum - (row[c * inner] - m));
        l += smooth * static_cast<T>(acc);
      }
      loss[r] = l;
    }
  });
}

// ∂loss/∂x_c = (1 − ε)·w_t·(s_c − [c = t]) + (ε/C)·(W·s_c − w_c), s_c = exp((x_c − m) − ℓ), W = Σ_c w_c; the
// shift m is found again from the row. Rows that are ignored or dead (ℓ = −inf) get zeros.
template <typename T>
void cross_entropy_backward_rows(const T* x, const int64_t* target, const T* weight, CrossEntropyShape s,
                                 int64_t ignore_index, double label_smoothing, const T* log_sum,
                                 const T* grad_loss, T* grad_x) {
  const int64_t C = s.classes, inner = s.inner;
  const T keep = static_cast<T>(1.0 - label_smoothing);
  const T smooth = C > 0 ? static_cast<T>(label_smoothing / static_cast<double>(C)) : T(0);
  T weight_sum = static_cast<T>(C);  // W = Σ_c w_c
  if (weight) {
    weight_sum = 0;
    for (int64_t c = 0; c < C; ++c) weight_sum += weight[c];
  }
  const T neg_inf = -std::numeric_limits<T>::infinity();
  auto skipped = [&](int64_t r) { return target[r] == ignore_index || log_sum[r] == neg_inf; };
  if (inner == 1) {  // blocks of rows, one flat exp loop each (see kBlockElements)
    const int64_t block = rows_per_block(C);
    const T clamped = exp_of(kExpLowest<T>);  // what a clamped entry exponentiates to: written as probability 0
    parallel_for(s.outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
      BlockBuffer<T> buffer;
      T* e = buffer.get(block * C);
      for (int64_t b0 = lo; b0 < hi; b0 += block) {
        const int64_t b1 = std::min(hi, b0 + block), n = (b1 - b0) * C;
        for (int64_t r = b0; r < b1; ++r) {  // e = log s_c, clamped
          const T* row = x + r * C;
          T* d = e + (r - b0) * C;
          if (skipped(r)) {
            std::fill(d, d + C, kExpLowest<T>);
            continue;
          }
          const T m = row_shift(row, C, 1), l_sum = log_sum[r];
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const T t = (row[c] - m) - l_sum;
            d[c] = t < kExpLowest<T> ? kExpLowest<T> : t;
          }
        }
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) e[i] = exp_of(e[i]);
        for (int64_t r = b0; r < b1; ++r) {
          const T* p = e + (r - b0) * C;
          T* grad_row = grad_x + r * C;
          if (skipped(r)) {
            std::fill(grad_row, grad_row + C, T(0));
            continue;
          }
          const int64_t t = target[r];
          const T g = grad_loss[r];
          const T target_scale = keep * (weight ? weight[t] : T(1));
          const T s_scale = target_scale + smooth * weight_sum;
          if (weight) {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T s_c = p[c] <= clamped ? T(0) : p[c];
              grad_row[c] = g * (s_scale * s_c - smooth * weight[c]);
            }
          } else {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T s_c = p[c] <= clamped ? T(0) : p[c];
              grad_row[c] = g * (s_scale * s_c - smooth);
            }
          }
          grad_row[t] -= g * target_scale;
        }
      }
    });
    return;
  }
  parallel_for(s.outer * inner, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t offset = (r / inner) * C * inner + r % inner;
      const T* row = x + offset;
      T* grad_row = grad_x + offset;
      if (skipped(r)) {
        for (int64_t c = 0; c < C; ++c) grad_row[c * inner] = 0;
        continue;
      }
      const int64_t t = target[r];
      const T g = grad_loss[r], m = row_shift(row, C, inner), l_sum = log_sum[r];
      const T target_scale = keep * (weight ? weight[t] : T(1));
      const T s_scale = target_scale + smooth * weight_sum;
      for (int64_t c = 0; c < C; ++c) {
        const T p = exp_of((row[c * inner] - m) - l_sum);
        grad_row[c * inner] = g * (s_scale * p - smooth * (weight ? weight[c] : T(1)));
      }
      grad_row[t * inner] -= g * target_scale;
    }
  });
}

}  // namespace

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                               double label_smoothing, Tensor& loss, Tensor& log_sum, Tensor& target_weight) {
  CrossEntropyShape s = check_cross_entropy("cross_entropy", logits, target, weight, loss);
  check_cross_entropy("cross_entropy", logits, target, weight, log_sum);
  check_cross_entropy("cross_entropy", logits, target, weight, target_weight);
  HG_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_forward<scalar_t>(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(),
                                    weight ? weight->data_ptr<scalar_t>() : nullptr, s, ignore_index,
                                    label_smoothing, loss.data_ptr<scalar_t>(), log_sum.data_ptr<scalar_t>(),
                                    target_weight.data_ptr<scalar_t>());
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight,
                                        int64_t ignore_index, double label_smoothing, const Tensor& log_sum,
                                        const Tensor& grad_loss, Tensor& grad_logits) {
  CrossEntropyShape s = check_cross_entropy("cross_entropy_backward", logits, target, weight, log_sum);
  check_cross_entropy("cross_entropy_backward", logits, target, weight, grad_loss);
  HG_CHECK(grad_logits.is_contiguous() && grad_logits.sizes() == logits.sizes() &&
               grad_logits.dtype() == logits.dtype(),
           "cross_entropy_backward kernel: grad_logits must be contiguous like the logits {}, got {}", logits.desc(),
           grad_logits.desc());
  HG_DISPATCH_FLOATING(logits.dtype(), "cross_entropy_backward", [&] {
    cross_entropy_backward_rows<scalar_t>(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(),
                                          weight ? weight->data_ptr<scalar_t>() : nullptr, s, ignore_index,
                                          label_smoothing, log_sum.data_ptr<scalar_t>(),
                                          grad_loss.data_ptr<scalar_t>(), grad_logits.data_ptr<scalar_t>());
  });
}

}  // namespace hg::cpu
