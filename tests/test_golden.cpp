// Golden tests: composite expressions and all their gradients against PyTorch's float64 values, read from
// tests/fixtures/ (written by scripts/make_fixtures.py, which documents each fixture). Every body rebuilds the
// computation with hopgrad ops from the fixture's inputs, once in float64 (tight tolerance: only rounding may
// differ) and once in float32 (inputs rounded to float32, compared with the same float64 reference).
#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>
#include <utility>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;

namespace {

/// |got − expected| ≤ atol·max|expected| + rtol·|expected| elementwise: atol is relative to the tensor's scale,
/// so small gradients of a mean loss are held to the same standard as large activations.
struct Tolerance {
  double rtol;
  double atol;
};

// float64 may differ from PyTorch only by summation order and libm rounding (observed: ≤ 2e-15 of the scale).
// float32 also starts from rounded inputs, and sums with cancellation (cross-entropy's softmax − one-hot) lose
// a few more digits (observed: ≤ 6e-6 of the scale). A wrong formula is off by far more than either bound.
Tolerance tolerance_for(hg::DType dtype) {
  return dtype == hg::kFloat64 ? Tolerance{1e-11, 1e-13} : Tolerance{1e-4, 5e-5};
}

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// One run of a fixture's computation on a device in a dtype: hands out its inputs, compares results with the
/// fixture's values, and checks at the end that every stored tensor was used or compared.
class GoldenRun {
 public:
  GoldenRun(const hgtest::Fixture& fixture, hg::Device device, hg::DType dtype)
      : fixture_(fixture), device_(device), dtype_(dtype), tolerance_(tolerance_for(dtype)) {}

  /// A floating input as a leaf that requires grad, in the run's dtype and on its device.
  Tensor leaf(const std::string& name) { return input(name).requires_grad_(); }
  /// A floating input that needs no gradient (targets, weights of a loss).
  Tensor input(const std::string& name) { return take(name).to(device_, dtype_); }
  /// An int64 or bool input (class labels, masks), dtype kept.
  Tensor labels(const std::string& name) { return take(name).to(device_); }
  /// Hyperparameters stored as 0-dim tensors.
  double number(const std::string& name) {
    used_.insert(name);
    return fixture_.number(name);
  }
  int64_t integer(const std::string& name) {
    used_.insert(name);
    return fixture_.integer(name);
  }

  /// Compares `got` with the fixture's tensor `name` (exactly for int64/bool) and keeps it for the CPU/CUDA
  /// comparison.
  void expect(const std::string& name, const Tensor& got) {
    Tensor expected = take(name);
    std::string what = fixture_.origin() + ": " + name + " (" + std::string(hg::dtype_name(dtype_)) + " on " +
                       device_.str() + ")";
    REQUIRE_MESSAGE(got.defined(), what << " is undefined");
    if (!hg::is_floating(expected.dtype())) {
      CHECK_MESSAGE(got.dtype() == expected.dtype(), what << ": dtype " << hg::dtype_name(got.dtype()));
      hgtest::check_close(got, expected, 0.0, 0.0, what);
    } else {
      CHECK_MESSAGE(got.dtype() == dtype_, what << ": dtype " << hg::dtype_name(got.dtype()));
      double scale = 0.0;
      for (double e : expected.to_vector<double>()) scale = std::max(scale, std::abs(e));
      hgtest::check_close(got, expected, tolerance_.rtol, tolerance_.atol * scale, what);
    }
    results_.push_back(got.detach());
  }

  /// Compares ∂(Σ grad_<output> ⊙ output)/∂input (plain ∂output/∂input for a scalar output) for every input with
  /// the fixture's `d<output>/d<input>`. The graph is retained, so a later backward may reuse it.
  void expect_gradients(const std::string& output_name, const Tensor& output, const NamedTensors& inputs) {
    hg::Tensors upstream;
    if (output.dim() > 0) upstream.push_back(input("grad_" + output_name));
    hg::Tensors wrt;
    for (const auto& [name, t] : inputs) wrt.push_back(t);
    hg::Tensors grads = hg::grad({output}, wrt, upstream, /*retain_graph=*/true);
    for (size_t i = 0; i < inputs.size(); ++i) expect("d" + output_name + "/d" + inputs[i].first, grads[i]);
  }

