// Reductions (prod, var/std, max/min, amax/amin, argmax/argmin, logsumexp, norm), sorting and selection (sort,
// argsort, topk, kthvalue, median) and cumsum: gradients by finite differences, values against hand-computed
// or brute-force references, and the errors for bad arguments.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "testing.h"

using hg::Tensor;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor f64(const std::vector<double>& v, hg::IntArrayRef shape) { return hg::from_vector<double>(v, shape, hg::kFloat64); }
Tensor f64(const std::vector<double>& v) { return f64(v, {static_cast<int64_t>(v.size())}); }
Tensor i64(const std::vector<int64_t>& v, hg::IntArrayRef shape) { return hg::from_vector<int64_t>(v, shape, hg::kInt64); }
Tensor i64(const std::vector<int64_t>& v) { return i64(v, {static_cast<int64_t>(v.size())}); }

// The gradient of Σ f(x) with respect to x (x on `device`, a fresh leaf).
Tensor grad_of_sum(const std::function<Tensor(const Tensor&)>& f, const Tensor& x_cpu, hg::Device device) {
  Tensor x = x_cpu.to(device).detach().requires_grad_();
  f(x).sum().backward();
  return x.grad();
}

// A float64 [rows, n] tensor with few distinct values (many ties), for checking sort stability at scale.
Tensor tied_values(int64_t rows, int64_t n, uint64_t seed) {
  hg::Generator gen(seed);
  return hg::randint(0, 7, {rows, n}, hg::kInt64, &gen).to(hg::kFloat64);
}

}  // namespace

// ---- gradients -------------------------------------------------------------------------------------

TEST_CASE("reduce: gradcheck prod over dims, with zeros, keepdim and non-contiguous input") {
  auto x = hgtest::uniform({3, 4}, 0.5, 1.5, 1);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0]); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0], {1}); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0], {0}, true); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0].transpose(0, 1), {1}); }, {x});
  // Row 0 holds one zero, row 1 two zeros, row 2 none: the product of the others is exact in each case.
  auto z = f64({0.5, 0, 2, 1.5, 0, 3, 0, 0.7, 1.2, -0.8, 1.1, 2}, {3, 4});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0], {1}); }, {z});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::prod(t[0].select(0, 0)); }, {z});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::prod(t[0], {1}); }, {z});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::prod(t[0], {-1}, true) * t[0]; }, {x});
}

TEST_CASE("reduce: prod's gradient where the others hold a zero and a NaN or infinity is NaN, as torch") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto grad_of = [](const std::vector<double>& v, hg::DType dtype) {
    hg::Tensor x = f64(v).to(dtype).requires_grad_();
    hg::prod(x).backward();
    return x.grad().to(hg::kFloat64).to_vector<double>();
  };
  auto same = [](const std::vector<double>& got, const std::vector<double>& expected) {
    bool ok = got.size() == expected.size();
    for (size_t i = 0; ok && i < got.size(); ++i)
      ok = (std::isnan(got[i]) && std::isnan(expected[i])) || got[i] == expected[i];
    return ok;
  };
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    CAPTURE(dtype);
    // Π of the others: 2·0 = 0 for the NaN itself; NaN·0 and NaN·2 for the others (these were 0 and NaN).
    CHECK(same(grad_of({nan, 2, 0}, dtype), {0, nan, nan}));
    CHECK(same(grad_of({inf, -inf, 0, 1}, dtype), {nan, nan, -inf, nan}));
    // Finite values whose product of nonzeros overflows: the others of a nonzero element still multiply a zero.
    const double big = dtype == hg::kFloat32 ? 3e38 : 1e300;
    CHECK(same(grad_of({0, big, big}, dtype), {inf, 0, 0}));
  }
}

TEST_CASE("reduce: gradcheck and gradgradcheck var and std") {
  auto x = hgtest::uniform({3, 4}, -1, 1, 2);
  auto y = hgtest::uniform({2, 3, 2}, -1, 1, 3);
  for (bool unbiased : {true, false}) {
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::var(t[0], {}, unbiased); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::var(t[0], {1}, unbiased, true); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::var(t[0].transpose(0, 1), {1}, unbiased); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::var(t[0], {0, 2}, unbiased); }, {y});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::std(t[0], {1}, unbiased); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::std(t[0].permute({2, 0, 1}), {0, 1}, unbiased); }, {y});
  }
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::var(t[0], {1}); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::var(t[0], {0, 2}, false, true); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::std(t[0], {0}); }, {x});
}

TEST_CASE("reduce: gradcheck max/min along a dim, amax/amin, max()/min()") {
  auto x = hgtest::uniform({3, 4}, -1, 1, 4);
  auto y = hgtest::uniform({2, 3, 2}, -1, 1, 5);
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::max(t[0], 1)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::min(t[0], 0, true)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::max(t[0].transpose(0, 1), -1)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::min(t[0], 1)); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::amax(t[0], {0, 2}); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::amin(t[0], {-1}, true); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::amax(t[0].permute({2, 1, 0}), {1}); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::max(t[0]); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::min(t[0].t()); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return std::get<0>(hg::max(t[0], 1)) * hg::amin(t[0], {1}); }, {x});
}

