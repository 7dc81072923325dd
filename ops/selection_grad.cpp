// The tie-splitting gradient of extrema and medians (ops/selection_grad.h).
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/selection_grad.h>

namespace hg::detail {

namespace {

// The composite: differentiable, and the reference the fused kernel is tested against.
Tensor split_among_ties_composite(const Tensor& g, const Tensor& x, const Tensor& y, const std::vector<int64_t>& dims) {
  Tensor both_nan = logical_and(ne(x, x), ne(y, y));
  Tensor hit = logical_or(eq(x, y), both_nan).to(g.dtype());
  return mul(div(g, sum(hit, dims, /*keepdim=*/true)), hit);
}

}  // namespace

// dx = g / count · [x attains y]
Tensor split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, const std::vector<int64_t>& dims) {
  const bool fused = !GradMode::is_enabled() && is_floating(x.dtype()) && g.dtype() == x.dtype() &&
                     y.dtype() == x.dtype() && g.device() == x.device() && y.device() == x.device();
  if (!fused) return split_among_ties_composite(g, x, y, dims);
  Tensor dx = empty(x.sizes(), x.dtype(), x.device());
  backend_for(x.device()).split_among_ties(g, x, y, dx);
  return dx;
}

}  // namespace hg::detail
