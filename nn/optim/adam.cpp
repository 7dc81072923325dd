#include <hopgrad/nn/optim/adam.h>

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
    : OptimizerBase("Adam", single_group("Adam", std::move(params), options)) {}

void Adam::step() {
  NoGradGuard no_grad;
  for_each_update([](const Tensor& param, const Tensor& grad, AdamState& state, const AdamOptions& options) {
    detail::adam_update(param, grad, state, options, /*decoupled_weight_decay=*/false);
  });
}

namespace detail {

void adam_update(const Tensor& param, const Tensor& grad, AdamState& state, const AdamOptions& o,
                 bool decoupled_weight_decay) {
  if (state.step == 0) {
    state.exp_avg = zeros_like(param);
    state.exp_avg_sq = zeros_like(param);
  }
  // AMSGrad switched on after the state exists starts its running maximum from the current v.
  if (o.amsgrad() && !state.max_exp_avg_sq.defined())
    state.max_exp_avg_sq = state.step == 0 ? zeros_like(param) : state.exp_avg_sq.clone();
  AdamUpdate update;
  std::tie(update.beta1, update.beta2) = o.betas();
  update.lr = o.lr();
  update.eps = o.eps();
  update.weight_decay = o.weight_decay();
  update.amsgrad = o.amsgrad();
  update.decoupled_weight_decay = decoupled_weight_decay;
  update.step = state.step + 1;
  // One pass over the parameter and its state (ops/optim.cpp); the formula is in adam.h.
  adam_update_(param, grad, state.exp_avg, state.exp_avg_sq, o.amsgrad() ? state.max_exp_avg_sq : Tensor(), update);
  state.step = update.step;
}

}  // namespace detail
}  // namespace hg::optim