TEST_CASE("reduce: gradcheck and gradgradcheck logsumexp") {
  auto x = hgtest::uniform({3, 4}, -2, 2, 6);
  auto y = hgtest::uniform({2, 3, 2}, -2, 2, 7);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0], {1}); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0], {0}, true); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0], {}); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0].transpose(0, 2), {0, 2}); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0], {1}); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::logsumexp(t[0], {0, 2}, true); }, {y});
}

TEST_CASE("reduce: gradcheck and gradgradcheck norm for p = 2, 1, inf, -inf, 3, 0.5") {
  auto x = hgtest::uniform({3, 4}, 0.2, 1.0, 8) * f64({1, -1, 1, -1}, {1, 4});  // away from 0, mixed signs
  auto y = hgtest::uniform({2, 3, 2}, -1, 1, 9);
  for (double p : {2.0, 1.0, kInf, -kInf, 3.0, 0.5, 1.5}) {
    CAPTURE(p);
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::norm(t[0], p); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::norm(t[0], p, {1}, true); }, {x});
    hgtest::gradcheck([=](const hg::Tensors& t) { return hg::norm(t[0].transpose(0, 1), p, {0}); }, {x});
  }
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::norm(t[0], 2.0, {0, 2}); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::norm(t[0], 2.0, {1}); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::norm(t[0], 3.0, {0, 2}, true); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::norm(t[0], 1.5); }, {x});
}

TEST_CASE("reduce: gradcheck sort, topk, kthvalue, median") {
  auto x = hgtest::uniform({3, 5}, -1, 1, 10);
  auto y = hgtest::uniform({2, 3, 4}, -1, 1, 11);
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::sort(t[0])); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::sort(t[0], 0, true)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::sort(t[0].transpose(0, 1), 1)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::topk(t[0], 2)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::topk(t[0], 2, 0, false)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::topk(t[0].permute({2, 0, 1}), 3, 0)); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::kthvalue(t[0], 2, 1)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::kthvalue(t[0], 3, 1, true)); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::median(t[0], 1)); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return std::get<0>(hg::median(t[0].transpose(1, 2), 1)); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::median(t[0]); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::square(std::get<0>(hg::topk(t[0], 2))); }, {x});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::square(std::get<0>(hg::median(t[0], 0))); }, {x});
}

TEST_CASE("reduce: gradcheck and gradgradcheck cumsum") {
  auto x = hgtest::uniform({3, 4}, -1, 1, 12);
  auto y = hgtest::uniform({2, 3, 2}, -1, 1, 13);
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::cumsum(t[0], 1); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::cumsum(t[0], 0); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::cumsum(t[0].transpose(0, 1), 1); }, {x});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::cumsum(t[0], -2); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::cumsum(t[0] * t[0], 1); }, {x});
}

TEST_CASE("reduce: gradcheck through broadcast (stride-0) inputs") {
  // x [4] expanded to [3, 4]: the engine sums the three copies' gradients back into x.
  auto x = hgtest::uniform({4}, 0.5, 1.5, 14);
  auto wide = [](const hg::Tensors& t) { return t[0].expand({3, 4}); };
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::prod(wide(t), {0}); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::var(wide(t), {1}); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::logsumexp(wide(t), {0, 1}); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::norm(wide(t), 3.0, {1}); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cumsum(wide(t), 0); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return std::get<0>(hg::sort(wide(t), 1, true)); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return std::get<0>(hg::max(wide(t), 1)); }, {x});
  // The three copies tie for the max over dim 0 and move together: the split gradients add back up to 1.
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::amax(wide(t), {0}); }, {x});
  hgtest::gradcheck([&](const hg::Tensors& t) { return hg::median(wide(t)); }, {x});
}

// ---- values on every backend -----------------------------------------------------------------------

