#pragma once
// Dropout: active in training mode only.
//
//   hg::nn::Dropout drop(0.1);   drop->eval();   // now the identity
#include <hopgrad/core/generator.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct DropoutOptions {
  DropoutOptions(double p = 0.5) : p_(p) {}
  /// Probability of zeroing an element, in [0, 1].
  HG_ARG(double, p);
};

/// Training: y = x ⊙ m / (1 − p), m ~ Bernoulli(1 − p); evaluation: y = x.
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(const DropoutOptions& options = {});
  explicit DropoutImpl(double p) : DropoutImpl(DropoutOptions(p)) {}

  /// Masks are drawn from `gen` (null: the input device's default generator).
  Tensor forward(const Tensor& x, Generator* gen = nullptr);
  void pretty_print(std::ostream& stream) const override;

  DropoutOptions options;
};
HG_MODULE(Dropout);

}  // namespace hg::nn
