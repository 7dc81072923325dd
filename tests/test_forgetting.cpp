// LwPF partial forgetting units (nn/hopfield/forgetting.h, spec B and I.1.4): the units' exact values, the
// weight sum of B.1, where the gradient of forgotten entries goes, eval determinism and the σ² noise scale,
// masked (−∞) scores with and without compat, gradchecks, the B.3 order inside Separation::attend, errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

nn::ForgettingOptions relu() { return nn::ForgettingOptions(nn::ForgettingKind::ReLU); }
nn::ForgettingOptions pfu() { return nn::ForgettingOptions(nn::ForgettingKind::PFU); }

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

/// The lower median of the finite values (torch.median's element (n − 1)/2 of the sorted values).
double lower_median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return std::isinf(v); });
  std::sort(values.begin(), values.end());
  return values[(values.size() - 1) / 2];
}

/// B.1: Σ_μ softmax(D(h))_μ D′(h_μ) = Σ_{h>a} e^h / (Σ_{h>a} e^h + n_forgotten·e^b) for one row of finite h.
double lwpf_weight_sum(const std::vector<double>& row, double threshold, double bias) {
  double kept = 0.0;
  int forgotten = 0;
  for (double h : row) {
    if (h > threshold)
      kept += std::exp(h);
    else
      ++forgotten;
  }
  return kept / (kept + forgotten * std::exp(bias));
}

/// True when every element of the bool tensor `t` is true.
bool all(const Tensor& t) { return hg::logical_not(t).sum().item<int64_t>() == 0; }

/// softmax(D(x)) ⊙ D′ over the last dim: the LwPF association weights (B.3 without dropout).
Tensor lwpf_weights(const Tensor& x, const nn::ForgettingOptions& options, bool training = false,
                    hg::Generator* gen = nullptr) {
  nn::Forgetting f = nn::forget(x, options, training, gen);
  return hg::softmax(f.value, -1) * f.keep;
}

}  // namespace

TEST_CASE("forgetting: ReLU is max(x, 0) with keep 1[x > 0], and equals PFU(constant 0, bias 0)") {
  Tensor x = f64({-1.5, 0.0, 2.0, 0.25, -0.0, 3.0}, {2, 3});
  nn::Forgetting f = nn::forget(x, relu(), /*training=*/true);
  hgtest::check_close(f.value, f64({0, 0, 2, 0.25, 0, 3}, {2, 3}), 0, 0);
  hgtest::check_close(f.keep, f64({0, 0, 1, 1, 0, 1}, {2, 3}), 0, 0);  // Heaviside with 0 at 0
  CHECK(f.value.dtype() == hg::kFloat64);
  CHECK(f.keep.dtype() == hg::kFloat64);
  CHECK_FALSE(f.keep.requires_grad());

  // ReLU ≡ PFU with threshold 0 and bias 0 (in evaluation: PFU adds noise in training, ReLU never does)
  Tensor y = hgtest::uniform({3, 7}, -2, 2, 11);
  auto as_relu = pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(0.0).bias_is_threshold(false).bias(0.0);
  nn::Forgetting a = nn::forget(y, relu(), false), b = nn::forget(y, as_relu, false);
  hgtest::check_close(a.value, b.value, 0, 0);
  hgtest::check_close(a.keep, b.keep, 0, 0);
  hgtest::check_close(a.value, hg::relu(y), 0, 0);
  // ... and in training when PFU's noise is off
  nn::Forgetting c = nn::forget(y, as_relu.sigma(0.0), true);
  hgtest::check_close(c.value, a.value, 0, 0);
}