// Many short rows (fewer than 32 elements: DeepRC's max over 12 positions) are reduced 16 rows at a time across
// vector lanes; every op must equal a per-row loop, for row counts that leave a partial block, and a NaN in a row
// must still come out of max/min.
HG_BACKEND_TEST(reduce_many_short_rows_match_a_row_loop) {
  hg::Tensors results;
  for (int64_t n : {1, 3, 12, 31}) {
    for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
      const int64_t rows = 37;
      Tensor x64 = hgtest::uniform({rows, n}, -2, 2, 91 + static_cast<uint64_t>(n));
      std::vector<double> v = x64.to_vector<double>();
      v[static_cast<size_t>(5 * n + n / 2)] = kNaN;  // row 5 (in the first block of 16)
      v[static_cast<size_t>(36 * n)] = kNaN;         // row 36 (in the partial block)
      Tensor x = f64(v, {rows, n}).to(dtype).to(device);
      const std::vector<double> xs = x.to(hg::kFloat64).to(hg::kCPU).to_vector<double>();
      std::vector<double> want_sum(rows), want_max(rows), want_min(rows), want_prod(rows);
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0, mx = -kInf, mn = kInf, p = 1;
        for (int64_t i = 0; i < n; ++i) {
          const double e = xs[static_cast<size_t>(r * n + i)];
          s += e, p *= e;
          mx = (e > mx || std::isnan(e)) && !std::isnan(mx) ? e : mx;
          mn = (e < mn || std::isnan(e)) && !std::isnan(mn) ? e : mn;
        }
        want_sum[r] = s, want_max[r] = mx, want_min[r] = mn, want_prod[r] = p;
      }
      INFO("n = " << n << ", " << hg::dtype_name(dtype));
      const double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-13;
      Tensor sum = hg::sum(x, {1}), amax = hg::amax(x, {1}), amin = hg::amin(x, {1}), prod = hg::prod(x, {1});
      hgtest::check_close(sum, f64(want_sum), tol, tol, "sum");
      hgtest::check_close(amax, f64(want_max), 0, 0, "amax");
      hgtest::check_close(amin, f64(want_min), 0, 0, "amin");
      hgtest::check_close(prod, f64(want_prod), tol, tol, "prod");
      results.insert(results.end(), {sum, amax, amin, prod});
    }
  }
  return results;
}

HG_BACKEND_TEST(reduce_prod_values_and_zero_gradients) {
  Tensor x = f64({1, 2, 3, 4, 0, 5, 0, 0, 6}, {3, 3}).to(device);
  Tensor p = hg::prod(x, {1});
  hgtest::check_close(p, f64({6, 0, 0}));
  Tensor all = hg::prod(f64({2, -3, 0.5}).to(device));
  hgtest::check_close(all, f64({-3}, {}));
  Tensor ints = hg::prod(i64({2, 3, 4, 5}, {2, 2}).to(device), {0});
  CHECK(ints.dtype() == hg::kInt64);
  hgtest::check_close(ints, i64({8, 15}));
  CHECK(hg::prod(hg::zeros({0}, hg::kFloat64).to(device)).item<double>() == 1.0);
  // No zero: y / x. One zero: the product of the others at the zero, 0 elsewhere. Two zeros: 0 everywhere.
  Tensor g = grad_of_sum([](const Tensor& t) { return hg::prod(t, {1}); }, f64({1, 2, 3, 4, 0, 5, 0, 0, 6}, {3, 3}),
                         device);
  hgtest::check_close(g, f64({6, 3, 2, 0, 20, 0, 0, 0, 0}, {3, 3}));
  // Zeros beside others whose product overflows float32: the gradient is exactly 0 wherever another zero is in the
  // product (inf · 0 was NaN), and at a row's only zero the overflowing product itself (as torch).
  Tensor big = grad_of_sum([](const Tensor& t) { return hg::prod(t, {1}); },
                           f64({0, 1e20, 1e20, 1, 0, 0, 1e30, 1e30}, {2, 4}).to(hg::kFloat32), device);
  const std::vector<double> got = big.to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
  CHECK(got[0] == kInf);
  for (size_t i = 1; i < got.size(); ++i) CHECK(got[i] == 0.0);
  return {p, all, ints, g, big};
}

HG_BACKEND_TEST(reduce_var_std_values) {
  Tensor x = f64({1, 2, 3, 4, 2, 2, 2, 2}, {2, 4}).to(device);
  Tensor v = hg::var(x, {1});
  hgtest::check_close(v, f64({5.0 / 3.0, 0}));
  Tensor vb = hg::var(x, {1}, /*unbiased=*/false, /*keepdim=*/true);
  CHECK(vb.sizes() == hg::Shape{2, 1});
  hgtest::check_close(vb, f64({1.25, 0}, {2, 1}));
  Tensor s = hg::std(x, {1});
  hgtest::check_close(s, f64({std::sqrt(5.0 / 3.0), 0}));
  Tensor all = hg::var(x);
  hgtest::check_close(all, f64({5.5 / 7}, {}));  // mean 2.25; Σ (x − 2.25)² = 5.5
  // One element: N − 1 = 0 gives NaN, as torch.
  CHECK(std::isnan(hg::var(f64({3.0}).to(device)).item<double>()));
  // σ = 0: the gradient is 0, not NaN (as torch).
  Tensor gs = grad_of_sum([](const Tensor& t) { return hg::std(t, {1}); }, f64({1, 2, 3, 4, 2, 2, 2, 2}, {2, 4}),
                          device);
  double c = 1.0 / (3.0 * std::sqrt(5.0 / 3.0));
  hgtest::check_close(gs, f64({-1.5 * c, -0.5 * c, 0.5 * c, 1.5 * c, 0, 0, 0, 0}, {2, 4}));
  return {v, vb, s, all, gs};
}

