// Neural-net ops: softmax, log_softmax, dropout and the losses — values against hand-computed
// numbers (and a few PyTorch 1.13 results, quoted), gradients against finite differences, and bad input.
#include <cmath>
#include <limits>
#include <vector>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
using hg::Tensors;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

Tensor labels(const std::vector<int64_t>& values, hg::IntArrayRef shape) {
  return hg::from_vector<int64_t>(values, shape, hg::kInt64);
}

// A fresh leaf with t's values in `dtype` on `device` (never t itself, which .to() returns when nothing changes).
Tensor leaf_on(const Tensor& t, hg::DType dtype, hg::Device device) {
  return t.to(dtype).to(device).detach().clone().requires_grad_();
}

// float32 results carry a few ulp from the vectorised exp and the rounding of x − max (~1e-6 relative for
// probabilities near e^−20), so they are compared at 1e-5.
double tolerance(hg::DType dtype) { return dtype == hg::kFloat32 ? 1e-5 : 1e-12; }

// softmax / log_softmax of a row-major tensor along `dim`, in plain C++ on the host.
Tensor reference_softmax(const Tensor& x, int64_t dim, bool log) {
  std::vector<double> v = x.to(hg::kFloat64).to_vector<double>(), out(v.size());
  int64_t outer = 1, n = x.size(dim), inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < inner; ++c) {
      auto at = [&](int64_t i) { return static_cast<size_t>((o * n + i) * inner + c); };
      double m = -kInf, s = 0;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, v[at(i)]);
      for (int64_t i = 0; i < n; ++i) s += std::exp(v[at(i)] - m);
      for (int64_t i = 0; i < n; ++i) out[at(i)] = log ? v[at(i)] - m - std::log(s) : std::exp(v[at(i)] - m) / s;
    }
  }
  return f64(out, x.sizes());
}

}  // namespace

// ---- softmax / log_softmax -----------------------------------------------------------------------------------

HG_BACKEND_TEST(softmax_values) {
  // Hand-computed: softmax([1, 2, 3]) = [1, e, e²] / (1 + e + e²); a constant row gives 1/3 each.
  const double e = std::exp(1.0), z = 1 + e + e * e;
  Tensor x = f64({1, 2, 3, 5, 5, 5}, {2, 3});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    Tensor xd = x.to(dtype).to(device);
    const double tol = tolerance(dtype);
    Tensor p = hg::softmax(xd, 1), lp = hg::log_softmax(xd, -1);
    hgtest::check_close(p, f64({1 / z, e / z, e * e / z, 1. / 3, 1. / 3, 1. / 3}, {2, 3}), tol, tol, "softmax");
    hgtest::check_close(lp, f64({-std::log(z), 1 - std::log(z), 2 - std::log(z), -std::log(3.), -std::log(3.),
                                 -std::log(3.)},
                                {2, 3}),
                        tol, tol, "log_softmax");
    // Down the columns: softmax([1, 5]) = [1, e⁴] / (1 + e⁴).
    const double e4 = std::exp(4.0);
    hgtest::check_close(hg::softmax(xd, 0).select(1, 0), f64({1 / (1 + e4), e4 / (1 + e4)}, {2}), tol, tol,
                        "softmax dim 0");
    results.push_back(p);
    results.push_back(lp);
  }
  // Every dim of a 3-D tensor (the last dim is the row kernel, the others the strided-column kernel), both dtypes,
  // against the host reference.
  Tensor y = hgtest::uniform({3, 4, 5}, -4, 4, 11);
  for (int64_t dim = 0; dim < 3; ++dim) {
    for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
      Tensor yd = y.to(dtype).to(device);
      const double tol = tolerance(dtype);
      Tensor p = hg::softmax(yd, dim), lp = hg::log_softmax(yd, dim);
      hgtest::check_close(p, reference_softmax(y, dim, false), tol, tol, "softmax 3-D");
      hgtest::check_close(lp, reference_softmax(y, dim, true), tol, tol, "log_softmax 3-D");
      hgtest::check_close(hg::sum(p, {dim}), hg::ones_like(hg::sum(y, {dim})), tol, tol, "probabilities sum to 1");
      results.push_back(p);
      results.push_back(lp);
    }
  }
  // Large logits (no overflow) and a 0-dim tensor (one class: probability 1, log-probability 0).
  Tensor big = f64({1000, 1001, -1000}, {3}).to(device);
  hgtest::check_close(hg::softmax(big, 0), f64({1 / (1 + e), e / (1 + e), 0}, {3}), 1e-12, 1e-15, "large logits");
  CHECK(hg::softmax(hg::scalar_tensor(3.0, hg::kFloat64).to(device), 0).item<double>() == 1.0);
  CHECK(hg::log_softmax(hg::scalar_tensor(3.0).to(device), -1).item<float>() == doctest::Approx(0).epsilon(1e-5));
  return results;
}

