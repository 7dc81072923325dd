// Dropout.
#include <hopgrad/nn/layers/dropout.h>

#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

DropoutImpl::DropoutImpl(const DropoutOptions& options_) : Module("Dropout"), options(options_) {
  HG_CHECK(options.p() >= 0.0 && options.p() <= 1.0, "Dropout: p must be in [0, 1], got {}", options.p());
}

// y = x ⊙ m / (1 − p) in training, y = x in evaluation
Tensor DropoutImpl::forward(const Tensor& x, Generator* gen) { return dropout(x, options.p(), is_training(), gen); }

void DropoutImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("Dropout(p={})", options.p());
}

}  // namespace hg::nn
