// Linear and Identity layers.
#include <hopgrad/nn/layers/linear.h>

#include <cmath>
#include <ostream>

#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

LinearImpl::LinearImpl(const LinearOptions& options_) : Module("Linear"), options(options_) {
  HG_CHECK(options.in_features() >= 0 && options.out_features() >= 0,
           "Linear: in_features and out_features must be non-negative, got {} and {}", options.in_features(),
           options.out_features());
  weight = register_parameter("weight", empty({options.out_features(), options.in_features()}, kFloat32));
  if (options.bias()) bias = register_parameter("bias", empty({options.out_features()}, kFloat32));
  reset_parameters();
}

void LinearImpl::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = options.in_features() > 0 ? 1.0 / std::sqrt(static_cast<double>(options.in_features())) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

// y = x Wᵀ + b
Tensor LinearImpl::forward(const Tensor& x) {
  HG_CHECK(x.dim() >= 1 && x.size(-1) == options.in_features(),
           "Linear(in_features={}, out_features={}): expected input [..., {}], got {}", options.in_features(),
           options.out_features(), options.in_features(), x.desc());
  return linear(x, weight, bias);
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("Linear(in_features={}, out_features={}, bias={})", options.in_features(),
                        options.out_features(), options.bias());
}

void IdentityImpl::pretty_print(std::ostream& stream) const { stream << "Identity()"; }

}  // namespace hg::nn
