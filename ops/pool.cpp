// Max-pooling: max_pool2d, and max_pool1d run as max_pool2d over height-1 images. The forward keeps each
// window's argmax; the gradient scatters into those positions through max_pool2d_backward, itself a recorded
// op whose gradient gathers from them, so double backward works on any backend.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// Output length along one dim, as torch: ⌊(in + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1, rounded up
// instead in ceil mode, where a last window that would start beyond the input and the left padding is dropped.
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                         bool ceil_mode) {
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // ⌊span / stride⌋ rounding toward −∞ (span < 0 means no window fits)
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + padding) --out;
  return out;
}

// gx = zeros(x) with g added at each window's argmax (flat h·W + w in `indices`); linear in g, so for an
// incoming γ: ∂/∂g = γ read back at the same positions = gather(γ, indices) per plane
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& x_sizes, const PoolParams& p) {
  Tensor grad_x = zeros(x_sizes, TensorOptions(grad_out.dtype()).device(grad_out.device()));
  backend_for(grad_out.device()).max_pool2d_backward(grad_out.detach().contiguous(), indices, p, grad_x);
  if (any_requires_grad(grad_out)) {
    // indices are produced and kept by max_pool2d alone (never handed to the user), so no version check.
    record_op("max_pool2d_backward", {grad_out}, grad_x, [indices](const Tensors& gg, const BackwardContext&) {
      return Tensors{gather(gg[0].flatten(2), 2, indices.flatten(2)).reshape(indices.sizes())};
    });
  }
  return grad_x;
}

// y[n, c, oh, ow] = max_{(h, w) ∈ window(oh, ow)} x[n, c, h, w] ;  ∂L/∂x = g routed to each window's argmax
Tensor max_pool(const Tensor& x, const PoolParams& p, bool ceil_mode) {
  Shape out_sizes{x.size(0), x.size(1)};
  for (int i = 0; i < 2; ++i)
    out_sizes.push_back(
        pool_output_size(x.size(2 + i), p.kernel[i], p.stride[i], p.padding[i], p.dilation[i], ceil_mode));
  Tensor out = empty(out_sizes, x.dtype(), x.device());
  Tensor indices = empty(out_sizes, kInt64, x.device());
  backend_for(x.device()).max_pool2d(x.detach().contiguous(), p, out, indices);
  if (any_requires_grad(x)) {
    record_op("max_pool2d", {x}, out, [indices, x_sizes = x.sizes(), p](const Tensors& g, const BackwardContext&) {
      return Tensors{max_pool2d_backward(g[0], indices, x_sizes, p)};
    });
  }
  return out;
}

// The entries of a 2-D geometry that a `spatial`-D op exposes (max_pool1d uses only the second).
Shape user_dims(const int64_t (&values)[2], int spatial) {
  Shape s;
  for (int i = 2 - spatial; i < 2; ++i) s.push_back(values[i]);
  return s;
}

// A max_pool2d size argument: one value (used for both dims) or two.
void read_pair(const char* name, IntArrayRef values, int64_t (&out)[2]) {
  HG_CHECK(values.size() == 1 || values.size() == 2, "max_pool2d: {} must have 1 or 2 values, got {}", name, values);
  out[0] = values[0];
  out[1] = values[values.size() - 1];
}

