#pragma once
// MaxPool1d and MaxPool2d.
//
//   hg::nn::MaxPool2d pool(hg::nn::MaxPool2dOptions(2));   // [N, C, H, W] → [N, C, ⌊H/2⌋, ⌊W/2⌋]
//   hg::nn::MaxPool1d ceil(hg::nn::MaxPool1dOptions(2).ceil_mode(true));   // [N, C, L] → [N, C, ⌈L/2⌉]
#include <optional>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

template <size_t D> struct MaxPoolOptions {
  MaxPoolOptions(ExpandingArray<D> kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}
  HG_ARG(ExpandingArray<D>, kernel_size);
  /// Defaults to kernel_size.
  HG_ARG(ExpandingArray<D>, stride);
  /// −inf added on both sides (at most half the kernel).
  HG_ARG(ExpandingArray<D>, padding) = 0;
  /// Distance between the window's taps.
  HG_ARG(ExpandingArray<D>, dilation) = 1;
  /// Rounds the output size up instead of down (a last window that starts inside the input or the left padding
  /// but runs past the end is kept), as torch.
  HG_ARG(bool, ceil_mode) = false;
};
using MaxPool1dOptions = MaxPoolOptions<1>;
using MaxPool2dOptions = MaxPoolOptions<2>;

/// y[n, c, l] = max_k x[n, c, stride·l + dilation·k − padding], x [N, C, L] or [C, L]
class MaxPool1dImpl : public Module {
 public:
  explicit MaxPool1dImpl(const MaxPool1dOptions& options) : Module("MaxPool1d"), options(options) {}
  explicit MaxPool1dImpl(int64_t kernel_size) : MaxPool1dImpl(MaxPool1dOptions(kernel_size)) {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  MaxPool1dOptions options;
};
HG_MODULE(MaxPool1d);

/// y[n, c, i, j] = max over the (dilated) window at (stride·i − padding, stride·j − padding), x [N, C, H, W] or
/// [C, H, W]
class MaxPool2dImpl : public Module {
 public:
  explicit MaxPool2dImpl(const MaxPool2dOptions& options) : Module("MaxPool2d"), options(options) {}
  explicit MaxPool2dImpl(ExpandingArray<2> kernel_size) : MaxPool2dImpl(MaxPool2dOptions(kernel_size)) {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  MaxPool2dOptions options;
};
HG_MODULE(MaxPool2d);

}  // namespace hg::nn
