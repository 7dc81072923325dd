// Multiple-instance learning models (see mil.h).
#include <hopgrad/models/mil.h>
#include <hopgrad/models/nonparametric.h>

#include <ostream>

#include <fmt/format.h>

#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {
namespace {

/// Checks a batch of bags [B, N, ...] and its padding mask [B, N] (bool, same device) for model `op`.
void check_bags(const char* op, const Tensor& instances, const Tensor& padding_mask, int64_t min_dim) {
  HG_CHECK(instances.defined() && instances.dim() >= min_dim,
           "{}: expected bags of instances [B, N, {}], got {}", op, min_dim == 3 ? "features" : "...",
           instances.defined() ? instances.desc() : "undefined");
  if (!padding_mask.defined()) return;
  HG_CHECK(padding_mask.dtype() == kBool && padding_mask.dim() == 2 && padding_mask.size(0) == instances.size(0) &&
               padding_mask.size(1) == instances.size(1),
           "{}: expected a bool padding mask [{}, {}] (true = padding) for instances {}, got {}", op,
           instances.size(0), instances.size(1), instances.desc(), padding_mask.desc());
  HG_CHECK(padding_mask.device() == instances.device(),
           "{}: the padding mask is on {} but the instances are on {}", op, padding_mask.device(),
           instances.device());
}

/// The kinds whose weights can be returned (the others attend without forming the L × S matrix).
bool forms_weights(const nn::SeparationOptions& separation) {
  switch (separation.kind()) {
    case nn::SeparationKind::Linear:
    case nn::SeparationKind::RandomFeatures:
    case nn::SeparationKind::ReluFeatures:
      return false;
    default:
      return true;
  }
}

int64_t last_width(int64_t input_size, const std::vector<int64_t>& widths) {
  return widths.empty() ? input_size : widths.back();
}

std::string join(const std::vector<int64_t>& widths) {
  return widths.empty() ? "none" : fmt::format("{}", fmt::join(widths, "-"));
}

}  // namespace

nn::Sequential instance_embedding(int64_t input_size, const std::vector<int64_t>& widths, double dropout) {
  HG_CHECK(input_size > 0, "instance_embedding: input_size must be positive, got {}", input_size);
  nn::Sequential layers;
  int64_t in = input_size;
  for (int64_t width : widths) {
    HG_CHECK(width > 0, "instance_embedding: layer widths must be positive, got [{}]", join(widths));
    layers->push_back(nn::Linear(in, width));
    layers->push_back(nn::ReLU());
    if (dropout > 0) layers->push_back(nn::Dropout(dropout));
    in = width;
  }
  return layers;
}

Tensor drop_instances(const Tensor& mask, int64_t batch, int64_t instances, double p, Device device,
                      Generator* gen) {
  HG_CHECK(p >= 0 && p < 1, "drop_instances: the drop probability must be in [0, 1), got {}", p);
  Tensor padding = mask.defined() ? mask : zeros({batch, instances}, TensorOptions(kBool).device(device));
  if (p == 0) return padding;
  Tensor dropped = padding || (rand({batch, instances}, TensorOptions(kFloat32).device(device), gen) < p);
  // A bag whose every instance was dropped keeps its original mask (an empty bag has nothing to pool).
  Tensor emptied = sum(!dropped, {1}, /*keepdim=*/true) == 0.0;
  return where(emptied, padding, dropped);
}

// ---- AttentionMIL ----------------------------------------------------------------------------------------

AttentionMILImpl::AttentionMILImpl(const AttentionMILOptions& options_) : AttentionMILImpl(options_, nullptr) {}

AttentionMILImpl::AttentionMILImpl(const AttentionMILOptions& options_, nn::Sequential encoder_)
    : Module(options_.gated() ? "GatedAttentionMIL" : "AttentionMIL"), options(options_) {
  const char* op = options.gated() ? "GatedAttentionMIL" : "AttentionMIL";
  HG_CHECK(options.input_size() > 0 && options.attention_size() > 0,
           "{}: input_size and attention_size must be positive, got {} and {}", op, options.input_size(),
           options.attention_size());
  HG_CHECK(options.dropout() >= 0 && options.dropout() < 1 && options.bag_dropout() >= 0 &&
               options.bag_dropout() < 1,
           "{}: dropout and bag_dropout must be in [0, 1), got {} and {}", op, options.dropout(),
           options.bag_dropout());
  if (encoder_) encoder = register_module("encoder", std::move(encoder_));
  embedding = register_module("embedding", instance_embedding(options.input_size(), options.embedding()));
  embedding_size_ = last_width(options.input_size(), options.embedding());
  attention_V = register_module("attention_V", nn::Linear(embedding_size_, options.attention_size()));
  if (options.gated())
    attention_U = register_module("attention_U", nn::Linear(embedding_size_, options.attention_size()));
  attention_w = register_module("attention_w", nn::Linear(options.attention_size(), 1));
  separation = register_module("separation", nn::Separation(options.separation()));
  dropout = register_module("dropout", nn::Dropout(options.dropout()));
  classifier = register_module("classifier", nn::Linear(embedding_size_, 1));
}

