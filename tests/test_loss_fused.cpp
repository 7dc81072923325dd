// The fused cross_entropy kernels (ops/cpu/loss.cpp, ops/cuda/loss.cu) against cross entropy composed of ops
// (log_softmax, nll_loss and the smoothing sum: the composite the kernels replaced), values and gradients, and
// finite-difference gradient checks of the fused op.
#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "testing.h"

namespace {

using hg::Reduction;
using hg::Tensor;

// ℓ = (1 − ε)·nll(log_softmax(x)) + (ε/C)·(−Σ_c w_c·log_softmax(x)_c), each reduced as cross_entropy reduces.
Tensor composite_cross_entropy(const Tensor& x, const Tensor& target, const hg::CrossEntropyOptions& o) {
  const int64_t class_dim = x.dim() == 1 ? 0 : 1;
  Tensor log_probs = hg::log_softmax(x, class_dim);
  hg::NLLLossOptions nll_options = hg::NLLLossOptions().weight(o.weight_).ignore_index(o.ignore_index_);
  Tensor nll = hg::nll_loss(log_probs, target, nll_options.reduction(o.reduction_));
  if (o.label_smoothing_ == 0.0) return nll;
  hg::Shape along(static_cast<size_t>(x.dim() - class_dim), 1);
  along[0] = x.size(class_dim);
  Tensor weighted = o.weight_.defined() ? hg::mul(log_probs, o.weight_.reshape(along)) : log_probs;
  Tensor counted = hg::ne(target, static_cast<double>(o.ignore_index_));
  Tensor smooth = hg::where(counted, hg::neg(hg::sum(weighted, {class_dim})), 0.0);
  if (o.reduction_ == Reduction::Sum) smooth = hg::sum(smooth);
  if (o.reduction_ == Reduction::Mean) {
    // Mean's denominator: Σ w_t over counted targets (their number without weights), from nll with unit losses.
    Tensor ones = hg::zeros_like(log_probs);
    Tensor denominator = hg::nll_loss(hg::sub(ones, 1.0), target, nll_options.reduction(Reduction::Sum));
    smooth = hg::div(hg::sum(smooth), denominator);
  }
  return hg::add(hg::mul(nll, 1.0 - o.label_smoothing_),
                 hg::mul(smooth, o.label_smoothing_ / static_cast<double>(x.size(class_dim))));
}

struct Case {
  const char* name;
  hg::Shape logits_shape;
  bool weighted;
  int64_t ignore_index;  // a class that occurs (or -100: none ignored)
  double smoothing;
  double range = 3.0;  // logits uniform in [−range, range]
};
const Case kCases[] = {
    {"[N, C]", {6, 5}, false, -100, 0.0},
    {"[N, C] weighted, ignore_index", {6, 5}, true, 2, 0.0},
    {"[N, C] label smoothing", {6, 5}, false, -100, 0.3},
    {"[N, C] weighted, ignore_index, smoothing", {6, 5}, true, 1, 0.2},
    {"[N, C, d1, d2] weighted, smoothing", {2, 4, 3, 2}, true, 0, 0.1},
    {"[C] unbatched", {7}, false, -100, 0.25},
    // The CPU kernel takes rows of contiguous classes a block of ~2048 logits at a time, with scalar row loops
    // below 32 classes and vector ones from 32 on, and clamps shifted logits below float's exp range:
    {"[N, C] many blocks of rows", {700, 10}, true, 4, 0.1},
    {"[N, C] wide rows", {9, 40}, false, -100, 0.2},
    {"[N, C] rows longer than a block", {3, 2500}, true, 7, 0.1},
    {"[N, C] logits spread beyond exp's range", {40, 37}, false, -100, 0.0, 300.0},
};

Tensor targets_for(const Case& c) {
  hg::Shape target_shape = c.logits_shape;
  const int64_t classes = c.logits_shape.size() == 1 ? c.logits_shape[0] : c.logits_shape[1];
  if (c.logits_shape.size() == 1) target_shape = hg::Shape{};
  else target_shape.erase(1);
  hg::Generator gen(5);
  return hg::randint(0, classes, target_shape, hg::kInt64, &gen);
}

}  // namespace

