// Engine behaviour: accumulation, retain_graph, freed graphs, hooks, version counter, deep chains, grad().
#include <cmath>
#include <thread>

#include "testing.h"

using hg::Tensor;

TEST_CASE("autograd: gradients accumulate into leaves across backward calls") {
  Tensor x = hg::from_vector<double>({1, 2, 3}, {3}, hg::kFloat64).requires_grad_();
  (x * x).sum().backward();
  (x * 3.0).sum().backward();
  hgtest::check_close(x.grad(), hg::from_vector<double>({5, 7, 9}, {3}, hg::kFloat64));
  x.grad().zero_();
  (x * 2.0).sum().backward();
  hgtest::check_close(x.grad(), hg::full({3}, 2.0, hg::kFloat64));
}

TEST_CASE("autograd: a non-scalar output needs an explicit gradient") {
  Tensor x = hg::ones({2, 3}, hg::kFloat64).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("one-element outputs"), hg::Error);
  y.backward(hg::ones({2, 3}, hg::kFloat64));
  hgtest::check_close(x.grad(), hg::full({2, 3}, 2.0, hg::kFloat64));
}

TEST_CASE("autograd: backward twice through a freed graph is an error; retain_graph allows it") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  hgtest::check_close(x.grad(), hg::from_vector<double>({4, 8}, {2}, hg::kFloat64));
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("second time"), hg::Error);
}

TEST_CASE("autograd: in-place change of a saved tensor is detected") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  Tensor a = x * 1.0;
  Tensor y = (a * a).sum();
  a.add_(1.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("modified by an in-place operation"), hg::Error);
}

TEST_CASE("autograd: in-place on a leaf that requires grad is refused outside NoGradGuard") {
  Tensor x = hg::ones({2}, hg::kFloat64).requires_grad_();
  CHECK_THROWS_WITH_AS(x.add_(1.0), doctest::Contains("leaf tensor that requires grad"), hg::Error);
  {
    hg::NoGradGuard guard;
    x.add_(1.0);
  }
  hgtest::check_close(x, hg::full({2}, 2.0, hg::kFloat64));
}

TEST_CASE("autograd: NoGradGuard builds no graph and is thread-local") {
  Tensor x = hg::ones({2}, hg::kFloat64).requires_grad_();
  {
    hg::NoGradGuard guard;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
  }
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("autograd: a 100000-op chain neither overflows the stack in backward nor in destruction") {
  Tensor x = hg::ones({1}, hg::kFloat64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0;
  y.sum().backward();
  CHECK(x.grad().item<double>() == 1.0);
  y = Tensor();  // destroys the chain (already freed by backward)
  Tensor z = x;
  for (int i = 0; i < 100000; ++i) z = z + 0.0;
  z = Tensor();  // destroys an un-backwarded chain
}

TEST_CASE("autograd: hooks see and may replace gradients") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  Tensor seen;
  x.register_hook([&](const Tensor& g) {
    seen = g.clone();
    return g * 10.0;
  });
  Tensor h = x * 3.0;
  h.retain_grad();
  h.register_hook([](const Tensor& g) { return g * 2.0; });
  h.sum().backward();
  hgtest::check_close(seen, hg::full({2}, 6.0, hg::kFloat64));
  hgtest::check_close(x.grad(), hg::full({2}, 60.0, hg::kFloat64));
  hgtest::check_close(h.grad(), hg::full({2}, 2.0, hg::kFloat64));
}

TEST_CASE("autograd: a hook that registers another hook: the others still run, the new one from the next backward") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  Tensor h = x * 2.0;
  int added = 0;
  h.register_hook([&](const Tensor&) {
    if (added++ == 0)  // reallocates the node's hook list while it is being walked
      for (int i = 0; i < 8; ++i) h.register_hook([i](const Tensor& g) { return i == 0 ? g * 100.0 : g; });
    return Tensor();
  });
  h.register_hook([](const Tensor& g) { return g * 3.0; });
  h.sum().backward(Tensor(), true);
  hgtest::check_close(x.grad(), hg::full({2}, 6.0, hg::kFloat64));
  x.set_grad(Tensor());
  h.sum().backward();
  hgtest::check_close(x.grad(), hg::full({2}, 600.0, hg::kFloat64));
}