HG_BACKEND_TEST(reduce_float32_sums_of_long_runs_and_many_rows_stay_accurate) {
  // 3·10⁶ values 9999, 10000, 10001 (exact in float32): a float32 accumulator per vector lane reaches ~2·10⁹,
  // whose ulp (128) swamps the addends, so the mean drifted by ~0.6 % and var, centred on it, by orders of
  // magnitude. Cascaded sums (double above a block) keep them to float32 rounding of the result. Runs (the
  // values in one row) and columns (two identical columns of 3·10⁶ rows), at 1 and 2 threads.
  const int64_t n = 3'000'000;
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = 9999.0f + static_cast<float>(i % 3);
  Tensor x = hg::from_vector(values, {n}).to(device);
  Tensor columns = x.reshape({n, 1}).expand({n, 2}).contiguous();
  hg::Tensors results;
  const int threads = hg::get_num_threads();
  for (int t : {1, 2}) {
    hg::set_num_threads(t);
    Tensor mean = hg::mean(x), var = hg::var(x), column_means = hg::mean(columns, {0}),
           column_vars = hg::var(columns, {0});
    const double exact_var = 2.0 / 3.0 * static_cast<double>(n) / static_cast<double>(n - 1);
    CHECK(std::abs(mean.item<float>() - 10000.0) <= 1e-3);
    CHECK(std::abs(var.item<float>() - exact_var) <= 1e-4 * exact_var);
    for (double m : column_means.to(hg::kCPU).to(hg::kFloat64).to_vector<double>()) CHECK(std::abs(m - 1e4) <= 1e-3);
    for (double v : column_vars.to(hg::kCPU).to(hg::kFloat64).to_vector<double>())
      CHECK(std::abs(v - exact_var) <= 1e-4 * exact_var);
    results.insert(results.end(), {mean, var, column_means, column_vars});
  }
  hg::set_num_threads(threads);
  return results;
}

HG_BACKEND_TEST(reduce_max_min_values_ties_and_nan) {
  Tensor x = f64({1, 5, 5, 2, 7, 0, 7, -1, 3, 3, 3, 3}, {3, 4}).to(device);
  auto [mv, mi] = hg::max(x, 1);
  hgtest::check_close(mv, f64({5, 7, 3}));
  hgtest::check_close(mi, i64({1, 0, 0}));  // first of equal maxima
  auto [nv, ni] = hg::min(x, 0, /*keepdim=*/true);
  CHECK(ni.sizes() == hg::Shape{1, 4});
  hgtest::check_close(nv, f64({1, 0, 3, -1}, {1, 4}));
  hgtest::check_close(ni, i64({0, 1, 2, 1}, {1, 4}));
  hgtest::check_close(hg::argmax(x, 0), i64({1, 0, 1, 2}));
  hgtest::check_close(hg::argmin(x, -1, true), i64({0, 3, 0}, {3, 1}));
  CHECK(hg::max(x).item<double>() == 7.0);
  CHECK(hg::min(x).item<double>() == -1.0);
  hgtest::check_close(hg::amax(x.view({3, 2, 2}), {0, 2}), f64({7, 7}));
  // NaN wins and propagates, at the index of the first NaN.
  Tensor n = f64({1, kNaN, 3, kNaN, 2, 0}, {2, 3}).to(device);
  auto [pv, pi] = hg::max(n, 1);
  CHECK(std::isnan(pv.to_vector<double>()[0]));
  CHECK(std::isnan(pv.to_vector<double>()[1]));
  hgtest::check_close(pi, i64({1, 0}));
  hgtest::check_close(hg::argmin(n, 1), i64({1, 0}));
  CHECK(std::isnan(hg::min(n).item<double>()));
  CHECK(std::isnan(hg::amax(n, {0}).to_vector<double>()[0]));
  // Integer and bool inputs keep their dtype.
  Tensor ints = i64({4, -2, 9, 9}, {2, 2}).to(device);
  auto [iv, ii] = hg::max(ints, 1);
  CHECK(iv.dtype() == hg::kInt64);
  hgtest::check_close(iv, i64({4, 9}));
  hgtest::check_close(ii, i64({0, 0}));
  Tensor flags = hg::from_vector<bool>({false, true, false, false}, {2, 2}, hg::kBool).to(device);
  Tensor any = hg::amax(flags, {1});
  CHECK(any.dtype() == hg::kBool);
  hgtest::check_close(any, f64({1, 0}));
  // 0-dim input along dim 0.
  auto [sv, si] = hg::max(f64({2.5}, {}).to(device), 0);
  CHECK(sv.dim() == 0);
  CHECK(si.item<int64_t>() == 0);
  return {mv, mi, nv, ni, pi, iv, any};
}

