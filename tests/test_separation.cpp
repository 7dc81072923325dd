// Separation functions: the ops sparsemax, entmax15, entmax_bisect and softmax1 (hand-computed values, brute-force
// simplex projections, PyTorch fixtures of the reference algorithms, gradients against finite differences, bad
// input), and the weight-forming kinds of nn::Separation (equivalences of spec I.1.6, masks, the reference quirks
// under `compat`, per-head β, gradients through attend, printing, errors).
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
using hg::Tensors;
namespace nn = hg::nn;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

// ---- host references ------------------------------------------------------------------------------------------

/// argmin_{p ∈ Δ} ‖p − z‖² by enumerating supports: for each non-empty S the minimiser over the face's affine hull
/// is p_S = z_S − τ with τ = (Σ_S z − 1)/|S|; the projection is the closest of those that are feasible (p ≥ 0).
std::vector<double> brute_force_sparsemax(const std::vector<double>& z) {
  const size_t n = z.size();
  std::vector<double> best;
  double best_distance = kInf;
  for (uint32_t subset = 1; subset < (1u << n); ++subset) {
    double total = 0;
    for (size_t i = 0; i < n; ++i)
      if (subset >> i & 1u) total += z[i];
    const double tau = (total - 1.0) / std::popcount(subset);
    std::vector<double> p(n, 0.0);
    bool feasible = true;
    double distance = 0;
    for (size_t i = 0; i < n; ++i) {
      if (subset >> i & 1u) p[i] = z[i] - tau;
      feasible = feasible && p[i] >= 0.0;
      distance += (p[i] - z[i]) * (p[i] - z[i]);
    }
    if (feasible && distance < best_distance) best_distance = distance, best = p;
  }
  return best;
}

/// 1.5-entmax: the maximiser of pᵀz + H^T_1.5(p) on the simplex is p_i = [z_i/2 − τ]₊² with Σ p = 1; Σ p is
/// decreasing in τ, so τ is found by 200 bisection steps in long double on [max z/2 − 1, max z/2].
std::vector<double> bisection_entmax15(const std::vector<double>& z) {
  long double top = -kInf;
  for (double v : z) top = std::max<long double>(top, v / 2.0L);
  auto p_of = [&](long double tau) {
    std::vector<long double> p;
    for (double v : z) p.push_back(std::pow(std::max<long double>(v / 2.0L - tau, 0.0L), 2.0L));
    return p;
  };
  long double lo = top - 1.0L, hi = top;
  for (int it = 0; it < 200; ++it) {
    long double mid = (lo + hi) / 2, total = 0;
    for (long double v : p_of(mid)) total += v;
    (total >= 1.0L ? lo : hi) = mid;
  }
  std::vector<double> out;
  for (long double v : p_of(lo)) out.push_back(static_cast<double>(v));
  return out;
}

/// Applies a host reference to every row (last dim) of a float64 CPU tensor.
Tensor by_rows(const Tensor& x, std::vector<double> (*reference)(const std::vector<double>&)) {
  const int64_t n = x.size(-1), rows = x.numel() / n;
  std::vector<double> values = x.contiguous().to_vector<double>(), out;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row(values.begin() + r * n, values.begin() + (r + 1) * n);
    for (double v : reference(row)) out.push_back(v);
  }
  return f64(out, x.shape());
}

/// The op as a function of (x, dim), for loops over the ops.
struct Op {
  const char* name;
  Tensor (*apply)(const Tensor&, int64_t);
};
Tensor entmax_bisect_default(const Tensor& x, int64_t dim) {
  return hg::entmax_bisect(x, hg::scalar_tensor(1.3, hg::TensorOptions(x.dtype()).device(x.device())), dim);
}
const Op kOps[] = {{"sparsemax", [](const Tensor& x, int64_t d) { return hg::sparsemax(x, d); }},
                   {"entmax15", [](const Tensor& x, int64_t d) { return hg::entmax15(x, d); }},
                   {"entmax_bisect", entmax_bisect_default},
                   {"softmax1", [](const Tensor& x, int64_t d) { return hg::softmax1(x, d); }}};

}  // namespace

// ---- sparsemax ----------------------------------------------------------------------------------------------

HG_BACKEND_TEST(sparsemax_values) {
  // sparsemax([0.1, 1.1, 0.2]): sorted 1.1, 0.2, 0.1; k = 2 is the last with 1 + k z₍ₖ₎ > Σ, τ = (1.3 − 1)/2 = 0.15
  // → [0, 0.95, 0.05]. Equal entries share the mass; a −inf entry gets 0; an all −inf row gives zeros.
  Tensor x = f64({0.1, 1.1, 0.2, 3, 3, 3, 1, -kInf, 1, -kInf, -kInf, -kInf}, {4, 3}).to(device);
  Tensor p = hg::sparsemax(x, 1);
  hgtest::check_close(p, f64({0, 0.95, 0.05, 1. / 3, 1. / 3, 1. / 3, 0.5, 0, 0.5, 0, 0, 0}, {4, 3}), 1e-12, 1e-15,
                      "sparsemax rows");
  // Down the columns of xᵀ, in float32: the same numbers.
  Tensor pc = hg::sparsemax(x.to(hg::kFloat32).t(), 0);
  CHECK(pc.dtype() == hg::kFloat32);
  hgtest::check_close(pc.t(), p, 1e-6, 1e-7, "sparsemax dim 0, float32");
  // A scalar is a one-element row; an empty dim gives an empty result.
  CHECK(hg::sparsemax(hg::scalar_tensor(-4.0, hg::kFloat64).to(device), 0).item<double>() == 1.0);
  CHECK(hg::sparsemax(hg::zeros({2, 0}, hg::kFloat64).to(device), -1).shape() == hg::Shape{2, 0});
  return {p, pc};
}