  /// Checks that nothing in the fixture went unused, and returns every compared result.
  hg::Tensors finish() {
    for (const auto& name : fixture_.names())
      CHECK_MESSAGE(used_.count(name), fixture_.origin() << ": tensor '" << name << "' is neither used nor checked");
    return std::move(results_);
  }

 private:
  Tensor take(const std::string& name) {
    used_.insert(name);
    return fixture_.tensor(name);
  }

  const hgtest::Fixture& fixture_;
  hg::Device device_;
  hg::DType dtype_;
  Tolerance tolerance_;
  std::set<std::string> used_;
  hg::Tensors results_;
};

/// Runs `body` on the fixture in float64 and float32 and collects every compared tensor.
hg::Tensors run_golden(const std::string& fixture_name, hg::Device device,
                       const std::function<void(GoldenRun&)>& body) {
  hgtest::Fixture fixture = hgtest::Fixture::load(fixture_name);
  hg::Tensors all;
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    std::string_view dtype_name = hg::dtype_name(dtype);
    CAPTURE(dtype_name);  // names the run when an op throws
    GoldenRun run(fixture, device, dtype);
    body(run);
    for (auto& t : run.finish()) all.push_back(std::move(t));
  }
  return all;
}

}  // namespace

HG_BACKEND_TEST(golden_mlp_training_step) {
  return run_golden("mlp_training_step", device, [](GoldenRun& run) {
    Tensor x = run.leaf("x"), W1 = run.leaf("W1"), b1 = run.leaf("b1"), W2 = run.leaf("W2"), b2 = run.leaf("b2");
    const NamedTensors params = {{"W1", W1}, {"b1", b1}, {"W2", W2}, {"b2", b2}};
    // logits = W2 relu(W1 x + b1) + b2;  loss = cross_entropy(logits, target)
    Tensor logits = hg::linear(hg::relu(hg::linear(x, W1, b1)), W2, b2);
    Tensor loss = hg::cross_entropy(logits, run.labels("target"));
    run.expect("logits", logits);
    run.expect("loss", loss);
    NamedTensors wrt = params;
    wrt.insert(wrt.begin(), {"x", x});
    run.expect_gradients("loss", loss, wrt);

    // One SGD step p ← p − lr ∂loss/∂p, from the gradients backward() accumulates into the parameters.
    loss.backward();
    double lr = run.number("lr");
    hg::NoGradGuard no_grad;
    for (const auto& [name, p] : params) {
      p.add_(p.grad(), -lr);
      run.expect("sgd_" + name, p);
    }
  });
}

HG_BACKEND_TEST(golden_attention) {
  return run_golden("attention", device, [](GoldenRun& run) {
    Tensor q = run.leaf("q"), k = run.leaf("k"), v = run.leaf("v");
    Tensor mask = run.labels("mask");  // [B, 1, T, S], true = masked
    const int64_t heads = run.integer("heads"), head_dim = q.size(2) / heads;
    // [B, L, H·d] → [B, H, L, d]
    auto split_heads = [&](const Tensor& t) {
      return t.reshape({t.size(0), t.size(1), heads, head_dim}).permute({0, 2, 1, 3});
    };
    // attn = softmax(QKᵀ/√d with masked scores at −∞);  out = attn·V with the heads merged back
    Tensor scores = hg::matmul(split_heads(q), split_heads(k).transpose(-2, -1)) / std::sqrt(double(head_dim));
    Tensor attn = hg::softmax(hg::masked_fill(scores, mask, -INFINITY), -1);
    Tensor out = hg::matmul(attn, split_heads(v)).permute({0, 2, 1, 3}).reshape({q.size(0), q.size(1), q.size(2)});
    run.expect("attn", attn);
    run.expect("out", out);
    run.expect_gradients("out", out, {{"q", q}, {"k", k}, {"v", v}});
  });
}