HG_BACKEND_TEST(reduce_extremum_gradients_split_ties) {
  Tensor x = f64({1, 3, 3, 2, 4, 0}, {2, 3});
  // max(dim): the whole gradient to the first maximum.
  Tensor g1 = grad_of_sum([](const Tensor& t) { return std::get<0>(hg::max(t, 1)); }, x, device);
  hgtest::check_close(g1, f64({0, 1, 0, 0, 1, 0}, {2, 3}));
  // amax / max(): split evenly among ties.
  Tensor g2 = grad_of_sum([](const Tensor& t) { return hg::amax(t, {1}); }, x, device);
  hgtest::check_close(g2, f64({0, 0.5, 0.5, 0, 1, 0}, {2, 3}));
  Tensor g3 = grad_of_sum([](const Tensor& t) { return hg::max(t); }, f64({4, 1, 4, 4}), device);
  hgtest::check_close(g3, f64({1.0 / 3, 0, 1.0 / 3, 1.0 / 3}));
  Tensor g4 = grad_of_sum([](const Tensor& t) { return hg::amin(t, {0, 1}); }, f64({0, 1, 0, 2}, {2, 2}), device);
  hgtest::check_close(g4, f64({0.5, 0, 0.5, 0}, {2, 2}));
  // A NaN maximum sends the gradient to the NaN.
  Tensor g5 = grad_of_sum([](const Tensor& t) { return hg::max(t); }, f64({1, kNaN, 2}), device);
  hgtest::check_close(g5, f64({0, 1, 0}));
  return {g1, g2, g3, g4, g5};
}

HG_BACKEND_TEST(reduce_logsumexp_values) {
  Tensor x = f64({0, 1, 2, 1000, 1000, -kInf, -kInf, -kInf, -kInf, 1, kInf, 0}, {4, 3}).to(device);
  Tensor y = hg::logsumexp(x, {1});
  double first = std::log(1 + std::exp(1.0) + std::exp(2.0));
  hgtest::check_close(y, f64({first, 1000 + std::log(2.0), -kInf, kInf}));
  hgtest::check_close(hg::logsumexp(x.slice(0, 0, 1), {0, 1}, true), f64({first}, {1, 1}));
  // Integer input gives float32; an empty reduction gives −inf.
  Tensor ints = hg::logsumexp(i64({0, 0}).to(device), {0});
  CHECK(ints.dtype() == hg::kFloat32);
  CHECK(ints.item<float>() == doctest::Approx(std::log(2.0)));
  CHECK(hg::logsumexp(hg::zeros({2, 0}, hg::kFloat64).to(device), {1}).to_vector<double>()[0] == -kInf);
  // ∂/∂x = softmax(x); all −inf rows get 0, not NaN.
  Tensor g = grad_of_sum([](const Tensor& t) { return hg::logsumexp(t, {1}); },
                         f64({0, 1, 2, -kInf, -kInf, -kInf}, {2, 3}), device);
  double z = 1 + std::exp(1.0) + std::exp(2.0);
  hgtest::check_close(g, f64({1 / z, std::exp(1.0) / z, std::exp(2.0) / z, 0, 0, 0}, {2, 3}));
  return {y, g};
}

HG_BACKEND_TEST(reduce_norm_values) {
  Tensor x = f64({3, -4, 0, 0, 1, -2, 2, 0}, {2, 4}).to(device);
  hgtest::check_close(hg::norm(x, 2.0, {1}), f64({5, 3}));
  hgtest::check_close(hg::norm(x, 1.0, {1}), f64({7, 5}));
  hgtest::check_close(hg::norm(x, kInf, {1}), f64({4, 2}));
  hgtest::check_close(hg::norm(x, -kInf, {1}), f64({0, 0}));
  hgtest::check_close(hg::norm(x, 0.0, {1}), f64({2, 3}));
  hgtest::check_close(hg::norm(x, 3.0, {1}, true), f64({std::cbrt(91.0), std::cbrt(17.0)}, {2, 1}));
  hgtest::check_close(hg::norm(x), f64({std::sqrt(34.0)}, {}));
  // p = 2 at ‖x‖ = 0: gradient 0 (as torch), not NaN.
  Tensor g2 = grad_of_sum([](const Tensor& t) { return hg::norm(t, 2.0, {1}); }, f64({3, -4, 0, 0}, {2, 2}), device);
  hgtest::check_close(g2, f64({0.6, -0.8, 0, 0}, {2, 2}));
  // p = ∞: split among the elements of largest magnitude, with their signs.
  Tensor gi = grad_of_sum([](const Tensor& t) { return hg::norm(t, kInf); }, f64({2, -2, 1}), device);
  hgtest::check_close(gi, f64({0.5, -0.5, 0}));
  return {hg::norm(x, 2.0, {1}), hg::norm(x, 3.0, {0}), g2, gi};
}

