#include <hopgrad/nn/optim/adam.h>

#include <cmath>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/ops.h>

namespace hg::optim {

void AdamOptions::validate(const char* optimizer) const {
  HG_CHECK(lr_ >= 0.0, "{}: invalid learning rate {} (expected lr >= 0)", optimizer, lr_);
  HG_CHECK(eps_ >= 0.0, "{}: invalid epsilon {} (expected eps >= 0)", optimizer, eps_);
  HG_CHECK(beta1_ >= 0.0 && beta1_ < 1.0, "{}: invalid beta parameter at index 0: {} (expected 0 <= beta1 < 1)",
           optimizer, beta1_);
  HG_CHECK(beta2_ >= 0.0 && beta2_ < 1.0, "{}: invalid beta parameter at index 1: {} (expected 0 <= beta2 < 1)",
           optimizer, beta2_);
  HG_CHECK(weight_decay_ >= 0.0, "{}: invalid weight_decay {} (expected weight_decay >= 0)", optimizer,
           weight_decay_);
}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups) : OptimizerBase("Adam", std::move(groups)) {}
Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : OptimizerBase("Adam", {ParamGroup<AdamOptions>{std::move(params), options}}) {}

void Adam::step() {
  NoGradGuard no_grad;
  for_each_update([](const Tensor& param, const Tensor& grad, AdamState& state, const AdamOptions& options) {
    detail::adam_update(param, grad, state, options, /*decoupled_weight_decay=*/false);
  });
}

namespace detail {

void adam_update(const Tensor& param, const Tensor& grad, AdamState& state, const AdamOptions& o,
                 bool decoupled_weight_decay) {
  auto [beta1, beta2] = o.betas();
  const double lr = o.lr(), weight_decay = o.weight_decay();
  if (state.step == 0) {
    state.exp_avg = zeros_like(param);
    state.exp_avg_sq = zeros_like(param);
  }
  // AMSGrad switched on after the state exists starts its running maximum from the current v.
  if (o.amsgrad() && !state.max_exp_avg_sq.defined())
    state.max_exp_avg_sq = state.step == 0 ? zeros_like(param) : state.exp_avg_sq.clone();
  ++state.step;

  Tensor g = grad;
  if (weight_decay != 0.0) {
    if (decoupled_weight_decay)
      param.mul_(1.0 - lr * weight_decay);  // AdamW: p ← p·(1 − η·λ)
    else
      g = add(grad, param, weight_decay);  // Adam: g ← g + λ·p
  }
  state.exp_avg.mul_(beta1).add_(g, 1.0 - beta1);          // m ← β₁·m + (1 − β₁)·g
  addcmul_(state.exp_avg_sq.mul_(beta2), g, g, 1.0 - beta2);  // v ← β₂·v + (1 − β₂)·g²

  const double t = static_cast<double>(state.step);
  const double bias_correction1 = 1.0 - std::pow(beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
  const Tensor* second_moment = &state.exp_avg_sq;
  if (o.amsgrad()) {
    state.max_exp_avg_sq.copy_(maximum(state.max_exp_avg_sq, state.exp_avg_sq));  // v̂ ← max(v̂, v)
    second_moment = &state.max_exp_avg_sq;
  }
  // p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
  Tensor denominator = sqrt(*second_moment);
  denominator.div_(bias_correction2_sqrt).add_(o.eps());
  addcdiv_(param, state.exp_avg, denominator, -lr / bias_correction1);
}

}  // namespace detail
}  // namespace hg::optim
