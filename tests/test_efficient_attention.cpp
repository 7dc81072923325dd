// Sub-quadratic association (nn/hopfield/efficient_attention.h): window attention against dense softmax attention
// under a band mask built here, kernel attention against its O(L²) form φ(q)φ(k)ᵀ / row-sum (spec I.1.7), the
// random features against exp(q·k) and softmax attention, gradients by finite differences, the memory of a
// 50 000-long sequence, the same paths through Separation, and bad input.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "testing.h"

#include <hopgrad/nn/hopfield/efficient_attention.h>
#include <hopgrad/nn/hopfield/separation.h>

using hg::Tensor;
using hg::Tensors;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

// A bool tensor from 0/1 values.
Tensor flags(const std::vector<double>& values, hg::IntArrayRef shape) { return f64(values, shape) > 0.5; }

double tolerance(hg::DType dtype) { return dtype == hg::kFloat32 ? 2e-5 : 1e-12; }

// [L, S], true where |i − j| > w: written out element by element, independently of window_mask.
Tensor band_exclusion(int64_t L, int64_t S, int64_t w) {
  std::vector<double> out;
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < S; ++j) out.push_back(std::abs(i - j) > w ? 1.0 : 0.0);
  return flags(out, {L, S});
}

// The dense O(L·S) association: softmax over the allowed keys of β q kᵀ, then the weighted values.
struct Dense {
  Tensor out, weights;
};
Dense dense_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& excluded) {
  Tensor scores = hg::matmul(q * beta, k.transpose(-2, -1));
  if (excluded.defined()) scores = hg::where(excluded, -kInf, scores);
  Tensor weights = hg::softmax(scores, -1);
  return {hg::matmul(weights, v), weights};
}

// Band weights [B, H, L, 2w+1] (entry (i, w + o) is key i + o) spread into a dense [B, H, L, S] matrix.
Tensor band_to_dense(const Tensor& band, int64_t S) {
  const int64_t B = band.size(0), H = band.size(1), L = band.size(2), width = band.size(3), w = (width - 1) / 2;
  std::vector<double> values = band.to(hg::kFloat64).cpu().contiguous().to_vector<double>();
  std::vector<double> dense(static_cast<size_t>(B * H * L * S), 0.0);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t o = 0; o < width; ++o) {
        const int64_t j = i + o - w;
        const double x = values[static_cast<size_t>((bh * L + i) * width + o)];
        if (j >= 0 && j < S)
          dense[static_cast<size_t>((bh * L + i) * S + j)] = x;
        else
          CHECK_MESSAGE(x == 0.0, "band entry outside the keys is not 0");
      }
  return f64(dense, {B, H, L, S});
}

// out = A v / (rowsum(A) + eps) with A = φ(q) φ(k)ᵀ and padded keys' columns zeroed: the O(L²) kernel association.
Tensor quadratic_kernel_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const Tensor& padded,
                                  double eps = 1e-6) {
  Tensor a = hg::matmul(phi_q, phi_k.transpose(-2, -1));
  if (padded.defined()) a = hg::where(padded, 0.0, a);
  return hg::matmul(a, v) / (hg::sum(a, {-1}, true) + eps);
}

// Peak resident memory of this process so far, in bytes.
int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace

// ---- window attention -------------------------------------------------------------------------------------------

