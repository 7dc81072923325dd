#pragma once
// LayerNorm.
//
//   hg::nn::LayerNorm norm(hg::nn::LayerNormOptions({64}).eps(1e-6));
//   hg::Tensor y = norm(x);   // x [..., 64], normalised over the last dim
#include <cstdint>
#include <vector>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct LayerNormOptions {
  LayerNormOptions(std::vector<int64_t> normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  HG_ARG(std::vector<int64_t>, normalized_shape);
  HG_ARG(double, eps) = 1e-5;
  /// Learnable per-element weight (ones) and bias (zeros).
  HG_ARG(bool, elementwise_affine) = true;
};

/// y = (x − E[x]) / √(Var[x] + eps) · γ + β over the trailing dims `normalized_shape` (biased variance).
class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(const LayerNormOptions& options);

  Tensor forward(const Tensor& x);
  /// γ = 1, β = 0.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  LayerNormOptions options;
  Tensor weight;  ///< γ, shaped normalized_shape (undefined without elementwise_affine)
  Tensor bias;    ///< β
};
HG_MODULE(LayerNorm);

}  // namespace hg::nn
