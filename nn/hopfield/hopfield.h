#pragma once
// The Hopfield layer of Ramsauer et al. (ICLR 2021), with every option of hflayers' `Hopfield` and any
// separation function (softmax, sparse/entmax, top-K, window, linear, random features, LwPF forgetting, ...):
//
//   ξ ← K sep(β Kᵀ ξ)   (update_steps_max more times, per head, until the change falls below eps)
//   out = W_O · concat_h(dropout(sep(β Q_h K_hᵀ)) V_h)
//
// with Q = R W_Q, K = Y W_K, V = Y W_V the projected state patterns R, stored patterns Y and pattern
// projections. One update with β = 1/√d_k is multi-head attention.
//
//   hg::nn::Hopfield hopfield(hg::nn::HopfieldOptions(64).num_heads(4).update_steps_max(3));
//   hg::Tensor z = hopfield(x);                            // x [B, L, 64] (stored = state = projection)
//   auto r = hopfield->associate(y, x, y, hg::nn::AssociateOptions().return_association(true));
//   r.association;                                         // ξ [B, 4, L, S]; r.update_steps[h]: updates of head h
//
// Parameter names and shapes follow hflayers (spec A.2), so a PyTorch state_dict maps one to one:
// association_core.{in_proj_weight | q_proj_weight, k_proj_weight, v_proj_weight}, association_core.in_proj_bias,
// association_core.out_proj.{weight,bias}, association_core.p_norm_{weight,bias}, association_core.bias_{k,v},
// norm_stored_pattern.*, norm_state_pattern.*, norm_pattern_projection.*.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

/// β, the inverse temperature: unset (1/√head_dim, or 1 when everything is static), one value for every
/// head, or one value per head: `.scaling(0.25)`, `.scaling({0.5, 1.0, 2.0, 4.0})`.
struct Scaling {
  Scaling() = default;
  Scaling(double beta) : values{beta} {}
  Scaling(std::initializer_list<double> per_head) : values(per_head) {}
  Scaling(std::vector<double> per_head) : values(std::move(per_head)) {}
  bool is_default() const { return values.empty(); }
  bool is_per_head() const { return values.size() > 1; }
  std::vector<double> values;
};

struct HopfieldOptions {
  HopfieldOptions(std::optional<int64_t> input_size = std::nullopt) : input_size_(input_size) {}
  /// Width of the state patterns (queries). Required unless everything is static (see static_execution()).
  HG_ARG(std::optional<int64_t>, input_size);
  /// d_k, the width of one head in the associative space (default input_size / num_heads, which must divide).
  HG_ARG(std::optional<int64_t>, hidden_size);
  /// Width of the output projection (default input_size).
  HG_ARG(std::optional<int64_t>, output_size);
  /// Width of one head's projected values (default hidden_size).
  HG_ARG(std::optional<int64_t>, pattern_size);
  HG_ARG(int64_t, num_heads) = 1;
  HG_ARG(Scaling, scaling);
  /// Extra Hopfield updates after the first association: 0 is plain attention, n allows up to n + 1 separation
  /// evaluations, nullopt iterates until every head converged (at most update_steps_cap updates, then throws).
  HG_ARG(std::optional<int64_t>, update_steps_max) = 0;
  /// A head stops once max over the batch of ‖ξ_t − ξ_{t−1}‖_F (over L × S) is ≤ eps (checked from step 1).
  HG_ARG(double, update_steps_eps) = 1e-4;
  HG_ARG(int64_t, update_steps_cap) = 10000;

  /// LayerNorms of the raw stored patterns, state patterns and pattern projections (three distinct modules,
  /// as hflayers, even when one tensor is passed), and of q and k per head in the associative space (one
  /// affine pair shared by q and k; applied once, before the first association).
  HG_ARG(bool, normalize_stored_pattern) = true;
  HG_ARG(bool, normalize_stored_pattern_affine) = true;
  HG_ARG(double, normalize_stored_pattern_eps) = 1e-5;
  HG_ARG(bool, normalize_state_pattern) = true;
  HG_ARG(bool, normalize_state_pattern_affine) = true;
  HG_ARG(double, normalize_state_pattern_eps) = 1e-5;
  HG_ARG(bool, normalize_pattern_projection) = true;
  HG_ARG(bool, normalize_pattern_projection_affine) = true;
  HG_ARG(double, normalize_pattern_projection_eps) = 1e-5;
  HG_ARG(bool, normalize_hopfield_space) = false;
  HG_ARG(bool, normalize_hopfield_space_affine) = false;
  HG_ARG(double, normalize_hopfield_space_eps) = 1e-5;

