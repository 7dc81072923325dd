// U-Hop's Vision Hopfield models (see vih.h).
#include <hopgrad/models/vih.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>
#include <random>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/containers.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/nn/optim/sgd.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {

namespace {

std::string_view memory_name(HopfieldMemory m) { return m == HopfieldMemory::MHN ? "MHN" : "UMHN"; }

void check_options(const ViHOptions& o, std::string_view model) {
  HG_CHECK(o.image_size() > 0 && o.patch_size() > 0 && o.image_size() % o.patch_size() == 0,
           "{}: patch_size must divide image_size, got image_size={}, patch_size={}", model, o.image_size(),
           o.patch_size());
  HG_CHECK(o.num_classes() > 0 && o.in_channels() > 0,
           "{}: num_classes and in_channels must be positive, got {} and {}", model, o.num_classes(), o.in_channels());
  HG_CHECK(o.embed_dim() > 0 && o.num_heads() > 0 && o.embed_dim() % o.num_heads() == 0,
           "{}: embed_dim must be a positive multiple of num_heads, got embed_dim={}, num_heads={}", model,
           o.embed_dim(), o.num_heads());
  HG_CHECK(o.update_steps() >= 1, "{}: update_steps must be at least 1, got {}", model, o.update_steps());
  HG_CHECK(o.attention_dropout() >= 0 && o.attention_dropout() <= 1 && o.mlp_dropout() >= 0 && o.mlp_dropout() <= 1,
           "{}: dropout probabilities must be in [0, 1], got attention_dropout={}, mlp_dropout={}", model,
           o.attention_dropout(), o.mlp_dropout());
}

// The head of both models (D.4): ReLU → LayerNorm(d) → Linear(d → classes), on the CLS state [N, d].
Tensor classify(const Tensor& cls, nn::LayerNorm& norm, nn::Linear& head) { return head(norm(relu(cls))); }

std::vector<double> stage_one(nn::Module& model, const std::function<Tensor(const Tensor&)>& loss_of,
                              const Tensor& images, const ViHStageIOptions& o, std::string_view name) {
  HG_CHECK(o.epochs() >= 0 && o.batch_size() > 0 && o.lr() > 0,
           "{} Stage I: expected epochs >= 0, batch_size > 0 and lr > 0, got {}, {}, {}", name, o.epochs(),
           o.batch_size(), o.lr());
  HG_CHECK(images.dim() == 4 && images.size(0) > 0, "{} Stage I: expected images [N, C, H, W] with N > 0, got {}",
           name, images.desc());
  optim::SGD sgd(model.parameters(), optim::SGDOptions(o.lr()));
  const int64_t n = images.size(0);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::mt19937_64 rng(o.seed());
  std::vector<double> losses;
  for (int64_t epoch = 0; epoch < o.epochs(); ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    double sum = 0;
    int64_t batches = 0;
    for (int64_t begin = 0; begin < n; begin += o.batch_size(), ++batches) {
      const int64_t size = std::min(o.batch_size(), n - begin);
      std::vector<int64_t> rows(order.begin() + begin, order.begin() + begin + size);
      Tensor index = from_vector(rows, {size}, kInt64).to(images.device());
      Tensor loss = loss_of(index_select(images, 0, index));
      sgd.zero_grad();
      loss.backward();
      sgd.step();
      sum += loss.item<double>();
    }
    losses.push_back(sum / static_cast<double>(batches));
  }
  return losses;
}

}  // namespace

ViHOptions ViHOptions::deep(int64_t image_size, int64_t patch_size, int64_t num_classes) {
  return ViHOptions(image_size, patch_size, num_classes).embed_dim(512).num_heads(4).depth(3);
}

// ---------------------------------------------------------------------------------------------------- memory

