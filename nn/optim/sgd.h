#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay
// (torch.optim.SGD, PyTorch 1.13).
//
//   hg::optim::SGD opt(params, hg::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
#include <hopgrad/nn/optim/optimizer.h>

namespace hg::optim {

/// SGD hyperparameters; the learning rate has no default, as in PyTorch.
class SGDOptions {
 public:
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) { lr_ = v; return *this; }
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  SGDOptions& dampening(double v) { dampening_ = v; return *this; }
  SGDOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

  /// Throws naming `optimizer` for a negative (or NaN) lr, momentum or weight decay, and for Nesterov
  /// momentum without momentum or with dampening.
  void validate(const char* optimizer) const;
  template <typename Self, typename Visit>
  static void visit(Self& o, Visit&& visit) {
    visit("lr", o.lr_);
    visit("momentum", o.momentum_);
    visit("dampening", o.dampening_);
    visit("weight_decay", o.weight_decay_);
    visit("nesterov", o.nesterov_);
  }

 private:
  double lr_;
  double momentum_ = 0.0;
  double dampening_ = 0.0;
  double weight_decay_ = 0.0;
  bool nesterov_ = false;
};

/// Per-parameter SGD state: the momentum buffer (undefined until the first step with momentum != 0).
struct SGDState {
  Tensor momentum_buffer;
  template <typename Self, typename Visit>
  static void visit(Self& s, Visit&& visit) { visit("momentum_buffer", s.momentum_buffer, true); }
};

/// For each parameter p with gradient g (μ momentum, τ dampening, λ weight decay, η lr):
///   d = g + λ·p;  b = d at the first step, else μ·b + (1 − τ)·d;  d = d + μ·b (Nesterov) or b;  p ← p − η·d
class SGD : public detail::OptimizerBase<SGDOptions, SGDState> {
 public:
  SGD(std::vector<ParamGroup<SGDOptions>> groups);
  SGD(std::vector<Tensor> params, SGDOptions options);
  void step() override;
};

}  // namespace hg::optim
