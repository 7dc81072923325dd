// nn layers: each layer's forward against PyTorch with copied weights (tests/fixtures/nn_*.txt, written by
// scripts/make_nn_fixtures.py), MultiheadAttention's outputs, weights and every gradient, gradchecks through small
// modules, PyTorch's default initialisation, and errors that name the module and the shapes.
#include <cmath>
#include <string>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;

namespace {

// float64 against PyTorch's float64: only summation order and libm rounding may differ.
constexpr double kRtol = 1e-10, kAtol = 1e-12;

/// Moves `module` to float64 on `device` and copies `<case>.<name>` into each of its parameters; the fixture
/// must hold exactly the module's parameters (so hopgrad's names are PyTorch's).
void load_parameters(nn::Module& module, const hgtest::Fixture& fixture, const std::string& prefix,
                     hg::Device device) {
  module.to(device, hg::kFloat64);
  size_t stored = 0;
  for (const auto& name : fixture.names())
    if (name.starts_with(prefix + ".") && name != prefix + ".x" && name != prefix + ".y" &&
        name.find(".query") == std::string::npos && name.find(".key") == std::string::npos &&
        name.find(".value") == std::string::npos && name.find("mask") == std::string::npos &&
        name != prefix + ".grad_out" && name != prefix + ".out" && name != prefix + ".weights")
      ++stored;
  auto params = module.named_parameters();
  CHECK_MESSAGE(params.size() == stored, prefix, ": the module has ", params.size(), " parameters, PyTorch ", stored);
  hg::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    REQUIRE_MESSAGE(fixture.contains(prefix + "." + name), "no PyTorch parameter named ", name);
    p.copy_(fixture.tensor(prefix + "." + name));
  }
}

/// y = module(x) with the fixture's x; checks y against PyTorch and returns it.
template <typename Holder>
Tensor check_layer(Holder module, const hgtest::Fixture& fixture, const std::string& prefix, hg::Device device) {
  load_parameters(*module, fixture, prefix, device);
  Tensor y = module(fixture.tensor(prefix + ".x").to(device));
  hgtest::check_close(y, fixture.tensor(prefix + ".y"), kRtol, kAtol, prefix);
  return y;
}

}  // namespace

HG_BACKEND_TEST(nn_layers_match_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_layers");
  hg::Tensors outputs;
  outputs.push_back(check_layer(nn::Linear(5, 3), fixture, "linear", device));
  outputs.push_back(check_layer(nn::Linear(nn::LinearOptions(5, 3).bias(false)), fixture, "linear_nobias", device));
  outputs.push_back(check_layer(nn::LayerNorm(nn::LayerNormOptions({6})), fixture, "layer_norm", device));
  outputs.push_back(
      check_layer(nn::LayerNorm(nn::LayerNormOptions({3, 4}).eps(1e-3)), fixture, "layer_norm2", device));
  outputs.push_back(
      check_layer(nn::Embedding(nn::EmbeddingOptions(7, 4).padding_idx(2)), fixture, "embedding", device));
  outputs.push_back(check_layer(nn::ReLU(), fixture, "relu", device));
  outputs.push_back(check_layer(nn::GELU(), fixture, "gelu", device));
  outputs.push_back(check_layer(nn::GELU(nn::GELUOptions().approximate("tanh")), fixture, "gelu_tanh", device));
  outputs.push_back(check_layer(nn::SELU(), fixture, "selu", device));
  outputs.push_back(check_layer(nn::ELU(nn::ELUOptions().alpha(0.5)), fixture, "elu", device));
  outputs.push_back(check_layer(nn::Tanh(), fixture, "tanh", device));
  outputs.push_back(check_layer(nn::Sigmoid(), fixture, "sigmoid", device));
  outputs.push_back(check_layer(nn::Flatten(), fixture, "flatten", device));
  outputs.push_back(
      check_layer(nn::Flatten(nn::FlattenOptions().start_dim(1).end_dim(2)), fixture, "flatten_1_2", device));
  CHECK(outputs.back().sizes() == hg::Shape{2, 6, 2});
  return outputs;
}

// ---- MultiheadAttention ------------------------------------------------------------------------------

