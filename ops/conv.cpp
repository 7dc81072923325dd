// Convolutions: conv2d, and conv1d run as conv2d over height-1 images. The gradients of a convolution are
// themselves recorded ops (conv2d_input_grad, conv2d_weight_grad) whose backward formulas are written with
// conv2d and each other, so gradients of gradients (gradgradcheck, gradient penalties) reuse the same three
// backend kernels on any device.
#include <algorithm>
#include <array>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// Output length along one dim, as torch: ⌊(in + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

Tensor convolution(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& p);
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& w, const Shape& x_sizes, const ConvParams& p);
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& w_sizes, const ConvParams& p);

// y = x ⋆ w + b, the cross-correlation of x [N, Cin, H, W] with w [Cout, Cin/groups, KH, KW]
// ∂L/∂x = conv2d_input_grad(g, w),  ∂L/∂w = conv2d_weight_grad(x, g),  ∂L/∂b = Σ_{n, oh, ow} g
Tensor convolution(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& p) {
  Shape out_sizes{x.size(0), w.size(0),
                  conv_output_size(x.size(2), w.size(2), p.stride[0], p.padding[0], p.dilation[0]),
                  conv_output_size(x.size(3), w.size(3), p.stride[1], p.padding[1], p.dilation[1])};
  Tensor out = empty(out_sizes, x.dtype(), x.device());
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  // x as it is: a backend reads strided inputs in whatever way suits its kernels (see Backend::conv2d).
  backend_for(x.device()).conv2d(x.detach(), w.detach().contiguous(), b.defined() ? &b : nullptr, p, out);
  if (any_requires_grad(x, w, bias)) {
    // ∂L/∂x needs only w and ∂L/∂w only x: save just what will be used.
    SavedTensor saved_x = w.requires_grad() ? SavedTensor(x) : SavedTensor();
    SavedTensor saved_w = x.requires_grad() ? SavedTensor(w) : SavedTensor();
    record_op("conv2d", {x, w, bias}, out,
              [saved_x, saved_w, x_sizes = x.sizes(), w_sizes = w.sizes(), p](const Tensors& g,
                                                                              const BackwardContext& c) {
                Tensors r(3);
                if (c.needs_input_grad(0)) r[0] = conv2d_input_grad(g[0], saved_w.unpack(c), x_sizes, p);
                if (c.needs_input_grad(1)) r[1] = conv2d_weight_grad(saved_x.unpack(c), g[0], w_sizes, p);
                if (c.needs_input_grad(2)) r[2] = sum(g[0], {0, 2, 3});
                return r;
              });
  }
  return out;
}

// gx = conv2d_input_grad(g, w) = A_wᵀ g, where A_w x = x ⋆ w (a transposed convolution). It is bilinear, and
// ⟨γ, A_wᵀ g⟩ = ⟨A_w γ, g⟩ gives its gradients for an incoming γ:
// ∂/∂g = γ ⋆ w = conv2d(γ, w),  ∂/∂w = conv2d_weight_grad(γ, g)
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& w, const Shape& x_sizes, const ConvParams& p) {
  Tensor grad_x = empty(x_sizes, grad_out.dtype(), grad_out.device());
  backend_for(grad_out.device())
      .conv2d_backward_input(grad_out.detach().contiguous(), w.detach().contiguous(), p, grad_x);
  if (any_requires_grad(grad_out, w)) {
    record_op("conv2d_input_grad", {grad_out, w}, grad_x,
              [saved_g = SavedTensor(grad_out), saved_w = SavedTensor(w), w_sizes = w.sizes(), p](
                  const Tensors& gg, const BackwardContext& c) {
                Tensors r(2);
                if (c.needs_input_grad(0)) r[0] = convolution(gg[0], saved_w.unpack(c), Tensor(), p);
                if (c.needs_input_grad(1)) r[1] = conv2d_weight_grad(gg[0], saved_g.unpack(c), w_sizes, p);
                return r;
              });
  }
  return grad_x;
}

// gw = conv2d_weight_grad(x, g) = ∂⟨x ⋆ w, g⟩/∂w. It is bilinear, and ⟨ω, gw⟩ = ⟨x ⋆ ω, g⟩ gives its
// gradients for an incoming ω:  ∂/∂x = conv2d_input_grad(g, ω),  ∂/∂g = x ⋆ ω = conv2d(x, ω)
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& w_sizes, const ConvParams& p) {
  Tensor grad_w = empty(w_sizes, x.dtype(), x.device());
  backend_for(x.device()).conv2d_backward_weight(x.detach(), grad_out.detach().contiguous(), p, grad_w);
  if (any_requires_grad(x, grad_out)) {
    record_op("conv2d_weight_grad", {x, grad_out}, grad_w,
              [saved_x = SavedTensor(x), saved_g = SavedTensor(grad_out), x_sizes = x.sizes(), p](
                  const Tensors& gg, const BackwardContext& c) {
                Tensors r(2);
                if (c.needs_input_grad(0)) r[0] = conv2d_input_grad(saved_g.unpack(c), gg[0], x_sizes, p);
                if (c.needs_input_grad(1)) r[1] = convolution(saved_x.unpack(c), gg[0], Tensor(), p);
                return r;
              });
  }
  return grad_w;
}