MILOutput AttentionMILImpl::forward(const Tensor& instances, const Tensor& padding_mask) {
  const char* op = options.gated() ? "GatedAttentionMIL" : "AttentionMIL";
  check_bags(op, instances, padding_mask, 3);
  const int64_t batch = instances.size(0), bag = instances.size(1);
  Tensor x = instances;
  if (encoder) {  // [B, N, ...] → [B·N, ...] → encoder → [B, N, input_size]
    x = encoder(x.flatten(0, 1));
    HG_CHECK(x.dim() == 2 && x.size(1) == options.input_size(),
             "{}: the instance encoder must give [B·N, {}] (input_size), got {}", op, options.input_size(),
             x.desc());
    x = x.unflatten(0, {batch, bag});
  } else {
    HG_CHECK(instances.dim() == 3 && instances.size(2) == options.input_size(),
             "{}: expected instances [B, N, {}] (input_size), got {}", op, options.input_size(), instances.desc());
  }
  Tensor mask = padding_mask;
  if (is_training() && options.bag_dropout() > 0)
    mask = drop_instances(mask, batch, bag, options.bag_dropout(), instances.device());

  Tensor h = embedding(x);  // [B, N, M]
  // s_k = wᵀ tanh(V h_k)   (gated: wᵀ (tanh(V h_k) ⊙ sigmoid(U h_k)))
  Tensor hidden = tanh(attention_V(h));
  if (options.gated()) hidden = hidden * sigmoid(attention_U(h));
  Tensor scores = attention_w(hidden).squeeze(2).unsqueeze(1);  // [B, 1, N]: one query per bag
  // a = sep(s) over the bag's real instances (padding excluded; an empty bag gets zero weights)
  nn::Association association =
      separation->weights(scores, mask.defined() ? mask.unsqueeze(1) : Tensor());
  Tensor weights = association.keep.defined() ? association.weights * association.keep : association.weights;
  // z = Σ_k a_k h_k → logit = W_c dropout(z) + b_c
  Tensor z = matmul(weights, h).squeeze(1);  // [B, M]
  Tensor logits = classifier(dropout(z)).squeeze(1);
  return {logits, weights.squeeze(1)};
}

void AttentionMILImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("{}(input_size={}, embedding={}, attention_size={}, separation={})", name(),
                        options.input_size(), join(options.embedding()), options.attention_size(),
                        nn::to_string(options.separation().kind()));
}

// ---- HopfieldMIL -----------------------------------------------------------------------------------------

HopfieldMILImpl::HopfieldMILImpl(const HopfieldMILOptions& options_) : Module("HopfieldMIL"), options(options_) {
  HG_CHECK(options.input_size() > 0 && options.num_heads() > 0 && options.head_size() > 0 &&
               options.quantity() > 0 && options.hidden_size() >= 0 && options.beta() > 0,
           "HopfieldMIL: input_size, num_heads, head_size, quantity and beta must be positive and hidden_size "
           "non-negative, got {}, {}, {}, {}, {} and {}",
           options.input_size(), options.num_heads(), options.head_size(), options.quantity(), options.beta(),
           options.hidden_size());
  HG_CHECK(options.bag_dropout() >= 0 && options.bag_dropout() < 1,
           "HopfieldMIL: bag_dropout must be in [0, 1), got {}", options.bag_dropout());
  embedding = register_module("embedding", instance_embedding(options.input_size(), options.embedding()));
  const int64_t width = last_width(options.input_size(), options.embedding());
  pooling = register_module(
      "pooling", nn::HopfieldPooling(nn::HopfieldPoolingOptions(nn::HopfieldOptions(width)
                                                                    .num_heads(options.num_heads())
                                                                    .hidden_size(options.head_size())
                                                                    .scaling(options.beta())
                                                                    .dropout(options.attention_dropout())
                                                                    .separation(options.separation()))
                                         .quantity(options.quantity())));
  // The "ReLU–Linear" output block.
  const int64_t pooled = options.quantity() * width;
  output = register_module("output", nn::Sequential(nn::ReLU()));
  if (options.hidden_size() > 0) {
    output->push_back(nn::Linear(pooled, options.hidden_size()));
    output->push_back(nn::ReLU());
    output->push_back(nn::Linear(options.hidden_size(), 1));
  } else {
    output->push_back(nn::Linear(pooled, 1));
  }
}

