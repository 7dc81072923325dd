// The fused scaled_dot_product_attention against the composite it replaces, softmax(q kᵀ·scale + mask) v:
// values and all gradients (float32 and float64), masks (bool padding, additive, all-masked rows), broadcast and
// non-contiguous inputs, finite-difference gradients, double backward, bad inputs, the packed form
// (scaled_dot_product_attention_qkvpacked against split-attend-merge), and the dispatch from nn::MultiheadAttention
// and nn::Hopfield.
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <hopgrad/autograd/node.h>
#include <hopgrad/ops/backend.h>

#include "testing.h"

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// The composite: softmax(q kᵀ·scale + mask) v with PyTorch's bool mask convention (true = takes part).
hg::Tensor composite(const hg::Tensor& q, const hg::Tensor& k, const hg::Tensor& v, const hg::Tensor& mask,
                     double scale) {
  hg::Tensor scores = hg::matmul(q, k.transpose(-2, -1)) * scale;
  if (mask.defined())
    scores = mask.dtype() == hg::kBool ? hg::masked_fill(scores, hg::logical_not(mask), -kInf) : scores + mask;
  return hg::matmul(hg::softmax(scores, -1), v);
}

/// The op's routes (hg::AttentionImpl): without a graph as Auto picks (on the CPU matmul, softmax, matmul for small
/// calls; on CUDA the same), and with one (a query that requires grad) the fused kernel and the composite, each
/// forced. Checks that all three agree (NaN where another has NaN) and returns the fused kernel's output.
hg::Tensor both_paths(const hg::Tensor& q, const hg::Tensor& k, const hg::Tensor& v, const hg::Tensor& mask = {},
                      std::optional<double> scale = std::nullopt) {
  const hg::Tensor plain = hg::scaled_dot_product_attention(q, k, v, mask, scale);
  auto with_graph = [&](hg::AttentionImpl impl) {
    hg::AttentionImplGuard guard(impl);
    return hg::scaled_dot_product_attention(q.detach().requires_grad_(true), k, v, mask, scale).detach();
  };
  const hg::Tensor fused = with_graph(hg::AttentionImpl::Fused);
  const hg::Tensor composite_route = with_graph(hg::AttentionImpl::Composite);
  const double tolerance = q.dtype() == hg::kFloat64 ? 1e-12 : 1e-5;
  for (const hg::Tensor& other : {plain, composite_route}) {
    REQUIRE(other.sizes() == fused.sizes());
    const std::vector<double> a = other.to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
    const std::vector<double> b = fused.to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("element " << i << ": " << (other.is_same(plain) ? "without a graph " : "composite ") << a[i]
                      << ", fused " << b[i]);
      CHECK(std::isnan(a[i]) == std::isnan(b[i]));
      if (!std::isnan(a[i])) CHECK(std::abs(a[i] - b[i]) <= tolerance * (1 + std::abs(b[i])));
    }
  }
  return fused;
}

/// Runs `body` once with each implementation forced (hg::AttentionImpl: the fused kernel, then the composite).
void for_each_forced_impl(const std::function<void()>& body) {
  for (hg::AttentionImpl impl : {hg::AttentionImpl::Fused, hg::AttentionImpl::Composite}) {
    const char* route = impl == hg::AttentionImpl::Fused ? "fused" : "composite";
    CAPTURE(route);
    hg::AttentionImplGuard guard(impl);
    body();
  }
}

/// Output and the gradients of Σ w ⊙ out with respect to q, k, v (fixed weights w).
hg::Tensors value_and_grads(const std::function<hg::Tensor(const hg::Tensor&, const hg::Tensor&, const hg::Tensor&)>& f,
                            const hg::Tensor& q0, const hg::Tensor& k0, const hg::Tensor& v0, const hg::Tensor& w) {
  hg::Tensor q = q0.detach().requires_grad_(true), k = k0.detach().requires_grad_(true),
             v = v0.detach().requires_grad_(true);
  hg::Tensor out = f(q, k, v);
  hg::sum(out * w).backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

struct Case {
  const char* name;
  hg::Shape q, k, v;  // k and v share S
  int mask;           // 0 none, 1 bool key padding, 2 additive [L, S], 3 bool with all-masked rows
};

/// Compares fused with composite for one case on `device`; returns the fused results.
hg::Tensors compare_case(const Case& c, hg::DType dtype, hg::Device device, double tol, uint64_t seed) {
  hg::Tensor q = hgtest::uniform(c.q, -1, 1, seed).to(dtype).to(device);
  hg::Tensor k = hgtest::uniform(c.k, -1, 1, seed + 1).to(dtype).to(device);
  hg::Tensor v = hgtest::uniform(c.v, -1, 1, seed + 2).to(dtype).to(device);
  const int64_t L = c.q[c.q.size() - 2], S = c.k[c.k.size() - 2], E = c.q[c.q.size() - 1];
  hg::Tensor mask;
  if (c.mask == 1) {
    // The last two keys are padding for every batch entry.
    mask = (hg::arange(static_cast<double>(S), hg::kInt64) < S - 2).reshape({1, S}).to(device);
  } else if (c.mask == 2) {
    mask = hgtest::uniform({L, S}, -2, 2, seed + 3).to(dtype).to(device);
  } else if (c.mask == 3) {
    // Query row 1 sees no key at all; the others see keys j ≤ i (a causal pattern).
    hg::Tensor i = hg::arange(static_cast<double>(L), hg::kInt64).reshape({L, 1});
    hg::Tensor j = hg::arange(static_cast<double>(S), hg::kInt64).reshape({1, S});
    mask = hg::logical_and(j <= i, i != 1).to(device);
  }
  auto batch = [](const hg::Shape& s) { return hg::Shape(hg::IntArrayRef(s.begin(), s.size() - 2)); };
  hg::Shape out_shape = hg::broadcast_shapes(hg::broadcast_shapes(batch(c.q), batch(c.k), "test"), batch(c.v), "test");
  out_shape.push_back(L);
  out_shape.push_back(c.v[c.v.size() - 1]);
  hg::Tensor w = hgtest::uniform(out_shape, -1, 1, seed + 4).to(dtype).to(device);
  const double scale = 1.0 / std::sqrt(static_cast<double>(E));
  hg::Tensors fused = value_and_grads(
      [&](const hg::Tensor& a, const hg::Tensor& b, const hg::Tensor& d) {
        return hg::scaled_dot_product_attention(a, b, d, mask);
      },
      q, k, v, w);
  hg::Tensors expected = value_and_grads(
      [&](const hg::Tensor& a, const hg::Tensor& b, const hg::Tensor& d) { return composite(a, b, d, mask, scale); },
      q, k, v, w);
  const char* what[] = {"out", "grad q", "grad k", "grad v"};
  for (size_t i = 0; i < fused.size(); ++i)
    hgtest::check_close(fused[i], expected[i], tol, tol, fmt::format("{} {} {}", c.name, dtype, what[i]));
  if (c.mask == 3) {
    // The query that sees no key gets a zero output (PyTorch: NaN), and passes no gradient.
    CHECK(hg::max_abs_diff(fused[0].select(-2, 1), hg::zeros_like(fused[0].select(-2, 1))) == 0.0);
    CHECK(!std::isnan(hg::sum(fused[1]).item<double>()));
  }
  return fused;
}

const Case kCases[] = {
    {"plain", {2, 3, 5, 4}, {2, 3, 7, 4}, {2, 3, 7, 6}, 0},
    {"bool key padding", {2, 3, 5, 4}, {2, 3, 7, 4}, {2, 3, 7, 6}, 1},
    {"additive mask", {2, 2, 6, 8}, {2, 2, 6, 8}, {2, 2, 6, 3}, 2},
    {"all-masked row", {1, 2, 4, 4}, {1, 2, 4, 4}, {1, 2, 4, 4}, 3},
    {"3-D, keys broadcast over the batch", {3, 5, 4}, {1, 7, 4}, {1, 7, 5}, 0},
    {"several key and query blocks", {1, 1, 150, 8}, {1, 1, 300, 8}, {1, 1, 300, 5}, 1},
    // 18 keys and 17 value columns: one and two columns past a vector (the tile GEMM's dot-product tail)
    {"narrow column tails", {1, 2, 9, 5}, {1, 2, 18, 5}, {1, 2, 18, 17}, 2},
    {"workload shape", {2, 3, 65, 64}, {2, 3, 65, 64}, {2, 3, 65, 64}, 0},
    // One key block (the exact one-pass softmax, D from the tile) under two query blocks; 40 keys × 20 columns:
    // whole 16 × 16 blocks and leftover rows and columns in the transposing copy.
    {"one key block, two query blocks", {1, 2, 150, 20}, {1, 2, 40, 20}, {1, 2, 40, 6}, 2},
    // One query row (pooling with a learned query): the CPU's matrix–vector path, within one key block and past it.
    {"one query", {4, 2, 1, 16}, {4, 2, 100, 16}, {4, 2, 100, 9}, 1},
    {"one query, more keys than a key block", {2, 1, 1, 8}, {2, 1, 300, 8}, {2, 1, 300, 5}, 2},
};

}  // namespace

