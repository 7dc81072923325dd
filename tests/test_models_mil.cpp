// MIL models (models/mil.h): shapes, padding invariance, attention weights, gradients, a short training run,
// CPU vs CUDA, and errors.
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/mil.h>

#include "testing.h"

namespace {

namespace nn = hg::nn;
namespace models = hg::models;
using hg::Tensor;
using hg::Tensors;

Tensor normal64(hg::IntArrayRef shape, uint64_t seed, double scale = 1.0) {
  hg::Generator gen(seed);
  return hg::randn(shape, hg::TensorOptions(hg::kFloat64), &gen) * scale;
}

/// Bool padding mask [B, N] from the bag sizes (true past each size).
Tensor padding_for(const std::vector<int64_t>& sizes, int64_t n) {
  std::vector<bool> mask;
  for (int64_t size : sizes)
    for (int64_t k = 0; k < n; ++k) mask.push_back(k >= size);
  return hg::from_vector(mask, {static_cast<int64_t>(sizes.size()), n});
}

using hgtest::check_parameter_gradients;
using hgtest::randomize_parameters;

/// The four models on d = 5 features, tiny, for the generic tests.
struct Named {
  std::string what;
  std::function<models::MILOutput(const Tensor&, const Tensor&)> forward;
  nn::Module* module;
};

struct Zoo {
  models::AttentionMIL attention{models::AttentionMILOptions(5).embedding({6}).attention_size(4)};
  models::GatedAttentionMIL gated{models::AttentionMILOptions(5).embedding({6}).attention_size(4)};
  models::HopfieldMIL hopfield{
      models::HopfieldMILOptions(5).embedding({6}).num_heads(2).head_size(3).hidden_size(4).beta(0.7)};
  models::MILModel nonparametric{models::MILModelOptions(5).d_model(4).num_heads(2).scale(0.5).num_pattern(2)};

  std::vector<Named> all() {
    return {{"attention", [this](const Tensor& x, const Tensor& m) { return attention(x, m); }, attention.get()},
            {"gated", [this](const Tensor& x, const Tensor& m) { return gated(x, m); }, gated.get()},
            {"hopfield", [this](const Tensor& x, const Tensor& m) { return hopfield(x, m); }, hopfield.get()},
            {"nonparametric", [this](const Tensor& x, const Tensor& m) { return nonparametric(x, m); },
             nonparametric.get()}};
  }
};

}  // namespace

TEST_CASE("mil models: output shapes, attention shapes and parameter names") {
  Zoo zoo;
  Tensor x = normal64({3, 4, 5}, 1).to(hg::kFloat32);
  Tensor mask = padding_for({4, 2, 1}, 4);
  for (auto& m : zoo.all()) {
    CAPTURE(m.what);
    models::MILOutput out = m.forward(x, mask);
    CHECK(out.logits.sizes() == hg::Shape{3});
    REQUIRE(out.attention.defined());
  }
  CHECK(zoo.attention(x, mask).attention.sizes() == hg::Shape{3, 4});
  CHECK(zoo.hopfield(x, mask).attention.sizes() == hg::Shape{3, 2, 1, 4});       // [B, heads, queries, N]
  CHECK(zoo.nonparametric(x, mask).attention.sizes() == hg::Shape{3, 2, 2, 4});  // two learned queries
  auto names = [](nn::Module& m) {
    std::vector<std::string> n;
    for (const auto& [name, p] : m.named_parameters()) n.push_back(name);
    return n;
  };
  auto gated = names(*zoo.gated);
  CHECK(std::find(gated.begin(), gated.end(), "attention_U.weight") != gated.end());
  auto plain = names(*zoo.attention);
  CHECK(std::find(plain.begin(), plain.end(), "attention_U.weight") == plain.end());
  // Without an embedding the raw features are pooled; no mask means every instance is real.
  models::HopfieldMIL raw(models::HopfieldMILOptions(5).embedding({}).num_heads(1).head_size(2));
  CHECK(raw(x).logits.sizes() == hg::Shape{3});
  // Linear attention forms no weight matrix: no attention returned, the logits still are.
  models::MILModel linear(
      models::MILModelOptions(5).d_model(4).num_heads(2).separation(nn::SeparationOptions(nn::SeparationKind::Linear)));
  models::MILOutput lin = linear(x, mask);
  CHECK(lin.logits.sizes() == hg::Shape{3});
  CHECK_FALSE(lin.attention.defined());
}

