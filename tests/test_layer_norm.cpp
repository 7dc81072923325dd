// layer_norm: values against hand-computed numbers, the fused backward (Backend::layer_norm_backward, taken when no
// graph of the backward is recorded) against the composite of ops it replaces (taken under create_graph), finite-
// difference gradients, double backward, thread-count independence, and bad input.
#include <cmath>
#include <limits>
#include <vector>

#include <hopgrad/ops/backend.h>

#include "testing.h"

using hg::Tensor;
using hg::Tensors;

namespace {

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

// A fresh leaf with t's values in `dtype` on `device` (never t itself, which .to() returns when nothing changes).
Tensor leaf_on(const Tensor& t, hg::DType dtype, hg::Device device) {
  return t.to(dtype).to(device).detach().clone().requires_grad_();
}

// The gradients of Σ u ⊙ layer_norm(input(x), normalized, weight, bias) with respect to the leaves among x, weight
// and bias: by the fused kernel (composite = false) or by the composite of ops that create_graph records (true).
Tensors layer_norm_grads(const std::function<Tensor(const Tensor&)>& input, const Tensor& x, hg::IntArrayRef normalized,
                         const Tensor& weight, const Tensor& bias, const Tensor& u, bool composite) {
  Tensor y = hg::layer_norm(input(x), normalized, weight, bias);
  Tensors leaves;
  for (const Tensor* t : {&x, &weight, &bias})
    if (t->defined() && t->requires_grad()) leaves.push_back(*t);
  Tensors grads = hg::grad({y}, leaves, {u}, /*retain_graph=*/false, /*create_graph=*/composite);
  for (Tensor& g : grads) g = g.detach();
  return grads;
}

}  // namespace

// ---- forward -----------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(layer_norm_values) {
  // Hand-computed: x = [1, 2, 3, 4] has mean 2.5 and biased variance 1.25, so x̂ = (x − 2.5) / √(1.25 + eps).
  const double eps = 1e-5, r = 1 / std::sqrt(1.25 + eps);
  Tensor x = f64({1, 2, 3, 4, 4, 3, 2, 1}, {2, 4});
  Tensor w = f64({1, 2, 3, 4}, {4}), b = f64({0, 1, 0, -1}, {4});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    Tensor xd = x.to(dtype).to(device), wd = w.to(dtype).to(device), bd = b.to(dtype).to(device);
    double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
    Tensor plain = hg::layer_norm(xd, {4});
    hgtest::check_close(plain, f64({-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r, 1.5 * r, 0.5 * r, -0.5 * r, -1.5 * r}, {2, 4}),
                        tol, tol, "layer_norm");
    Tensor affine = hg::layer_norm(xd, {4}, wd, bd, eps);
    hgtest::check_close(affine,
                        f64({-1.5 * r, -1.0 * r + 1, 1.5 * r, 6 * r - 1, 1.5 * r, 1.0 * r + 1, -1.5 * r, -6 * r - 1},
                            {2, 4}),
                        tol, tol, "layer_norm affine");
    Tensor scale_only = hg::layer_norm(xd, {4}, wd, Tensor(), eps);
    Tensor shift_only = hg::layer_norm(xd, {4}, Tensor(), bd, eps);
    hgtest::check_close(scale_only, plain * wd, tol, tol, "weight only");
    hgtest::check_close(shift_only, plain + bd, tol, tol, "bias only");
    // Over both dims: the 8 values [1..4, 4..1] have mean 2.5 and variance 1.25 as well.
    Tensor both = hg::layer_norm(xd, {2, 4}, hg::full({2, 4}, 2.0, hg::TensorOptions(dtype).device(device)),
                                 hg::zeros({2, 4}, hg::TensorOptions(dtype).device(device)), 0.25);
    hgtest::check_close(both, (x - 2.5) * (2 / std::sqrt(1.5)), tol, tol, "two normalized dims, eps 0.25");
    results.insert(results.end(), {plain, affine, scale_only, shift_only, both});
  }
  // Larger and multi-threaded, odd widths: float32 against float64; a constant row normalises to 0.
  for (int64_t N : {7, 128, 193}) {
    Tensor big = hgtest::uniform({300, 2, N}, -3, 3, 9);
    Tensor bw = hgtest::uniform({2, N}, 0.5, 1.5, 10), bb = hgtest::uniform({2, N}, -1, 1, 12);
    Tensor want = hg::layer_norm(big, {2, N}, bw, bb);
    Tensor got = hg::layer_norm(big.to(hg::kFloat32).to(device), {2, N}, bw.to(hg::kFloat32).to(device),
                                bb.to(hg::kFloat32).to(device));
    hgtest::check_close(got, want, 1e-4, 1e-5, "float32 vs float64");
    results.push_back(got);
  }
  Tensor flat = hg::layer_norm(hg::full({3, 5}, 7.0, hg::TensorOptions(hg::kFloat32).device(device)), {5});
  hgtest::check_close(flat, hg::zeros({3, 5}), 0, 1e-6, "constant rows");
  // A NaN or an infinity poisons its own row only, as in PyTorch.
  Tensor poisoned = hg::layer_norm(
      f64({1, std::nan(""), 3, 1, 2, 3, std::numeric_limits<double>::infinity(), 0, 1}, {3, 3}).to(device), {3});
  std::vector<double> p = poisoned.to(hg::kCPU).to_vector<double>();
  for (int i = 0; i < 3; ++i) CHECK(std::isnan(p[i]));
  hgtest::check_close(poisoned.slice(0, 1, 2), f64({-1, 0, 1}, {1, 3}) * std::sqrt(1.5), 1e-5, 1e-5, "finite row");
  for (int i = 6; i < 9; ++i) CHECK(std::isnan(p[i]));
  results.insert(results.end(), {flat, poisoned});
  return results;
}

