// CUDA cross entropy. CPU reference: ops/cpu/loss.cpp (same formulas, same max/NaN/dead-row rules; the formulas
// are in ops/backend.h). One thread per row (o, i) of classes, neighbouring threads on neighbouring rows; with
// inner > 1 their loads coalesce, with inner = 1 each thread streams its own row.
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// The row's shift m: its max, or 0 when no entry is above −inf (NaN never becomes the max).
template <typename T>
__device__ T row_shift(const T* row, int64_t C, int64_t inner) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  T m = neg_inf;
  for (int64_t c = 0; c < C; ++c) m = row[c * inner] > m ? row[c * inner] : m;
  return m == neg_inf ? T(0) : m;
}

//   x: [outer, C, inner];  target, loss, log_sum (ℓ = log Σ_c exp(x_c − m)), target_weight: [outer, inner];
//   weight: [C] or null
template <typename T>
__global__ void cross_entropy_kernel(const T* x, const int64_t* target, const T* weight, int64_t rows, int64_t C,
                                     int64_t inner, int64_t ignore_index, T keep, T smooth, T* loss, T* log_sum,
                                     T* target_weight) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  HG_GRID_STRIDE_LOOP(r, rows) {
    const T* row = x + (r / inner) * C * inner + r % inner;
    const T m = row_shift(row, C, inner);
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += math::exp(row[c * inner] - m);
    const T l_sum = math::log(sum);  // −inf for an all −inf row
    log_sum[r] = l_sum;
    const int64_t t = target[r];
    if (t == ignore_index) {
      loss[r] = target_weight[r] = T(0);
      continue;
    }
    const T w_t = weight ? weight[t] : T(1);
    target_weight[r] = w_t;
    if (l_sum == neg_inf) {
      loss[r] = T(0);
      continue;
    }
    T l = keep * w_t * (l_sum - (row[t * inner] - m));
    if (smooth != T(0)) {
      T acc = 0;
      for (int64_t c = 0; c < C; ++c) acc += (weight ? weight[c] : T(1)) * (l_sum - (row[c * inner] - m));
      l += smooth * acc;
    }
    loss[r] = l;
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* x, const int64_t* target, const T* weight, int64_t rows,
                                              int64_t C, int64_t inner, int64_t ignore_index, T keep, T smooth,
                                              const T* log_sum, const T* grad_loss, T* grad_x) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  HG_GRID_STRIDE_LOOP(r, rows) {
    const int64_t offset = (r / inner) * C * inner + r % inner;
    const T* row = x + offset;
    T* grad_row = grad_x + offset;
    const int64_t t = target[r];
    const T l_sum = log_sum[r];
    if (t == ignore_index || l_sum == neg_inf) {
      for (int64_t c = 0; c < C; ++c) grad_row[c * inner] = T(0);
      continue;
    }
    T weight_sum = static_cast<T>(C);  // W = Σ_c w_c
    if (weight && smooth != T(0)) {
      weight_sum = 0;
      for (int64_t c = 0; c < C; ++c) weight_sum += weight[c];
    }
    const T g = grad_loss[r], m = row_shift(row, C, inner);
    const T target_scale = keep * (weight ? weight[t] : T(1));
    const T s_scale = target_scale + smooth * weight_sum;
    for (int64_t c = 0; c < C; ++c) {
      const T p = math::exp((row[c * inner] - m) - l_sum);
      grad_row[c * inner] = g * (s_scale * p - smooth * (weight ? weight[c] : T(1)));
    }
    grad_row[t * inner] -= g * target_scale;
  }
}

void check_shapes(const char* kernel, const Tensor& logits, const Tensor& target, const Tensor* weight,
                  std::initializer_list<const Tensor*> per_target) {
  HG_CHECK(logits.is_contiguous() && target.is_contiguous() && target.dtype() == kInt64 && logits.dim() == 3 &&
               target.dim() == 2 && target.size(0) == logits.size(0) && target.size(1) == logits.size(2),
           "{} kernel (cuda): expects contiguous logits [outer, C, inner] and int64 target [outer, inner], got {} and {}",
           kernel, logits.desc(), target.desc());
  for (const Tensor* t : per_target)
    HG_CHECK(t->is_contiguous() && t->sizes() == target.sizes() && t->dtype() == logits.dtype(),
             "{} kernel (cuda): per-target tensors must be contiguous {} {}, got {}", kernel, logits.dtype(),
             target.sizes(), t->desc());
  HG_CHECK(!weight || (weight->is_contiguous() && weight->dtype() == logits.dtype() &&
                       weight->numel() == logits.size(1)),
           "{} kernel (cuda): weight must be contiguous [{}] {}, got {}", kernel, logits.size(1), logits.dtype(),
           weight ? weight->desc() : "");
}

}  // namespace

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                                double label_smoothing, Tensor& loss, Tensor& log_sum, Tensor& target_weight) {
  check_on_device("cross_entropy", logits.device(), {&logits, &target, weight, &loss, &log_sum, &target_weight});
  check_shapes("cross_entropy", logits, target, weight, {&loss, &log_sum, &target_weight});
  const int64_t rows = target.numel(), C = logits.size(1), inner = logits.size(2);
  if (rows == 0) return;
  DeviceGuard guard(logits.device());
  HG_CUDA_DISPATCH_FLOATING(logits.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    const T smooth = C > 0 ? static_cast<T>(label_smoothing / static_cast<double>(C)) : T(0);
    cross_entropy_kernel<T><<<grid_for(rows, logits.device().index), kBlockSize>>>(
        logits.data_ptr<T>(), target.data_ptr<int64_t>(), weight ? weight->data_ptr<T>() : nullptr, rows, C, inner,
        ignore_index, static_cast<T>(1.0 - label_smoothing), smooth, loss.data_ptr<T>(), log_sum.data_ptr<T>(),
        target_weight.data_ptr<T>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight,
                                         int64_t ignore_index, double label_smoothing, const Tensor& log_sum,
                                         const Tensor& grad_loss, Tensor& grad_logits) {
  check_on_device("cross_entropy_backward", logits.device(),
                  {&logits, &target, weight, &log_sum, &grad_loss, &grad_logits});
  check_shapes("cross_entropy_backward", logits, target, weight, {&log_sum, &grad_loss});
  HG_CHECK(grad_logits.is_contiguous() && grad_logits.sizes() == logits.sizes() &&
               grad_logits.dtype() == logits.dtype(),
           "cross_entropy_backward kernel (cuda): grad_logits must be contiguous like the logits {}, got {}",
           logits.desc(), grad_logits.desc());
  const int64_t rows = target.numel(), C = logits.size(1), inner = logits.size(2);
  if (rows == 0) return;
  DeviceGuard guard(logits.device());
  HG_CUDA_DISPATCH_FLOATING(logits.dtype(), "cross_entropy_backward", [&] {
    using T = scalar_t;
    const T smooth = C > 0 ? static_cast<T>(label_smoothing / static_cast<double>(C)) : T(0);
    cross_entropy_backward_kernel<T><<<grid_for(rows, logits.device().index), kBlockSize>>>(
        logits.data_ptr<T>(), target.data_ptr<int64_t>(), weight ? weight->data_ptr<T>() : nullptr, rows, C, inner,
        ignore_index, static_cast<T>(1.0 - label_smoothing), smooth, log_sum.data_ptr<T>(),
        grad_loss.data_ptr<T>(), grad_logits.data_ptr<T>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace hg::cuda