TEST_CASE("forgetting: PFU with the global lower median, bias = threshold, is max(x, t) with keep 1[x > t]") {
  // 8 values: the lower median is the 4th smallest, 0.5 (torch.median, not the mean of the middle two)
  Tensor x = f64({3.0, -1.0, 0.5, 2.0, -4.0, 0.75, 1.0, -0.5}, {2, 4});
  nn::Forgetting f = nn::forget(x, pfu(), /*training=*/false);
  hgtest::check_close(f.value, f64({3.0, 0.5, 0.5, 2.0, 0.5, 0.75, 1.0, 0.5}, {2, 4}), 0, 0);
  // strict: the median element itself is forgotten, so exactly half is forgotten for an even count
  hgtest::check_close(f.keep, f64({1, 0, 0, 1, 0, 1, 1, 0}, {2, 4}), 0, 0);

  SUBCASE("per-row lower median") {
    nn::Forgetting r = nn::forget(x, pfu().threshold(nn::ForgettingThreshold::RowMedian), false);
    // row 0 {3, −1, 0.5, 2}: median 0.5; row 1 {−4, 0.75, 1, −0.5}: median −0.5
    hgtest::check_close(r.value, f64({3.0, 0.5, 0.5, 2.0, -0.5, 0.75, 1.0, -0.5}, {2, 4}), 0, 0);
    hgtest::check_close(r.keep, f64({1, 0, 0, 1, 0, 1, 1, 0}, {2, 4}), 0, 0);
  }
  SUBCASE("constant threshold, constant bias") {
    nn::Forgetting c = nn::forget(
        x, pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(0.75).bias_is_threshold(false).bias(-2.0),
        false);
    hgtest::check_close(c.value, f64({3.0, -2, -2, 2.0, -2, -2, 1.0, -2}, {2, 4}), 0, 0);
    hgtest::check_close(c.keep, f64({1, 0, 0, 1, 0, 0, 1, 0}, {2, 4}), 0, 0);
  }
  SUBCASE("non-contiguous input") {
    Tensor y = f64({5, 1, 4, 2, 3, 0}, {3, 2}).transpose(0, 1);  // [[5, 4, 3], [1, 2, 0]]: lower median 2
    CHECK_FALSE(y.is_contiguous());
    nn::Forgetting g = nn::forget(y, pfu(), false);
    hgtest::check_close(g.value, f64({5, 4, 3, 2, 2, 2}, {2, 3}), 0, 0);
    hgtest::check_close(g.keep, f64({1, 1, 1, 0, 0, 0}, {2, 3}), 0, 0);
  }
}

TEST_CASE("forgetting: the weights softmax(D(s)) ⊙ D′ of a row sum to Σ_{h>a} e^h / (Σ_{h>a} e^h + n·e^b) < 1") {
  Tensor scores = hgtest::uniform({2, 3, 7}, -3, 3, 21);
  std::vector<double> values = scores.to_vector<double>();
  auto check_rows = [&](const nn::ForgettingOptions& options, auto threshold_of_row, auto bias_of_row) {
    std::vector<double> sums = hg::sum(lwpf_weights(scores, options), {-1}).to_vector<double>();
    for (size_t row = 0; row < sums.size(); ++row) {
      std::vector<double> h(values.begin() + static_cast<long>(row * 7), values.begin() + static_cast<long>(row * 7 + 7));
      double a = threshold_of_row(h), b = bias_of_row(h);
      CAPTURE(row);
      CHECK(sums[row] == doctest::Approx(lwpf_weight_sum(h, a, b)).epsilon(1e-12));
      CHECK(sums[row] < 1.0);
      CHECK(sums[row] > 0.0);
    }
  };
  const double global_median = lower_median(values);
  auto global = [&](const std::vector<double>&) { return global_median; };
  auto row_median = [](const std::vector<double>& h) { return lower_median(h); };
  auto zero = [](const std::vector<double>&) { return 0.0; };
  check_rows(pfu(), global, global);                                                   // the README's PFU
  check_rows(pfu().threshold(nn::ForgettingThreshold::RowMedian), row_median, row_median);
  check_rows(pfu().bias_is_threshold(false).bias(-1.0), global, [](const std::vector<double>&) { return -1.0; });
  check_rows(relu(), zero, zero);  // e^0 = 1 per forgotten entry
}

