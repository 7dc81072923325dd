// MaxPool1d and MaxPool2d: the pooling ops check shapes, kernel, stride, padding and dilation themselves.
#include <hopgrad/nn/layers/pooling.h>

#include <ostream>
#include <string>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

namespace {
// Dilation and ceil_mode are printed only when set, so the common case reads as short as before.
template <size_t D> std::string pool_extras(const MaxPoolOptions<D>& options) {
  std::string extras;
  if (options.dilation() != ExpandingArray<D>(1)) {
    if constexpr (D == 1)
      extras += fmt::format(", dilation={}", options.dilation()[0]);
    else
      extras += fmt::format(", dilation={}", options.dilation());
  }
  if (options.ceil_mode()) extras += ", ceil_mode=true";
  return extras;
}
}  // namespace

Tensor MaxPool1dImpl::forward(const Tensor& x) {
  // The functional reads stride 0 as "the kernel size"; the options already hold that default, so a 0 here was
  // set by the user (as MaxPool2d and torch.nn.MaxPool1d, refused).
  HG_CHECK(options.stride()[0] >= 1, "MaxPool1d: stride must be positive, got {}", options.stride()[0]);
  return max_pool1d(x, options.kernel_size()[0], options.stride()[0], options.padding()[0], options.dilation()[0],
                    options.ceil_mode());
}

void MaxPool1dImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("MaxPool1d(kernel_size={}, stride={}, padding={}{})", options.kernel_size()[0],
                        options.stride()[0], options.padding()[0], pool_extras(options));
}

Tensor MaxPool2dImpl::forward(const Tensor& x) {
  return max_pool2d(x, options.kernel_size(), options.stride(), options.padding(), options.dilation(),
                    options.ceil_mode());
}

void MaxPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("MaxPool2d(kernel_size={}, stride={}, padding={}{})", options.kernel_size(), options.stride(),
                        options.padding(), pool_extras(options));
}

}  // namespace hg::nn