HG_BACKEND_TEST(window_attention_equals_dense_attention_under_the_band_mask) {
  // (L, S, w): one chunk, several chunks with a ragged last one (chunks are max(w, 16) queries), w = 0, w ≥ L (the
  // dense softmax), queries longer and shorter than the keys.
  struct Case {
    int64_t L, S, w;
  };
  const Case cases[] = {{7, 7, 0},   {7, 7, 1},    {7, 7, 2}, {7, 7, 6}, {7, 7, 50},  {1, 1, 3},
                        {40, 40, 3}, {37, 37, 20}, {5, 9, 2}, {9, 4, 2}, {20, 33, 17}};
  const int64_t B = 2, H = 3, d = 4, dv = 5;
  Tensor beta = f64({0.5, 1.0, 2.0}, {H, 1, 1});  // one β per head
  Tensors results;
  uint64_t seed = 1;
  for (const Case& c : cases) {
    Tensor q = hgtest::uniform({B, H, c.L, d}, -1, 1, seed++), k = hgtest::uniform({B, H, c.S, d}, -1, 1, seed++);
    Tensor v = hgtest::uniform({B, H, c.S, dv}, -1, 1, seed++);
    // Batch 0 pads its last key, batch 1 its first two.
    std::vector<double> pad_values(static_cast<size_t>(B * c.S), 0.0);
    pad_values[static_cast<size_t>(c.S - 1)] = 1.0;
    for (int64_t j = 0; j < std::min<int64_t>(2, c.S); ++j) pad_values[static_cast<size_t>(c.S + j)] = 1.0;
    Tensor padded = flags(pad_values, {B, 1, 1, c.S});
    for (bool with_mask : {false, true}) {
      Tensor excluded = band_exclusion(c.L, c.S, c.w);
      if (with_mask) excluded = hg::logical_or(excluded, padded);
      Dense want = dense_attention(q, k, v, beta, excluded);
      for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
        CAPTURE(c.L);
        CAPTURE(c.S);
        CAPTURE(c.w);
        CAPTURE(with_mask);
        const std::string dtype_name(hg::dtype_name(dtype));
        CAPTURE(dtype_name);
        Tensor band;
        Tensor got =
            hg::nn::window_attention(q.to(dtype).to(device), k.to(dtype).to(device), v.to(dtype).to(device), c.w,
                                     beta.to(dtype).to(device), with_mask ? padded.to(device) : Tensor(), &band);
        const int64_t w_effective = std::min(c.w, std::max(c.L, c.S) - 1);
        CHECK(band.sizes() == hg::Shape{B, H, c.L, 2 * w_effective + 1});
        hgtest::check_close(got, want.out, tolerance(dtype), tolerance(dtype), "window output");
        hgtest::check_close(band_to_dense(band, c.S), want.weights, tolerance(dtype), tolerance(dtype), "band weights");
        results.push_back(got);
        results.push_back(band);
      }
    }
  }
  // w ≥ L with no mask at all is plain softmax attention (spec I.1.6).
  Tensor q = hgtest::uniform({2, 6, 3}, -1, 1, 90), k = hgtest::uniform({2, 6, 3}, -1, 1, 91);
  Tensor v = hgtest::uniform({2, 6, 2}, -1, 1, 92);
  Tensor beta1 = hg::scalar_tensor(0.7, hg::kFloat64);
  Tensor got = hg::nn::window_attention(q.to(device), k.to(device), v.to(device), 6, beta1.to(device));
  hgtest::check_close(got, hg::matmul(hg::softmax(hg::matmul(q, k.transpose(-2, -1)) * 0.7, -1), v), 1e-12, 1e-12,
                      "w >= L is softmax attention");
  results.push_back(got);
  return results;
}

HG_BACKEND_TEST(window_attention_gives_zeros_to_a_query_without_allowed_keys) {
  // Keys 0..2 padded, w = 1: queries 0 and 1 see only padded keys → exactly 0, and the gradients stay finite.
  Tensor q = hgtest::uniform({6, 3}, -1, 1, 3).to(device).requires_grad_();
  Tensor k = hgtest::uniform({6, 3}, -1, 1, 4).to(device).requires_grad_();
  Tensor v = hgtest::uniform({6, 2}, -1, 1, 5).to(device).requires_grad_();
  Tensor padded = flags({1, 1, 1, 0, 0, 0}, {6}).to(device);
  Tensor band;
  Tensor out = hg::nn::window_attention(
      q, k, v, 1, hg::scalar_tensor(1.0, hg::TensorOptions(hg::kFloat64).device(device)), padded, &band);
  hgtest::check_close(out.narrow(0, 0, 2), hg::zeros({2, 2}, hg::kFloat64), 0, 0, "rows without keys");
  hgtest::check_close(band.narrow(0, 0, 2), hg::zeros({2, 3}, hg::kFloat64), 0, 0, "their weights");
  // Query 2 sees keys 1, 2, 3: only key 3 is allowed, so it returns v_3.
  hgtest::check_close(out.select(0, 2), v.detach().select(0, 3), 1e-15, 1e-15, "a single allowed key");
  out.sum().backward();
  for (const Tensor& t : {q, k, v}) CHECK(std::isfinite(t.grad().abs().sum().item<double>()));
  // The padded keys receive no gradient.
  hgtest::check_close(k.grad().narrow(0, 0, 3), hg::zeros({3, 3}, hg::kFloat64), 0, 0, "padded keys' gradient");
  return {out, q.grad(), k.grad(), v.grad()};
}

