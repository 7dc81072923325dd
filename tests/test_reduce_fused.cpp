// The fused kernels behind reductions and their backward, against what they replace:
//  - split_among_ties (the backward of max()/amax/amin/median()/∞-norm): the backend kernel, used when no graph
//    is recorded, against the composite with ops that create_graph uses — bit for bit, on every CPU layout
//    (short rows, long rows, columns, strided groups, a few large groups split between threads), with ties,
//    NaNs, and gradients holding NaN, ±inf and negative values;
//  - reductions over reduced dims on both sides of a kept one (a convolution's bias gradient), reduced block by
//    block without the permuting copy: values against a float64 reference, and the same result for 1 and 2
//    threads.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/selection_grad.h>

#include "testing.h"

using hg::Tensor;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Elementwise identical: equal values with equal signs (so −0 ≠ +0), or both NaN.
void check_identical(const Tensor& got, const Tensor& expected, const std::string& what) {
  REQUIRE_MESSAGE(got.sizes() == expected.sizes(), what << ": shape " << got.sizes().str() << " vs expected "
                                                        << expected.sizes().str());
  const auto g = got.detach().to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
  const auto e = expected.detach().to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool same =
        (std::isnan(g[i]) && std::isnan(e[i])) || (g[i] == e[i] && std::signbit(g[i]) == std::signbit(e[i]));
    if (!same && bad++ == 0) first = i;
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << g.size() << " elements differ; first at flat index "
                               << first << ": got " << g[first] << ", expected " << e[first]);
}

// Values from {-2, …, 2}: many ties within every group.
Tensor tied(hg::IntArrayRef shape, uint64_t seed) {
  hg::Generator gen(seed);
  return hg::randint(-2, 3, shape, hg::kInt64, &gen).to(hg::kFloat64);
}

// Sets every `period`-th element (from `first`) of contiguous float64 t to `value`.
Tensor with_every(Tensor t, int64_t first, int64_t period, double value) {
  double* p = t.data_ptr<double>();
  for (int64_t i = first; i < t.numel(); i += period) p[i] = value;
  return t;
}

// The fused kernel (no graph recorded) and the composite (grad mode on) on the same operands.
struct SplitPair {
  Tensor fused, composite;
};
SplitPair split_both_ways(const Tensor& g, const Tensor& x, const Tensor& y, const std::vector<int64_t>& dims) {
  SplitPair r;
  {
    hg::NoGradGuard no_grad;
    r.fused = hg::detail::split_among_ties(g, x, y, dims);
  }
  hg::AutoGradMode grad_mode(true);
  r.composite = hg::detail::split_among_ties(g, x, y, dims);
  return r;
}

// An input and the dims its extremum is taken over.
struct Case {
  const char* name;
  Tensor x;
  std::vector<int64_t> dims;
};

std::vector<Case> layouts(hg::DType dtype, hg::Device device) {
  auto on = [&](const Tensor& t) { return t.to(dtype).to(device); };
  Tensor rows = with_every(tied({37, 12}, 1), 5, 61, kNaN);        // short rows: 2 blocks of 16 and 5 more
  Tensor long_rows = with_every(tied({5, 40}, 2), 3, 37, kNaN);    // rows of 40: one run per group
  Tensor columns = with_every(tied({7, 9, 5}, 3), 11, 53, kNaN);   // [outer, n, tail] = [7, 9, 5]
  Tensor leading = tied({6, 4, 5}, 4);                             // [1, 6, 20]
  Tensor split = with_every(tied({4, 3, 5}, 5), 7, 23, kNaN);      // dims {0, 2}: strided groups
  Tensor wide = tied({3, 20, 4}, 6);                               // transposed below: strided rows
  return {
      {"short rows", on(rows), {1}},
      {"long rows", on(long_rows), {1}},
      {"columns", on(columns), {1}},
      {"leading dim", on(leading), {0}},
      {"dims on both sides", on(split), {0, 2}},
      {"transposed", on(wide).transpose(1, 2), {2}},
      {"all dims", on(split), {0, 1, 2}},
      {"size-1 dim between reduced ones", on(columns).view({7, 9, 1, 5}), {1, 3}},
      {"0-dim", on(hg::full({}, 1.5, hg::kFloat64)), {}},
  };
}