// ---- backward ----------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(layer_norm_gradients) {
  // ∂/∂b = Σ g over the rows, ∂/∂w = Σ g ⊙ x̂; with g = 1 the input gradient vanishes (x̂ sums to 0 per row).
  Tensor x = hgtest::uniform({3, 4}, -2, 2, 4);
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    Tensor xd = leaf_on(x, dtype, device);
    Tensor w = hg::ones({4}, hg::TensorOptions(dtype).device(device)).requires_grad_();
    Tensor b = hg::zeros({4}, hg::TensorOptions(dtype).device(device)).requires_grad_();
    Tensor y = hg::layer_norm(xd, {4}, w, b);
    y.sum().backward();
    double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
    hgtest::check_close(xd.grad(), hg::zeros({3, 4}), 0, tol, "dx for g = 1");
    hgtest::check_close(b.grad(), hg::full({4}, 3.0), tol, tol, "db");
    hgtest::check_close(w.grad(), y.detach().sum({0}), tol, tol, "dw");
    results.insert(results.end(), {xd.grad(), w.grad(), b.grad()});
  }
  return results;
}

HG_BACKEND_TEST(layer_norm_fused_backward) {
  // Every gradient of the fused kernel against the float64 composite on the CPU: odd widths, one row and many (33
  // rows of 192 are several of the kernel's row blocks), with and without weight and bias, contiguous and
  // transposed inputs, float32 and float64.
  Tensors results;
  int seed = 100;
  for (auto [rows, N] : {std::pair<int64_t, int64_t>{1, 7}, {33, 7}, {1, 192}, {33, 192}, {300, 192}}) {
    for (bool transposed : {false, true}) {
      const Tensor x = hgtest::uniform(transposed ? hg::Shape{N, rows} : hg::Shape{rows, N}, -2, 2, seed++);
      const Tensor w = hgtest::uniform({N}, 0.5, 1.5, seed++), b = hgtest::uniform({N}, -1, 1, seed++);
      const Tensor u = hgtest::uniform({rows, N}, -1, 1, seed++);
      auto input = [transposed](const Tensor& t) { return transposed ? t.t() : t; };
      for (int affine = 0; affine < 4; ++affine) {  // bit 0: weight, bit 1: bias
        auto leaf = [&](const Tensor& t, hg::DType dtype, hg::Device d, int bit) {
          return affine & bit ? leaf_on(t, dtype, d) : Tensor();
        };
        const Tensors want = layer_norm_grads(input, leaf_on(x, hg::kFloat64, hg::kCPU), {N},
                                              leaf(w, hg::kFloat64, hg::kCPU, 1), leaf(b, hg::kFloat64, hg::kCPU, 2),
                                              u, /*composite=*/true);
        for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
          INFO("rows " << rows << ", N " << N << ", transposed " << transposed << ", affine " << affine
               << ", float" << (dtype == hg::kFloat32 ? 32 : 64));
          const Tensors got = layer_norm_grads(input, leaf_on(x, dtype, device), {N}, leaf(w, dtype, device, 1),
                                               leaf(b, dtype, device, 2), u.to(dtype).to(device),
                                               /*composite=*/false);
          REQUIRE(got.size() == want.size());
          const double tol = dtype == hg::kFloat32 ? 2e-5 : 1e-12;
          for (size_t i = 0; i < got.size(); ++i) {
            CHECK(got[i].dtype() == dtype);
            hgtest::check_close(got[i], want[i], tol, tol, i == 0 ? "dx" : "dweight or dbias");
          }
          results.insert(results.end(), got.begin(), got.end());
        }
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(layer_norm_fused_backward_partial) {
  // Only some inputs require grad: the kernel computes just those outputs (grad_x alone, grad_weight and grad_bias
  // alone, grad_weight alone), and they match the composite's.
  const Tensor x = hgtest::uniform({5, 3, 11}, -2, 2, 31), u = hgtest::uniform({5, 3, 11}, -1, 1, 32);
  const Tensor w = hgtest::uniform({3, 11}, 0.5, 1.5, 33), b = hgtest::uniform({3, 11}, -1, 1, 34);
  auto same = [](const Tensor& t) { return t; };
  Tensors results;
  for (int needs = 1; needs < 8; ++needs) {  // bit 0: x, bit 1: weight, bit 2: bias
    CAPTURE(needs);
    auto on = [&](const Tensor& t, hg::Device d, int bit) {
      Tensor c = t.to(d).detach().clone();
      return needs & bit ? c.requires_grad_() : c;
    };
    const Tensors want =
        layer_norm_grads(same, on(x, hg::kCPU, 1), {3, 11}, on(w, hg::kCPU, 2), on(b, hg::kCPU, 4), u, true);
    const Tensors got =
        layer_norm_grads(same, on(x, device, 1), {3, 11}, on(w, device, 2), on(b, device, 4), u.to(device), false);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) hgtest::check_close(got[i], want[i], 1e-12, 1e-12);
    results.insert(results.end(), got.begin(), got.end());
  }
  // No rows: dweight and dbias are sums over nothing, zeros.
  Tensor empty_x = hg::zeros({0, 4}, hg::TensorOptions(hg::kFloat64).device(device)).requires_grad_();
  Tensor ew = hg::ones({4}, hg::TensorOptions(hg::kFloat64).device(device)).requires_grad_();
  Tensor eb = hg::ones({4}, hg::TensorOptions(hg::kFloat64).device(device)).requires_grad_();
  hg::layer_norm(empty_x, {4}, ew, eb).sum().backward();
  CHECK(empty_x.grad().sizes() == hg::Shape{0, 4});
  hgtest::check_close(ew.grad(), hg::zeros({4}, hg::kFloat64), 0, 0, "dweight of no rows");
  hgtest::check_close(eb.grad(), hg::zeros({4}, hg::kFloat64), 0, 0, "dbias of no rows");
  results.insert(results.end(), {ew.grad(), eb.grad()});
  return results;
}

HG_BACKEND_TEST(layer_norm_fused_backward_with_statistics_gradients) {
  // L = Σ u ⊙ y + Σ (∂(Σ v ⊙ y)/∂x)²: the second term's gradient reaches the node's mean and rstd outputs (the
  // first-order formula uses them), so the node's backward gets g[0] from the first term together with g[1] and
  // g[2]. Without create_graph the fused kernel gives the g[0] part and ops add the mean/rstd terms; it must match
  // the composite.
  const Tensor x = hgtest::uniform({6, 9}, -2, 2, 41), w = hgtest::uniform({9}, 0.5, 1.5, 42);
  const Tensor b = hgtest::uniform({9}, -1, 1, 43);
  const Tensor u = hgtest::uniform({6, 9}, -1, 1, 44), v = hgtest::uniform({6, 9}, -1, 1, 45);
  auto run = [&](hg::DType dtype, hg::Device d, bool composite) {
    Tensor xl = leaf_on(x, dtype, d), wl = leaf_on(w, dtype, d), bl = leaf_on(b, dtype, d);
    Tensor y = hg::layer_norm(xl, {9}, wl, bl);
    Tensor dx = hg::grad({y}, {xl}, {v.to(dtype).to(d)}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    Tensor loss = hg::sum(y * u.to(dtype).to(d)) + hg::sum(dx * dx);
    Tensors grads = hg::grad({loss}, {xl, wl, bl}, {}, false, composite);
    for (Tensor& g : grads) g = g.detach();
    return grads;
  };
  const Tensors want = run(hg::kFloat64, hg::kCPU, true);
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    const Tensors got = run(dtype, device, false);
    const double tol = dtype == hg::kFloat32 ? 1e-4 : 1e-11;
    for (size_t i = 0; i < got.size(); ++i) hgtest::check_close(got[i], want[i], tol, tol, "with mean/rstd grads");
    results.insert(results.end(), got.begin(), got.end());
  }
  return results;
}

TEST_CASE("layer_norm: the fused backward gives the same bits on 1 and 2 threads, run after run") {
  // Rows are split among threads in blocks whose size depends on N alone, and the blocks' partial column sums are
  // added in block order: nothing depends on the thread count.
  const Tensor x = hgtest::uniform({650, 192}, -3, 3, 51).to(hg::kFloat32);
  const Tensor w = hgtest::uniform({192}, 0.5, 1.5, 52).to(hg::kFloat32);
  const Tensor b = hgtest::uniform({192}, -1, 1, 53).to(hg::kFloat32);
  const Tensor u = hgtest::uniform({650, 192}, -1, 1, 54).to(hg::kFloat32);
  auto run = [&](int threads) {
    const int previous = hg::get_num_threads();
    hg::set_num_threads(threads);
    auto same = [](const Tensor& t) { return t; };
    Tensors grads = layer_norm_grads(same, leaf_on(x, hg::kFloat32, hg::kCPU), {192}, leaf_on(w, hg::kFloat32, hg::kCPU),
                                     leaf_on(b, hg::kFloat32, hg::kCPU), u, false);
    hg::set_num_threads(previous);
    return grads;
  };
  const Tensors one = run(1), two = run(2), again = run(2);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(hg::max_abs_diff(one[i], two[i]) == 0.0);
    CHECK(hg::max_abs_diff(two[i], again[i]) == 0.0);
  }
}

TEST_CASE("gradcheck: layer_norm with and without weight/bias, over one and two dims") {
  Tensor x = hgtest::uniform({3, 4}, -2, 2, 1);
  Tensor x3 = hgtest::uniform({2, 3, 4}, -2, 2, 2);
  Tensor w = hgtest::uniform({4}, 0.5, 1.5, 3), b = hgtest::uniform({4}, -1, 1, 4);
  Tensor w2 = hgtest::uniform({3, 4}, 0.5, 1.5, 5), b2 = hgtest::uniform({3, 4}, -1, 1, 6);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}, t[1], t[2]); }, {x, w, b});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}, t[1]); }, {x3, w});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}, Tensor(), t[1], 0.1); }, {x3, b});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {3, 4}, t[1], t[2]); }, {x3, w2, b2});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {3, 4}, t[1].t(), t[2]); },
                    {x3, w2.t().contiguous(), b2});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0].transpose(0, 1), {3}, t[1]); },
                    {x, hgtest::uniform({3}, 0.5, 1.5, 7)});
  // An odd width, and a row broadcast over the batch (stride 0): its gradient sums over the copies.
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {7}, t[1], t[2]); },
                    {hgtest::uniform({5, 7}, -2, 2, 10), hgtest::uniform({7}, 0.5, 1.5, 11),
                     hgtest::uniform({7}, -1, 1, 12)});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0].expand({4, 2, 5}), {5}, t[1]); },
                    {hgtest::uniform({2, 5}, -2, 2, 13), hgtest::uniform({5}, 0.5, 1.5, 14)});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0], {4}, t[1], t[2]); }, {x, w, b});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::layer_norm(t[0].transpose(1, 2), {3, 2}, t[1]); },
                        {hgtest::uniform({2, 2, 3}, -2, 2, 8), hgtest::uniform({3, 2}, 0.5, 1.5, 9)});
}

