#pragma once
// Conv1d and Conv2d (zero padding, cross-correlation as in PyTorch).
//
//   hg::nn::Conv1d conv(hg::nn::Conv1dOptions(23, 32, 5).padding(2));        // [N, 23, L] → [N, 32, L]
//   hg::nn::Conv2d conv2(hg::nn::Conv2dOptions(3, 16, {3, 3}).stride(2));    // [N, 3, H, W] → [N, 16, H', W']
//   hg::nn::Conv1d same(hg::nn::Conv1dOptions(8, 8, 4).padding(hg::Padding::Same));  // [N, 8, L] → [N, 8, L]
#include <cstdint>
#include <initializer_list>
#include <optional>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

/// A convolution's padding: zeros on both sides of each spatial dim (`2`, `{1, 0}`), or computed from the kernel
/// as torch's padding="valid" / "same": `hg::Padding::Valid` (none) or `hg::Padding::Same` (output size = input
/// size, stride 1 only; an odd total dilation·(k − 1) puts the extra zero on the right).
template <size_t D> class ConvPadding {
 public:
  ConvPadding(int64_t value) : values_(value) {}
  ConvPadding(std::initializer_list<int64_t> values) : values_(values) {}
  ConvPadding(const ExpandingArray<D>& values) : values_(values) {}
  ConvPadding(Padding mode) : mode_(mode), values_(0) {}
  /// Valid or Same when the padding is computed from the kernel; empty for explicit values.
  const std::optional<Padding>& mode() const { return mode_; }
  /// The explicit padding per spatial dim (zeros when mode() is set).
  const ExpandingArray<D>& values() const { return values_; }
  bool operator==(const ConvPadding&) const = default;

 private:
  std::optional<Padding> mode_;
  ExpandingArray<D> values_;
};

template <size_t D> struct ConvOptions {
  ConvOptions(int64_t in_channels, int64_t out_channels, ExpandingArray<D> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  HG_ARG(int64_t, in_channels);
  HG_ARG(int64_t, out_channels);
  HG_ARG(ExpandingArray<D>, kernel_size);
  HG_ARG(ExpandingArray<D>, stride) = 1;
  /// Zeros added on both sides of each spatial dim, or hg::Padding::Same / Valid.
  HG_ARG(ConvPadding<D>, padding) = 0;
  HG_ARG(ExpandingArray<D>, dilation) = 1;
  /// Channels split into this many independent groups (in_channels and out_channels must be divisible by it).
  HG_ARG(int64_t, groups) = 1;
  HG_ARG(bool, bias) = true;
};
using Conv1dOptions = ConvOptions<1>;
using Conv2dOptions = ConvOptions<2>;

/// Shared state of Conv1d/Conv2d: weight [out, in/groups, k...], bias [out], PyTorch's default initialisation.
template <size_t D> class ConvNdImpl : public Module {
 public:
  explicit ConvNdImpl(const ConvOptions<D>& options);
  /// W ~ kaiming_uniform(a = √5) = U(±1/√fan_in), b ~ U(±1/√fan_in), fan_in = in/groups · ∏k.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  ConvOptions<D> options;
  Tensor weight;  ///< [out_channels, in_channels / groups, kernel...]
  Tensor bias;    ///< [out_channels], undefined without bias

 protected:
  /// Checks that x is [N, in, spatial...] or unbatched [in, spatial...], naming the module.
  void check_input(const Tensor& x) const;
};

/// y[n, o] = b[o] + Σ_c Σ_k W[o, c, k] · x[n, c, stride·l + dilation·k − padding]
class Conv1dImpl : public ConvNdImpl<1> {
 public:
  using ConvNdImpl<1>::ConvNdImpl;
  Conv1dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : ConvNdImpl<1>(Conv1dOptions(in_channels, out_channels, kernel_size)) {}
  /// x [N, in, L] or [in, L].
  Tensor forward(const Tensor& x);
};
HG_MODULE(Conv1d);

/// The 2-D cross-correlation of x [N, in, H, W] (or [in, H, W]) with W [out, in/groups, KH, KW], plus b.
class Conv2dImpl : public ConvNdImpl<2> {
 public:
  using ConvNdImpl<2>::ConvNdImpl;
  Conv2dImpl(int64_t in_channels, int64_t out_channels, ExpandingArray<2> kernel_size)
      : ConvNdImpl<2>(Conv2dOptions(in_channels, out_channels, kernel_size)) {}
  Tensor forward(const Tensor& x);
};
HG_MODULE(Conv2d);

}  // namespace hg::nn
