// BITModel and MNISTModel of the nonparametric modern Hopfield models (see nonparametric.h; spec C.3–C.4).
#include <hopgrad/models/nonparametric.h>

#include <ostream>

#include <fmt/format.h>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/core/error.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {

QueryInit reference_query_init(nn::SeparationKind kind) {
  using K = nn::SeparationKind;
  switch (kind) {
    case K::TopK:
    case K::RandomMask:
    case K::Window:
    case K::Linear:
    case K::RandomFeatures:
    case K::ReluFeatures:
      return QueryInit::Uniform;  // NPHPooling / FavorPooling: torch.rand
    default:
      return QueryInit::Normal;   // HopfieldPooling: torch.randn
  }
}

nn::HopfieldPoolingOptions nonparametric_pooling_options(const PoolingOptions& o) {
  HG_CHECK(o.d_model() > 0 && o.num_heads() > 0 && o.num_pattern() > 0 && o.update_steps() >= 1,
           "nonparametric pooling: d_model, num_heads, num_pattern and update_steps must be positive, got d_model={}, "
           "num_heads={}, num_pattern={}, update_steps={}",
           o.d_model(), o.num_heads(), o.num_pattern(), o.update_steps());
  const int64_t head_dim = o.head_dim() > 0 ? o.head_dim() : o.d_model() / o.num_heads();
  HG_CHECK(o.head_dim() > 0 || o.d_model() % o.num_heads() == 0,
           "nonparametric pooling: d_model {} is not divisible by num_heads {} (or set head_dim)", o.d_model(),
           o.num_heads());
  // Attention dropout only for the dense kinds (the reference's HopfieldPooling(dropout)): the feature kinds
  // (linear, random features) never form the weight matrix it would act on, and the reference's FavorPooling has
  // none; the sparse-structured kinds (top-K, random mask, window) are its NPHPooling, whose core has no dropout
  // either (spec C.2, C.4) — their `prob` is the top-K fraction or the mask probability, not a dropout as well.
  const nn::SeparationKind kind = o.separation().kind();
  const bool forms_weights =
      kind != nn::SeparationKind::Linear && kind != nn::SeparationKind::RandomFeatures &&
      kind != nn::SeparationKind::ReluFeatures && kind != nn::SeparationKind::TopK &&
      kind != nn::SeparationKind::RandomMask && kind != nn::SeparationKind::Window;
  // C.3: queries = W_q R, keys = W_k Y, values = W_v keys (connected), out = W_out; no LayerNorm anywhere.
  nn::HopfieldOptions h = nn::HopfieldOptions(o.d_model())
                              .hidden_size(head_dim)
                              .num_heads(o.num_heads())
                              .scaling(o.scale())
                              .update_steps_max(o.update_steps() - 1)
                              .dropout(forms_weights ? o.dropout() : 0.0)
                              .normalize_stored_pattern(false)
                              .normalize_stored_pattern_affine(false)
                              .normalize_state_pattern(false)
                              .normalize_state_pattern_affine(false)
                              .normalize_pattern_projection(false)
                              .normalize_pattern_projection_affine(false)
                              .pattern_projection_as_connected(true)
                              .separation(o.separation());
  return nn::HopfieldPoolingOptions(h).quantity(o.num_pattern());
}

void draw_pooling_queries(nn::HopfieldPooling& pooling, QueryInit init) {
  NoGradGuard no_grad;
  if (init == QueryInit::Uniform)
    nn::init::uniform_(pooling->pooling_weights, 0.0, 1.0);
  else
    nn::init::normal_(pooling->pooling_weights, 0.0, 1.0);
}

nn::HopfieldPooling make_nonparametric_pooling(const PoolingOptions& o) {
  nn::HopfieldPooling pooling(nonparametric_pooling_options(o));
  draw_pooling_queries(pooling, o.query_init().value_or(reference_query_init(o.separation().kind())));
  return pooling;
}

