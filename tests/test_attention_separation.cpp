// MultiheadAttention with the separation functions of the Hopfield family (MultiheadAttentionOptions::separation):
// the default keeps PyTorch's behaviour and state-dict keys (the PyTorch fixture tests are in test_nn_layers.cpp),
// every other kind equals a hand-written per-head reference built from the module's own projections, LwPF
// weights sum to less than one, sparsemax weights are sparse distributions, linear attention is the kernel
// formula, train()/eval() reach an unregistered separation, and the errors name the module.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool all(const Tensor& t) { return hg::logical_not(t).sum().item<int64_t>() == 0; }

nn::MultiheadAttention make_attention(int64_t embed_dim, int64_t heads, const nn::SeparationOptions& separation,
                                      hg::Device device = hg::kCPU) {
  hg::manual_seed(17);
  nn::MultiheadAttention attention(
      nn::MultiheadAttentionOptions(embed_dim, heads).batch_first(true).separation(separation));
  attention->to(device, hg::kFloat64);
  attention->eval();
  return attention;
}

struct Heads {
  Tensor q, k, v;  ///< [N, h, L or S, d], q not yet scaled
};

/// The module's own in-projection of self-attention input x [N, L, E], split into heads.
Heads project(nn::MultiheadAttention& attention, const Tensor& x) {
  const int64_t n = x.size(0), len = x.size(1), e = attention->options.embed_dim(), h = attention->options.num_heads();
  hg::Tensors qkv = hg::chunk(hg::linear(x, attention->in_proj_weight, attention->in_proj_bias), 3, -1);
  auto split = [&](const Tensor& t) { return t.reshape({n, len, h, e / h}).permute({0, 2, 1, 3}); };
  return {split(qkv[0]), split(qkv[1]), split(qkv[2])};
}

/// out_proj(concat of heads [N, h, L, d]) → [N, L, E]
Tensor merge(nn::MultiheadAttention& attention, const Tensor& heads) {
  return attention->out_proj(heads.permute({0, 2, 1, 3}).reshape({heads.size(0), heads.size(2), -1}));
}

/// Self-attention by hand with `weights_of(scores [N, h, L, S] with padded keys at −∞)`: returns (out, weights).
std::pair<Tensor, Tensor> reference_attention(nn::MultiheadAttention& attention, const Tensor& x, const Tensor& padding,
                                              const std::function<Tensor(const Tensor&)>& weights_of) {
  Heads p = project(attention, x);
  const double beta = 1.0 / std::sqrt(static_cast<double>(p.q.size(-1)));
  Tensor scores = hg::matmul(p.q * beta, p.k.transpose(-2, -1));
  if (padding.defined()) scores = hg::masked_fill(scores, padding.reshape({x.size(0), 1, 1, x.size(1)}), -kInf);
  Tensor weights = weights_of(scores);
  return {merge(attention, hg::matmul(weights, p.v)), weights};
}

Tensor padding_mask() {  // [N = 2, S = 5]: key 3 of batch 1 is padding
  return hg::from_vector<bool>({false, false, false, false, false, false, false, false, true, false}, {2, 5});
}

}  // namespace

TEST_CASE("multihead attention: the default separation is softmax, unregistered, with PyTorch's state-dict keys") {
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(8, 2));
  CHECK(attention->separation->options.kind() == nn::SeparationKind::Softmax);
  std::vector<std::string> names;
  for (const auto& [name, p] : attention->named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  CHECK(attention->named_buffers().empty());
  CHECK(attention->named_children().size() == 1);  // out_proj only
  CHECK(hg::nn::to_string(*attention).starts_with("MultiheadAttention(\n  (out_proj): Linear"));

  // the result equals the plain softmax attention written out by hand, bit for bit
  attention->to(hg::kFloat64);
  Tensor x = hgtest::uniform({5, 2, 8}, -1, 1, 3);
  auto [out, weights] = attention(x, x, x, padding_mask(), true, Tensor(), false);
  auto [expected_out, expected_weights] = reference_attention(attention, x.transpose(0, 1), padding_mask(),
                                                              [](const Tensor& s) { return hg::softmax(s, -1); });
  hgtest::check_close(weights, expected_weights, 0, 0);
  hgtest::check_close(out, expected_out.transpose(0, 1), 0, 0);
}