// A gradient of y's shape with negative values, a NaN and an inf (where there are enough outputs).
Tensor gradient_like(const Tensor& y) {
  Tensor g = hgtest::uniform(y.sizes(), -1, 1, 17);
  if (g.numel() > 4) {
    g = with_every(g, 1, g.numel(), kNaN);
    g = with_every(g, 3, g.numel(), -kInf);
  }
  return g;
}

}  // namespace

// ---- split_among_ties: fused kernel against the composite ---------------------------------------------------------

HG_BACKEND_TEST(reduce_fused_split_among_ties_matches_the_composite) {
  hg::Tensors results;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    for (const Case& c : layouts(dtype, device)) {
      INFO(std::string(c.name) << ", " << hg::dtype_name(dtype));
      const Tensor y = hg::amax(c.x, c.dims, /*keepdim=*/true);
      const Tensor g = gradient_like(y).to(dtype).to(device);
      const SplitPair r = split_both_ways(g, c.x, y, c.dims);
      check_identical(r.fused, r.composite, c.name);
      results.push_back(r.fused);
    }
  }
  // Broadcast g (stride 0, as sum().backward() gives) and a strided y.
  Tensor x = tied({8, 6, 3}, 9).to(device);
  Tensor y = hg::amax(x, {0, 2}, true);
  Tensor y_strided = hg::amax(x.permute({2, 1, 0}), {0, 2}, true).permute({2, 1, 0});
  check_identical(y_strided, y, "amax of a permuted view");
  Tensor g = hg::full({}, 0.5, hg::TensorOptions(hg::kFloat64).device(device)).expand(y.sizes());
  SplitPair r = split_both_ways(g, x, y_strided, {0, 2});
  check_identical(r.fused, r.composite, "broadcast g, strided y");
  results.push_back(r.fused);
  return results;
}

TEST_CASE("reduce_fused: split_among_ties splits between threads the same way (few large groups)") {
  // One output over 100 000 elements (max() of a whole tensor) splits the group between threads; two outputs of
  // 50 000 likewise. The counts are integers: 1 and 2 threads give the same gradient.
  const int threads = hg::get_num_threads();
  Tensor x = tied({2, 50000}, 31).to(hg::kFloat32);
  x = with_every(x.to(hg::kFloat64), 777, 4999, 7.0).to(hg::kFloat32);  // 20 maxima of 7 in the whole tensor
  for (std::vector<int64_t> dims : {std::vector<int64_t>{0, 1}, std::vector<int64_t>{1}}) {
    Tensor y = hg::amax(x, dims, true);
    Tensor g = hg::full(y.sizes(), 3.0, hg::kFloat32);
    hg::set_num_threads(1);
    SplitPair one = split_both_ways(g, x, y, dims);
    hg::set_num_threads(2);
    SplitPair two = split_both_ways(g, x, y, dims);
    hg::set_num_threads(threads);
    check_identical(one.fused, one.composite, "1 thread");
    check_identical(two.fused, one.fused, "2 threads");
    CHECK(hg::sum(two.fused).item<double>() == doctest::Approx(3.0 * static_cast<double>(y.numel())));
  }
}

