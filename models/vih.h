#pragma once
// U-Hop's Vision Hopfield models (Wu, Hu et al. 2024, "Uniform Memory Retrieval with Larger Capacity for
// Modern Hopfield Models", §4 image classification; the reference's image_classification.py and deep_ViH.py,
// spec D.4): a patch embedding with a CLS token and no positional embedding, then Hopfield association with
// either a plain modern Hopfield memory (MHN) or U-Hop's learnable-kernel memory (UMHN, LearnableHopfield),
// whose kernel Φ is first trained on the deep separation loss (Stage I) before the classifier is (Stage II).
//
//   hg::models::ViH vih(hg::models::ViHOptions(32, 32, 10));                   // CIFAR-10: 1 patch + CLS
//   hg::models::vih_stage_one(*vih, train_images, hg::models::ViHStageIOptions());   // UMHN only
//   hg::Tensor logits = vih(images);                                          // [N, 3, 32, 32] → [N, 10]
//
//   hg::models::DeepViH deep(hg::models::ViHOptions::deep(64, 32, 200));     // ThreeLayerViH, 4 heads
//
// ViH:      t = [cls; Conv(x)];  h = Memory(R = t₀, Y = t₁…);  y = W_c LN(ReLU(h))
// DeepViH:  t ← t + Memory(LN t, LN t);  t ← t + MLP(LN t)   (× depth);  y = W_c LN(ReLU(LN(t)₀))
#include <cstdint>
#include <functional>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/hopfield/learnable_hopfield.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/hopfield/separation_loss.h>
#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/nn/layers/conv.h>
#include <hopgrad/nn/layers/dropout.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

/// Which associative memory the model uses.
enum class HopfieldMemory {
  MHN,   ///< modern Hopfield (nn::Hopfield as the nonparametric wrapper: Q = W_q R, K = W_k Y, V = W_v K, no norms)
  UMHN,  ///< U-Hop (nn::LearnableHopfield: Q = W_q Φ(R), K = W_k Φ(Y), V = W_v Y)
};

struct ViHOptions {
  ViHOptions(int64_t image_size, int64_t patch_size, int64_t num_classes)
      : image_size_(image_size), patch_size_(patch_size), num_classes_(num_classes) {}
  /// deep_ViH.py's ThreeLayerViH: d = 512, 4 heads (β = 1/√128), 3 blocks, MLP 2048 with dropout 0.3.
  static ViHOptions deep(int64_t image_size = 64, int64_t patch_size = 32, int64_t num_classes = 200);

  /// Square images; patch_size must divide image_size.
  HG_ARG(int64_t, image_size);
  HG_ARG(int64_t, patch_size);
  HG_ARG(int64_t, num_classes);
  HG_ARG(int64_t, in_channels) = 3;
  /// d_model (the reference's default 512).
  HG_ARG(int64_t, embed_dim) = 512;
  HG_ARG(int64_t, num_heads) = 1;
  /// Associations per forward (the reference's update_steps; MHN iterates as nn::Hopfield, spec A.3).
  HG_ARG(int64_t, update_steps) = 1;
  HG_ARG(HopfieldMemory, memory) = HopfieldMemory::UMHN;
  /// The association's separation (the reference always uses softmax).
  HG_ARG(nn::SeparationOptions, separation);
  /// Dropout on the association weights (training mode): 0.1, the default of U-Hop's Hopfield and
  /// LearnableHopfield layers, which its ViH models never change (spec C.3).
  HG_ARG(double, attention_dropout) = 0.1;
  /// DeepViH only: number of blocks, MLP width ratio and MLP dropout.
  HG_ARG(int64_t, depth) = 3;
  HG_ARG(double, mlp_ratio) = 4.0;
  HG_ARG(double, mlp_dropout) = 0.3;
};

/// The memory of a ViH block: an MHN or a UMHN association behind one call.
class ViHMemoryImpl : public nn::Module {
 public:
  explicit ViHMemoryImpl(const ViHOptions& options);
  /// state R [B, L, d], stored Y [B, S, d] → [B, L, d].
  Tensor forward(const Tensor& state, const Tensor& stored);
  /// Φ(tokens) [..., d] → [..., d] (UMHN only: MHN has no kernel to separate).
  Tensor kernel_forward(const Tensor& tokens);