HG_BACKEND_TEST(softmax_large_tensors_match_the_reference) {
  // Big enough to be split across threads; dim 0 of [8, 300, 40] has 12000 columns, several column blocks.
  Tensors results;
  for (auto shape : {hg::Shape{96, 700}, hg::Shape{8, 300, 40}}) {
    Tensor x = hgtest::uniform(shape, -6, 6, 5);
    for (int64_t dim : {int64_t{0}, int64_t{1}}) {
      for (bool log : {false, true}) {
        Tensor want = reference_softmax(x, dim, log);
        for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
          Tensor xd = x.to(dtype).to(device);
          Tensor got = log ? hg::log_softmax(xd, dim) : hg::softmax(xd, dim);
          hgtest::check_close(got, want, tolerance(dtype), tolerance(dtype), "against the reference");
          results.push_back(got);
        }
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(softmax_all_neg_inf_rows_give_zeros_and_zero_gradients) {
  // Row 0: all -inf (a fully masked attention row) → zeros; row 1: -inf entries get probability 0.
  Tensor x = f64({-kInf, -kInf, -kInf, 0, -kInf, std::log(3.0)}, {2, 3});
  Tensor g = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    for (bool columns : {false, true}) {  // columns: softmax down dim 0 of the transpose (strided kernel)
      Tensor leaf = leaf_on(columns ? x.t() : x, dtype, device);
      Tensor p = columns ? hg::softmax(leaf, 0).t() : hg::softmax(leaf, 1);
      Tensor lp = columns ? hg::log_softmax(leaf, 0).t() : hg::log_softmax(leaf, 1);
      const double tol = tolerance(dtype);
      hgtest::check_close(p, f64({0, 0, 0, 0.25, 0, 0.75}, {2, 3}), tol, 0, "softmax with -inf");
      std::vector<double> lpv = lp.to(hg::kFloat64).to_vector<double>();
      CHECK(lpv[0] == 0);
      CHECK(lpv[1] == 0);
      CHECK(lpv[2] == 0);
      CHECK(lpv[3] == doctest::Approx(std::log(0.25)));
      CHECK(lpv[4] == -kInf);
      CHECK(lpv[5] == doctest::Approx(std::log(0.75)));
      // ∂softmax: y ⊙ (g − Σ g⊙y);  ∂log_softmax: g − exp(y) Σ g. Both are zero on the all -inf row.
      Tensor gd = g.to(dtype).to(device);
      Tensor dp = hg::grad({p}, {leaf}, {gd})[0], dlp = hg::grad({lp}, {leaf}, {gd})[0];
      if (columns) dp = dp.t(), dlp = dlp.t();
      const double s = 4 * 0.25 + 6 * 0.75;
      hgtest::check_close(dp, f64({0, 0, 0, 0.25 * (4 - s), 0, 0.75 * (6 - s)}, {2, 3}), tol, tol, "softmax grad");
      hgtest::check_close(dlp, f64({0, 0, 0, 4 - 0.25 * 15, 5, 6 - 0.75 * 15}, {2, 3}), tol, tol, "log_softmax grad");
      results.insert(results.end(), {p, lp, dp, dlp});
    }
  }
  return results;
}

HG_BACKEND_TEST(softmax_rows_spread_beyond_the_float_exp_range) {
  // Differences to the row max below −87 leave float's normal exp range (the CPU kernel clamps them before its
  // vector exp, then writes 0): float32 still matches float64, and a row of NaN and −inf is NaN, not zeros.
  const double nan = std::nan("");
  Tensor x = f64({0, -50, -90, -200, -1000, -kInf, nan, -kInf, -kInf, -kInf, -kInf, -kInf}, {2, 6});
  Tensors results;
  for (bool log : {false, true}) {
    Tensor y = log ? hg::log_softmax(x.to(hg::kFloat32).to(device), 1) : hg::softmax(x.to(hg::kFloat32).to(device), 1);
    Tensor reference = log ? hg::log_softmax(x.narrow(0, 0, 1), 1) : hg::softmax(x.narrow(0, 0, 1), 1);
    hgtest::check_close(y.narrow(0, 0, 1).to(hg::kCPU).to(hg::kFloat64), reference, 1e-6, 1e-30, "spread row");
    std::vector<double> v = y.to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
    for (size_t i = 6; i < 12; ++i) CHECK_MESSAGE(std::isnan(v[i]), "element " << i << " is " << v[i]);
    results.push_back(y);
  }
  return results;
}

HG_BACKEND_TEST(softmax_nan_and_inf_propagate_to_the_whole_row) {
  // As PyTorch: a NaN anywhere in a row (even among -inf) or a +inf makes the whole row NaN; other rows are untouched.
  const double nan = std::nan("");
  Tensor x = f64({1, nan, 2, -kInf, nan, -kInf, 1, kInf, 2, 0, 0, 0}, {4, 3});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    for (bool columns : {false, true}) {
      Tensor in = (columns ? x.t().contiguous() : x).to(dtype).to(device);
      for (bool log : {false, true}) {
        Tensor y = log ? hg::log_softmax(in, columns ? 0 : 1) : hg::softmax(in, columns ? 0 : 1);
        if (columns) y = y.t();
        std::vector<double> v = y.to(hg::kFloat64).to_vector<double>();
        for (size_t i = 0; i < 9; ++i) CHECK_MESSAGE(std::isnan(v[i]), "element " << i << " is " << v[i]);
        for (size_t i = 9; i < 12; ++i) CHECK(v[i] == doctest::Approx(log ? -std::log(3.0) : 1.0 / 3));
        results.push_back(y);
      }
    }
    // The gradient of a NaN row is NaN too (never silently zero); a constant row with g = 1 gets 0.
    Tensor leaf = leaf_on(x, dtype, device);
    for (bool log : {false, true}) {
      Tensor y = log ? hg::log_softmax(leaf, 1) : hg::softmax(leaf, 1);
      std::vector<double> dx = hg::grad({y}, {leaf}, {hg::ones_like(y)})[0].to(hg::kFloat64).to_vector<double>();
      for (size_t i = 0; i < 3; ++i) CHECK_MESSAGE(std::isnan(dx[i]), "gradient element " << i << " is " << dx[i]);
      for (size_t i = 9; i < 12; ++i) CHECK(dx[i] == doctest::Approx(0).epsilon(1e-6));
    }
  }
  return results;
}

TEST_CASE("gradcheck: softmax and log_softmax along several dims, with non-contiguous input") {
  Tensor x = hgtest::uniform({3, 4}, -2, 2, 1);
  Tensor y = hgtest::uniform({2, 3, 4}, -2, 2, 2);
  for (bool log : {false, true}) {
    auto f = [log](const Tensor& t, int64_t dim) { return log ? hg::log_softmax(t, dim) : hg::softmax(t, dim); };
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0], 1); }, {x});
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0], 0); }, {x});
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0], 1); }, {y});
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0].transpose(0, 1), -1); }, {x});
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0].permute({2, 0, 1}), 0); }, {y});
    hgtest::gradcheck([&](const hg::Tensors& t) { return f(t[0] * t[1], 1); }, {x, hgtest::uniform({4}, 0.5, 2, 3)});
    hgtest::gradgradcheck([&](const hg::Tensors& t) { return f(t[0], 1); }, {x});
    hgtest::gradgradcheck([&](const hg::Tensors& t) { return f(t[0].transpose(0, 1), 0); }, {x});
  }
}