TEST_CASE("errors: layer_norm") {
  Tensor x = hg::ones({2, 3});
  CHECK_THROWS_WITH_AS(hg::layer_norm(x, {4}), doctest::Contains("expected an input of shape [*, 4], got float32[2, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::layer_norm(x, {}), doctest::Contains("must be non-empty"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::layer_norm(x, {1, 2, 3}), doctest::Contains("trailing dims"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::layer_norm(x, {3}, hg::ones({2})),
                       doctest::Contains("weight must have shape normalized_shape [3], got float32[2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::layer_norm(x, {3}, Tensor(), hg::ones({3}, hg::kFloat64)),
                       doctest::Contains("bias (float64[3] cpu) must have the input's dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::layer_norm(hg::ones({2, 3}, hg::kInt64), {3}),
                       doctest::Contains("layer_norm: expects a floating-point input"), hg::Error);
}

TEST_CASE("errors: layer_norm_backward kernel") {
  // The frontend never passes these; the kernel still refuses them instead of reading out of bounds.
  hg::Backend& cpu = hg::cpu_backend();
  Tensor g = hg::ones({2, 3}), x = hg::ones({2, 3}), mean = hg::zeros({2}), rstd = hg::ones({2});
  Tensor dx = hg::empty({2, 3}), dw = hg::empty({3});
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(hg::ones({3, 2}).t(), x, nullptr, mean, rstd, 3, &dx, nullptr, nullptr),
                       doctest::Contains("layer_norm_backward kernel: expects contiguous grad_out and input"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(g, x, nullptr, hg::zeros({3}), rstd, 3, &dx, nullptr, nullptr),
                       doctest::Contains("[rows = 3] × 3 elements, got float32[2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(g, x, nullptr, mean, hg::ones({2}, hg::kFloat64), 3, &dx, nullptr,
                                               nullptr),
                       doctest::Contains("mean/rstd must be contiguous float32 with 2 elements"), hg::Error);
  Tensor bad_weight = hg::ones({4});
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(g, x, &bad_weight, mean, rstd, 3, &dx, &dw, nullptr),
                       doctest::Contains("weight must be contiguous float32 with 3 elements, got float32[4]"),
                       hg::Error);
  Tensor bad_dx = hg::empty({2, 3}, hg::kFloat64);
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(g, x, nullptr, mean, rstd, 3, &bad_dx, nullptr, nullptr),
                       doctest::Contains("grad_x must be contiguous like the input float32[2, 3]"), hg::Error);
  Tensor bad_dw = hg::empty({2});
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(g, x, nullptr, mean, rstd, 3, nullptr, &bad_dw, nullptr),
                       doctest::Contains("grad_weight/grad_bias must be contiguous float32 with 3 elements"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(cpu.layer_norm_backward(hg::ones({2, 3}, hg::kInt64), hg::ones({2, 3}, hg::kInt64), nullptr,
                                               hg::zeros({2}, hg::kInt64), hg::ones({2}, hg::kInt64), 3, nullptr,
                                               nullptr, nullptr),
                       doctest::Contains("layer_norm_backward: dtype int64 is not supported"), hg::Error);
}
