#include <hopgrad/nn/optim/adamw.h>

#include <hopgrad/autograd/grad_mode.h>

namespace hg::optim {

AdamW::AdamW(std::vector<ParamGroup<AdamWOptions>> groups) : OptimizerBase("AdamW", std::move(groups)) {}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : OptimizerBase("AdamW", single_group("AdamW", std::move(params), options)) {}

void AdamW::step() {
  NoGradGuard no_grad;
  for_each_update([](const Tensor& param, const Tensor& grad, AdamState& state, const AdamWOptions& options) {
    detail::adam_update(param, grad, state, options, /*decoupled_weight_decay=*/true);
  });
}

}  // namespace hg::optim