ViHMemoryImpl::ViHMemoryImpl(const ViHOptions& o) : Module("ViHMemory") {
  const int64_t d = o.embed_dim();
  if (o.memory() == HopfieldMemory::MHN) {
    // The nonparametric wrapper's Hopfield (spec C.3): Q = W_q R, K = W_k Y, V = W_v K (connected), no
    // LayerNorms, β = 1/√d_head.
    mhn = register_module("mhn", nn::Hopfield(nn::HopfieldOptions(d)
                                                  .num_heads(o.num_heads())
                                                  .stored_pattern_size(d)
                                                  .pattern_projection_size(d)
                                                  .pattern_projection_as_connected(true)
                                                  .update_steps_max(o.update_steps() - 1)
                                                  .normalize_stored_pattern(false)
                                                  .normalize_stored_pattern_affine(false)
                                                  .normalize_state_pattern(false)
                                                  .normalize_state_pattern_affine(false)
                                                  .normalize_pattern_projection(false)
                                                  .normalize_pattern_projection_affine(false)
                                                  .dropout(o.attention_dropout())
                                                  .separation(o.separation())));
  } else {
    umhn = register_module("umhn", nn::LearnableHopfield(nn::LearnableHopfieldOptions(d)
                                                             .num_heads(o.num_heads())
                                                             .update_steps(o.update_steps())
                                                             .dropout(o.attention_dropout())
                                                             .separation(o.separation())));
  }
}

Tensor ViHMemoryImpl::forward(const Tensor& state, const Tensor& stored) {
  return mhn ? mhn(stored, state, stored) : umhn(state, stored);
}

Tensor ViHMemoryImpl::kernel_forward(const Tensor& tokens) {
  HG_CHECK(umhn, "ViH: the separation loss (Stage I) needs the UMHN memory (a learnable kernel Φ); this model "
                 "uses MHN");
  return umhn->kernel_forward(tokens);
}

// ---------------------------------------------------------------------------------------------------- embedding

ViHPatchEmbeddingImpl::ViHPatchEmbeddingImpl(const ViHOptions& o) : Module("ViHPatchEmbedding"), options(o) {
  proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(o.in_channels(), o.embed_dim(), o.patch_size())
                                                .stride(o.patch_size())));
  cls_token = register_parameter("cls_token", randn({1, 1, o.embed_dim()}));
}

Tensor ViHPatchEmbeddingImpl::forward(const Tensor& images) {
  const int64_t s = options.image_size();
  HG_CHECK(images.dim() == 4 && images.size(1) == options.in_channels() && images.size(2) == s &&
               images.size(3) == s,
           "ViH: expected images [N, {}, {}, {}], got {}", options.in_channels(), s, s, images.desc());
  Tensor patches = proj(images).flatten(2).transpose(1, 2);  // [N, P, d]
  return cat({cls_token.expand({images.size(0), 1, options.embed_dim()}), patches}, 1);
}

// ---------------------------------------------------------------------------------------------------- ViH

ViHImpl::ViHImpl(const ViHOptions& options_) : Module("ViH"), options(options_) {
  check_options(options, "ViH");
  embed = register_module("embed", ViHPatchEmbedding(options));
  memory = register_module("memory", ViHMemory(options));
  head_norm = register_module("head_norm", nn::LayerNorm(nn::LayerNormOptions({options.embed_dim()})));
  head = register_module("head", nn::Linear(options.embed_dim(), options.num_classes()));
}

// h = Memory(R = cls, Y = patches);  y = W LN(ReLU(h))
Tensor ViHImpl::forward(const Tensor& images) {
  Tensor tokens = embed(images);
  const int64_t patches = tokens.size(1) - 1;
  Tensor h = memory(tokens.narrow(1, 0, 1), tokens.narrow(1, 1, patches));  // [N, 1, d]
  return classify(h.select(1, 0), head_norm, head);
}

// L = mean_images L_sep(Φ(tokens of the image))   (Def. 3.1 on each image's CLS + patch tokens)
Tensor ViHImpl::separation_loss(const Tensor& images) {
  return nn::deep_separation_loss(memory->kernel_forward(embed(images)));
}

void ViHImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("ViH(memory={}, image_size={}, patch_size={}, embed_dim={}, num_heads={}, num_classes={})",
                        memory_name(options.memory()), options.image_size(), options.patch_size(),
                        options.embed_dim(), options.num_heads(), options.num_classes());
}

// ---------------------------------------------------------------------------------------------------- DeepViH