TEST_CASE("autograd: a hook may not change a gradient's shape or dtype") {
  Tensor x = hg::from_vector<double>({1, 2, 3}, {3}, hg::kFloat64).requires_grad_();
  Tensor h = x * 2.0;
  h.register_hook([](const Tensor& g) { return g.unsqueeze(0).expand({2, 3}); });
  CHECK_THROWS_WITH_AS(h.sum().backward(), doctest::Contains("not the shape, dtype or device"), hg::Error);
  Tensor y = x * 2.0;
  y.register_hook([](const Tensor& g) { return g.to(hg::kFloat32); });
  CHECK_THROWS_WITH_AS(y.sum().backward(), doctest::Contains("output 0 of 'mul'"), hg::Error);
  Tensor leaf = hg::ones({3}, hg::kFloat64).requires_grad_();
  leaf.register_hook([](const Tensor& g) { return g.sum(); });
  CHECK_THROWS_WITH_AS((leaf * 2.0).sum().backward(), doctest::Contains("the leaf"), hg::Error);
}

TEST_CASE("autograd: a floating gradient passed to backward() is cast to the output's dtype") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  (x * 1.0000001).backward(hg::ones({2}, hg::kFloat32));  // float32 would round the product's gradient
  CHECK(x.grad().dtype() == hg::kFloat64);
  CHECK(x.grad().to_vector<double>()[0] == doctest::Approx(1.0000001).epsilon(1e-15));
  x.set_grad(Tensor());
  x.backward(hg::ones({2}, hg::kFloat32));  // a leaf root
  CHECK(x.grad().dtype() == hg::kFloat64);
  CHECK_THROWS_WITH_AS((x * 2.0).backward(hg::ones({2}, hg::kInt64)), doctest::Contains("must be floating point"),
                       hg::Error);
}

TEST_CASE("autograd: hg::grad applies a leaf's hooks as backward() does") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  x.register_hook([](const Tensor& g) { return g * 10.0; });
  Tensor h = x * 2.0;
  h.register_hook([](const Tensor& g) { return g * 10.0; });
  auto g = hg::grad({h.sum()}, {h, x}, {}, true);
  hgtest::check_close(g[0], hg::full({2}, 10.0, hg::kFloat64));
  hgtest::check_close(g[1], hg::full({2}, 200.0, hg::kFloat64));
  CHECK_FALSE(x.grad().defined());
  h.sum().backward();
  hgtest::check_close(x.grad(), hg::full({2}, 200.0, hg::kFloat64));
}

TEST_CASE("autograd: a leaf set to requires_grad_(false) after the graph was built gets no gradient") {
  Tensor x = hg::ones({3}, hg::kFloat64).requires_grad_();
  Tensor y = (x * 2.0).sum();
  x.requires_grad_(false);
  y.backward();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: retain_grad under create_graph keeps a differentiable gradient") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}, hg::kFloat64).requires_grad_();
  Tensor h = x * x;
  h.retain_grad();
  (h * h).sum().backward(Tensor(), false, true);
  hgtest::check_close(h.grad(), hg::from_vector<double>({2, 8}, {2}, hg::kFloat64));  // 2h
  REQUIRE(h.grad().requires_grad());
  auto g = hg::grad({h.grad().sum()}, {x});  // d(2x²)/dx = 4x
  hgtest::check_close(g[0], hg::from_vector<double>({4, 8}, {2}, hg::kFloat64));
}

TEST_CASE("autograd: grad() returns gradients without touching .grad(), and differentiates twice") {
  Tensor x = hg::from_vector<double>({1, 2, 3}, {3}, hg::kFloat64).requires_grad_();
  Tensor y = (x * x * x).sum();
  auto g = hg::grad({y}, {x}, {}, true, true);
  hgtest::check_close(g[0], hg::from_vector<double>({3, 12, 27}, {3}, hg::kFloat64));
  CHECK_FALSE(x.grad().defined());
  auto gg = hg::grad({g[0].sum()}, {x});
  hgtest::check_close(gg[0], hg::from_vector<double>({6, 12, 18}, {3}, hg::kFloat64));
}