HG_BACKEND_TEST(cross_entropy_fused_matches_composite) {
  hg::Tensors results;
  for (const Case& c : kCases) {
    for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
      for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
        CAPTURE(c.name);
        CAPTURE(dtype);
        CAPTURE(static_cast<int>(r));
        const int64_t classes = c.logits_shape.size() == 1 ? c.logits_shape[0] : c.logits_shape[1];
        Tensor x = hgtest::uniform(c.logits_shape, -c.range, c.range, 21).to(device, dtype).requires_grad_();
        Tensor xr = x.detach().clone().requires_grad_();
        Tensor target = targets_for(c).to(device);
        hg::CrossEntropyOptions o;
        o.ignore_index(c.ignore_index).label_smoothing(c.smoothing).reduction(r);
        if (c.weighted) o.weight(hgtest::uniform({classes}, 0.2, 2.0, 9).to(device, dtype));
        Tensor fused = hg::cross_entropy(x, target, o), reference = composite_cross_entropy(xr, target, o);
        const double rtol = dtype == hg::kFloat32 ? 2e-5 : 1e-12, atol = dtype == hg::kFloat32 ? 2e-6 : 1e-13;
        hgtest::check_close(fused, reference, rtol, atol);
        Tensor upstream = hgtest::uniform(fused.sizes(), 0.5, 1.5, 4).to(device, dtype);
        hg::sum(hg::mul(fused, upstream)).backward();
        hg::sum(hg::mul(reference, upstream)).backward();
        hgtest::check_close(x.grad(), xr.grad(), rtol, atol);
        results.push_back(fused.detach());
        results.push_back(x.grad());
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(cross_entropy_fused_dead_rows_nan_and_ignored) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  hg::Tensors results;
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    CAPTURE(dtype);
    // Row 0 all −inf (loss 0, gradient 0, as log_softmax's zeros give), row 1 holds NaN (NaN loss), row 2 is
    // ignored although it holds NaN (loss 0, gradient 0), row 3 is an ordinary row with a −inf entry.
    Tensor x = hg::from_vector<double>({-inf, -inf, -inf, 0.5, nan, 1.0, nan, 0.0, 0.0, 2.0, -inf, 1.0}, {4, 3})
                   .to(device, dtype)
                   .requires_grad_();
    Tensor target = hg::from_vector<int64_t>({1, 0, -100, 2}, {4}).to(device);
    Tensor loss = hg::cross_entropy(x, target, Reduction::None);
    std::vector<double> l = loss.cpu().to(hg::kFloat64).to_vector<double>();
    CHECK(l[0] == 0.0);
    CHECK(std::isnan(l[1]));
    CHECK(l[2] == 0.0);
    CHECK(l[3] == doctest::Approx(std::log(std::exp(2.0) + std::exp(1.0)) - 1.0));
    hg::sum(hg::mul(loss, hg::from_vector<double>({1, 0, 1, 1}, {4}).to(device, dtype))).backward();
    std::vector<double> g = x.grad().cpu().to(hg::kFloat64).to_vector<double>();
    for (int i = 0; i < 3; ++i) CHECK(g[i] == 0.0);
    for (int i = 6; i < 9; ++i) CHECK(g[i] == 0.0);
    const double p0 = std::exp(2.0) / (std::exp(2.0) + std::exp(1.0));
    CHECK(g[9] == doctest::Approx(p0));
    CHECK(g[10] == 0.0);
    CHECK(g[11] == doctest::Approx(1.0 - p0 - 1.0));
    results.push_back(loss.detach().narrow(0, 2, 2));  // the rows without NaN
    results.push_back(x.grad().narrow(0, 2, 2));
  }
  return results;
}