HG_BACKEND_TEST(sparsemax_is_the_simplex_projection) {
  // Against the brute-force projection, on rows of length 1–8 at scales from dense to one-hot.
  Tensors outputs;
  for (int64_t n : {1, 2, 3, 5, 8}) {
    for (double scale : {0.1, 1.0, 4.0}) {
      Tensor z = hgtest::uniform({6, n}, -scale, scale, static_cast<uint64_t>(n * 10 + scale * 3));
      Tensor p = hg::sparsemax(z.to(device), -1);
      hgtest::check_close(p, by_rows(z, brute_force_sparsemax), 1e-12, 1e-13, fmt::format("n = {}", n));
      CHECK(hg::min(p).item<double>() >= 0.0);
      hgtest::check_close(hg::sum(p, {-1}), hg::ones({6}, hg::kFloat64), 1e-12, 1e-13, "sums");
      outputs.push_back(p);
    }
  }
  return outputs;
}

// ---- entmax15 -------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(entmax15_values) {
  // entmax15([1, 0]): z = [0, −½]; both in the support, τ² + (½ + τ)² = 1 → τ = (−1 − √7)/4 and
  // p = [τ², (½ + τ)²] = [0.8307…, 0.1693…]. entmax15([3, 0]) is one-hot (z₂ − τ = −3/2 + 1 < 0).
  const double tau = (-1.0 - std::sqrt(7.0)) / 4.0;
  Tensor x = f64({1, 0, 3, 0, -kInf, 2, -kInf, -kInf}, {4, 2}).to(device);
  Tensor p = hg::entmax15(x, -1);
  hgtest::check_close(p, f64({tau * tau, (0.5 + tau) * (0.5 + tau), 1, 0, 0, 1, 0, 0}, {4, 2}), 1e-12, 1e-15,
                      "entmax15");
  Tensor p32 = hg::entmax15(x.to(hg::kFloat32), -1);
  hgtest::check_close(p32, p, 1e-6, 1e-7, "entmax15 float32");
  return {p, p32};
}

HG_BACKEND_TEST(entmax15_is_the_tsallis_maximiser) {
  Tensors outputs;
  for (int64_t n : {1, 2, 3, 6, 9}) {
    for (double scale : {0.3, 2.0, 8.0}) {
      Tensor z = hgtest::uniform({5, n}, -scale, scale, static_cast<uint64_t>(n * 7 + scale * 5));
      Tensor p = hg::entmax15(z.to(device), 1);
      hgtest::check_close(p, by_rows(z, bisection_entmax15), 1e-11, 1e-13, fmt::format("n = {}", n));
      CHECK(hg::min(p).item<double>() >= 0.0);
      hgtest::check_close(hg::sum(p, {1}), hg::ones({5}, hg::kFloat64), 1e-12, 1e-13, "sums");
      outputs.push_back(p);
    }
  }
  return outputs;
}

// ---- entmax_bisect --------------------------------------------------------------------------------------------

HG_BACKEND_TEST(entmax_bisect_matches_the_exact_cases) {
  // α = 2 is sparsemax and α = 1.5 is entmax15; one α per row ([3, 1]) mixes both; α → 1 approaches softmax.
  Tensor x = hgtest::uniform({3, 7}, -2.0, 2.0, 31).to(device);
  auto alpha = [&](double a) { return hg::scalar_tensor(a, hg::TensorOptions(hg::kFloat64).device(device)); };
  Tensor a2 = hg::entmax_bisect(x, alpha(2.0), -1, 60), a15 = hg::entmax_bisect(x, alpha(1.5), -1, 60);
  hgtest::check_close(a2, hg::sparsemax(x, -1), 1e-10, 1e-12, "alpha = 2");
  hgtest::check_close(a15, hg::entmax15(x, -1), 1e-10, 1e-12, "alpha = 1.5");
  Tensor per_row = hg::entmax_bisect(x, f64({2.0, 1.5, 2.0}, {3, 1}).to(device), 1, 60);
  hgtest::check_close(per_row, hg::cat({a2.slice(0, 0, 1), a15.slice(0, 1, 2), a2.slice(0, 2, 3)}, 0), 1e-12, 1e-15,
                      "alpha per row");
  // 1.0001-entmax differs from softmax by O(α − 1).
  hgtest::check_close(hg::entmax_bisect(x, alpha(1.0001), -1), hg::softmax(x, -1), 0, 1e-3, "alpha near 1");
  // Along dim 0 of a non-contiguous view, and in float32 (the bisection stops at float32's resolution).
  Tensor xt = x.t();
  hgtest::check_close(hg::entmax_bisect(xt, alpha(1.5), 0, 60), a15.t(), 1e-10, 1e-12, "dim 0");
  Tensor a15_32 = hg::entmax_bisect(x.to(hg::kFloat32), alpha(1.5).to(hg::kFloat32));
  hgtest::check_close(a15_32, a15, 1e-4, 1e-6, "float32");
  // −inf entries get 0, an all −inf row gives zeros.
  Tensor masked = hg::entmax_bisect(f64({0, -kInf, 0, -kInf, -kInf, -kInf}, {2, 3}).to(device), alpha(1.7));
  hgtest::check_close(masked, f64({0.5, 0, 0.5, 0, 0, 0}, {2, 3}), 1e-12, 1e-15, "masked");
  // Scores far from 0 (float32 near 1e8): only their differences matter, as for sparsemax and entmax15.
  Tensor big = f64({1e8, 1e8 + 1, -1e8, 3}, {1, 4}).to(hg::kFloat32).to(device);
  Tensor far = hg::entmax_bisect(big, alpha(1.5).to(hg::kFloat32));
  hgtest::check_close(far, hg::entmax15(big, -1), 1e-5, 1e-6, "scores near 1e8");
  // Distinct float32 scores 8 apart near 1e8 (α = 1.7): (α − 1)·x rounded them into a tie ([½, ½, 0]) when the
  // scaling came before the shift; and 1e308 · (α − 1) overflowed to inf, a NaN row.
  Tensor apart = f64({1e8, 1e8 + 8, 1e8 - 8}, {1, 3}).to(hg::kFloat32).to(device);
  Tensor apart_p = hg::entmax_bisect(apart, alpha(1.7).to(hg::kFloat32));
  hgtest::check_close(apart_p, hg::entmax_bisect(hg::sub(apart, 1e8), alpha(1.7).to(hg::kFloat32)), 1e-6, 1e-7,
                      "scores 8 apart near 1e8");
  hgtest::check_close(apart_p, f64({0, 1, 0}, {1, 3}).to(hg::kFloat32), 1e-6, 1e-7, "scores 8 apart: one wins");
  Tensor huge = hg::entmax_bisect(f64({1e308, 9e307, 0}, {1, 3}).to(device), alpha(3.0));
  hgtest::check_close(huge, f64({1, 0, 0}, {1, 3}), 0, 0, "scores near the float64 maximum");
  return {a2, a15, per_row, a15_32, masked, far};
}