namespace {

/// Runs fixture case `prefix` through `attention`: checks out, weights and the gradient of Σ grad_out ⊙ out with
/// respect to each input and parameter against PyTorch; returns them all.
hg::Tensors check_attention(nn::MultiheadAttention attention, const hgtest::Fixture& fixture, const std::string& prefix,
                        hg::Device device, bool self_attention, bool average_weights = true) {
  load_parameters(*attention, fixture, prefix, device);
  auto input = [&](const std::string& name) {
    std::string key = prefix + "." + name;
    return fixture.contains(key) ? fixture.tensor(key).to(device) : Tensor();
  };
  Tensor query = input("query").requires_grad_();
  Tensor key = self_attention ? query : input("key").requires_grad_();
  Tensor value = self_attention ? query : input("value").requires_grad_();
  auto [out, weights] = attention(query, key, value, input("key_padding_mask"), true, input("attn_mask"),
                                  average_weights);
  hgtest::check_close(out, fixture.tensor(prefix + ".out"), kRtol, kAtol, prefix + " out");
  hgtest::check_close(weights, fixture.tensor(prefix + ".weights"), kRtol, kAtol, prefix + " weights");
  out.backward(input("grad_out"));

  hg::Tensors results{out, weights};
  auto check_grad = [&](const std::string& name, const Tensor& leaf) {
    hgtest::check_close(leaf.grad(), fixture.tensor("d" + prefix + ".out/" + prefix + "." + name), 1e-9, 1e-11,
                        prefix + " d/d" + name);
    results.push_back(leaf.grad());
  };
  check_grad("query", query);
  if (!self_attention) {
    check_grad("key", key);
    check_grad("value", value);
  }
  for (const auto& [name, p] : attention->named_parameters()) check_grad(name, p);
  return results;
}

}  // namespace

HG_BACKEND_TEST(multihead_attention_self_masks_matches_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_attention");
  return check_attention(nn::MultiheadAttention(6, 2), fixture, "self", device, /*self_attention=*/true);
}

HG_BACKEND_TEST(multihead_attention_cross_batch_first_kdim_vdim_matches_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_attention");
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(6, 3).kdim(5).vdim(3).batch_first(true));
  return check_attention(attention, fixture, "cross", device, false, /*average_weights=*/false);
}

HG_BACKEND_TEST(multihead_attention_unbatched_bias_kv_zero_attn_matches_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_attention");
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(6, 2).add_bias_kv(true).add_zero_attn(true));
  return check_attention(attention, fixture, "extra", device, false);
}

TEST_CASE("multihead attention: need_weights=false, fully masked queries, dropout in training only") {
  hg::manual_seed(3);
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(4, 2).dropout(0.5).batch_first(true));
  attention->to(hg::kFloat64);
  Tensor x = hgtest::uniform({2, 3, 4});
  attention->eval();
  auto [out, weights] = attention(x, x, x, Tensor(), /*need_weights=*/false);
  CHECK(out.sizes() == hg::Shape{2, 3, 4});
  CHECK_FALSE(weights.defined());
  // evaluation: no dropout, weights are a distribution over keys. Without weights the fused attention kernel runs,
  // with them the composite: the same values up to the order of the sums.
  auto [out_eval, weights_eval] = attention(x, x, x);
  hgtest::check_close(out_eval, out, 1e-14, 1e-15);
  hgtest::check_close(hg::sum(weights_eval, {-1}), hg::ones({2, 3}, hg::kFloat64));
  // training: dropout zeroes some weights and rescales the rest by 1 / (1 − p)
  attention->train();
  auto [out_train, weights_train] = attention(x, x, x, Tensor(), true, Tensor(), false);
  CHECK(weights_train.sizes() == hg::Shape{2, 2, 3, 3});
  CHECK(hg::eq(weights_train, 0.0).sum().item<int64_t>() > 0);
  // a query whose keys are all masked gets zero weights (hg::softmax's rule; PyTorch gives NaN)
  attention->eval();
  Tensor all_masked = hg::ones({2, 3}, hg::kBool);
  auto [out_masked, weights_masked] = attention(x, x, x, all_masked);
  CHECK(hg::max_abs_diff(weights_masked, hg::zeros({2, 3, 3}, hg::kFloat64)) == 0.0);
  // then the output is out_proj's bias (zero by default)
  hgtest::check_close(out_masked, hg::zeros({2, 3, 4}, hg::kFloat64));
}

