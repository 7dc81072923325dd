// softmax₁ along one dim (U-Hop's softmax_1): softmax with an implicit extra logit fixed at 0,
//   y_i = e^{x_i} / (1 + Σ_j e^{x_j}),
// so the weights sum to less than 1 and a row of very negative (or −inf) scores gives weights near (exactly) 0.
// Composed from hg ops; its Jacobian is softmax's, diag(y) − y yᵀ.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/ops.h>
#include <hopgrad/ops/separation_detail.h>

namespace hg {

namespace {

// With m = max(0, max_j x_j), the max over the logits including the implicit 0:
//   y_i = e^{x_i − m} / (e^{−m} + Σ_j e^{x_j − m}),
// where every exponent is ≤ 0 and the denominator ≥ 1 (one of its terms is e^0): no overflow, no 0/0. An all
// −inf row has m = 0 and gives exactly 0.
Tensor softmax1_forward(const Tensor& x, int64_t dim) {
  NoGradGuard no_grad;
  if (x.numel() == 0) return zeros_like(x);
  const Tensor shift = clamp_min(amax(x, {dim}, /*keepdim=*/true), 0.0);
  const Tensor e = exp(sub(x, shift));
  return div(e, add(exp(neg(shift)), sum(e, {dim}, /*keepdim=*/true)));
}

}  // namespace

// y = softmax1(x) along dim
// ∂L/∂x = y ⊙ (g − Σ g⊙y)
Tensor softmax1(const Tensor& x, int64_t dim) {
  const int64_t d = detail::separation_dim(x, dim, "softmax1");
  if (x.dim() == 0) return softmax1(x.reshape({1}), 0).reshape({});
  Tensor out = softmax1_forward(x.detach(), d);
  if (any_requires_grad(x)) {
    record_op("softmax1", {x}, out, [sy = SavedTensor(out, true), d](const Tensors& g, const BackwardContext& c) {
      Tensor y = sy.unpack(c);
      return Tensors{mul(y, sub(g[0], sum(mul(g[0], y), {d}, /*keepdim=*/true)))};
    });
  }
  return out;
}

}  // namespace hg