// ---- softmax1 -------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(softmax1_values) {
  // softmax1([0, 0]) = [1/3, 1/3]; softmax1([ln 2]) = 2/3; large logits are shifted (1000 ± 0 → ½ each, the
  // implicit 0 contributes e^−1000); very negative rows give tiny weights, all −inf rows exactly 0.
  Tensor x = f64({0, 0, std::log(2.0), -kInf, 1000, 1000, -600, -601, -kInf, -kInf}, {5, 2}).to(device);
  Tensor y = hg::softmax1(x, 1);
  const double e = std::exp(1.0);
  hgtest::check_close(y, f64({1. / 3, 1. / 3, 2. / 3, 0, 0.5, 0.5, 0, 0, 0, 0}, {5, 2}), 1e-12, 1e-200, "softmax1");
  CHECK(y.select(0, 3).select(0, 0).item<double>() > 0.0);  // e^−600 is a normal double: no underflow to 0
  hgtest::check_close(y.select(0, 3).select(0, 0) / y.select(0, 3).select(0, 1), hg::scalar_tensor(e, hg::kFloat64), 1e-12, 0, "ratio");
  Tensor y32 = hg::softmax1(x.to(hg::kFloat32), 1);
  hgtest::check_close(y32, y, 1e-6, 1e-7, "float32");
  // Weights sum to less than one: Σ y = S/(1 + S) with S = Σ e^x.
  Tensor z = hgtest::uniform({4, 5}, -3, 3, 5).to(device);
  Tensor s = hg::sum(hg::exp(z), {0}, true);
  hgtest::check_close(hg::softmax1(z, 0), hg::exp(z) / (s + 1.0), 1e-12, 1e-15, "dim 0");
  return {y, y32};
}

// ---- properties shared by all four ops --------------------------------------------------------------------------

HG_BACKEND_TEST(separation_ops_are_distributions_along_any_dim) {
  Tensors outputs;
  Tensor x = (hgtest::uniform({3, 4, 5}, -3, 3, 8)).to(device);
  for (const Op& op : kOps) {
    for (int64_t dim : {0, 1, 2, -1}) {
      Tensor p = op.apply(x, dim);
      CHECK_MESSAGE(hg::min(p).item<double>() >= 0.0, std::string(op.name));
      Tensor total = hg::sum(p, {dim});
      if (std::string(op.name) == "softmax1")
        CHECK_MESSAGE(hg::max(total).item<double>() < 1.0, std::string(op.name));
      else
        hgtest::check_close(total, hg::ones_like(total), 1e-9, 1e-12, std::string(op.name));
      // A non-contiguous view gives the values of its contiguous copy.
      Tensor view = x.permute({2, 0, 1});
      int64_t view_dim = (dim + 3) % 3 == 2 ? 0 : (dim + 3) % 3 + 1;
      hgtest::check_close(op.apply(view, view_dim), p.permute({2, 0, 1}), 1e-12, 1e-15, std::string(op.name));
      outputs.push_back(p);
    }
    // Every −inf → zeros, never NaN; the gradient of a dead row is 0.
    Tensor dead = hg::full({2, 3}, -kInf, hg::TensorOptions(hg::kFloat64).device(device)).requires_grad_();
    Tensor w = op.apply(dead, -1);
    CHECK_MESSAGE(hg::max_abs_diff(w, hg::zeros_like(w)) == 0.0, std::string(op.name));
    hg::sum(w * hg::arange(6.0, hg::TensorOptions(hg::kFloat64).device(device)).reshape({2, 3})).backward();
    CHECK_MESSAGE(hg::max_abs_diff(dead.grad(), hg::zeros_like(dead)) == 0.0, std::string(op.name));
  }
  return outputs;
}