HG_BACKEND_TEST(reduce_sort_stable_with_nan) {
  Tensor x = f64({2, 1, 2, 1, kNaN, 0}).to(device);
  auto [v, i] = hg::sort(x);
  hgtest::check_close(v, f64({0, 1, 1, 2, 2, kNaN}));
  hgtest::check_close(i, i64({5, 1, 3, 0, 2, 4}));  // equal values keep their order
  auto [dv, di] = hg::sort(x, 0, /*descending=*/true);
  hgtest::check_close(dv, f64({kNaN, 2, 2, 1, 1, 0}));
  hgtest::check_close(di, i64({4, 0, 2, 1, 3, 5}));
  // Along dim 0 of a transposed (non-contiguous) view.
  Tensor m = f64({3, 1, 2, 9, 8, 7}, {2, 3}).to(device);
  auto [mv, mi] = hg::sort(m.t(), 1);
  hgtest::check_close(mv, f64({3, 9, 1, 8, 2, 7}, {3, 2}));
  hgtest::check_close(mi, i64({0, 1, 0, 1, 0, 1}, {3, 2}));
  hgtest::check_close(hg::argsort(m, 1), i64({1, 2, 0, 2, 1, 0}, {2, 3}));
  hgtest::check_close(hg::argsort(m, 0, true), i64({1, 1, 1, 0, 0, 0}, {2, 3}));
  // −0 and +0 are equal (stable order kept); a 0-dim tensor sorts as itself.
  hgtest::check_close(hg::argsort(f64({0.0, -0.0, -1.0}).to(device)), i64({2, 0, 1}));
  auto [zv, zi] = hg::sort(f64({4.0}, {}).to(device));
  CHECK(zv.dim() == 0);
  CHECK(zi.item<int64_t>() == 0);
  Tensor ints = std::get<0>(hg::sort(i64({5, -1, 3}).to(device), 0, true));
  CHECK(ints.dtype() == hg::kInt64);
  hgtest::check_close(ints, i64({5, 3, -1}));
  // Gradient through the permutation.
  Tensor g = grad_of_sum([](const Tensor& t) { return std::get<0>(hg::sort(t)) * f64({1, 2, 3}).to(t.device()); },
                         f64({0.3, 0.1, 0.2}), device);
  hgtest::check_close(g, f64({3, 1, 2}));
  return {v, i, dv, di, mv, mi, g};
}

HG_BACKEND_TEST(reduce_topk_ties_and_order) {
  Tensor x = f64({1, 3, 3, 2, 3}).to(device);
  auto [v, i] = hg::topk(x, 2);
  hgtest::check_close(v, f64({3, 3}));
  hgtest::check_close(i, i64({1, 2}));  // ties: lower index first
  auto [sv, si] = hg::topk(x, 3, 0, /*largest=*/false);
  hgtest::check_close(sv, f64({1, 2, 3}));
  hgtest::check_close(si, i64({0, 3, 1}));
  Tensor m = f64({4, 9, 1, 9, 5, 0, 2, 8, 3, 8, 6, 7}, {3, 4}).to(device);
  auto [mv, mi] = hg::topk(m, 2, 1);
  hgtest::check_close(mv, f64({9, 9, 8, 5, 8, 7}, {3, 2}));
  hgtest::check_close(mi, i64({1, 3, 3, 0, 1, 3}, {3, 2}));
  auto [cv, ci] = hg::topk(m, 1, 0, true);
  hgtest::check_close(cv, f64({5, 9, 6, 9}, {1, 4}));
  hgtest::check_close(ci, i64({1, 0, 2, 0}, {1, 4}));
  // NaN counts as the largest; k = 0 gives empty results.
  auto [nv, ni] = hg::topk(f64({1, kNaN, 2}).to(device), 2);
  CHECK(std::isnan(nv.to_vector<double>()[0]));
  hgtest::check_close(ni, i64({1, 2}));
  CHECK(std::get<0>(hg::topk(x, 0)).sizes() == hg::Shape{0});
  Tensor g = grad_of_sum([](const Tensor& t) { return std::get<0>(hg::topk(t, 2, 1)); },
                         f64({4, 9, 1, 9, 5, 0, 2, 8, 3, 8, 6, 7}, {3, 4}), device);
  hgtest::check_close(g, f64({0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1}, {3, 4}));
  return {v, i, sv, si, mv, mi, cv, ci, g};
}

