// sparsemax along one dim (Martins & Astudillo 2016): the Euclidean projection onto the probability simplex,
//   p = argmin_{p ∈ Δ} ‖p − x‖²  =  [x − τ]₊  with τ chosen so that Σ p = 1.
// The forward is the sort-based algorithm of the reference code (spec C.6) composed from hg ops; the backward is
// a formula in hg ops, so both run on any backend and the gradient can be differentiated again.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/ops.h>
#include <hopgrad/ops/separation_detail.h>

namespace hg {

namespace {

// z = x − max x; z sorted descending into z₍₁₎ ≥ … ≥ z₍ₙ₎;
//   k* = max{k : 1 + k z₍ₖ₎ > Σ_{j≤k} z₍ⱼ₎},  τ = (Σ_{j≤k*} z₍ⱼ₎ − 1) / k*,  p = max(z − τ, 0).
// −inf entries sort last, never enter the support (their cumulative sums are computed with 0 in their place, so no
// inf − inf arises) and get p = 0; an all −inf row has k* = 0, τ = −1 and p = 0.
Tensor sparsemax_forward(const Tensor& x, int64_t dim) {
  NoGradGuard no_grad;
  if (x.numel() == 0) return zeros_like(x);
  const Tensor z = sub(x, detail::row_shift(x, dim));
  const Tensor sorted = std::get<0>(sort(z, dim, /*descending=*/true));
  const Tensor finite = gt(sorted, -detail::kSeparationInf);
  const Tensor finite_sorted = where(finite, sorted, 0.0);
  const Tensor k = detail::prefix_lengths(x.size(dim), dim, x.dim(), x);
  const Tensor cumulative = cumsum(finite_sorted, dim);
  const Tensor in_support = logical_and(finite, gt(add(mul(k, finite_sorted), 1.0), cumulative));
  const Tensor support_size = sum(in_support, {dim}, /*keepdim=*/true);  // int64, ≥ 1 unless the row is all −inf
  const Tensor last = clamp_min(sub(support_size, 1.0), 0.0);
  const Tensor tau = div(sub(gather(cumulative, dim, last), 1.0), clamp_min(support_size.to(x.dtype()), 1.0));
  return clamp_min(sub(z, tau), 0.0);
}

}  // namespace

// p = sparsemax(x) along dim
// ∂L/∂x = s ⊙ (g − Σ g⊙s / Σ s)   with s = 1[p > 0] the support (0 off the support; 0 in an all −inf row)
Tensor sparsemax(const Tensor& x, int64_t dim) {
  const int64_t d = detail::separation_dim(x, dim, "sparsemax");
  if (x.dim() == 0) return sparsemax(x.reshape({1}), 0).reshape({});
  Tensor out = sparsemax_forward(x.detach(), d);
  if (any_requires_grad(x)) {
    record_op("sparsemax", {x}, out, [sp = SavedTensor(out, true), d](const Tensors& g, const BackwardContext& c) {
      // The support is piecewise constant in x, so the gradient is linear in g with no x-dependence of its own:
      // its derivative in x is 0 (as the true second derivative, almost everywhere).
      Tensor support = gt(sp.unpack(c).detach(), 0.0).to(g[0].dtype());
      Tensor support_mean = div(sum(mul(g[0], support), {d}, /*keepdim=*/true), detail::nonzero_sum(support, d));
      return Tensors{mul(support, sub(g[0], support_mean))};
    });
  }
  return out;
}

}  // namespace hg
