#pragma once
// Multiple-instance learning models: a bag of instances → one logit (bag is positive), with the attention each
// instance got. Every model takes bags as collate_bags makes them — padded instances [B, N, d] and a bool
// padding mask [B, N] (true = padding) — and padded instances never change the output.
//
//   AttentionMIL / GatedAttentionMIL   Ilse, Tomczak, Welling 2018 ("Attention-based deep MIL"), spec F.1
//   HopfieldMIL                        Ramsauer et al. 2021, real-world MIL benchmark (§4, App. A.5), spec F.2
//   MILModel                           the nonparametric Hopfield repository's real-world MIL model, spec C.4
//
//   hg::models::AttentionMIL model(hg::models::AttentionMILOptions(230).embedding({128}));
//   hg::data::BagBatch batch = hg::data::collate_bags(bags);
//   hg::models::MILOutput out = model(batch.instances, batch.padding_mask);
//   hg::Tensor loss = hg::binary_cross_entropy_with_logits(out.logits, batch.labels);
//   out.attention;   // [B, N]: a_k per instance, Σ_k a_k = 1 over the real instances, 0 on padding
#include <cstdint>
#include <vector>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/containers.h>
#include <hopgrad/nn/hopfield/hopfield_pooling.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/dropout.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

/// What every MIL model returns for a batch of B bags of (padded) size N.
struct MILOutput {
  Tensor logits;  ///< [B]: the bag-level logit (sigmoid gives P(positive)); for binary_cross_entropy_with_logits
  /// Attention of the pooling over the instances: [B, N] for AttentionMIL (0 on padding); [B, H, Q, N] (heads,
  /// learned queries) for the Hopfield models when their separation forms explicit weights, else undefined.
  Tensor attention;
};

/// Fully connected instance embedding: Linear → ReLU per entry of `widths` (the F.2 "embedding layers with
/// ReLU"); an empty list is the identity.
nn::Sequential instance_embedding(int64_t input_size, const std::vector<int64_t>& widths, double dropout = 0.0);

/// Instance dropout on a padding mask ("bag dropout", F.2's main regulariser): in training, each real instance
/// is marked as padding with probability p, except that a bag never loses all its instances (such a bag keeps
/// its original mask). `mask` [B, N] bool (true = padding) or undefined (no padding). Returns the new mask.
Tensor drop_instances(const Tensor& mask, int64_t batch, int64_t instances, double p, Device device,
                      Generator* gen = nullptr);

// ---- Ilse et al. 2018 ------------------------------------------------------------------------------------

struct AttentionMILOptions {
  AttentionMILOptions(int64_t input_size) : input_size_(input_size) {}
  /// Width d of the instances (or of an instance encoder's output, when one is passed to the constructor).
  HG_ARG(int64_t, input_size);
  /// Widths of the Linear → ReLU embedding layers; the last one is the embedding width M (Ilse: {500}).
  HG_ARG(std::vector<int64_t>, embedding) = {};
  /// L, the width of the attention network's hidden layer (V, U: M → L; w: L → 1).
  HG_ARG(int64_t, attention_size) = 128;
  /// Gated attention: a = sep(wᵀ (tanh(V h) ⊙ sigmoid(U h))).
  HG_ARG(bool, gated) = false;
  /// Instance dropout before pooling (see drop_instances); 0 in Ilse et al.
  HG_ARG(double, bag_dropout) = 0.0;
  /// Dropout on the pooled bag vector before the classifier.
  HG_ARG(double, dropout) = 0.0;
  /// How the attention scores become weights over the bag: softmax in Ilse et al.; any separation works.
  HG_ARG(nn::SeparationOptions, separation);
};

/// h_k = f(x_k)                                      (instance embedding, [B, N, M])
/// a_k = sep_k(wᵀ tanh(V h_k))   (gated: wᵀ (tanh(V h_k) ⊙ sigmoid(U h_k)))   Ilse et al. eq. 9 (gated: eq. 10)
/// z = Σ_k a_k h_k;  logit = W_c z + b_c                                    (eq. 8, the MIL pooling)
class AttentionMILImpl : public nn::Module {
 public:
  explicit AttentionMILImpl(const AttentionMILOptions& options);
  /// With an instance encoder (e.g. Ilse's LeNet for MNIST bags): it maps [B·N, ...] instances to
  /// [B·N, input_size]; the embedding layers of the options follow it.
  AttentionMILImpl(const AttentionMILOptions& options, nn::Sequential encoder);

  /// instances [B, N, ...] (feature vectors [B, N, d] without an encoder), padding_mask [B, N] bool or undefined.
  MILOutput forward(const Tensor& instances, const Tensor& padding_mask = {});

  void pretty_print(std::ostream& stream) const override;

  AttentionMILOptions options;
  nn::Sequential encoder{nullptr};  ///< optional, registered as "encoder"
  nn::Sequential embedding{nullptr};
  nn::Linear attention_V{nullptr}, attention_U{nullptr}, attention_w{nullptr};
  nn::Separation separation{nullptr};
  nn::Dropout dropout{nullptr};
  nn::Linear classifier{nullptr};

 private:
  int64_t embedding_size_ = 0;
};
HG_MODULE(AttentionMIL);