// ---- argument checks ----------------------------------------------------------------------------------

// The entries of a 2-D geometry that a `spatial`-D op exposes (conv1d uses only the second).
Shape user_dims(const int64_t (&values)[2], int spatial) {
  Shape s;
  for (int i = 2 - spatial; i < 2; ++i) s.push_back(values[i]);
  return s;
}

// A conv2d size argument: one value (used for both dims) or two.
void read_pair(const char* name, IntArrayRef values, int64_t (&out)[2]) {
  HG_CHECK(values.size() == 1 || values.size() == 2, "conv2d: {} must have 1 or 2 values, got {}", name, values);
  out[0] = values[0];
  out[1] = values[values.size() - 1];
}

// Checks a convolution call in the user's terms: `spatial` (1 for conv1d, 2 for conv2d) trailing dims of x and
// w, whose geometry is held in the last `spatial` entries of p.
void check_conv(const char* op, int spatial, const Tensor& x, const Tensor& w, const Tensor& bias,
                const ConvParams& p) {
  const char* x_layout = spatial == 1 ? "[N, Cin, L] or unbatched [Cin, L]" : "[N, Cin, H, W] or unbatched [Cin, H, W]";
  const char* w_layout = spatial == 1 ? "[Cout, Cin/groups, K]" : "[Cout, Cin/groups, KH, KW]";
  Shape stride = user_dims(p.stride, spatial), padding = user_dims(p.padding, spatial),
        dilation = user_dims(p.dilation, spatial);
  for (int64_t s : stride) HG_CHECK(s >= 1, "{}: stride must be positive, got {}", op, stride);
  for (int64_t s : padding) HG_CHECK(s >= 0, "{}: padding must be non-negative, got {}", op, padding);
  for (int64_t s : dilation) HG_CHECK(s >= 1, "{}: dilation must be positive, got {}", op, dilation);
  HG_CHECK(p.groups >= 1, "{}: groups must be positive, got {}", op, p.groups);

  HG_CHECK(x.defined() && w.defined(), "{}: got an undefined input or weight", op);
  HG_CHECK(x.dim() == spatial + 2 || x.dim() == spatial + 1, "{}: expected input {}, got {}", op, x_layout, x.desc());
  HG_CHECK(w.dim() == spatial + 2, "{}: expected weight {}, got {}", op, w_layout, w.desc());
  HG_CHECK(x.device() == w.device(), "{}: input and weight are on different devices ({} and {}); move one with .to()",
           op, x.desc(), w.desc());
  HG_CHECK(is_floating(x.dtype()) && x.dtype() == w.dtype(),
           "{}: expected input and weight of one floating dtype (float32 or float64), got {} and {}", op, x.desc(),
           w.desc());
  const int64_t cout = w.size(0), cin = x.size(-spatial - 1);
  HG_CHECK(cout % p.groups == 0, "{}: groups={} must divide the weight's {} output channels (weight {})", op,
           p.groups, cout, w.sizes());
  HG_CHECK(cin == w.size(1) * p.groups,
           "{}: input {} has {} channels, but weight {} with groups={} expects {} (weight.size(1) · groups)", op,
           x.desc(), cin, w.sizes(), p.groups, w.size(1) * p.groups);
  if (bias.defined()) {
    HG_CHECK(bias.device() == x.device() && bias.dtype() == x.dtype(),
             "{}: bias {} must have the input's dtype and device ({})", op, bias.desc(), x.desc());
    HG_CHECK(bias.dim() == 1 && bias.size(0) == cout, "{}: expected bias [{}] (one per output channel), got {}", op,
             cout, bias.sizes());
  }
  for (int i = 0; i < spatial; ++i)  // a 0-wide kernel would make the output longer than the input
    HG_CHECK(w.size(-spatial + i) >= 1, "{}: kernel sizes must be positive, got weight {}", op, w.sizes());
  Shape padded, dilated_kernel;
  for (int i = 0; i < spatial; ++i) {
    padded.push_back(x.size(-spatial + i) + 2 * padding[i]);
    dilated_kernel.push_back(dilation[i] * (w.size(-spatial + i) - 1) + 1);
  }
  for (int i = 0; i < spatial; ++i)
    HG_CHECK(padded[i] >= dilated_kernel[i],
             "{}: the padded input {} is smaller than the dilated kernel {} (input {}, weight {}, padding {}, "
             "dilation {})",
             op, padded, dilated_kernel, x.sizes(), w.sizes(), padding, dilation);
}

}  // namespace