HG_BACKEND_TEST(fused_attention_matches_composite) {
  // Both implementations (hg::AttentionImpl), forced, against the composite written here with ops.
  hg::Tensors results;
  for_each_forced_impl([&] {
    uint64_t seed = 11;
    for (const Case& c : kCases) {
      for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
        hg::Tensors r = compare_case(c, dtype, device, dtype == hg::kFloat32 ? 2e-5 : 1e-12, seed);
        results.insert(results.end(), r.begin(), r.end());
      }
      seed += 10;
    }
  });
  return results;
}

HG_BACKEND_TEST(fused_attention_non_contiguous_inputs) {
  // q, k, v as MultiheadAttention makes them: heads split out of [N, L, h·d] by a permute (row stride h·d), and a
  // value matrix transposed (last dim not unit-strided, so the op copies it).
  hg::Tensor x = hgtest::uniform({2, 5, 12}, -1, 1, 3).to(hg::kFloat32).to(device);
  hg::Tensor q = x.reshape({2, 5, 3, 4}).permute({0, 2, 1, 3});
  hg::Tensor k = (x * 0.5).reshape({2, 5, 3, 4}).permute({0, 2, 1, 3});
  hg::Tensor v = hgtest::uniform({2, 3, 4, 5}, -1, 1, 4).to(hg::kFloat32).to(device).transpose(-2, -1);
  CHECK(!q.is_contiguous());
  hg::Tensor out = both_paths(q, k, v, {}, 0.7);
  hgtest::check_close(out, composite(q.contiguous(), k.contiguous(), v.contiguous(), {}, 0.7), 1e-5, 1e-6,
                      "non-contiguous");
  return {out};
}

HG_BACKEND_TEST(fused_attention_hand_computed) {
  // One query, two keys: scores (q·k)·scale = (1·1, 1·0)·ln 3 = (ln 3, 0): weights (3/4, 1/4).
  hg::Tensor q = hg::from_vector<double>({1, 0}, {1, 2}).to(device);
  hg::Tensor k = hg::from_vector<double>({1, 0, 0, 1}, {2, 2}).to(device);
  hg::Tensor v = hg::from_vector<double>({4, 8, 0, 4}, {2, 2}).to(device);
  hg::Tensor out = both_paths(q, k, v, {}, std::log(3.0));
  hgtest::check_close(out, hg::from_vector<double>({3, 7}, {1, 2}), 1e-14, 1e-14, "hand computed");
  // Masking the first key leaves the second alone; masking both gives zeros.
  hg::Tensor second = hg::from_vector<bool>({false, true}, {2}).to(device);
  hgtest::check_close(both_paths(q, k, v, second), hg::from_vector<double>({0, 4}, {1, 2}),
                      1e-14, 1e-14, "one key");
  hg::Tensor none = hg::from_vector<bool>({false, false}, {2}).to(device);
  hg::Tensor dead = both_paths(q, k, v, none);
  hgtest::check_close(dead, hg::zeros({1, 2}, hg::kFloat64), 0, 0, "no key");
  return {out, dead};
}

