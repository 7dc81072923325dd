// CUDA fused optimizer updates: one grid-stride pass over a parameter and its state. CPU reference:
// ops/cpu/optim.cpp (same formula, same order of operations, same NaN rule for AMSGrad's maximum).
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

enum class WeightDecay { None, L2, Decoupled };

template <typename T> struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay, step_size, inv_bias_correction2_sqrt, eps;
};

// param, grad, exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (v̂, amsgrad only): [n] contiguous
template <typename T, WeightDecay kDecay, bool kAmsgrad>
__global__ void adam_kernel(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
                            AdamScalars<T> s) {
  HG_GRID_STRIDE_LOOP(i, n) {
    T p = param[i], g = grad[i];
    if constexpr (kDecay == WeightDecay::L2) g += s.weight_decay * p;  // g ← g + λ·p
    if constexpr (kDecay == WeightDecay::Decoupled) p *= s.decay;      // p ← p·(1 − η·λ)
    const T m = s.beta1 * exp_avg[i] + s.one_minus_beta1 * g;          // m ← β₁·m + (1 − β₁)·g
    T v = s.beta2 * exp_avg_sq[i] + s.one_minus_beta2 * (g * g);       // v ← β₂·v + (1 − β₂)·g²
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if constexpr (kAmsgrad) {  // v̂ ← max(v̂, v), NaN-propagating as hg::maximum
      const T previous = max_exp_avg_sq[i];
      v = (previous > v || is_nan(previous)) ? previous : v;
      max_exp_avg_sq[i] = v;
    }
    param[i] = p - s.step_size * m / (math::sqrt(v) * s.inv_bias_correction2_sqrt + s.eps);
  }
}

}  // namespace

void CudaBackend::adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                            Tensor* max_exp_avg_sq, const AdamParams& a) {
  check_on_device("adam_step", param.device(), {&param, &grad, &exp_avg, &exp_avg_sq, max_exp_avg_sq});
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &exp_avg, &exp_avg_sq, max_exp_avg_sq}) {
    if (!t) continue;
    HG_CHECK(t->is_contiguous() && t->numel() == param.numel() && t->dtype() == param.dtype(),
             "adam_step kernel (cuda): expects contiguous operands of one size and dtype, got {} for parameter {}",
             t->desc(), param.desc());
  }
  HG_CHECK(a.amsgrad == (max_exp_avg_sq != nullptr),
           "adam_step kernel (cuda): max_exp_avg_sq must be given exactly with amsgrad");
  const int64_t n = param.numel();
  if (n == 0) return;
  DeviceGuard guard(param.device());
  const WeightDecay decay = a.weight_decay == 0.0       ? WeightDecay::None
                            : a.decoupled_weight_decay ? WeightDecay::Decoupled
                                                       : WeightDecay::L2;
  HG_CUDA_DISPATCH_FLOATING(param.dtype(), "adam_step", [&] {
    using T = scalar_t;
    AdamScalars<T> s{static_cast<T>(a.beta1),
                     static_cast<T>(1.0 - a.beta1),
                     static_cast<T>(a.beta2),
                     static_cast<T>(1.0 - a.beta2),
                     static_cast<T>(a.weight_decay),
                     static_cast<T>(1.0 - a.lr * a.weight_decay),
                     static_cast<T>(a.lr / a.bias_correction1),
                     static_cast<T>(1.0 / a.bias_correction2_sqrt),
                     static_cast<T>(a.eps)};
    T* p = param.data_ptr<T>();
    const T* g = grad.data_ptr<T>();
    T* m = exp_avg.data_ptr<T>();
    T* v = exp_avg_sq.data_ptr<T>();
    T* v_max = max_exp_avg_sq ? max_exp_avg_sq->data_ptr<T>() : nullptr;
    const unsigned blocks = grid_for(n, param.device().index);
    auto launch = [&](auto kernel) {
      kernel<<<blocks, kBlockSize>>>(p, g, m, v, v_max, n, s);
      HG_CUDA_CHECK_LAUNCH();
    };
    switch (decay) {
      case WeightDecay::None:
        return a.amsgrad ? launch(adam_kernel<T, WeightDecay::None, true>) : launch(adam_kernel<T, WeightDecay::None, false>);
      case WeightDecay::L2:
        return a.amsgrad ? launch(adam_kernel<T, WeightDecay::L2, true>) : launch(adam_kernel<T, WeightDecay::L2, false>);
      case WeightDecay::Decoupled:
        return a.amsgrad ? launch(adam_kernel<T, WeightDecay::Decoupled, true>)
                         : launch(adam_kernel<T, WeightDecay::Decoupled, false>);
    }
  });
}

}  // namespace hg::cuda
