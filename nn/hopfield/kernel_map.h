#pragma once
// U-Hop's learnable feature map Φ and its Stage I training (Wu, Hu et al. 2024, "Uniform Memory Retrieval with
// Larger Capacity for Modern Hopfield Models", Algorithm 1; spec D.1–D.2).
//
//   hg::nn::KernelMap phi(hg::nn::KernelMapOptions(784).feature_dim(1024));   // Φ(u) = W u, W [1024, 784]
//   auto stage1 = hg::nn::train_kernel(phi, memories, hg::nn::StageIOptions().steps(100));  // memories [M, 784]
//   auto k = phi->kernel(queries, memories);   // K(u, v) = ⟨Φu, Φv⟩, [L, M]
//
// Stage I separates the memories in feature space by gradient descent on the separation loss L_Φ (see
// separation_loss.h), then normalises the rows of W as the paper's Algorithm 1 says. The reference code uses a
// d × d map and skips the normalisation: KernelMapOptions::compat reproduces it.
#include <cstdint>
#include <functional>
#include <vector>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/separation_loss.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct KernelMapOptions {
  KernelMapOptions(int64_t dim) : dim_(dim) {}
  /// d, the width of the patterns.
  HG_ARG(int64_t, dim);
  /// D_Φ ≥ d, the width of the feature space (0: D_Φ = d).
  HG_ARG(int64_t, feature_dim) = 0;
  /// The reference code's map: D_Φ = d (feature_dim must be 0 or d) and no row normalisation after Stage I.
  HG_ARG(bool, compat) = false;
};

/// Φ(u) = W u with W [D_Φ, d] ~ N(0, 1) i.i.d. (the reference's initialisation); no bias.
class KernelMapImpl : public Module {
 public:
  explicit KernelMapImpl(const KernelMapOptions& options);
  KernelMapImpl(int64_t dim) : KernelMapImpl(KernelMapOptions(dim)) {}

  /// Φ(u) = W u for patterns as rows: u [..., d] → [..., D_Φ].
  Tensor forward(const Tensor& u);
  /// K(u, v) = ⟨Φu, Φv⟩ = uᵀ Wᵀ W v for every pair: u [..., L, d], v [..., S, d] → [..., L, S].
  Tensor kernel(const Tensor& u, const Tensor& v);
  /// W_i ← W_i / ‖W_i‖ for every row i (the end of Stage I in Algorithm 1). In place, not recorded.
  void normalize_rows();
  /// W ~ N(0, 1).
  void reset_parameters(Generator* gen = nullptr);
  void pretty_print(std::ostream& stream) const override;

  int64_t dim() const { return options.dim(); }
  int64_t feature_dim() const { return weight.size(0); }

  KernelMapOptions options;
  Tensor weight;  ///< W [D_Φ, d]
};
HG_MODULE(KernelMap);

/// Step size of Stage I at step i (0-based).
using StepSchedule = std::function<double(int64_t step)>;

struct StageIOptions {
  /// Average (uniformity) loss or max loss.
  HG_ARG(SeparationLossKind, loss) = SeparationLossKind::Average;
  /// N, the number of gradient steps (the reference's kernel_epoch; default as its scripts).
  HG_ARG(int64_t, steps) = 100;
  /// t of exp(−t‖φ̂_μ − φ̂_ν‖²).
  HG_ARG(double, temperature) = 2.0;
  /// The step size at each step; empty: the reference's schedule for the loss — average: 1 at step 0, divided
  /// by √(i + 1) after step i, cumulatively (lr_i = 1/√(i!)); max: a constant 10.
  HG_ARG(StepSchedule, schedule);
};

/// The reference's Stage I schedules (what an empty StageIOptions::schedule uses).
StepSchedule reference_schedule(SeparationLossKind loss);

struct StageIResult {
  std::vector<double> losses;  ///< L_Φ(Ξ) before each step: losses[i] is the loss at the W that step i moves
  double final_loss = 0.0;     ///< L_Φ(Ξ) after the last step and the row normalisation
};

/// Stage I (Algorithm 1): `steps` plain gradient steps W ← W − γ_i ∇_W L_Φ(Ξ), then (without compat) the rows
/// of W normalised. memories Ξ [M, d] (rows, M ≥ 2), on the map's device and dtype. Only W changes.
StageIResult train_kernel(KernelMap& map, const Tensor& memories, const StageIOptions& options = {});

}  // namespace hg::nn
