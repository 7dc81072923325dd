// models::ViT (with every separation function and LwPF) and the U-Hop ViH models: shapes, float64 gradient
// checks on tiny instances, short fixed-seed training runs whose loss falls, LwPF's weight sums, CPU vs CUDA.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/vih.h>
#include <hopgrad/models/vit.h>

#include "testing.h"

namespace {

using hg::Tensor;
namespace nn = hg::nn;
namespace models = hg::models;

/// A ViT small enough for finite differences: 4×4 images in 2×2 patches (4 patches + CLS), width 4, 2 heads.
models::ViTOptions tiny_vit(int64_t depth = 1) {
  return models::ViTOptions(4, 2, 3).in_channels(2).embed_dim(4).num_heads(2).depth(depth).mlp_ratio(1.5);
}

nn::SeparationOptions lwpf() {
  return nn::SeparationOptions().forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU));
}

using hgtest::check_parameter_gradients;
using hgtest::randomize_parameters;

/// n images [n, c, s, s] whose class (of `classes`) is the quadrant holding a bright square, plus noise.
std::pair<Tensor, Tensor> quadrant_images(int64_t n, int64_t c, int64_t s, int64_t classes, uint64_t seed) {
  hg::Generator gen(seed);
  std::vector<float> noise = (hg::randn({n, c, s, s}, hg::kFloat32, &gen) * 0.3).to_vector<float>();
  std::vector<int64_t> labels(static_cast<size_t>(n));
  const int64_t h = s / 2;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % classes, r0 = (label / 2) * h, c0 = (label % 2) * h;
    labels[static_cast<size_t>(i)] = label;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t r = r0; r < r0 + h; ++r)
        for (int64_t q = c0; q < c0 + h; ++q) noise[static_cast<size_t>(((i * c + ch) * s + r) * s + q)] += 1.0f;
  }
  return {hg::from_vector(noise, {n, c, s, s}), hg::from_vector(labels, {n}, hg::kInt64)};
}