namespace {

// The padding mask as the pooling wants it: [B, N] bool, or undefined.
void check_mask(const char* model, const Tensor& bags, const Tensor& mask) {
  if (!mask.defined()) return;
  HG_CHECK(mask.dtype() == kBool && mask.dim() == 2 && mask.size(0) == bags.size(0) && mask.size(1) == bags.size(1),
           "{}: expected a bool padding mask [{}, {}] (true = padding), got {}", model, bags.size(0), bags.size(1),
           mask.desc());
}

}  // namespace

BITModelImpl::BITModelImpl(const BITModelOptions& options_) : Module("BITModel"), options(options_) {
  const PoolingOptions& p = options.pooling();
  pooling = register_module("pooling", make_nonparametric_pooling(p));
  gelu = register_module("gelu", nn::GELU());
  out = register_module("out", nn::Linear(p.d_model() * p.num_pattern(), 1));
}

// logit = W GELU(flatten(pool(Y))) + b     (models.py BITModel.forward)
Tensor BITModelImpl::forward(const Tensor& bags, const Tensor& padding_mask) {
  const int64_t bits = options.pooling().d_model();
  HG_CHECK(bags.defined() && bags.dim() == 3 && bags.size(2) == bits,
           "BITModel: expected bags [B, N, {}] (N instances of {} bits), got {}", bits, bits,
           bags.defined() ? bags.desc() : "undefined");
  check_mask("BITModel", bags, padding_mask);
  return out(gelu(pooling(bags, padding_mask))).squeeze(1);
}

void BITModelImpl::pretty_print(std::ostream& stream) const {
  const PoolingOptions& p = options.pooling();
  stream << fmt::format("BITModel(bits={}, num_heads={}, separation={}, num_pattern={})", p.d_model(), p.num_heads(),
                        nn::to_string(p.separation().kind()), p.num_pattern());
}

MNISTModelImpl::MNISTModelImpl(const MNISTModelOptions& options_) : Module("MNISTModel"), options(options_) {
  const PoolingOptions& p = options.pooling();
  HG_CHECK(options.input_size() > 0, "MNISTModel: input_size must be positive, got {}", options.input_size());
  embed = register_module("embed", nn::Linear(options.input_size(), p.d_model()));
  embed_norm = register_module("embed_norm", nn::LayerNorm(nn::LayerNormOptions({p.d_model()})));
  pooling = register_module("pooling", make_nonparametric_pooling(p));
  gelu = register_module("gelu", nn::GELU());
  pooled_norm = register_module("pooled_norm", nn::LayerNorm(nn::LayerNormOptions({p.d_model()})));
  out = register_module("out", nn::Linear(p.d_model() * p.num_pattern(), 1));
}

// h = LN(W_e x); z = LN(GELU(pool(h))) per pooled pattern; logit = W flatten(z) + b   (models.py MNISTModel)
Tensor MNISTModelImpl::forward(const Tensor& images, const Tensor& padding_mask) {
  HG_CHECK(images.defined() && images.dim() >= 3,
           "MNISTModel: expected bags of images [B, N, ...], got {}", images.defined() ? images.desc() : "undefined");
  const int64_t batch = images.size(0), n = images.size(1), width = options.input_size();
  const int64_t per_instance = batch * n == 0 ? width : images.numel() / (batch * n);
  HG_CHECK(per_instance == width, "MNISTModel: expected {} values per instance (input_size), got {} from {}", width,
           per_instance, images.desc());
  check_mask("MNISTModel", images, padding_mask);
  Tensor h = embed_norm(embed(images.reshape({batch, n, width})));
  const int64_t d = options.pooling().d_model(), patterns = options.pooling().num_pattern();
  Tensor z = pooled_norm(gelu(pooling(h, padding_mask)).reshape({batch, patterns, d}));
  return out(z.flatten(1)).squeeze(1);
}

void MNISTModelImpl::pretty_print(std::ostream& stream) const {
  const PoolingOptions& p = options.pooling();
  stream << fmt::format("MNISTModel(input_size={}, d_model={}, num_heads={}, separation={}, num_pattern={})",
                        options.input_size(), p.d_model(), p.num_heads(), nn::to_string(p.separation().kind()),
                        p.num_pattern());
}

}  // namespace hg::models