TEST_CASE("MILModel: attention dropout and query initialisation by kind, as the reference's poolings") {
  using K = nn::SeparationKind;
  // HopfieldPooling (dense kinds): dropout 0.1, R ~ N(0, 1); NPHPooling (top-K, random mask, window) and
  // FavorPooling (linear, random features): no dropout, R ~ U[0, 1).
  for (K kind : {K::Softmax, K::Sparsemax, K::TopK, K::RandomMask, K::Window, K::Linear, K::RandomFeatures}) {
    CAPTURE(nn::to_string(kind));
    hg::manual_seed(5);
    models::MILModel m(models::MILModelOptions(5).d_model(64).num_heads(4).num_pattern(8).separation(
        nn::SeparationOptions(kind)));
    const bool dense = kind == K::Softmax || kind == K::Sparsemax;
    CHECK(m->pooling->options.hopfield().dropout() == (dense ? 0.1 : 0.0));
    const Tensor r = m->pooling->pooling_weights.detach();
    const double lo = hg::amin(r, {}).item<float>(), hi = hg::amax(r, {}).item<float>();
    if (dense) {
      CHECK(lo < -1.0);  // 512 normal draws
      CHECK(hi > 1.0);
    } else {
      CHECK(lo >= 0.0);
      CHECK(hi < 1.0);
      CHECK(hg::mean(r).item<float>() == doctest::Approx(0.5).epsilon(0.1));
    }
  }
}

TEST_CASE("mil models: padded instances change nothing, attention sums to 1 over the real instances") {
  Zoo zoo;
  for (auto& m : zoo.all()) {
    CAPTURE(m.what);
    m.module->eval();  // no dropout
    // Bags of sizes 3 and 1, padded to 3, and the same bags padded to 6 with large garbage in the padding.
    Tensor real = normal64({2, 3, 5}, 2).to(hg::kFloat32);
    Tensor mask3 = padding_for({3, 1}, 3), mask6 = padding_for({3, 1}, 6);
    Tensor garbage = normal64({2, 3, 5}, 3, 100.0).to(hg::kFloat32);
    Tensor x3 = hg::where(mask3.unsqueeze(2), 0.0, real);
    Tensor x6 = hg::cat({hg::where(mask3.unsqueeze(2), garbage, real), garbage}, 1);
    models::MILOutput a = m.forward(x3, mask3), b = m.forward(x6, mask6);
    hgtest::check_close(b.logits, a.logits, 1e-5, 1e-6, "logits with more padding");
    // The second bag alone gives the same logit as inside the batch.
    models::MILOutput single = m.forward(real.narrow(0, 1, 1).narrow(1, 0, 1), Tensor());
    hgtest::check_close(single.logits, a.logits.narrow(0, 1, 1), 1e-5, 1e-6, "one bag alone");
    // Weights: Σ over real instances = 1 (per head and query), 0 on padding.
    Tensor w = b.attention;
    Tensor pad = w.dim() == 2 ? mask6 : mask6.unsqueeze(1).unsqueeze(1);
    hgtest::check_close(hg::sum(hg::where(pad, 0.0, w), {-1}), hg::ones_like(hg::sum(w, {-1})), 1e-5, 1e-6,
                        "sum over real instances");
    CHECK(hg::sum(hg::where(pad, w, 0.0)).item<float>() == 0.0f);
  }
}