  /// A static component is not projected: the same patterns serve every head (their width must be hidden_size,
  /// or pattern_size for the projection).
  HG_ARG(bool, stored_pattern_as_static) = false;
  HG_ARG(bool, state_pattern_as_static) = false;
  HG_ARG(bool, pattern_projection_as_static) = false;
  /// Values are projected with the key weights first: V = (Y W_K + b_K) W_V + b_V (the paper's Y W_K W_V).
  HG_ARG(bool, pattern_projection_as_connected) = false;
  /// Raw widths of the stored patterns (keys) and pattern projections (values); default input_size.
  HG_ARG(std::optional<int64_t>, stored_pattern_size);
  HG_ARG(std::optional<int64_t>, pattern_projection_size);

  /// Inputs and outputs are [B, seq, features] (true) or [seq, B, features].
  HG_ARG(bool, batch_first) = true;
  /// Elementwise function applied to the output: "" (none), "relu", "gelu", "selu", "elu", "tanh", "sigmoid",
  /// "softplus", "exp", "abs".
  HG_ARG(std::string, association_activation);
  /// Dropout on the association weights after the last update (training mode only).
  HG_ARG(double, dropout) = 0.0;
  /// Biases of the in-projections and of the out-projection.
  HG_ARG(bool, input_bias) = true;
  /// A learned stored pattern and pattern projection appended to every sequence (association_core.bias_k
  /// [1, 1, H·d_k], bias_v [1, 1, H·pattern_size]; N(0, 0.02²)). hflayers creates them but never uses them
  /// (spec A.5.1): leave this false to reproduce it.
  HG_ARG(bool, concat_bias_pattern) = false;
  /// A zero stored pattern and zero projection appended per head (a "null memory" with score 0).
  HG_ARG(bool, add_zero_association) = false;
  /// Skip the out-projection: the output is the H·pattern_size concatenation of the heads.
  HG_ARG(bool, disable_out_projection) = false;
  /// How scores become association weights (default softmax); a forgetting unit here gives LwPF.
  HG_ARG(SeparationOptions, separation);
  /// hflayers' per-head β (spec A.5.2): the vector is tiled along the projected features, so feature j of head
  /// h is scaled by β[(h·d_k + j) mod H] instead of β[h]. Only changes numbers with a per-head scaling.
  HG_ARG(bool, compat) = false;

 public:
  /// True when no projection or normalisation needs a size: all three patterns static, no Hopfield-space
  /// normalisation and no out-projection (β then defaults to 1).
  bool static_execution() const {
    return stored_pattern_as_static_ && state_pattern_as_static_ && pattern_projection_as_static_ &&
           !pattern_projection_as_connected_ && !normalize_hopfield_space_ && disable_out_projection_;
  }
};

/// Masks and requests of one association.
struct AssociateOptions {
  /// [B, S] bool, true = that stored pattern is padding (excluded).
  HG_ARG(Tensor, stored_pattern_padding_mask);
  /// [L, S] or [B·H, L, S] (row b·H + h): bool (true = forbidden) or floating (added to the scores).
  HG_ARG(Tensor, association_mask);
  /// Also return ξ [B, H, L, S′] and the projected values [B, H, S′, pattern_size] (S′ counts an appended bias
  /// or zero pattern).
  HG_ARG(bool, return_association) = false;
  HG_ARG(bool, return_projected_patterns) = false;

 public:
  /// Source of dropout masks and of random separations (null: the device's default generator).
  AssociateOptions& generator(Generator* gen) {
    generator_ = gen;
    return *this;
  }
  Generator* generator() const { return generator_; }

