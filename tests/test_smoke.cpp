#include <doctest/doctest.h>

#include <hopgrad/hopgrad.h>

TEST_CASE("smoke: add, mul, matmul, sum and backward") {
  auto a = hg::from_vector<double>({1, 2, 3, 4}, {2, 2}, hg::kFloat64).requires_grad_();
  auto b = hg::from_vector<double>({5, 6, 7, 8}, {2, 2}, hg::kFloat64).requires_grad_();
  auto y = (hg::matmul(a, b) * a + b).sum();
  y.backward();
  CHECK(y.item<double>() == doctest::Approx(19 * 1 + 22 * 2 + 43 * 3 + 50 * 4 + 26));
  auto ga = a.grad().to_vector<double>();
  CHECK(ga.size() == 4);
}
