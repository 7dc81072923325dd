// Flatten.
#include <hopgrad/nn/layers/flatten.h>

#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

Tensor FlattenImpl::forward(const Tensor& x) { return flatten(x, options.start_dim(), options.end_dim()); }

void FlattenImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("Flatten(start_dim={}, end_dim={})", options.start_dim(), options.end_dim());
}

}  // namespace hg::nn