/// AttentionMIL with gated attention (Ilse et al. eq. 10).
class GatedAttentionMILImpl : public AttentionMILImpl {
 public:
  explicit GatedAttentionMILImpl(AttentionMILOptions options) : AttentionMILImpl(options.gated(true)) {}
  GatedAttentionMILImpl(AttentionMILOptions options, nn::Sequential encoder)
      : AttentionMILImpl(options.gated(true), std::move(encoder)) {}
};
HG_MODULE(GatedAttentionMIL);

// ---- Ramsauer et al. 2021, real-world MIL benchmark ------------------------------------------------------

struct HopfieldMILOptions {
  HopfieldMILOptions(int64_t input_size) : input_size_(input_size) {}
  HG_ARG(int64_t, input_size);
  /// Linear → ReLU embedding layers (the paper's grid: 1–3 layers of width 32…2048); the last width is the
  /// pooling's input size. Empty: the raw features are pooled.
  HG_ARG(std::vector<int64_t>, embedding) = {128};
  /// HopfieldPooling: heads, head width d_k (the grid's "head dims"), β, learned queries.
  HG_ARG(int64_t, num_heads) = 8;
  HG_ARG(int64_t, head_size) = 32;
  HG_ARG(double, beta) = 1.0;
  HG_ARG(int64_t, quantity) = 1;
  /// Width of the output block's hidden layer ("hidden dims" of the grid): pooled → ReLU → Linear(→ hidden)
  /// → ReLU → Linear(→ 1). 0: one ReLU → Linear(→ 1).
  HG_ARG(int64_t, hidden_size) = 0;
  /// Dropout on the association weights of the pooling.
  HG_ARG(double, attention_dropout) = 0.0;
  /// Instance dropout (drop_instances): the paper's bag dropout, grid {0, 0.75}.
  HG_ARG(double, bag_dropout) = 0.0;
  /// Separation of the pooling (softmax in the paper); a forgetting unit gives LwPF.
  HG_ARG(nn::SeparationOptions, separation);
};

/// h_k = ReLU(W_e … x_k)                       (fully connected embedding)
/// z = HopfieldPooling(Y = H) = W_O sep(β R W_Q (H W_K)ᵀ) H W_V   (learned state pattern R, eq. 2 / A.5)
/// logit = W_2 ReLU(W_1 ReLU(z))  (or W ReLU(z) without a hidden layer)      (the "ReLU–Linear" output block)
class HopfieldMILImpl : public nn::Module {
 public:
  explicit HopfieldMILImpl(const HopfieldMILOptions& options);

  MILOutput forward(const Tensor& instances, const Tensor& padding_mask = {});

  void pretty_print(std::ostream& stream) const override;

  HopfieldMILOptions options;
  nn::Sequential embedding{nullptr};
  nn::HopfieldPooling pooling{nullptr};
  nn::Sequential output{nullptr};
};
HG_MODULE(HopfieldMIL);

// ---- NonparametricHopfield's MILModel (spec C.4) -------------------------------------------------------

struct MILModelOptions {
  MILModelOptions(int64_t input_size) : input_size_(input_size) {}
  HG_ARG(int64_t, input_size);
  HG_ARG(int64_t, d_model) = 128;
  HG_ARG(int64_t, num_heads) = 4;
  /// β of the pooling (the reference's `scale`).
  HG_ARG(double, scale) = 0.1;
  /// Learned queries (the reference's num_pattern).
  HG_ARG(int64_t, num_pattern) = 1;
  /// Dropout after the input and after the pooling block (the reference's `dropout`).
  HG_ARG(double, dropout) = 0.2;
  /// The pooling's attention dropout: the reference's HopfieldPooling keeps its default 0.1 here. Applied for the
  /// dense separations only: not for the feature kinds (linear, random features: the reference's FavorPooling)
  /// nor for top-K, random mask and window (its NPHPooling), which have none.
  HG_ARG(double, attention_dropout) = 0.1;
  /// The pooling's separation: softmax, sparsemax, top-K, random mask, linear, random features, ... or LwPF.
  HG_ARG(nn::SeparationOptions, separation);
};

/// x → Linear(d → d_model) → LayerNorm → Dropout                                   (instance embedding)
///   → HopfieldPooling: queries R W_Q, keys K = Y W_K, values K W_V (C.3: values are projected keys),
///     R learned, drawn N(0, 1) or, for top-K, random mask, linear and random features,
///     U[0, 1) (reference_query_init), β = scale                                    ([B, Q, d_model])
///   → GELU → LayerNorm → Dropout → flatten → Linear(Q·d_model → 1)
class MILModelImpl : public nn::Module {
 public:
  explicit MILModelImpl(const MILModelOptions& options);

  MILOutput forward(const Tensor& instances, const Tensor& padding_mask = {});

  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  MILModelOptions options;
  nn::Linear input_projection{nullptr};
  nn::LayerNorm input_norm{nullptr};
  nn::Dropout input_dropout{nullptr};
  nn::HopfieldPooling pooling{nullptr};
  nn::LayerNorm output_norm{nullptr};
  nn::Dropout output_dropout{nullptr};
  nn::Linear classifier{nullptr};
};
HG_MODULE(MILModel);

}  // namespace hg::models
