// Bad input gets a clear hg::Error naming the op, what it got and what it expected.
#include "testing.h"

using hg::Tensor;

TEST_CASE("errors: mismatched matmul shapes") {
  CHECK_THROWS_WITH_AS(hg::matmul(hg::ones({2, 3}), hg::ones({4, 5})),
                       doctest::Contains("matmul: shapes [2, 3] and [4, 5] cannot be multiplied"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::bmm(hg::ones({2, 3, 4}), hg::ones({3, 4, 5})), doctest::Contains("bmm"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::matmul(hg::ones({3}), hg::ones({4})), doctest::Contains("different lengths"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::matmul(hg::ones({2, 2}), hg::ones({2, 2}, hg::kFloat64)),
                       doctest::Contains("dtypes differ"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::ones({2, 3}), hg::ones({4, 5})), doctest::Contains("in_features 5"), hg::Error);
}

TEST_CASE("errors: non-broadcastable shapes") {
  CHECK_THROWS_WITH_AS(hg::add(hg::ones({2, 3}), hg::ones({4})),
                       doctest::Contains("add: shapes [2, 3] and [4] cannot be broadcast"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::ones({2, 3}).expand({2, 4}), doctest::Contains("expand"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::zeros({3}).copy_(hg::ones({2})), doctest::Contains("copy_"), hg::Error);
}

TEST_CASE("errors: out-of-range dims and bad views") {
  Tensor x = hg::ones({2, 3});
  CHECK_THROWS_WITH_AS(x.transpose(0, 2), doctest::Contains("dimension 2 out of range for a 2-D tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(x.size(-3), doctest::Contains("out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(x.select(1, 3), doctest::Contains("index 3 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(x.narrow(1, 2, 2), doctest::Contains("narrow"), hg::Error);
  CHECK_THROWS_WITH_AS(x.view({4, 2}), doctest::Contains("invalid for input of shape [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(x.t().view({6}), doctest::Contains("use reshape()"), hg::Error);
  CHECK_THROWS_WITH_AS(x.permute({0, 0}), doctest::Contains("repeated"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::sum(x, {0, 0}), doctest::Contains("appears twice"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::ones({1, 2, 3, 4, 5, 6, 7, 8, 9}), doctest::Contains("at most 8 dimensions"), hg::Error);
}

TEST_CASE("errors: wrong dtype") {
  CHECK_THROWS_WITH_AS(hg::ones({2}, hg::kInt64).requires_grad_(), doctest::Contains("floating-point"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::mean(hg::ones({2}, hg::kInt64)), doctest::Contains("mean: expects a floating-point"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::where(hg::ones({2}), hg::ones({2}), hg::ones({2})),
                       doctest::Contains("where: condition must be bool"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::ones({2}).data_ptr<double>(), doctest::Contains("dtype float32"), hg::Error);
}

TEST_CASE("errors: item, undefined tensors and devices") {
  CHECK_THROWS_WITH_AS(hg::ones({2}).item<float>(), doctest::Contains("exactly one element"), hg::Error);
  CHECK_THROWS_WITH_AS(Tensor().sizes(), doctest::Contains("undefined tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::add(Tensor(), hg::ones({1})), doctest::Contains("undefined"), hg::Error);
  if (!hg::cuda_is_available()) {
    CHECK_THROWS_WITH_AS(hg::ones({2}, hg::Device::cuda(0)), doctest::Contains("cuda:0"), hg::Error);
  } else {
    CHECK_THROWS_WITH_AS(hg::add(hg::ones({2}), hg::ones({2}, hg::Device::cuda(0))),
                         doctest::Contains("different devices"), hg::Error);
  }
}

TEST_CASE("errors: backward through a freed graph and non-scalar backward") {
  Tensor x = hg::ones({2}, hg::kFloat64).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph=true"), hg::Error);
  CHECK_THROWS_WITH_AS((x * 2.0).backward(), doctest::Contains("implicitly"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::ones({1}).backward(), doctest::Contains("does not require grad"), hg::Error);
  // Writing into a view of a computed tensor is followed through it (test_inplace_views.cpp); into a view of a
  // leaf that requires grad it is refused.
  CHECK_THROWS_WITH_AS(x.view({2, 1}).add_(1.0), doctest::Contains("add_: float64[2, 1] cpu is a view of a leaf tensor"),
                       hg::Error);
}
