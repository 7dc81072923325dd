// MultiheadAttention: projections, masks and heads as torch.nn.MultiheadAttention; the association of each head
// is delegated to a Separation (softmax by default, bit-identical to the plain softmax attention).
#include <hopgrad/nn/layers/attention.h>

#include <cmath>
#include <limits>
#include <ostream>

#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

MultiheadAttentionImpl::MultiheadAttentionImpl(const MultiheadAttentionOptions& options_)
    : Module("MultiheadAttention"), options(options_) {
  int64_t embed_dim = options.embed_dim(), heads = options.num_heads();
  HG_CHECK(embed_dim > 0 && heads > 0 && embed_dim % heads == 0,
           "MultiheadAttention: embed_dim ({}) must be positive and divisible by num_heads ({})", embed_dim, heads);
  HG_CHECK(options.dropout() >= 0.0 && options.dropout() <= 1.0,
           "MultiheadAttention: dropout must be in [0, 1], got {}", options.dropout());
  int64_t kdim = options.kdim().value_or(embed_dim), vdim = options.vdim().value_or(embed_dim);
  HG_CHECK(kdim > 0 && vdim > 0, "MultiheadAttention: kdim and vdim must be positive, got {} and {}", kdim, vdim);
  // Registration order (and so the order of named_parameters) follows torch.nn.MultiheadAttention.
  if (kdim == embed_dim && vdim == embed_dim) {
    in_proj_weight = register_parameter("in_proj_weight", empty({3 * embed_dim, embed_dim}, kFloat32));
  } else {
    q_proj_weight = register_parameter("q_proj_weight", empty({embed_dim, embed_dim}, kFloat32));
    k_proj_weight = register_parameter("k_proj_weight", empty({embed_dim, kdim}, kFloat32));
    v_proj_weight = register_parameter("v_proj_weight", empty({embed_dim, vdim}, kFloat32));
  }
  if (options.bias()) in_proj_bias = register_parameter("in_proj_bias", empty({3 * embed_dim}, kFloat32));
  out_proj = register_module(
      "out_proj", Linear(LinearOptions(embed_dim, embed_dim).bias(options.out_proj_bias().value_or(options.bias()))));
  if (options.add_bias_kv()) {
    bias_k = register_parameter("bias_k", empty({1, 1, embed_dim}, kFloat32));
    bias_v = register_parameter("bias_v", empty({1, 1, embed_dim}, kFloat32));
  }

  SeparationOptions association = options.separation();
  const SeparationKind kind = association.kind();
  if (kind == SeparationKind::RandomFeatures || kind == SeparationKind::ReluFeatures) {
    // The random features project one head's q and k: their width is the head dim.
    if (association.feature_dim() == 0) association.feature_dim(head_dim());
    HG_CHECK(association.feature_dim() == head_dim(),
             "{}: separation {} projects one head's queries and keys, so its feature_dim must be the head dim "
             "embed_dim / num_heads = {}, got {}",
             describe(), to_string(kind), head_dim(), association.feature_dim());
  }
  separation = Separation(association);
  // Registered only when it has state (learnable α, a projection buffer): a default MultiheadAttention keeps
  // exactly PyTorch's parameter names. Unregistered, it still follows train()/eval() (see train below).
  if (!separation->parameters().empty() || !separation->buffers().empty())
    register_module("separation", separation);
  reset_parameters();
}

void MultiheadAttentionImpl::train(bool on) {
  Module::train(on);
  separation->train(on);
}

void MultiheadAttentionImpl::reset_parameters() {
  if (same_embed_dim()) {
    init::xavier_uniform_(in_proj_weight);
  } else {
    init::xavier_uniform_(q_proj_weight);
    init::xavier_uniform_(k_proj_weight);
    init::xavier_uniform_(v_proj_weight);
  }
  out_proj->reset_parameters();
  if (options.bias()) init::zeros_(in_proj_bias);
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
  if (options.add_bias_kv()) {
    init::xavier_normal_(bias_k);
    init::xavier_normal_(bias_v);
  }
}

std::string MultiheadAttentionImpl::describe() const {
  return fmt::format("MultiheadAttention(embed_dim={}, num_heads={})", options.embed_dim(), options.num_heads());
}

namespace {
Tensor part(const Tensor& t, int64_t index, int64_t size) {
  return t.defined() ? t.narrow(0, index * size, size) : Tensor();
}
}  // namespace