TEST_CASE("forgetting: with bias = threshold, the gradient of forgotten entries goes only to the median element") {
  // L = Σ w ⊙ D(x): ∂L/∂x = w where kept; the forgotten entries' Σ w goes to the median element (through t).
  Tensor x = hgtest::uniform({3, 5}, -1, 1, 31).requires_grad_();
  Tensor w = hgtest::uniform({3, 5}, 0.5, 1.5, 32);

  SUBCASE("global median") {
    nn::Forgetting f = nn::forget(x, pfu(), false);
    (f.value * w).sum().backward();
    std::vector<double> xs = x.detach().to_vector<double>(), ws = w.to_vector<double>();
    double median = lower_median(xs), forgotten_sum = 0.0;
    for (size_t i = 0; i < xs.size(); ++i)
      if (xs[i] <= median) forgotten_sum += ws[i];
    std::vector<double> expected(xs.size());
    for (size_t i = 0; i < xs.size(); ++i)
      expected[i] = xs[i] == median ? forgotten_sum : xs[i] > median ? ws[i] : 0.0;
    hgtest::check_close(x.grad(), f64(expected, {3, 5}), 1e-14, 1e-14);
  }
  SUBCASE("per-row median") {
    nn::Forgetting f = nn::forget(x, pfu().threshold(nn::ForgettingThreshold::RowMedian), false);
    (f.value * w).sum().backward();
    std::vector<double> xs = x.detach().to_vector<double>(), ws = w.to_vector<double>(), expected(xs.size());
    for (size_t row = 0; row < 3; ++row) {
      std::vector<double> h(xs.begin() + static_cast<long>(row * 5), xs.begin() + static_cast<long>(row * 5 + 5));
      double median = lower_median(h), forgotten_sum = 0.0;
      for (size_t j = 0; j < 5; ++j)
        if (h[j] <= median) forgotten_sum += ws[row * 5 + j];
      for (size_t j = 0; j < 5; ++j)
        expected[row * 5 + j] = h[j] == median ? forgotten_sum : h[j] > median ? ws[row * 5 + j] : 0.0;
    }
    hgtest::check_close(x.grad(), f64(expected, {3, 5}), 1e-14, 1e-14);
  }
  SUBCASE("a constant bias gives forgotten entries no gradient at all") {
    nn::Forgetting f = nn::forget(x, pfu().bias_is_threshold(false).bias(0.0), false);
    (f.value * w).sum().backward();
    hgtest::check_close(x.grad(), w * f.keep, 0, 0);
  }
}

TEST_CASE("forgetting: deterministic in evaluation; in training t = a + ε with ε = N(0, 1)·σ², one per call (row)") {
  Tensor x = hgtest::uniform({4, 6}, -1, 1, 41);
  nn::Forgetting e1 = nn::forget(x, pfu().sigma(1.0), false), e2 = nn::forget(x, pfu().sigma(1.0), false);
  hgtest::check_close(e1.value, e2.value, 0, 0);
  hgtest::check_close(e1.keep, e2.keep, 0, 0);

  // A score far below any threshold is always forgotten, so with bias = threshold its D is t itself.
  Tensor probe = f64({-100.0, 0.3, -0.2, 0.9}, {4});
  auto constant = pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(0.1).sigma(0.5);
  hg::Generator gen(2024);
  const int calls = 4000;
  std::vector<double> noise(calls);
  double first_threshold = 0.0;
  for (int i = 0; i < calls; ++i) {
    nn::Forgetting f = nn::forget(probe, constant, true, &gen);
    std::vector<double> v = f.value.to_vector<double>(), keep = f.keep.to_vector<double>();
    noise[static_cast<size_t>(i)] = v[0] - 0.1;
    if (i == 0) first_threshold = v[0];
    // one ε for the whole call: every forgotten entry holds the same t, every kept one its own score
    double t = v[0];
    CHECK(keep[0] == 0.0);
    CHECK((keep[1] == 1.0 ? v[1] == 0.3 : v[1] == t));
    CHECK((keep[2] == 1.0 ? v[2] == -0.2 : v[2] == t));
  }
  double mean = 0.0, square = 0.0;
  for (double e : noise) mean += e / calls;
  for (double e : noise) square += (e - mean) * (e - mean) / (calls - 1);
  const double sd = std::sqrt(square);
  // σ = 0.5 gives a noise standard deviation σ² = 0.25 (the reference's square_sigma), not 0.5
  CHECK(std::abs(mean) < 4 * 0.25 / std::sqrt(calls));
  CHECK(sd == doctest::Approx(0.25).epsilon(0.05));
  // a generator with the same seed draws the same noise
  hg::Generator again(2024);
  CHECK(nn::forget(probe, constant, true, &again).value.to_vector<double>()[0] == first_threshold);

  // with the global median, ε shifts the median (0 here): t stays within a few σ² of it
  Tensor y = f64({-100.0, -1.0, 0.0, 1.0, 2.0}, {5});  // lower median 0
  hg::Generator gen2(7);
  double spread = 0.0;
  for (int i = 0; i < 200; ++i) spread = std::max(spread, std::abs(nn::forget(y, pfu().sigma(0.1), true, &gen2).value.to_vector<double>()[0]));
  CHECK(spread > 0.0);
  CHECK(spread < 6 * 0.01);  // σ² = 0.01

  // With a per-row median each row draws its own ε, as the reference's unit called once per row (DeepRC: per bag).
  // Two identical rows, a score far below the medians in each: its D is that row's threshold t_r.
  Tensor rows = f64({-100.0, 0.0, 1.0, -100.0, 0.0, 1.0}, {2, 3});
  hg::Generator gen3(11);
  const std::vector<double> v =
      nn::forget(rows, pfu().threshold(nn::ForgettingThreshold::RowMedian).sigma(1.0), true, &gen3)
          .value.to_vector<double>();
  CHECK(v[0] != v[3]);
  // A global median draws one ε for the call: the same t in both rows.
  const std::vector<double> g = nn::forget(rows, pfu().sigma(1.0), true, &gen3).value.to_vector<double>();
  CHECK(g[0] == g[3]);
}

