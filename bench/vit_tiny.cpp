// vit_tiny: one training step of a ViT on 32×32×3 images, patch 4 (64 tokens + CLS), width 192, depth 6, 3 heads,
// MLP ratio 4, pre-norm LayerNorm blocks, batch 64, cross-entropy, AdamW (../shared/docs/benchmarks.md workload 2).
// The model is hg::models::ViT (timm's VisionTransformer layout and init) with the tiny preset cut to depth 6.
// PyTorch twin: bench/torch/vit_tiny.py.
#include <memory>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/vit.h>

#include "workload.h"

int main(int argc, char** argv) {
  return hgbench::run_workload(
      argc, argv,
      {"vit_tiny", "ViT 32×32×3, patch 4, width 192, depth 6, 3 heads, MLP ×4, batch 64, cross-entropy, AdamW"},
      [](const hgbench::Setup& setup) -> hgbench::Step {
        constexpr int64_t kImage = 32, kPatch = 4, kChannels = 3, kClasses = 10;
        constexpr int64_t kDim = 192, kDepth = 6, kHeads = 3, kHidden = 4 * kDim;
        const int64_t batch = 64 * setup.batch_scale;
        hg::models::ViT model(
            hg::models::ViTOptions::tiny(kImage, kPatch, kClasses).depth(kDepth).num_heads(kHeads).embed_dim(kDim));
        model->to(setup.device);
        // shared: the step is a copyable std::function, and every copy must drive the same optimizer state.
        auto optimizer = std::make_shared<hg::optim::AdamW>(model->parameters(),
                                                            hg::optim::AdamWOptions(1e-3).weight_decay(0.05));
        hg::Tensor images =
            hg::randn({batch, kChannels, kImage, kImage}, {}, &setup.gen).to(setup.device);
        hg::Tensor labels = hg::randint(0, kClasses, {batch}, hg::kInt64, &setup.gen).to(setup.device);
        auto step = [=] {
          optimizer->zero_grad();
          hg::cross_entropy(model(images), labels).backward();
          optimizer->step();
        };
        // Forward FLOPs per image (multiply-add = 2) as hopgrad runs them, T = 65 tokens, P = 64 patches, D = 192,
        // H = 768:
        //   patch embedding  2·P·(3·4·4)·D
        //   per block        2·T·D·3D (qkv) + 2·2·T·T·D (q·kᵀ and weights·v over the 3 heads) + 2·T·D·D (proj)
        //                    + 2·2·T·D·H (fc1, fc2)
        //   last block       only the class token's row reaches the head, so hg::models::ViT runs it for that
        //                    token (ViTBlock::forward_class_token): 2·T·D·2D (keys and values of every token)
        //                    + 2·D·D (its query) + 2·2·T·D (its scores and weighted sum) + 2·D·D + 2·2·D·H; the
        //                    twin, as timm, runs the last block like the others
        //   head             2·D·10
        // Training is 3× the forward (input and weight gradients), except the patch embedding, whose input
        // (the images) needs no gradient: 2×.
        constexpr double kTokens = kImage / kPatch * (kImage / kPatch) + 1, kPatches = kTokens - 1;
        const double patch_embed = 2.0 * kPatches * (kChannels * kPatch * kPatch) * kDim;
        const double block = 2.0 * kTokens * kDim * 3 * kDim + 2.0 * 2 * kTokens * kTokens * kDim +
                             2.0 * kTokens * kDim * kDim + 2.0 * 2 * kTokens * kDim * kHidden;
        const double last_block = 2.0 * kTokens * kDim * 2 * kDim + 2.0 * kDim * kDim + 2.0 * 2 * kTokens * kDim +
                                  2.0 * kDim * kDim + 2.0 * 2 * kDim * kHidden;
        const double head = 2.0 * kDim * kClasses;
        const double flops = batch * (2 * patch_embed + 3 * ((kDepth - 1) * block + last_block + head));
        return {step, flops};
      });
}
