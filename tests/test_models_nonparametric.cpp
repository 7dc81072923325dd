// Nonparametric Hopfield models (models/nonparametric.h: BITModel, MNISTModel; spec C.4) and the networks of
// hflayers' bit-pattern demo (models/bit_pattern_nets.h; spec G.2): shapes, the forward pass against the model
// written out with ops from its parameters, float64 finite-difference checks of input and parameter gradients for
// several separation functions (and LwPF), short fixed-seed training runs whose loss falls, printing and errors.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <hopgrad/models/bit_pattern_nets.h>
#include <hopgrad/models/nonparametric.h>

#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;
namespace models = hg::models;

namespace {

using Tensors = hg::Tensors;
using Kind = nn::SeparationKind;

Tensor normal64(hg::IntArrayRef shape, uint64_t seed, double scale = 1.0) {
  hg::Generator gen(seed);
  return hg::randn(shape, hg::TensorOptions(hg::kFloat64), &gen) * scale;
}

using hgtest::check_parameter_gradients;
using hgtest::randomize_parameters;

/// A tiny BITModel: 4 bits, 2 heads of width 3, β 0.7, the given separation; float64, eval mode (no dropout).
models::BITModel tiny_bit_model(const nn::SeparationOptions& separation, int64_t update_steps = 1,
                                int64_t num_pattern = 1) {
  models::BITModel model(models::BITModelOptions(4).pooling(models::PoolingOptions(4)
                                                                .num_heads(2)
                                                                .head_dim(3)
                                                                .update_steps(update_steps)
                                                                .scale(0.7)
                                                                .dropout(0.0)
                                                                .num_pattern(num_pattern)
                                                                .separation(separation)));
  model->to(hg::kFloat64);
  randomize_parameters(*model, 21);
  model->eval();
  return model;
}

/// BITModel written out with ops from its parameters (one update, softmax): the pooling of spec C.3 with
/// values W_v applied to the projected keys, then GELU and the read-out.
Tensor bit_model_reference(models::BITModelImpl& m, const Tensor& y, const Tensor& mask) {
  auto& core = *m.pooling->hopfield->association_core;
  const auto& p = m.options.pooling();
  const int64_t heads = p.num_heads(), dk = p.head_dim(), hd = heads * dk, batch = y.size(0);
  Tensor bq = core.in_proj_bias.narrow(0, 0, hd), bk = core.in_proj_bias.narrow(0, hd, hd),
         bv = core.in_proj_bias.narrow(0, 2 * hd, hd);
  Tensor r = m.pooling->pooling_weights.expand({batch, p.num_pattern(), p.d_model()});
  Tensor q = hg::linear(r, core.q_proj_weight, bq), k = hg::linear(y, core.k_proj_weight, bk);
  Tensor v = hg::linear(k, core.v_proj_weight, bv);
  Tensors heads_out;
  for (int64_t h = 0; h < heads; ++h) {
    Tensor qh = q.narrow(2, h * dk, dk), kh = k.narrow(2, h * dk, dk), vh = v.narrow(2, h * dk, dk);
    Tensor scores = hg::matmul(qh, kh.transpose(1, 2)) * p.scale();
    if (mask.defined()) scores = hg::where(mask.unsqueeze(1), hg::full_like(scores, -INFINITY), scores);
    heads_out.push_back(hg::matmul(hg::softmax(scores, -1), vh));
  }
  Tensor pooled = core.out_proj(hg::cat(heads_out, -1));
  return m.out(hg::gelu(pooled).flatten(1)).squeeze(1);
}

}  // namespace

// ---- BITModel ------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(bit_model_is_the_written_out_pooling) {
  models::BITModel model = tiny_bit_model({});
  model->to(device);
  Tensor y = normal64({3, 5, 4}, 31).to(device);
  std::vector<bool> pad(15, false);
  pad[3] = pad[4] = pad[9] = true;  // bag 0 has 3 instances, bag 1 four, bag 2 five
  Tensor mask = hg::from_vector(pad, {3, 5}).to(device);
  Tensor logits = model(y, mask);
  CHECK(logits.sizes() == hg::Shape{3});
  hgtest::check_close(logits, bit_model_reference(*model, y, mask), 1e-10, 1e-12, "BITModel vs written out");
  // Padding is absent: the padded rows may hold anything.
  Tensor y2 = y.clone();
  {
    hg::NoGradGuard no_grad;
    y2.narrow(1, 3, 2).narrow(0, 0, 1).fill_(100.0);
  }
  hgtest::check_close(model(y2, mask), logits, 1e-12, 1e-12, "padded instances change nothing");
  Tensor loss = hg::binary_cross_entropy_with_logits(logits, hg::from_vector(std::vector<double>{1, 0, 1}, {3},
                                                                             hg::kFloat64).to(device));
  loss.backward();
  return {logits, model->out->weight.grad(), model->pooling->pooling_weights.grad()};
}

