#pragma once
// Activation modules: ReLU, GELU, SELU, ELU, Tanh, Sigmoid (each y = f(x) elementwise).
//
//   auto mlp = hg::nn::Sequential(hg::nn::Linear(4, 8), hg::nn::GELU(), hg::nn::Linear(8, 1), hg::nn::Sigmoid());
#include <string>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

/// y = max(x, 0)
class ReLUImpl : public Module {
 public:
  ReLUImpl() : Module("ReLU") {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
};
HG_MODULE(ReLU);

struct GELUOptions {
  /// "none": x·Φ(x) exactly; "tanh": the tanh approximation.
  HG_ARG(std::string, approximate) = "none";
};

/// y = x·Φ(x)
class GELUImpl : public Module {
 public:
  explicit GELUImpl(const GELUOptions& options = {});
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  GELUOptions options;
};
HG_MODULE(GELU);

/// y = λ·(max(0, x) + min(0, α·(eˣ − 1))), λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al. 2017)
class SELUImpl : public Module {
 public:
  SELUImpl() : Module("SELU") {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
};
HG_MODULE(SELU);

struct ELUOptions {
  HG_ARG(double, alpha) = 1.0;
};

/// y = x for x > 0, α·(eˣ − 1) otherwise
class ELUImpl : public Module {
 public:
  explicit ELUImpl(const ELUOptions& options = {}) : Module("ELU"), options(options) {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  ELUOptions options;
};
HG_MODULE(ELU);

/// y = tanh(x)
class TanhImpl : public Module {
 public:
  TanhImpl() : Module("Tanh") {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
};
HG_MODULE(Tanh);

/// y = 1 / (1 + e⁻ˣ)
class SigmoidImpl : public Module {
 public:
  SigmoidImpl() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
};
HG_MODULE(Sigmoid);

}  // namespace hg::nn
