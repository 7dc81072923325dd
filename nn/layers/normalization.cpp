// LayerNorm.
#include <hopgrad/nn/layers/normalization.h>

#include <ostream>

#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

LayerNormImpl::LayerNormImpl(const LayerNormOptions& options_) : Module("LayerNorm"), options(options_) {
  const auto& shape = options.normalized_shape();
  HG_CHECK(!shape.empty(), "LayerNorm: normalized_shape must have at least one dim");
  for (int64_t size : shape)
    HG_CHECK(size > 0, "LayerNorm: normalized_shape must be positive, got [{}]", fmt::join(shape, ", "));
  HG_CHECK(options.eps() >= 0.0, "LayerNorm: eps must be non-negative, got {}", options.eps());
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", empty(shape, kFloat32));
    bias = register_parameter("bias", empty(shape, kFloat32));
  }
  reset_parameters();
}

void LayerNormImpl::reset_parameters() {
  if (!options.elementwise_affine()) return;
  init::ones_(weight);
  init::zeros_(bias);
}

// y = (x − mean) / √(var + eps) ⊙ weight + bias
Tensor LayerNormImpl::forward(const Tensor& x) {
  const auto& shape = options.normalized_shape();
  auto rank = static_cast<int64_t>(shape.size());
  bool matches = x.dim() >= rank;
  for (int64_t i = 0; matches && i < rank; ++i) matches = x.size(x.dim() - rank + i) == shape[i];
  HG_CHECK(matches, "LayerNorm(normalized_shape=[{}]): expected input [..., {}], got {}", fmt::join(shape, ", "),
           fmt::join(shape, ", "), x.desc());
  return layer_norm(x, shape, weight, bias, options.eps());
}

void LayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("LayerNorm([{}], eps={}, elementwise_affine={})", fmt::join(options.normalized_shape(), ", "),
                        options.eps(), options.elementwise_affine());
}

}  // namespace hg::nn