TEST_CASE("separation ops: gradients against finite differences") {
  for (const Op& op : kOps) {
    INFO(std::string(op.name));
    auto at = [&](int64_t dim) { return [&op, dim](const Tensors& t) { return op.apply(t[0], dim); }; };
    hgtest::gradcheck(at(-1), {hgtest::uniform({5}, -2, 2, 1)});
    hgtest::gradcheck(at(1), {hgtest::uniform({3, 4}, -2, 2, 2)});
    hgtest::gradcheck(at(0), {hgtest::uniform({4, 3}, -2, 2, 3)});
    hgtest::gradcheck(at(1), {hgtest::uniform({2, 4, 3}, -2, 2, 4)});
    // A non-contiguous input along its dim 0, and masked (−inf) entries, whose gradient is 0.
    hgtest::gradcheck([&](const Tensors& t) { return op.apply(t[0].select(0, 0).transpose(0, 1), 0); },
                      {hgtest::uniform({2, 4, 3}, -2, 2, 5)});
    hgtest::gradcheck(
        [&](const Tensors& t) {
          return op.apply(hg::masked_fill(t[0], f64({0, 1, 0, 0, 1, 1, 1, 1}, {2, 4}) > 0.5, -kInf), -1);
        },
        {hgtest::uniform({2, 4}, -2, 2, 6)});
  }
}

TEST_CASE("separation ops: second derivatives") {
  // Through p², so the gradient reaching each op depends on x: sparsemax's backward is then differentiated in its
  // incoming gradient (its own x-derivative is 0 almost everywhere: the support is piecewise constant), the others'
  // also in p (their curvature on the support).
  for (const Op& op : kOps) {
    INFO(std::string(op.name));
    hgtest::gradgradcheck([&](const Tensors& t) { return hg::square(op.apply(t[0], -1)); },
                          {hgtest::uniform({2, 4}, -1, 1, 9)});
    hgtest::gradgradcheck([&](const Tensors& t) { return hg::square(op.apply(t[0].t(), 0)); },
                          {hgtest::uniform({4, 3}, -1, 1, 10)});
  }
}

TEST_CASE("entmax_bisect: gradient in alpha") {
  // Scalar α and one α per row, with the input's gradient checked jointly; α near 1 and above 2 too.
  hgtest::GradcheckOptions tight;
  for (double a : {1.2, 1.5, 2.5}) {
    INFO("alpha = " << a);
    hgtest::gradcheck([](const Tensors& t) { return hg::entmax_bisect(t[0], t[1], -1, 80); },
                      {hgtest::uniform({3, 5}, -2, 2, 11), hg::scalar_tensor(a, hg::kFloat64)}, tight);
  }
  hgtest::gradcheck([](const Tensors& t) { return hg::entmax_bisect(t[0], t[1], 0, 80); },
                    {hgtest::uniform({4, 3}, -2, 2, 12), f64({1.3, 1.8, 2.2}, {1, 3})});
  hgtest::gradgradcheck([](const Tensors& t) { return hg::entmax_bisect(t[0], t[1], -1, 80); },
                        {hgtest::uniform({2, 4}, -1, 1, 13), hg::scalar_tensor(1.4, hg::kFloat64)});
}

TEST_CASE("separation ops: PyTorch fixture of the reference algorithms") {
  // tests/fixtures/separation.txt, written by scripts/make_separation_fixtures.py.
  const auto fixture = hgtest::Fixture::load("separation");
  for (const char* input : {"x", "x3"}) {
    for (const Op& op : {kOps[0], kOps[1]}) {
      const std::string y = fmt::format("{}_{}", op.name, input);
      for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
        INFO(y << " " << hg::dtype_name(dtype));
        const double tol = dtype == hg::kFloat64 ? 1e-12 : 2e-6;
        Tensor x = fixture.tensor(input).to(dtype).requires_grad_();
        Tensor p = op.apply(x, 1);
        hgtest::check_close(p, fixture.tensor(y), tol, tol, y);
        hg::sum(p * fixture.tensor("grad_" + y).to(dtype)).backward();
        hgtest::check_close(x.grad(), fixture.tensor(fmt::format("d{}/d{}", y, input)), tol, tol, "gradient");
        // α-entmax by bisection reaches the same point and the same gradient.
        if (dtype == hg::kFloat64) {
          Tensor xb = fixture.tensor(input).requires_grad_();
          Tensor pb = hg::entmax_bisect(xb, hg::scalar_tensor(op.name == std::string("sparsemax") ? 2.0 : 1.5,
                                                              hg::kFloat64),
                                        1, 60);
          hgtest::check_close(pb, fixture.tensor(y), 1e-10, 1e-12, "bisection");
          hg::sum(pb * fixture.tensor("grad_" + y)).backward();
          hgtest::check_close(xb.grad(), fixture.tensor(fmt::format("d{}/d{}", y, input)), 1e-8, 1e-10,
                              "bisection gradient");
        }
      }
    }
  }
}