TEST_CASE("reduce_fused: amax backward (fused) equals create_graph's (composite), and gradgradcheck still passes") {
  // The public path: backward() without create_graph runs the kernel; grad(create_graph = true) the composite.
  Tensor x0 = with_every(tied({4, 8, 12}, 41), 5, 97, kNaN).to(hg::kFloat32);  // DeepRC's max over positions
  for (auto dims : {std::vector<int64_t>{2}, std::vector<int64_t>{0}, std::vector<int64_t>{0, 2}}) {
    Tensor x = x0.detach().requires_grad_();
    Tensor w = hgtest::uniform(hg::amax(x0, dims).sizes(), -1, 1, 43).to(hg::kFloat32);
    hg::sum(hg::mul(hg::amax(x, dims), w)).backward();
    Tensor fused = x.grad();
    Tensor xc = x0.detach().requires_grad_();
    Tensor composite = hg::grad({hg::sum(hg::mul(hg::amax(xc, dims), w))}, {xc}, {}, false, /*create_graph=*/true)[0];
    check_identical(fused, composite, "amax backward");
  }
  auto y = hgtest::uniform({3, 4, 5}, -1, 1, 44);
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::amax(t[0], {2}) * hg::amax(t[0], {2}); }, {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::square(hg::amin(t[0].transpose(0, 2), {1}, true)); },
                        {y});
  hgtest::gradgradcheck([](const hg::Tensors& t) { return hg::square(hg::max(t[0])); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::amax(t[0], {0, 2}); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::norm(t[0], kInf, {1}); }, {y});
  hgtest::gradcheck([](const hg::Tensors& t) { return hg::median(t[0].transpose(1, 2)); }, {y});
}

TEST_CASE("reduce_fused: split_among_ties rejects operands it cannot pair up") {
  Tensor x = hg::zeros({3, 4}), y = hg::zeros({3, 1}), dx = hg::empty({3, 4});
  hg::Backend& cpu = hg::cpu_backend();
  CHECK_THROWS_WITH_AS(cpu.split_among_ties(hg::zeros({3, 1}, hg::kFloat64), x, y, dx),
                       doctest::Contains("split_among_ties: expects one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(cpu.split_among_ties(hg::zeros({3, 1}), x, hg::zeros({2, 1}), dx),
                       doctest::Contains("expects g and y of x's rank with one shape"), hg::Error);
  CHECK_THROWS_WITH_AS(cpu.split_among_ties(hg::zeros({2, 1}), x, hg::zeros({2, 1}), dx),
                       doctest::Contains("y float32[2, 1] cpu is not x float32[3, 4] cpu reduced over some dims"),
                       hg::Error);
  Tensor ix = hg::zeros({3, 4}, hg::kInt64);
  CHECK_THROWS_WITH_AS(cpu.split_among_ties(hg::zeros({3, 1}, hg::kInt64), ix, hg::zeros({3, 1}, hg::kInt64),
                                            ix),
                       doctest::Contains("expects one floating dtype"), hg::Error);
}

// ---- reductions over dims on both sides of a kept one ----------------------------------------------------------

namespace {

// Σ (or max) of contiguous float64 x over `dims`, by brute force: the reference.
std::vector<double> reference_reduce(const Tensor& x, const std::vector<int64_t>& dims, bool is_max) {
  const hg::Shape sizes = x.sizes();
  std::vector<bool> reduced(sizes.size(), false);
  for (int64_t d : dims) reduced[static_cast<size_t>(d)] = true;
  int64_t outputs = 1;
  for (size_t d = 0; d < sizes.size(); ++d)
    if (!reduced[d]) outputs *= sizes[d];
  std::vector<double> out(static_cast<size_t>(outputs), is_max ? -kInf : 0.0);
  const std::vector<double> v = x.to(hg::kFloat64).contiguous().to_vector<double>();
  std::vector<int64_t> index(sizes.size(), 0);
  for (size_t flat = 0; flat < v.size(); ++flat) {
    int64_t o = 0;
    for (size_t d = 0; d < sizes.size(); ++d)
      if (!reduced[d]) o = o * sizes[d] + index[d];
    double& acc = out[static_cast<size_t>(o)];
    acc = is_max ? std::max(acc, v[flat]) : acc + v[flat];
    for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0 && ++index[d] == sizes[d]; --d) index[d] = 0;
  }
  return out;
}

}  // namespace