TEST_CASE("window_attention gradients match finite differences") {
  auto beta = [](double b) { return hg::scalar_tensor(b, hg::kFloat64); };
  SUBCASE("one chunk, scalar beta") {
    hgtest::gradcheck(
        [&](const Tensors& t) { return hg::nn::window_attention(t[0], t[1], t[2], 1, beta(0.8)); },
        {hgtest::uniform({5, 3}, -1, 1, 1), hgtest::uniform({5, 3}, -1, 1, 2), hgtest::uniform({5, 2}, -1, 1, 3)});
  }
  SUBCASE("two chunks (L = 18 > 16), w = 1") {
    hgtest::gradcheck(
        [&](const Tensors& t) { return hg::nn::window_attention(t[0], t[1], t[2], 1, beta(1.0)); },
        {hgtest::uniform({18, 2}, -1, 1, 4), hgtest::uniform({18, 2}, -1, 1, 5), hgtest::uniform({18, 1}, -1, 1, 6)});
  }
  SUBCASE("per-head beta as an input, broadcast keys, key padding") {
    Tensor padded = flags({0, 0, 1, 0}, {4});
    hgtest::gradcheck([&](const Tensors& t) { return hg::nn::window_attention(t[0], t[1], t[2], 2, t[3], padded); },
                      {hgtest::uniform({2, 4, 2}, -1, 1, 7), hgtest::uniform({4, 2}, -1, 1, 8),
                       hgtest::uniform({4, 3}, -1, 1, 9), hgtest::uniform({2, 1, 1}, 0.5, 1.5, 10)});
  }
  SUBCASE("non-contiguous inputs, L != S") {
    hgtest::gradcheck(
        [&](const Tensors& t) {
          return hg::nn::window_attention(t[0].transpose(0, 1), t[1].transpose(0, 1), t[2], 1, beta(1.3));
        },
        {hgtest::uniform({3, 4}, -1, 1, 11), hgtest::uniform({3, 6}, -1, 1, 12), hgtest::uniform({6, 2}, -1, 1, 13)});
  }
  SUBCASE("band weights") {
    hgtest::gradcheck(
        [&](const Tensors& t) {
          Tensor band;
          hg::nn::window_attention(t[0], t[1], t[2], 1, beta(1.0), {}, &band);
          return band;
        },
        {hgtest::uniform({4, 2}, -1, 1, 14), hgtest::uniform({4, 2}, -1, 1, 15), hgtest::uniform({4, 1}, -1, 1, 16)});
  }
  SUBCASE("second derivatives") {
    hgtest::gradgradcheck([&](const Tensors& t) { return hg::nn::window_attention(t[0], t[1], t[2], 1, t[3]); },
                          {hgtest::uniform({4, 2}, -1, 1, 17), hgtest::uniform({4, 2}, -1, 1, 18),
                           hgtest::uniform({4, 2}, -1, 1, 19), beta(0.9)});
  }
}

TEST_CASE("window_mask excludes the pairs farther apart than w") {
  auto values = [](const Tensor& mask) { return mask.to(hg::kFloat64).to_vector<double>(); };
  CHECK(values(hg::nn::window_mask(3, 4, 1, hg::kCPU)) == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0});
  CHECK(hg::sum(hg::nn::window_mask(5, 5, 4, hg::kCPU).to(hg::kFloat64)).item<double>() == 0.0);
  CHECK(hg::nn::window_mask(0, 3, 1, hg::kCPU).sizes() == hg::Shape{0, 3});
}

// ---- kernel attention and feature maps ---------------------------------------------------------------------------

HG_BACKEND_TEST(kernel_attention_equals_the_quadratic_reference) {
  const int64_t B = 2, H = 2, L = 5, S = 6, d = 3, dv = 4;
  Tensor q = hgtest::uniform({B, H, L, d}, -1, 1, 21), k = hgtest::uniform({B, H, S, d}, -1, 1, 22);
  Tensor v = hgtest::uniform({B, H, S, dv}, -1, 1, 23);
  Tensor projection = hgtest::uniform({7, d}, -1, 1, 24);
  // Batch 0 pads keys 1 and 5; batch 1 pads every key (its output must be 0).
  Tensor padded = flags({0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}, {B, 1, 1, S});
  Tensor padded_1d = flags({0, 0, 1, 0, 1, 0}, {S});
  Tensors results;
  for (auto dtype : {hg::kFloat32, hg::kFloat64}) {
    auto on = [&](const Tensor& t) { return t.to(dtype).to(device); };
    const double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
    struct Features {
      const char* name;
      Tensor phi_q, phi_k;
    };
    const Features maps[] = {
        {"elu + 1", hg::nn::elu_feature_map(on(q)), hg::nn::elu_feature_map(on(k))},
        {"relu features", hg::nn::relu_random_features(on(q), on(projection)),
         hg::nn::relu_random_features(on(k), on(projection))},
        {"positive features", hg::nn::positive_random_features(on(q), on(projection), true),
         hg::nn::positive_random_features(on(k), on(projection), false)},
    };
    for (const Features& f : maps) {
      CAPTURE(f.name);
      const std::string dtype_name(hg::dtype_name(dtype));
      CAPTURE(dtype_name);
      for (const Tensor& mask : {Tensor(), padded, padded_1d}) {
        Tensor got = hg::nn::kernel_attention(f.phi_q, f.phi_k, on(v), mask.defined() ? mask.to(device) : Tensor());
        Tensor want = quadratic_kernel_attention(f.phi_q, f.phi_k, on(v), mask.defined() ? mask.to(device) : Tensor());
        hgtest::check_close(got, want, tol, tol, "against φ(q)φ(k)ᵀ / row-sum");
        results.push_back(got);
      }
      Tensor none = hg::nn::kernel_attention(f.phi_q, f.phi_k, on(v), padded.to(device)).select(0, 1);
      hgtest::check_close(none, hg::zeros({H, L, dv}, hg::kFloat64), 0, 0, "every key padded");
    }
  }
  return results;
}

