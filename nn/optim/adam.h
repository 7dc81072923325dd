#pragma once
// Adam (Kingma & Ba, 2015) with optional AMSGrad and L2 weight decay added to the gradient
// (torch.optim.Adam, PyTorch 1.13). For decoupled weight decay use AdamW (adamw.h).
//
//   hg::optim::Adam opt(params, hg::optim::AdamOptions(1e-3).eps(1e-4));  // DeepRC's eps
#include <tuple>

#include <hopgrad/nn/optim/optimizer.h>

namespace hg::optim {

/// Adam hyperparameters with PyTorch's defaults.
class AdamOptions {
 public:
  AdamOptions(double lr = 1e-3) : lr_(lr) {}
  AdamOptions& lr(double v) { lr_ = v; return *this; }
  AdamOptions& betas(std::tuple<double, double> v) { std::tie(beta1_, beta2_) = v; return *this; }
  AdamOptions& eps(double v) { eps_ = v; return *this; }
  AdamOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  AdamOptions& amsgrad(bool v) { amsgrad_ = v; return *this; }
  double lr() const { return lr_; }
  std::tuple<double, double> betas() const { return {beta1_, beta2_}; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

  /// Throws naming `optimizer` unless lr >= 0, eps >= 0, weight_decay >= 0 and both betas lie in [0, 1).
  void validate(const char* optimizer) const;
  template <typename Self, typename Visit>
  static void visit(Self& o, Visit&& visit) {
    visit("lr", o.lr_);
    visit("beta1", o.beta1_);
    visit("beta2", o.beta2_);
    visit("eps", o.eps_);
    visit("weight_decay", o.weight_decay_);
    visit("amsgrad", o.amsgrad_);
  }

 protected:
  AdamOptions(double lr, double weight_decay) : lr_(lr), weight_decay_(weight_decay) {}

 private:
  double lr_;
  double beta1_ = 0.9;
  double beta2_ = 0.999;
  double eps_ = 1e-8;
  double weight_decay_ = 0.0;
  bool amsgrad_ = false;
};

/// Per-parameter Adam/AdamW state (all undefined, step 0, until the parameter's first update).
struct AdamState {
  int64_t step = 0;
  Tensor exp_avg;         ///< m, the running mean of gradients
  Tensor exp_avg_sq;      ///< v, the running mean of squared gradients
  Tensor max_exp_avg_sq;  ///< max over steps of v (AMSGrad only)
  template <typename Self, typename Visit>
  static void visit(Self& s, Visit&& visit) {
    visit("exp_avg", s.exp_avg, true);
    visit("exp_avg_sq", s.exp_avg_sq, true);
    visit("max_exp_avg_sq", s.max_exp_avg_sq, false);
  }
};

/// For each parameter p with gradient g at step t (β₁, β₂, ε, λ weight decay, η lr):
///   g ← g + λ·p;  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  (AMSGrad: v̂ ← max(v̂, v), used for v)
///   p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
class Adam : public detail::OptimizerBase<AdamOptions, AdamState> {
 public:
  Adam(std::vector<ParamGroup<AdamOptions>> groups);
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  void step() override;
};

namespace detail {
/// One Adam update of `param` in place (under NoGradGuard). `decoupled_weight_decay` selects AdamW's
/// p ← p·(1 − η·λ) instead of adding λ·p to the gradient.
void adam_update(const Tensor& param, const Tensor& grad, AdamState& state, const AdamOptions& options,
                 bool decoupled_weight_decay);
}  // namespace detail

}  // namespace hg::optim
