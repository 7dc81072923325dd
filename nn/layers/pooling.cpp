// MaxPool1d and MaxPool2d: the pooling ops check shapes, kernel, stride and padding themselves.
#include <hopgrad/nn/layers/pooling.h>

#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

Tensor MaxPool1dImpl::forward(const Tensor& x) {
  return max_pool1d(x, options.kernel_size()[0], options.stride()[0], options.padding()[0]);
}

void MaxPool1dImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("MaxPool1d(kernel_size={}, stride={}, padding={})", options.kernel_size()[0],
                        options.stride()[0], options.padding()[0]);
}

Tensor MaxPool2dImpl::forward(const Tensor& x) {
  return max_pool2d(x, options.kernel_size(), options.stride(), options.padding());
}

void MaxPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("MaxPool2d(kernel_size={}, stride={}, padding={})", options.kernel_size(), options.stride(),
                        options.padding());
}

}  // namespace hg::nn