HG_BACKEND_TEST(feature_maps_follow_their_formulas) {
  // x [2, 3], ω [4, 3]; every value computed here in plain C++.
  const std::vector<double> x = {0.3, -0.2, 0.5, -0.4, 0.1, 0.2};
  const std::vector<double> w = {0.5, -1.0, 0.2, 1.5, 0.3, -0.7, -0.2, 0.8, 1.1, 0.9, 0.4, -0.3};
  const int64_t n = 2, m = 4, d = 3;
  std::vector<double> exponent(n * m), relu(n * m), elu(n * d);
  for (int64_t i = 0; i < n; ++i) {
    double norm2 = 0;
    for (int64_t c = 0; c < d; ++c) norm2 += x[i * d + c] * x[i * d + c];
    for (int64_t r = 0; r < m; ++r) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += w[r * d + c] * x[i * d + c];
      exponent[i * m + r] = dot - norm2 / 2;
      relu[i * m + r] = std::max(0.0, dot * std::pow(3.0, -0.25)) + 1e-3;
    }
  }
  for (size_t i = 0; i < x.size(); ++i) elu[i] = x[i] > 0 ? x[i] + 1 : std::exp(x[i]);
  std::vector<double> query(n * m), key(n * m);
  const double key_shift = *std::max_element(exponent.begin(), exponent.end());
  for (int64_t i = 0; i < n; ++i) {
    const double row_shift = *std::max_element(exponent.begin() + i * m, exponent.begin() + (i + 1) * m);
    for (int64_t r = 0; r < m; ++r) {
      query[i * m + r] = std::exp(exponent[i * m + r] - row_shift) / 2.0;  // 1/√m = 1/2
      key[i * m + r] = std::exp(exponent[i * m + r] - key_shift) / 2.0;
    }
  }
  Tensor xt = f64(x, {n, d}).to(device), wt = f64(w, {m, d}).to(device);
  Tensors results = {hg::nn::positive_random_features(xt, wt, true), hg::nn::positive_random_features(xt, wt, false),
                     hg::nn::relu_random_features(xt, wt), hg::nn::elu_feature_map(xt)};
  hgtest::check_close(results[0], f64(query, {n, m}), 1e-14, 1e-15, "positive features, query");
  hgtest::check_close(results[1], f64(key, {n, m}), 1e-14, 1e-15, "positive features, key");
  hgtest::check_close(results[2], f64(relu, {n, m}), 1e-14, 1e-15, "relu features");
  hgtest::check_close(results[3], f64(elu, {n, d}), 1e-14, 1e-15, "elu + 1");
  // The key shift is one per slice of keys: a second slice in a leading dim gets its own.
  Tensor two = hg::nn::positive_random_features(hg::stack({xt, xt * 2.0}), wt, false);
  hgtest::check_close(two.select(0, 0), results[1], 1e-14, 1e-15, "first slice keeps its shift");
  CHECK(two.select(0, 1).max().item<double>() == doctest::Approx(0.5));  // the largest feature is 1/√m
  return results;
}

TEST_CASE("kernel attention and feature map gradients match finite differences") {
  Tensor projection = hgtest::uniform({5, 2}, -1, 1, 31);
  SUBCASE("kernel_attention, with key padding and broadcast keys") {
    Tensor padded = flags({0, 1, 0, 0}, {4});
    hgtest::gradcheck([&](const Tensors& t) { return hg::nn::kernel_attention(t[0], t[1], t[2], padded); },
                      {hgtest::uniform({2, 3, 2}, 0.1, 1, 32), hgtest::uniform({4, 2}, 0.1, 1, 33),
                       hgtest::uniform({4, 3}, -1, 1, 34)});
  }
  SUBCASE("linear attention (elu + 1), non-contiguous") {
    hgtest::gradcheck(
        [&](const Tensors& t) {
          return hg::nn::kernel_attention(hg::nn::elu_feature_map(t[0].transpose(0, 1)), hg::nn::elu_feature_map(t[1]),
                                          t[2]);
        },
        {hgtest::uniform({3, 4}, -1, 1, 35), hgtest::uniform({5, 3}, -1, 1, 36), hgtest::uniform({5, 2}, -1, 1, 37)});
  }
  SUBCASE("positive random features, query and key, and the projection") {
    for (bool is_query : {true, false}) {
      hgtest::gradcheck([&](const Tensors& t) { return hg::nn::positive_random_features(t[0], t[1], is_query); },
                        {hgtest::uniform({2, 3, 2}, -1, 1, 38), projection});
      hgtest::gradcheck(
          [&](const Tensors& t) { return hg::nn::positive_random_features(t[0].transpose(0, 1), t[1], is_query); },
          {hgtest::uniform({2, 3}, -1, 1, 39), projection});
    }
  }
  SUBCASE("FAVOR+ association end to end") {
    hgtest::gradcheck(
        [&](const Tensors& t) {
          return hg::nn::kernel_attention(hg::nn::positive_random_features(t[0], projection, true),
                                          hg::nn::positive_random_features(t[1], projection, false), t[2]);
        },
        {hgtest::uniform({3, 2}, -1, 1, 40), hgtest::uniform({4, 2}, -1, 1, 41), hgtest::uniform({4, 2}, -1, 1, 42)});
  }
  SUBCASE("relu random features") {
    hgtest::gradcheck([&](const Tensors& t) { return hg::nn::relu_random_features(t[0], t[1]); },
                      {hgtest::uniform({3, 2}, -1, 1, 43), projection});
  }
  SUBCASE("second derivatives") {
    hgtest::gradgradcheck(
        [&](const Tensors& t) {
          return hg::nn::kernel_attention(hg::nn::elu_feature_map(t[0]), hg::nn::elu_feature_map(t[1]), t[2]);
        },
        {hgtest::uniform({3, 2}, -1, 1, 44), hgtest::uniform({3, 2}, -1, 1, 45), hgtest::uniform({3, 2}, -1, 1, 46)});
    hgtest::gradgradcheck([&](const Tensors& t) { return hg::nn::positive_random_features(t[0], t[1], false); },
                          {hgtest::uniform({3, 2}, -1, 1, 47), projection});
  }
}