TEST_CASE("errors: softmax and log_softmax") {
  CHECK_THROWS_WITH_AS(hg::softmax(hg::ones({2, 3}), 2), doctest::Contains("softmax: dimension 2 out of range"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::log_softmax(hg::ones({2, 3}), -3), doctest::Contains("log_softmax: dimension -3"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::softmax(hg::ones({2}, hg::kInt64), 0),
                       doctest::Contains("softmax: expects a floating-point tensor, got int64[2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::log_softmax(Tensor(), 0), doctest::Contains("log_softmax: got an undefined tensor"),
                       hg::Error);
}

// ---- dropout -----------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(dropout_statistics_and_reproducibility) {
  const double p = 0.3;
  const int64_t n = 200000;
  Tensor x = hg::ones({n}, hg::TensorOptions(hg::kFloat32).device(device)).requires_grad_();
  hg::Generator gen(42);
  Tensor y = hg::dropout(x, p, /*train=*/true, &gen);
  std::vector<float> v = y.to_vector<float>();
  int64_t zeros = 0, unscaled = 0;
  for (float value : v) {
    zeros += value == 0.0f;
    unscaled += value != 0.0f && std::abs(value - 1 / (1 - p)) > 1e-6;
  }
  CHECK_MESSAGE(unscaled == 0, "kept values must be scaled by 1/(1-p)");
  // Binomial(n, p): standard deviation √(n p (1-p)) ≈ 205 zeros, so ±0.5% is about 5 standard deviations.
  CHECK(static_cast<double>(zeros) / n == doctest::Approx(p).epsilon(0.005 / p));
  CHECK(y.mean().item<float>() == doctest::Approx(1.0).epsilon(0.01));  // inverted dropout keeps the mean
  // ∂y/∂x is the same scaled mask.
  y.sum().backward();
  hgtest::check_close(x.grad(), y.detach(), 0, 0, "gradient is the mask");
  // The same seed gives the same mask; the generator advances, so the next call differs.
  hg::Generator again(42);
  hgtest::check_close(hg::dropout(x, p, true, &again), y, 0, 0, "same seed");
  Tensor next = hg::dropout(x, p, true, &again);
  CHECK(hg::sum(hg::ne(next, y)).item<int64_t>() > 0);
  return {y, x.grad()};
}

TEST_CASE("dropout: eval and p = 0 are the identity, p = 1 gives zeros with a zero gradient") {
  Tensor x = hgtest::uniform({4, 5}).requires_grad_();
  CHECK(hg::dropout(x, 0.5, /*train=*/false).is_same(x));
  CHECK(hg::dropout(x, 0.0, /*train=*/true).is_same(x));
  Tensor y = hg::dropout(x, 1.0, true);
  hgtest::check_close(y, hg::zeros({4, 5}, hg::kFloat64), 0, 0, "p = 1");
  y.sum().backward();
  hgtest::check_close(x.grad(), hg::zeros({4, 5}, hg::kFloat64), 0, 0, "p = 1 gradient");
  // gradcheck through a fixed mask: the generator is re-seeded on every evaluation.
  hgtest::gradcheck(
      [](const hg::Tensors& t) {
        hg::Generator gen(7);
        return hg::dropout(t[0].transpose(0, 1), 0.4, true, &gen);
      },
      {x});
}

TEST_CASE("errors: dropout") {
  CHECK_THROWS_WITH_AS(hg::dropout(hg::ones({2}), 1.5, true), doctest::Contains("p must be in [0, 1], got 1.5"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::dropout(hg::ones({2}), -0.1, false), doctest::Contains("got -0.1"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::dropout(hg::ones({2}), std::nan(""), true), doctest::Contains("got nan"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::dropout(hg::ones({2}, hg::kInt64), 0.5, true),
                       doctest::Contains("dropout: expects a floating-point tensor"), hg::Error);
}

// ---- classification losses ---------------------------------------------------------------------------------------

HG_BACKEND_TEST(cross_entropy_and_nll_values) {
  // Rows: [1, 2, 3] → class 2, [1, 1, 1] → class 0, [0.5, −1, 2] → ignored (−100).
  Tensor logits = f64({1, 2, 3, 1, 1, 1, 0.5, -1, 2}, {3, 3});
  Tensor target = labels({2, 0, -100}, {3});
  const double e = std::exp(1.0);
  const double nll0 = std::log(1 + 1 / e + 1 / (e * e)), nll1 = std::log(3.0);
  // Label smoothing ε: (1 − ε)·nll + (ε/C)·(−Σ_c log p_c); Σ_c log p_c = Σ x − C·logsumexp(x).
  const double eps = 0.1, lse0 = 3 + nll0, lse1 = 1 + nll1;
  const double smooth0 = 3 * lse0 - 6, smooth1 = 3 * lse1 - 3;
  const double ls0 = (1 - eps) * nll0 + eps / 3 * smooth0, ls1 = (1 - eps) * nll1 + eps / 3 * smooth1;
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    const double tol = tolerance(dtype);
    Tensor x = leaf_on(logits, dtype, device), t = target.to(device);
    Tensor none = hg::cross_entropy(x, t, hg::Reduction::None);
    hgtest::check_close(none, f64({nll0, nll1, 0}, {3}), tol, tol, "none");
    Tensor mean = hg::cross_entropy(x, t);  // Mean over the 2 non-ignored targets
    CHECK(mean.item<double>() == doctest::Approx((nll0 + nll1) / 2).epsilon(tol));
    CHECK(mean.item<double>() == doctest::Approx(0.75310912655624507).epsilon(tol));  // PyTorch 1.13
    Tensor sum = hg::cross_entropy(x, t, hg::Reduction::Sum);
    CHECK(sum.item<double>() == doctest::Approx(nll0 + nll1).epsilon(tol));
    Tensor smooth = hg::cross_entropy(x, t, hg::Reduction::Mean, -100, eps);
    CHECK(smooth.item<double>() == doctest::Approx((ls0 + ls1) / 2).epsilon(tol));
    CHECK(smooth.item<double>() == doctest::Approx(0.80310912655624511).epsilon(tol));  // PyTorch 1.13
    hgtest::check_close(hg::cross_entropy(x, t, hg::Reduction::None, -100, eps), f64({ls0, ls1, 0}, {3}), tol, tol,
                        "smoothing, none");
    CHECK(hg::cross_entropy(x, t, hg::Reduction::Sum, -100, eps).item<double>() ==
          doctest::Approx(ls0 + ls1).epsilon(tol));
    // nll_loss of log_softmax is cross_entropy.
    Tensor nll = hg::nll_loss(hg::log_softmax(x, 1), t, hg::Reduction::None);
    hgtest::check_close(nll, none, tol, tol, "nll_loss");
    // An ignore_index inside [0, C) is honoured too: class 0 ignored leaves rows 0 and 2 (class 1 of [0.5, −1, 2]).
    const double nll2 = std::log(std::exp(0.5) + std::exp(-1.0) + std::exp(2.0)) + 1;
    Tensor ignore_zero = hg::cross_entropy(x, labels({2, 0, 1}, {3}).to(device), hg::Reduction::Mean, 0);
    CHECK(ignore_zero.item<double>() == doctest::Approx((nll0 + nll2) / 2).epsilon(tol));
    // ∂mean/∂logits = (softmax − one_hot) / 2 on the counted rows, 0 on the ignored row.
    mean.backward();
    Tensor p = hg::softmax(logits, 1);
    Tensor expected = (p - f64({0, 0, 1, 1, 0, 0, 0, 0, 0}, {3, 3})) / 2 * f64({1, 1, 0}, {3, 1});
    hgtest::check_close(x.grad(), expected, tol, tol, "gradient");
    results.insert(results.end(), {none, mean, sum, smooth, nll, ignore_zero, x.grad()});
  }
  // All targets ignored: Mean is 0/0 = NaN, as PyTorch.
  CHECK(std::isnan(hg::nll_loss(logits.to(device), labels({-100, -100, -100}, {3}).to(device)).item<double>()));
  return results;
}

HG_BACKEND_TEST(cross_entropy_spatial_and_unbatched) {
  // [N, C, L] logits with [N, L] targets equal the [N·L, C] case after moving the class dim last.
  Tensor logits = hgtest::uniform({2, 3, 4}, -2, 2, 21).to(device);
  Tensor target = labels({0, 2, 1, -100, 1, 1, 0, 2}, {2, 4}).to(device);
  Tensor flat_logits = logits.permute({0, 2, 1}).reshape({8, 3});
  Tensors results;
  for (auto r : {hg::Reduction::None, hg::Reduction::Mean, hg::Reduction::Sum}) {
    Tensor spatial = hg::cross_entropy(logits, target, r, -100, 0.2);
    Tensor flat = hg::cross_entropy(flat_logits, target.reshape({8}), r, -100, 0.2);
    hgtest::check_close(spatial, r == hg::Reduction::None ? flat.reshape({2, 4}) : flat, 1e-12, 1e-12, "spatial");
    results.push_back(spatial);
  }
  // Unbatched: logits [C] with a 0-dim target.
  Tensor one = hg::cross_entropy(logits.select(0, 0).select(1, 0), hg::scalar_tensor(2, hg::kInt64).to(device));
  CHECK(one.dim() == 0);
  CHECK(one.item<double>() == doctest::Approx(-hg::log_softmax(logits.select(0, 0).select(1, 0), 0)
                                                     .select(0, 2)
                                                     .item<double>()));
  results.push_back(one);
  return results;
}

TEST_CASE("gradcheck: cross_entropy and nll_loss for each reduction, ignore_index and label smoothing") {
  Tensor logits = hgtest::uniform({4, 3}, -2, 2, 1);
  Tensor target = labels({2, -100, 0, 1}, {4});
  Tensor spatial = hgtest::uniform({2, 3, 2}, -2, 2, 2);
  Tensor spatial_target = labels({0, 2, 1, 5}, {2, 2});  // 5 is the ignore_index here
  for (auto r : {hg::Reduction::None, hg::Reduction::Mean, hg::Reduction::Sum}) {
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], target, r); }, {logits});
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], target, r, -100, 0.3); }, {logits});
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::nll_loss(t[0], target, r); }, {logits});
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], spatial_target, r, 5, 0.1); },
                      {spatial});
  }
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0].t(), target); },
                    {hgtest::uniform({3, 4}, -2, 2, 3)});
  hgtest::gradgradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], target, hg::Reduction::Mean, -100, 0.2); },
                        {logits});
  hgtest::gradgradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], spatial_target, hg::Reduction::Sum, 5); },
                        {spatial});
}

