// layer_norm over the trailing dims: one backend kernel computes the output with the per-row mean and rstd, and
// one more the gradients from those saved statistics — or, when the backward itself is recorded (create_graph),
// a composite of ops that can be differentiated again.
#include <memory>
#include <vector>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

void check_layer_norm_inputs(const Tensor& x, IntArrayRef normalized_shape, const Tensor& weight,
                             const Tensor& bias) {
  HG_CHECK(x.defined(), "layer_norm: got an undefined input");
  HG_CHECK(is_floating(x.dtype()), "layer_norm: expects a floating-point input, got {}", x.desc());
  const Shape normalized(normalized_shape);
  const size_t k = normalized.size();
  bool trailing_match = k >= 1 && k <= static_cast<size_t>(x.dim());
  for (size_t i = 0; trailing_match && i < k; ++i)
    trailing_match = x.sizes()[x.dim() - k + i] == normalized[i];
  HG_CHECK(trailing_match,
           "layer_norm: normalized_shape {} must be non-empty and equal the trailing dims of the input; expected an "
           "input of shape [*, {}], got {}",
           normalized, fmt::join(normalized, ", "), x.desc());
  for (auto [t, name] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!t->defined()) continue;
    HG_CHECK(t->sizes() == normalized, "layer_norm: {} must have shape normalized_shape {}, got {}", name, normalized,
             t->desc());
    HG_CHECK(t->dtype() == x.dtype() && t->device() == x.device(),
             "layer_norm: {} ({}) must have the input's dtype and device ({})", name, t->desc(), x.desc());
  }
}

// What backward needs. mean and rstd are outputs 1 and 2 of the node (see below), so they can only be saved
// after record_op has attached them to it.
struct LayerNormSaved {
  SavedTensor x, weight, mean, rstd;
};

// The gradients from g = ∂L/∂y as a composite of ops, differentiable again (double backward). With
// x̂ = (x − μ)·rstd and ĝ = g ⊙ w:  ∂L/∂x = rstd·(ĝ − mean_D(ĝ) − x̂ ⊙ mean_D(ĝ ⊙ x̂)), ∂L/∂w = g ⊙ x̂, ∂L/∂b = g
// (the engine sums the last two down to w's and b's shape).
Tensors composite_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& rstd, const std::vector<int64_t>& dims, const BackwardContext& c) {
  Tensor x_hat = mul(sub(x, mean), rstd);
  Tensor g_hat = weight.defined() ? mul(g, weight) : g;
  Tensors grads(3);
  if (c.needs_input_grad(0)) {
    Tensor centered = sub(g_hat, hg::mean(g_hat, dims, /*keepdim=*/true));
    grads[0] = mul(rstd, sub(centered, mul(x_hat, hg::mean(mul(g_hat, x_hat), dims, /*keepdim=*/true))));
  }
  if (c.needs_input_grad(1)) grads[1] = mul(g, x_hat);
  if (c.needs_input_grad(2)) grads[2] = g;
  return grads;
}

// The same gradients in one backend call (Backend::layer_norm_backward): one pass over g and x instead of about
// a dozen, not differentiable.
Tensors fused_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                       const Tensor& rstd, int64_t N, const Shape& normalized, const BackwardContext& c) {
  const Tensor grad_out = g.contiguous(), input = x.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : Tensor();
  Tensors grads(3);
  if (c.needs_input_grad(0)) grads[0] = empty(x.sizes(), x.dtype(), x.device());
  for (size_t i : {size_t{1}, size_t{2}})
    if (c.needs_input_grad(i)) grads[i] = empty(normalized, x.dtype(), x.device());
  auto output = [&](size_t i) { return grads[i].defined() ? &grads[i] : nullptr; };
  backend_for(x.device())
      .layer_norm_backward(grad_out, input, w.defined() ? &w : nullptr, mean, rstd, N, output(0), output(1),
                           output(2));
  return grads;
}

}  // namespace

// y = (x − μ)·rstd ⊙ w + b over the trailing dims D;  μ = mean_D(x), rstd = 1/√(var_D(x) + eps)
// With x̂ = (x − μ)·rstd and ĝ = g ⊙ w (N elements in D):
//   ∂L/∂x = rstd·(ĝ − mean_D(ĝ) − x̂ ⊙ mean_D(ĝ ⊙ x̂));  ∂L/∂w = Σ g ⊙ x̂;  ∂L/∂b = Σ g
Tensor layer_norm(const Tensor& x, IntArrayRef normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_layer_norm_inputs(x, normalized_shape, weight, bias);
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  int64_t N = 1, rows = 1;
  Shape stat_shape = x.sizes();  // the leading dims, with 1 for each normalized dim: broadcasts against x
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < x.dim() - k) {
      rows *= x.size(d);
    } else {
      N *= x.size(d);
      stat_shape[d] = 1;
      dims.push_back(d);
    }
  }

  Tensor input = x.detach().contiguous();
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = empty(x.sizes(), x.dtype(), x.device());
  Tensor row_mean = empty({rows}, x.dtype(), x.device());
  Tensor row_rstd = empty({rows}, x.dtype(), x.device());
  backend_for(x.device())
      .layer_norm(input, w.defined() ? &w : nullptr, b.defined() ? &b : nullptr, N, eps, out, row_mean, row_rstd);
  if (!any_requires_grad(x, weight, bias)) return out;

  // mean and rstd are differentiable outputs of the node (as in PyTorch's native_layer_norm): the backward
  // formula uses them, so in double backward gradients reach them and flow back to x through this same node
  // (∂μ/∂x = 1/N, ∂rstd/∂x = −rstd²·x̂/N).
  Tensor mean_out = row_mean.view(stat_shape), rstd_out = row_rstd.view(stat_shape);
  auto saved = std::make_shared<LayerNormSaved>();
  record_op("layer_norm", {x, weight, bias}, {out, mean_out, rstd_out},
            [saved, dims, N, normalized = Shape(normalized_shape)](const Tensors& g, const BackwardContext& c) {
              Tensor xs = saved->x.unpack(c), mu = saved->mean.unpack(c), rs = saved->rstd.unpack(c);
              Tensors grads(3);
              if (g[0].defined()) {
                Tensor wt = saved->weight.unpack(c);
                // One backend pass, unless this backward is itself being recorded (create_graph): then the
                // composite of ops, which double backward can differentiate.
                grads = GradMode::is_enabled() ? composite_backward(g[0], xs, wt, mu, rs, dims, c)
                                               : fused_backward(g[0], xs, wt, mu, rs, N, normalized, c);
              }
              if (c.needs_input_grad(0)) {
                const double n = static_cast<double>(N);
                Tensor& dx = grads[0];
                if (g[1].defined()) {
                  Tensor d_mean = div(g[1], n).expand(xs.sizes());
                  dx = dx.defined() ? add(dx, d_mean) : d_mean;
                }
                if (g[2].defined()) {
                  Tensor d_rstd = mul(mul(g[2], mul(rs, rs)), mul(mul(sub(xs, mu), rs), -1.0 / n));
                  dx = dx.defined() ? add(dx, d_rstd) : d_rstd;
                }
              }
              return grads;
            });
  saved->x = SavedTensor(x);
  saved->weight = SavedTensor(weight);
  saved->mean = SavedTensor(mean_out, /*is_output=*/true);
  saved->rstd = SavedTensor(rstd_out, /*is_output=*/true);
  return out;
}

}  // namespace hg
