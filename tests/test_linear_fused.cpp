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
          // A copy each: .to() returns the tensor itself when nothing changes (float64 on the CPU), and x and xr
          // must be two leaves, or each gradient would be accumulated twice into one.
          auto leaf = [&](hg::Tensor t) { return t.to(device, dtype).clone().requires_grad_(); };
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

// The backend's fused product + bias (a cached dnnl::matmul primitive on the CPU) against matmul(x, Wᵀ) + b, in
// float32 where that path runs: products below and above the size that runs on one thread, at 1 and 2 threads (the
// CPU caches one primitive per thread count), with x, W and b as strided views (transposed storage, a column slice
// whose rows are longer than K, a strided or broadcast bias), and an empty K (the output is the bias).
HG_BACKEND_TEST(linear_fused_bias_strided_operands_and_thread_counts) {
  hg::Tensors results;
  const int threads_before = hg::get_num_threads();
  struct Case {
    int64_t rows, in, out;
  };
  // 3·5·4 and 37·129·33 MACs run on one thread; 70·80·60 and 130·97·41 on all of them. Outputs of 2–15 columns
  // take the CPU's transposed product (128·256 → 10, 1030·64 → 2, 9·33 → 15, 300·50 → 1, 1·80 → 3, 3·5 → 4);
  // 16 columns do not.
  const Case cases[] = {{3, 5, 4},     {37, 129, 33},  {70, 80, 60},  {130, 97, 41}, {1, 80, 3500}, {5, 0, 7},
                        {128, 256, 10}, {1030, 64, 2}, {9, 33, 15},   {300, 50, 1},  {1, 80, 3},    {200, 40, 16}};
  enum class Layout { Contiguous, Transposed, ColumnSlice };
  enum class Bias { None, Contiguous, Strided, Broadcast };
  uint64_t seed = 20;
  for (int threads : {1, 2}) {
    hg::set_num_threads(threads);
    for (const Case& c : cases) {
      for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::ColumnSlice}) {
        for (Bias bias_kind : {Bias::None, Bias::Contiguous, Bias::Strided, Bias::Broadcast}) {
          CAPTURE(threads);
          CAPTURE(c.rows);
          CAPTURE(c.in);
          CAPTURE(c.out);
          CAPTURE(static_cast<int>(layout));
          CAPTURE(static_cast<int>(bias_kind));
          // A [rows, cols] float32 view on `device` in the layout under test, with the same values whatever it is.
          auto matrix = [&](int64_t rows, int64_t cols) {
            hg::Tensor values = hgtest::uniform({rows, cols}, -1, 1, ++seed).to(device, hg::kFloat32);
            switch (layout) {
              case Layout::Transposed: return values.t().contiguous().t();
              case Layout::ColumnSlice: return hg::cat({values, hg::zeros({rows, 3}).to(device)}, 1).slice(1, 0, cols);
              default: return values;
            }
          };
          hg::Tensor x = matrix(c.rows, c.in), w = matrix(c.out, c.in);
          hg::Tensor b;
          hg::Tensor b_values = hgtest::uniform({c.out}, -1, 1, ++seed).to(device, hg::kFloat32);
          if (bias_kind == Bias::Contiguous) b = b_values;
          if (bias_kind == Bias::Strided) b = hg::stack({b_values, b_values}, 1).select(1, 0);
          if (bias_kind == Bias::Broadcast) b = b_values.slice(0, 0, 1).expand({c.out});
          hg::Tensor y = hg::linear(x, w, b);
          hg::Tensor expected = hg::matmul(x, w.t());
          if (b.defined()) expected = hg::add(expected, b);
          if (c.in == 0) hgtest::check_close(y, b.defined() ? b.expand(y.sizes()) : hg::zeros_like(y), 0, 0);
          hgtest::check_close(y, expected, 1e-5, 1e-5);
          results.push_back(y);
        }
      }
    }
  }
  hg::set_num_threads(threads_before);
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

TEST_CASE("linear: a bias that broadcasts to one row (scalar, [1], [1, out]) as torch, with its gradient") {
  hg::Tensor x = hgtest::uniform({2, 3, 4}, -1, 1, 11), w = hgtest::uniform({5, 4}, -1, 1, 12);
  for (hg::Shape shape : {hg::Shape{}, hg::Shape{1}, hg::Shape{1, 5}, hg::Shape{1, 1, 1}}) {
    CAPTURE(shape);
    hg::Tensor b = hgtest::uniform(shape, -1, 1, 13);
    // The same sum written with broadcasting ops.
    hgtest::check_close(hg::linear(x, w, b), hg::add(hg::matmul(x, w.t()), b), 1e-12, 1e-12);
    hgtest::gradcheck([](const hg::Tensors& t) { return hg::linear(t[0], t[1], t[2]); }, {x, w, b});
  }
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::linear(t[0], t[1], t[2]); },
                        {hgtest::uniform({2, 4}, -1, 1, 14), w, hgtest::uniform({1}, -1, 1, 15)});
  // float32 (the backend's fused bias) against the float64 result.
  hg::Tensor b1 = hgtest::uniform({1}, -1, 1, 16);
  hgtest::check_close(hg::linear(x.to(hg::kFloat32), w.to(hg::kFloat32), b1.to(hg::kFloat32)).to(hg::kFloat64),
                      hg::linear(x, w, b1), 1e-5, 1e-5);
}

TEST_CASE("linear: bad inputs name the op and the shapes") {
  hg::Tensor w = hg::zeros({3, 4});
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 5}), w), doctest::Contains("linear: input's last dimension must equal in_features 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}), w, hg::zeros({4})),
                       doctest::Contains("linear: bias must broadcast to [3] (a scalar, [1], [3] or [1, ..., 1, 3]), got [4]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}), w, hg::zeros({2, 3})),
                       doctest::Contains("linear: bias must broadcast to [3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}, hg::kFloat64), w), doctest::Contains("linear: dtypes differ"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::linear(hg::zeros({2, 4}), w, hg::zeros({3}, hg::kFloat64)),
                       doctest::Contains("linear: dtypes differ"), hg::Error);
}