// Checks a pooling call in the user's terms: `spatial` (1 or 2) trailing dims of x, whose geometry is held in
// the last `spatial` entries of p.
void check_pool(const char* op, int spatial, const Tensor& x, const PoolParams& p, bool ceil_mode) {
  Shape kernel = user_dims(p.kernel, spatial), stride = user_dims(p.stride, spatial),
        padding = user_dims(p.padding, spatial), dilation = user_dims(p.dilation, spatial);
  for (int64_t k : kernel) HG_CHECK(k >= 1, "{}: kernel_size must be positive, got {}", op, kernel);
  for (int64_t s : stride) HG_CHECK(s >= 1, "{}: stride must be positive, got {}", op, stride);
  for (int64_t d : dilation) HG_CHECK(d >= 1, "{}: dilation must be positive, got {}", op, dilation);
  for (int i = 0; i < spatial; ++i)
    HG_CHECK(padding[i] >= 0 && padding[i] <= kernel[i] / 2,
             "{}: padding must be non-negative and at most half the kernel size (as torch checks), got padding {} "
             "for kernel_size {}",
             op, padding, kernel);

  const char* layout = spatial == 1 ? "[N, C, L] or unbatched [C, L]" : "[N, C, H, W] or unbatched [C, H, W]";
  HG_CHECK(x.defined(), "{}: got an undefined input", op);
  HG_CHECK(x.dim() == spatial + 2 || x.dim() == spatial + 1, "{}: expected input {}, got {}", op, layout, x.desc());
  HG_CHECK(is_floating(x.dtype()), "{}: expected a float32 or float64 input, got {}", op, x.desc());
  for (int64_t d = x.dim() - spatial - 1; d < x.dim(); ++d)
    HG_CHECK(x.size(d) > 0, "{}: input {} has an empty channel or spatial dimension (only the batch may be empty)",
             op, x.desc());
  for (int i = 0; i < spatial; ++i) {
    const int64_t in = x.size(-spatial + i), k = kernel[i], s = stride[i], pad = padding[i], d = dilation[i];
    const int64_t out = pool_output_size(in, k, s, pad, d, ceil_mode);
    HG_CHECK(out >= 1,
             "{}: kernel_size {} is larger than the padded input (input {}, padding {}, dilation {}, ceil_mode {}; "
             "the output would be empty)",
             op, kernel, x.sizes(), padding, dilation, ceil_mode);
    // A window whose taps all fall into padding would be −inf with no input position to route its gradient to
    // (torch returns −inf and an index outside the input there). Every window starts before the input's end
    // (the output-size rule), so only those starting in the left padding can miss it, by stepping over a short
    // input with a large dilation.
    for (int64_t o = 0; o < out && o * s - pad < 0; ++o) {
      const int64_t start = o * s - pad, first_tap = (-start + d - 1) / d;  // the first tap at a position ≥ 0
      HG_CHECK(first_tap < k && start + first_tap * d < in,
               "{}: window {} along spatial dim {} covers only padding (input {}, kernel_size {}, stride {}, "
               "padding {}, dilation {})",
               op, o, i, x.sizes(), kernel, stride, padding, dilation);
    }
  }
}

}  // namespace

// y[n, c, oh, ow] = max_{kh, kw} x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw] (padding = −inf)
Tensor max_pool2d(const Tensor& x, IntArrayRef kernel_size, IntArrayRef stride, IntArrayRef padding,
                  IntArrayRef dilation, bool ceil_mode) {
  PoolParams p;
  read_pair("kernel_size", kernel_size, p.kernel);
  read_pair("stride", stride.empty() ? kernel_size : stride, p.stride);
  read_pair("padding", padding, p.padding);
  read_pair("dilation", dilation, p.dilation);
  check_pool("max_pool2d", 2, x, p, ceil_mode);
  if (x.dim() == 3) return max_pool(x.unsqueeze(0), p, ceil_mode).squeeze(0);
  return max_pool(x, p, ceil_mode);
}

// y[n, c, l] = max_k x[n, c, l·stride − padding + k·dilation] (padding = −inf)
Tensor max_pool1d(const Tensor& x, int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation,
                  bool ceil_mode) {
  PoolParams p;  // height: kernel 1, stride 1, no padding
  p.kernel[1] = kernel_size;
  p.stride[1] = stride == 0 ? kernel_size : stride;
  p.padding[1] = padding;
  p.dilation[1] = dilation;
  check_pool("max_pool1d", 1, x, p, ceil_mode);
  Tensor batched = x.dim() == 2 ? x.unsqueeze(0) : x;
  Tensor y = max_pool(batched.unsqueeze(2), p, ceil_mode).squeeze(2);
  return x.dim() == 2 ? y.squeeze(0) : y;
}

}  // namespace hg
