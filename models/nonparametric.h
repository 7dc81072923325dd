#pragma once
// The nonparametric modern Hopfield models of Hu et al. (MAGICS-LAB/NonparametricHopfield, models.py; spec C.4):
// a Hopfield pooling over the instances of a bag, whose separation function is the experiment's variable
// (dense softmax, sparsemax, top-K, random mask, window, linear, random features, with or without an LwPF
// forgetting unit), followed by a one-logit read-out.
//
//   auto options = hg::models::BITModelOptions(/*bits=*/8);
//   options.pooling(hg::models::PoolingOptions(options.pooling())
//                       .separation(hg::nn::SeparationOptions(hg::nn::SeparationKind::TopK)));
//   hg::models::BITModel bit(options);
//   hg::Tensor logit = bit(bags);                          // bags [B, N, 8] → [B]
//   hg::models::MNISTModel mnist{hg::models::MNISTModelOptions()};   // the pooling's 2 queries (num_pattern)
//   hg::Tensor mnist_logit = mnist(images, padding_mask);  // images [B, N, 1, 28, 28], mask [B, N] true = padding
//
// Where this differs from the reference (each one documented at the option):
//  - the pooling is hg::nn::HopfieldPooling; the reference's layer (C.3) has no LayerNorms and takes its values
//    as W_v applied to the projected keys, which is HopfieldOptions' normalize_* = false and
//    pattern_projection_as_connected = true, so both are set here;
//  - its update steps feed the retrieved *value* back as the next query; hflayers (and hg) iterate in key
//    space, ξ ← K sep(β Kᵀ ξ). update_steps counts separations as the reference does (update_steps − 1 extra
//    Hopfield updates), so one step — every MNIST setting — is identical;
//  - the reference's softmax-only quirk ("sparsemax" runs softmax) is not reproduced: sparsemax is sparsemax.
#include <cstdint>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/hopfield_pooling.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/layers/normalization.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

/// How the learned pooling queries R start: the reference draws them N(0, 1) in HopfieldPooling (dense kinds)
/// and U[0, 1) in NPHPooling / FavorPooling (top-K, random mask, window, linear, random features).
enum class QueryInit { Normal, Uniform };

/// The reference's initialisation for a separation kind (Uniform for the NPH and Favor poolings).
QueryInit reference_query_init(nn::SeparationKind kind);

/// The options of the nonparametric pooling layer shared by both models (spec C.3, HopfieldPooling /
/// NPHPooling / FavorPooling): d_model in and out, num_heads heads of head_dim, β = scale.
struct PoolingOptions {
  PoolingOptions(int64_t d_model = 256) : d_model_(d_model) {}
  HG_ARG(int64_t, d_model);
  HG_ARG(int64_t, num_heads) = 4;
  /// d_keys = d_values; 0: d_model / num_heads (which must divide).
  HG_ARG(int64_t, head_dim) = 0;
  /// Separations per forward (≥ 1): 1 is one attention step.
  HG_ARG(int64_t, update_steps) = 1;
  /// β.
  HG_ARG(double, scale) = 0.1;
  /// Dropout on the association weights (training only; none for linear and random features, which form none).
  HG_ARG(double, dropout) = 0.1;
  /// Learned queries; each gives one pooled d_model vector.
  HG_ARG(int64_t, num_pattern) = 1;
  /// The separation function, with any LwPF forgetting unit (separation.forgetting(...)).
  HG_ARG(nn::SeparationOptions, separation);
  /// Overrides reference_query_init(separation.kind()).
  HG_ARG(std::optional<QueryInit>, query_init);
};

/// The HopfieldPooling options of the reference's pooling layer (no LayerNorms, values from the keys, attention
/// dropout for the dense kinds only).
nn::HopfieldPoolingOptions nonparametric_pooling_options(const PoolingOptions& options);
/// Draws the pooling's learned queries R: N(0, 1) or U[0, 1) (not hflayers' N(0, 0.02²)).
void draw_pooling_queries(nn::HopfieldPooling& pooling, QueryInit init);
/// The HopfieldPooling configured as the reference's pooling layer, its queries drawn as the reference draws
/// them (query_init, or reference_query_init of the kind).
nn::HopfieldPooling make_nonparametric_pooling(const PoolingOptions& options);

/// BITModel(d_model = input bits, n_heads 8, d_keys = d_values = 8, update_steps 3, β 0.25, dropout 0.1,
/// num_pattern 1): the defaults of bit_pattern.py (spec C.5).
struct BITModelOptions {
  BITModelOptions(int64_t bits = 8)
      : pooling_(PoolingOptions(bits).num_heads(8).head_dim(8).update_steps(3).scale(0.25).dropout(0.1)) {}
  HG_ARG(PoolingOptions, pooling);
};

/// logit = Linear(flatten(GELU(HopfieldPooling(bag))))            (models.py BITModel)
class BITModelImpl : public nn::Module {
 public:
  explicit BITModelImpl(const BITModelOptions& options = {});
  /// bags [B, N, bits] (padding_mask [B, N] bool, true = padding) → logits [B].
  Tensor forward(const Tensor& bags, const Tensor& padding_mask = {});
  void pretty_print(std::ostream& stream) const override;

  BITModelOptions options;
  nn::HopfieldPooling pooling{nullptr};
  nn::GELU gelu{nullptr};
  nn::Linear out{nullptr};
};
HG_MODULE(BITModel);

/// MNISTModel: mnist_mil_main.py's defaults (d_model 256, 4 heads, β 0.1, num_pattern 2, one update; the
/// pooling dropout is the script's `prob`, 0.5, for the dense kinds).
struct MNISTModelOptions {
  MNISTModelOptions() : pooling_(PoolingOptions(256).num_heads(4).scale(0.1).num_pattern(2).dropout(0.5)) {}
  /// Flattened instance width (28·28).
  HG_ARG(int64_t, input_size) = 784;
  HG_ARG(PoolingOptions, pooling);
};

/// h = LayerNorm(Linear(flatten(x))); logit = Linear(flatten(LayerNorm(GELU(pool(h)))))   (models.py MNISTModel)
class MNISTModelImpl : public nn::Module {
 public:
  explicit MNISTModelImpl(const MNISTModelOptions& options = {});
  /// images [B, N, ...] with input_size elements per instance (padding_mask [B, N] bool) → logits [B].
  Tensor forward(const Tensor& images, const Tensor& padding_mask = {});
  void pretty_print(std::ostream& stream) const override;

  MNISTModelOptions options;
  nn::Linear embed{nullptr};
  nn::LayerNorm embed_norm{nullptr};
  nn::HopfieldPooling pooling{nullptr};
  nn::GELU gelu{nullptr};
  nn::LayerNorm pooled_norm{nullptr};
  nn::Linear out{nullptr};
};
HG_MODULE(MNISTModel);

}  // namespace hg::models