// Resolves Padding::Valid / Same into p.padding for a `spatial`-D convolution, as torch's padding="valid" /
// "same": Same pads dilation·(k − 1) in total, ⌊total / 2⌋ on the left and the rest on the right. Returns the
// extra zeros that the right side needs beyond p.padding (0 or 1 per dim, in p's 2-D layout), which the caller
// adds to the input with pad() as torch does.
std::array<int64_t, 2> resolve_padding(const char* op, int spatial, const Tensor& x, const Tensor& w,
                                       const Tensor& bias, Padding mode, ConvParams& p) {
  std::array<int64_t, 2> extra_right{0, 0};
  p.padding[0] = p.padding[1] = 0;
  if (mode == Padding::Same) {
    HG_CHECK(w.defined() && w.dim() == spatial + 2, "{}: expected weight {}, got {}", op,
             spatial == 1 ? "[Cout, Cin/groups, K]" : "[Cout, Cin/groups, KH, KW]", w.desc());
    Shape stride = user_dims(p.stride, spatial), dilation = user_dims(p.dilation, spatial);
    for (int64_t s : stride)
      HG_CHECK(s == 1, "{}: padding Same is not supported for strided convolutions (stride {}), as in torch; give "
               "the padding explicitly", op, stride);
    for (int64_t d : dilation) HG_CHECK(d >= 1, "{}: dilation must be positive, got {}", op, dilation);
    for (int i = 2 - spatial; i < 2; ++i) {
      const int64_t total = p.dilation[i] * std::max<int64_t>(w.size(w.dim() - 2 + i) - 1, 0);
      p.padding[i] = total / 2;
      extra_right[i] = total - 2 * p.padding[i];
    }
  }
  // Checked as if the right side's padding were on both: the size rule then holds iff it does for the real one.
  ConvParams widest = p;
  for (int i = 0; i < 2; ++i) widest.padding[i] += extra_right[i];
  check_conv(op, spatial, x, w, bias, widest);
  return extra_right;
}

// y[n, oc] = b[oc] + Σ_{ic ∈ group(oc), kh, kw} w[oc, ic, kh, kw] · x[n, ic, oh·sh + kh·dh − ph, ow·sw + kw·dw − pw]
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, IntArrayRef stride, IntArrayRef padding,
              IntArrayRef dilation, int64_t groups) {
  ConvParams p;
  read_pair("stride", stride, p.stride);
  read_pair("padding", padding, p.padding);
  read_pair("dilation", dilation, p.dilation);
  p.groups = groups;
  check_conv("conv2d", 2, x, weight, bias, p);
  if (x.dim() == 3) return convolution(x.unsqueeze(0), weight, bias, p).squeeze(0);
  return convolution(x, weight, bias, p);
}

// y[n, oc, l] = b[oc] + Σ_{ic ∈ group(oc), k} w[oc, ic, k] · x[n, ic, l·stride + k·dilation − padding]
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  ConvParams p;  // height: kernel 1, stride 1, no padding
  p.stride[1] = stride;
  p.padding[1] = padding;
  p.dilation[1] = dilation;
  p.groups = groups;
  check_conv("conv1d", 1, x, weight, bias, p);
  Tensor batched = x.dim() == 2 ? x.unsqueeze(0) : x;
  Tensor y = convolution(batched.unsqueeze(2), weight.unsqueeze(2), bias, p).squeeze(2);
  return x.dim() == 2 ? y.squeeze(0) : y;
}

// y = conv2d(x, w, b) with padding computed from the kernel (Valid: none; Same: output size = input size)
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, IntArrayRef stride, Padding padding,
              IntArrayRef dilation, int64_t groups) {
  ConvParams p;
  read_pair("stride", stride, p.stride);
  read_pair("dilation", dilation, p.dilation);
  p.groups = groups;
  std::array<int64_t, 2> extra = resolve_padding("conv2d", 2, x, weight, bias, padding, p);
  // An odd total leaves one more zero on the right (bottom) than the symmetric padding gives.
  Tensor padded = extra[0] + extra[1] > 0 ? pad(x, {0, extra[1], 0, extra[0]}) : x;
  if (x.dim() == 3) return convolution(padded.unsqueeze(0), weight, bias, p).squeeze(0);
  return convolution(padded, weight, bias, p);
}

// y = conv1d(x, w, b) with padding computed from the kernel (Valid: none; Same: output length = input length)
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, Padding padding,
              int64_t dilation, int64_t groups) {
  ConvParams p;  // height: kernel 1, stride 1, no padding
  p.stride[1] = stride;
  p.dilation[1] = dilation;
  p.groups = groups;
  std::array<int64_t, 2> extra = resolve_padding("conv1d", 1, x, weight, bias, padding, p);
  Tensor padded = extra[1] > 0 ? pad(x, {0, extra[1]}) : x;
  Tensor batched = x.dim() == 2 ? padded.unsqueeze(0) : padded;
  Tensor y = convolution(batched.unsqueeze(2), weight.unsqueeze(2), bias, p).squeeze(2);
  return x.dim() == 2 ? y.squeeze(0) : y;
}

}  // namespace hg