TEST_CASE("AttentionImpl: set, scoped by the guard, and the route each setting takes") {
  REQUIRE(hg::attention_impl() == hg::AttentionImpl::Auto);
  {
    hg::AttentionImplGuard outer(hg::AttentionImpl::Composite);
    CHECK(hg::attention_impl() == hg::AttentionImpl::Composite);
    {
      hg::AttentionImplGuard inner(hg::AttentionImpl::Fused);
      CHECK(hg::attention_impl() == hg::AttentionImpl::Fused);
    }
    CHECK(hg::attention_impl() == hg::AttentionImpl::Composite);
  }
  CHECK(hg::attention_impl() == hg::AttentionImpl::Auto);
  CHECK_THROWS_WITH_AS(hg::set_attention_impl(static_cast<hg::AttentionImpl>(7)),
                       doctest::Contains("set_attention_impl: unknown AttentionImpl 7"), hg::Error);
  // The route shows in the graph: the fused op records one node of its own; the composite ends in the
  // reshape of its last matmul (sdpa) or in the merge of the heads (packed).
  hg::Tensor q = hgtest::uniform({2, 3, 5, 4}, -1, 1, 90).to(hg::kFloat32).requires_grad_(true);
  hg::Tensor qkv = hgtest::uniform({2, 5, 12}, -1, 1, 91).to(hg::kFloat32).requires_grad_(true);
  auto node = [](const hg::Tensor& t) { return std::string(t.grad_fn() ? t.grad_fn()->name() : "none"); };
  for (hg::AttentionImpl impl : {hg::AttentionImpl::Auto, hg::AttentionImpl::Fused, hg::AttentionImpl::Composite}) {
    hg::AttentionImplGuard guard(impl);
    const bool fused = impl != hg::AttentionImpl::Composite;  // Auto on the CPU: the fused kernel under a graph
    CHECK((node(hg::scaled_dot_product_attention(q, q, q)) == "scaled_dot_product_attention") == fused);
    CHECK((node(hg::scaled_dot_product_attention_qkvpacked(qkv, 2)) == "scaled_dot_product_attention_qkvpacked") ==
          fused);
  }
}

HG_BACKEND_TEST(attention_auto_prefers_the_composite_where_the_backend_finds_it_faster) {
  const hg::Backend& backend = hg::backend_for(device);
  const int64_t vit_block = 64 * 3;  // vit_tiny: batch 64 × 3 heads of [65, 65] weights
  if (device.is_cpu()) {
    // The fused kernel whenever a graph is recorded; without one the composite up to 2^24 weight elements.
    CHECK_FALSE(backend.attention_prefers_composite(true, vit_block, 65, 65, hg::kFloat32));
    CHECK(backend.attention_prefers_composite(false, vit_block, 65, 65, hg::kFloat32));
    CHECK(backend.attention_prefers_composite(false, 1, 256, 1000, hg::kFloat32));
    CHECK_FALSE(backend.attention_prefers_composite(false, 1 << 10, 256, 256, hg::kFloat32));
  } else {
    // CUDA: the composite (cuBLAS's batched GEMMs) up to 256 MiB of weights, graph or not.
    CHECK(backend.attention_prefers_composite(true, vit_block, 65, 65, hg::kFloat32));
    CHECK(backend.attention_prefers_composite(false, vit_block, 65, 65, hg::kFloat64));
    CHECK_FALSE(backend.attention_prefers_composite(true, 1 << 12, 256, 256, hg::kFloat32));
  }
  return {};
}

TEST_CASE("attention kernel (CPU): the backward from kept weights matches the one that recomputes them") {
  hg::Backend& cpu = hg::backend_for(hg::kCPU);
  // Kept where the backward would recompute them from one key block, within a memory budget.
  CHECK(cpu.attention_keeps_weights(6, 65, 65, hg::kFloat32));
  CHECK_FALSE(cpu.attention_keeps_weights(6, 65, 300, hg::kFloat32));
  CHECK_FALSE(cpu.attention_keeps_weights(1 << 20, 256, 256, hg::kFloat32));
  struct Shape4 {
    int64_t B, H, L, S, E, Ev;
  };
  // several rows with an all-masked one; one query row; two query blocks of one key block
  const Shape4 shapes[] = {{2, 3, 5, 7, 4, 6}, {3, 2, 1, 9, 8, 5}, {1, 2, 150, 40, 20, 6}};
  uint64_t seed = 40;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    for (const Shape4& z : shapes) {
      CAPTURE(dtype);
      CAPTURE(z.L);
      hg::Tensor q = hgtest::uniform({z.B, z.H, z.L, z.E}, -1, 1, ++seed).to(dtype);
      hg::Tensor k = hgtest::uniform({z.B, z.H, z.S, z.E}, -1, 1, ++seed).to(dtype);
      hg::Tensor v = hgtest::uniform({z.B, z.H, z.S, z.Ev}, -1, 1, ++seed).to(dtype);
      hg::Tensor grad_out = hgtest::uniform({z.B, z.H, z.L, z.Ev}, -1, 1, ++seed).to(dtype);
      // Keys j ≤ i + 2 take part, except that query row 1 (when there is one) sees none.
      hg::Tensor i = hg::arange(static_cast<double>(z.L), hg::kInt64).reshape({z.L, 1});
      hg::Tensor j = hg::arange(static_cast<double>(z.S), hg::kInt64).reshape({1, z.S});
      hg::Tensor mask = hg::logical_and(j <= i + 2, i != 1).expand({z.B, z.H, z.L, z.S});
      const double scale = 0.7;
      auto forward = [&](hg::Tensor* weights) {
        hg::Tensor out = hg::empty({z.B, z.H, z.L, z.Ev}, dtype), lse = hg::empty({z.B, z.H, z.L}, dtype);
        cpu.attention(q, k, v, &mask, scale, out, lse, weights);
        return std::pair{out, lse};
      };
      hg::Tensor weights = hg::empty({z.B, z.H, z.L, z.S}, dtype);
      auto [out, lse] = forward(&weights);
      auto [out_recomputing, lse_recomputing] = forward(nullptr);
      // The same arithmetic, wherever p is written (lse is −inf in the all-masked row).
      hgtest::check_close(out, out_recomputing, 0, 0, "out");
      hgtest::check_close(lse, lse_recomputing, 0, 0, "lse");
      const double tol = dtype == hg::kFloat32 ? 2e-6 : 1e-14;
      hg::Tensor scores = hg::masked_fill(hg::matmul(q, k.transpose(-2, -1)) * scale, hg::logical_not(mask), -kInf);
      hg::Tensor live_row = hg::amax(mask.to(dtype), {3}, true) > 0.0;  // an all-masked row has zero weights
      hg::Tensor expected = hg::where(live_row, hg::softmax(scores, -1), 0.0);
      hgtest::check_close(weights, expected, tol, tol, "kept weights");
      const hg::Tensor weights_before = weights.clone();
      auto backward = [&](const hg::Tensor* kept) {
        hg::Tensor gq = hg::empty(q.sizes(), dtype), gk = hg::empty(k.sizes(), dtype), gv = hg::empty(v.sizes(), dtype);
        cpu.attention_backward(q, k, v, &mask, scale, out, lse, kept, grad_out, gq, gk, gv);
        return hg::Tensors{gq, gk, gv};
      };
      const hg::Tensors from_kept = backward(&weights), recomputed = backward(nullptr), again = backward(&weights);
      const char* names[] = {"grad q", "grad k", "grad v"};
      for (size_t n = 0; n < 3; ++n) {
        hgtest::check_close(from_kept[n], recomputed[n], 10 * tol, 10 * tol, names[n]);
        CHECK(hg::max_abs_diff(again[n], from_kept[n]) == 0.0);  // a retained graph's second backward
      }
      CHECK(hg::max_abs_diff(weights, weights_before) == 0.0);  // the backward leaves them as they were
    }
  }
  hg::Tensor q = hg::zeros({1, 1, 2, 4}), k = hg::zeros({1, 1, 3, 4}), v = hg::zeros({1, 1, 3, 4});
  hg::Tensor out = hg::empty({1, 1, 2, 4}), lse = hg::empty({1, 1, 2}), wrong = hg::empty({1, 1, 3, 2});
  CHECK_THROWS_WITH_AS(
      cpu.attention(q, k, v, nullptr, 1.0, out, lse, &wrong),
      doctest::Contains("attention kernel: the kept weights must be contiguous [B, H, L, S] = [1, 1, 2, 3]"), hg::Error);
}