HG_BACKEND_TEST(golden_layer_norm_chain) {
  return run_golden("layer_norm_chain", device, [](GoldenRun& run) {
    Tensor x = run.leaf("x"), ln1_weight = run.leaf("ln1_weight"), ln1_bias = run.leaf("ln1_bias");
    Tensor W = run.leaf("W"), b = run.leaf("b"), ln2_weight = run.leaf("ln2_weight"), ln2_bias = run.leaf("ln2_bias");
    double eps = run.number("eps");
    // y = LN₂(W gelu(LN₁(x)) + b), LN₁ over the last dim and LN₂ over the last two;  loss = Σ y²
    Tensor y = hg::layer_norm(x, {x.size(-1)}, ln1_weight, ln1_bias, eps);
    y = hg::linear(hg::gelu(y), W, b);
    y = hg::layer_norm(y, ln2_weight.sizes(), ln2_weight, ln2_bias, eps);
    Tensor loss = hg::sum(hg::square(y));
    run.expect("y", y);
    run.expect("loss", loss);
    run.expect_gradients("loss", loss,
                         {{"x", x}, {"ln1_weight", ln1_weight}, {"ln1_bias", ln1_bias}, {"W", W}, {"b", b},
                          {"ln2_weight", ln2_weight}, {"ln2_bias", ln2_bias}});
  });
}

HG_BACKEND_TEST(golden_deeprc_chain) {
  return run_golden("deeprc_chain", device, [](GoldenRun& run) {
    Tensor x = run.leaf("x");  // [N, 23, L]: one-hot amino acids and position features
    Tensor conv_weight = run.leaf("conv_weight"), conv_bias = run.leaf("conv_bias");
    Tensor W = run.leaf("W"), b = run.leaf("b");
    // logits = W maxₗ selu(conv1d(x)) + b;  probs = σ(logits);  loss = BCE-with-logits(logits, target, pos_weight)
    Tensor features = hg::selu(hg::conv1d(x, conv_weight, conv_bias));
    Tensor logits = hg::linear(std::get<0>(hg::max(features, 2)), W, b);
    Tensor loss = hg::binary_cross_entropy_with_logits(logits, run.input("target"), hg::Reduction::Mean,
                                                       run.input("pos_weight"));
    run.expect("logits", logits);
    run.expect("probs", hg::sigmoid(logits));
    run.expect("loss", loss);
    run.expect_gradients("loss", loss,
                         {{"x", x}, {"conv_weight", conv_weight}, {"conv_bias", conv_bias}, {"W", W}, {"b", b}});
  });
}

HG_BACKEND_TEST(golden_hopfield_retrieval) {
  return run_golden("hopfield_retrieval", device, [](GoldenRun& run) {
    Tensor X = run.leaf("X"), xi = run.leaf("xi");  // stored patterns [d, N], state patterns [d, M] as columns
    const double beta = run.number("beta");
    const int64_t steps = run.integer("steps");
    // ξ ← X softmax(β Xᵀ ξ), softmax over the stored patterns (Ramsauer et al. 2020, eq. 3)
    Tensor state = xi;
    for (int64_t step = 0; step < steps; ++step)
      state = hg::matmul(X, hg::softmax(hg::matmul(beta * X.t(), state), 0));
    run.expect("xi_new", state);
    run.expect_gradients("xi_new", state, {{"X", X}, {"xi", xi}});
  });
}