TEST_CASE("attention mil: weights are softmax(wᵀ tanh(V h)) (gated: ⊙ sigmoid(U h)) and z = Σ a h") {
  for (bool gated : {false, true}) {
    CAPTURE(gated);
    models::AttentionMIL m(models::AttentionMILOptions(3).attention_size(2).gated(gated));
    m->to(hg::kFloat64);
    randomize_parameters(*m, 4);
    Tensor x = normal64({1, 4, 3}, 5);
    Tensor mask = padding_for({3}, 4);
    models::MILOutput out = m(x, mask);
    // By hand, over the 3 real instances.
    Tensor h = x.narrow(1, 0, 3).squeeze(0);  // no embedding layers: h = x
    Tensor hidden = hg::tanh(hg::linear(h, m->attention_V->weight, m->attention_V->bias));
    if (gated) hidden = hidden * hg::sigmoid(hg::linear(h, m->attention_U->weight, m->attention_U->bias));
    Tensor a = hg::softmax(hg::linear(hidden, m->attention_w->weight, m->attention_w->bias).squeeze(1), 0);
    Tensor z = hg::matmul(a.unsqueeze(0), h);
    Tensor logit = hg::linear(z, m->classifier->weight, m->classifier->bias).squeeze(1);
    hgtest::check_close(out.attention.narrow(1, 0, 3).squeeze(0), a, 1e-12, 1e-12, "attention");
    hgtest::check_close(out.logits, logit, 1e-12, 1e-12, "logit");
  }
}

TEST_CASE("mil models: float64 gradchecks in the instances (non-contiguous) and the parameters") {
  Zoo zoo;
  Tensor mask = padding_for({3, 2}, 3);
  for (auto& m : zoo.all()) {
    CAPTURE(m.what);
    m.module->to(hg::kFloat64);
    m.module->eval();  // dropout off: a deterministic function
    randomize_parameters(*m.module, 6);
    // Instances given as [B, d, N], transposed inside: the models see non-contiguous bags.
    auto f = [&](const Tensors& t) { return m.forward(t[0].transpose(1, 2), mask).logits; };
    hgtest::gradcheck(f, {normal64({2, 5, 3}, 7)});
    Tensor x = normal64({2, 3, 5}, 8);
    check_parameter_gradients(*m.module, [&] { return m.forward(x, mask).logits; });
  }
  // A sparse separation (1.5-entmax) through the Hopfield pooling, and second derivatives of gated attention.
  models::HopfieldMIL sparse(models::HopfieldMILOptions(5).embedding({4}).num_heads(1).head_size(3).separation(
      nn::SeparationOptions(nn::SeparationKind::Entmax15)));
  sparse->to(hg::kFloat64);
  randomize_parameters(*sparse, 9);
  hgtest::gradcheck([&](const Tensors& t) { return sparse(t[0], mask).logits; }, {normal64({2, 3, 5}, 10)});
  models::AttentionMIL gated(models::AttentionMILOptions(5).gated(true).attention_size(3));
  gated->to(hg::kFloat64);
  randomize_parameters(*gated, 11);
  hgtest::gradgradcheck([&](const Tensors& t) { return gated(t[0], mask).logits; }, {normal64({2, 3, 5}, 12)});
}

/// 16 bags of 2–5 instances in 5 features; a positive bag holds one instance shifted by +2 on feature 0.
hg::data::BagBatch signal_bags(uint64_t seed) {
  hg::Generator gen(seed);
  std::vector<hg::data::Bag> bags;
  for (int64_t b = 0; b < 16; ++b) {
    const int64_t n = 2 + b % 4;
    const bool positive = b % 2 == 0;
    Tensor x = hg::randn({n, 5}, hg::TensorOptions(hg::kFloat32), &gen) * 0.5;
    if (positive)
      x = x + ((hg::arange(n).unsqueeze(1) == 0.0) && (hg::arange(5).unsqueeze(0) == 0.0)).to(hg::kFloat32) * 2.0;
    bags.push_back({x, hg::full({}, positive ? 1.0 : 0.0), Tensor()});
  }
  return hg::data::collate_bags(bags);
}

TEST_CASE("mil models: a short fixed-seed training run lowers the loss") {
  hg::data::BagBatch batch = signal_bags(14);
  hg::manual_seed(13);
  Zoo zoo;
  for (auto& m : zoo.all()) {
    CAPTURE(m.what);
    hg::optim::AdamW optimizer(m.module->parameters(), hg::optim::AdamWOptions(1e-2));
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      Tensor loss = hg::binary_cross_entropy_with_logits(m.forward(batch.instances, batch.padding_mask).logits,
                                                         batch.labels);
      optimizer.zero_grad();
      loss.backward();
      hg::optim::clip_grad_norm_(m.module->parameters(), 1.0);
      optimizer.step();
      (step == 0 ? first : last) = loss.item<float>();
    }
    CHECK(last < 0.5 * first);
  }
}