TEST_CASE("fused_attention: a retained graph runs the backward twice with the same gradients") {
  hg::Tensor qkv = hgtest::uniform({2, 9, 12}, -1, 1, 60).requires_grad_(true);
  hg::Tensor w = hgtest::uniform({2, 9, 4}, -1, 1, 61);
  hg::Tensor loss = hg::sum(hg::scaled_dot_product_attention_qkvpacked(qkv, 2) * w);
  loss.backward({}, /*retain_graph=*/true);
  const hg::Tensor first = qkv.grad().clone();
  qkv.grad().zero_();
  loss.backward();
  CHECK(hg::max_abs_diff(qkv.grad(), first) == 0.0);
}

TEST_CASE("fused_attention: NaN scores give a NaN row, as the composite softmax") {
  hg::Tensor q = hg::from_vector<float>({NAN, 1, 1, 1}, {2, 2});
  hg::Tensor k = hg::ones({3, 2});
  hg::Tensor out = both_paths(q, k, hg::ones({3, 2}));
  std::vector<float> values = out.to_vector<float>();
  CHECK(std::isnan(values[0]));
  CHECK(std::isnan(values[1]));
  CHECK(values[2] == doctest::Approx(1.0));
}

TEST_CASE("fused_attention: float64 gradcheck") {
  using hgtest::uniform;
  for_each_forced_impl([&] {
    // plain, default scale
    hgtest::gradcheck([](const hg::Tensors& t) { return hg::scaled_dot_product_attention(t[0], t[1], t[2]); },
                      {uniform({2, 3, 4}, -1, 1, 1), uniform({2, 5, 4}, -1, 1, 2), uniform({2, 5, 3}, -1, 1, 3)});
    // one query row (the matrix–vector path), with a key masked out
    hg::Tensor keys_allowed = hg::from_vector<bool>({true, false, true, true, true}, {5});
    hgtest::gradcheck(
        [&](const hg::Tensors& t) { return hg::scaled_dot_product_attention(t[0], t[1], t[2], keys_allowed); },
        {uniform({2, 1, 4}, -1, 1, 14), uniform({2, 5, 4}, -1, 1, 15), uniform({2, 5, 3}, -1, 1, 16)});
    // q broadcast against a batch of keys, non-contiguous inputs (transposed views inside the function)
    hgtest::gradcheck(
        [](const hg::Tensors& t) {
          return hg::scaled_dot_product_attention(t[0], t[1].transpose(-2, -1), t[2].transpose(-2, -1), {}, 0.8);
        },
        {uniform({1, 3, 4}, -1, 1, 4), uniform({2, 4, 5}, -1, 1, 5), uniform({2, 3, 5}, -1, 1, 6)});
    // bool padding mask with an all-masked row, 4-D
    hg::Tensor allowed = hg::from_vector<bool>({true, true, false, false,     // query 0 sees keys 0, 1
                                                false, false, false, false,   // query 1 sees none
                                                false, true, true, false},    // query 2 sees keys 1, 2
                                               {1, 1, 3, 4});
    hgtest::gradcheck(
        [&](const hg::Tensors& t) { return hg::scaled_dot_product_attention(t[0], t[1], t[2], allowed); },
        {uniform({1, 2, 3, 2}, -1, 1, 7), uniform({1, 2, 4, 2}, -1, 1, 8), uniform({1, 2, 4, 3}, -1, 1, 9)});
    // an additive mask that needs its own gradient (composite backward path), broadcast over the heads
    hgtest::gradcheck(
        [](const hg::Tensors& t) { return hg::scaled_dot_product_attention(t[0], t[1], t[2], t[3]); },
        {uniform({2, 2, 3, 2}, -1, 1, 10), uniform({2, 2, 4, 2}, -1, 1, 11), uniform({2, 2, 4, 2}, -1, 1, 12),
         uniform({2, 1, 3, 4}, -1, 1, 13)});
  });
}

TEST_CASE("fused_attention: double backward (composite formula under create_graph)") {
  using hgtest::uniform;
  hg::Tensor bias = uniform({3, 4}, -1, 1, 20);
  hgtest::gradgradcheck(
      [&](const hg::Tensors& t) { return hg::scaled_dot_product_attention(t[0], t[1], t[2], bias); },
      {uniform({2, 3, 2}, -1, 1, 21), uniform({2, 4, 2}, -1, 1, 22), uniform({2, 4, 2}, -1, 1, 23)});
}

