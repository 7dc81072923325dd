// softmax and log_softmax along one dim: a fused forward kernel on the backend, and backward formulas written
// with ops (so they run on any backend and differentiate again). A row whose entries are all -inf (a fully
// masked attention row) gives zeros and a zero gradient instead of NaN.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

Tensor run_softmax(const Tensor& x, int64_t dim, bool log, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(is_floating(x.dtype()), "{}: expects a floating-point tensor, got {}; convert with .to(hg::kFloat32)", op,
           x.desc());
  int64_t d = wrap_dim(dim, x.dim(), op);
  Tensor input = x.detach().contiguous();
  Tensor out = empty(x.sizes(), x.dtype(), x.device());
  backend_for(x.device()).softmax(input, d, log, out);
  return out;
}

}  // namespace

// y = softmax(x) = exp(x) / Σ exp(x) along dim
// ∂L/∂x = y ⊙ (g − Σ g⊙y)   (zero in an all -inf row, where y = 0)
Tensor softmax(const Tensor& x, int64_t dim) {
  if (x.defined() && x.dim() == 0) return softmax(x.reshape({1}), wrap_dim(dim, 0, "softmax")).reshape({});
  Tensor out = run_softmax(x, dim, /*log=*/false, "softmax");
  if (any_requires_grad(x)) {
    int64_t d = wrap_dim(dim, x.dim(), "softmax");
    record_op("softmax", {x}, out, [sy = SavedTensor(out, true), d](const Tensors& g, const BackwardContext& c) {
      Tensor y = sy.unpack(c);
      return Tensors{mul(y, sub(g[0], sum(mul(g[0], y), {d}, /*keepdim=*/true)))};
    });
  }
  return out;
}

// y = log_softmax(x) = x − log Σ exp(x) along dim
// ∂L/∂x = g − exp(y) ⊙ Σ g   (zero in an all -inf row)
Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (x.defined() && x.dim() == 0) return log_softmax(x.reshape({1}), wrap_dim(dim, 0, "log_softmax")).reshape({});
  Tensor out = run_softmax(x, dim, /*log=*/true, "log_softmax");
  if (any_requires_grad(x)) {
    int64_t d = wrap_dim(dim, x.dim(), "log_softmax");
    record_op("log_softmax", {x}, out, [sy = SavedTensor(out, true), d](const Tensors& g, const BackwardContext& c) {
      Tensor p = exp(sy.unpack(c));
      Tensor grad = sub(g[0], mul(p, sum(g[0], {d}, /*keepdim=*/true)));
      // The output alone tells the rows apart: a live row's probabilities sum to 1, an all -inf row's output
      // is 0, so its exp(y) sums to its length n. For n >= 2 the threshold 1.5 separates them; for n = 1 both
      // kinds of row give g − 1·g = 0 anyway. A NaN row's sum is NaN, not > 1.5: its gradient stays NaN.
      Tensor dead_row = gt(sum(p.detach(), {d}, /*keepdim=*/true), 1.5);
      return Tensors{where(dead_row, 0.0, grad)};
    });
  }
  return out;
}

}  // namespace hg
