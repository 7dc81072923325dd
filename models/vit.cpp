// Vision Transformer (see vit.h).
#include <hopgrad/models/vit.h>

#include <cmath>
#include <ostream>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/containers.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {

namespace {

ViTOptions sized(ViTOptions options, int64_t dim, int64_t depth, int64_t heads) {
  return options.embed_dim(dim).depth(depth).num_heads(heads);
}

void check_options(const ViTOptions& o) {
  HG_CHECK(o.image_size() > 0 && o.patch_size() > 0 && o.image_size() % o.patch_size() == 0,
           "ViT: patch_size must divide image_size, got image_size={}, patch_size={}", o.image_size(),
           o.patch_size());
  HG_CHECK(o.num_classes() > 0 && o.in_channels() > 0 && o.depth() >= 0,
           "ViT: num_classes and in_channels must be positive and depth non-negative, got {}, {}, {}",
           o.num_classes(), o.in_channels(), o.depth());
  HG_CHECK(o.embed_dim() > 0 && o.num_heads() > 0 && o.embed_dim() % o.num_heads() == 0,
           "ViT: embed_dim must be a positive multiple of num_heads, got embed_dim={}, num_heads={}", o.embed_dim(),
           o.num_heads());
  HG_CHECK(o.mlp_ratio() > 0 && std::lround(o.mlp_ratio() * static_cast<double>(o.embed_dim())) > 0,
           "ViT: mlp_ratio must give a positive MLP width, got {}", o.mlp_ratio());
  HG_CHECK(o.drop_rate() >= 0 && o.drop_rate() <= 1 && o.attn_drop_rate() >= 0 && o.attn_drop_rate() <= 1,
           "ViT: drop_rate and attn_drop_rate must be in [0, 1], got {} and {}", o.drop_rate(), o.attn_drop_rate());
}

// timm's LayerNorm(eps = 1e-6).
nn::LayerNorm layer_norm(int64_t dim) { return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)); }

}  // namespace

ViTOptions ViTOptions::tiny(int64_t image_size, int64_t patch_size, int64_t num_classes) {
  return sized(ViTOptions(image_size, patch_size, num_classes), 192, 12, 3);
}
ViTOptions ViTOptions::small(int64_t image_size, int64_t patch_size, int64_t num_classes) {
  return sized(ViTOptions(image_size, patch_size, num_classes), 384, 12, 6);
}
ViTOptions ViTOptions::mini(int64_t image_size, int64_t patch_size, int64_t num_classes) {
  return sized(ViTOptions(image_size, patch_size, num_classes), 64, 2, 4);
}

// ---------------------------------------------------------------------------------------------------- block

ViTBlockImpl::ViTBlockImpl(const ViTOptions& o) : Module("ViTBlock") {
  const int64_t dim = o.embed_dim(), hidden = std::lround(o.mlp_ratio() * static_cast<double>(dim));
  norm1 = register_module("norm1", layer_norm(dim));
  // timm's Attention (LwPF: LagrangianAttention): qkv Linear, scores q·kᵀ/√d_head, separation (with the
  // forgetting unit D and its mask D′), attention dropout, ·v, proj.
  attn = register_module("attn", nn::MultiheadAttention(nn::MultiheadAttentionOptions(dim, o.num_heads())
                                                            .batch_first(true)
                                                            .bias(o.qkv_bias())
                                                            .out_proj_bias(true)  // timm's proj keeps its bias
                                                            .dropout(o.attn_drop_rate())
                                                            .separation(o.separation())));
  norm2 = register_module("norm2", layer_norm(dim));
  fc1 = register_module("fc1", nn::Linear(dim, hidden));
  act = register_module("act", nn::GELU());
  fc2 = register_module("fc2", nn::Linear(hidden, dim));
  drop = register_module("drop", nn::Dropout(o.drop_rate()));
}

// MLP(x) = drop(W₂ drop(GELU(W₁ x + b₁)) + b₂)   (eq. 3)
Tensor ViTBlockImpl::mlp(const Tensor& x) { return drop(fc2(drop(act(fc1(x))))); }

// z′ = z + drop(MSA(LN₁ z));  z ← z′ + MLP(LN₂ z′)   (eqs. 2–3)
Tensor ViTBlockImpl::forward(const Tensor& x) {
  Tensor h = norm1(x);
  Tensor y = x + drop(std::get<0>(attn(h, h, h, Tensor(), /*need_weights=*/false)));
  return y + mlp(norm2(y));
}

// z′₀ = z₀ + drop(MSA(LN₁ z)₀);  z₀ ← z′₀ + MLP(LN₂ z′₀): row 0 of eqs. 2–3, with LN₁ z's every row as keys and
// values. LayerNorm, the MLP and the residuals act on each token alone, and so does the attention's query side.
Tensor ViTBlockImpl::forward_class_token(const Tensor& x) {
  HG_CHECK(x.dim() == 3 && x.size(1) >= 1, "ViTBlock: expected tokens [N, T, D], got {}", x.desc());
  Tensor h = norm1(x);
  Tensor attended = std::get<0>(attn(h.narrow(1, 0, 1), h, h, Tensor(), /*need_weights=*/false));  // [N, 1, D]
  Tensor y = x.narrow(1, 0, 1) + drop(attended);
  return y + mlp(norm2(y));
}

