#pragma once
// Separation functions: how the similarities of a state pattern (query) to the stored patterns (keys) become
// association weights. This is the one choice the Hopfield papers vary, so it is one setting here, shared by
// every Hopfield layer and by attention:
//
//   ξ_new = Y · sep(β Yᵀ ξ)                 (one Hopfield update; softmax gives Ramsauer et al.'s rule)
//
//   hg::nn::Separation sep(hg::nn::SeparationOptions(hg::nn::SeparationKind::Sparsemax));
//   auto out = sep->attend(q, k, v, beta);                      // q [B, H, L, d], k [B, H, S, d], v [B, H, S, dv]
//   auto [w, keep] = sep->weights(beta * matmul(q, k.transpose(-2, -1)));   // explicit weights [B, H, L, S]
//
// Kinds that form an explicit weight matrix (softmax, softmax₁, sparsemax, entmax, top-K, random mask, window on
// request, polynomial) offer weights(); every kind offers attend(), which takes the sub-quadratic path where one
// exists (window, linear, random features). LwPF's forgetting unit (ForgettingOptions) can be added to any
// kind that forms scores: D is applied to the masked scores before the separation, and its indicator D′ is
// returned separately, to be multiplied in after attention dropout (spec B.3).
//
// Masks: `mask` is bool, broadcastable to the scores [..., L, S], true = excluded (a padded key, a forbidden
// pair); `bias` is float and added to the scores (an additive attention mask). A query whose keys are all
// excluded gets zero weights and a zero output, never NaN.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/forgetting.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

enum class SeparationKind {
  Softmax,         ///< ξ = softmax(s)                                          (Ramsauer et al. 2021)
  Softmax1,        ///< ξ_i = e^{s_i} / (1 + Σ_j e^{s_j}): an implicit zero logit   (U-Hop's softmax₁)
  Sparsemax,       ///< ξ = argmin_{p ∈ Δ} ‖p − s‖²                           (sparse Hopfield, Hu et al. 2023)
  Entmax15,        ///< 1.5-entmax, exact (sort-based)
  AlphaEntmax,     ///< α-entmax by bisection, α > 1 configurable or learnable
  TopK,            ///< softmax over the K largest scores of each row, the rest excluded
  RandomMask,      ///< softmax over a random subset of keys (each excluded with probability p), BigBird-like
  Window,          ///< softmax over keys with |i − j| ≤ w (self-association), O(L·w) memory
  Linear,          ///< φ(q)ᵀ Σ φ(k) vᵀ / φ(q)ᵀ Σ φ(k) with φ = elu + 1, O(L·d²)
  RandomFeatures,  ///< FAVOR+ positive orthogonal random features for exp(q·k), O(L·m·d)
  ReluFeatures,    ///< the nonparametric reference's ReLU random features, O(L·m·d)
  Polynomial,      ///< ξ_i = s_i^n, unnormalised (dense associative memory, n = 10)
};

/// "softmax", "softmax1", "sparsemax", "entmax15", "entmax", "topk", "random", "window", "linear", "favor",
/// "relu_features", "poly".
std::string_view to_string(SeparationKind kind);
/// The inverse of to_string (for command-line flags); the error lists the accepted names.
SeparationKind separation_kind_from_string(std::string_view name);

struct SeparationOptions {
  SeparationOptions(SeparationKind kind = SeparationKind::Softmax) : kind_(kind) {}
  HG_ARG(SeparationKind, kind);
  /// TopK: keys kept per query; 0 means ⌊fraction · S⌋ (at least 1).
  HG_ARG(int64_t, top_k) = 0;
  HG_ARG(double, top_fraction) = 0.5;
  /// RandomMask: probability that a key is excluded for a query (drawn anew each call, in training and eval).
  HG_ARG(double, mask_prob) = 0.1;
  /// Window: half-width w of the band |i − j| ≤ w.
  HG_ARG(int64_t, window) = 2;
  /// AlphaEntmax: α (> 1; 2 is sparsemax, → 1 softmax), a parameter named "alpha" when learnable (used clamped
  /// to ≥ 1.01, as the entmax package's AlphaChooser, so an optimiser step cannot leave α's domain).
  HG_ARG(double, alpha) = 1.5;
  HG_ARG(bool, learnable_alpha) = false;
  HG_ARG(int64_t, bisect_iters) = 50;
  /// RandomFeatures / ReluFeatures: width d of the projected patterns (the head dim) and number of features m
  /// (0: ⌊d ln d⌋ as the reference). The projection is a buffer "projection" [m, d], drawn once at
  /// construction from `seed`.
  HG_ARG(int64_t, feature_dim) = 0;
  HG_ARG(int64_t, num_features) = 0;
  HG_ARG(uint64_t, seed) = 0;
  /// Polynomial: the degree n.
  HG_ARG(int64_t, degree) = 10;
  /// Reproduce the reference code's number-changing quirks (documented per kind in separation.cpp): top-K and
  /// random mask set the excluded scores to 0 instead of excluding them, random mask rescales survivors by
  /// 1/(1 − p), window ignores β.
  HG_ARG(bool, compat) = false;
  /// LwPF: a forgetting unit applied to the scores before the separation.
  HG_ARG(std::optional<ForgettingOptions>, forgetting);
};

/// Association weights, before attention dropout: `weights` [..., L, S]; `keep` is LwPF's D′ (undefined
/// without a forgetting unit), to multiply in after dropout.
struct Association {
  Tensor weights;
  Tensor keep;
};

class SeparationImpl : public Module {
 public:
  explicit SeparationImpl(const SeparationOptions& options = {});

  /// True for the kinds that can return explicit weights (all but Linear, RandomFeatures, ReluFeatures).
  bool forms_weights() const;

  /// Weights from scores [..., L, S] that already include β (and any bias). The separation runs over the last
  /// dim. Throws for kinds that do not form weights.
  Association weights(const Tensor& scores, const Tensor& mask = {}, Generator* gen = nullptr);

  /// out = (dropout(sep(β q kᵀ + bias)) ⊙ keep) v for q [..., L, d], k [..., S, d], v [..., S, dv].
  /// `beta` is a scalar tensor or broadcastable to [..., 1, 1] (per-head β). `dropout` is the attention
  /// dropout probability (applied in training mode only). When `weights_out` is not null it receives the
  /// final weights [..., L, S] (after dropout and keep) — for the sub-quadratic kinds this costs O(L·S).
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& mask = {},
                const Tensor& bias = {}, double dropout = 0.0, Tensor* weights_out = nullptr,
                Generator* gen = nullptr);

  void pretty_print(std::ostream& stream) const override;

  SeparationOptions options;
  Tensor alpha;       ///< AlphaEntmax with learnable_alpha: scalar parameter "alpha"
  Tensor projection;  ///< RandomFeatures / ReluFeatures: buffer "projection" [m, d]
};
HG_MODULE(Separation);

/// The Hopfield layers' masks as the attn_mask of hg::scaled_dot_product_attention(_qkvpacked): `mask` is bool with
/// true = excluded (the fused op's bool mask means the opposite), `bias` is added to the scores (converted to
/// `dtype`); with both, the excluded pairs get −inf in the bias. Undefined when neither is.
Tensor fused_attention_mask(const Tensor& mask, const Tensor& bias, DType dtype);

}  // namespace hg::nn
