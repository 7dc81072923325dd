#pragma once
// DeepRC: immune-repertoire classification by attention over a repertoire's sequences (Widrich et al., NeurIPS
// 2020; Ramsauer et al. 2021, §4 "immune repertoire classification"; spec E.3–E.4). Each repertoire is a bag of
// CDR3 sequences; the model is
//
//   z_i = h(s_i)                      sequence embedding: Conv1d(23 → 32, width 9) → SELU → max over positions
//   u_i = f(z_i)                      SNN attention network: [Linear → SELU] × 2 → Linear(→ 1); the last layer
//                                     is the learned Hopfield query ξ, z_i the stored (key) patterns
//   w   = sep(u_1, …, u_N)            separation over the bag's sequences (softmax in the paper; any
//                                     SeparationKind, with an LwPF forgetting unit per bag, spec B.3)
//   r   = Σ_i w_i z_i                 the repertoire representation (the embeddings, not the keys, are pooled)
//   ŷ   = o(r)                        output network: [Linear → SELU] × (layers − 1) → Linear(→ outputs)
//
// Training-time sequence reduction (spec E.3): before the differentiable pass, each bag's attention logits are
// computed without gradient for all its sequences (in chunks) and only the top ⌊fraction · n⌋ (at least 1) go on.
// DeepRC applies it at evaluation too; fraction 1 disables it.
//
//   hg::models::DeepRC model(hg::models::DeepRCOptions().separation(hg::nn::SeparationKind::Sparsemax));
//   hg::data::BagBatch batch = ...;                       // instances [B, N, L, 23], padding_mask [B, N]
//   auto out = model(batch.instances, batch.padding_mask); // out.logits [B, 1], out.attention [B, N]
#include <cstdint>
#include <optional>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/containers.h>
#include <hopgrad/nn/hopfield/forgetting.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/conv.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

struct DeepRCOptions {
  /// Input features per sequence position (20 one-hot amino acids + 3 position features, spec E.2).
  HG_ARG(int64_t, in_features) = 23;
  /// Sequence CNN: kernel width (a k-mer detector) and number of kernels (the embedding width).
  HG_ARG(int64_t, kernel_size) = 9;
  HG_ARG(int64_t, kernels) = 32;
  /// SNN attention network: hidden [Linear → SELU] layers and their width.
  HG_ARG(int64_t, attention_layers) = 2;
  HG_ARG(int64_t, attention_units) = 32;
  /// Output network: layers (≤ 1: a single Linear) and hidden width; outputs (1 for a binary target).
  HG_ARG(int64_t, output_layers) = 1;
  HG_ARG(int64_t, output_units) = 32;
  HG_ARG(int64_t, outputs) = 1;
  /// Share of each bag's sequences kept by the attention-based reduction, in (0, 1]; 1 keeps all.
  HG_ARG(double, sequence_reduction) = 0.1;
  /// Sequences scored at once during the reduction (bounds its memory).
  HG_ARG(int64_t, reduction_chunk) = 50000;
  /// How attention logits become weights over a bag's sequences; add a forgetting unit (LwPF) with
  /// forgetting(...), applied per bag (a global-median PFU takes the median of each bag, as DeepRC applies it
  /// bag by bag).
  HG_ARG(nn::SeparationOptions, separation) = nn::SeparationOptions();

 public:
  /// Shorthand for separation(SeparationOptions(kind)) keeping the other separation settings.
  DeepRCOptions& separation(nn::SeparationKind kind) {
    separation_.kind(kind);
    return *this;
  }
  /// Shorthand for the separation's LwPF forgetting unit.
  DeepRCOptions& forgetting(std::optional<nn::ForgettingOptions> unit) {
    separation_.forgetting(std::move(unit));
    return *this;
  }
};

struct DeepRCOutput {
  Tensor logits;            ///< [B, outputs]
  Tensor attention;         ///< [B, N]: each sequence's weight w_i; 0 on padding and on sequences reduced away
  Tensor attention_logits;  ///< [B, N]: u_i of the sequences that went through the model, −inf elsewhere
  Tensor kept;              ///< bool [B, N]: the sequences that went through the model (real and not reduced away)
};

/// The top sequences of each bag by attention logit, gathered: what the differentiable pass sees.
struct ReducedBags {
  Tensor instances;     ///< [B, K, L, F], K = the largest count kept in any bag
  Tensor padding_mask;  ///< bool [B, K]: true past a bag's own count
  Tensor index;         ///< int64 [B, K]: each kept sequence's index in the input bag (sorted by logit, descending)
};

class DeepRCImpl : public nn::Module {
 public:
  explicit DeepRCImpl(const DeepRCOptions& options = {});

  /// instances [B, N, L, in_features] (padded sequences of padded bags, as collate_bags makes them),
  /// padding_mask bool [B, N] (true = padding; undefined = none). Reduces the bags unless the fraction is 1.
  DeepRCOutput forward(const Tensor& instances, const Tensor& padding_mask = {});

  /// h: sequences [n, L, in_features] → embeddings [n, kernels]. Sequences shorter than the kernel are
  /// zero-padded to its width (zeros are what padding positions hold anyway).
  Tensor embed(const Tensor& sequences);
  /// f: embeddings [..., kernels] → attention logits [...].
  Tensor attention_logits(const Tensor& embeddings);
  /// Attention logits of every sequence, without gradient, in chunks of reduction_chunk: [B, N], −inf on padding.
  /// Ranks a bag's sequences by attention (the weights are monotone in these logits).
  Tensor score_sequences(const Tensor& instances, const Tensor& padding_mask = {});
  /// The sequence reduction alone (no gradient).
  ReducedBags reduce(const Tensor& instances, const Tensor& padding_mask = {});

  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  DeepRCOptions options;
  nn::Conv1d embedding{nullptr};
  nn::Sequential attention{nullptr};
  nn::Separation separation{nullptr};
  nn::Sequential output{nullptr};

 private:
  void check_input(const Tensor& instances, const Tensor& padding_mask) const;
  /// The differentiable pass over (already reduced) bags.
  DeepRCOutput pool(const Tensor& instances, const Tensor& padding_mask);
};
HG_MODULE(DeepRC);

}  // namespace hg::models