std::pair<Tensor, Tensor> ViTBlockImpl::forward_with_attention(const Tensor& x) {
  Tensor h = norm1(x);
  auto [a, weights] = attn(h, h, h, Tensor(), /*need_weights=*/true);
  Tensor y = x + drop(a);
  return {y + mlp(norm2(y)), weights};
}

// ---------------------------------------------------------------------------------------------------- model

ViTImpl::ViTImpl(const ViTOptions& options_) : Module("ViT"), options(options_) {
  check_options(options);
  const int64_t dim = options.embed_dim();
  patch_embed = register_module(
      "patch_embed", nn::Conv2d(nn::Conv2dOptions(options.in_channels(), dim, options.patch_size())
                                    .stride(options.patch_size())));
  cls_token = register_parameter("cls_token", zeros({1, 1, dim}));
  pos_embed = register_parameter("pos_embed", zeros({1, num_patches() + 1, dim}));
  pos_drop = register_module("pos_drop", nn::Dropout(options.drop_rate()));
  // Registered as timm's blocks.<i>; `blocks` keeps the typed handles.
  nn::ModuleList block_list = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < options.depth(); ++i) {
    blocks.push_back(ViTBlock(options));
    block_list->push_back(blocks.back());
  }
  norm = register_module("norm", layer_norm(dim));
  head_drop = register_module("head_drop", nn::Dropout(options.drop_rate()));
  head = register_module("head", nn::Linear(dim, options.num_classes()));
  reset_parameters();
}

int64_t ViTImpl::num_patches() const {
  const int64_t side = options.image_size() / options.patch_size();
  return side * side;
}

void ViTImpl::reset_parameters() {
  NoGradGuard no_grad;
  nn::init::trunc_normal_(pos_embed, 0.0, 0.02);
  nn::init::normal_(cls_token, 0.0, 1e-6);
  auto linear = [](nn::Linear& l) {
    nn::init::trunc_normal_(l->weight, 0.0, 0.02);
    if (l->bias.defined()) nn::init::zeros_(l->bias);
  };
  for (ViTBlock& block : blocks) {
    nn::init::trunc_normal_(block->attn->in_proj_weight, 0.0, 0.02);  // timm's qkv Linear
    if (block->attn->in_proj_bias.defined()) nn::init::zeros_(block->attn->in_proj_bias);
    linear(block->attn->out_proj);
    linear(block->fc1);
    linear(block->fc2);
    block->norm1->reset_parameters();
    block->norm2->reset_parameters();
  }
  norm->reset_parameters();
  linear(head);
}

// z₀ = [x_cls; patches·E] + E_pos   (eq. 1)
Tensor ViTImpl::embed(const Tensor& images) {
  const int64_t s = options.image_size();
  HG_CHECK(images.dim() == 4 && images.size(1) == options.in_channels() && images.size(2) == s &&
               images.size(3) == s,
           "ViT: expected images [N, {}, {}, {}], got {}", options.in_channels(), s, s, images.desc());
  const int64_t n = images.size(0);
  Tensor patches = patch_embed(images).flatten(2).transpose(1, 2);  // [N, D, h, w] → [N, P, D]
  Tensor tokens = cat({cls_token.expand({n, 1, options.embed_dim()}), patches}, 1);
  return pos_drop(tokens + pos_embed);
}

// y = head(LN(z_L)[:, 0])   (eq. 4): only the class token of the last block is read. With a softmax separation
// (no LwPF: its forgetting thresholds come from every query's scores) each query's weights depend on its own row
// of scores, so the last block runs for that token alone (vit_tiny, depth 6: 14 % fewer GEMM FLOPs per step).
Tensor ViTImpl::forward(const Tensor& images) {
  Tensor z = embed(images);
  const nn::SeparationOptions& separation = options.separation();
  const bool class_token_only = separation.kind() == nn::SeparationKind::Softmax && !separation.forgetting();
  const size_t full_blocks = class_token_only && !blocks.empty() ? blocks.size() - 1 : blocks.size();
  for (size_t i = 0; i < full_blocks; ++i) z = blocks[i](z);
  if (full_blocks < blocks.size()) z = blocks.back()->forward_class_token(z);
  return head(head_drop(norm(z).select(1, 0)));
}

std::pair<Tensor, std::vector<Tensor>> ViTImpl::forward_with_attention(const Tensor& images) {
  Tensor z = embed(images);
  std::vector<Tensor> weights;
  for (ViTBlock& block : blocks) {
    auto [next, w] = block->forward_with_attention(z);
    z = next;
    weights.push_back(w);
  }
  return {head(head_drop(norm(z).select(1, 0))), weights};
}

void ViTImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("ViT(image_size={}, patch_size={}, in_channels={}, num_classes={}, embed_dim={}, depth={}, "
                        "num_heads={}, mlp_ratio={}, drop_rate={}, attn_drop_rate={})",
                        options.image_size(), options.patch_size(), options.in_channels(), options.num_classes(),
                        options.embed_dim(), options.depth(), options.num_heads(), options.mlp_ratio(),
                        options.drop_rate(), options.attn_drop_rate());
}

}  // namespace hg::models
