#pragma once
// HopfieldEncoderLayer: a post-norm transformer encoder block around a Hopfield self-association, as
// hflayers' HopfieldEncoderLayer (spec A.4):
//
//   x ← LayerNorm(x + dropout(Hopfield(x)))
//   x ← LayerNorm(x + dropout(W₂ dropout(act(W₁ x + b₁)) + b₂))
//
//   hg::nn::HopfieldEncoderLayer block(
//       hg::nn::HopfieldEncoderLayerOptions(hg::nn::HopfieldOptions(64).num_heads(4)).dim_feedforward(256));
//   hg::Tensor y = block(x);   // x [B, L, 64] → [B, L, 64]
#include <cstdint>
#include <string>

#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/layers/dropout.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct HopfieldEncoderLayerOptions {
  /// The association; its output width must equal its input width (the residual adds them).
  HopfieldEncoderLayerOptions(HopfieldOptions hopfield) : hopfield_(std::move(hopfield)) {}
  HG_ARG(HopfieldOptions, hopfield);
  HG_ARG(int64_t, dim_feedforward) = 2048;
  HG_ARG(double, dropout) = 0.1;
  /// Activation of the feed-forward block, by name (as association_activation): "relu", "gelu", ...
  HG_ARG(std::string, activation) = "relu";
};

class HopfieldEncoderLayerImpl : public Module {
 public:
  explicit HopfieldEncoderLayerImpl(const HopfieldEncoderLayerOptions& options);

  /// src [B, L, input_size] (or [L, B, ·] without batch_first); src_mask is the association mask [L, L] or
  /// [B·H, L, L], src_key_padding_mask [B, L] bool (true = padding).
  Tensor forward(const Tensor& src, const Tensor& src_mask = {}, const Tensor& src_key_padding_mask = {});

  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  HopfieldEncoderLayerOptions options;
  Hopfield hopfield_association{nullptr};
  Linear linear_residual{nullptr};
  Dropout dropout_residual{nullptr};
  Linear linear_output{nullptr};
  LayerNorm norm_residual{nullptr}, norm_output{nullptr};
  Dropout dropout_hopfield_association{nullptr}, dropout_output{nullptr};
};
HG_MODULE(HopfieldEncoderLayer);

}  // namespace hg::nn