// ---- random features ---------------------------------------------------------------------------------------------

TEST_CASE("orthogonal_random_features stacks orthogonal blocks with Gaussian row norms") {
  const int64_t m = 10, d = 4;  // blocks of 4, 4 and the first 2 rows of a third
  hg::Generator gen(5);
  Tensor w = hg::nn::orthogonal_random_features(m, d, gen);
  CHECK(w.sizes() == hg::Shape{m, d});
  CHECK(w.dtype() == hg::kFloat32);
  std::vector<double> gram = hg::matmul(w, w.t()).to(hg::kFloat64).to_vector<double>();
  std::vector<double> norms2(m);
  for (int64_t r = 0; r < m; ++r) norms2[r] = gram[r * m + r];
  for (int64_t r = 0; r < m; ++r)
    for (int64_t s = 0; s < m; ++s)
      if (r != s && r / d == s / d) {  // same block: orthogonal (up to float32 rounding of the rows)
        CAPTURE(r);
        CAPTURE(s);
        CHECK(std::abs(gram[r * m + s]) <= 1e-5 * std::sqrt(norms2[r] * norms2[s]));
      }
  // Rows of different blocks are independent directions: not orthogonal in general.
  CHECK(std::abs(gram[0 * m + 4]) > 1e-3);
  // The same generator state gives the same matrix; the next draw another.
  hg::Generator again(5);
  CHECK(hg::allclose(hg::nn::orthogonal_random_features(m, d, again), w, 0, 0));
  CHECK(!hg::allclose(hg::nn::orthogonal_random_features(m, d, again), w));
  // Marginally ω ~ N(0, I_d): E‖ω‖² = d and E ω = 0 over many rows (4000 rows: standard errors 0.09 and 0.016).
  hg::Generator many(6);
  Tensor big = hg::nn::orthogonal_random_features(4000, 8, many).to(hg::kFloat64);
  CHECK(hg::mean(hg::sum(hg::square(big), {1})).item<double>() == doctest::Approx(8.0).epsilon(0.05));
  CHECK(hg::max(hg::abs(hg::mean(big, {0}))).item<double>() < 0.07);
  // m = 0 is an empty projection; m = d one full block.
  CHECK(hg::nn::orthogonal_random_features(0, 3, gen).sizes() == hg::Shape{0, 3});
  Tensor one = hg::nn::orthogonal_random_features(3, 3, gen).to(hg::kFloat64);
  Tensor directions = one / hg::norm(one, 2.0, {1}, true);
  hgtest::check_close(hg::matmul(directions, directions.t()), hg::eye(3, hg::kFloat64), 0, 1e-6, "one block");
}

TEST_CASE("positive random features estimate exp(x·y) without bias") {
  // φ_q(x)·φ_k(y) estimates exp(x·y − c_x − c_y); undoing the two shifts (recomputed here) leaves exp(x·y). Averaged
  // over 1000 independent orthogonal projections the mean must be within 4 standard errors of exp(x·y).
  Tensor x = f64({0.4, -0.3, 0.5, 0.2}, {1, 4}), y = f64({0.3, 0.6, -0.2, 0.4}, {1, 4});
  const double truth = std::exp(hg::sum(x * y).item<double>());
  const int64_t draws = 1000, m = 8;
  std::vector<double> estimates;
  for (int64_t s = 0; s < draws; ++s) {
    hg::Generator gen(1000 + s);
    Tensor w = hg::nn::orthogonal_random_features(m, 4, gen).to(hg::kFloat64);
    auto shift = [&](const Tensor& z) {
      return hg::max(hg::matmul(z, w.t()) - 0.5 * hg::sum(hg::square(z))).item<double>();
    };
    const double product =
        hg::sum(hg::nn::positive_random_features(x, w, true) * hg::nn::positive_random_features(y, w, false))
            .item<double>();
    estimates.push_back(product * std::exp(shift(x) + shift(y)));
  }
  double mean = 0, var = 0;
  for (double e : estimates) mean += e / draws;
  for (double e : estimates) var += (e - mean) * (e - mean) / (draws - 1);
  const double standard_error = std::sqrt(var / draws);
  CAPTURE(mean);
  CAPTURE(truth);
  CAPTURE(standard_error);
  CHECK(standard_error < 0.03 * truth);  // the test has the power to see a bias of a few percent
  CHECK(std::abs(mean - truth) < 4 * standard_error);
}

