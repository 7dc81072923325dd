// Activation modules: thin wrappers of the elementwise ops, so they can sit in a Sequential.
#include <hopgrad/nn/layers/activation.h>

#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

Tensor ReLUImpl::forward(const Tensor& x) { return relu(x); }
void ReLUImpl::pretty_print(std::ostream& stream) const { stream << "ReLU()"; }

GELUImpl::GELUImpl(const GELUOptions& options_) : Module("GELU"), options(options_) {
  HG_CHECK(options.approximate() == "none" || options.approximate() == "tanh",
           "GELU: approximate must be \"none\" or \"tanh\", got \"{}\"", options.approximate());
}
Tensor GELUImpl::forward(const Tensor& x) { return gelu(x, options.approximate()); }
void GELUImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("GELU(approximate={})", options.approximate());
}

Tensor SELUImpl::forward(const Tensor& x) { return selu(x); }
void SELUImpl::pretty_print(std::ostream& stream) const { stream << "SELU()"; }

Tensor ELUImpl::forward(const Tensor& x) { return elu(x, options.alpha()); }
void ELUImpl::pretty_print(std::ostream& stream) const { stream << fmt::format("ELU(alpha={})", options.alpha()); }

Tensor TanhImpl::forward(const Tensor& x) { return tanh(x); }
void TanhImpl::pretty_print(std::ostream& stream) const { stream << "Tanh()"; }

Tensor SigmoidImpl::forward(const Tensor& x) { return sigmoid(x); }
void SigmoidImpl::pretty_print(std::ostream& stream) const { stream << "Sigmoid()"; }

}  // namespace hg::nn