TEST_CASE("BITModel: reference defaults, output shapes and query initialisation") {
  models::BITModel model;  // bit_pattern.py: d_model = bits, 8 heads of 8, 3 updates, β 0.25
  CHECK(model->pooling->hopfield->num_heads() == 8);
  CHECK(model->pooling->hopfield->head_dim() == 8);
  CHECK(model->pooling->hopfield->options.update_steps_max() == std::optional<int64_t>(2));
  CHECK(model->pooling->hopfield->options.scaling().values == std::vector<double>{0.25});
  CHECK_FALSE(model->pooling->hopfield->norm_stored_pattern);  // the reference's pooling has no LayerNorm
  Tensor bags = hg::randn({5, 7, 8});
  CHECK(model(bags).sizes() == hg::Shape{5});
  // N(0, 1) queries for the dense kinds, U[0, 1) for the NPH / Favor kinds (as torch.randn / torch.rand).
  models::BITModel wide(models::BITModelOptions(64).pooling(models::PoolingOptions(64).num_heads(4).num_pattern(8)));
  std::vector<float> r = wide->pooling->pooling_weights.to_vector<float>();
  CHECK(*std::min_element(r.begin(), r.end()) < -1.0f);
  CHECK(*std::max_element(r.begin(), r.end()) > 1.0f);
  models::BITModel topk(models::BITModelOptions(64).pooling(
      models::PoolingOptions(64).num_heads(4).num_pattern(8).separation(nn::SeparationOptions(Kind::TopK))));
  r = topk->pooling->pooling_weights.to_vector<float>();
  CHECK(*std::min_element(r.begin(), r.end()) >= 0.0f);
  CHECK(*std::max_element(r.begin(), r.end()) < 1.0f);
  CHECK(topk(hg::randn({5, 7, 64})).sizes() == hg::Shape{5});
}

TEST_CASE("BITModel gradchecks: inputs (non-contiguous) and parameters for several separations and LwPF") {
  std::vector<std::pair<const char*, nn::SeparationOptions>> cases = {
      {"softmax", nn::SeparationOptions()},
      {"sparsemax", nn::SeparationOptions(Kind::Sparsemax)},
      {"entmax15", nn::SeparationOptions(Kind::Entmax15)},
      {"top-K", nn::SeparationOptions(Kind::TopK).top_k(3)},
      {"linear", nn::SeparationOptions(Kind::Linear)},
      {"favor", nn::SeparationOptions(Kind::RandomFeatures).seed(3)},
      {"softmax + LwPF (PFU)", nn::SeparationOptions().forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU))},
  };
  for (const auto& [what, separation] : cases) {
    CAPTURE(what);
    models::BITModel model = tiny_bit_model(separation, /*update_steps=*/1, /*num_pattern=*/2);
    // [B, N, bits] made from a [N, B, bits] leaf: a non-contiguous input.
    Tensor y = normal64({5, 2, 4}, 41);
    hgtest::gradcheck([&](const Tensors& t) { return model(t[0].transpose(0, 1)); }, {y});
    Tensor fixed = normal64({2, 5, 4}, 42);
    check_parameter_gradients(*model, [&] { return model(fixed); });
  }
}

TEST_CASE("BITModel gradgradcheck: two updates") {
  models::BITModel model = tiny_bit_model({}, /*update_steps=*/2);
  model->pooling->hopfield->options.update_steps_eps(0.0);  // always take the second update
  hgtest::gradgradcheck([&](const Tensors& t) { return model(t[0]); }, {normal64({2, 4, 4}, 43)});
}

