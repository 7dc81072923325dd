// Energy and update rule of the modern Hopfield network (see energy.h).
#include <hopgrad/nn/hopfield/energy.h>

#include <cmath>

#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

void check_patterns(const char* op, const Tensor& state, const Tensor& stored, double beta) {
  HG_CHECK(state.defined() && stored.defined(), "{}: state and stored patterns must be defined", op);
  HG_CHECK(state.dim() >= 2 && stored.dim() >= 2 && state.size(-1) == stored.size(-1),
           "{}: expected state [..., L, d] and stored [..., N, d] patterns of one width d, got state {} and stored {}",
           op, state.desc(), stored.desc());
  HG_CHECK(is_floating(state.dtype()) && state.dtype() == stored.dtype() && state.device() == stored.device(),
           "{}: expected floating patterns of one dtype on one device, got state {} and stored {}", op, state.desc(),
           stored.desc());
  HG_CHECK(stored.size(-2) > 0, "{}: needs at least one stored pattern, got stored {}", op, stored.desc());
  HG_CHECK(std::isfinite(beta) && beta > 0.0, "{}: beta must be positive and finite, got {}", op, beta);
}

}  // namespace

// E(ξ) = −β⁻¹ log Σ_i exp(β x_iᵀξ) + ½ ξᵀξ + β⁻¹ log N + ½ M²
Tensor energy(const Tensor& state, const Tensor& stored, double beta) {
  check_patterns("energy", state, stored, beta);
  const double n = static_cast<double>(stored.size(-2));
  Tensor overlaps = matmul(state, stored.transpose(-2, -1));                   // [..., L, N] = Xᵀξ per state
  Tensor lse = logsumexp(overlaps * beta, {-1}) * (1.0 / beta);                // [..., L]
  Tensor half_norm = sum(square(state), {-1}) * 0.5;                           // ½ ξᵀξ
  Tensor largest = amax(sum(square(stored), {-1}), {-1}, /*keepdim=*/true);    // M² [..., 1]
  return half_norm - lse + (std::log(n) / beta) + largest * 0.5;
}

// ξ ← X sep(β Xᵀ ξ)
Tensor retrieve(const Tensor& stored, const Tensor& state, double beta, int64_t steps,
                const SeparationOptions& separation) {
  check_patterns("retrieve", state, stored, beta);
  HG_CHECK(steps >= 0, "retrieve: steps must be >= 0, got {}", steps);
  SeparationOptions options = separation;
  if (options.feature_dim() == 0) options.feature_dim(stored.size(-1));
  Separation sep(options);
  sep->eval();  // deterministic: no training-time forgetting noise
  sep->to(stored.device(), stored.dtype());
  const Tensor beta_tensor = scalar_tensor(beta, TensorOptions(stored.dtype()).device(stored.device()));
  Tensor xi = state;
  for (int64_t step = 0; step < steps; ++step) xi = sep->attend(xi, stored, stored, beta_tensor);
  return xi;
}

}  // namespace hg::nn
