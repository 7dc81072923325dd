#pragma once
// MultiheadAttention, with PyTorch's parameters, masks and layouts, and any separation function of the
// Hopfield family (sparsemax, entmax, top-K, window, linear, random features, LwPF forgetting units, ...) in
// place of the softmax.
//
//   hg::nn::MultiheadAttention attn(hg::nn::MultiheadAttentionOptions(64, 4).dropout(0.1).batch_first(true));
//   auto [out, weights] = attn(x, x, x, /*key_padding_mask=*/padding);   // x [N, L, 64]; weights [N, L, L]
//
//   // LwPF attention (ViT with partial forgetting): softmax(D(scores)) ⊙ D′
//   auto lwpf = hg::nn::MultiheadAttentionOptions(64, 4).separation(
//       hg::nn::SeparationOptions().forgetting(hg::nn::ForgettingOptions(hg::nn::ForgettingKind::PFU)));
#include <cstdint>
#include <optional>
#include <tuple>

#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct MultiheadAttentionOptions {
  MultiheadAttentionOptions(int64_t embed_dim, int64_t num_heads) : embed_dim_(embed_dim), num_heads_(num_heads) {}
  /// E, the query (and output) feature size; a multiple of num_heads.
  HG_ARG(int64_t, embed_dim);
  HG_ARG(int64_t, num_heads);
  /// Dropout probability on the attention weights (training mode only).
  HG_ARG(double, dropout) = 0.0;
  /// Biases of the input and output projections.
  HG_ARG(bool, bias) = true;
  /// The output projection's bias alone, when set: timm's Attention drops only the qkv bias with
  /// qkv_bias=False and keeps its proj bias (bias(false).out_proj_bias(true)). Unset: as bias(), as PyTorch.
  HG_ARG(std::optional<bool>, out_proj_bias);
  /// Learned key and value vectors appended to the key/value sequences (bias_k, bias_v [1, 1, E]).
  HG_ARG(bool, add_bias_kv) = false;
  /// A zero key and value appended to each head's sequences (after the projections).
  HG_ARG(bool, add_zero_attn) = false;
  /// Key / value feature sizes (default embed_dim); when either differs, q/k/v get separate projection weights.
  HG_ARG(std::optional<int64_t>, kdim);
  HG_ARG(std::optional<int64_t>, vdim);
  /// Inputs and outputs are [N, L, E] instead of [L, N, E].
  HG_ARG(bool, batch_first) = false;
  /// How each head's scores become weights (default softmax: PyTorch's attention). Every SeparationKind works,
  /// with an optional LwPF forgetting unit; RandomFeatures / ReluFeatures get feature_dim = E / num_heads when
  /// it is left at 0. The kinds that never form scores (linear, favor, relu_features) take a key_padding_mask
  /// but no attn_mask, and form the [L, S] weights only when need_weights is true (pass false to stay in
  /// O(L + S) memory).
  HG_ARG(SeparationOptions, separation);
};

/// Multi-head attention (Vaswani et al. 2017):
///   headᵢ = sep((Q Wqᵢ)(K Wkᵢ)ᵀ / √d + mask) (V Wvᵢ),  out = concat(head₁ … head_h) Woᵀ + bo,  d = E / h,
/// with sep = softmax by default, or the separation of options.separation (through Separation::attend).
/// Masks: key_padding_mask [N, S] bool (true = ignore that key); attn_mask [L, S] or [N·h, L, S], bool
/// (true = not allowed) or float (added to the scores). As hg::softmax, a query whose keys are all masked gets
/// zero weights (PyTorch gives NaN there).
/// The Separation is a registered submodule ("separation") only when it holds parameters or buffers (learnable
/// α, a random-feature projection), so a default MultiheadAttention has exactly PyTorch's state-dict keys.
class MultiheadAttentionImpl : public Module {
 public:
  explicit MultiheadAttentionImpl(const MultiheadAttentionOptions& options);
  MultiheadAttentionImpl(int64_t embed_dim, int64_t num_heads)
      : MultiheadAttentionImpl(MultiheadAttentionOptions(embed_dim, num_heads)) {}

  /// query [L, N, E], key [S, N, kdim], value [S, N, vdim] ([N, ·, ·] with batch_first; unbatched [L, E] too).
  /// Returns (output [L, N, E] (or [N, L, E]), weights): the weights (after dropout, as PyTorch) are [N, L, S]
  /// averaged over heads, or [N, h, L, S] when average_attn_weights is false; undefined unless need_weights.
  std::tuple<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                     const Tensor& key_padding_mask = {}, bool need_weights = true,
                                     const Tensor& attn_mask = {}, bool average_attn_weights = true);
  /// PyTorch's default: xavier_uniform in_proj (or q/k/v_proj) weights, zero in_proj and out_proj biases,
  /// out_proj weight as Linear's default, xavier_normal bias_k and bias_v.
  void reset_parameters();
  /// Sets the mode of this module and of its separation, registered or not (attention dropout, LwPF noise).
  void train(bool on = true) override;
  void pretty_print(std::ostream& stream) const override;

  MultiheadAttentionOptions options;
  Tensor in_proj_weight;  ///< [3E, E] when kdim = vdim = E (rows: query, key, value projections)
  Tensor q_proj_weight;   ///< [E, E]     when kdim or vdim differs from E
  Tensor k_proj_weight;   ///< [E, kdim]
  Tensor v_proj_weight;   ///< [E, vdim]
  Tensor in_proj_bias;    ///< [3E]
  Tensor bias_k;          ///< [1, 1, E] with add_bias_kv
  Tensor bias_v;          ///< [1, 1, E]
  Linear out_proj{nullptr};  ///< E → E
  Separation separation{nullptr};  ///< the per-head association (softmax by default)

 private:
  bool same_embed_dim() const { return !q_proj_weight.defined(); }
  int64_t head_dim() const { return options.embed_dim() / options.num_heads(); }
  /// "MultiheadAttention(embed_dim=8, num_heads=2)" for error messages.
  std::string describe() const;
};
HG_MODULE(MultiheadAttention);

}  // namespace hg::nn