HG_BACKEND_TEST(reduce_kthvalue_and_median_values) {
  Tensor x = f64({3, 1, 2, 4}).to(device);
  auto [kv, ki] = hg::kthvalue(x, 2);
  CHECK(kv.item<double>() == 2.0);
  CHECK(ki.item<int64_t>() == 2);
  auto [mv, mi] = hg::median(x, 0);
  CHECK(mv.item<double>() == 2.0);  // the lower median of an even count
  CHECK(mi.item<int64_t>() == 2);
  CHECK(hg::median(x).item<double>() == 2.0);
  Tensor m = f64({5, 1, 4, 2, 3, 7, 7, 7, 1, 0, 9, 9, 2, 8, 6}, {3, 5}).to(device);
  auto [rv, ri] = hg::median(m, 1, /*keepdim=*/true);
  hgtest::check_close(rv, f64({3, 7, 8}, {3, 1}));
  hgtest::check_close(ri, i64({4, 0, 3}, {3, 1}));  // equal values ranked by index: the first 7 is the median
  auto [cv, ci] = hg::kthvalue(m, 3, 0);
  hgtest::check_close(cv, f64({9, 9, 7, 8, 6}));
  hgtest::check_close(ci, i64({2, 2, 1, 2, 2}));
  // median propagates NaN (at the first NaN); kthvalue ranks NaN as the largest.
  Tensor n = f64({1, kNaN, 0, kNaN, 2, 3}, {2, 3}).to(device);
  auto [nv, ni] = hg::median(n, 1);
  CHECK(std::isnan(nv.to_vector<double>()[0]));
  CHECK(std::isnan(nv.to_vector<double>()[1]));
  hgtest::check_close(ni, i64({1, 0}));
  hgtest::check_close(std::get<0>(hg::kthvalue(n, 2, 1)), f64({1, 3}));
  CHECK(std::isnan(hg::median(n).item<double>()));
  CHECK(std::isnan(hg::median(hg::zeros({0}, hg::kFloat64).to(device)).item<double>()));
  CHECK(hg::median(i64({7, 3, 5, 1}).to(device)).item<int64_t>() == 3);
  // Gradients: median(dim)/kthvalue to the selected index; median() split among equal elements.
  Tensor g1 = grad_of_sum([](const Tensor& t) { return std::get<0>(hg::median(t, 1)); },
                          f64({5, 1, 4, 2, 3, 7, 7, 7, 1, 0, 9, 9, 2, 8, 6}, {3, 5}), device);
  hgtest::check_close(g1, f64({0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0}, {3, 5}));
  Tensor g2 = grad_of_sum([](const Tensor& t) { return hg::median(t); }, f64({2, 1, 2, 3, 2}), device);
  hgtest::check_close(g2, f64({1.0 / 3, 0, 1.0 / 3, 0, 1.0 / 3}));
  return {kv, ki, rv, ri, cv, ci, ni, g1, g2};
}

HG_BACKEND_TEST(reduce_cumsum_values) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3}).to(device);
  hgtest::check_close(hg::cumsum(x, 1), f64({1, 3, 6, 4, 9, 15}, {2, 3}));
  hgtest::check_close(hg::cumsum(x, 0), f64({1, 2, 3, 5, 7, 9}, {2, 3}));
  hgtest::check_close(hg::cumsum(x.t(), 1), f64({1, 5, 2, 7, 3, 9}, {3, 2}));
  Tensor ints = hg::cumsum(hg::from_vector<bool>({true, false, true, true}, {4}, hg::kBool).to(device), 0);
  CHECK(ints.dtype() == hg::kInt64);
  hgtest::check_close(ints, i64({1, 1, 2, 3}));
  // ∂/∂xⱼ Σᵢ wᵢ yᵢ = Σ_{i≥j} wᵢ.
  Tensor g = grad_of_sum([](const Tensor& t) { return hg::cumsum(t, 1) * f64({1, 10, 100}).to(t.device()); },
                         f64({1, 2, 3, 4, 5, 6}, {2, 3}), device);
  hgtest::check_close(g, f64({111, 110, 100, 111, 110, 100}, {2, 3}));
  return {hg::cumsum(x, 1), hg::cumsum(x.t(), 0), ints, g};
}

// ---- larger inputs: the parallel and column paths against brute-force references ---------------------

HG_BACKEND_TEST(reduce_large_sort_topk_against_reference) {
  const int64_t rows = 48, n = 1500;
  Tensor x = tied_values(rows, n, 21).to(device);
  auto [v, i] = hg::sort(x, 1, /*descending=*/true);
  auto [tv, ti] = hg::topk(x, 40, 1, /*largest=*/false);
  auto xs = x.cpu().to_vector<double>();
  auto vs = v.cpu().to_vector<double>();
  auto is = i.cpu().to_vector<int64_t>();
  auto tvs = tv.cpu().to_vector<double>();
  auto tis = ti.cpu().to_vector<int64_t>();
  size_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    const double* row = xs.data() + r * n;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    for (int64_t j = 0; j < n; ++j) {
      bad += is[static_cast<size_t>(r * n + j)] != order[static_cast<size_t>(j)];
      bad += vs[static_cast<size_t>(r * n + j)] != row[order[static_cast<size_t>(j)]];
    }
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] < row[b]; });
    for (int64_t j = 0; j < 40; ++j) {
      bad += tis[static_cast<size_t>(r * 40 + j)] != order[static_cast<size_t>(j)];
      bad += tvs[static_cast<size_t>(r * 40 + j)] != row[order[static_cast<size_t>(j)]];
    }
  }
  CHECK(bad == 0);
  return {v, i, tv, ti};
}