/// Full-batch Adam steps on the quadrant task; returns the losses.
std::vector<double> train_steps(nn::Module& model, const std::function<Tensor(const Tensor&)>& forward,
                                const Tensor& x, const Tensor& y, int steps, double lr) {
  hg::optim::Adam optimizer(model.parameters(), hg::optim::AdamOptions(lr));
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    Tensor loss = hg::cross_entropy(forward(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

models::ViHOptions tiny_vih(models::HopfieldMemory memory) {
  return models::ViHOptions(4, 2, 3).in_channels(2).embed_dim(4).num_heads(2).memory(memory).depth(2).mlp_ratio(1.5);
}

}  // namespace

// ---- ViT ----------------------------------------------------------------------------------------------------

TEST_CASE("ViT: presets, parameter names and output shapes") {
  CHECK(models::ViTOptions::tiny().embed_dim() == 192);
  CHECK(models::ViTOptions::tiny().num_heads() == 3);
  CHECK(models::ViTOptions::small().embed_dim() == 384);
  CHECK(models::ViTOptions::small().num_heads() == 6);
  CHECK(models::ViTOptions::small().depth() == 12);

  models::ViT vit(models::ViTOptions::mini(28, 7, 10).in_channels(1).depth(2));
  CHECK(vit->num_patches() == 16);
  CHECK(vit->pos_embed.sizes() == hg::Shape{1, 17, 64});
  CHECK(vit->cls_token.sizes() == hg::Shape{1, 1, 64});
  auto names = vit->named_parameters();
  std::vector<std::string> keys;
  for (const auto& [name, p] : names) keys.push_back(name);
  for (const char* expected : {"cls_token", "pos_embed", "patch_embed.weight", "blocks.0.attn.in_proj_weight",
                               "blocks.1.fc2.bias", "norm.weight", "head.weight"})
    CHECK_MESSAGE(std::find(keys.begin(), keys.end(), expected) != keys.end(), expected);

  Tensor images = hg::randn({3, 1, 28, 28});
  CHECK(vit(images).sizes() == hg::Shape{3, 10});
  auto [logits, weights] = vit->forward_with_attention(images);
  CHECK(logits.sizes() == hg::Shape{3, 10});
  REQUIRE(weights.size() == 2);
  CHECK(weights[0].sizes() == hg::Shape{3, 17, 17});
  // Softmax attention: every row a distribution.
  hgtest::check_close(weights[1].sum({2}), hg::ones({3, 17}), 1e-5, 1e-5, "softmax rows");

  // timm's init: truncated N(0, 0.02²) within ±2 (absolute), zero biases.
  CHECK(hg::max(hg::abs(vit->pos_embed)).item<float>() <= 2.0f);
  CHECK(std::abs(hg::std(vit->pos_embed.flatten()).item<float>() - 0.02f) < 0.004f);
  CHECK(hg::max(hg::abs(vit->blocks[0]->fc1->bias)).item<float>() == 0.0f);

  // qkv_bias(false), as timm's: the qkv projection loses its bias, the output projection keeps its own.
  models::ViT no_qkv_bias(models::ViTOptions::mini(8, 4, 3).in_channels(1).depth(1).qkv_bias(false));
  std::vector<std::string> attention_keys;
  for (const auto& [name, p] : no_qkv_bias->named_parameters())
    if (name.rfind("blocks.0.attn.", 0) == 0) attention_keys.push_back(name);
  CHECK(attention_keys == std::vector<std::string>{"blocks.0.attn.in_proj_weight", "blocks.0.attn.out_proj.weight",
                                                   "blocks.0.attn.out_proj.bias"});
  CHECK(hg::max(hg::abs(no_qkv_bias->blocks[0]->attn->out_proj->bias)).item<float>() == 0.0f);
}

TEST_CASE("ViT: every separation function runs and gives [N, classes]") {
  for (const char* name : {"softmax", "softmax1", "sparsemax", "entmax15", "entmax", "topk", "random", "window",
                           "linear", "favor", "relu_features"}) {
    CAPTURE(name);
    nn::SeparationOptions sep(nn::separation_kind_from_string(name));
    if (sep.kind() == nn::SeparationKind::TopK) sep.top_k(2);
    models::ViT vit(models::ViTOptions::mini(8, 4, 5).in_channels(1).embed_dim(16).depth(1).separation(sep));
    Tensor logits = vit(hg::randn({2, 1, 8, 8}));
    CHECK(logits.sizes() == hg::Shape{2, 5});
    for (float v : logits.to_vector<float>()) CHECK(std::isfinite(v));
  }
}

TEST_CASE("ViT with LwPF: forgotten keys leave attention rows summing to less than 1") {
  hg::manual_seed(5);
  models::ViT plain(models::ViTOptions::mini(8, 2, 4).in_channels(1).embed_dim(16).depth(1));
  models::ViT forgetting(models::ViTOptions::mini(8, 2, 4).in_channels(1).embed_dim(16).depth(1).separation(lwpf()));
  {  // the same weights in both
    hg::NoGradGuard no_grad;
    auto from = plain->named_parameters(), to = forgetting->named_parameters();
    REQUIRE(from.size() == to.size());
    for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_(from[i].second);
  }
  plain->eval();
  forgetting->eval();
  Tensor images = hg::randn({2, 1, 8, 8});
  auto [a, wa] = plain->forward_with_attention(images);
  auto [b, wb] = forgetting->forward_with_attention(images);
  Tensor sums = wb[0].sum({2});  // [2, 17]
  // With the global lower-median threshold about half the scores are forgotten: each still adds e^t to the
  // normaliser (spec B.1), so every row sums strictly below 1, and the outputs differ from plain softmax.
  CHECK(hg::max(sums).item<float>() < 0.999f);
  CHECK(hg::min(sums).item<float>() > 0.0f);
  CHECK(hg::max(hg::abs(a - b)).item<float>() > 1e-4f);
  hgtest::check_close(wa[0].sum({2}), hg::ones({2, 17}), 1e-5, 1e-5, "plain rows");
}

TEST_CASE("ViT gradcheck (float64): images non-contiguous, and every parameter; with LwPF too") {
  for (bool forget : {false, true}) {
    CAPTURE(forget);
    models::ViTOptions o = tiny_vit(2);
    if (forget) o.separation(lwpf());
    models::ViT vit(o);
    vit->to(hg::kFloat64);
    vit->eval();  // no LwPF noise
    randomize_parameters(*vit, 21);
    // Images given as [N, C, W, H] and transposed: a non-contiguous input.
    hgtest::gradcheck([&](const hg::Tensors& t) { return vit(t[0].transpose(2, 3)); },
                      {hgtest::uniform({2, 2, 4, 4}, -1, 1, 3)});
    Tensor images = hgtest::uniform({2, 2, 4, 4}, -1, 1, 4);
    check_parameter_gradients(*vit, [&] { return vit(images); });
  }
}

// forward() runs the last block for the class token alone (ViTBlock::forward_class_token); forward_with_attention
// runs every token through every block. Same logits, same gradients for the images and every parameter.
HG_BACKEND_TEST(vit_last_block_for_the_class_token_only_changes_nothing) {
  models::ViT vit(tiny_vit(3));
  vit->to(device, hg::kFloat64);
  randomize_parameters(*vit, 31);
  Tensor images = hgtest::uniform({3, 2, 4, 4}, -1, 1, 32).to(device).requires_grad_(true);
  Tensor grad_out = hgtest::uniform({3, 3}, -1, 1, 33).to(device);
  hg::Tensors got[2];
  for (const bool all_tokens : {true, false}) {
    vit->zero_grad();
    images.set_grad({});
    Tensor logits = all_tokens ? vit->forward_with_attention(images).first : vit(images);
    logits.backward(grad_out);
    hg::Tensors& g = got[all_tokens ? 0 : 1];
    g.push_back(logits);
    g.push_back(images.grad());
    for (const auto& [name, p] : vit->named_parameters()) g.push_back(p.grad());
  }
  for (size_t i = 0; i < got[0].size(); ++i)
    hgtest::check_close(got[1][i], got[0][i], 1e-12, 1e-13, fmt::format("class token only vs all tokens, item {}", i));
  // The block alone: row 0 of the full block.
  Tensor z = hgtest::uniform({2, 5, 4}, -1, 1, 34).to(device);
  hgtest::check_close(vit->blocks[0]->forward_class_token(z), vit->blocks[0](z).narrow(1, 0, 1), 1e-12, 1e-13,
                      "forward_class_token");
  return got[1];
}

TEST_CASE("ViT: a fixed-seed short training run drives the loss down (softmax and LwPF)") {
  auto [x, y] = quadrant_images(32, 1, 8, 4, 17);
  for (bool forget : {false, true}) {
    CAPTURE(forget);
    hg::manual_seed(3);
    models::ViTOptions o = models::ViTOptions::mini(8, 4, 4).in_channels(1).embed_dim(16).depth(1);
    if (forget) o.separation(lwpf());
    models::ViT vit(o);
    auto losses = train_steps(*vit, [&](const Tensor& t) { return vit(t); }, x, y, 40, 3e-3);
    CHECK(losses.back() < 0.5 * losses.front());
  }
}

TEST_CASE("ViT: bad options and inputs are refused with the shapes") {
  CHECK_THROWS_WITH_AS(models::ViT(models::ViTOptions(30, 7, 10)), doctest::Contains("patch_size must divide"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(models::ViT(models::ViTOptions(32, 4, 10).embed_dim(10).num_heads(4)),
                       doctest::Contains("multiple of num_heads"), hg::Error);
  models::ViT vit(models::ViTOptions::mini(8, 4, 3).in_channels(1).embed_dim(8).depth(1));
  CHECK_THROWS_WITH_AS(vit(hg::randn({2, 3, 8, 8})), doctest::Contains("expected images [N, 1, 8, 8]"), hg::Error);
  CHECK_THROWS_WITH_AS(vit(hg::randn({2, 1, 16, 16})), doctest::Contains("expected images [N, 1, 8, 8]"), hg::Error);
  CHECK_THROWS_WITH_AS(vit(hg::randn({1, 8, 8})), doctest::Contains("expected images"), hg::Error);
}

HG_BACKEND_TEST(vit_forward_backward_with_lwpf) {
  hg::manual_seed(9);
  models::ViT vit(tiny_vit(2).separation(lwpf()));
  vit->eval();
  vit->to(device);
  Tensor images = hgtest::uniform({3, 2, 4, 4}, -1, 1, 5).to(hg::kFloat32).to(device).requires_grad_(true);
  auto [logits, weights] = vit->forward_with_attention(images);
  CHECK(logits.sizes() == hg::Shape{3, 3});
  CHECK(hg::max(weights[0].sum({2})).item<float>() < 1.0f);
  hg::sum(logits * logits).backward();
  return {logits, weights[0], weights[1], images.grad(), vit->pos_embed.grad(), vit->blocks[0]->attn->in_proj_weight.grad()};
}

// ---- ViH / DeepViH (U-Hop) ------------------------------------------------------------------------------------

TEST_CASE("ViH and DeepViH: shapes, memories and parameter names") {
  for (auto memory : {models::HopfieldMemory::MHN, models::HopfieldMemory::UMHN}) {
    const bool umhn = memory == models::HopfieldMemory::UMHN;
    CAPTURE(umhn);
    // CIFAR-10's setting: 32×32 in one 32×32 patch → CLS + 1 patch.
    models::ViH vih(models::ViHOptions(32, 32, 10).embed_dim(32).memory(memory));
    CHECK(vih->embed(hg::randn({2, 3, 32, 32})).sizes() == hg::Shape{2, 2, 32});
    CHECK(vih(hg::randn({2, 3, 32, 32})).sizes() == hg::Shape{2, 10});
    CHECK(vih->memory->umhn.is_empty() == !umhn);
    CHECK(vih->memory->mhn.is_empty() == umhn);

    models::DeepViH deep(models::ViHOptions::deep(16, 4, 7).embed_dim(16).memory(memory));
    CHECK(deep->blocks.size() == 3);
    CHECK(deep->options.num_heads() == 4);
    CHECK(deep(hg::randn({3, 3, 16, 16})).sizes() == hg::Shape{3, 7});
    std::vector<std::string> keys;
    for (const auto& [name, p] : deep->named_parameters()) keys.push_back(name);
    const char* memory_key = umhn ? "blocks.2.memory.umhn.kernel.weight" : "blocks.2.memory.mhn.in_proj_weight";
    CHECK_MESSAGE(std::find_if(keys.begin(), keys.end(), [&](const std::string& k) {
                    return k.rfind(umhn ? "blocks.2.memory.umhn.kernel" : "blocks.2.memory.mhn", 0) == 0;
                  }) != keys.end(), memory_key);
    CHECK(std::find(keys.begin(), keys.end(), "embed.cls_token") != keys.end());
  }
  CHECK(models::ViHOptions::deep().embed_dim() == 512);
}

TEST_CASE("ViH and DeepViH gradcheck (float64): images non-contiguous, and every parameter") {
  for (auto memory : {models::HopfieldMemory::MHN, models::HopfieldMemory::UMHN}) {
    CAPTURE(memory == models::HopfieldMemory::UMHN);
    models::ViH vih(tiny_vih(memory));
    vih->to(hg::kFloat64);
    vih->eval();  // no attention dropout
    randomize_parameters(*vih, 31);
    hgtest::gradcheck([&](const hg::Tensors& t) { return vih(t[0].transpose(2, 3)); },
                      {hgtest::uniform({2, 2, 4, 4}, -1, 1, 6)});
    Tensor images = hgtest::uniform({2, 2, 4, 4}, -1, 1, 7);
    check_parameter_gradients(*vih, [&] { return vih(images); });

    models::DeepViH deep(tiny_vih(memory));
    deep->to(hg::kFloat64);
    deep->eval();  // no MLP or attention dropout
    randomize_parameters(*deep, 32);
    hgtest::gradcheck([&](const hg::Tensors& t) { return deep(t[0].transpose(2, 3)); },
                      {hgtest::uniform({2, 2, 4, 4}, -1, 1, 8)});
    check_parameter_gradients(*deep, [&] { return deep(images); });
    if (memory == models::HopfieldMemory::UMHN) {  // Stage I's loss is differentiable in every parameter
      check_parameter_gradients(*vih, [&] { return vih->separation_loss(images); });
      check_parameter_gradients(*deep, [&] { return deep->separation_loss(images); });
    }
  }
}

TEST_CASE("ViH Stage I lowers the separation loss; MHN has none") {
  auto [x, y] = quadrant_images(40, 3, 8, 4, 23);
  hg::manual_seed(4);
  models::ViH vih(models::ViHOptions(8, 4, 4).embed_dim(16));
  const double before = vih->separation_loss(x).item<double>();
  auto losses = models::vih_stage_one(*vih, x, models::ViHStageIOptions().epochs(10).batch_size(16));
  REQUIRE(losses.size() == 10);
  const double after = vih->separation_loss(x).item<double>();
  CHECK(after < before);
  CHECK(losses.back() < losses.front());

  models::DeepViH deep(models::ViHOptions::deep(8, 4, 4).embed_dim(16));
  const double deep_before = deep->separation_loss(x).item<double>();
  models::vih_stage_one(*deep, x, models::ViHStageIOptions().epochs(5).batch_size(20));
  CHECK(deep->separation_loss(x).item<double>() < deep_before);

  models::ViH mhn(models::ViHOptions(8, 4, 4).embed_dim(16).memory(models::HopfieldMemory::MHN));
  CHECK_THROWS_WITH_AS(models::vih_stage_one(*mhn, x), doctest::Contains("needs the UMHN memory"), hg::Error);
  CHECK_THROWS_WITH_AS(mhn->separation_loss(x), doctest::Contains("needs the UMHN memory"), hg::Error);
  CHECK_THROWS_WITH_AS(models::vih_stage_one(*vih, x, models::ViHStageIOptions().batch_size(0)),
                       doctest::Contains("batch_size > 0"), hg::Error);
}

TEST_CASE("ViH and DeepViH: fixed-seed short training runs drive the loss down") {
  auto [x, y] = quadrant_images(32, 3, 8, 4, 29);
  for (auto memory : {models::HopfieldMemory::MHN, models::HopfieldMemory::UMHN}) {
    CAPTURE(memory == models::HopfieldMemory::UMHN);
    hg::manual_seed(6);
    // Without dropout (U-Hop's attention dropout is the default now): the loss path alone.
    models::ViH vih(models::ViHOptions(8, 4, 4).embed_dim(16).memory(memory).attention_dropout(0.0));
    auto losses = train_steps(*vih, [&](const Tensor& t) { return vih(t); }, x, y, 30, 3e-3);
    CHECK(losses.back() < 0.5 * losses.front());
    models::DeepViH deep(
        models::ViHOptions::deep(8, 4, 4).embed_dim(16).memory(memory).mlp_dropout(0.0).attention_dropout(0.0));
    losses = train_steps(*deep, [&](const Tensor& t) { return deep(t); }, x, y, 50, 5e-3);
    CHECK(losses.back() < 0.5 * losses.front());
  }
}

TEST_CASE("ViH: bad options and inputs are refused") {
  CHECK_THROWS_WITH_AS(models::ViH(models::ViHOptions(32, 5, 10)), doctest::Contains("patch_size must divide"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(models::DeepViH(models::ViHOptions(32, 4, 10).embed_dim(10).num_heads(4)),
                       doctest::Contains("DeepViH: embed_dim must be a positive multiple of num_heads"), hg::Error);
  CHECK_THROWS_WITH_AS(models::ViH(models::ViHOptions(32, 4, 10).update_steps(0)),
                       doctest::Contains("update_steps must be at least 1"), hg::Error);
  models::ViH vih(models::ViHOptions(8, 4, 3).embed_dim(8));
  CHECK_THROWS_WITH_AS(vih(hg::randn({2, 1, 8, 8})), doctest::Contains("expected images [N, 3, 8, 8]"), hg::Error);
}

HG_BACKEND_TEST(vih_forward_backward_and_separation_loss) {
  hg::manual_seed(10);
  // Training mode without attention dropout: the CPU's and the GPU's generators draw different masks.
  models::ViH vih(tiny_vih(models::HopfieldMemory::UMHN).attention_dropout(0.0));
  models::DeepViH deep(tiny_vih(models::HopfieldMemory::MHN));
  deep->eval();
  vih->to(device);
  deep->to(device);
  Tensor images = hgtest::uniform({3, 2, 4, 4}, -1, 1, 9).to(hg::kFloat32).to(device).requires_grad_(true);
  Tensor a = vih(images), b = deep(images), sep = vih->separation_loss(images);
  CHECK(a.sizes() == hg::Shape{3, 3});
  CHECK(b.sizes() == hg::Shape{3, 3});
  hg::sum(a * a + b).backward();
  return {a, b, sep, images.grad(), vih->embed->cls_token.grad(), deep->blocks[1]->fc1->weight.grad()};
}