 private:
  Generator* generator_ = nullptr;
};

struct HopfieldResult {
  Tensor output;              ///< [B, L, output_size] ([L, B, ·] without batch_first; [L, ·] unbatched)
  Tensor association;         ///< ξ before dropout, LwPF's D′ applied: [B, H, L, S′] (on request)
  Tensor projected_patterns;  ///< V [B, H, S′, pattern_size] (on request)
  /// Updates ξ ← K sep(β Kᵀ ξ) each head took (its separation ran update_steps[h] + 1 times).
  std::vector<int64_t> update_steps;
};

/// The projection parameters, grouped under hflayers' name (association_core) so checkpoints map one to one.
class HopfieldCoreImpl : public Module {
 public:
  HopfieldCoreImpl() : Module("HopfieldCore") {}
  void pretty_print(std::ostream& stream) const override;

  Tensor p_norm_weight, p_norm_bias;  ///< [d_k]: affine of the Hopfield-space LayerNorm (shared by q and k)
  Tensor in_proj_weight;  ///< fused: rows [q; k; v] of the non-static parts, [(·)·H·d_k + (·)·H·d_v, input_size]
  Tensor q_proj_weight;   ///< separate: [H·d_k, input_size]
  Tensor k_proj_weight;   ///< [H·d_k, stored_pattern_size]
  Tensor v_proj_weight;   ///< [H·d_v, H·d_k if connected else pattern_projection_size]
  Tensor in_proj_bias;    ///< [q | k | v] blocks of the non-static parts
  Linear out_proj{nullptr};  ///< H·d_v → output_size
  Tensor bias_k, bias_v;  ///< concat_bias_pattern: [1, 1, H·d_k], [1, 1, H·d_v]
};
HG_MODULE(HopfieldCore);

class HopfieldImpl : public Module {
 public:
  explicit HopfieldImpl(const HopfieldOptions& options = {});
  HopfieldImpl(int64_t input_size) : HopfieldImpl(HopfieldOptions(input_size)) {}

  /// Self-association: `input` serves as stored patterns, state patterns and pattern projections (with masks:
  /// pass it three times).
  Tensor forward(const Tensor& input);
  /// Stored patterns [B, S, stored_pattern_size], state patterns [B, L, input_size], pattern projections
  /// [B, S, pattern_projection_size] (sequence-first without batch_first; all 2-D for one unbatched sample).
  Tensor forward(const Tensor& stored, const Tensor& state, const Tensor& projection,
                 const Tensor& stored_pattern_padding_mask = {}, const Tensor& association_mask = {});
  /// The full association (spec A.3), with the association matrix, projected values and update counts.
  HopfieldResult associate(const Tensor& stored, const Tensor& state, const Tensor& projection,
                           const AssociateOptions& request = {});

  /// N(0, 0.02²) projection weights and bias patterns, zero biases, LayerNorms at γ = 1, β = 0.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  int64_t num_heads() const { return options.num_heads(); }
  /// d_k, d_v and the output width; for static execution without hidden_size they follow the inputs (0 here).
  int64_t head_dim() const { return head_dim_; }
  int64_t pattern_dim() const { return pattern_dim_; }
  int64_t output_dim() const { return output_dim_; }
  int64_t stored_pattern_dim() const { return stored_dim_; }
  int64_t pattern_projection_dim() const { return projection_dim_; }

  HopfieldOptions options;
  HopfieldCore association_core{nullptr};
  Separation separation{nullptr};
  LayerNorm norm_stored_pattern{nullptr}, norm_state_pattern{nullptr}, norm_pattern_projection{nullptr};

 private:
  /// "Hopfield(input_size=8, num_heads=2)" for error messages.
  std::string describe() const;
  int64_t head_dim_ = 0, pattern_dim_ = 0, output_dim_ = 0, stored_dim_ = 0, projection_dim_ = 0;
};
HG_MODULE(Hopfield);

/// `association_activation` by name ("" = identity); throws listing the accepted names.
Tensor apply_association_activation(const std::string& name, const Tensor& x);

}  // namespace hg::nn