TEST_CASE("separation ops: bad input") {
  Tensor x = hgtest::uniform({2, 3});
  CHECK_THROWS_WITH_AS(hg::sparsemax(hg::ones({3}, hg::kInt64)), doctest::Contains("sparsemax: expects a floating-point tensor"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax15(x, 2), doctest::Contains("entmax15: dimension 2 out of range for a 2-D tensor"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::softmax1(Tensor(), -1), doctest::Contains("softmax1: got an undefined tensor"), hg::Error);
  const Tensor alpha = hg::scalar_tensor(1.5, hg::kFloat64);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, hg::scalar_tensor(1.0, hg::kFloat64)),
                       doctest::Contains("entmax_bisect: alpha must be > 1 (alpha = 1 is softmax), got 1"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, f64({1.5, 0.5}, {2, 1})), doctest::Contains("alpha must be > 1"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, f64({1.5, 1.5, 1.5}, {3})),
                       doctest::Contains("entmax_bisect: alpha of shape [3] must be a scalar or broadcast to [2, 1]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, f64({1.5, 1.5, 1.5}, {1, 3})), doctest::Contains("must be a scalar or"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, hg::scalar_tensor(2, hg::kInt64)),
                       doctest::Contains("entmax_bisect: alpha must be a floating-point tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, Tensor()), doctest::Contains("entmax_bisect: alpha is undefined"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, alpha, -1, 0), doctest::Contains("entmax_bisect: n_iter must be positive"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::entmax_bisect(x, alpha, 3), doctest::Contains("entmax_bisect: dimension 3 out of range"),
                       hg::Error);
  if (hgtest::has_cuda())
    CHECK_THROWS_WITH_AS(hg::entmax_bisect(x.cuda(), alpha), doctest::Contains("entmax_bisect: alpha is on cpu"),
                         hg::Error);
}

// ---- nn::Separation: the kinds that form weights ----------------------------------------------------------------

namespace {

using nn::SeparationKind;
using nn::SeparationOptions;

/// A Separation in float64 on `device` (a learnable α follows).
nn::Separation separation_on(const SeparationOptions& options, hg::Device device) {
  nn::Separation s(options);
  s->to(device, hg::kFloat64);
  return s;
}

Tensor beta_on(double beta, hg::Device device) {
  return hg::scalar_tensor(beta, hg::TensorOptions(hg::kFloat64).device(device));
}

/// Every kind that forms an explicit weight matrix, with options small enough for tests.
std::vector<SeparationOptions> weight_forming_kinds() {
  return {SeparationOptions(SeparationKind::Softmax),
          SeparationOptions(SeparationKind::Softmax1),
          SeparationOptions(SeparationKind::Sparsemax),
          SeparationOptions(SeparationKind::Entmax15),
          SeparationOptions(SeparationKind::AlphaEntmax).alpha(1.3),
          SeparationOptions(SeparationKind::AlphaEntmax).alpha(1.7).learnable_alpha(true),
          SeparationOptions(SeparationKind::TopK).top_k(2),
          SeparationOptions(SeparationKind::RandomMask).mask_prob(0.3),
          SeparationOptions(SeparationKind::Window).window(1),
          SeparationOptions(SeparationKind::Polynomial).degree(3)};
}

std::string describe_kind(const SeparationOptions& o) { return std::string(nn::to_string(o.kind())); }

}  // namespace

HG_BACKEND_TEST(separation_restricted_kinds_equal_dense_softmax_at_their_limits) {
  // Spec I.1.6: top-K with K = S, random masking with p = 0 and a window w ≥ max(L, S) keep every key, so each
  // equals dense softmax attention — weights and output, with a key padding mask, in paper and compat semantics.
  Tensor q = hgtest::uniform({2, 5, 3}, -1, 1, 41).to(device), k = hgtest::uniform({2, 6, 3}, -1, 1, 42).to(device);
  Tensor v = hgtest::uniform({2, 6, 4}, -1, 1, 43).to(device);
  Tensor mask = (f64({0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1}, {2, 1, 6}) > 0.5).to(device);
  Tensor beta = beta_on(0.8, device), dense_weights, weights;
  Tensor dense = separation_on(SeparationOptions(), device)->attend(q, k, v, beta, mask, {}, 0.0, &dense_weights);
  Tensors outputs{dense, dense_weights};
  for (bool compat : {false, true}) {
    for (const SeparationOptions& o : {SeparationOptions(SeparationKind::TopK).top_k(6),
                                       SeparationOptions(SeparationKind::TopK).top_k(100),
                                       SeparationOptions(SeparationKind::TopK).top_fraction(1.0),
                                       SeparationOptions(SeparationKind::RandomMask).mask_prob(0.0),
                                       SeparationOptions(SeparationKind::Window).window(6)}) {
      if (compat && o.kind() == SeparationKind::Window) continue;  // compat ignores β (tested below)
      INFO(describe_kind(o) << (compat ? " compat" : ""));
      Tensor out = separation_on(SeparationOptions(o).compat(compat), device)
                       ->attend(q, k, v, beta, mask, {}, 0.0, &weights);
      hgtest::check_close(out, dense, 1e-12, 1e-14, "output");
      hgtest::check_close(weights, dense_weights, 1e-12, 1e-14, "weights");
      outputs.push_back(out);
    }
  }
  return outputs;
}

HG_BACKEND_TEST(separation_fully_masked_rows_give_zeros) {
  // Query 1 of batch 0 has every key excluded: its weights and output are 0, and no NaN reaches any gradient.
  Tensors outputs;
  for (const SeparationOptions& o : weight_forming_kinds()) {
    INFO(describe_kind(o));
    nn::Separation sep = separation_on(o, device);
    Tensor q = hgtest::uniform({2, 3, 2}, -1, 1, 51).to(device).requires_grad_();
    Tensor k = hgtest::uniform({2, 4, 2}, -1, 1, 52).to(device).requires_grad_();
    Tensor v = hgtest::uniform({2, 4, 3}, -1, 1, 53).to(device).requires_grad_();
    std::vector<double> excluded(2 * 3 * 4, 0.0);
    for (int j = 0; j < 4; ++j) excluded[4 + j] = 1.0;  // batch 0, query 1
    excluded[12 + 3] = 1.0;                             // and one pair in batch 1
    Tensor mask = (f64(excluded, {2, 3, 4}) > 0.5).to(device);
    Tensor weights;
    hg::Generator gen(3);
    Tensor out = sep->attend(q, k, v, beta_on(1.2, device), mask, {}, 0.0, &weights, &gen);
    CHECK(hg::max_abs_diff(weights.select(0, 0).select(0, 1), hg::zeros({4}, hg::kFloat64).to(device)) == 0.0);
    CHECK(hg::max_abs_diff(out.select(0, 0).select(0, 1), hg::zeros({3}, hg::kFloat64).to(device)) == 0.0);
    CHECK(hg::max_abs_diff(hg::masked_fill(weights, mask, 0.0), weights) == 0.0);  // excluded pairs get 0
    hg::sum(out * out).backward();
    for (const Tensor& t : {out, q.grad(), k.grad(), v.grad()})
      CHECK(hg::max_abs_diff(t, t) == 0.0);  // NaN ≠ NaN
    outputs.push_back(out);
    if (o.kind() != SeparationKind::RandomMask) outputs.push_back(q.grad());
  }
  return outputs;
}

HG_BACKEND_TEST(separation_compat_quirks) {
  Tensors outputs;
  // Top-K, K = 2 of scores [1, 2, 3, ½]: the paper's weights are softmax over {2, 3}; the reference sets the other
  // scores to 0, which keep softmax mass e⁰ each: [1, e², e³, 1] / (2 + e² + e³).
  {
    Tensor scores = f64({1, 2, 3, 0.5}, {1, 4}).to(device);
    const double e2 = std::exp(2.0), e3 = std::exp(3.0);
    auto topk = SeparationOptions(SeparationKind::TopK).top_k(2);
    Tensor paper = separation_on(topk, device)->weights(scores).weights;
    Tensor compat = separation_on(SeparationOptions(topk).compat(true), device)->weights(scores).weights;
    hgtest::check_close(paper, f64({0, e2 / (e2 + e3), e3 / (e2 + e3), 0}, {1, 4}), 1e-12, 1e-15, "top-K");
    hgtest::check_close(compat, f64({1, e2, e3, 1}, {1, 4}) / (2 + e2 + e3), 1e-12, 1e-15, "top-K compat");
    outputs.insert(outputs.end(), {paper, compat});
  }
  // Random mask, p = ½: the paper excludes the dropped keys; the reference's dropout zeroes their scores and doubles
  // the survivors'. The draws are replayed from the same generator seed to know which keys were dropped.
  {
    Tensor scores = hgtest::uniform({3, 5}, -1, 1, 61).to(device);
    auto random = SeparationOptions(SeparationKind::RandomMask).mask_prob(0.5);
    hg::Generator gen_paper(9), gen_compat(9), replay(9);
    Tensor paper = separation_on(random, device)->weights(scores, {}, &gen_paper).weights;
    Tensor compat = separation_on(SeparationOptions(random).compat(true), device)->weights(scores, {}, &gen_compat).weights;
    std::vector<double> u = hg::rand({3, 5}, hg::TensorOptions(hg::kFloat64).device(device), &replay).cpu().to_vector<double>();
    std::vector<double> s = scores.cpu().to_vector<double>(), want_paper, want_compat;
    int dropped_count = 0;
    for (int r = 0; r < 3; ++r) {
      double kept_sum = 0, compat_sum = 0;
      for (int j = 0; j < 5; ++j) {
        const bool dropped = u[r * 5 + j] < 0.5;
        dropped_count += dropped;
        kept_sum += dropped ? 0 : std::exp(s[r * 5 + j]);
        compat_sum += std::exp(dropped ? 0.0 : 2 * s[r * 5 + j]);
      }
      for (int j = 0; j < 5; ++j) {
        const bool dropped = u[r * 5 + j] < 0.5;
        want_paper.push_back(dropped || kept_sum == 0 ? 0 : std::exp(s[r * 5 + j]) / kept_sum);
        want_compat.push_back(std::exp(dropped ? 0.0 : 2 * s[r * 5 + j]) / compat_sum);
      }
    }
    CHECK(dropped_count > 2);  // the seed drops some keys (and keeps some)
    CHECK(dropped_count < 13);
    hgtest::check_close(paper, f64(want_paper, {3, 5}), 1e-12, 1e-15, "random mask");
    hgtest::check_close(compat, f64(want_compat, {3, 5}), 1e-12, 1e-15, "random mask compat");
    outputs.insert(outputs.end(), {paper, compat});
  }
  // Window w = 1 over 3 positions with q = [1, 2, 3], k = [0, 1, 2] (d = 1) and β = 3: row 0 sees keys 0 and 1 with
  // scores β·[0, 1] → [1, e³]/(1 + e³); the reference ignores β: [1, e]/(1 + e). Key 2 is outside the band.
  {
    Tensor q = f64({1, 2, 3}, {3, 1}).to(device), k = f64({0, 1, 2}, {3, 1}).to(device);
    Tensor v = hg::eye(3, hg::TensorOptions(hg::kFloat64).device(device));  // out = weights
    auto window = SeparationOptions(SeparationKind::Window).window(1);
    Tensor paper_w, compat_w;
    separation_on(window, device)->attend(q, k, v, beta_on(3.0, device), {}, {}, 0.0, &paper_w);
    separation_on(SeparationOptions(window).compat(true), device)->attend(q, k, v, beta_on(3.0, device), {}, {}, 0.0, &compat_w);
    const double e = std::exp(1.0), e3 = std::exp(3.0);
    hgtest::check_close(paper_w.select(0, 0), f64({1 / (1 + e3), e3 / (1 + e3), 0}, {3}), 1e-12, 1e-15, "window");
    hgtest::check_close(compat_w.select(0, 0), f64({1 / (1 + e), e / (1 + e), 0}, {3}), 1e-12, 1e-15, "window compat");
    outputs.insert(outputs.end(), {paper_w, compat_w});
  }
  return outputs;
}

HG_BACKEND_TEST(separation_per_head_beta) {
  // β of shape [H, 1, 1] scales each head's scores by its own β: the same as attending head by head.
  Tensor q = hgtest::uniform({2, 3, 4, 2}, -1, 1, 71).to(device), k = hgtest::uniform({2, 3, 5, 2}, -1, 1, 72).to(device);
  Tensor v = hgtest::uniform({2, 3, 5, 2}, -1, 1, 73).to(device);
  const std::vector<double> betas{0.5, 1.0, 4.0};
  Tensors outputs;
  for (SeparationKind kind : {SeparationKind::Softmax, SeparationKind::Sparsemax, SeparationKind::Entmax15,
                              SeparationKind::Softmax1}) {
    INFO(nn::to_string(kind));
    nn::Separation sep = separation_on(SeparationOptions(kind), device);
    Tensor out = sep->attend(q, k, v, f64(betas, {3, 1, 1}).to(device));
    for (int64_t h = 0; h < 3; ++h)
      hgtest::check_close(out.select(1, h),
                          sep->attend(q.select(1, h), k.select(1, h), v.select(1, h), beta_on(betas[h], device)), 1e-12,
                          1e-14, fmt::format("head {}", h));
    outputs.push_back(out);
  }
  return outputs;
}

TEST_CASE("Separation: gradients through attend") {
  // q, k, v and β (a 0-dim input) against finite differences, with a key padding mask, for every weight-forming
  // kind. RandomMask draws from a generator reset in every evaluation, so each sees the same mask; Window asks for
  // the weights, which takes the dense band path.
  Tensor mask = f64({0, 0, 0, 0, 0, 1, 0, 0}, {2, 1, 4}) > 0.5;
  for (const SeparationOptions& o : weight_forming_kinds()) {
    const bool has_quirk = o.kind() == SeparationKind::TopK || o.kind() == SeparationKind::RandomMask ||
                           o.kind() == SeparationKind::Window;
    for (bool compat : {false, true}) {
      if (compat && !has_quirk) continue;
      INFO(describe_kind(o) << (compat ? " compat" : ""));
      nn::Separation sep = separation_on(SeparationOptions(o).compat(compat), hg::kCPU);
      hgtest::gradcheck(
          [&](const Tensors& t) {
            hg::Generator gen(17);
            Tensor weights;
            return sep->attend(t[0], t[1], t[2], t[3], mask, {}, 0.0, &weights, &gen);
          },
          {hgtest::uniform({2, 3, 2}, -1, 1, 81), hgtest::uniform({2, 4, 2}, -1, 1, 82),
           hgtest::uniform({2, 4, 3}, -1, 1, 83), hg::scalar_tensor(1.3, hg::kFloat64)});
    }
  }
  // Non-contiguous q and an additive bias, per-head β [H, 1, 1].
  nn::Separation sep = separation_on(SeparationOptions(SeparationKind::Sparsemax), hg::kCPU);
  hgtest::gradcheck(
      [&](const Tensors& t) {
        return sep->attend(t[0].transpose(1, 2), t[1], t[2], t[3], {}, t[4]);
      },
      {hgtest::uniform({1, 3, 2, 2}, -1, 1, 84), hgtest::uniform({1, 2, 4, 2}, -1, 1, 85),
       hgtest::uniform({1, 2, 4, 3}, -1, 1, 86), f64({0.7, 1.9}, {2, 1, 1}), hgtest::uniform({2, 1, 4}, -1, 1, 87)});
}

TEST_CASE("Separation: learnable alpha") {
  nn::Separation sep = separation_on(SeparationOptions(SeparationKind::AlphaEntmax).alpha(1.6).learnable_alpha(true),
                                     hg::kCPU);
  auto named = sep->named_parameters();
  REQUIRE(named.size() == 1);
  CHECK(named[0].first == "alpha");
  CHECK(sep->alpha.item<double>() == doctest::Approx(1.6));
  Tensor q = hgtest::uniform({2, 3, 2}, -1, 1, 91), k = hgtest::uniform({2, 5, 2}, -1, 1, 92);
  Tensor v = hgtest::uniform({2, 5, 2}, -1, 1, 93), w = hgtest::uniform({2, 3, 2}, -1, 1, 94);
  auto loss = [&] { return hg::sum(sep->attend(q, k, v, beta_on(2.0, hg::kCPU)) * w); };
  loss().backward();
  const double grad = sep->alpha.grad().item<double>();
  // Central difference in α.
  double at[2];
  for (int side = 0; side < 2; ++side) {
    hg::NoGradGuard no_grad;
    sep->alpha.fill_(1.6 + (side ? 1e-6 : -1e-6));
    at[side] = loss().item<double>();
  }
  CHECK(grad == doctest::Approx((at[1] - at[0]) / 2e-6).epsilon(1e-5));
  CHECK(std::abs(grad) > 1e-4);  // α matters here
  // An optimiser step that pushes α to 1 or below still gives weights (α is used clamped to 1.01).
  {
    hg::NoGradGuard no_grad;
    sep->alpha.fill_(0.9);
  }
  Tensor weights = sep->weights(hgtest::uniform({3, 4}, -1, 1, 95)).weights;
  hgtest::check_close(hg::sum(weights, {-1}), hg::ones({3}, hg::kFloat64), 1e-9, 1e-12, "alpha clamped");
}

TEST_CASE("Separation: printing and kind names") {
  auto text = [](const SeparationOptions& o) { return fmt::format("{}", nn::Separation(o)); };
  CHECK(text(SeparationOptions()) == "Separation(softmax)");
  CHECK(text(SeparationOptions(SeparationKind::TopK).top_k(3)) == "Separation(topk, k=3)");
  CHECK(text(SeparationOptions(SeparationKind::TopK).top_fraction(0.25)) == "Separation(topk, fraction=0.25)");
  CHECK(text(SeparationOptions(SeparationKind::RandomMask).compat(true)) == "Separation(random, p=0.1, compat)");
  CHECK(text(SeparationOptions(SeparationKind::Window).window(4)) == "Separation(window, window=4)");
  CHECK(text(SeparationOptions(SeparationKind::AlphaEntmax).learnable_alpha(true)) ==
        "Separation(entmax, alpha=1.5 (learnable))");
  CHECK(text(SeparationOptions(SeparationKind::Polynomial)) == "Separation(poly, degree=10)");
  for (SeparationKind kind : {SeparationKind::Softmax, SeparationKind::Softmax1, SeparationKind::Sparsemax,
                              SeparationKind::Entmax15, SeparationKind::AlphaEntmax, SeparationKind::TopK,
                              SeparationKind::RandomMask, SeparationKind::Window, SeparationKind::Linear,
                              SeparationKind::RandomFeatures, SeparationKind::ReluFeatures, SeparationKind::Polynomial})
    CHECK(nn::separation_kind_from_string(nn::to_string(kind)) == kind);
  CHECK_THROWS_WITH_AS(nn::separation_kind_from_string("sparse"),
                       doctest::Contains("separation: unknown kind 'sparse'; expected one of softmax, softmax1, sparsemax"),
                       hg::Error);
}

TEST_CASE("Separation: bad options and input") {
  using doctest::Contains;
  auto make = [](const SeparationOptions& o) { return nn::Separation(o); };
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::TopK).top_fraction(0.0)),
                       Contains("Separation(topk): top_fraction must be in (0, 1], got 0"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::TopK).top_k(-1)),
                       Contains("Separation(topk): top_k must be >= 0, got -1"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::RandomMask).mask_prob(1.0)),
                       Contains("Separation(random): mask_prob must be in [0, 1), got 1"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::AlphaEntmax).alpha(1.0)),
                       Contains("Separation(entmax): alpha must be > 1"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::Window).window(-1)),
                       Contains("Separation(window): window must be >= 0, got -1"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::Polynomial).degree(0)),
                       Contains("Separation(poly): degree must be >= 1, got 0"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::Polynomial).forgetting(nn::ForgettingOptions())),
                       Contains("Separation(poly): a forgetting unit reshapes a normalised memory Lagrangian"), hg::Error);
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::Linear).forgetting(nn::ForgettingOptions())),
                       Contains("Separation(linear): a forgetting unit acts on scores"), hg::Error);

  nn::Separation sep(SeparationOptions(SeparationKind::Sparsemax));
  Tensor scores = hgtest::uniform({2, 4});
  CHECK_THROWS_WITH_AS(make(SeparationOptions(SeparationKind::Linear))->weights(scores),
                       Contains("Separation(linear).weights: this kind never forms the weight matrix; use attend()"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(sep->weights(hg::ones({2, 4}, hg::kInt64)),
                       Contains("Separation(sparsemax).weights: scores must be a floating tensor [..., S], got int64"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(sep->weights(scores, hg::zeros({2, 4})),
                       Contains("Separation(sparsemax).weights: mask must be bool (true = excluded), got float32"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(sep->weights(scores, hg::zeros({3}, hg::kBool)),
                       Contains("Separation(sparsemax).weights: mask of shape [3] does not broadcast to the scores' "
                                "shape [2, 4]"),
                       hg::Error);
  Tensor q = hgtest::uniform({3, 2}), k = hgtest::uniform({4, 3}), v = hgtest::uniform({4, 5});
  const Tensor beta = hg::scalar_tensor(1.0, hg::kFloat64);
  CHECK_THROWS_WITH_AS(sep->attend(q, k, v, beta),
                       Contains("Separation(sparsemax).attend: expected q [..., L, d], k [..., S, d], v [..., S, dv], "
                                "got q [3, 2], k [4, 3], v [4, 5]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(sep->attend(q, hgtest::uniform({4, 2}), v, beta, {}, {}, 1.5),
                       Contains("Separation(sparsemax).attend: dropout must be in [0, 1], got 1.5"), hg::Error);
  CHECK_THROWS_WITH_AS(sep->attend(q, hgtest::uniform({4, 2}), v, Tensor()),
                       Contains("Separation(sparsemax).attend: q, k, v and beta must all be defined"), hg::Error);
}