HG_BACKEND_TEST(golden_classification_losses) {
  return run_golden("classification_losses", device, [](GoldenRun& run) {
    Tensor logits = run.leaf("logits"), target = run.labels("target");
    Tensor spatial_logits = run.leaf("spatial_logits"), spatial_target = run.labels("spatial_target");
    const int64_t ignore_index = run.integer("ignore_index");
    const double smoothing = run.number("label_smoothing");
    // nll = −mean over kept rows of log_softmax(logits)[target];  ce_smooth mixes in ε·mean over classes
    Tensor log_probs = hg::log_softmax(logits, 1);
    Tensor nll = hg::nll_loss(log_probs, target, hg::Reduction::Mean, ignore_index);
    Tensor nll_none = hg::nll_loss(log_probs, target, hg::Reduction::None, ignore_index);
    Tensor ce_smooth = hg::cross_entropy(logits, target, hg::Reduction::Mean, ignore_index, smoothing);
    Tensor ce_spatial = hg::cross_entropy(spatial_logits, spatial_target, hg::Reduction::Sum, ignore_index, smoothing);
    run.expect("log_probs", log_probs);
    run.expect("nll", nll);
    run.expect("nll_none", nll_none);
    run.expect("ce_smooth", ce_smooth);
    run.expect("ce_spatial", ce_spatial);
    run.expect_gradients("nll", nll, {{"logits", logits}});
    run.expect_gradients("ce_smooth", ce_smooth, {{"logits", logits}});
    run.expect_gradients("ce_spatial", ce_spatial, {{"spatial_logits", spatial_logits}});
  });
}

HG_BACKEND_TEST(golden_reductions_chain) {
  return run_golden("reductions_chain", device, [](GoldenRun& run) {
    Tensor x = run.leaf("x");
    const int64_t k = run.integer("k");
    Tensor cumsum = hg::cumsum(x, 1);
    auto [topk, topk_indices] = hg::topk(x, k, 1);
    auto [median, median_indices] = hg::median(x, 1);  // the lower middle value of an even-length row
    NamedTensors results = {{"cumsum", cumsum},
                            {"logsumexp", hg::logsumexp(cumsum, {1})},
                            {"norm", hg::norm(cumsum)},
                            {"var", hg::var(x, {0}, /*unbiased=*/true)},
                            {"topk", topk},
                            {"median", median}};
    for (const auto& [name, result] : results) {
      run.expect(name, result);
      run.expect_gradients(name, result, {{"x", x}});
    }
    run.expect("topk_indices", topk_indices);
    run.expect("median_indices", median_indices);
  });
}

TEST_CASE("golden: the fixture reader parses exact values and rejects malformed files") {
  auto fixture = hgtest::Fixture::parse(
      "# a comment line\n"
      "tensor a float64 2 2 2\n0.1 -2.5e-300\ninf -0.0\n"
      "tensor n int64 0\n-7\n"
      "tensor m bool 1 3\n1 0 1\n",
      "inline");
  CHECK(fixture.names() == std::vector<std::string>{"a", "n", "m"});
  auto a = fixture.tensor("a");
  CHECK(a.dtype() == hg::kFloat64);
  CHECK(a.sizes() == hg::Shape{2, 2});
  CHECK(a.to_vector<double>() == std::vector<double>{0.1, -2.5e-300, INFINITY, -0.0});
  CHECK(fixture.integer("n") == -7);
  CHECK(fixture.tensor("m").to(hg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});

  auto parse = [](const std::string& text) { return hgtest::Fixture::parse(text, "inline"); };
  CHECK_THROWS_WITH_AS(parse("tensor a float64 1 3\n1 2\n"), doctest::Contains("ends where a value of 'a'"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensor a float16 1 1\n1\n"), doctest::Contains("unknown dtype 'float16'"), hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensor a int64 1 1\n1.5\n"), doctest::Contains("inline:2: expected a value of 'a'"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensor a bool 1 1\n2\n"), doctest::Contains("bool values are 0 or 1"), hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensor a int64 0\n1\ntensor a int64 0\n2\n"), doctest::Contains("appears twice"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensr a int64 0\n1\n"), doctest::Contains("expected 'tensor', got 'tensr'"), hg::Error);
  CHECK_THROWS_WITH_AS(parse("tensor a int64 1 -1\n"), doctest::Contains("negative size"), hg::Error);
  CHECK_THROWS_WITH_AS(fixture.tensor("b"), doctest::Contains("no tensor 'b'; it has a, n, m"), hg::Error);
  CHECK_THROWS_WITH_AS(fixture.number("n"), doctest::Contains("expected a 0-dim float64"), hg::Error);
  CHECK_THROWS_WITH_AS(hgtest::Fixture::load("no_such_fixture"), doctest::Contains("cannot open"), hg::Error);
}