TEST_CASE("multihead attention: gradcheck of query, key and value with masks, non-contiguous inputs") {
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(4, 2).kdim(3));
  attention->to(hg::kFloat64);
  Tensor padding = hg::from_vector<bool>({false, true, false, false, false, true}, {2, 3});
  Tensor causal = hg::from_vector<double>({0, -1e9, -1e9, 0, 0, -1e9}, {2, 3}).to(hg::kFloat64);
  hgtest::gradcheck(
      [&](const hg::Tensors& t) {
        // query [L=2, N=2, E=4] given transposed; key [S=3, N=2, 3]; value [S, N, 4]
        return std::get<0>(attention(t[0].transpose(0, 1), t[1], t[2], padding, false, causal));
      },
      {hgtest::uniform({2, 2, 4}, -1, 1, 1), hgtest::uniform({3, 2, 3}, -1, 1, 2), hgtest::uniform({3, 2, 4}, -1, 1, 3)});
  hgtest::gradcheck(
      [&](const hg::Tensors& t) { return std::get<1>(attention(t[0], t[1], t[2], padding)); },
      {hgtest::uniform({2, 2, 4}, -1, 1, 4), hgtest::uniform({3, 2, 3}, -1, 1, 5), hgtest::uniform({3, 2, 4}, -1, 1, 6)});
}