HG_BACKEND_TEST(favor_attention_approaches_softmax_attention_with_many_features) {
  // m = 8192 features for d = 4: the relative error of each kernel estimate is ~1/√m, so the association is within
  // a few 1e-3 of softmax attention; the error shrinks as m grows.
  Tensor q = hgtest::uniform({5, 4}, -0.6, 0.6, 51), k = hgtest::uniform({6, 4}, -0.6, 0.6, 52);
  Tensor v = hgtest::uniform({6, 3}, -1, 1, 53);
  Tensor want = hg::matmul(hg::softmax(hg::matmul(q, k.t()), -1), v);
  Tensors results;
  double previous = kInf;
  for (int64_t m : {32, 8192}) {
    hg::Generator gen(7);
    Tensor w = hg::nn::orthogonal_random_features(m, 4, gen, device).to(hg::kFloat64);
    Tensor got = hg::nn::kernel_attention(hg::nn::positive_random_features(q.to(device), w, true),
                                          hg::nn::positive_random_features(k.to(device), w, false), v.to(device));
    const double error = hg::max_abs_diff(got.cpu(), want);
    CAPTURE(m);
    CAPTURE(error);
    CHECK(error < previous);
    previous = error;
    results.push_back(got);
  }
  CHECK(previous < 0.02);
  return results;
}

// ---- long sequences ----------------------------------------------------------------------------------------------

TEST_CASE("window and linear attention at L = 50 000 never form the L x L matrix") {
  // The dense weights would take 50 000² · 4 B = 10 GB; forward and backward here stay far below 1 GB of peak
  // resident memory (ru_maxrss only grows, so an earlier, larger peak can only make this check easier to fail).
  const int64_t L = 50000, d = 8, w = 4;
  Tensor q = hgtest::uniform({L, d}, -1, 1, 61).to(hg::kFloat32).requires_grad_();
  Tensor k = hgtest::uniform({L, d}, -1, 1, 62).to(hg::kFloat32).requires_grad_();
  Tensor v = hgtest::uniform({L, d}, -1, 1, 63).to(hg::kFloat32).requires_grad_();
  const int64_t rss_before = peak_rss_bytes();
  const auto start = std::chrono::steady_clock::now();
  Tensor beta = hg::scalar_tensor(0.35);
  Tensor window = hg::nn::window_attention(q, k, v, w, beta);
  Tensor linear = hg::nn::kernel_attention(hg::nn::elu_feature_map(q), hg::nn::elu_feature_map(k), v);
  (window.sum() + linear.sum()).backward();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t growth = peak_rss_bytes() - rss_before;
  MESSAGE("L = 50000: window + linear attention, forward and backward, " << seconds << " s, peak RSS grew by "
                                                                         << growth / (1 << 20) << " MiB");
  CHECK(growth < (int64_t{1} << 30));
  CHECK(window.sizes() == hg::Shape{L, d});
  CHECK(q.grad().sizes() == hg::Shape{L, d});
  // Correctness on a stretch in the middle: rows [1000, 1040) see only keys [996, 1044).
  auto rows = [](const Tensor& t, int64_t start, int64_t n) { return t.detach().narrow(0, start, n); };
  Tensor part = hg::nn::window_attention(rows(q, 996, 48), rows(k, 996, 48), rows(v, 996, 48), w, beta);
  hgtest::check_close(rows(window, 1000, 40), part.narrow(0, 4, 40), 1e-5, 1e-6, "a stretch of the long window");
  // Linear attention for three queries from their O(S) rows of the weight matrix.
  Tensor pq = hg::nn::elu_feature_map(rows(q, 25000, 3)), pk = hg::nn::elu_feature_map(k.detach());
  hgtest::check_close(rows(linear, 25000, 3), quadratic_kernel_attention(pq, pk, v.detach(), {}), 1e-4, 1e-6,
                      "three rows of the long linear attention");
}

// ---- through Separation ------------------------------------------------------------------------------------------