TEST_CASE("autograd: broadcasting gradients are summed back to the input shape") {
  Tensor a = hg::ones({2, 3}, hg::kFloat64).requires_grad_();
  Tensor b = hg::ones({3}, hg::kFloat64).requires_grad_();
  (a * b).sum().backward();
  hgtest::check_close(b.grad(), hg::full({3}, 2.0, hg::kFloat64));
}

TEST_CASE("gradcheck: add, sub, mul, div, pow with broadcasting and non-contiguous inputs") {
  auto x = hgtest::uniform({3, 4}, 0.5, 2.0, 1);
  auto y = hgtest::uniform({4}, 0.5, 2.0, 2);
  auto z = hgtest::uniform({4, 3}, 0.5, 2.0, 3);
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0] + t[1]; }, {x, y});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0] - t[1] * 2.0; }, {x, y});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0] * t[1].t(); }, {x, z});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0] / t[1]; }, {x, y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::pow(t[0], t[1]); }, {x, y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::pow(t[0], 3.0) + 2.0 / t[0] - t[0] / 4.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::pow(2.0, t[0]); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return t[0] * t[1] / (t[0] + t[1]); }, {x, y});
}

TEST_CASE("pow's gradients at the points where the formula is 0·inf, as PyTorch's") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  // ∂(0^a)/∂a: 0 for a ≥ 0 (0·ln 0 = 0·(−inf) gave NaN, and −inf at a = 0); y·ln 0 = −inf for a < 0.
  hg::Tensor a = hg::from_vector<double>({0.0, 1.0, 2.0, -1.0}, {4}).requires_grad_();
  hg::pow(0.0, a).sum().backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>{0.0, 0.0, 0.0, -inf});
  // ∂(x^e)/∂x where e = 0: 0 (e·x^(e−1) = 0·inf gave NaN at x = 0, subnormal x and NaN).
  hg::Tensor x = hg::from_vector<double>({0.0, 1e-320, nan, 2.0}, {4}).requires_grad_();
  hg::Tensor e = hg::from_vector<double>({0.0, 0.0, 0.0, 3.0}, {4});
  hg::pow(x, e).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0.0, 0.0, 0.0, 12.0});
  // Broadcast exponent, and the second derivative stays defined away from those points.
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::pow(t[0], t[1]); },
                        {hgtest::uniform({3, 4}, 0.5, 2.0, 5), hgtest::uniform({4}, 0.5, 2.0, 6)});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::pow(0.0, t[0]); }, {hgtest::uniform({4}, 0.5, 2.0, 7)});
}

TEST_CASE("gradcheck: maximum and minimum, with broadcasting and ties; a NaN pair passes the gradient to both") {
  auto x = hgtest::uniform({3, 4}, -1, 1, 11), y = hgtest::uniform({4}, -1, 1, 12);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::maximum(t[0], t[1]); }, {x, y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::minimum(t[0].t(), t[1].unsqueeze(1)); }, {x, y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::maximum(t[0], t[1]) * t[0]; }, {x, y});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (bool is_max : {true, false}) {
    CAPTURE(is_max);
    // a wins, b wins, a tie (halved), NaN on either side or both: each side loses the gradient only where the
    // other is strictly selected (torch: grad.masked_fill(a < b, 0) and a tie's half).
    hg::Tensor a = hg::from_vector<double>({2, -1, 0.5, nan, 0, nan}, {6}).requires_grad_();
    hg::Tensor b = hg::from_vector<double>({-1, 2, 0.5, 0, nan, nan}, {6}).requires_grad_();
    (is_max ? hg::maximum(a, b) : hg::minimum(a, b)).sum().backward();
    std::vector<double> ga = is_max ? std::vector<double>{1, 0, 0.5, 1, 1, 1} : std::vector<double>{0, 1, 0.5, 1, 1, 1};
    std::vector<double> gb = is_max ? std::vector<double>{0, 1, 0.5, 1, 1, 1} : std::vector<double>{1, 0, 0.5, 1, 1, 1};
    CHECK(a.grad().to_vector<double>() == ga);
    CHECK(b.grad().to_vector<double>() == gb);
  }
}

