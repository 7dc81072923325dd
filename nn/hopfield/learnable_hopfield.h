#pragma once
// U-Hop's LearnableHopfield (spec D.4): a Hopfield association whose queries and keys are read through a
// learnable feature map Φ, so the deep separation loss can spread the stored patterns in feature space (the
// paper's Algorithm 2, the ViH models).
//
//   hg::nn::LearnableHopfield layer(hg::nn::LearnableHopfieldOptions(512).num_heads(4));
//   auto out = layer(cls, patches);                                  // R [B, L, 512], Y [B, S, 512] → [B, L, 512]
//   auto sep = hg::nn::deep_separation_loss(layer->kernel_forward(patches));    // Stage I / inner loop
//
//   Q = W_q Φ(R),  K = W_k Φ(Y),  V = W_v Y;   Q ← sep(β Q Kᵀ) V  (update_steps times, per head);   out = W_out Q
//
// As in the reference (and in the nonparametric Hopfield wrappers it extends), the new state of each update is
// the retrieved value: the queries are replaced by sep(β Q Kᵀ) V, so d_head is both the key and value width.
#include <cstdint>
#include <optional>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct LearnableHopfieldOptions {
  LearnableHopfieldOptions(int64_t input_size) : input_size_(input_size) {}
  /// d_model, the width of state patterns R, stored patterns Y and the output.
  HG_ARG(int64_t, input_size);
  /// H; d_head = input_size / H (must divide).
  HG_ARG(int64_t, num_heads) = 1;
  /// D_Φ ≥ d_model, the width of the feature space (0: d_model, as the reference).
  HG_ARG(int64_t, feature_dim) = 0;
  /// Φ has a bias, as the reference's nn.Linear(d, d) (PyTorch's default initialisation).
  HG_ARG(bool, kernel_bias) = true;
  /// Associations per forward (≥ 1).
  HG_ARG(int64_t, update_steps) = 1;
  /// β (default 1/√d_head).
  HG_ARG(std::optional<double>, scaling);
  /// Dropout on the association weights (training mode only).
  HG_ARG(double, dropout) = 0.0;
  /// The separation (the reference always uses softmax, whatever its `mode` says).
  HG_ARG(SeparationOptions, separation);
};

class LearnableHopfieldImpl : public Module {
 public:
  explicit LearnableHopfieldImpl(const LearnableHopfieldOptions& options);
  LearnableHopfieldImpl(int64_t input_size) : LearnableHopfieldImpl(LearnableHopfieldOptions(input_size)) {}

  /// state R [B, L, d], stored Y [B, S, d] → [B, L, d]; `stored_pattern_padding_mask` [B, S] bool, true = padding.
  Tensor forward(const Tensor& state, const Tensor& stored, const Tensor& stored_pattern_padding_mask = {},
                 Generator* gen = nullptr);
  /// Φ(tokens) [..., d] → [..., D_Φ], the features of the deep separation loss.
  Tensor kernel_forward(const Tensor& tokens);

  void pretty_print(std::ostream& stream) const override;
  int64_t head_dim() const { return options.input_size() / options.num_heads(); }
  /// β as used: the scaling option or 1/√d_head.
  double beta() const;

  LearnableHopfieldOptions options;
  Linear kernel{nullptr};                                       ///< Φ: d → D_Φ
  Linear query_proj{nullptr}, key_proj{nullptr}, value_proj{nullptr};  ///< D_Φ, D_Φ, d → H·d_head
  Linear out_proj{nullptr};                                     ///< H·d_head → d
  Separation separation{nullptr};
};
HG_MODULE(LearnableHopfield);

}  // namespace hg::nn
