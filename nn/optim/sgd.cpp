#include <hopgrad/nn/optim/sgd.h>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/ops.h>

namespace hg::optim {

void SGDOptions::validate(const char* optimizer) const {
  HG_CHECK(lr_ >= 0.0, "{}: invalid learning rate {} (expected lr >= 0)", optimizer, lr_);
  HG_CHECK(momentum_ >= 0.0, "{}: invalid momentum {} (expected momentum >= 0)", optimizer, momentum_);
  HG_CHECK(weight_decay_ >= 0.0, "{}: invalid weight_decay {} (expected weight_decay >= 0)", optimizer,
           weight_decay_);
  HG_CHECK(!std::isnan(dampening_), "{}: invalid dampening {}", optimizer, dampening_);
  HG_CHECK(!nesterov_ || (momentum_ > 0.0 && dampening_ == 0.0),
           "{}: Nesterov momentum requires a momentum and zero dampening (got momentum {}, dampening {})", optimizer,
           momentum_, dampening_);
}

SGD::SGD(std::vector<ParamGroup<SGDOptions>> groups) : OptimizerBase("SGD", std::move(groups)) {}
SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : OptimizerBase("SGD", single_group("SGD", std::move(params), options)) {}

void SGD::step() {
  NoGradGuard no_grad;
  for_each_update([](const Tensor& param, const Tensor& grad, SGDState& state, const SGDOptions& o) {
    // d = g + λ·p
    Tensor direction = o.weight_decay() != 0.0 ? add(grad, param, o.weight_decay()) : grad;
    if (o.momentum() != 0.0) {
      Tensor& buffer = state.momentum_buffer;
      if (!buffer.defined()) {
        buffer = direction.detach().clone();  // b₁ = d₁, undamped, as torch
      } else {
        buffer.mul_(o.momentum()).add_(direction, 1.0 - o.dampening());  // b ← μ·b + (1 − τ)·d
      }
      direction = o.nesterov() ? add(direction, buffer, o.momentum()) : buffer;  // d + μ·b  or  b
    }
    param.add_(direction, -o.lr());  // p ← p − η·d
  });
}

}  // namespace hg::optim