TEST_CASE("errors: cross_entropy and nll_loss targets and shapes") {
  Tensor logits = hg::zeros({3, 4});
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, labels({0, 7, 1}, {3})),
                       doctest::Contains("cross_entropy: target value 7 (at flat index 1) is out of range for 4 "
                                         "classes"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::nll_loss(logits, labels({0, -1, 1}, {3})),
                       doctest::Contains("nll_loss: target value -1 (at flat index 1)"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, labels({0, -100, 1}, {3}), hg::Reduction::Mean, /*ignore_index=*/3),
                       doctest::Contains("target value -100"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, labels({0, 1}, {2})),
                       doctest::Contains("input of shape [3, 4] (class dim 1 of size 4) needs a target of shape [3], "
                                         "got [2]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(hg::zeros({2, 3, 5}), labels({0, 1}, {2})),
                       doctest::Contains("needs a target of shape [2, 5]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, hg::zeros({3})),
                       doctest::Contains("target must hold int64 class indices, got float32[3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(hg::zeros({3, 4}, hg::kInt64), labels({0, 1, 2}, {3})),
                       doctest::Contains("input must be a floating-point tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(hg::zeros({}), hg::scalar_tensor(0, hg::kInt64)),
                       doctest::Contains("[N, C, d...] or [C]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, labels({0, 1, 2}, {3}), hg::Reduction::Mean, -100, 1.5),
                       doctest::Contains("label_smoothing must be in [0, 1], got 1.5"), hg::Error);
}

// ---- class weights (with label smoothing and ignore_index) ---------------------------------------------------

HG_BACKEND_TEST(cross_entropy_and_nll_class_weights_hand_computed) {
  // Row 0: logits [0, 0] → class 0 with p = 1/2; row 1: [0, log 3] → class 1 with p = 3/4; weight [1, 3].
  Tensor logits = f64({0, 0, 0, std::log(3.0)}, {2, 2});
  Tensor target = labels({0, 1}, {2}).to(device), weight = f64({1, 3}, {2}).to(device);
  const double l0 = std::log(2.0), l1 = std::log(4.0 / 3.0);
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    const double tol = tolerance(dtype);
    Tensor x = leaf_on(logits, dtype, device), w = weight.to(dtype);
    auto options = [&] { return hg::CrossEntropyOptions().weight(w); };
    Tensor none = hg::cross_entropy(x, target, options().reduction(hg::Reduction::None));
    hgtest::check_close(none, f64({l0, 3 * l1}, {2}), tol, tol, "weighted, none");
    // Mean divides by the targets' weights 1 + 3, not by the number of targets.
    Tensor mean = hg::cross_entropy(x, target, options());
    CHECK(mean.item<double>() == doctest::Approx((l0 + 3 * l1) / 4).epsilon(tol));
    CHECK(hg::cross_entropy(x, target, options().reduction(hg::Reduction::Sum)).item<double>() ==
          doctest::Approx(l0 + 3 * l1).epsilon(tol));
    // Smoothing ε: the uniform part weighs each class's −log p by its weight: −(1·log p0 + 3·log p1) per row.
    const double eps = 0.2, s0 = 4 * l0, s1 = std::log(4.0) + 3 * l1;
    Tensor smooth = hg::cross_entropy(x, target, options().label_smoothing(eps));
    CHECK(smooth.item<double>() ==
          doctest::Approx(((1 - eps) * (l0 + 3 * l1) + eps / 2 * (s0 + s1)) / 4).epsilon(tol));
    // Ignoring class 1 leaves row 0 alone: its own weight cancels in the Mean.
    Tensor ignored = hg::cross_entropy(x, target, options().ignore_index(1));
    CHECK(ignored.item<double>() == doctest::Approx(l0).epsilon(tol));
    Tensor nll = hg::nll_loss(hg::log_softmax(x, 1), target, hg::NLLLossOptions().weight(w));
    CHECK(nll.item<double>() == doctest::Approx(mean.item<double>()).epsilon(tol));
    // ∂mean/∂logits[i] = w_{t_i}·(softmax − one_hot) / Σ w
    mean.backward();
    hgtest::check_close(x.grad(), f64({0.5 - 1, 0.5, 0.25, 0.75 - 1}, {2, 2}) * f64({1, 3}, {2, 1}) / 4, tol, tol,
                        "weighted gradient");
    results.insert(results.end(), {none, mean, smooth, ignored, nll, x.grad()});
  }
  // No counted weight: every target ignored, or the counted targets' weights all zero — 0/0 = NaN, as PyTorch.
  Tensor x = logits.to(device);
  Tensor all_ignored = labels({-100, -100}, {2}).to(device), zero_weight = f64({0, 0}, {2}).to(device);
  CHECK(std::isnan(hg::cross_entropy(x, all_ignored, hg::CrossEntropyOptions().weight(weight)).item<double>()));
  CHECK(std::isnan(hg::nll_loss(x, target, hg::NLLLossOptions().weight(zero_weight)).item<double>()));
  // The positional overload is the options one.
  auto options = hg::CrossEntropyOptions().reduction(hg::Reduction::Sum).ignore_index(1).label_smoothing(0.1);
  CHECK(hg::cross_entropy(x, target, hg::Reduction::Sum, 1, 0.1).item<double>() ==
        hg::cross_entropy(x, target, options).item<double>());
  return results;
}

// The grid weights × smoothing × ignore_index × reduction against PyTorch 1.13 (scripts/make_nn_fixtures.py).
HG_BACKEND_TEST(cross_entropy_and_nll_weights_smoothing_ignore_index_match_pytorch) {
  auto fixture = hgtest::Fixture::load("nn_losses");
  const Tensor weight = fixture.tensor("weight").to(device);
  Tensors results;
  // y = loss(input) on a fresh leaf; checks y and the gradient of Σ grad_<name> ⊙ y (of y for a scalar).
  auto run = [&](const std::string& name, const std::string& input,
                 const std::function<Tensor(const Tensor&)>& loss) {
    CAPTURE(name);
    Tensor x = fixture.tensor(input).to(device).requires_grad_();
    Tensor y = loss(x);
    hgtest::check_close(y, fixture.tensor(name), 1e-10, 1e-12, name);
    if (y.dim() == 0)
      y.backward();
    else
      y.backward(fixture.tensor("grad_" + name).to(device));
    hgtest::check_close(x.grad(), fixture.tensor("d" + name + "/d" + input), 1e-10, 1e-12, name + " gradient");
    results.insert(results.end(), {y, x.grad()});
  };
  const std::pair<hg::Reduction, const char*> reductions[] = {
      {hg::Reduction::None, "none"}, {hg::Reduction::Mean, "mean"}, {hg::Reduction::Sum, "sum"}};
  for (bool weighted : {false, true}) {
    const Tensor w = weighted ? weight : Tensor();
    for (int64_t ignore_index : {-100, 2}) {
      const Tensor target = fixture.tensor(fmt::format("target_ig{}", ignore_index)).to(device);
      for (auto [reduction, reduction_name] : reductions) {
        for (auto [smoothing, smoothing_name] : {std::pair{0.0, "0.0"}, std::pair{0.15, "0.15"}}) {
          run(fmt::format("ce_{}_ls{}_ig{}_{}", weighted ? "w" : "nw", smoothing_name, ignore_index, reduction_name),
              "logits", [&](const Tensor& x) {
                return hg::cross_entropy(x, target, hg::CrossEntropyOptions().weight(w).ignore_index(ignore_index)
                                                        .label_smoothing(smoothing).reduction(reduction));
              });
        }
        run(fmt::format("nll_{}_ig{}_{}", weighted ? "w" : "nw", ignore_index, reduction_name), "log_probs",
            [&](const Tensor& x) {
              return hg::nll_loss(x, target,
                                  hg::NLLLossOptions().weight(w).ignore_index(ignore_index).reduction(reduction));
            });
      }
    }
  }
  const Tensor spatial_target = fixture.tensor("spatial_target").to(device);
  for (auto [reduction, reduction_name] : reductions)
    run(fmt::format("ce_spatial_{}", reduction_name), "spatial_logits", [&](const Tensor& x) {
      return hg::cross_entropy(
          x, spatial_target,
          hg::CrossEntropyOptions().weight(weight).ignore_index(1).label_smoothing(0.1).reduction(reduction));
    });
  run("ce_unbatched_mean", "unbatched_logits", [&](const Tensor& x) {
    return hg::cross_entropy(x, fixture.tensor("unbatched_target").to(device),
                             hg::CrossEntropyOptions().weight(weight).label_smoothing(0.2));
  });
  return results;
}

TEST_CASE("gradcheck: weighted cross_entropy and nll_loss in the logits and the class weights") {
  Tensor logits = hgtest::uniform({4, 3}, -2, 2, 5), weight = hgtest::uniform({3}, 0.2, 2, 6);
  Tensor target = labels({2, -100, 0, 2}, {4});
  Tensor spatial = hgtest::uniform({2, 3, 3}, -2, 2, 7);  // [N, L, C], moved to [N, C, L] in the lambda
  Tensor spatial_target = labels({0, 2, 1, 1, 0, 2}, {2, 3});  // 1 is the ignore_index there
  for (auto r : {hg::Reduction::None, hg::Reduction::Mean, hg::Reduction::Sum}) {
    for (double smoothing : {0.0, 0.3}) {
      hgtest::gradcheck(
          [&](const hg::Tensors& t) {
            return hg::cross_entropy(t[0], target,
                                     hg::CrossEntropyOptions().weight(t[1]).label_smoothing(smoothing).reduction(r));
          },
          {logits, weight});
      hgtest::gradcheck(
          [&](const hg::Tensors& t) {
            return hg::cross_entropy(t[0].transpose(1, 2), spatial_target,
                                     hg::CrossEntropyOptions().weight(t[1]).ignore_index(1).label_smoothing(smoothing)
                                         .reduction(r));
          },
          {spatial, weight});
    }
    hgtest::gradcheck(
        [&](const hg::Tensors& t) {
          return hg::nll_loss(t[0], target, hg::NLLLossOptions().weight(t[1]).reduction(r));
        },
        {logits, weight});
  }
  hgtest::gradgradcheck(
      [&](const hg::Tensors& t) {
        return hg::cross_entropy(t[0], target, hg::CrossEntropyOptions().weight(t[1]).label_smoothing(0.2));
      },
      {logits, weight});
}

TEST_CASE("errors: cross_entropy and nll_loss class weights") {
  Tensor logits = hg::zeros({3, 4});
  Tensor target = labels({0, 1, 2}, {3});
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, target, hg::CrossEntropyOptions().weight(hg::ones({3}))),
                       doctest::Contains("cross_entropy: expected weight [4] (one per class of input [3, 4]), got [3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::nll_loss(logits, target, hg::NLLLossOptions().weight(hg::ones({4, 1}))),
                       doctest::Contains("nll_loss: expected weight [4]"), hg::Error);
  Tensor float64_weight = hg::ones({4}, hg::kFloat64);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, target, hg::CrossEntropyOptions().weight(float64_weight)),
                       doctest::Contains("cross_entropy: weight float64[4]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, target, hg::CrossEntropyOptions().label_smoothing(-0.5)),
                       doctest::Contains("label_smoothing must be in [0, 1], got -0.5"), hg::Error);
  if (hgtest::has_cuda())
    CHECK_THROWS_WITH_AS(hg::cross_entropy(logits, target, hg::CrossEntropyOptions().weight(hg::ones({4}).cuda())),
                         doctest::Contains("must have the input's dtype and device"), hg::Error);
}

// ---- binary cross entropy with logits ----------------------------------------------------------------------------

HG_BACKEND_TEST(binary_cross_entropy_with_logits_values) {
  // Includes x = 0 (the kink of |x| and max(−x, 0)), very large |x| (no overflow) and fractional targets.
  Tensor logits = f64({0, 1.5, -2, 30, -40, 0.25, 3, -0.5}, {2, 4});
  Tensor target = f64({1, 0, 0.5, 1, 0, 1, 0.25, 0.75}, {2, 4});
  Tensor pos_weight = f64({3, 0.5, 1, 2}, {4});
  auto softplus_neg = [](double x) { return std::log1p(std::exp(-std::abs(x))) + std::max(-x, 0.0); };
  auto sigmoid = [](double x) { return 1 / (1 + std::exp(-x)); };
  std::vector<double> xv = logits.to_vector<double>(), yv = target.to_vector<double>(), pv = pos_weight.to_vector<double>();
  std::vector<double> plain(8), weighted(8), d_plain(8), d_weighted(8);
  for (size_t i = 0; i < 8; ++i) {
    double x = xv[i], y = yv[i], pw = pv[i % 4], lw = 1 + (pw - 1) * y;
    plain[i] = (1 - y) * x + softplus_neg(x);
    weighted[i] = (1 - y) * x + lw * softplus_neg(x);
    d_plain[i] = sigmoid(x) - y;
    d_weighted[i] = lw * sigmoid(x) - pw * y;
  }
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    double tol = dtype == hg::kFloat32 ? 1e-6 : 1e-13;
    Tensor x = leaf_on(logits, dtype, device), y = target.to(dtype).to(device);
    Tensor pw = pos_weight.to(dtype).to(device);
    Tensor l = hg::binary_cross_entropy_with_logits(x, y, hg::Reduction::None);
    Tensor lw = hg::binary_cross_entropy_with_logits(x, y, hg::Reduction::None, pw);
    hgtest::check_close(l, f64(plain, {2, 4}), tol, tol, "plain");
    hgtest::check_close(lw, f64(weighted, {2, 4}), tol, tol, "pos_weight");
    // PyTorch 1.13 for the first row with pos_weight: [3 ln 2, 1.7014132779827524, 1.1269280110429727, 1.87e-13].
    std::vector<double> first_row = lw.select(0, 0).to_vector<double>();
    CHECK(first_row[0] == doctest::Approx(2.07944154167983575).epsilon(tol));
    CHECK(first_row[1] == doctest::Approx(1.70141327798275244).epsilon(tol));
    Tensor mean = hg::binary_cross_entropy_with_logits(x, y);
    Tensor sum = hg::binary_cross_entropy_with_logits(x, y, hg::Reduction::Sum, pw);
    CHECK(mean.item<double>() == doctest::Approx(hg::mean(f64(plain, {8})).item<double>()).epsilon(tol));
    CHECK(sum.item<double>() == doctest::Approx(hg::sum(f64(weighted, {8})).item<double>()).epsilon(tol));
    // Gradients: σ(x) − y, and (1 + (pw − 1)y)σ(x) − pw·y — at x = 0 this is ½ − y, not the kinked 1 − y.
    Tensor dx = hg::grad({l}, {x}, {hg::ones_like(l)})[0];
    Tensor dxw = hg::grad({lw}, {x}, {hg::ones_like(lw)})[0];
    hgtest::check_close(dx, f64(d_plain, {2, 4}), tol, tol, "plain gradient");
    hgtest::check_close(dxw, f64(d_weighted, {2, 4}), tol, tol, "pos_weight gradient");
    CHECK(dx.to_vector<double>()[0] == doctest::Approx(-0.5).epsilon(tol));
    results.insert(results.end(), {l, lw, mean, sum, dx, dxw});
  }
  return results;
}