TEST_CASE("Separation attends through the sub-quadratic paths") {
  using hg::nn::SeparationKind;
  using hg::nn::SeparationOptions;
  const int64_t B = 2, H = 2, L = 6, d = 4;
  Tensor q = hgtest::uniform({B, H, L, d}, -1, 1, 71).to(hg::kFloat32);
  Tensor k = hgtest::uniform({B, H, L, d}, -1, 1, 72).to(hg::kFloat32);
  Tensor v = hgtest::uniform({B, H, L, d}, -1, 1, 73).to(hg::kFloat32);
  Tensor beta = hg::from_vector<float>({0.5f, 1.5f}, {H, 1, 1});
  Tensor padded = flags({0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0}, {B, 1, 1, L});
  const double tol = 2e-5;

  SUBCASE("window: the band path, and the dense weights on request") {
    hg::nn::Separation sep(SeparationOptions(SeparationKind::Window).window(1));
    Tensor band;
    Tensor want = hg::nn::window_attention(q, k, v, 1, beta, padded, &band);
    hgtest::check_close(sep->attend(q, k, v, beta, padded), want, tol, tol, "attend");
    Tensor weights;
    hgtest::check_close(sep->attend(q, k, v, beta, padded, {}, 0.0, &weights), want, tol, tol, "dense path");
    hgtest::check_close(weights, band_to_dense(band, L), tol, tol, "weights_out");
    // Queries and keys of different lengths take the band path too.
    Tensor k9 = hgtest::uniform({9, d}, -1, 1, 74).to(hg::kFloat32),
           v9 = hgtest::uniform({9, 3}, -1, 1, 75).to(hg::kFloat32);
    Tensor one = hg::scalar_tensor(1.0);
    hgtest::check_close(sep->attend(q, k9, v9, one), dense_attention(q, k9, v9, one, band_exclusion(L, 9, 1)).out, tol,
                        tol, "L != S");
    // compat: the reference's window ignores β.
    hg::nn::Separation compat(SeparationOptions(SeparationKind::Window).window(1).compat(true));
    hgtest::check_close(compat->attend(q, k, v, beta), hg::nn::window_attention(q, k, v, 1, one), tol, tol, "compat");
  }
  SUBCASE("linear: elu + 1 features, β not used") {
    hg::nn::Separation sep(SeparationOptions(SeparationKind::Linear));
    Tensor pq = hg::nn::elu_feature_map(q), pk = hg::nn::elu_feature_map(k);
    Tensor want = hg::nn::kernel_attention(pq, pk, v, padded);
    Tensor weights;
    hgtest::check_close(sep->attend(q, k, v, beta, padded, {}, 0.0, &weights), want, tol, tol, "attend");
    Tensor a = hg::where(padded, 0.0, hg::matmul(pq, pk.transpose(-2, -1)));
    hgtest::check_close(weights, a / (hg::sum(a, {-1}, true) + 1e-6), tol, tol, "weights_out");
    hgtest::check_close(hg::matmul(weights, v), want, tol, tol, "weights_out · v");
  }
  SUBCASE("random features: FAVOR+ on β^½ q and β^½ k with the module's projection") {
    hg::nn::Separation sep(SeparationOptions(SeparationKind::RandomFeatures).feature_dim(d).num_features(12).seed(3));
    hg::Generator gen(3);
    CHECK(hg::allclose(sep->projection, hg::nn::orthogonal_random_features(12, d, gen), 0, 0));
    Tensor root = hg::sqrt(beta);
    Tensor want =
        hg::nn::kernel_attention(hg::nn::positive_random_features(q * root, sep->projection, true),
                                 hg::nn::positive_random_features(k * root, sep->projection, false, padded), v, padded);
    hgtest::check_close(sep->attend(q, k, v, beta, padded), want, tol, tol, "attend");
    // With many features the association approaches softmax attention (β applied).
    hg::nn::Separation wide(
        SeparationOptions(SeparationKind::RandomFeatures).feature_dim(d).num_features(8192).seed(4));
    Tensor small_q = q * 0.5, small_k = k * 0.5;
    Tensor softmax_attention = dense_attention(small_q, small_k, v, beta, padded).out;
    CHECK(hg::max_abs_diff(wide->attend(small_q, small_k, v, beta, padded), softmax_attention) < 0.03);
  }
  SUBCASE("relu features: the reference's 'favor' mode") {
    hg::nn::Separation sep(SeparationOptions(SeparationKind::ReluFeatures).feature_dim(d).num_features(9).seed(5));
    Tensor want = hg::nn::kernel_attention(hg::nn::relu_random_features(q, sep->projection),
                                           hg::nn::relu_random_features(k, sep->projection), v, padded);
    hgtest::check_close(sep->attend(q, k, v, beta, padded), want, tol, tol, "attend");
  }
  SUBCASE("padded keys do not matter, other masks are refused") {
    for (SeparationKind kind : {SeparationKind::Window, SeparationKind::Linear, SeparationKind::RandomFeatures,
                                SeparationKind::ReluFeatures}) {
      CAPTURE(hg::nn::to_string(kind));
      hg::nn::Separation sep(SeparationOptions(kind).window(2).feature_dim(d).num_features(8));
      // Changing the keys and values of padded positions leaves the output unchanged.
      Tensor noise = hg::where(padded.transpose(-2, -1), 5.0, hg::zeros({1}));
      Tensor weights;
      Tensor out = sep->attend(q, k, v, beta, padded, {}, 0.0, &weights);
      hgtest::check_close(sep->attend(q, k + noise, v + noise, beta, padded), out, tol, tol, "padded keys");
      // weights_out is the dense equivalent [B, H, L, S]: it reproduces the output and gives padded keys nothing.
      CHECK(weights.sizes() == hg::Shape{B, H, L, L});
      hgtest::check_close(hg::matmul(weights, v), out, tol, tol, "weights_out · v");
      CHECK(hg::sum(hg::abs(hg::where(padded, weights, 0.0))).item<float>() == 0.0f);
      if (kind != SeparationKind::Window)
        CHECK_THROWS_WITH_AS(sep->attend(q, k, v, beta, band_exclusion(L, L, 1)),
                             doctest::Contains("takes only a key padding mask"), hg::Error);
    }
  }
}

