#pragma once
// Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), laid out as timm's
// VisionTransformer, with any separation function of the Hopfield family or an LwPF partial-forgetting unit in
// every attention (timm's LagrangianAttention of the LwPF code, spec B.3).
//
//   hg::models::ViT vit(hg::models::ViTOptions::mini(/*image_size=*/28, /*patch_size=*/7, /*num_classes=*/10)
//                           .in_channels(1));
//   hg::Tensor logits = vit(images);                                   // [N, 1, 28, 28] → [N, 10]
//
//   // LwPF: softmax(D(scores)) ⊙ D′ with the README's PFU (bias = threshold = global lower median)
//   auto lwpf = hg::models::ViTOptions::tiny().separation(hg::nn::SeparationOptions().forgetting(
//       hg::nn::ForgettingOptions(hg::nn::ForgettingKind::PFU)));
//
// Forward (paper §3.1, eqs. 1–4):
//   z₀ = [x_cls; x¹E; …; xᴾE] + E_pos           patch embedding = Conv2d(kernel = stride = patch)   (eq. 1)
//   z′ℓ = MSA(LN(zℓ₋₁)) + zℓ₋₁                  pre-norm attention block                            (eq. 2)
//   zℓ = MLP(LN(z′ℓ)) + z′ℓ                     MLP = Linear → GELU → Linear                       (eq. 3)
//   y = head(LN(z_L⁰))                          the CLS token's final state                          (eq. 4)
#include <cstdint>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/nn/layers/attention.h>
#include <hopgrad/nn/layers/conv.h>
#include <hopgrad/nn/layers/dropout.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

struct ViTOptions {
  ViTOptions(int64_t image_size, int64_t patch_size, int64_t num_classes)
      : image_size_(image_size), patch_size_(patch_size), num_classes_(num_classes) {}
  /// timm's vit_tiny_patch16_224: width 192, 12 blocks, 3 heads.
  static ViTOptions tiny(int64_t image_size = 224, int64_t patch_size = 16, int64_t num_classes = 1000);
  /// timm's vit_small_patch16_224: width 384, 12 blocks, 6 heads.
  static ViTOptions small(int64_t image_size = 224, int64_t patch_size = 16, int64_t num_classes = 1000);
  /// A small ViT for 28×28 / 32×32 images that trains in minutes on a CPU: width 64, 2 blocks, 4 heads.
  static ViTOptions mini(int64_t image_size = 32, int64_t patch_size = 4, int64_t num_classes = 10);

  /// Square images image_size × image_size; patch_size must divide it.
  HG_ARG(int64_t, image_size);
  HG_ARG(int64_t, patch_size);
  HG_ARG(int64_t, num_classes);
  HG_ARG(int64_t, in_channels) = 3;
  /// D, the token width; a multiple of num_heads.
  HG_ARG(int64_t, embed_dim) = 192;
  /// Number of transformer blocks.
  HG_ARG(int64_t, depth) = 12;
  HG_ARG(int64_t, num_heads) = 3;
  /// MLP hidden width = mlp_ratio · D.
  HG_ARG(double, mlp_ratio) = 4.0;
  /// Bias of the q/k/v projection (timm's qkv_bias).
  HG_ARG(bool, qkv_bias) = true;
  /// Dropout after the position embedding, after each residual branch's projection and before the head.
  HG_ARG(double, drop_rate) = 0.0;
  /// Dropout on the attention weights.
  HG_ARG(double, attn_drop_rate) = 0.0;
  /// Each attention's separation (softmax by default) and optional LwPF forgetting unit.
  HG_ARG(nn::SeparationOptions, separation);
};

/// One pre-norm transformer block (timm's Block): x ← x + drop(MSA(LN₁ x)),  x ← x + drop(MLP(LN₂ x)).
class ViTBlockImpl : public nn::Module {
 public:
  explicit ViTBlockImpl(const ViTOptions& options);
  /// x [N, T, D] → [N, T, D].
  Tensor forward(const Tensor& x);
  /// The same, also returning the attention weights [N, T, T] averaged over heads (after the separation and
  /// the LwPF mask: with forgetting, rows sum to less than 1).
  std::pair<Tensor, Tensor> forward_with_attention(const Tensor& x);
  /// The block's output at the class token only, [N, T, D] → [N, 1, D]: what the classifier reads of the last
  /// block. Every token's key and value still enter the attention; the query, the projection, the MLP and the
  /// residuals run on one row per image. Equal to forward(x).narrow(1, 0, 1) when each query's weights depend on
  /// its own scores alone (not LwPF, whose thresholds are taken over all of them; see ViT::forward).
  Tensor forward_class_token(const Tensor& x);

  nn::LayerNorm norm1{nullptr};
  nn::MultiheadAttention attn{nullptr};
  nn::LayerNorm norm2{nullptr};
  nn::Linear fc1{nullptr};
  nn::GELU act{nullptr};
  nn::Linear fc2{nullptr};
  nn::Dropout drop{nullptr};

 private:
  Tensor mlp(const Tensor& x);
};
HG_MODULE(ViTBlock);

class ViTImpl : public nn::Module {
 public:
  explicit ViTImpl(const ViTOptions& options);
  /// images [N, in_channels, image_size, image_size] → logits [N, num_classes]. With a separation whose rows are
  /// independent (softmax, the default) the last block runs for the class token alone (ViTBlock::
  /// forward_class_token): the same logits and gradients as all tokens, without the work on the other rows that
  /// the head never reads.
  Tensor forward(const Tensor& images);
  /// Logits and every block's attention weights [N, T, T] (T = patches + 1, token 0 is CLS).
  std::pair<Tensor, std::vector<Tensor>> forward_with_attention(const Tensor& images);
  /// timm's init_weights_vit_timm: position embedding and Linear / q-k-v weights ~ truncated N(0, 0.02²) in
  /// ±2, CLS token ~ N(0, 10⁻¹²), biases 0, LayerNorms γ = 1, β = 0; the patch Conv2d keeps PyTorch's default.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  int64_t num_patches() const;

  ViTOptions options;
  nn::Conv2d patch_embed{nullptr};  ///< C → D, kernel = stride = patch_size
  Tensor cls_token;                 ///< [1, 1, D]
  Tensor pos_embed;                 ///< [1, patches + 1, D]
  nn::Dropout pos_drop{nullptr};
  std::vector<ViTBlock> blocks;
  nn::LayerNorm norm{nullptr};
  nn::Dropout head_drop{nullptr};
  nn::Linear head{nullptr};

 private:
  /// z₀ (eq. 1): [N, patches + 1, D].
  Tensor embed(const Tensor& images);
};
HG_MODULE(ViT);

}  // namespace hg::models
