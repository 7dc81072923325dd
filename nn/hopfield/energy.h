#pragma once
// The modern Hopfield network without parameters (Ramsauer et al. 2021, spec A.1): its energy and its update
// rule, for static use (retrieving stored patterns, studying fixed points) and for teaching.
//
//   auto xi = hg::nn::retrieve(stored, noisy, /*beta=*/8.0, /*steps=*/3);   // stored [N, d], noisy [L, d]
//   auto e = hg::nn::energy(xi, stored, 8.0);                              // [L], never increases along updates
//
// Patterns are rows (row-major, batch-first): stored [..., N, d], state [..., L, d] with matching (or
// broadcastable) leading dims. The paper writes them as columns, X ∈ R^{d×N} and ξ ∈ R^d.
#include <cstdint>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/separation.h>

namespace hg::nn {

/// E(ξ) = −lse(β, Xᵀξ) + ½ ξᵀξ + β⁻¹ log N + ½ M², with lse(β, z) = β⁻¹ log Σ_i exp(β z_i) and
/// M = max_i ‖x_i‖; E ≥ 0, and E ≤ 2M² where ‖ξ‖ ≤ M, e.g. for ξ in the patterns' convex hull, where every
/// update lands (Ramsauer et al., eq. 2 and Lemma A1; in general E ≤ ½(‖ξ‖ + M)²).
/// state [..., L, d], stored [..., N, d] → [..., L].
/// Differentiable in both. β > 0.
Tensor energy(const Tensor& state, const Tensor& stored, double beta);

/// `steps` updates ξ ← X sep(β Xᵀ ξ) (sep = softmax: the CCCP step that never increases E; any other
/// separation, e.g. sparsemax, gives the matching sparse Hopfield update). stored [..., N, d], state [..., L, d]
/// → [..., L, d]. `steps` = 0 returns the state. Differentiable.
Tensor retrieve(const Tensor& stored, const Tensor& state, double beta, int64_t steps = 1,
                const SeparationOptions& separation = {});

}  // namespace hg::nn
