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

TEST_CASE("matmul: float32 batches that overlap in memory (a sliding-window view) equal the copied operand") {
  // Windows of 3 rows sliding by one row over a [6, 4] matrix: batch stride 4 < one window's span 12.
  hg::Tensor base = hg::randn({6, 4});
  hg::Tensor windows = base.as_strided({4, 3, 4}, {4, 4, 1}, 0);
  hg::Tensor rhs = hg::randn({4, 4, 2});
  hg::Tensor got = hg::matmul(windows, rhs);
  hg::Tensor want = hg::matmul(windows.contiguous(), rhs);
  CHECK(hg::allclose(got, want, 1e-6, 1e-6));
  CHECK(hg::allclose(hg::matmul(rhs.transpose(1, 2), windows.transpose(1, 2)), want.transpose(1, 2), 1e-6, 1e-6));
}
