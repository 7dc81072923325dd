// Inverted dropout, composed of ops: the mask comes from hg::rand with the caller's generator, so a seeded
// generator reproduces it, and the gradient is the product rule of the final mul.
#include <cmath>

#include <hopgrad/ops/ops.h>

namespace hg {

// y = x ⊙ m / (1 − p),  m_i ~ Bernoulli(1 − p)  (identity when !train or p = 0; zeros when p = 1)
// ∂L/∂x = g ⊙ m / (1 − p)
Tensor dropout(const Tensor& x, double p, bool train, Generator* gen) {
  HG_CHECK(x.defined(), "dropout: got an undefined tensor");
  HG_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got {}", p);
  HG_CHECK(is_floating(x.dtype()), "dropout: expects a floating-point tensor, got {}", x.desc());
  // As torch.dropout: the input itself comes back when nothing is dropped.
  if (!train || p == 0.0 || x.numel() == 0) return x;
  // As torch.dropout, p = 1 multiplies by zero (NaN and inf inputs stay NaN) and keeps the graph connected.
  if (p == 1.0) return mul(x, zeros({}, TensorOptions(x.dtype()).device(x.device())));
  // Keep with probability 1 − p: u ~ U[0, 1) is below 1 − p with exactly that probability.
  Tensor u = rand_like(x, gen);
  Tensor scale = full({}, 1.0 / (1.0 - p), TensorOptions(x.dtype()).device(x.device()));
  Tensor mask = where(lt(u, 1.0 - p), scale, 0.0);
  return mul(x, mask);
}

}  // namespace hg