HG_BACKEND_TEST(reduce_large_max_and_cumsum_layouts_agree) {
  // Reducing dim 0 of [n, m] (column path) must equal reducing dim 1 of its transposed copy (row path), and both
  // the brute-force first extremum; many ties and a few NaNs exercise the tie and NaN rules of both paths.
  const int64_t n = 300, m = 257;
  Tensor host = tied_values(n, m, 22).to(hg::kFloat32);
  float* h = host.data_ptr<float>();
  for (int64_t k = 0; k < 40; ++k) h[(k * 7919) % (n * m)] = std::numeric_limits<float>::quiet_NaN();
  Tensor x = host.to(device), xt = host.t().contiguous().to(device);
  auto [cv, ci] = hg::max(x, 0);
  auto [rv, ri] = hg::max(xt, 1);
  hgtest::check_close(cv, rv, 0, 0);
  hgtest::check_close(ci, ri, 0, 0);
  hgtest::check_close(hg::argmin(x, 0), hg::argmin(x.t(), 1), 0, 0);
  std::vector<int64_t> first_max(static_cast<size_t>(m)), first_min(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) {
    int64_t hi = 0, lo = 0;
    for (int64_t i = 1; i < n; ++i) {
      float v = h[i * m + j], b = h[hi * m + j], c = h[lo * m + j];
      if ((v > b || std::isnan(v)) && !std::isnan(b)) hi = i;
      if ((v < c || std::isnan(v)) && !std::isnan(c)) lo = i;
    }
    first_max[static_cast<size_t>(j)] = hi, first_min[static_cast<size_t>(j)] = lo;
  }
  hgtest::check_close(ri, i64(first_max), 0, 0);
  hgtest::check_close(hg::argmin(xt, 1), i64(first_min), 0, 0);
  hgtest::check_close(hg::amax(xt, {1}), cv, 0, 0);
  // cumsum: column path (dim 0, contiguous), row path (dim 1 of the transposed copy) and strided rows (dim 1 of
  // a transposed view) agree exactly, and match a double-precision reference.
  Tensor u = hgtest::uniform({n, m}, -1, 1, 23).to(hg::kFloat32);
  Tensor ud = u.to(device), ut = u.t().contiguous().to(device);
  Tensor c0 = hg::cumsum(ud, 0), c1 = hg::cumsum(ut, 1), cs = hg::cumsum(ud.t(), 1);
  hgtest::check_close(c0.t(), c1, 0, 0);
  hgtest::check_close(cs, c1, 0, 0);
  hgtest::check_close(c0, hg::cumsum(u.to(hg::kFloat64), 0), 1e-6, 1e-6);
  // float32 running sums accumulate in double: 1e5 × 0.1 stays within float rounding of 1e4.
  Tensor tenths = hg::full({100000}, 0.1, hg::TensorOptions(hg::kFloat32).device(device));
  CHECK(hg::cumsum(tenths, 0).to_vector<float>().back() == doctest::Approx(10000.0).epsilon(1e-6));
  return {cv, ci, c0};
}

// ---- bad input ---------------------------------------------------------------------------------------

TEST_CASE("reduce: bad arguments give errors that name the op, the sizes and the range") {
  Tensor x = hg::ones({3, 4});
  CHECK_THROWS_WITH_AS(hg::topk(x, 5, 1), doctest::Contains("topk: k = 5 is out of range for dimension 1 of size 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::topk(x, -1), doctest::Contains("expected 0 <= k <= 4"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::topk(hg::scalar_tensor(2.5), 0), doctest::Contains("topk: k = 0 for a 0-dim input"),
                       hg::Error);
  CHECK(std::get<0>(hg::topk(hg::scalar_tensor(2.5), 1)).item<double>() == 2.5);
  CHECK_THROWS_WITH_AS(hg::kthvalue(x, 0, 0), doctest::Contains("kthvalue: k = 0 is out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::kthvalue(x, 4, 0), doctest::Contains("expected 1 <= k <= 3"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::sort(x, 2), doctest::Contains("sort: dimension 2 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cumsum(x, -3), doctest::Contains("cumsum: dimension -3 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max(x, 2), doctest::Contains("max: dimension 2 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::amax(x, {0, -2}), doctest::Contains("appears twice"), hg::Error);
  Tensor empty = hg::zeros({2, 0});
  CHECK_THROWS_WITH_AS(hg::max(empty, 1), doctest::Contains("max: cannot reduce over dimension 1 of size 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::argmin(empty, 1), doctest::Contains("argmin: cannot reduce over dimension 1"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max(empty), doctest::Contains("max: cannot reduce over zero elements"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::amin(empty, {1}), doctest::Contains("amin: cannot reduce over zero elements"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::median(empty, 1), doctest::Contains("median: cannot reduce over dimension 1 of size 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::norm(empty, kInf, {1}), doctest::Contains("norm: the inf norm of zero elements"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::median(hg::zeros({0}, hg::kInt64)), doctest::Contains("median: the median of zero"),
                       hg::Error);
  Tensor ints = hg::ones({3}, hg::kInt64);
  CHECK_THROWS_WITH_AS(hg::var(ints), doctest::Contains("var: expects a floating-point tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::std(ints), doctest::Contains("std: expects a floating-point tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::norm(ints), doctest::Contains("norm: expects a floating-point tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::prod(Tensor()), doctest::Contains("prod: got an undefined tensor"), hg::Error);
  // Empty reductions that do have a value.
  CHECK(hg::sum(empty, {1}).sizes() == hg::Shape{2});
  CHECK(std::get<0>(hg::max(empty, 0)).sizes() == hg::Shape{0});
}