TEST_CASE("gradcheck: binary_cross_entropy_with_logits in logits, targets and pos_weight") {
  Tensor x = hgtest::uniform({3, 4}, -3, 3, 1), y = hgtest::uniform({3, 4}, 0, 1, 2);
  Tensor pw = hgtest::uniform({4}, 0.5, 3, 3);
  for (auto r : {hg::Reduction::None, hg::Reduction::Mean, hg::Reduction::Sum}) {
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::binary_cross_entropy_with_logits(t[0], t[1], r); },
                      {x, y});
    hgtest::gradcheck(
        [&](const hg::Tensors& t) { return hg::binary_cross_entropy_with_logits(t[0], t[1], r, t[2]); }, {x, y, pw});
  }
  hgtest::gradcheck(
      [](const hg::Tensors& t) { return hg::binary_cross_entropy_with_logits(t[0].t(), t[1], hg::Reduction::None, t[2]); },
      {x.t().contiguous(), y, hgtest::uniform({3, 1}, 0.5, 3, 4)});
  hgtest::gradgradcheck(
      [](const hg::Tensors& t) { return hg::binary_cross_entropy_with_logits(t[0], t[1], hg::Reduction::Mean, t[2]); },
      {x, y, pw});
}

TEST_CASE("errors: binary_cross_entropy_with_logits") {
  CHECK_THROWS_WITH_AS(hg::binary_cross_entropy_with_logits(hg::zeros({3, 4}), hg::zeros({3, 1})),
                       doctest::Contains("target shape [3, 1] must equal input shape [3, 4]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::binary_cross_entropy_with_logits(hg::zeros({3}), hg::zeros({3}, hg::kInt64)),
                       doctest::Contains("one dtype, got input float32[3] cpu and target int64[3] cpu"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::binary_cross_entropy_with_logits(hg::zeros({3, 4}), hg::zeros({3, 4}),
                                                            hg::Reduction::Mean, hg::ones({3})),
                       doctest::Contains("pos_weight of shape [3] must broadcast to the logits' shape [3, 4]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::binary_cross_entropy_with_logits(hg::zeros({3, 4}), hg::zeros({3, 4}),
                                                            hg::Reduction::Mean, hg::ones({2, 3, 4})),
                       doctest::Contains("pos_weight of shape [2, 3, 4] must broadcast to the logits' shape [3, 4]"),
                       hg::Error);
}

// ---- regression losses -------------------------------------------------------------------------------------------

HG_BACKEND_TEST(mse_and_l1_values) {
  Tensor a = f64({1, -2, 3, 0.5}, {2, 2}), b = f64({0, 1, 3, -1}, {2, 2});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    Tensor x = leaf_on(a, dtype, device), y = b.to(dtype).to(device);
    Tensor mse = hg::mse_loss(x, y), l1 = hg::l1_loss(x, y);
    // differences 1, −3, 0, 1.5: squares 1, 9, 0, 2.25; absolute values 1, 3, 0, 1.5.
    CHECK(mse.item<double>() == doctest::Approx(12.25 / 4));
    CHECK(l1.item<double>() == doctest::Approx(5.5 / 4));
    CHECK(hg::mse_loss(x, y, hg::Reduction::Sum).item<double>() == doctest::Approx(12.25));
    hgtest::check_close(hg::l1_loss(x, y, hg::Reduction::None), f64({1, 3, 0, 1.5}, {2, 2}), 0, 0, "l1 none");
    // ∂mse/∂x = 2(x − y)/n;  ∂l1/∂x = sign(x − y)/n (0 where x = y, as PyTorch)
    Tensor dmse = hg::grad({mse}, {x})[0], dl1 = hg::grad({l1}, {x})[0];
    hgtest::check_close(dmse, f64({0.5, -1.5, 0, 0.75}, {2, 2}), 1e-7, 0, "mse gradient");
    hgtest::check_close(dl1, f64({0.25, -0.25, 0, 0.25}, {2, 2}), 0, 0, "l1 gradient");
    results.insert(results.end(), {mse, l1, dmse, dl1});
  }
  return results;
}

TEST_CASE("gradcheck: mse_loss and l1_loss") {
  Tensor x = hgtest::uniform({3, 4}, -2, 2, 1), y = hgtest::uniform({3, 4}, -2, 2, 2);
  for (auto r : {hg::Reduction::None, hg::Reduction::Mean, hg::Reduction::Sum}) {
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::mse_loss(t[0], t[1], r); }, {x, y});
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::l1_loss(t[0], t[1], r); }, {x, y});
  }
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::mse_loss(t[0].t(), t[1]); },
                    {hgtest::uniform({4, 3}, -2, 2, 3), y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::mse_loss(t[0], t[1]); }, {x, y});
}

TEST_CASE("errors: mse_loss and l1_loss") {
  CHECK_THROWS_WITH_AS(hg::mse_loss(hg::zeros({3}), hg::zeros({3, 1})),
                       doctest::Contains("mse_loss: target shape [3, 1] must equal input shape [3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::l1_loss(hg::zeros({3}), hg::zeros({3}, hg::kFloat64)),
                       doctest::Contains("l1_loss: input and target must be floating-point tensors of one dtype"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::mse_loss(hg::zeros({3}), Tensor()), doctest::Contains("mse_loss: got an undefined"),
                       hg::Error);
}