TEST_CASE("BITModel learns bit patterns: the training loss falls (fixed seed)") {
  hg::manual_seed(5);
  auto bits = hg::data::BitPatternSet(hg::data::BitPatternOptions(96, 8, 2).num_bits(4).seed_signals(7).seed_data(8));
  models::BITModel model(models::BITModelOptions(4).pooling(
      models::PoolingOptions(4).num_heads(2).head_dim(8).update_steps(1).scale(0.5).dropout(0.0)));
  hg::optim::AdamW optimizer(model->parameters(), hg::optim::AdamWOptions(3e-2));
  auto loss_now = [&] {
    return hg::binary_cross_entropy_with_logits(model(bits.bags()), bits.targets());
  };
  const double first = loss_now().item<float>();
  for (int step = 0; step < 150; ++step) {
    Tensor loss = loss_now();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  const double last = loss_now().item<float>();
  CHECK(std::isfinite(last));
  CHECK(last < 0.5 * first);
}

// ---- MNISTModel ----------------------------------------------------------------------------------------------

TEST_CASE("MNISTModel: shapes for every pooling kind, masks, gradchecks") {
  for (Kind kind : {Kind::Softmax, Kind::Sparsemax, Kind::TopK, Kind::RandomMask, Kind::Linear, Kind::ReluFeatures}) {
    CAPTURE(nn::to_string(kind));
    models::MNISTModel model;  // mnist_mil_main.py's defaults: d_model 256, 4 heads, 2 patterns
    model = models::MNISTModel(models::MNISTModelOptions().pooling(
        models::PoolingOptions(256).num_heads(4).scale(0.1).num_pattern(2).separation(nn::SeparationOptions(kind))));
    CHECK(model(hg::randn({3, 6, 1, 28, 28})).sizes() == hg::Shape{3});
    CHECK(model(hg::randn({2, 4, 784}), hg::zeros({2, 4}, hg::kBool)).sizes() == hg::Shape{2});
  }
  models::MNISTModel tiny(models::MNISTModelOptions().input_size(6).pooling(
      models::PoolingOptions(4).num_heads(2).scale(0.9).num_pattern(2).dropout(0.0)));
  tiny->to(hg::kFloat64);
  randomize_parameters(*tiny, 51);
  tiny->eval();
  Tensor mask = hg::from_vector(std::vector<bool>{false, false, true, false, false, false}, {2, 3});
  hgtest::gradcheck([&](const Tensors& t) { return tiny(t[0].transpose(0, 1).reshape({2, 3, 2, 3}), mask); },
                    {normal64({3, 2, 6}, 52)});
  Tensor fixed = normal64({2, 3, 6}, 53);
  check_parameter_gradients(*tiny, [&] { return tiny(fixed, mask); });
}

HG_BACKEND_TEST(mnist_model_padding_is_ignored) {
  models::MNISTModel model(models::MNISTModelOptions().input_size(6).pooling(
      models::PoolingOptions(4).num_heads(2).scale(0.9).num_pattern(2).dropout(0.0)));
  model->to(device, hg::kFloat64);
  randomize_parameters(*model, 61);
  model->eval();
  Tensor x = normal64({2, 4, 6}, 62).to(device);
  Tensor mask = hg::from_vector(std::vector<bool>{false, false, true, true, false, false, false, false}, {2, 4})
                    .to(device);
  Tensor logits = model(x, mask);
  // Bag 0 padded to 4 gives what its 2 real instances give alone.
  hgtest::check_close(logits.narrow(0, 0, 1), model(x.narrow(0, 0, 1).narrow(1, 0, 2)), 1e-10, 1e-12,
                      "padded bag vs unpadded");
  hg::sum(logits).backward();
  return {logits, model->embed->weight.grad()};
}

TEST_CASE("MNISTModel learns a planted instance: the training loss falls (fixed seed)") {
  hg::manual_seed(6);
  hg::Generator gen(7);
  // 64 bags of 5 random 12-wide instances; positive bags hold one instance shifted by +2 in its first 4 features.
  Tensor x = hg::randn({64, 5, 12}, hg::TensorOptions(hg::kFloat32), &gen);
  std::vector<float> labels(64);
  {
    hg::NoGradGuard no_grad;
    for (int64_t b = 0; b < 64; b += 2) {
      labels[static_cast<size_t>(b)] = 1;
      x.select(0, b).select(0, b % 5).narrow(0, 0, 4).add_(hg::full({4}, 2.0f));
    }
  }
  Tensor y = hg::from_vector(labels, {64});
  models::MNISTModel model(models::MNISTModelOptions().input_size(12).pooling(
      models::PoolingOptions(16).num_heads(2).scale(0.5).num_pattern(1).dropout(0.0)));
  hg::optim::AdamW optimizer(model->parameters(), hg::optim::AdamWOptions(3e-3));
  const double first = hg::binary_cross_entropy_with_logits(model(x), y).item<float>();
  for (int step = 0; step < 60; ++step) {
    Tensor loss = hg::binary_cross_entropy_with_logits(model(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  const double last = hg::binary_cross_entropy_with_logits(model(x), y).item<float>();
  CHECK(last < 0.5 * first);
}

// ---- the hflayers demo networks ------------------------------------------------------------------------------

TEST_CASE("BitPatternNet: the six demo networks, shapes, lookup initialisation, gradchecks") {
  for (auto kind : {models::BitNetKind::Hopfield, models::BitNetKind::HopfieldAdapted, models::BitNetKind::Pooling,
                    models::BitNetKind::PoolingAdapted, models::BitNetKind::Lookup,
                    models::BitNetKind::LookupAdapted}) {
    CAPTURE(models::to_string(kind));
    CHECK(models::bit_net_kind_from_string(models::to_string(kind)) == kind);
    models::BitPatternNet net(models::BitPatternNetOptions(kind).num_bits(4).num_instances(3).quantity(5));
    CHECK(net(hg::randn({2, 3, 4})).sizes() == hg::Shape{2});
    net->to(hg::kFloat64);
    randomize_parameters(*net, 71);
    net->eval();
    hgtest::gradcheck([&](const Tensors& t) { return net(t[0].transpose(0, 1)); }, {normal64({3, 2, 4}, 72)});
  }
  models::BitPatternNet lookup(
      models::BitPatternNetOptions(models::BitNetKind::LookupAdapted).num_bits(4).num_instances(3).quantity(2));
  Tensor patterns = hg::from_vector(std::vector<float>{1, 0, 1, 1, 0, 1, 0, 0}, {2, 4});
  lookup->init_lookup(patterns);
  hgtest::check_close(lookup->lookup->lookup_weights.squeeze(0), patterns, 0, 0, "lookup weights");
  CHECK_FALSE(lookup->lookup->target_weights.requires_grad());
  CHECK_THROWS_WITH_AS(lookup->init_lookup(hg::zeros({3, 4})), doctest::Contains("expected patterns [2, 4]"),
                       hg::Error);
}

TEST_CASE("nonparametric models: printing and errors") {
  models::BITModel bit;
  CHECK(fmt::format("{}", bit).find("BITModel(bits=8") != std::string::npos);
  CHECK_THROWS_WITH_AS(bit(hg::zeros({2, 3, 5})), doctest::Contains("BITModel: expected bags [B, N, 8]"), hg::Error);
  CHECK_THROWS_WITH_AS(bit(hg::zeros({2, 3, 8}), hg::zeros({2, 4}, hg::kBool)),
                       doctest::Contains("expected a bool padding mask [2, 3]"), hg::Error);
  models::MNISTModel mnist;
  CHECK_THROWS_WITH_AS(mnist(hg::zeros({2, 3, 1, 27, 28})), doctest::Contains("expected 784 values per instance"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(models::MNISTModel(models::MNISTModelOptions().pooling(models::PoolingOptions(10).num_heads(4))),
                       doctest::Contains("d_model 10 is not divisible by num_heads 4"), hg::Error);
  CHECK_THROWS_WITH_AS(models::bit_net_kind_from_string("hopfeld"),
                       doctest::Contains("unknown network 'hopfeld'; expected one of hopfield,"), hg::Error);
  models::BitPatternNet net(models::BitPatternNetOptions(models::BitNetKind::Hopfield));
  CHECK_THROWS_WITH_AS(net(hg::zeros({2, 5, 8})), doctest::Contains("expected bags [B, 16, 8]"), hg::Error);
  CHECK_THROWS_WITH_AS(net->init_lookup(hg::zeros({64, 8})), doctest::Contains("init_lookup needs a lookup network"),
                       hg::Error);
}

TEST_CASE("nonparametric pooling: attention dropout for the dense kinds only (top-K and window are the reference's NPHPooling)") {
  // spec C.4: softmax → HopfieldPooling(dropout = prob); topk / rand → NPHPooling(rand_prob = prob), whose core has
  // no dropout. In training, a top-K or window pooling with dropout 0.5 asked for is therefore deterministic; a
  // softmax pooling is not.
  Tensor x = normal64({2, 5, 6}, 71).to(hg::kFloat32);
  auto run_twice = [&](nn::SeparationOptions separation) {
    models::MNISTModel model(models::MNISTModelOptions().input_size(6).pooling(
        models::PoolingOptions(8).num_heads(2).scale(0.5).num_pattern(2).dropout(0.5).separation(separation)));
    model->train();
    return std::pair{model(x), model(x)};
  };
  for (nn::SeparationOptions s : {nn::SeparationOptions(nn::SeparationKind::TopK).top_fraction(0.5),
                                  nn::SeparationOptions(nn::SeparationKind::Window).window(1)}) {
    CAPTURE(std::string(nn::to_string(s.kind())));
    auto [a, b] = run_twice(s);
    CHECK(hg::allclose(a, b, 0, 0));
  }
  auto [a, b] = run_twice(nn::SeparationOptions(nn::SeparationKind::Softmax));
  CHECK_FALSE(hg::allclose(a, b, 0, 0));
}