TEST_CASE("forgetting: masked (−∞) scores are absent memories: kept at −∞, out of the median, NaN-free") {
  // row 0 has two masked keys, row 1 is entirely masked
  Tensor x = f64({2.0, -kInf, 0.5, -1.0, -kInf, 1.0, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf}, {2, 6});
  SUBCASE("global median over the finite entries") {
    // finite {2, 0.5, −1, 1}: lower median 0.5
    nn::Forgetting f = nn::forget(x, pfu(), false);
    hgtest::check_close(f.value.narrow(0, 0, 1), f64({2.0, -kInf, 0.5, 0.5, -kInf, 1.0}, {1, 6}), 0, 0);
    CHECK(all(hg::eq(f.value.narrow(0, 1, 1), -kInf)));
    hgtest::check_close(f.keep, f64({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, {2, 6}), 0, 0);
  }
  SUBCASE("per-row median; a fully masked row gives zero weights and zero gradient") {
    Tensor xg = x.clone().requires_grad_();
    auto options = pfu().threshold(nn::ForgettingThreshold::RowMedian);
    Tensor weights = lwpf_weights(xg, options);
    CHECK(hg::ne(weights, weights).sum().item<int64_t>() == 0);
    hgtest::check_close(weights.narrow(0, 1, 1), hg::zeros({1, 6}, hg::kFloat64), 0, 0);
    // row 0 sums by B.1 over its finite entries only
    CHECK(hg::sum(weights.narrow(0, 0, 1)).item<double>() ==
          doctest::Approx(lwpf_weight_sum({2.0, 0.5, -1.0, 1.0}, 0.5, 0.5)).epsilon(1e-12));
    (weights * hgtest::uniform({2, 6}, 0, 1, 3)).sum().backward();
    CHECK(hg::ne(xg.grad(), xg.grad()).sum().item<int64_t>() == 0);
    hgtest::check_close(xg.grad().narrow(0, 1, 1), hg::zeros({1, 6}, hg::kFloat64), 0, 0);
  }
  SUBCASE("ReLU keeps −∞ out of the normaliser") {
    Tensor weights = lwpf_weights(x, relu());
    CHECK(hg::sum(weights.narrow(0, 0, 1)).item<double>() ==
          doctest::Approx(lwpf_weight_sum({2.0, 0.5, -1.0, 1.0}, 0.0, 0.0)).epsilon(1e-12));
  }
  SUBCASE("compat: the reference's median over every element, and masked entries becoming b") {
    // 8 of the 12 values are −∞, so the lower median (element 5 of the sorted 12) is −∞ and everything finite
    // is kept; masked entries take b = t = −∞
    nn::Forgetting f = nn::forget(x, pfu().compat(true), false);
    hgtest::check_close(f.keep, f64({1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0}, {2, 6}), 0, 0);
    // the ReLU reference turns −∞ into 0, which adds e^0 = 1 per masked key to the normaliser
    Tensor weights = lwpf_weights(x, relu().compat(true));
    CHECK(hg::sum(weights.narrow(0, 0, 1)).item<double>() ==
          doctest::Approx(lwpf_weight_sum({2.0, -kInf, 0.5, -1.0, -kInf, 1.0}, 0.0, 0.0)).epsilon(1e-12));
    // a fully masked row: six entries at e^0, all forgotten: zero weights, no NaN
    hgtest::check_close(weights.narrow(0, 1, 1), hg::zeros({1, 6}, hg::kFloat64), 0, 0);
    // with a constant bias, masked entries become b (the reference's PFU gives 0·(−∞) = NaN there)
    nn::Forgetting c = nn::forget(x, pfu().compat(true).threshold(nn::ForgettingThreshold::Constant).bias_is_threshold(false).bias(-3.0), false);
    CHECK(c.value.to_vector<double>()[1] == -3.0);
    // the global median with compat is torch's x.median(): −1 of {2, 0.5, −1, 1, −2, −3}
    Tensor y = f64({2.0, 0.5, -1.0, 1.0, -2.0, -3.0}, {6});
    CHECK(nn::forget(y, pfu().compat(true), false).value.to_vector<double>()[5] == -1.0);
  }
}

TEST_CASE("forgetting: gradcheck and gradgradcheck away from ties (non-contiguous inputs)") {
  // distinct values, so the ±1e-6 steps never reorder the median or cross the threshold
  auto inputs = [](uint64_t seed) { return hg::Tensors{hgtest::uniform({5, 4}, -2, 2, seed)}; };
  std::vector<nn::ForgettingOptions> units = {
      relu(),
      pfu(),
      pfu().threshold(nn::ForgettingThreshold::RowMedian),
      pfu().bias_is_threshold(false).bias(-0.5),
      pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(0.1),
  };
  for (size_t i = 0; i < units.size(); ++i) {
    CAPTURE(nn::describe(units[i]));
    // D(x) itself, on a transposed view [4, 5]
    hgtest::gradcheck([&](const hg::Tensors& t) { return nn::forget(t[0].transpose(0, 1), units[i], false).value; },
                      inputs(50 + i));
    // the LwPF weights softmax(D(x)) ⊙ D′, first and second order
    hgtest::gradcheck([&](const hg::Tensors& t) { return lwpf_weights(t[0].transpose(0, 1), units[i]); }, inputs(60 + i));
    hgtest::gradgradcheck([&](const hg::Tensors& t) { return lwpf_weights(t[0].transpose(0, 1), units[i]); },
                          inputs(70 + i));
  }
  // scores built by broadcasting a per-query shift over the keys: the engine sums the gradient back down
  hgtest::gradcheck(
      [&](const hg::Tensors& t) { return lwpf_weights(t[0] + t[1], pfu().threshold(nn::ForgettingThreshold::RowMedian)); },
      {hgtest::uniform({3, 6}, -2, 2, 81), hgtest::uniform({3, 1}, -1, 1, 82)});
}

TEST_CASE("forgetting through Separation: D′ multiplies the weights after attention dropout (spec B.3)") {
  Tensor q = hgtest::uniform({2, 3, 4}, -1, 1, 91), k = hgtest::uniform({2, 5, 4}, -1, 1, 92),
         v = hgtest::uniform({2, 5, 3}, -1, 1, 93);
  Tensor beta = hg::scalar_tensor(0.5, hg::kFloat64);
  Tensor padding = hg::from_vector<bool>({false, false, true, false, false, false, false, false, false, true}, {2, 1, 5});
  const double p = 0.3;
  auto options = pfu().sigma(0.3);
  nn::Separation separation(nn::SeparationOptions().forgetting(options));
  separation->train();

  hg::Generator gen(5);
  Tensor weights;
  Tensor out = separation->attend(q, k, v, beta, padding, Tensor(), p, &weights, &gen);

  // the recipe by hand: scores, −∞ mask, D, softmax, dropout, ⊙ D′, · v — drawing noise and dropout in that order
  hg::Generator same(5);
  Tensor scores = hg::masked_fill(hg::matmul(q * beta, k.transpose(-2, -1)), padding, -kInf);
  nn::Forgetting f = nn::forget(scores, options, true, &same);
  Tensor expected_weights = hg::dropout(hg::softmax(f.value, -1), p, true, &same) * f.keep;
  hgtest::check_close(weights, expected_weights, 0, 0);
  hgtest::check_close(out, hg::matmul(expected_weights, v), 1e-15, 1e-15);
  // dropout acted (some kept weights are zero) and the rows sum to less than one in expectation
  CHECK(hg::logical_and(hg::eq(weights, 0.0), hg::gt(f.keep, 0.0)).sum().item<int64_t>() > 0);

  // weights() returns D′ separately, before dropout
  separation->eval();
  nn::Association a = separation->weights(scores, padding);
  nn::Forgetting fe = nn::forget(scores, options, false);
  hgtest::check_close(a.weights, hg::softmax(fe.value, -1), 0, 0);
  hgtest::check_close(a.keep, fe.keep, 0, 0);
  // evaluation: no dropout, no noise; a row sums to less than one exactly when it forgot something (the global
  // median may leave a row untouched)
  Tensor eval_weights;
  separation->attend(q, k, v, beta, padding, Tensor(), p, &eval_weights);
  hgtest::check_close(eval_weights, a.weights * a.keep, 0, 0);
  Tensor forgot_some = hg::lt(hg::sum(a.keep, {-1}), hg::sum(hg::logical_not(padding), {-1}).to(hg::kFloat64));
  CHECK(all(hg::eq(hg::lt(hg::sum(eval_weights, {-1}), 1.0 - 1e-12), forgot_some)));
  CHECK(hg::sum(forgot_some).item<int64_t>() > 0);
}

TEST_CASE("forgetting: describe() and errors") {
  CHECK(nn::describe(relu()) == "ReLU()");
  CHECK(nn::describe(relu().compat(true)) == "ReLU(compat)");
  CHECK(nn::describe(pfu()) == "PFU(threshold=global median, bias=threshold, sigma=0.01)");
  CHECK(nn::describe(pfu().threshold(nn::ForgettingThreshold::RowMedian).bias_is_threshold(false).bias(-1.5).sigma(0)) ==
        "PFU(threshold=row median, bias=-1.5, sigma=0)");
  CHECK(nn::describe(pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(0.25).compat(true)) ==
        "PFU(threshold=0.25, bias=threshold, sigma=0.01, compat)");
  nn::Separation separation(nn::SeparationOptions(nn::SeparationKind::Softmax).forgetting(pfu()));
  CHECK(hg::nn::to_string(*separation).find(
            "Separation(softmax, forgetting=PFU(threshold=global median, bias=threshold, sigma=0.01))") !=
        std::string::npos);

  CHECK_THROWS_WITH_AS(nn::forget(hg::zeros({2, 3}, hg::kInt64), pfu(), false),
                       doctest::Contains("forget(PFU): expected floating scores, got int64[2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::forget(Tensor(), relu(), false),
                       doctest::Contains("forget(ReLU): expected floating scores, got an undefined tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::forget(hg::zeros({3}), pfu().sigma(kInf), false),
                       doctest::Contains("forget(PFU): sigma must be finite, got inf"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::forget(hg::zeros({3}), pfu().bias_is_threshold(false).bias(std::nan("")), false),
                       doctest::Contains("forget(PFU): bias must be finite, got nan"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::forget(hg::zeros({3}), pfu().threshold(nn::ForgettingThreshold::Constant).threshold_value(-kInf), false),
                       doctest::Contains("threshold_value must be finite"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::forget(hg::scalar_tensor(1.0), pfu().threshold(nn::ForgettingThreshold::RowMedian), false),
                       doctest::Contains("a per-row median needs scores [..., S], got a 0-dim tensor"), hg::Error);
  // empty scores: nothing to forget
  nn::Forgetting empty = nn::forget(hg::zeros({2, 0}), pfu(), true);
  CHECK(empty.value.sizes() == hg::Shape{2, 0});
  CHECK(empty.keep.sizes() == hg::Shape{2, 0});
}

HG_BACKEND_TEST(forgetting_units_on_every_backend) {
  // scores [2, 2, 3, 5] with masked keys; values, keep and the gradients of Σ w ⊙ softmax(D) ⊙ D′ per unit
  Tensor scores = hgtest::uniform({2, 2, 3, 5}, -2, 2, 101);
  Tensor padding = hg::from_vector<bool>({false, true, false, false, false, false, false, false, false, true}, {2, 1, 1, 5});
  Tensor w = hgtest::uniform({2, 2, 3, 5}, 0, 1, 102).to(device);
  hg::Tensors results;
  for (const auto& options : {relu(), pfu(), pfu().threshold(nn::ForgettingThreshold::RowMedian),
                              pfu().bias_is_threshold(false).bias(-1.0), relu().compat(true)}) {
    Tensor x = hg::masked_fill(scores, padding, -kInf).to(device).requires_grad_();
    nn::Forgetting f = nn::forget(x, options, false);
    Tensor weights = hg::softmax(f.value, -1) * f.keep;
    (weights * w).sum().backward();
    CHECK(f.value.device() == device);
    CHECK(hg::ne(weights, weights).sum().item<int64_t>() == 0);
    CHECK(all(hg::le(hg::sum(weights, {-1}), 1.0 + 1e-12)));
    results.insert(results.end(), {f.value, f.keep, weights, x.grad()});
  }
  // the README's unit: about half of the finite scores are forgotten
  Tensor x = hg::masked_fill(scores, padding, -kInf).to(device);
  double kept = hg::sum(nn::forget(x, pfu(), false).keep).item<double>();
  CHECK(kept == 24.0);  // 48 finite scores, the lower median and everything below it forgotten
  return results;
}