DeepViHBlockImpl::DeepViHBlockImpl(const ViHOptions& o) : Module("DeepViHBlock") {
  const int64_t d = o.embed_dim(), hidden = std::lround(o.mlp_ratio() * static_cast<double>(d));
  HG_CHECK(hidden > 0, "DeepViH: mlp_ratio must give a positive MLP width, got {}", o.mlp_ratio());
  norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({d}).eps(1e-6)));
  memory = register_module("memory", ViHMemory(o));
  norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({d}).eps(1e-6)));
  fc1 = register_module("fc1", nn::Linear(d, hidden));
  fc2 = register_module("fc2", nn::Linear(hidden, d));
  drop = register_module("drop", nn::Dropout(o.mlp_dropout()));
  NoGradGuard no_grad;
  for (nn::Linear* l : {&fc1, &fc2}) {
    nn::init::xavier_uniform_((*l)->weight);
    nn::init::normal_((*l)->bias, 0.0, 1e-6);
  }
}

// x ← x + Memory(LN₁ x, LN₁ x);  x ← x + drop(W₂ drop(GELU(W₁ LN₂ x)))
Tensor DeepViHBlockImpl::forward(const Tensor& x) {
  Tensor h = norm1(x);
  Tensor y = x + memory(h, h);
  return y + drop(fc2(drop(gelu(fc1(norm2(y))))));
}

DeepViHImpl::DeepViHImpl(const ViHOptions& options_) : Module("DeepViH"), options(options_) {
  check_options(options, "DeepViH");
  HG_CHECK(options.depth() >= 1, "DeepViH: depth must be at least 1, got {}", options.depth());
  embed = register_module("embed", ViHPatchEmbedding(options));
  nn::ModuleList block_list = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < options.depth(); ++i) {
    blocks.push_back(DeepViHBlock(options));
    block_list->push_back(blocks.back());
  }
  norm = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({options.embed_dim()}).eps(1e-6)));
  head_norm = register_module("head_norm", nn::LayerNorm(nn::LayerNormOptions({options.embed_dim()})));
  head = register_module("head", nn::Linear(options.embed_dim(), options.num_classes()));
}

Tensor DeepViHImpl::forward(const Tensor& images) {
  Tensor x = embed(images);
  for (DeepViHBlock& block : blocks) x = block(x);
  return classify(norm(x).select(1, 0), head_norm, head);
}

// L = mean over blocks ℓ and images of L_sep(Φ_ℓ(LN₁ tokens at block ℓ))
Tensor DeepViHImpl::separation_loss(const Tensor& images) {
  Tensor x = embed(images), total;
  for (DeepViHBlock& block : blocks) {
    Tensor loss = nn::deep_separation_loss(block->memory->kernel_forward(block->norm1(x)));
    total = total.defined() ? total + loss : loss;
    x = block(x);
  }
  return total / static_cast<double>(blocks.size());
}

void DeepViHImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("DeepViH(memory={}, depth={}, image_size={}, patch_size={}, embed_dim={}, num_heads={}, "
                        "num_classes={})",
                        memory_name(options.memory()), options.depth(), options.image_size(), options.patch_size(),
                        options.embed_dim(), options.num_heads(), options.num_classes());
}

// ---------------------------------------------------------------------------------------------------- Stage I

std::vector<double> vih_stage_one(ViHImpl& model, const Tensor& images, const ViHStageIOptions& options) {
  HG_CHECK(model.options.memory() == HopfieldMemory::UMHN,
           "ViH Stage I: needs the UMHN memory (a learnable kernel Φ); this model uses MHN");
  return stage_one(model, [&](const Tensor& x) { return model.separation_loss(x); }, images, options, "ViH");
}

std::vector<double> vih_stage_one(DeepViHImpl& model, const Tensor& images, const ViHStageIOptions& options) {
  HG_CHECK(model.options.memory() == HopfieldMemory::UMHN,
           "DeepViH Stage I: needs the UMHN memory (a learnable kernel Φ); this model uses MHN");
  return stage_one(model, [&](const Tensor& x) { return model.separation_loss(x); }, images, options, "DeepViH");
}

}  // namespace hg::models
