#pragma once
// U-Hop's separation losses (spec D.1–D.2): how well a set of patterns is spread over the unit sphere once
// each is normalised, φ̂ = φ / ‖φ‖. Minimising them (Stage I) makes the memories easier to tell apart.
//
//   auto l = hg::nn::separation_loss(phi(memories));                                  // [M, D_Φ] → scalar
//   auto deep = hg::nn::deep_separation_loss(phi(tokens), hg::nn::SeparationLossKind::Average);  // [B, T, D_Φ]
#include <hopgrad/core/tensor.h>

namespace hg::nn {

enum class SeparationLossKind {
  /// L = log mean_{μ<ν} exp(−t‖φ̂_μ − φ̂_ν‖²): the paper's average separation loss (Def. 2.2), the
  /// Wang–Isola uniformity loss (the reference's uniform_loss).
  Average,
  /// L = max_{μ<ν} −t‖φ̂_μ − φ̂_ν‖² = −t · min pairwise squared distance (the reference's uniform_loss_max).
  Max,
};

/// The loss of the rows of `features` [..., M, D] (M ≥ 2; each row normalised here, a zero row stays zero)
/// → [...]. Twice differentiable; t > 0.
Tensor separation_loss(const Tensor& features, SeparationLossKind kind = SeparationLossKind::Average,
                       double temperature = 2.0);

/// The deep separation loss (Def. 3.1): separation_loss of each sample's tokens, averaged over the samples.
/// features [B, ..., T, D] → scalar.
Tensor deep_separation_loss(const Tensor& features, SeparationLossKind kind = SeparationLossKind::Average,
                            double temperature = 2.0);

}  // namespace hg::nn