HG_BACKEND_TEST(mil_models_forward_backward) {
  hg::data::BagBatch batch = signal_bags(15);
  Tensor x = batch.instances.to(device), mask = batch.padding_mask.to(device), y = batch.labels.to(device);
  Zoo zoo;
  Tensors results;
  for (auto& m : zoo.all()) {
    m.module->eval();
    randomize_parameters(*m.module, 16);
    m.module->to(device);
    m.module->zero_grad();
    models::MILOutput out = m.forward(x, mask);
    CHECK(out.logits.device() == device);
    hg::binary_cross_entropy_with_logits(out.logits, y).backward();
    results.push_back(out.logits);
    results.push_back(out.attention);
    for (const auto& [name, p] : m.module->named_parameters())
      if (p.grad().defined()) results.push_back(p.grad());
  }
  return results;
}

TEST_CASE("mil models: bag dropout drops instances in training only, never a whole bag") {
  Tensor mask = padding_for({4, 1, 3}, 4);
  hg::Generator gen(17);
  Tensor dropped = models::drop_instances(mask, 3, 4, 0.5, hg::kCPU, &gen);
  std::vector<bool> before = mask.to_vector<bool>(), after = dropped.to_vector<bool>();
  for (size_t i = 0; i < before.size(); ++i)
    if (before[i]) CHECK(after[i]);  // padding stays padding
  CHECK(after[4] == false);         // the one-instance bag keeps its instance
  // Over many draws, about half of the real instances are dropped.
  Tensor many = models::drop_instances(Tensor(), 200, 50, 0.5, hg::kCPU, &gen);
  const double rate = hg::sum(many.to(hg::kFloat64)).item<double>() / 10000.0;
  CHECK(rate == doctest::Approx(0.5).epsilon(0.05));
  models::HopfieldMIL m(models::HopfieldMILOptions(5).embedding({}).num_heads(1).head_size(2).bag_dropout(0.75));
  Tensor x = normal64({3, 4, 5}, 18).to(hg::kFloat32);
  m->eval();
  hgtest::check_close(m(x, mask).logits, m(x, mask).logits, 0, 0, "eval is deterministic");
}

TEST_CASE("mil models: errors name the model and what it expected") {
  models::AttentionMIL attention(models::AttentionMILOptions(5));
  Tensor x = normal64({2, 3, 5}, 19).to(hg::kFloat32);
  CHECK_THROWS_WITH_AS(attention(normal64({2, 3, 4}, 20).to(hg::kFloat32)),
                       doctest::Contains("AttentionMIL: expected instances [B, N, 5]"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(normal64({3, 5}, 20).to(hg::kFloat32)),
                       doctest::Contains("AttentionMIL: expected bags of instances"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, padding_for({3, 3, 3}, 3)),
                       doctest::Contains("expected a bool padding mask [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, hg::zeros({2, 3})), doctest::Contains("expected a bool padding mask"),
                       hg::Error);
  models::HopfieldMIL hopfield(models::HopfieldMILOptions(5));
  CHECK_THROWS_WITH_AS(hopfield(normal64({2, 3, 6}, 21).to(hg::kFloat32)),
                       doctest::Contains("HopfieldMIL: expected instances [B, N, 5]"), hg::Error);
  CHECK_THROWS_WITH_AS(models::MILModel(models::MILModelOptions(5).d_model(6).num_heads(4)),
                       doctest::Contains("num_heads dividing d_model"), hg::Error);
  CHECK_THROWS_WITH_AS(models::HopfieldMIL(models::HopfieldMILOptions(5).bag_dropout(1.0)),
                       doctest::Contains("bag_dropout must be in [0, 1)"), hg::Error);
  CHECK_THROWS_WITH_AS(models::drop_instances(Tensor(), 2, 2, -0.1, hg::kCPU),
                       doctest::Contains("drop_instances: the drop probability"), hg::Error);
}