TEST_CASE("multihead attention with LwPF: softmax(D(scores)) ⊙ D′ per head, weights summing to less than one") {
  auto forgetting = nn::ForgettingOptions(nn::ForgettingKind::PFU).sigma(1.0);
  nn::MultiheadAttention attention = make_attention(8, 2, nn::SeparationOptions().forgetting(forgetting));
  CHECK(attention->named_parameters().size() == 4);
  CHECK(hg::nn::to_string(*attention).starts_with(
      "MultiheadAttention(separation=Separation(softmax, forgetting=PFU(threshold=global median, bias=threshold, "
      "sigma=1)))"));

  Tensor x = hgtest::uniform({2, 5, 8}, -2, 2, 5);
  auto [out, weights] = attention(x, x, x, padding_mask(), true, Tensor(), /*average_attn_weights=*/false);
  auto [expected_out, expected_weights] = reference_attention(attention, x, padding_mask(), [&](const Tensor& s) {
    nn::Forgetting f = nn::forget(s, forgetting, /*training=*/false);  // the global median of [N, h, L, S]
    return hg::softmax(f.value, -1) * f.keep;
  });
  hgtest::check_close(weights, expected_weights, 1e-14, 1e-15);
  hgtest::check_close(out, expected_out, 1e-13, 1e-14);
  Tensor sums = hg::sum(weights, {-1});
  CHECK(all(hg::lt(sums, 1.0)));
  CHECK(all(hg::gt(sums, 0.0)));
  // 100 scores, 10 of them padding: the lower median of the 90 finite ones and the 44 below it are forgotten
  CHECK(hg::eq(weights, 0.0).sum().item<int64_t>() == 45 + 10);

  // eval is deterministic; train() reaches the (unregistered) separation, whose threshold noise then varies
  auto [again, unused] = attention(x, x, x, padding_mask(), false);
  hgtest::check_close(again, out, 0, 0);
  CHECK_FALSE(attention->separation->is_training());
  attention->train();
  CHECK(attention->separation->is_training());
  Tensor noisy1 = std::get<0>(attention(x, x, x, padding_mask(), false));
  Tensor noisy2 = std::get<0>(attention(x, x, x, padding_mask(), false));
  CHECK(hg::max_abs_diff(noisy1, noisy2) > 0.0);
  attention->eval();
  CHECK_FALSE(attention->separation->is_training());

  // gradients through the projections, the median element and the kept scores
  hgtest::gradcheck(
      [&](const hg::Tensors& t) {
        Tensor input = t[0].transpose(0, 1);  // [N, L, E] from a [L, N, E] leaf: non-contiguous
        return std::get<0>(attention(input, input, input, padding_mask(), false));
      },
      {hgtest::uniform({5, 2, 8}, -2, 2, 6)});
}

TEST_CASE("multihead attention with sparsemax: sparse distributions equal to the per-head reference") {
  nn::MultiheadAttention attention = make_attention(8, 2, nn::SeparationOptions(nn::SeparationKind::Sparsemax));
  Tensor x = hgtest::uniform({2, 5, 8}, -3, 3, 11);
  auto [out, weights] = attention(x, x, x, padding_mask(), true, Tensor(), false);
  hgtest::check_close(hg::sum(weights, {-1}), hg::ones({2, 2, 5}, hg::kFloat64), 1e-14, 1e-14);
  CHECK(all(hg::ge(weights, 0.0)));
  CHECK(hg::eq(weights, 0.0).sum().item<int64_t>() > 10 + 20);  // beyond the padding, most rows are sparse
  auto [expected_out, expected_weights] =
      reference_attention(attention, x, padding_mask(), [](const Tensor& s) { return hg::sparsemax(s, -1); });
  hgtest::check_close(weights, expected_weights, 1e-14, 1e-15);
  hgtest::check_close(out, expected_out, 1e-13, 1e-14);
}

TEST_CASE("multihead attention with linear attention equals the O(L·S) kernel formula") {
  nn::MultiheadAttention attention = make_attention(8, 2, nn::SeparationOptions(nn::SeparationKind::Linear));
  Tensor x = hgtest::uniform({2, 5, 8}, -2, 2, 13);
  // φ = elu + 1 on q and k (β does not enter), A = φ(q) φ(k)ᵀ with padded keys zeroed, out = A v / (A 1 + 1e-6)
  Heads p = project(attention, x);
  auto phi = [](const Tensor& t) { return hg::elu(t) + 1.0; };
  Tensor kernel = hg::masked_fill(hg::matmul(phi(p.q), phi(p.k).transpose(-2, -1)),
                                  padding_mask().reshape({2, 1, 1, 5}), 0.0);
  Tensor expected_weights = kernel / (hg::sum(kernel, {-1}, true) + 1e-6);
  Tensor expected_out = merge(attention, hg::matmul(expected_weights, p.v));

  // need_weights = false: the O(L + S)-memory path
  Tensor out = std::get<0>(attention(x, x, x, padding_mask(), false));
  hgtest::check_close(out, expected_out, 1e-12, 1e-13);
  auto [out_with_weights, weights] = attention(x, x, x, padding_mask(), true, Tensor(), false);
  hgtest::check_close(out_with_weights, expected_out, 1e-12, 1e-13);
  hgtest::check_close(weights, expected_weights, 1e-12, 1e-13);
  hgtest::gradcheck(
      [&](const hg::Tensors& t) { return std::get<0>(attention(t[0], t[0], t[0], padding_mask(), false)); },
      {hgtest::uniform({2, 5, 8}, -2, 2, 14)});
}