// ---- bad input ---------------------------------------------------------------------------------------------------

TEST_CASE("sub-quadratic association rejects bad input") {
  Tensor q = hg::ones({2, 4, 3}), k = hg::ones({2, 4, 3}), v = hg::ones({2, 4, 5}), beta = hg::scalar_tensor(1.0);
  using hg::nn::kernel_attention;
  using hg::nn::window_attention;
  CHECK_THROWS_WITH_AS(window_attention(q, hg::ones({2, 4, 2}), v, 1, beta),
                       doctest::Contains("window_attention: expected q [..., L, d], k [..., S, d], v [..., S, dv]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, hg::ones({2, 3, 5}), 1, beta),
                       doctest::Contains("got q [2, 4, 3], k [2, 4, 3], v [2, 3, 5]"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, -1, beta), doctest::Contains("window (the half-width w"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, 1, hg::ones({3})),
                       doctest::Contains("beta must be a scalar tensor or [..., 1, 1]"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, 1, Tensor()), doctest::Contains("beta must be a floating tensor"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k.to(hg::kFloat64), v, 1, beta),
                       doctest::Contains("must share one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, hg::ones({3, 4, 3}), hg::ones({3, 4, 5}), 1, beta),
                       doctest::Contains("window_attention: shapes [2] and [3] cannot be broadcast"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, 1, beta, hg::ones({2, 4}) > 0.0),
                       doctest::Contains("key_padding_mask must be [S] or [..., 1, S] with S = 4 keys"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, 1, beta, hg::ones({5}) > 0.0),
                       doctest::Contains("with S = 4 keys (true = padded key), got [5]"), hg::Error);
  CHECK_THROWS_WITH_AS(window_attention(q, k, v, 1, beta, hg::ones({4})),
                       doctest::Contains("key_padding_mask must be bool"), hg::Error);
  CHECK_THROWS_WITH_AS(kernel_attention(q, k, v, {}, -1.0), doctest::Contains("kernel_attention: eps must be >= 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(kernel_attention(q, hg::ones({2, 4, 2}), v),
                       doctest::Contains("kernel_attention: expected phi_q [..., L, d], phi_k [..., S, d]"), hg::Error);
  CHECK_THROWS_WITH_AS(kernel_attention(hg::ones({3}), k, v), doctest::Contains("got phi_q [3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::nn::positive_random_features(q, hg::ones({6, 2}), true),
                       doctest::Contains("positive_random_features: expected x [..., n, d] and projection [m, d], got "
                                         "x [2, 4, 3] and projection [6, 2]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::nn::relu_random_features(q, hg::ones({6, 3}, hg::kFloat64)),
                       doctest::Contains("relu_random_features: x and projection must share one floating dtype"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::nn::elu_feature_map(hg::ones({2}, hg::kInt64)),
                       doctest::Contains("elu_feature_map: x must be a floating tensor"), hg::Error);
  hg::Generator gen(1);
  CHECK_THROWS_WITH_AS(hg::nn::orthogonal_random_features(4, 0, gen),
                       doctest::Contains("need m >= 0 features of dimension d >= 1, got m = 4, d = 0"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::nn::window_mask(-1, 3, 1, hg::kCPU), doctest::Contains("window_mask: L, S and window"),
                       hg::Error);
}

TEST_CASE("FAVOR+: a padded key does not set the keys' stabiliser (it underflowed keys of large norm to 0)") {
  // Three keys of norm 20 and one zero key that is padding: exp(ω·k − ‖k‖²/2) is ~e^-150 for the real keys and 1 for
  // the zero key, so a stabiliser taken over all four flushed the real keys' features to 0 and the output with them.
  hg::nn::Separation sep(
      hg::nn::SeparationOptions(hg::nn::SeparationKind::RandomFeatures).feature_dim(4).num_features(64).seed(1));
  const hg::TensorOptions f32(hg::kFloat32);
  Tensor q = hg::from_vector<float>({5, 0, 0, 0}, {1, 4}, f32);
  Tensor k = hg::from_vector<float>({20, 0, 0, 0, 0, 20, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0}, {4, 4}, f32);
  Tensor v = hg::from_vector<float>({1, 2, 3, 100}, {4, 1}, f32);
  Tensor padding = hg::from_vector<bool>({false, false, false, true}, {1, 4}, hg::TensorOptions(hg::kBool));
  Tensor beta = hg::full({}, 1.0, f32);
  const Tensor padded = sep->attend(q, k, v, beta, padding);
  const Tensor without = sep->attend(q, k.narrow(0, 0, 3), v.narrow(0, 0, 3), beta);
  CHECK(without.item<float>() > 1.0f);
  hgtest::check_close(padded, without, 1e-5, 1e-6, "padded vs without the padded key");
}