TEST_CASE("pow with a scalar exponent of ±0.5 is sqrt / rsqrt, as torch (C's pow differs at −inf and −0)") {
  const double inf = std::numeric_limits<double>::infinity();
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    const hg::Tensor x = hg::from_vector<double>({-inf, -0.0, 4.0, -1.0, 0.25}, {5}).to(dtype);
    const auto half = hg::pow(x, 0.5).to(hg::kFloat64).to_vector<double>();
    CHECK(std::isnan(half[0]));
    CHECK((half[1] == 0.0 && std::signbit(half[1])));
    CHECK(half[2] == 2.0);
    CHECK(std::isnan(half[3]));
    CHECK(half[4] == 0.5);
    const auto minus_half = hg::pow(x, -0.5).to(hg::kFloat64).to_vector<double>();
    CHECK(std::isnan(minus_half[0]));
    CHECK(minus_half[1] == -inf);
    CHECK(minus_half[2] == 0.5);
    CHECK(minus_half[4] == 2.0);
  }
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::pow(t[0], 0.5) + hg::pow(t[0], -0.5); },
                    {hgtest::uniform({3, 4}, 0.5, 2.0, 9)});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::pow(t[0], 0.5); }, {hgtest::uniform({4}, 0.5, 2.0, 10)});
}

TEST_CASE("gradcheck: matmul in all its shapes") {
  auto a = hgtest::uniform({2, 3, 4}, -1, 1, 1);
  auto b = hgtest::uniform({4, 5}, -1, 1, 2);
  auto v = hgtest::uniform({4}, -1, 1, 3);
  auto c = hgtest::uniform({1, 4, 2}, -1, 1, 4);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {a, b});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {a, v});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {b.t().contiguous(), v});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[1], t[0]); }, {b, v});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {v, v});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {a, c});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::matmul(t[0].transpose(1, 2), t[1]); },
                    {hgtest::uniform({2, 4, 3}), hgtest::uniform({2, 4, 5})});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::matmul(t[0], t[1]); }, {a, b});
}

TEST_CASE("gradcheck: views") {
  auto x = hgtest::uniform({2, 3, 4});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].view({6, 4}) * 1.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].permute({2, 0, 1}).reshape({4, 6}) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].narrow(1, 1, 2) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].slice(2, 0, 4, 2) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].select(0, 1) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].unsqueeze(1).expand({2, 5, 3, 4}) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].flatten(1).unsqueeze(0).squeeze(0) * 2.0; }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return t[0].as_strided({3, 3}, {1, 2}, 1) * 2.0; }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return t[0].select(1, 2) * t[0].select(1, 0); }, {x});
}

TEST_CASE("autograd: a gradient kept by create_graph is a tensor of its own, which later backwards add into") {
  // The sum's gradient is a stride-0 expansion of one value, shared by both inputs of the add: stored as it came,
  // the second backward added into that one element (x.grad 4 4 4 instead of 2 2 2; a and b ended equal).
  Tensor x = hg::from_vector<double>({1, 2, 3}, {3}).requires_grad_();
  x.sum().backward(Tensor(), true, true);
  x.sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
  Tensor a = hg::from_vector<double>({1, 2}, {2}).requires_grad_();
  Tensor b = hg::from_vector<double>({3, 4}, {2}).requires_grad_();
  (a + b).sum().backward(Tensor(), true, true);
  (a * 3.0 + b).sum().backward();
  CHECK(a.grad().to_vector<double>() == std::vector<double>{4, 4});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{2, 2});
}

TEST_CASE("autograd: create_graph keeps the graph (it implies retain_graph, as in PyTorch)") {
  // exp saves its output; the double backward runs through it again.
  Tensor x = hg::from_vector<double>({0, 1}, {2}).requires_grad_();
  x.exp().sum().backward(Tensor(), /*retain_graph=*/false, /*create_graph=*/true);
  Tensor g = x.grad();
  x.set_grad({});
  g.sum().backward();
  hgtest::check_close(x.grad(), hg::from_vector<double>({1, std::exp(1.0)}, {2}), 1e-15, 0, "d/dx exp");
  Tensor y = hg::from_vector<double>({0.5}, {1}).requires_grad_();
  Tensor dy = hg::grad({y.exp().sum()}, {y}, {}, /*retain_graph=*/false, /*create_graph=*/true)[0];
  hgtest::check_close(hg::grad({dy.sum()}, {y})[0], y.exp().detach(), 1e-15, 0, "hg::grad twice");
}