HG_BACKEND_TEST(reduce_fused_reduced_dims_on_both_sides_of_kept_ones) {
  struct Shape {
    std::vector<int64_t> sizes, dims;
  };
  const std::vector<Shape> shapes = {
      {{300, 7, 1, 12}, {0, 2, 3}},  // a Conv1d's bias gradient (DeepRC: [40 000, 32, 1, 12])
      {{5, 7, 3, 4}, {0, 2, 3}},     // a Conv2d's
      {{9, 6, 11}, {0, 2}},
      {{2, 5, 3, 7, 4}, {1, 3}},     // kept, reduced, kept, reduced, kept
      {{3, 4, 5, 6}, {0, 1, 3}},
      {{1000, 3, 2}, {0, 2}},        // a long leading block: the two-level column sums
  };
  hg::Tensors results;
  for (const Shape& s : shapes) {
    const Tensor x64 = hgtest::uniform(s.sizes, -1, 1, 50 + static_cast<uint64_t>(s.sizes[0]));
    for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
      INFO(x64.sizes().str() << " over dims " << hg::Shape(s.dims).str() << ", " << hg::dtype_name(dtype));
      const Tensor x = x64.to(dtype).to(device);
      const Tensor exact = x64.to(dtype).to(hg::kFloat64);  // the values x holds
      const std::vector<double> want_sum = reference_reduce(exact, s.dims, false);
      const std::vector<double> want_max = reference_reduce(exact, s.dims, true);
      const Tensor sum = hg::sum(x, s.dims), mean = hg::mean(x, s.dims, true), amax = hg::amax(x, s.dims);
      // Rounding grows like √n for n random terms; float32 sums of up to 3600 terms cancel to values near 1.
      const double count = static_cast<double>(x.numel() / sum.numel());
      const double tol = (dtype == hg::kFloat32 ? 1e-6 : 1e-14) * std::sqrt(count);
      const Tensor expected_sum = hg::from_vector<double>(want_sum, sum.sizes(), hg::kFloat64);
      hgtest::check_close(sum, expected_sum, tol, tol, "sum");
      hgtest::check_close(mean.reshape(sum.sizes()), hg::div(expected_sum, count), tol, tol, "mean");
      hgtest::check_close(amax, hg::from_vector<double>(want_max, amax.sizes(), hg::kFloat64), 0, 0, "amax");
      // The same values through a strided view (the permuting copy) agree to rounding.
      const Tensor strided = x.transpose(0, 1).contiguous().transpose(0, 1);
      hgtest::check_close(hg::sum(strided, s.dims), sum, tol, tol, "strided");
      results.insert(results.end(), {sum, mean, amax});
    }
  }
  return results;
}

TEST_CASE("reduce_fused: a bias-gradient sum is the same for 1 and 2 threads") {
  // Each output is summed by one thread, in the same order whatever the thread count.
  const int threads = hg::get_num_threads();
  const Tensor x = hgtest::uniform({2000, 16, 1, 12}, -1, 1, 61).to(hg::kFloat32);
  hg::set_num_threads(1);
  const Tensor one = hg::sum(x, {0, 2, 3});
  hg::set_num_threads(2);
  const Tensor two = hg::sum(x, {0, 2, 3});
  hg::set_num_threads(threads);
  check_identical(two, one, "sum over {0, 2, 3}");
  // The first step's column sums (over 2000 rows) reach ±175, stored in float32 (ulp 1.5e-5) before the sums over
  // the 12 positions, while some totals cancel to ~3: the error is bounded by the intermediate sums' rounding.
  hgtest::check_close(one, hg::sum(x.to(hg::kFloat64), {0, 2, 3}), 1e-6, 5e-5, "against float64");
}