TEST_CASE("multihead attention: errors name the module and the shapes") {
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(4, 2).batch_first(true));
  Tensor x = hg::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(attention(hg::zeros({2, 3, 5}), x, x),
                       doctest::Contains("MultiheadAttention(embed_dim=4, num_heads=2): expected query, key and value "
                                         "[N, L, E] with E = 4, 4, 4; got query float32[2, 3, 5]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, hg::zeros({3, 3, 4}), hg::zeros({3, 3, 4})),
                       doctest::Contains("must share the batch size"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, hg::zeros({2, 4, 4})), doctest::Contains("must share the batch size"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, x, hg::zeros({2, 3})),
                       doctest::Contains("expected a bool key_padding_mask [2, 3] (true = ignore that key), got "
                                         "float32[2, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, x, hg::zeros({2, 4}, hg::kBool)), doctest::Contains("key_padding_mask"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, x, Tensor(), true, hg::zeros({3, 4}, hg::kBool)),
                       doctest::Contains("expected a 2-D attn_mask [3, 3] (L, S), got bool[3, 4]"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, x, Tensor(), true, hg::zeros({2, 3, 3}, hg::kBool)),
                       doctest::Contains("expected attn_mask [3, 3] or [4, 3, 3] (N·num_heads, L, S), got bool[2, 3, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, x, Tensor(), true, hg::zeros({3, 3}, hg::kInt64)),
                       doctest::Contains("attn_mask must be bool"), hg::Error);
  CHECK_THROWS_WITH_AS(attention(x, x, hg::zeros({2, 3})), doctest::Contains("all 3-D (batched) or all 2-D"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::MultiheadAttention(6, 4), doctest::Contains("embed_dim (6) must be positive and divisible "
                                                                       "by num_heads (4)"),
                       hg::Error);
}

// ---- gradchecks through small modules --------------------------------------------------------------------

TEST_CASE("gradcheck through small modules (non-contiguous and broadcast inputs)") {
  hg::manual_seed(11);
  nn::Sequential mlp(nn::Linear(3, 4), nn::GELU(), nn::LayerNorm(nn::LayerNormOptions({4})), nn::Linear(4, 2),
                     nn::Tanh());
  mlp->to(hg::kFloat64);
  hgtest::gradcheck([&](const hg::Tensors& t) { return mlp(t[0].transpose(0, 1)); }, {hgtest::uniform({3, 5})});
  hgtest::gradcheck([&](const hg::Tensors& t) { return mlp(t[0].expand({2, 4, 3})); }, {hgtest::uniform({4, 3})});
  hgtest::gradgradcheck([&](const hg::Tensors& t) { return mlp(t[0]); }, {hgtest::uniform({2, 3})});

  // the padding row of an Embedding gets no gradient; the others get the sum of their lookups' gradients
  nn::Embedding embedding(nn::EmbeddingOptions(4, 2).padding_idx(-1));
  embedding->to(hg::kFloat64);
  Tensor ids = hg::from_vector<int64_t>({3, 1, 3, 1, 0}, {5});
  embedding(ids).sum().backward();
  hgtest::check_close(embedding->weight.grad(),
                      hg::from_vector<double>({1, 1, 2, 2, 0, 0, 0, 0}, {4, 2}), 0, 0, "embedding grad");
  CHECK(embedding->options.padding_idx() == 3);
}

// ---- default initialisation, as PyTorch's reset_parameters --------------------------------------------

TEST_CASE("layers start with PyTorch's default initialisation") {
  hg::manual_seed(5);
  auto max_abs = [](const Tensor& t) { return hg::abs(t).max().item<double>(); };
  auto stddev = [](const Tensor& t) { return hg::std(t.to(hg::kFloat64)).item<double>(); };

  nn::Linear linear(64, 128);  // U(±1/√64)
  double bound = 1.0 / 8.0;
  CHECK(max_abs(linear->weight) <= bound);
  CHECK(max_abs(linear->weight) > 0.95 * bound);
  CHECK(stddev(linear->weight) == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.03));
  CHECK(max_abs(linear->bias) <= bound);
  CHECK(linear->weight.requires_grad());
  CHECK(linear->weight.is_leaf());

  nn::Embedding embedding(nn::EmbeddingOptions(200, 50).padding_idx(7));  // N(0, 1), padding row 0
  CHECK(stddev(embedding->weight) == doctest::Approx(1.0).epsilon(0.05));
  CHECK(max_abs(embedding->weight.select(0, 7)) == 0.0);

  nn::LayerNorm norm(nn::LayerNormOptions({3, 4}));
  CHECK(hg::allclose(norm->weight, hg::ones({3, 4})));
  CHECK(hg::allclose(norm->bias, hg::zeros({3, 4})));
  CHECK_FALSE(nn::LayerNorm(nn::LayerNormOptions({4}).elementwise_affine(false))->weight.defined());

  nn::MultiheadAttention attention(32, 4);  // xavier_uniform in_proj: U(±√(6 / (32 + 96)))
  double xavier = std::sqrt(6.0 / 128.0);
  CHECK(max_abs(attention->in_proj_weight) <= xavier);
  CHECK(max_abs(attention->in_proj_weight) > 0.95 * xavier);
  CHECK(max_abs(attention->in_proj_bias) == 0.0);
  CHECK(max_abs(attention->out_proj->bias) == 0.0);
  CHECK(max_abs(attention->out_proj->weight) <= 1.0 / std::sqrt(32.0));
  auto names = attention->named_parameters();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "in_proj_weight");
  CHECK(names[1].first == "in_proj_bias");
  CHECK(names[2].first == "out_proj.weight");
  CHECK(names[3].first == "out_proj.bias");
}

// ---- bad input -------------------------------------------------------------------------------------------

TEST_CASE("layers: errors name the module and the shapes") {
  nn::Linear linear(4, 2);
  CHECK_THROWS_WITH_AS(linear(hg::zeros({3, 5})),
                       doctest::Contains("Linear(in_features=4, out_features=2): expected input [..., 4], got "
                                         "float32[3, 5] cpu"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(linear(hg::zeros({})), doctest::Contains("expected input [..., 4]"), hg::Error);
  nn::LayerNorm norm(nn::LayerNormOptions({3, 4}));
  CHECK_THROWS_WITH_AS(norm(hg::zeros({2, 4, 3})),
                       doctest::Contains("LayerNorm(normalized_shape=[3, 4]): expected input [..., 3, 4], got "
                                         "float32[2, 4, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::LayerNorm(nn::LayerNormOptions({0})), doctest::Contains("must be positive"), hg::Error);
  nn::Embedding embedding(5, 2);
  CHECK_THROWS_WITH_AS(embedding(hg::zeros({3})),
                       doctest::Contains("Embedding(5, 2): expected int64 indices, got float32[3]"), hg::Error);
  CHECK_THROWS_WITH_AS(embedding(hg::from_vector<int64_t>({1, 5}, {2})), doctest::Contains("embedding"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Embedding(nn::EmbeddingOptions(5, 2).padding_idx(5)),
                       doctest::Contains("padding_idx 5 is out of range for 5 embeddings"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Dropout(1.5), doctest::Contains("Dropout: p must be in [0, 1], got 1.5"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::GELU(nn::GELUOptions().approximate("fast")),
                       doctest::Contains("GELU: approximate must be \"none\" or \"tanh\", got \"fast\""), hg::Error);
  CHECK_THROWS_WITH_AS(nn::ExpandingArray<2>({1, 2, 3}), doctest::Contains("expected 2 values, got 3"), hg::Error);
}

TEST_CASE("dropout module: identity in evaluation, inverted dropout in training") {
  nn::Dropout dropout(nn::DropoutOptions(0.25));
  Tensor x = hg::ones({1000}, hg::kFloat64);
  hg::Generator gen(9);
  Tensor y = dropout(x, &gen);
  auto kept = hg::ne(y, 0.0).sum().item<int64_t>();
  CHECK(kept > 690);
  CHECK(kept < 810);
  CHECK(hg::max_abs_diff(hg::where(hg::ne(y, 0.0), y, 4.0 / 3.0), hg::full({1000}, 4.0 / 3.0, hg::kFloat64)) < 1e-15);
  dropout->eval();
  hgtest::check_close(dropout(x), x, 0, 0);
}

// ---- convolution and pooling layers ----------------------------------------------------------------------

HG_BACKEND_TEST(nn_conv_pool_layers_match_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_layers");
  hg::Tensors outputs;
  outputs.push_back(check_layer(nn::Conv1d(nn::Conv1dOptions(4, 6, 3).stride(2).padding(1).dilation(2)), fixture,
                                "conv1d", device));
  outputs.push_back(check_layer(nn::Conv2d(nn::Conv2dOptions(4, 6, {3, 2}).stride({2, 1}).padding({1, 0}).groups(2)),
                                fixture, "conv2d", device));
  outputs.push_back(
      check_layer(nn::MaxPool1d(nn::MaxPool1dOptions(3).stride(2).padding(1)), fixture, "max_pool1d", device));
  outputs.push_back(check_layer(nn::MaxPool2d(nn::MaxPool2dOptions({2, 3}).stride(2).padding(1)), fixture,
                                "max_pool2d", device));
  return outputs;
}

TEST_CASE("conv and pooling modules: gradcheck, default initialisation, printing, errors") {
  hg::manual_seed(13);
  nn::Sequential conv1(nn::Conv1d(nn::Conv1dOptions(2, 3, 3).padding(1)), nn::ELU(), nn::MaxPool1d(2), nn::Flatten(),
                      nn::Sigmoid());
  conv1->to(hg::kFloat64);
  hgtest::gradcheck([&](const hg::Tensors& t) { return conv1(t[0].transpose(1, 2)); }, {hgtest::uniform({2, 6, 2})});

  nn::Sequential conv2(nn::Conv2d(nn::Conv2dOptions(2, 2, 2).groups(2)), nn::SELU(), nn::MaxPool2d(2), nn::ReLU());
  conv2->to(hg::kFloat64);
  hgtest::gradcheck([&](const hg::Tensors& t) { return conv2(t[0]); }, {hgtest::uniform({1, 2, 5, 5}, 0.1, 1.0)});

  auto max_abs = [](const Tensor& t) { return hg::abs(t).max().item<double>(); };
  auto stddev = [](const Tensor& t) { return hg::std(t.to(hg::kFloat64)).item<double>(); };
  nn::Conv2d conv(nn::Conv2dOptions(8, 16, 3).groups(2));  // fan_in = 8/2 · 3 · 3 = 36
  CHECK(conv->weight.sizes() == hg::Shape{16, 4, 3, 3});
  CHECK(max_abs(conv->weight) <= 1.0 / 6.0);
  CHECK(stddev(conv->weight) == doctest::Approx(1.0 / 6.0 / std::sqrt(3.0)).epsilon(0.05));
  CHECK(max_abs(conv->bias) <= 1.0 / 6.0);

  CHECK(fmt::format("{}", *nn::Conv2d(nn::Conv2dOptions(3, 8, {3, 5}).stride(2).padding({1, 2}).bias(false))) ==
        "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), bias=false)");
  CHECK(fmt::format("{}", nn::Conv1d(nn::Conv1dOptions(2, 4, 3).dilation(2).groups(2))) ==
        "Conv1d(2, 4, kernel_size=(3), stride=(1), dilation=(2), groups=2)");
  CHECK(fmt::format("{}", nn::MaxPool2d(nn::MaxPool2dOptions(2))) ==
        "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");

  nn::Conv1d conv3(4, 8, 3);
  CHECK_THROWS_WITH_AS(conv3(hg::zeros({2, 3, 10})),
                       doctest::Contains("Conv1d(4, 8, kernel_size=(3)): expected input [N, 4, L] or [4, L], got "
                                         "float32[2, 3, 10]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::Conv2d(4, 8, 3)(hg::zeros({4, 5})), doctest::Contains("expected input [N, 4, H, W]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(4, 6, 3).groups(4)),
                       doctest::Contains("groups=4 must be positive and divide in_channels=4 and out_channels=6"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::Conv1d(nn::Conv1dOptions(4, 6, 0)), doctest::Contains("expected positive kernel_size"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::MaxPool2d(nn::MaxPool2dOptions(3))(hg::zeros({1, 1, 2, 2})),
                       doctest::Contains("kernel_size"), hg::Error);
}
