// CPU fused optimizer updates: one OpenMP + SIMD pass over a parameter and its state, every scalar computed
// once outside the loop. The same update written with ops (the reference in tests/test_optim_fused.cpp)
// takes about a dozen passes over the parameter's size and four temporaries.
#include <cmath>
#include <initializer_list>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {

enum class WeightDecay { None, L2, Decoupled };

// param, grad, exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (v̂, amsgrad only): [n] contiguous
template <typename T, WeightDecay kDecay, bool kAmsgrad>
void adam_kernel(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
                 const AdamParams& a) {
  const T beta1 = static_cast<T>(a.beta1), one_minus_beta1 = static_cast<T>(1.0 - a.beta1);
  const T beta2 = static_cast<T>(a.beta2), one_minus_beta2 = static_cast<T>(1.0 - a.beta2);
  const T weight_decay = static_cast<T>(a.weight_decay), decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T step_size = static_cast<T>(a.lr / a.bias_correction1);
  // √v / √(1 − β₂ᵗ) as √v times the reciprocal (rounded once, from double): the loop is bound by its vector
  // square roots and divisions, and one division fewer per element makes the update ~25 % faster. It can differ
  // from torch.optim.Adam's division in the denominator's last bit, which moves the parameter only when the
  // update (~lr) lands on a rounding boundary of the parameter's own last bit.
  const T inv_bias_correction2_sqrt = static_cast<T>(1.0 / a.bias_correction2_sqrt), eps = static_cast<T>(a.eps);
  parallel_for(n, kParallelGrain, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      T p = param[i], g = grad[i];
      if constexpr (kDecay == WeightDecay::L2) g += weight_decay * p;   // g ← g + λ·p
      if constexpr (kDecay == WeightDecay::Decoupled) p *= decay;       // p ← p·(1 − η·λ)
      const T m = beta1 * exp_avg[i] + one_minus_beta1 * g;             // m ← β₁·m + (1 − β₁)·g
      T v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g);          // v ← β₂·v + (1 − β₂)·g²
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      if constexpr (kAmsgrad) {  // v̂ ← max(v̂, v), NaN-propagating as hg::maximum
        const T previous = max_exp_avg_sq[i];
        v = (previous > v || std::isnan(previous)) ? previous : v;
        max_exp_avg_sq[i] = v;
      }
      param[i] = p - step_size * m / (std::sqrt(v) * inv_bias_correction2_sqrt + eps);
    }
  });
}

template <typename T>
void adam_dispatch(T* param, const T* grad, T* m, T* v, T* v_max, int64_t n, const AdamParams& a) {
  const WeightDecay decay = a.weight_decay == 0.0       ? WeightDecay::None
                            : a.decoupled_weight_decay ? WeightDecay::Decoupled
                                                       : WeightDecay::L2;
  auto run = [&]<WeightDecay kDecay>() {
    if (a.amsgrad) adam_kernel<T, kDecay, true>(param, grad, m, v, v_max, n, a);
    else adam_kernel<T, kDecay, false>(param, grad, m, v, v_max, n, a);
  };
  switch (decay) {
    case WeightDecay::None: return run.template operator()<WeightDecay::None>();
    case WeightDecay::L2: return run.template operator()<WeightDecay::L2>();
    case WeightDecay::Decoupled: return run.template operator()<WeightDecay::Decoupled>();
  }
}

}  // namespace

void CpuBackend::adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                           Tensor* max_exp_avg_sq, const AdamParams& p) {
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &exp_avg, &exp_avg_sq, max_exp_avg_sq}) {
    if (!t) continue;
    HG_CHECK(t->is_contiguous() && t->numel() == param.numel() && t->dtype() == param.dtype(),
             "adam_step kernel: expects contiguous operands of one size and dtype, got {} for parameter {}",
             t->desc(), param.desc());
  }
  HG_CHECK(p.amsgrad == (max_exp_avg_sq != nullptr), "adam_step kernel: max_exp_avg_sq must be given exactly with amsgrad");
  HG_DISPATCH_FLOATING(param.dtype(), "adam_step", [&] {
    adam_dispatch<scalar_t>(param.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), exp_avg.data_ptr<scalar_t>(),
                            exp_avg_sq.data_ptr<scalar_t>(),
                            max_exp_avg_sq ? max_exp_avg_sq->data_ptr<scalar_t>() : nullptr, param.numel(), p);
  });
}

}  // namespace hg::cpu
