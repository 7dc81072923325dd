#pragma once
// Partial forgetting units of LwPF (Ota et al., AISTATS 2023): a non-bijective D applied to the memory
// neurons' pre-activations (the attention scores), turning the memory Lagrangian into
//   L_h(h) = log Σ_μ exp(D(h_μ)),   f_μ = ∂L_h/∂h_μ = D′(h_μ) · exp(D(h_μ)) / Σ_ν exp(D(h_ν)),
// so a forgotten memory (D′ = 0) gets zero weight but still adds exp(D(h)) to the normaliser: the weights of
// one query sum to less than one.
//
//   auto opts = hg::nn::ForgettingOptions(hg::nn::ForgettingKind::PFU);          // the README's recommendation
//   auto [d, keep] = hg::nn::forget(scores, opts, /*training=*/true);           // softmax(d) ⊙ keep
#include <cstdint>
#include <string>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

enum class ForgettingKind {
  ReLU,  ///< D(x) = max(x, 0), D′ = 1[x > 0] (PFU with threshold 0, bias 0 and no noise)
  PFU,   ///< partial forgetting unit: D(x) = x where x > t, b elsewhere; D′ = 1[x > t]
};

/// How the PFU threshold a(x) is chosen.
enum class ForgettingThreshold {
  Constant,      ///< a = threshold_value
  GlobalMedian,  ///< a = lower median of every element of x (the reference's 'dmedian': batch-coupled)
  RowMedian,     ///< a = lower median of each row (last dim) separately
};

struct ForgettingOptions {
  ForgettingOptions(ForgettingKind kind = ForgettingKind::PFU) : kind_(kind) {}
  HG_ARG(ForgettingKind, kind);
  /// PFU: threshold rule (default: the reference's global lower median).
  HG_ARG(ForgettingThreshold, threshold) = ForgettingThreshold::GlobalMedian;
  /// PFU with ForgettingThreshold::Constant: the constant a.
  HG_ARG(double, threshold_value) = 0.0;
  /// PFU: forgotten entries take the value of the threshold t (the reference's bias='mu', so D(x) = max(x, t),
  /// and their gradient flows into t) — or, when false, the constant `bias`.
  HG_ARG(bool, bias_is_threshold) = true;
  HG_ARG(double, bias) = 0.0;
  /// PFU, training mode only: t = a(x) + ε with ε = N(0, 1)·sigma² — sigma squared, as the reference code.
  HG_ARG(double, sigma) = 0.01;
  /// Reproduce the reference's handling of masked (−∞) scores, which changes numbers whenever scores are masked:
  /// the median is taken over every element, −∞ ones included (so masking lowers the threshold), and a masked
  /// entry becomes the bias b (ReLU: 0), so it still adds e^b to the softmax normaliser. (The reference's PFU
  /// computes 0·(−∞) = NaN there; compat gives b instead.) Default: masked entries are absent memories — they
  /// stay −∞ and the median is over the finite entries.
  HG_ARG(bool, compat) = false;
};

/// D(x) and the detached indicator D′(x) (same shape and dtype as x).
struct Forgetting {
  Tensor value;  ///< D(x), differentiable
  Tensor keep;   ///< D′(x) ∈ {0, 1}, no gradient
};

/// Applies the forgetting unit to x (e.g. scores [..., L, S]; RowMedian takes the median over the last dim);
/// `training` enables the PFU threshold noise, drawn from `gen` (null: the device's default generator).
/// Entries of x that are −∞ (masked) always get keep = 0; they stay −∞ (or become b with compat) and never
/// count towards the median unless compat. A row that is entirely −∞ stays −∞ with keep = 0 (softmax then
/// gives zeros, not NaN). Throws for a non-floating x or non-finite option values.
Forgetting forget(const Tensor& x, const ForgettingOptions& options, bool training, Generator* gen = nullptr);

/// "PFU(threshold=global median, bias=threshold, sigma=0.01)", "ReLU" for module printing.
std::string describe(const ForgettingOptions& options);

}  // namespace hg::nn