  nn::Hopfield mhn{nullptr};
  nn::LearnableHopfield umhn{nullptr};
};
HG_MODULE(ViHMemory);

/// Patch embedding of D.4: Conv2d(C → d, kernel = stride = patch), tokens, a CLS token ~ N(0, 1) in front; no
/// positional embedding. images [N, C, s, s] → [N, 1 + P, d].
class ViHPatchEmbeddingImpl : public nn::Module {
 public:
  explicit ViHPatchEmbeddingImpl(const ViHOptions& options);
  Tensor forward(const Tensor& images);

  ViHOptions options;
  nn::Conv2d proj{nullptr};
  Tensor cls_token;  ///< [1, 1, d]
};
HG_MODULE(ViHPatchEmbedding);

/// image_classification.py's ViH: one association with the CLS token as the query and the patch tokens as the
/// memory, then the head ReLU → LayerNorm → Linear.
class ViHImpl : public nn::Module {
 public:
  explicit ViHImpl(const ViHOptions& options);
  /// images [N, C, s, s] → logits [N, num_classes].
  Tensor forward(const Tensor& images);
  /// Stage I's loss (UMHN): the deep separation loss of Φ(tokens), averaged over the images.
  Tensor separation_loss(const Tensor& images);
  void pretty_print(std::ostream& stream) const override;

  ViHOptions options;
  ViHPatchEmbedding embed{nullptr};
  ViHMemory memory{nullptr};
  nn::LayerNorm head_norm{nullptr};
  nn::Linear head{nullptr};
};
HG_MODULE(ViH);

/// One block of deep_ViH.py: x ← x + Memory(LN₁ x, LN₁ x);  x ← x + MLP(LN₂ x), MLP = d → r·d (GELU, dropout)
/// → d (dropout), xavier-uniform weights and N(0, 10⁻¹²) biases.
class DeepViHBlockImpl : public nn::Module {
 public:
  explicit DeepViHBlockImpl(const ViHOptions& options);
  Tensor forward(const Tensor& x);

  nn::LayerNorm norm1{nullptr};
  ViHMemory memory{nullptr};
  nn::LayerNorm norm2{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  nn::Dropout drop{nullptr};
};
HG_MODULE(DeepViHBlock);

/// deep_ViH.py's ThreeLayerViH (depth blocks of self-association over all tokens).
class DeepViHImpl : public nn::Module {
 public:
  explicit DeepViHImpl(const ViHOptions& options);
  /// images [N, C, s, s] → logits [N, num_classes].
  Tensor forward(const Tensor& images);
  /// Stage I's loss (UMHN): the deep separation loss of each block's Φ(LN₁ tokens), averaged over the blocks
  /// and the images.
  Tensor separation_loss(const Tensor& images);
  void pretty_print(std::ostream& stream) const override;

  ViHOptions options;
  ViHPatchEmbedding embed{nullptr};
  std::vector<DeepViHBlock> blocks;
  nn::LayerNorm norm{nullptr};
  nn::LayerNorm head_norm{nullptr};
  nn::Linear head{nullptr};
};
HG_MODULE(DeepViH);

/// Stage I of the reference (once, before training): plain SGD over **all** the model's parameters on its
/// separation_loss, in shuffled mini-batches.
struct ViHStageIOptions {
  /// The reference's kernel_epoch (image_classification.py: 50; deep_ViH.py: 20).
  HG_ARG(int64_t, epochs) = 50;
  /// 200 (image_classification.py), 2048 (deep_ViH.py).
  HG_ARG(int64_t, batch_size) = 200;
  HG_ARG(double, lr) = 0.1;
  /// Shuffling seed.
  HG_ARG(uint64_t, seed) = 0;
};

/// Runs Stage I on images [N, C, s, s] (on the model's device); returns the mean loss of each epoch. Refused for
/// MHN models (nothing to separate).
std::vector<double> vih_stage_one(ViHImpl& model, const Tensor& images, const ViHStageIOptions& options = {});
std::vector<double> vih_stage_one(DeepViHImpl& model, const Tensor& images, const ViHStageIOptions& options = {});

}  // namespace hg::models
