// Engine behaviour: accumulation, retain_graph, freed graphs, hooks, version counter, deep chains, grad().
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
