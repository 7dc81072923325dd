#pragma once
// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019; torch.optim.AdamW, PyTorch 1.13).
//
//   hg::optim::AdamW opt(params, hg::optim::AdamWOptions(3e-4).weight_decay(0.05));
#include <hopgrad/nn/optim/adam.h>

namespace hg::optim {

/// AdamW hyperparameters: Adam's, with PyTorch's AdamW default weight decay of 1e-2.
class AdamWOptions : public AdamOptions {
 public:
  AdamWOptions(double lr = 1e-3) : AdamOptions(lr, 1e-2) {}
  AdamWOptions& lr(double v) { AdamOptions::lr(v); return *this; }
  AdamWOptions& betas(std::tuple<double, double> v) { AdamOptions::betas(v); return *this; }
  AdamWOptions& eps(double v) { AdamOptions::eps(v); return *this; }
  AdamWOptions& weight_decay(double v) { AdamOptions::weight_decay(v); return *this; }
  AdamWOptions& amsgrad(bool v) { AdamOptions::amsgrad(v); return *this; }
  using AdamOptions::amsgrad;
  using AdamOptions::betas;
  using AdamOptions::eps;
  using AdamOptions::lr;
  using AdamOptions::weight_decay;
};

/// As Adam, except that weight decay shrinks the parameter directly instead of entering the moments:
///   p ← p·(1 − η·λ);  m, v from g alone;  p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
class AdamW : public detail::OptimizerBase<AdamWOptions, AdamState> {
 public:
  AdamW(std::vector<ParamGroup<AdamWOptions>> groups);
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  void step() override;
};

}  // namespace hg::optim
