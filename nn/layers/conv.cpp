// Conv1d and Conv2d.
#include <hopgrad/nn/layers/conv.h>

#include <cmath>
#include <ostream>

#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

namespace {
constexpr const char* conv_name(size_t d) { return d == 1 ? "Conv1d" : "Conv2d"; }
}  // namespace

template <size_t D>
ConvNdImpl<D>::ConvNdImpl(const ConvOptions<D>& options_) : Module(conv_name(D)), options(options_) {
  const char* name = conv_name(D);
  int64_t in = options.in_channels(), out = options.out_channels(), groups = options.groups();
  HG_CHECK(in > 0 && out > 0, "{}: in_channels and out_channels must be positive, got {} and {}", name, in, out);
  HG_CHECK(groups > 0 && in % groups == 0 && out % groups == 0,
           "{}: groups={} must be positive and divide in_channels={} and out_channels={}", name, groups, in, out);
  Shape weight_shape{out, in / groups};
  for (size_t i = 0; i < D; ++i) {
    HG_CHECK(options.kernel_size()[i] > 0 && options.stride()[i] > 0 && options.dilation()[i] > 0 &&
                 options.padding().values()[i] >= 0,
             "{}: expected positive kernel_size, stride, dilation and non-negative padding, got kernel_size={}, "
             "stride={}, dilation={}, padding={}",
             name, options.kernel_size(), options.stride(), options.dilation(), options.padding().values());
    HG_CHECK(options.padding().mode() != Padding::Same || options.stride()[i] == 1,
             "{}: padding Same is not supported for strided convolutions (stride={}), as in torch", name,
             options.stride());
    weight_shape.push_back(options.kernel_size()[i]);
  }
  weight = register_parameter("weight", empty(weight_shape, kFloat32));
  if (options.bias()) bias = register_parameter("bias", empty({out}, kFloat32));
  reset_parameters();
}

template <size_t D> void ConvNdImpl<D>::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(static_cast<double>(init::calculate_fan_in_and_fan_out(weight).first));
    init::uniform_(bias, -bound, bound);
  }
}

template <size_t D> void ConvNdImpl<D>::check_input(const Tensor& x) const {
  auto batched = static_cast<int64_t>(D + 2);
  bool ok = (x.dim() == batched || x.dim() == batched - 1) && x.size(x.dim() - static_cast<int64_t>(D) - 1) ==
                                                                  options.in_channels();
  HG_CHECK(ok, "{}({}, {}, kernel_size={}): expected input [N, {}, {}] or [{}, {}], got {}", conv_name(D),
           options.in_channels(), options.out_channels(), options.kernel_size(), options.in_channels(),
           D == 1 ? "L" : "H, W", options.in_channels(), D == 1 ? "L" : "H, W", x.desc());
}

template <size_t D> void ConvNdImpl<D>::pretty_print(std::ostream& stream) const {
  stream << fmt::format("{}({}, {}, kernel_size={}, stride={}", conv_name(D), options.in_channels(),
                        options.out_channels(), options.kernel_size(), options.stride());
  if (options.padding().mode())
    stream << (options.padding().mode() == Padding::Same ? ", padding=same" : ", padding=valid");
  else if (options.padding().values() != ExpandingArray<D>(0))
    stream << fmt::format(", padding={}", options.padding().values());
  if (options.dilation() != ExpandingArray<D>(1)) stream << fmt::format(", dilation={}", options.dilation());
  if (options.groups() != 1) stream << fmt::format(", groups={}", options.groups());
  if (!options.bias()) stream << ", bias=false";
  stream << ")";
}

template class ConvNdImpl<1>;
template class ConvNdImpl<2>;

// y = W ⋆ x + b
Tensor Conv1dImpl::forward(const Tensor& x) {
  check_input(x);
  const ConvPadding<1>& padding = options.padding();
  if (padding.mode())
    return conv1d(x, weight, bias, options.stride()[0], *padding.mode(), options.dilation()[0], options.groups());
  return conv1d(x, weight, bias, options.stride()[0], padding.values()[0], options.dilation()[0], options.groups());
}

// y = W ⋆ x + b
Tensor Conv2dImpl::forward(const Tensor& x) {
  check_input(x);
  const ConvPadding<2>& padding = options.padding();
  if (padding.mode())
    return conv2d(x, weight, bias, options.stride(), *padding.mode(), options.dilation(), options.groups());
  return conv2d(x, weight, bias, options.stride(), padding.values(), options.dilation(), options.groups());
}

}  // namespace hg::nn
