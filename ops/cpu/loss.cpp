// CPU cross entropy: log-sum-exp, the target's term and the label-smoothing term in one pass over each row of
// classes, and the gradient (softmax − one-hot, weighted) in one more; no [N, C] temporaries. The formulas are
// in ops/backend.h; the composite they replace (log_softmax, gather, where, ...) is the test's reference.
// The running max is `v > m ? v : m` as in ops/cpu/softmax.cpp: NaN never becomes the max, it poisons the sum.
#include <cmath>
#include <limits>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

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

// Rows are (o, i) pairs; a row's classes sit `inner` apart.
template <typename T>
void cross_entropy_forward(const T* x, const int64_t* target, const T* weight, CrossEntropyShape s,
                           int64_t ignore_index, double label_smoothing, T* loss, T* log_sum_exp, T* target_weight) {
  const int64_t C = s.classes, inner = s.inner;
  const T keep = static_cast<T>(1.0 - label_smoothing);
  const T smooth = C > 0 ? static_cast<T>(label_smoothing / static_cast<double>(C)) : T(0);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  parallel_for(s.outer * inner, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* row = x + (r / inner) * C * inner + r % inner;
      T m = neg_inf;
      for (int64_t c = 0; c < C; ++c) m = row[c * inner] > m ? row[c * inner] : m;
      // A row with no finite max is shifted by 0: all −inf (or no classes) sums to exactly 0, the dead-row mark
      // lse = −inf; NaN anywhere makes the sum NaN.
      const T shift = m == neg_inf ? T(0) : m;
      T sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += std::exp(row[c * inner] - shift);
      const T lse = sum == T(0) ? neg_inf : shift + std::log(sum);
      log_sum_exp[r] = lse;
      const int64_t t = target[r];
      if (t == ignore_index) {
        loss[r] = target_weight[r] = 0;
        continue;
      }
      const T w_t = weight ? weight[t] : T(1);
      target_weight[r] = w_t;
      if (lse == neg_inf) {
        loss[r] = 0;
        continue;
      }
      T l = keep * w_t * (lse - row[t * inner]);  // (1 − ε)·w_t·(−log p_t)
      if (smooth != T(0)) {                         // (ε/C)·Σ_c w_c·(−log p_c)
        T acc = 0;
        for (int64_t c = 0; c < C; ++c) acc += (weight ? weight[c] : T(1)) * (lse - row[c * inner]);
        l += smooth * acc;
      }
      loss[r] = l;
    }
  });
}

template <typename T>
void cross_entropy_backward_rows(const T* x, const int64_t* target, const T* weight, CrossEntropyShape s,
                                 int64_t ignore_index, double label_smoothing, const T* log_sum_exp,
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
  parallel_for(s.outer * inner, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t offset = (r / inner) * C * inner + r % inner;
      const T* row = x + offset;
      T* grad_row = grad_x + offset;
      const int64_t t = target[r];
      const T lse = log_sum_exp[r];
      if (t == ignore_index || lse == neg_inf) {
        for (int64_t c = 0; c < C; ++c) grad_row[c * inner] = 0;
        continue;
      }
      const T g = grad_loss[r];
      const T target_scale = keep * (weight ? weight[t] : T(1));
      // ∂loss/∂x_c = (1 − ε)·w_t·(s_c − [c = t]) + (ε/C)·(W·s_c − w_c)
      const T s_scale = target_scale + smooth * weight_sum;
      for (int64_t c = 0; c < C; ++c) {
        const T p = std::exp(row[c * inner] - lse);
        grad_row[c * inner] = g * (s_scale * p - smooth * (weight ? weight[c] : T(1)));
      }
      grad_row[t * inner] -= g * target_scale;
    }
  });
}

}  // namespace

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                               double label_smoothing, Tensor& loss, Tensor& log_sum_exp, Tensor& target_weight) {
  CrossEntropyShape s = check_cross_entropy("cross_entropy", logits, target, weight, loss);
  check_cross_entropy("cross_entropy", logits, target, weight, log_sum_exp);
  check_cross_entropy("cross_entropy", logits, target, weight, target_weight);
  HG_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", [&] {
    cross_entropy_forward<scalar_t>(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(),
                                    weight ? weight->data_ptr<scalar_t>() : nullptr, s, ignore_index,
                                    label_smoothing, loss.data_ptr<scalar_t>(), log_sum_exp.data_ptr<scalar_t>(),
                                    target_weight.data_ptr<scalar_t>());
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight,
                                        int64_t ignore_index, double label_smoothing, const Tensor& log_sum_exp,
                                        const Tensor& grad_loss, Tensor& grad_logits) {
  CrossEntropyShape s = check_cross_entropy("cross_entropy_backward", logits, target, weight, log_sum_exp);
  check_cross_entropy("cross_entropy_backward", logits, target, weight, grad_loss);
  HG_CHECK(grad_logits.is_contiguous() && grad_logits.sizes() == logits.sizes() &&
               grad_logits.dtype() == logits.dtype(),
           "cross_entropy_backward kernel: grad_logits must be contiguous like the logits {}, got {}", logits.desc(),
           grad_logits.desc());
  HG_DISPATCH_FLOATING(logits.dtype(), "cross_entropy_backward", [&] {
    cross_entropy_backward_rows<scalar_t>(logits.data_ptr<scalar_t>(), target.data_ptr<int64_t>(),
                                          weight ? weight->data_ptr<scalar_t>() : nullptr, s, ignore_index,
                                          label_smoothing, log_sum_exp.data_ptr<scalar_t>(),
                                          grad_loss.data_ptr<scalar_t>(), grad_logits.data_ptr<scalar_t>());
  });
}

}  // namespace hg::cpu