TEST_CASE("autograd: hg::grad leaves the nodes it did not need usable for a later backward") {
  // hg::grad({out1}, {a}) needs only a's branch; cd = c·c, shared with out2, was freed all the same.
  Tensor a = hg::from_vector<double>({1, 2}, {2}).requires_grad_();
  Tensor c = hg::from_vector<double>({3, 4}, {2}).requires_grad_();
  Tensor cd = c * c;
  Tensor out1 = (a * a + cd).sum(), out2 = (cd * 2.0).sum();
  hgtest::check_close(hg::grad({out1}, {a})[0], hg::from_vector<double>({2, 4}, {2}), 0, 0, "d out1 / da");
  out2.backward();
  hgtest::check_close(c.grad(), hg::from_vector<double>({12, 16}, {2}), 0, 0, "d out2 / dc");
}

TEST_CASE("autograd: expand refuses a negative size other than -1") {
  CHECK_THROWS_WITH_AS(hg::ones({1}).expand({-2}), doctest::Contains("expand: size -2 at dimension 0 is negative"),
                       hg::Error);
}

TEST_CASE("autograd: as_strided with gradients refuses a view beyond the input's own elements") {
  // The input is part of a larger storage; its backward scatters into the input's elements only (it read
  // outside that buffer before).
  Tensor x = hg::arange(6.0, hg::kFloat64).requires_grad_();
  Tensor part = (x * 1.0).narrow(0, 0, 3);
  CHECK_THROWS_WITH_AS(part.as_strided({2}, {1}, 4), doctest::Contains("must stay within the input's own elements"),
                       hg::Error);
  Tensor later = (x * 1.0).narrow(0, 2, 3);
  CHECK_THROWS_WITH_AS(later.as_strided({2}, {1}, 0), doctest::Contains("(offsets 2 to 4)"), hg::Error);
  // Inside them it works as before.
  later.as_strided({2}, {1}, 3).sum().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 1, 1, 0});
}

TEST_CASE("autograd: requires_grad_(true) on a computed tensor is a no-op; (false) is refused") {
  Tensor x = hg::from_vector<double>({1, 2}, {2}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK(y.requires_grad_().requires_grad());  // as PyTorch: it already requires grad
  CHECK_THROWS_WITH_AS(y.requires_grad_(false), doctest::Contains("only leaf tensors can change requires_grad"),
                       hg::Error);
}

TEST_CASE("views: squeeze and flatten of a 0-dim tensor take dims -1 and 0 only, as PyTorch") {
  Tensor s = hg::scalar_tensor(1.0);
  CHECK(s.squeeze(0).dim() == 0);
  CHECK(s.squeeze(-1).dim() == 0);
  CHECK(s.flatten(0, -1).sizes() == hg::Shape{1});
  CHECK_THROWS_WITH_AS(s.squeeze(5), doctest::Contains("squeeze"), hg::Error);
  CHECK_THROWS_WITH_AS(s.flatten(3, 7), doctest::Contains("flatten"), hg::Error);
}

TEST_CASE("autograd: backward on several threads through a shared parameter accumulates every gradient") {
  // One weight used by graphs built and run on four threads at once (as PyTorch allows): its accumulator is made
  // once, under a lock, and each thread's gradient is added under the accumulator's lock. Unlocked, the threads
  // raced on the accumulator's weak_ptr and on .grad's buffer (lost updates).
  Tensor w = hgtest::uniform({16, 16}, -1, 1, 21).requires_grad_();
  constexpr int kThreads = 4, kSteps = 40;
  auto input = [](int thread, int step) { return hgtest::uniform({8, 16}, -1, 1, 1000 + 100 * thread + step); };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int s = 0; s < kSteps; ++s) hg::sum(hg::tanh(hg::matmul(input(t, s), w))).backward();
    });
  for (std::thread& t : threads) t.join();
  // The same gradients, one after the other, on a copy of the weight.
  Tensor serial = w.detach().clone().requires_grad_();
  for (int t = 0; t < kThreads; ++t)
    for (int s = 0; s < kSteps; ++s) hg::sum(hg::tanh(hg::matmul(input(t, s), serial))).backward();
  hgtest::check_close(w.grad(), serial.grad(), 1e-12, 1e-12, "gradients summed over threads");
}