TEST_CASE("multihead attention with top-K: each query keeps exactly K keys") {
  nn::MultiheadAttention attention = make_attention(8, 2, nn::SeparationOptions(nn::SeparationKind::TopK).top_k(2));
  Tensor x = hgtest::uniform({2, 5, 8}, -2, 2, 7);
  auto [out, weights] = attention(x, x, x, Tensor(), true, Tensor(), false);
  CHECK(all(hg::eq(hg::sum(hg::gt(weights, 0.0), {-1}), 2)));
  hgtest::check_close(hg::sum(weights, {-1}), hg::ones({2, 2, 5}, hg::kFloat64), 1e-14, 1e-14);
  auto [expected_out, expected_weights] = reference_attention(attention, x, Tensor(), [](const Tensor& s) {
    Tensor kth = std::get<0>(hg::topk(s, 2, -1)).narrow(-1, 1, 1);
    return hg::softmax(hg::masked_fill(s, hg::lt(s, kth), -kInf), -1);
  });
  hgtest::check_close(weights, expected_weights, 1e-14, 1e-15);
  hgtest::check_close(out, expected_out, 1e-13, 1e-14);
}

TEST_CASE("multihead attention: a separation with state is a registered submodule") {
  SUBCASE("learnable alpha") {
    nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(8, 2).separation(
        nn::SeparationOptions(nn::SeparationKind::AlphaEntmax).learnable_alpha(true).alpha(1.3)));
    auto params = attention->named_parameters();
    REQUIRE(params.size() == 5);
    CHECK(params.back().first == "separation.alpha");
    CHECK(params.back().second.item<double>() == doctest::Approx(1.3));
  }
  SUBCASE("random features: the projection is a buffer over one head's width") {
    nn::MultiheadAttention attention(
        nn::MultiheadAttentionOptions(12, 3).separation(nn::SeparationOptions(nn::SeparationKind::RandomFeatures)));
    auto buffers = attention->named_buffers();
    REQUIRE(buffers.size() == 1);
    CHECK(buffers[0].first == "separation.projection");
    CHECK(buffers[0].second.size(1) == 4);  // head dim
    CHECK(attention->named_parameters().size() == 4);
    attention->to(hg::kFloat64);
    CHECK(attention->separation->projection.dtype() == hg::kFloat64);
    CHECK(hg::nn::to_string(*attention).find("(separation): Separation(favor") != std::string::npos);
    attention->eval();
    CHECK_FALSE(attention->separation->is_training());
  }
}

TEST_CASE("multihead attention: separation errors name the module") {
  CHECK_THROWS_WITH_AS(
      nn::MultiheadAttention(nn::MultiheadAttentionOptions(8, 2).separation(
          nn::SeparationOptions(nn::SeparationKind::ReluFeatures).feature_dim(8))),
      doctest::Contains("MultiheadAttention(embed_dim=8, num_heads=2): separation relu_features projects one head's "
                        "queries and keys, so its feature_dim must be the head dim embed_dim / num_heads = 4, got 8"),
      hg::Error);
  nn::MultiheadAttention linear(nn::MultiheadAttentionOptions(4, 2).separation(nn::SeparationOptions(nn::SeparationKind::Linear)));
  Tensor x = hg::zeros({3, 2, 4});
  CHECK_THROWS_WITH_AS(linear(x, x, x, Tensor(), false, hg::zeros({3, 3}, hg::kBool)),
                       doctest::Contains("MultiheadAttention(embed_dim=4, num_heads=2): separation linear never forms "
                                         "the [L, S] scores, so it takes no attn_mask (a key_padding_mask works); "
                                         "got attn_mask bool[3, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::MultiheadAttention(nn::MultiheadAttentionOptions(4, 2).separation(
                           nn::SeparationOptions(nn::SeparationKind::Linear).forgetting(nn::ForgettingOptions()))),
                       doctest::Contains("a forgetting unit acts on scores, which this kind never forms"), hg::Error);
}

HG_BACKEND_TEST(multihead_attention_lwpf_and_top_k) {
  hg::Tensors results;
  Tensor x = hgtest::uniform({2, 5, 8}, -2, 2, 9).to(device).requires_grad_();
  Tensor causal = hg::from_vector<double>({0, -1e9, -1e9, -1e9, -1e9, 0, 0, -1e9, -1e9, -1e9, 0, 0, 0, -1e9, -1e9,
                                           0, 0, 0, 0, -1e9, 0, 0, 0, 0, 0},
                                          {5, 5}, hg::kFloat64)
                      .to(device);
  for (const auto& separation :
       {nn::SeparationOptions().forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU)),
        nn::SeparationOptions().forgetting(
            nn::ForgettingOptions(nn::ForgettingKind::PFU).threshold(nn::ForgettingThreshold::RowMedian)),
        nn::SeparationOptions().forgetting(nn::ForgettingOptions(nn::ForgettingKind::ReLU)),
        nn::SeparationOptions(nn::SeparationKind::TopK).top_k(3)}) {
    nn::MultiheadAttention attention = make_attention(8, 2, separation, device);
    auto [out, weights] = attention(x, x, x, padding_mask().to(device), true, causal);
    CHECK(hg::ne(out, out).sum().item<int64_t>() == 0);
    CHECK(all(hg::le(hg::sum(weights, {-1}), 1.0 + 1e-12)));
    out.sum().backward();
    results.insert(results.end(), {out, weights, x.grad().clone(), attention->in_proj_weight.grad()});
    x.grad().zero_();
  }
  return results;
}