MILOutput HopfieldMILImpl::forward(const Tensor& instances, const Tensor& padding_mask) {
  check_bags("HopfieldMIL", instances, padding_mask, 3);
  HG_CHECK(instances.dim() == 3 && instances.size(2) == options.input_size(),
           "HopfieldMIL: expected instances [B, N, {}] (input_size), got {}", options.input_size(),
           instances.desc());
  Tensor mask = padding_mask;
  if (is_training() && options.bag_dropout() > 0)
    mask = drop_instances(mask, instances.size(0), instances.size(1), options.bag_dropout(), instances.device());
  Tensor h = embedding(instances);  // [B, N, M]
  const bool with_weights = forms_weights(options.separation());
  nn::HopfieldResult pooled = pooling->associate(
      h, h, nn::AssociateOptions().stored_pattern_padding_mask(mask).return_association(with_weights));
  Tensor logits = output(pooled.output.flatten(1)).squeeze(1);
  return {logits, pooled.association};
}

void HopfieldMILImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("HopfieldMIL(input_size={}, embedding={}, heads={}x{}, beta={}, separation={})",
                        options.input_size(), join(options.embedding()), options.num_heads(), options.head_size(),
                        options.beta(), nn::to_string(options.separation().kind()));
}

// ---- MILModel --------------------------------------------------------------------------------------------

MILModelImpl::MILModelImpl(const MILModelOptions& options_) : Module("MILModel"), options(options_) {
  HG_CHECK(options.input_size() > 0 && options.d_model() > 0 && options.num_heads() > 0 &&
               options.d_model() % options.num_heads() == 0 && options.num_pattern() > 0,
           "MILModel: needs positive input_size, d_model, num_heads, num_pattern with num_heads dividing d_model, "
           "got input_size {}, d_model {}, num_heads {}, num_pattern {}",
           options.input_size(), options.d_model(), options.num_heads(), options.num_pattern());
  HG_CHECK(options.dropout() >= 0 && options.dropout() < 1, "MILModel: dropout must be in [0, 1), got {}",
           options.dropout());
  const int64_t d = options.d_model();
  input_projection = register_module("input_projection", nn::Linear(options.input_size(), d));
  input_norm = register_module("input_norm", nn::LayerNorm(nn::LayerNormOptions({d})));
  input_dropout = register_module("input_dropout", nn::Dropout(options.dropout()));
  // The reference's pooling (C.3), built as for its other models: queries W_q(R), keys W_k(Y), values W_v(keys)
  // with a square W_v, heads of width d_model / H, out-projection, none of hflayers' input LayerNorms; attention
  // dropout for the dense kinds only (NPHPooling and FavorPooling have none); R drawn by reset_parameters.
  pooling = register_module("pooling", nn::HopfieldPooling(nonparametric_pooling_options(PoolingOptions(d)
                                                                      .num_heads(options.num_heads())
                                                                      .head_dim(d / options.num_heads())
                                                                      .scale(options.scale())
                                                                      .dropout(options.attention_dropout())
                                                                      .num_pattern(options.num_pattern())
                                                                      .separation(options.separation()))));
  output_norm = register_module("output_norm", nn::LayerNorm(nn::LayerNormOptions({d})));
  output_dropout = register_module("output_dropout", nn::Dropout(options.dropout()));
  classifier = register_module("classifier", nn::Linear(d * options.num_pattern(), 1));
  reset_parameters();
}

void MILModelImpl::reset_parameters() {
  // The reference's learned query: torch.randn (HopfieldPooling) or torch.rand (NPHPooling, FavorPooling), not
  // hflayers' N(0, 0.02²).
  draw_pooling_queries(pooling, reference_query_init(options.separation().kind()));
}

MILOutput MILModelImpl::forward(const Tensor& instances, const Tensor& padding_mask) {
  check_bags("MILModel", instances, padding_mask, 3);
  HG_CHECK(instances.dim() == 3 && instances.size(2) == options.input_size(),
           "MILModel: expected instances [B, N, {}] (input_size), got {}", options.input_size(), instances.desc());
  Tensor h = input_dropout(input_norm(input_projection(instances)));  // [B, N, d_model]
  const bool with_weights = forms_weights(options.separation());
  nn::HopfieldResult pooled = pooling->associate(
      h, h, nn::AssociateOptions().stored_pattern_padding_mask(padding_mask).return_association(with_weights));
  Tensor z = output_dropout(output_norm(gelu(pooled.output)));  // [B, Q, d_model]
  return {classifier(z.flatten(1)).squeeze(1), pooled.association};
}

void MILModelImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("MILModel(input_size={}, d_model={}, num_heads={}, scale={}, num_pattern={}, separation={})",
                        options.input_size(), options.d_model(), options.num_heads(), options.scale(),
                        options.num_pattern(), nn::to_string(options.separation().kind()));
}

}  // namespace hg::models