// scores = (Q/√d) Kᵀ + mask per head; out = concat_h(sep(scores) V) Woᵀ + bo
std::tuple<Tensor, Tensor> MultiheadAttentionImpl::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                                           const Tensor& key_padding_mask, bool need_weights,
                                                           const Tensor& attn_mask, bool average_attn_weights) {
  const int64_t embed_dim = options.embed_dim(), heads = options.num_heads(), d = head_dim();
  const int64_t kdim = options.kdim().value_or(embed_dim), vdim = options.vdim().value_or(embed_dim);
  const std::string name = describe();

  // ---- layouts: work batch-first, [N, L, E] ----------------------------------------------------
  HG_CHECK(query.defined() && key.defined() && value.defined(), "{}: query, key and value must be defined", name);
  const bool batched = query.dim() == 3;
  HG_CHECK((query.dim() == 3 || query.dim() == 2) && key.dim() == query.dim() && value.dim() == query.dim(),
           "{}: expected query, key and value all 3-D (batched) or all 2-D (unbatched), got query {}, key {}, value {}",
           name, query.desc(), key.desc(), value.desc());
  auto to_batch_first = [&](const Tensor& t) {
    if (!batched) return t.unsqueeze(0);
    return options.batch_first() ? t : t.transpose(0, 1);
  };
  // The output back in the inputs' layout.
  auto from_batch_first = [&](const Tensor& t) {
    if (!batched) return t.squeeze(0);
    return options.batch_first() ? t : t.transpose(0, 1);
  };
  Tensor q_in = to_batch_first(query), k_in = to_batch_first(key), v_in = to_batch_first(value);
  const int64_t batch = q_in.size(0), target_len = q_in.size(1), source_len = k_in.size(1);
  const char* layout = !batched ? "[L, E]" : options.batch_first() ? "[N, L, E]" : "[L, N, E]";
  HG_CHECK(q_in.size(2) == embed_dim && k_in.size(2) == kdim && v_in.size(2) == vdim,
           "{}: expected query, key and value {} with E = {}, {}, {}; got query {}, key {}, value {}", name, layout,
           embed_dim, kdim, vdim, query.desc(), key.desc(), value.desc());
  HG_CHECK(k_in.size(0) == batch && v_in.size(0) == batch && v_in.size(1) == source_len,
           "{}: query, key and value must share the batch size and key and value the sequence length ({}); got "
           "query {}, key {}, value {}",
           name, layout, query.desc(), key.desc(), value.desc());

  // ---- masks, as [N or 1, h or 1, L or 1, S] --------------------------------------------------------
  Tensor padding_mask, mask;
  if (key_padding_mask.defined()) {
    Tensor kpm = batched ? key_padding_mask : key_padding_mask.unsqueeze(0);
    HG_CHECK(kpm.dtype() == kBool && kpm.dim() == 2 && kpm.size(0) == batch && kpm.size(1) == source_len,
             "{}: expected a bool key_padding_mask [{}{}] (true = ignore that key), got {}", name,
             batched ? fmt::format("{}, ", batch) : "", source_len, key_padding_mask.desc());
    padding_mask = kpm.reshape({batch, 1, 1, source_len});
  }
  if (attn_mask.defined()) {
    HG_CHECK(attn_mask.dtype() == kBool || is_floating(attn_mask.dtype()),
             "{}: attn_mask must be bool (true = not allowed) or floating (added to the scores), got {}", name,
             attn_mask.desc());
    HG_CHECK(separation->forms_weights(),
             "{}: separation {} never forms the [L, S] scores, so it takes no attn_mask (a key_padding_mask works); "
             "got attn_mask {}",
             name, to_string(separation->options.kind()), attn_mask.desc());
    if (attn_mask.dim() == 2) {
      HG_CHECK(attn_mask.size(0) == target_len && attn_mask.size(1) == source_len,
               "{}: expected a 2-D attn_mask [{}, {}] (L, S), got {}", name, target_len, source_len, attn_mask.desc());
      mask = attn_mask.reshape({1, 1, target_len, source_len});
    } else {
      HG_CHECK(attn_mask.dim() == 3 && attn_mask.size(0) == batch * heads && attn_mask.size(1) == target_len &&
                   attn_mask.size(2) == source_len,
               "{}: expected attn_mask [{}, {}] or [{}, {}, {}] (N·num_heads, L, S), got {}", name, target_len,
               source_len, batch * heads, target_len, source_len, attn_mask.desc());
      mask = attn_mask.reshape({batch, heads, target_len, source_len});  // row n·h + i is batch n, head i
    }
  }
  // A bool attn_mask is joined with the key padding into the separation's exclusion mask; a float one is its bias.
  Tensor excluded, bias;
  auto combine_masks = [&] {
    excluded = padding_mask;
    if (mask.defined() && mask.dtype() == kBool)
      excluded = excluded.defined() ? logical_or(excluded, mask) : mask;
    else if (mask.defined())
      bias = mask;
  };
  const bool self_attention = same_embed_dim() && query.is_same(key) && key.is_same(value);

  // ---- self-attention with plain softmax, no weights returned: the packed op -------------------------------------
  // The q/k/v projection stays one [N, L, 3E] tensor that the fused kernel reads in place and whose gradient it
  // writes whole; the heads come out merged. The general path below splits it into three views, and its backward
  // then pads each head gradient to [N, L, 3E], sums the three, and copies the heads in and out of [N, h, L, d].
  const SeparationOptions& association = separation->options;
  const bool dropout_active = options.dropout() > 0.0 && is_training();
  if (self_attention && !need_weights && !options.add_bias_kv() && !options.add_zero_attn() && !dropout_active &&
      association.kind() == SeparationKind::Softmax && !association.forgetting()) {
    // The fused ops' mask convention: bool true = takes part (the opposite of excluded), float added to the scores.
    combine_masks();
    Tensor scores_mask = bias;
    if (excluded.defined())
      scores_mask = bias.defined() ? where(excluded, -std::numeric_limits<double>::infinity(), bias.to(q_in.dtype()))
                                   : logical_not(excluded);
    else if (bias.defined())
      scores_mask = bias.to(q_in.dtype());
    Tensor attended = scaled_dot_product_attention_qkvpacked(linear(q_in, in_proj_weight, in_proj_bias), heads,
                                                             scores_mask, 1.0 / std::sqrt(static_cast<double>(d)));
    return {from_batch_first(out_proj(attended)), Tensor()};
  }

  // ---- input projections: one matmul when query, key and value are the same tensor (self-attention) ------
  Tensor q, k, v;
  if (self_attention) {
    Tensors qkv = chunk(linear(q_in, in_proj_weight, in_proj_bias), 3, -1);
    q = qkv[0], k = qkv[1], v = qkv[2];
  } else {
    Tensor wq = same_embed_dim() ? part(in_proj_weight, 0, embed_dim) : q_proj_weight;
    Tensor wk = same_embed_dim() ? part(in_proj_weight, 1, embed_dim) : k_proj_weight;
    Tensor wv = same_embed_dim() ? part(in_proj_weight, 2, embed_dim) : v_proj_weight;
    q = linear(q_in, wq, part(in_proj_bias, 0, embed_dim));
    k = linear(k_in, wk, part(in_proj_bias, 1, embed_dim));
    v = linear(v_in, wv, part(in_proj_bias, 2, embed_dim));
  }

  // An extra key/value column (bias_kv, zero_attn) is never masked.
  auto extend_masks = [&] {
    if (padding_mask.defined()) padding_mask = pad(padding_mask, {0, 1}, 0.0);
    if (mask.defined()) mask = pad(mask, {0, 1}, 0.0);
  };
  if (options.add_bias_kv()) {
    k = cat({k, bias_k.expand({batch, 1, embed_dim})}, 1);
    v = cat({v, bias_v.expand({batch, 1, embed_dim})}, 1);
    extend_masks();
  }

  // ---- heads: [N, S, E] → [N, h, S, d] ---------------------------------------------------------------
  auto split_heads = [&](const Tensor& t) { return t.reshape({batch, t.size(1), heads, d}).permute({0, 2, 1, 3}); };
  q = split_heads(q), k = split_heads(k), v = split_heads(v);
  if (options.add_zero_attn()) {
    Tensor zero = zeros({batch, heads, 1, d}, TensorOptions(k.dtype()).device(k.device()));
    k = cat({k, zero}, 2);
    v = cat({v, zero}, 2);
    extend_masks();
  }

  // ---- attention --------------------------------------------------------------------------------------
  // Per head: weights [N, h, L, S] = dropout(sep(β q kᵀ + float mask)) with the bool masks excluding keys, then
  // weights · v. β = 1/√d scales q before the product, as PyTorch.
  Tensor beta = scalar_tensor(1.0 / std::sqrt(static_cast<double>(d)), TensorOptions(q.dtype()).device(q.device()));
  combine_masks();  // after the bias_kv / zero_attn columns were added
  Tensor weights;
  Tensor heads_out = separation->attend(q, k, v, beta, excluded, bias, options.dropout(),
                                        need_weights ? &weights : nullptr);
  // [N, h, L, d] → [N, L, h·d] → out_proj
  Tensor out = from_batch_first(out_proj(heads_out.permute({0, 2, 1, 3}).reshape({batch, target_len, embed_dim})));
  if (!need_weights) return {out, Tensor()};
  if (average_attn_weights) weights = mean(weights, {1});
  if (!batched) weights = weights.squeeze(0);
  return {out, weights};
}

void MultiheadAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "MultiheadAttention";
  // A registered separation prints as a child; an unregistered one only when it is not plain softmax.
  const SeparationOptions& association = separation->options;
  const bool registered = !separation->parameters().empty() || !separation->buffers().empty();
  if (!registered && (association.kind() != SeparationKind::Softmax || association.forgetting())) {
    stream << "(separation=";
    separation->pretty_print(stream);
    stream << ")";
  }
}

}  // namespace hg::nn
