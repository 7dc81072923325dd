// α-entmax along one dim (Peters, Niculae & Martins 2019): the maximiser of pᵀx + H^T_α(p) over the simplex,
// with H^T_α the Tsallis α-entropy,
//   p = [(α − 1) x − τ]₊^{1/(α−1)}   with τ chosen so that Σ p = 1
// (α → 1 is softmax, α = 2 sparsemax). entmax15 is α = 1.5 by the exact sort-based algorithm; entmax_bisect is any
// α > 1 by bisection on τ (the entmax package's EntmaxBisectFunction). Forwards are composed from hg ops, the
// backward formulas are written with hg ops (any backend, differentiable again).
#include <cmath>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/ops.h>
#include <hopgrad/ops/separation_detail.h>

namespace hg {

namespace {

// z = (x − max x)/2, sorted descending into z₍₁₎ ≥ … ≥ z₍ₙ₎. For each prefix length k:
//   mean_k = Σ_{j≤k} z₍ⱼ₎ / k,  ss_k = Σ_{j≤k} z₍ⱼ₎² − k·mean_k²,  τ_k = mean_k − √max((1 − ss_k)/k, 0);
// the support size is s = #{k : τ_k ≤ z₍ₖ₎} and p = max(z − τ_s, 0)² (spec C.6).
// −inf entries sort last and are kept out of the prefix sums (0 in their place) and out of the support; an all
// −inf row has s = 0 and p = 0.
Tensor entmax15_forward(const Tensor& x, int64_t dim) {
  NoGradGuard no_grad;
  if (x.numel() == 0) return zeros_like(x);
  const Tensor z = div(sub(x, detail::row_shift(x, dim)), 2.0);
  const Tensor sorted = std::get<0>(sort(z, dim, /*descending=*/true));
  const Tensor finite = gt(sorted, -detail::kSeparationInf);
  const Tensor finite_sorted = where(finite, sorted, 0.0);
  const Tensor k = detail::prefix_lengths(x.size(dim), dim, x.dim(), x);
  const Tensor mean = div(cumsum(finite_sorted, dim), k);
  const Tensor mean_sq = div(cumsum(square(finite_sorted), dim), k);
  const Tensor ss = mul(k, sub(mean_sq, square(mean)));
  const Tensor delta = div(rsub(ss, 1.0), k);
  const Tensor tau = sub(mean, sqrt(clamp_min(delta, 0.0)));
  const Tensor in_support = logical_and(finite, le(tau, finite_sorted));
  const Tensor last = clamp_min(sub(sum(in_support, {dim}, /*keepdim=*/true), 1.0), 0.0);
  return square(clamp_min(sub(z, gather(tau, dim, last)), 0.0));
}

// g⁽ᵅ⁾ = p^{2−α} on the support, 0 off it: the diagonal of the Jacobian's inverse Hessian term. The exponent is
// applied to p with 1 put in its zeros, so the expression (and its derivative, for double backward) is finite
// everywhere instead of 0^{negative} or ∞·0.
template <typename Exponent> Tensor support_power(const Tensor& p, const Exponent& exponent) {
  const Tensor support = gt(p.detach(), 0.0);
  return where(support, pow(where(support, p, 1.0), exponent), 0.0);
}

// ∂L/∂x = g ⊙ q − (Σ g⊙q / Σ q) q   with q = p^{2−α} on the support (Peters et al. 2019, Prop. 2).
Tensor entmax_input_grad(const Tensor& grad, const Tensor& q, int64_t dim) {
  Tensor gq = mul(grad, q);
  return sub(gq, mul(div(sum(gq, {dim}, /*keepdim=*/true), detail::nonzero_sum(q, dim)), q));
}

// The bisection of EntmaxBisectFunction on X = (α − 1) x: τ ∈ [max X − 1, max X − (1/n)^{α−1}] (there Σ p ≥ 1 and
// ≤ 1 respectively), halved n_iter times keeping the half where Σ p(τ) − 1 changes sign, with
// p(τ) = [X − τ]₊^{1/(α−1)}; the last midpoint's p is renormalised to sum to 1.
// `alpha_minus_one` has x's rank with size 1 along dim (or is 0-dim); `integer_exponent` is 1/(α − 1) when α is
// one number that makes it a small integer (see small_integer_exponent), else 0. An all −inf row gives p = 0.
Tensor entmax_bisect_forward(const Tensor& x, const Tensor& alpha_minus_one, int64_t integer_exponent, int64_t dim,
                             int64_t n_iter) {
  NoGradGuard no_grad;
  if (x.numel() == 0) return zeros_like(x);
  // X = (x − max x)(α − 1): shifted by its row max, so that τ lies in [−1, −(1/n)^{α−1}] and both bounds are
  // exact (bisecting around max X itself lost X − τ to rounding once |X| ≫ 1: float32 scores near 1e8 gave an
  // all-zero row). The shift comes first, on x itself: scaling first rounded distinct scores near 1e8 into ties
  // and overflowed |x|(α − 1) to inf (inf − inf: a NaN row); α − 1 > 0 leaves the row max where it was.
  const Tensor shift = detail::row_shift(x, dim);
  const Tensor X = mul(sub(x, shift), alpha_minus_one);
  const Tensor exponent = reciprocal(alpha_minus_one);
  auto power = [&](const Tensor& y) {
    if (integer_exponent == 0) return pow(y, exponent);
    Tensor result = y;
    for (int64_t i = 1; i < integer_exponent; ++i) result = mul(result, y);
    return result;
  };
  Tensor tau_lo = full_like(shift, -1.0);
  Tensor step = rsub(pow(1.0 / static_cast<double>(x.size(dim)), alpha_minus_one), 1.0);  // τ_hi − τ_lo
  Tensor p;
  for (int64_t it = 0; it < n_iter; ++it) {
    step = div(step, 2.0);
    const Tensor tau_mid = add(tau_lo, step);
    p = power(clamp_min(sub(X, tau_mid), 0.0));
    // Σ p(τ) decreases in τ: where it is still ≥ 1 the root lies above the midpoint.
    tau_lo = where(ge(sum(p, {dim}, /*keepdim=*/true), 1.0), tau_mid, tau_lo);
  }
  return div(p, detail::nonzero_sum(p, dim));
}

// y ↦ y^{1/(α−1)} runs n_iter times per forward. For one α whose exponent is a small integer (α = 2, 3/2, 4/3,
// 5/4: the common choices) it is a chain of products — a pow per element costs ~100 times a product on the CPU
// backend and dominated the forward. Returns that integer, or 0 (use pow).
int64_t small_integer_exponent(const Tensor& alpha, double alpha_value) {
  if (alpha.numel() != 1) return 0;
  const double e = 1.0 / (alpha_value - 1.0);
  return e == std::round(e) && e >= 1.0 && e <= 4.0 ? static_cast<int64_t>(e) : 0;
}

}  // namespace

// p = entmax15(x) along dim
// ∂L/∂x = g ⊙ √p − (Σ g⊙√p / Σ √p) √p
Tensor entmax15(const Tensor& x, int64_t dim) {
  const int64_t d = detail::separation_dim(x, dim, "entmax15");
  if (x.dim() == 0) return entmax15(x.reshape({1}), 0).reshape({});
  Tensor out = entmax15_forward(x.detach(), d);
  if (any_requires_grad(x)) {
    record_op("entmax15", {x}, out, [sp = SavedTensor(out, true), d](const Tensors& g, const BackwardContext& c) {
      return Tensors{entmax_input_grad(g[0], support_power(sp.unpack(c), 0.5), d)};
    });
  }
  return out;
}

// p = α-entmax(x) along dim, by bisection
// ∂L/∂x = g ⊙ q − (Σ g⊙q / Σ q) q                                   with q = p^{2−α} on the support
// ∂L/∂α = Σ g ⊙ [(p − q̂)/(α − 1)² − (s − q̂ Σ s)/(α − 1)]             with q̂ = q / Σ q, s = p log p
//   (the entmax package's EntmaxBisectFunction; one value per row, summed down to α's shape)
Tensor entmax_bisect(const Tensor& x, const Tensor& alpha_in, int64_t dim, int64_t n_iter) {
  const int64_t d = detail::separation_dim(x, dim, "entmax_bisect");
  HG_CHECK(alpha_in.defined(), "entmax_bisect: alpha is undefined; pass a scalar tensor > 1");
  HG_CHECK(is_floating(alpha_in.dtype()), "entmax_bisect: alpha must be a floating-point tensor, got {}",
           alpha_in.desc());
  HG_CHECK(alpha_in.device() == x.device(), "entmax_bisect: alpha is on {} but x is on {}; move both to one device",
           alpha_in.device(), x.device());
  HG_CHECK(n_iter > 0, "entmax_bisect: n_iter must be positive, got {}", n_iter);
  if (x.dim() == 0) return entmax_bisect(x.reshape({1}), alpha_in, 0, n_iter).reshape({});
  // α is one number, or one per row: its shape must broadcast to x's with size 1 along dim.
  Shape row_shape = x.sizes();
  row_shape[static_cast<size_t>(d)] = 1;
  HG_CHECK(broadcasts_to(alpha_in.sizes(), row_shape),
           "entmax_bisect: alpha of shape {} must be a scalar or broadcast to {} (x {} with size 1 along dim {})",
           alpha_in.sizes(), row_shape, x.sizes(), d);
  const double smallest_alpha = alpha_in.numel() == 0 ? 2.0 : min(alpha_in.detach()).item<double>();
  HG_CHECK(smallest_alpha > 1.0, "entmax_bisect: alpha must be > 1 (alpha = 1 is softmax), got {}", smallest_alpha);
  const Tensor alpha = alpha_in.dtype() == x.dtype() ? alpha_in : alpha_in.to(x.dtype());

  Tensor out = entmax_bisect_forward(x.detach(), sub(alpha.detach(), 1.0),
                                     small_integer_exponent(alpha_in, smallest_alpha), d, n_iter);
  if (any_requires_grad(x, alpha)) {
    record_op("entmax_bisect", {x, alpha}, out,
              [sp = SavedTensor(out, true), sa = SavedTensor(alpha), d](const Tensors& g, const BackwardContext& c) {
                Tensor p = sp.unpack(c), a = sa.unpack(c);
                Tensor q = support_power(p, rsub(a, 2.0));
                Tensor grad_x = c.needs_input_grad(0) ? entmax_input_grad(g[0], q, d) : Tensor();
                Tensor grad_alpha;
                if (c.needs_input_grad(1)) {
                  Tensor support = gt(p.detach(), 0.0);
                  Tensor shannon = where(support, mul(p, log(where(support, p, 1.0))), 0.0);  // s = p log p
                  Tensor q_hat = div(q, detail::nonzero_sum(q, d));
                  Tensor a1 = sub(a, 1.0);
                  Tensor term = sub(div(sub(p, q_hat), square(a1)),
                                    div(sub(shannon, mul(q_hat, sum(shannon, {d}, /*keepdim=*/true))), a1));
                  grad_alpha = sum(mul(g[0], term), {d}, /*keepdim=*/true);
                }
                return Tensors{grad_x, grad_alpha};
              });
  }
  return out;
}

}  // namespace hg