TEST_CASE("fused_attention: bad inputs") {
  hg::Tensor q = hg::ones({2, 3, 4}), k = hg::ones({2, 5, 4}), v = hg::ones({2, 5, 6});
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, hg::ones({2, 5, 3}), v),
                       doctest::Contains("scaled_dot_product_attention: expected query [..., L, E], key [..., S, E]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, hg::ones({2, 4, 6})),
                       doctest::Contains("value [..., S, Ev]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, v.to(hg::kFloat64)),
                       doctest::Contains("must share one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q.to(hg::kInt64), k.to(hg::kInt64), v.to(hg::kInt64)),
                       doctest::Contains("must share one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(hg::ones({4}), hg::ones({4}), hg::ones({4})),
                       doctest::Contains("expected query [..., L, E]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, v, hg::ones({3, 5}, hg::kFloat64)),
                       doctest::Contains("attn_mask must be bool"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, v, hg::ones({3, 5}, hg::kInt64)),
                       doctest::Contains("attn_mask must be bool"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, v, hg::ones({3, 4})),
                       doctest::Contains("attn_mask must broadcast to the scores [..., L = 3, S = 5]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, hg::ones({3, 5, 4}), hg::ones({3, 5, 6})),
                       doctest::Contains("scaled_dot_product_attention"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention(q, k, hg::Tensor()),
                       doctest::Contains("query, key and value must be defined"), hg::Error);
}

TEST_CASE("fused_attention: empty sizes") {
  // No keys: every query is all-masked, so the output is zeros; no queries: an empty output.
  hg::Tensor out = both_paths(hg::ones({2, 3, 4}), hg::ones({2, 0, 4}), hg::ones({2, 0, 5}));
  CHECK(out.sizes() == hg::Shape{2, 3, 5});
  CHECK(hg::max_abs_diff(out, hg::zeros({2, 3, 5})) == 0.0);
  CHECK(both_paths(hg::ones({2, 0, 4}), hg::ones({2, 3, 4}), hg::ones({2, 3, 5})).numel() == 0);
  // Head dim 0: every score is an empty sum. With scale 1 the weights are uniform; the default scale 1/√0 = inf
  // makes them inf · 0 = NaN, as the composite (and PyTorch's formula) gives.
  hg::Tensor v = hg::arange(20.0, hg::kFloat32).reshape({2, 2, 5});
  CHECK(hg::max_abs_diff(both_paths(hg::ones({2, 3, 0}), hg::ones({2, 2, 0}), v, {}, 1.0),
                         hg::mean(v, {1}, true).expand({2, 3, 5})) == 0.0);
  CHECK(std::isnan(hg::sum(both_paths(hg::ones({2, 3, 0}), hg::ones({2, 2, 0}), v)).item<float>()));
}

TEST_CASE("fused_attention: backward of an empty output through sum (a stride-0 gradient) gives zero gradients") {
  // No queries, or batch 0: sum()'s gradient is an expanded, empty tensor, which the kernels' layout checks refused.
  for (hg::AttentionImpl impl : {hg::AttentionImpl::Fused, hg::AttentionImpl::Composite, hg::AttentionImpl::Auto}) {
    hg::AttentionImplGuard guard(impl);
    for (const auto& [q_shape, kv_batch] : {std::pair{hg::Shape{1, 0, 4}, int64_t{1}}, std::pair{hg::Shape{0, 2, 4}, int64_t{0}}}) {
      CAPTURE(q_shape);
      hg::Tensor q = hg::zeros(q_shape).requires_grad_();
      hg::Tensor k = hg::ones({kv_batch, 3, 4}).requires_grad_(), v = hg::ones({kv_batch, 3, 4}).requires_grad_();
      hg::sum(hg::scaled_dot_product_attention(q, k, v)).backward();
      CHECK(q.grad().sizes() == q_shape);
      CHECK(k.grad().sizes() == k.sizes());
      CHECK(hg::max_abs_diff(k.grad(), hg::zeros_like(k)) == 0.0);
      CHECK(hg::max_abs_diff(v.grad(), hg::zeros_like(v)) == 0.0);
    }
    for (const hg::Shape& shape : {hg::Shape{1, 0, 12}, hg::Shape{0, 3, 12}}) {
      CAPTURE(shape);
      hg::Tensor qkv = hg::ones(shape).requires_grad_();
      hg::sum(hg::scaled_dot_product_attention_qkvpacked(qkv, 2)).backward();
      CHECK(qkv.grad().sizes() == shape);
    }
  }
}

HG_BACKEND_TEST(attention_kernel_with_value_head_dim_0_still_writes_lse_and_weights) {
  // The output [B, H, L, 0] is empty, but the log-sum-exp and the kept weights are not, and the backward reads
  // them: they start as NaN here, so a kernel that skips them leaves NaN behind.
  hg::Backend& backend = hg::backend_for(device);
  hg::Tensors results;
  for (const hg::Shape& q_shape : {hg::Shape{1, 2, 3, 4}, hg::Shape{2, 1, 1, 4}}) {
    const int64_t B = q_shape[0], H = q_shape[1], L = q_shape[2], S = 5;
    const hg::Tensor q = hgtest::uniform(q_shape, -1, 1, 11).to(hg::kFloat32).to(device);
    const hg::Tensor k = hgtest::uniform({B, H, S, 4}, -1, 1, 12).to(hg::kFloat32).to(device);
    const hg::Tensor v = hg::zeros({B, H, S, 0}, hg::TensorOptions(hg::kFloat32).device(device));
    hg::Tensor out = hg::empty({B, H, L, 0}, hg::kFloat32, device);
    hg::Tensor lse = hg::full({B, H, L}, std::nan(""), hg::TensorOptions(hg::kFloat32).device(device));
    hg::Tensor weights;
    if (backend.attention_keeps_weights(B * H, L, S, hg::kFloat32))
      weights = hg::full({B, H, L, S}, std::nan(""), hg::TensorOptions(hg::kFloat32).device(device));
    backend.attention(q, k, v, nullptr, 0.5, out, lse, weights.defined() ? &weights : nullptr);
    const hg::Tensor scores = hg::matmul(q, k.transpose(-2, -1)) * 0.5;
    hgtest::check_close(lse, hg::logsumexp(scores, {-1}), 1e-6, 1e-6, "lse");
    if (weights.defined()) hgtest::check_close(weights, hg::softmax(scores, -1), 1e-6, 1e-6, "kept weights");
    results.push_back(lse);
  }
  return results;
}

TEST_CASE("fused_attention: value head dim 0 — an empty output, and zero gradients for q and k") {
  hg::Tensor q = hgtest::uniform({1, 2, 3, 4}, -1, 1, 11).requires_grad_(true);
  hg::Tensor k = hgtest::uniform({1, 2, 5, 4}, -1, 1, 12).requires_grad_(true);
  hg::Tensor v = hg::zeros({1, 2, 5, 0}, hg::kFloat64).requires_grad_(true);
  hg::Tensor out = hg::scaled_dot_product_attention(q, k, v);
  CHECK(out.sizes() == hg::Shape{1, 2, 3, 0});
  hg::sum(out).backward();
  CHECK(hg::max_abs_diff(q.grad(), hg::zeros_like(q)) == 0.0);
  CHECK(hg::max_abs_diff(k.grad(), hg::zeros_like(k)) == 0.0);
  CHECK(v.grad().sizes() == v.sizes());
}

// ---- the packed form: qkv [..., L, 3·H·d] → [..., L, H·d] --------------------------------------------------

namespace {

/// What scaled_dot_product_attention_qkvpacked replaces: split qkv into heads, attend, merge the heads (with ops).
hg::Tensor split_attend_merge(const hg::Tensor& qkv, int64_t heads, const hg::Tensor& mask, double scale) {
  const int64_t E = qkv.size(-1) / 3, d = E / heads, L = qkv.size(-2);
  hg::Shape split = qkv.sizes();
  split[split.size() - 1] = heads;
  split.push_back(d);
  auto part = [&](int64_t i) { return qkv.narrow(-1, i * E, E).reshape(split).transpose(-3, -2); };
  hg::Tensor out = composite(part(0), part(1), part(2), mask, scale).transpose(-3, -2);
  hg::Shape merged = qkv.sizes();
  merged[merged.size() - 2] = L;
  merged[merged.size() - 1] = E;
  return out.reshape(merged);
}

struct PackedCase {
  const char* name;
  hg::Shape qkv;  // [..., L, 3·H·d]
  int64_t heads;
  int mask;  // 0 none, 1 bool key padding [N, 1, 1, L], 2 additive [L, L], 3 bool per head [N, H, L, L] with a dead row
};

const PackedCase kPackedCases[] = {
    {"plain", {2, 5, 24}, 2, 0},
    {"odd sizes", {3, 7, 45}, 3, 1},
    {"additive mask", {2, 6, 36}, 3, 2},
    {"per-head mask, all-masked row", {2, 4, 12}, 2, 3},
    {"unbatched", {5, 12}, 1, 0},
    {"two batch dims", {2, 2, 3, 12}, 2, 0},
    {"workload shape", {2, 65, 576}, 3, 0},
};

/// Output and qkv's gradient of Σ w ⊙ f(qkv), computed on `qkv` as given (a view stays a view).
hg::Tensors packed_value_and_grad(const std::function<hg::Tensor(const hg::Tensor&)>& f, const hg::Tensor& qkv,
                                  const hg::Tensor& w) {
  hg::Tensor leaf = qkv.detach().requires_grad_(true);
  hg::Tensor out = f(leaf);
  hg::sum(out * w).backward();
  return {out.detach(), leaf.grad()};
}

hg::Tensor packed_mask(const PackedCase& c, hg::DType dtype, hg::Device device, uint64_t seed) {
  const int64_t L = c.qkv[c.qkv.size() - 2];
  if (c.mask == 1) return (hg::arange(static_cast<double>(L), hg::kInt64) < L - 2).reshape({1, 1, 1, L}).to(device);
  if (c.mask == 2) return hgtest::uniform({L, L}, -2, 2, seed).to(dtype).to(device);
  if (c.mask == 3) {
    // Batch 0, head 1 sees keys j ≤ i except in row 2, which sees none; everything else sees every key.
    hg::Tensor i = hg::arange(static_cast<double>(L), hg::kInt64).reshape({L, 1});
    hg::Tensor j = hg::arange(static_cast<double>(L), hg::kInt64).reshape({1, L});
    hg::Tensor causal = hg::logical_and(j <= i, i != 2).to(hg::kFloat64);
    hg::Tensor allowed = hg::ones({c.qkv[0], c.heads, L, L}, hg::kFloat64);
    allowed.select(0, 0).select(0, 1).copy_(causal);
    return (allowed > 0.5).to(device);
  }
  return {};
}

}  // namespace

HG_BACKEND_TEST(fused_attention_qkvpacked_matches_split) {
  hg::Tensors results;
  for_each_forced_impl([&] {
    uint64_t seed = 50;
    for (const PackedCase& c : kPackedCases) {
      for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
        const double tol = dtype == hg::kFloat32 ? 2e-5 : 1e-12;
        hg::Tensor qkv = hgtest::uniform(c.qkv, -1, 1, seed).to(dtype).to(device);
        hg::Shape out_shape = c.qkv;
        out_shape[out_shape.size() - 1] /= 3;
        hg::Tensor w = hgtest::uniform(out_shape, -1, 1, seed + 1).to(dtype).to(device);
        hg::Tensor mask = packed_mask(c, dtype, device, seed + 2);
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.qkv.back() / (3 * c.heads)));
        hg::Tensors fused = packed_value_and_grad(
            [&](const hg::Tensor& t) { return hg::scaled_dot_product_attention_qkvpacked(t, c.heads, mask); }, qkv,
            w);
        hg::Tensors expected = packed_value_and_grad(
            [&](const hg::Tensor& t) { return split_attend_merge(t, c.heads, mask, scale); }, qkv, w);
        hgtest::check_close(fused[0], expected[0], tol, tol, fmt::format("{} {} out", c.name, dtype));
        hgtest::check_close(fused[1], expected[1], tol, tol, fmt::format("{} {} grad qkv", c.name, dtype));
        // Without a graph (matmul, softmax, matmul for small calls under Auto) the values are the same.
        hgtest::check_close(hg::scaled_dot_product_attention_qkvpacked(qkv, c.heads, mask), expected[0], tol, tol,
                            fmt::format("{} {} out without a graph", c.name, dtype));
        results.insert(results.end(), fused.begin(), fused.end());
      }
      seed += 10;
    }
  });
  return results;
}

HG_BACKEND_TEST(fused_attention_qkvpacked_strided_inputs) {
  // qkv as a slice of a wider projection (row stride 40, read in place) and as a transpose (last dim not
  // unit-strided: copied first); the gradients land in the views' own layout.
  hg::Tensor wide = hgtest::uniform({2, 5, 40}, -1, 1, 70).to(hg::kFloat32).to(device);
  hg::Tensor sliced = wide.narrow(2, 3, 24);
  hg::Tensor transposed = hgtest::uniform({2, 24, 5}, -1, 1, 71).to(hg::kFloat32).to(device).transpose(1, 2);
  hg::Tensor w = hgtest::uniform({2, 5, 8}, -1, 1, 72).to(hg::kFloat32).to(device);
  hg::Tensors results;
  for_each_forced_impl([&] {
    for (const hg::Tensor& qkv : {sliced, transposed}) {
      CHECK(!qkv.is_contiguous());
      hg::Tensors fused = packed_value_and_grad(
          [](const hg::Tensor& t) { return hg::scaled_dot_product_attention_qkvpacked(t, 2, {}, 0.6); }, qkv, w);
      hg::Tensors expected = packed_value_and_grad(
          [](const hg::Tensor& t) { return split_attend_merge(t, 2, {}, 0.6); }, qkv.contiguous(), w);
      hgtest::check_close(fused[0], expected[0], 1e-5, 1e-6, "strided out");
      hgtest::check_close(fused[1], expected[1], 1e-5, 1e-6, "strided grad");
      results.insert(results.end(), fused.begin(), fused.end());
    }
    // scaled_dot_product_attention's fused backward reads a permuted (non-contiguous) output gradient in place.
    hg::Tensor q = hgtest::uniform({2, 3, 5, 4}, -1, 1, 73).to(hg::kFloat32).to(device);
    hg::Tensor w2 = hgtest::uniform({2, 5, 3, 4}, -1, 1, 74).to(hg::kFloat32).to(device);
    auto permuted = [&](const std::function<hg::Tensor(const hg::Tensor&)>& attend) {
      hg::Tensor leaf = q.detach().requires_grad_(true);
      hg::sum(attend(leaf).permute({0, 2, 1, 3}) * w2).backward();
      return leaf.grad();
    };
    hg::Tensor fused_grad = permuted([](const hg::Tensor& t) { return hg::scaled_dot_product_attention(t, t, t); });
    hg::Tensor composite_grad = permuted([](const hg::Tensor& t) { return composite(t, t, t, {}, 0.5); });
    hgtest::check_close(fused_grad, composite_grad, 1e-5, 1e-6, "permuted output gradient");
    results.push_back(fused_grad);
  });
  return results;
}

TEST_CASE("fused_attention: qkvpacked gives the same result on 1 and 2 threads") {
  // The kernels split the work by (batch, head, query block) tasks, each computed whole by one thread.
  hg::Tensor qkv = hgtest::uniform({4, 65, 3 * 2 * 16}, -1, 1, 80).to(hg::kFloat32);
  hg::Tensor w = hgtest::uniform({4, 65, 32}, -1, 1, 81).to(hg::kFloat32);
  auto run = [&](int threads) {
    const int previous = hg::get_num_threads();
    hg::set_num_threads(threads);
    hg::Tensors r = packed_value_and_grad(
        [](const hg::Tensor& t) { return hg::scaled_dot_product_attention_qkvpacked(t, 2); }, qkv, w);
    hg::set_num_threads(previous);
    return r;
  };
  hg::Tensors one = run(1), two = run(2);
  CHECK(hg::max_abs_diff(one[0], two[0]) == 0.0);
  CHECK(hg::max_abs_diff(one[1], two[1]) == 0.0);
}

TEST_CASE("fused_attention: qkvpacked float64 gradcheck and double backward") {
  using hgtest::uniform;
  // plain, two heads of width 2, qkv a transposed view inside the function
  hgtest::gradcheck(
      [](const hg::Tensors& t) { return hg::scaled_dot_product_attention_qkvpacked(t[0].transpose(-2, -1), 2); },
      {uniform({2, 12, 3}, -1, 1, 90)});
  // a bool padding mask broadcast over heads and queries
  hg::Tensor allowed = hg::from_vector<bool>({true, true, false, true, false, true}, {2, 1, 1, 3});
  hgtest::gradcheck(
      [&](const hg::Tensors& t) { return hg::scaled_dot_product_attention_qkvpacked(t[0], 1, allowed, 0.9); },
      {uniform({2, 3, 6}, -1, 1, 91)});
  // an additive per-head mask that needs its own gradient (composite backward)
  hgtest::gradcheck(
      [](const hg::Tensors& t) { return hg::scaled_dot_product_attention_qkvpacked(t[0], 2, t[1]); },
      {uniform({2, 3, 12}, -1, 1, 92), uniform({1, 2, 3, 3}, -1, 1, 93)});
  hg::Tensor bias = uniform({3, 3}, -1, 1, 94);
  hgtest::gradgradcheck(
      [&](const hg::Tensors& t) { return hg::scaled_dot_product_attention_qkvpacked(t[0], 2, bias); },
      {uniform({1, 3, 12}, -1, 1, 95)});
}

TEST_CASE("fused_attention: qkvpacked bad inputs") {
  hg::Tensor qkv = hg::ones({2, 3, 12});
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv, 5),
                       doctest::Contains("scaled_dot_product_attention_qkvpacked: the last dim of qkv"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv, 0), doctest::Contains("num_heads = 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(hg::ones({12}), 2),
                       doctest::Contains("expected a floating qkv [..., L, 3·H·d]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv.to(hg::kInt64), 2),
                       doctest::Contains("expected a floating qkv"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv, 2, hg::ones({3, 4})),
                       doctest::Contains("must broadcast to the scores [..., H = 2, L = 3, L = 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv, 2, hg::ones({3, 2, 3, 3})),
                       doctest::Contains("must broadcast to the scores"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scaled_dot_product_attention_qkvpacked(qkv, 2, hg::ones({3, 3}, hg::kInt64)),
                       doctest::Contains("attn_mask must be bool"), hg::Error);
}

// ---- dispatch from the layers ------------------------------------------------------------------------------
// MultiheadAttention and Hopfield take the fused op when they do not return the weights; asking for the weights
// takes the composite. Both must give the same output and parameter gradients.

TEST_CASE("fused_attention: MultiheadAttention output and gradients match the composite path") {
  namespace nn = hg::nn;
  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(8, 2).batch_first(true));
  mha->to(hg::kFloat64);
  hgtest::randomize_parameters(*mha, 5);
  hg::Tensor x = hgtest::uniform({2, 5, 8}, -1, 1, 30);
  hg::Tensor padding = hg::from_vector<bool>({false, false, false, true, true, false, false, false, false, false},
                                             {2, 5});
  hg::Tensor bias = hgtest::uniform({5, 5}, -1, 1, 31);
  for (int masks = 0; masks < 3; ++masks) {
    hg::Tensor kpm = masks >= 1 ? padding : hg::Tensor(), attn_mask = masks == 2 ? bias : hg::Tensor();
    auto run = [&](bool need_weights) {
      mha->zero_grad();
      hg::Tensor xi = x.detach().requires_grad_(true);
      hg::Tensor out = std::get<0>(mha(xi, xi, xi, kpm, need_weights, attn_mask));
      hg::sum(out * out).backward();
      return hg::Tensors{out, xi.grad(), mha->in_proj_weight.grad().clone(), mha->out_proj->weight.grad().clone()};
    };
    hg::Tensors fused = run(false), composite_path = run(true);
    for (size_t i = 0; i < fused.size(); ++i)
      hgtest::check_close(fused[i], composite_path[i], 1e-12, 1e-12, fmt::format("masks {} tensor {}", masks, i));
  }
}

TEST_CASE("fused_attention: MultiheadAttention's packed path in every input layout") {
  // Sequence-first and unbatched inputs, a per-head float mask [N·h, L, S] and a bool one, all against the
  // composite path (need_weights = true), float64.
  namespace nn = hg::nn;
  for (bool batch_first : {false, true}) {
    nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(12, 3).batch_first(batch_first));
    mha->to(hg::kFloat64);
    hgtest::randomize_parameters(*mha, 7);
    hg::Tensor batched = hgtest::uniform(batch_first ? hg::Shape{2, 4, 12} : hg::Shape{4, 2, 12}, -1, 1, 32);
    hg::Tensor unbatched = hgtest::uniform({4, 12}, -1, 1, 33);
    hg::Tensor per_head = hgtest::uniform({6, 4, 4}, -1, 1, 34);
    hg::Tensor causal = hg::from_vector<bool>({false, true, true, true, false, false, true, true,
                                               false, false, false, true, false, false, false, false},
                                              {4, 4});
    for (int masks = 0; masks < 3; ++masks) {
      for (bool is_batched : {true, false}) {
        if (!is_batched && masks == 1) continue;  // a [N·h, L, S] mask needs a batch
        const hg::Tensor& x = is_batched ? batched : unbatched;
        hg::Tensor attn_mask = masks == 1 ? per_head : masks == 2 ? causal : hg::Tensor();
        auto run = [&](bool need_weights) {
          mha->zero_grad();
          hg::Tensor xi = x.detach().requires_grad_(true);
          hg::Tensor out = std::get<0>(mha(xi, xi, xi, hg::Tensor(), need_weights, attn_mask));
          hg::sum(out * out).backward();
          return hg::Tensors{out, xi.grad(), mha->in_proj_weight.grad().clone(), mha->in_proj_bias.grad().clone()};
        };
        hg::Tensors packed = run(false), composite_path = run(true);
        for (size_t i = 0; i < packed.size(); ++i)
          hgtest::check_close(packed[i], composite_path[i], 1e-12, 1e-12,
                              fmt::format("batch_first {} batched {} masks {} tensor {}", batch_first, is_batched,
                                          masks, i));
      }
    }
  }
}

TEST_CASE("fused_attention: Hopfield output and gradients match the composite path") {
  namespace nn = hg::nn;
  nn::Hopfield hopfield(nn::HopfieldOptions(8).num_heads(2).batch_first(true));
  hopfield->to(hg::kFloat64);
  hgtest::randomize_parameters(*hopfield, 6);
  hg::Tensor state = hgtest::uniform({2, 3, 8}, -1, 1, 40);
  hg::Tensor stored = hgtest::uniform({2, 5, 8}, -1, 1, 41);
  auto run = [&](bool return_association) {
    hopfield->zero_grad();
    hg::Tensor xi = state.detach().requires_grad_(true);
    nn::HopfieldResult result =
        hopfield->associate(stored, xi, stored, nn::AssociateOptions().return_association(return_association));
    hg::sum(result.output * result.output).backward();
    return hg::Tensors{result.output, xi.grad()};
  };
  hg::Tensors fused = run(false), composite_path = run(true);
  for (size_t i = 0; i < fused.size(); ++i)
    hgtest::check_close(fused[i], composite_path[i], 1e-12, 1e-12, fmt::format("tensor {}", i));
}

TEST_CASE("fused_attention: Hopfield self-association on its packed projection matches separate projections") {
  // The same tensor as stored, state and projection takes one GEMM and attention on the packed [B, L, 3·H·d]
  // projection; a copy as stored and projection takes three GEMMs and attention on the split heads. Outputs, the
  // input's gradient and every parameter's gradient must agree, with and without masks, at β = 1/√d and β = 0.3,
  // batch first, sequence first and unbatched.
  namespace nn = hg::nn;
  const int64_t B = 2, L = 5, E = 8, H = 2;
  for (int layout = 0; layout < 3; ++layout)  // batch first, sequence first, unbatched
  for (double beta : {0.0, 0.3}) {  // 0: the default 1/√d
    // Without the pattern LayerNorms (which would make three tensors of the one input), as PyTorch's attention.
    nn::HopfieldOptions options = hgtest::hopfield_options_without_norms(E).num_heads(H).batch_first(layout != 1);
    if (beta > 0) options.scaling(beta);
    nn::Hopfield hopfield(options);
    hopfield->to(hg::kFloat64);
    hgtest::randomize_parameters(*hopfield, 9);
    const hg::Tensor batch_first = hgtest::uniform({B, L, E}, -1, 1, 50);
    const hg::Tensor x = layout == 0 ? batch_first : layout == 1 ? batch_first.transpose(0, 1) : batch_first.select(0, 0);
    const hg::Tensor padding = hg::from_vector<bool>({false, false, false, false, true, false, false, true, false, false},
                                                     {B, L});
    const hg::Tensor bias = hgtest::uniform({L, L}, -1, 1, 51);
    for (int masks = 0; masks < 4; ++masks) {  // none, padding, additive, both
      nn::AssociateOptions request;
      if (masks & 1) request.stored_pattern_padding_mask(layout == 2 ? padding.select(0, 0) : padding);
      if (masks & 2) request.association_mask(bias);
      auto run = [&](bool one_tensor) {
        hopfield->zero_grad();
        hg::Tensor xi = x.detach().requires_grad_(true);
        hg::Tensor other = one_tensor ? xi : xi * 1.0;
        hg::Tensor out = hopfield->associate(other, xi, other, request).output;
        hg::sum(out * out).backward();
        hg::Tensors result{out, xi.grad()};
        for (auto& [name, p] : hopfield->named_parameters()) result.push_back(p.grad());
        return result;
      };
      const hg::Tensors packed = run(true), separate = run(false);
      REQUIRE(packed.size() == separate.size());
      for (size_t i = 0; i < packed.size(); ++i)
        hgtest::check_close(packed[i], separate[i], 1e-12, 1e-12,
                            fmt::format("layout {} beta {} masks {} tensor {}", layout, beta, masks, i));
    }
  }
}
