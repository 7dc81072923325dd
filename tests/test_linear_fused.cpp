// hg::linear as one node (ops/linalg.cpp) against the composite it replaced, matmul(x, Wᵀ) + b: values and
// gradients for 1-D, 2-D, 3-D and non-contiguous inputs, with and without bias; finite-difference checks.
#include <doctest/doctest.h>

#include "testing.h"

HG_BACKEND_TEST(linear_matches_matmul_plus_bias) {
  hg::Tensors results;
  const hg::Shape input_shapes[] = {{5}, {4, 5}, {2, 3, 5}, {0, 5}};
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    for (const hg::Shape& shape : input_shapes) {
      for (bool with_bias : {true, false}) {
        for (bool transposed_input : {false, true}) {
          if (transposed_input && shape.size() != 2) continue;  // x given as the transpose of a [5, rows] leaf
          CAPTURE(dtype);
          CAPTURE(shape);
          CAPTURE(with_bias);
          CAPTURE(transposed_input);
          auto leaf = [&](hg::Tensor t) { return t.to(device, dtype).requires_grad_(); };
          hg::Tensor x_storage = transposed_input ? hgtest::uniform({shape[1], shape[0]}, -1, 1, 1)
                                                  : hgtest::uniform(shape, -1, 1, 1);
          hg::Tensor x = leaf(x_storage), xr = leaf(x_storage);
          hg::Tensor w = leaf(hgtest::uniform({3, 5}, -1, 1, 2)), wr = leaf(hgtest::uniform({3, 5}, -1, 1, 2));
          hg::Tensor b = with_bias ? leaf(hgtest::uniform({3}, -1, 1, 3)) : hg::Tensor();
          hg::Tensor br = with_bias ? leaf(hgtest::uniform({3}, -1, 1, 3)) : hg::Tensor();
          hg::Tensor input = transposed_input ? x.transpose(0, 1) : x, input_r = transposed_input ? xr.transpose(0, 1) : xr;
          hg::Tensor y = hg::linear(input, w, b);
          hg::Tensor yr = hg::matmul(input_r, wr.t());
          if (with_bias) yr = hg::add(yr, br);
          const double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
          hgtest::check_close(y, yr, tol, tol);
          hg::Tensor upstream = hgtest::uniform(y.sizes(), -1, 1, 4).to(device, dtype);
          hg::sum(hg::mul(y, upstream)).backward();
          hg::sum(hg::mul(yr, upstream)).backward();
          hgtest::check_close(x.grad(), xr.grad(), tol, tol);
          hgtest::check_close(w.grad(), wr.grad(), tol, tol);
          CHECK(w.grad().is_contiguous());  // Gᵀ·x lands in W's layout: no copy in the accumulator
          if (with_bias) hgtest::check_close(b.grad(), br.grad(), tol, tol);
          results.insert(results.end(), {y.detach(), x.grad(), w.grad()});
        }
      }
    }
  }
  return results;
}

TEST_CASE("gradcheck and gradgradcheck: linear (bias, no bias, batched, non-contiguous input)") {
  hg::Tensor w = hgtest::uniform({3, 4}, -1, 1, 5), b = hgtest::uniform({3}, -1, 1, 6);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::linear(t[0].transpose(0, 1), t[1], t[2]); },
                    {hgtest::uniform({4, 2}, -1, 1, 7), w, b});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::linear(t[0], t[1]); },
                    {hgtest::uniform({2, 2, 4}, -1, 1, 8), w});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::linear(t[0], t[1], t[2]); },
                    {hgtest::uniform({4}, -1, 1, 9), w, b});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::linear(t[0], t[1], t[2]); },
                        {hgtest::uniform({2, 4}, -1, 1, 10), w, b});
}

TEST_CASE("linear: bad inputs name the op and the shapes") {
  hg::Tensor w = hg::zeros({3, 4});
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 5}), w), doctest::Contains("linear: input's last dimension must equal in_features 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}), w, hg::zeros({4})), doctest::Contains("linear: bias must be [3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}, hg::kFloat64), w), doctest::Contains("linear: dtypes differ"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}), w, hg::zeros({3}, hg::kFloat64)),
                       doctest::Contains("linear: dtypes differ"), hg::Error);
}