TEST_CASE("gradcheck: fused cross_entropy (weights, ignore_index, smoothing, spatial, non-contiguous logits)") {
  Tensor target = hg::from_vector<int64_t>({0, 3, 1, 3, 2}, {5});
  Tensor weight = hgtest::uniform({4}, 0.5, 2.0, 3);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    CAPTURE(static_cast<int>(r));
    hg::CrossEntropyOptions o = hg::CrossEntropyOptions().reduction(r).ignore_index(3).label_smoothing(0.2);
    // logits [5, 4] passed as the transpose of a [4, 5] leaf: a non-contiguous input
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0].transpose(0, 1), target, o); },
                      {hgtest::uniform({4, 5}, -2.0, 2.0, 8)});
    hgtest::gradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], target, o.weight(weight)); },
                      {hgtest::uniform({5, 4}, -2.0, 2.0, 9)});
  }
  Tensor spatial_target = hg::from_vector<int64_t>({0, 2, 1, 2, 0, 1}, {2, 3});
  hgtest::gradcheck(
      [&](const hg::Tensors& t) {
        return hg::cross_entropy(t[0], spatial_target, hg::CrossEntropyOptions().label_smoothing(0.1).weight(weight.narrow(0, 0, 3)));
      },
      {hgtest::uniform({2, 3, 3}, -2.0, 2.0, 10)});
}

TEST_CASE("gradgradcheck: fused cross_entropy (create_graph takes the gradient written with ops)") {
  Tensor target = hg::from_vector<int64_t>({0, 2, 1, 2}, {4});
  Tensor weight = hgtest::uniform({3}, 0.5, 2.0, 3);
  hgtest::gradgradcheck(
      [&](const hg::Tensors& t) {
        return hg::cross_entropy(t[0], target, hg::CrossEntropyOptions().weight(weight).ignore_index(1).label_smoothing(0.3));
      },
      {hgtest::uniform({4, 3}, -2.0, 2.0, 12)});
  hgtest::gradgradcheck([&](const hg::Tensors& t) { return hg::cross_entropy(t[0], target, Reduction::Sum); },
                        {hgtest::uniform({4, 3}, -2.0, 2.0, 13)});
}

TEST_CASE("cross_entropy with a class weight that requires grad differentiates in the weight too") {
  Tensor target = hg::from_vector<int64_t>({0, 2, 1, 2}, {4});
  hgtest::gradcheck(
      [&](const hg::Tensors& t) {
        return hg::cross_entropy(t[0], target, hg::CrossEntropyOptions().weight(t[1]).label_smoothing(0.2));
      },
      {hgtest::uniform({4, 3}, -2.0, 2.0, 14), hgtest::uniform({3}, 0.5, 2.0, 15)});
}

TEST_CASE("cross_entropy: a class weight written in place after the forward is refused at backward, as PyTorch") {
  // The fused backward read the weight again: a class-weight schedule updated before backward silently scaled
  // the gradient (10× here) while the forward's per-target weights stayed.
  for (bool create_graph : {false, true}) {
    CAPTURE(create_graph);
    Tensor x = hg::zeros({2, 3}, hg::kFloat64).requires_grad_();
    Tensor target = hg::from_vector<int64_t>({0, 2}, {2});
    Tensor w = hg::from_vector<double>({1, 2, 3}, {3});
    Tensor loss = hg::cross_entropy(x, target, hg::CrossEntropyOptions().weight(w));
    w.mul_(10.0);
    CHECK_THROWS_WITH_AS(hg::grad({loss}, {x}, {}, /*retain_graph=*/false, create_graph),
                         doctest::Contains("backward of 'cross_entropy': a tensor it saved"), hg::Error);
  }
}

TEST_CASE("cross_entropy: label smoothing over a million classes in float32 stays within float32's rounding") {
  // The smoothing term sums over every class; a float32 running sum drifted by ~3e-4 relative at C = 10⁶.
  const int64_t C = 1000003;
  hg::Tensor logits = hgtest::uniform({1, C}, -3, 3, 21);
  hg::Tensor target = hg::from_vector<int64_t>({C / 3}, {1}, hg::kInt64);
  hg::CrossEntropyOptions options;
  options.label_smoothing(0.3);
  const double expected = hg::cross_entropy(logits, target, options).item<double>();
  const double got = hg::cross_entropy(logits.to(hg::kFloat32), target, options).item<float>();
  CHECK(std::abs(got - expected) <= 1e-5 * std::abs(expected));
}
