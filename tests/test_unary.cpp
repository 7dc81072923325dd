// Elementwise unary ops and whole-tensor comparisons: values against PyTorch (float64 references printed by
// torch 1.13), gradients against finite differences, both CPU kernel paths (vectorised loops with libmvec,
// oneDNN sqrt above its size threshold) against float64, strided and in-place outputs, dtype rules, errors.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <vector>

#include <hopgrad/ops/backend.h>

#include "testing.h"

using hg::Tensor;
using hg::Tensors;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor f64(const std::vector<double>& v) {
  return hg::from_vector<double>(v, {static_cast<int64_t>(v.size())}, hg::kFloat64);
}
Tensor i64(const std::vector<int64_t>& v) {
  return hg::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())}, hg::kInt64);
}

// One differentiable op with the input range where its gradient is smooth (kinks are hit with probability ~0).
struct OpCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  double lo, hi;
};

std::vector<OpCase> differentiable_ops() {
  return {
      {"neg", [](const Tensor& x) { return hg::neg(x); }, -2, 2},
      {"abs", [](const Tensor& x) { return hg::abs(x); }, -2, 2},
      {"exp", [](const Tensor& x) { return hg::exp(x); }, -2, 2},
      {"log", [](const Tensor& x) { return hg::log(x); }, 0.5, 3},
      {"log1p", [](const Tensor& x) { return hg::log1p(x); }, -0.5, 3},
      {"expm1", [](const Tensor& x) { return hg::expm1(x); }, -2, 2},
      {"sqrt", [](const Tensor& x) { return hg::sqrt(x); }, 0.5, 3},
      {"rsqrt", [](const Tensor& x) { return hg::rsqrt(x); }, 0.5, 3},
      {"reciprocal", [](const Tensor& x) { return hg::reciprocal(x); }, 0.5, 3},
      {"sin", [](const Tensor& x) { return hg::sin(x); }, -3, 3},
      {"cos", [](const Tensor& x) { return hg::cos(x); }, -3, 3},
      {"tanh", [](const Tensor& x) { return hg::tanh(x); }, -2, 2},
      {"sigmoid", [](const Tensor& x) { return hg::sigmoid(x); }, -3, 3},
      {"erf", [](const Tensor& x) { return hg::erf(x); }, -2, 2},
      {"square", [](const Tensor& x) { return hg::square(x); }, -2, 2},
      {"relu", [](const Tensor& x) { return hg::relu(x); }, -2, 2},
      {"gelu", [](const Tensor& x) { return hg::gelu(x); }, -3, 3},
      {"gelu(tanh)", [](const Tensor& x) { return hg::gelu(x, "tanh"); }, -3, 3},
      {"selu", [](const Tensor& x) { return hg::selu(x); }, -2, 2},
      {"elu", [](const Tensor& x) { return hg::elu(x, 0.7); }, -2, 2},
      {"softplus", [](const Tensor& x) { return hg::softplus(x); }, -3, 3},
      // β = 2, threshold = 1: both branches (linear above x = 0.5) are exercised
      {"softplus(β=2, threshold=1)", [](const Tensor& x) { return hg::softplus(x, 2.0, 1.0); }, -2, 2},
      {"clamp", [](const Tensor& x) { return hg::clamp(x, -0.5, 0.7); }, -2, 2},
      {"clamp_min", [](const Tensor& x) { return hg::clamp_min(x, 0.2); }, -2, 2},
      {"clamp_max", [](const Tensor& x) { return hg::clamp_max(x, -0.3); }, -2, 2},
  };
}

}  // namespace

// ---- values ---------------------------------------------------------------------------------------

HG_BACKEND_TEST(unary_values_match_pytorch) {
  Tensor x = f64({-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0}).to(device);
  Tensor pos = f64({0.25, 1.0, 2.0, 4.0}).to(device);
  struct Expected {
    const char* name;
    Tensor got;
    std::vector<double> want;
  };
  std::vector<Expected> cases = {
      {"gelu", hg::gelu(x),
       {-0.04550026389635842, -0.15865525393145702, -0.15426876936299344, 0.0, 0.34573123063700656,
        0.841344746068543, 1.9544997361036416}},
      {"gelu(tanh)", hg::gelu(x, "tanh"),
       {-0.04540230591222494, -0.15880800939172324, -0.15428599017485606, 0.0, 0.34571400982514394,
        0.8411919906082768, 1.954597694087775}},
      {"selu", hg::selu(x),
       {-1.5201664685956948, -1.1113307378125628, -0.6917581878028713, 0.0, 0.5253504936777402,
        1.0507009873554805, 2.101401974710961}},
      {"elu(0.5)", hg::elu(x, 0.5),
       {-0.43233235838169365, -0.31606027941427883, -0.1967346701436833, 0.0, 0.5, 1.0, 2.0}},
      {"softplus", hg::softplus(x),
       {0.1269280110429725, 0.31326168751822286, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067,
        1.3132616875182228, 2.1269280110429727}},
      {"softplus(β=2, threshold=1)", hg::softplus(x, 2.0, 1.0),
       {0.009074963958904869, 0.06346400552148625, 0.15663084375911143, 0.34657359027997264, 0.6566308437591114,
        1.0, 2.0}},
      {"sigmoid", hg::sigmoid(x),
       {0.11920292202211755, 0.2689414213699951, 0.3775406687981454, 0.5, 0.6224593312018546, 0.7310585786300049,
        0.8807970779778823}},
      {"tanh", hg::tanh(x),
       {-0.9640275800758169, -0.7615941559557649, -0.46211715726000974, 0.0, 0.46211715726000974,
        0.7615941559557649, 0.9640275800758169}},
      {"erf", hg::erf(x),
       {-0.9953222650189527, -0.8427007929497149, -0.5204998778130465, 0.0, 0.5204998778130465,
        0.8427007929497149, 0.9953222650189527}},
      {"expm1", hg::expm1(x),
       {-0.8646647167633873, -0.6321205588285577, -0.3934693402873666, 0.0, 0.6487212707001282,
        1.7182818284590453, 6.38905609893065}},
      {"sin", hg::sin(x),
       {-0.9092974268256817, -0.8414709848078965, -0.479425538604203, 0.0, 0.479425538604203, 0.8414709848078965,
        0.9092974268256817}},
      {"cos", hg::cos(x),
       {-0.4161468365471424, 0.5403023058681398, 0.8775825618903728, 1.0, 0.8775825618903728, 0.5403023058681398,
        -0.4161468365471424}},
      {"exp", hg::exp(x),
       {0.1353352832366127, 0.36787944117144233, 0.6065306597126334, 1.0, 1.6487212707001282, 2.718281828459045,
        7.38905609893065}},
      {"neg", hg::neg(x), {2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0}},
      {"abs", hg::abs(x), {2.0, 1.0, 0.5, 0.0, 0.5, 1.0, 2.0}},
      {"sign", hg::sign(x), {-1, -1, -1, 0, 1, 1, 1}},
      {"square", hg::square(x), {4.0, 1.0, 0.25, 0.0, 0.25, 1.0, 4.0}},
      {"relu", hg::relu(x), {0, 0, 0, 0, 0.5, 1.0, 2.0}},
      {"clamp", hg::clamp(x, -0.5, 1.0), {-0.5, -0.5, -0.5, 0.0, 0.5, 1.0, 1.0}},
      {"log", hg::log(pos), {-1.3862943611198906, 0.0, 0.6931471805599453, 1.3862943611198906}},
      {"log1p", hg::log1p(pos), {0.22314355131420976, 0.6931471805599453, 1.0986122886681098, 1.6094379124341003}},
      {"sqrt", hg::sqrt(pos), {0.5, 1.0, 1.4142135623730951, 2.0}},
      {"rsqrt", hg::rsqrt(pos), {2.0, 1.0, 0.7071067811865475, 0.5}},
      {"reciprocal", hg::reciprocal(pos), {4.0, 1.0, 0.5, 0.25}},
  };
  Tensors results;
  for (const auto& c : cases) {
    hgtest::check_close(c.got, f64(c.want), 1e-13, 1e-15, std::string(c.name) + " float64");
    results.push_back(c.got);
  }
  // The same in float32: within a few float32 ulp of the float64 references.
  Tensor x32 = x.to(hg::kFloat32);
  hgtest::check_close(hg::gelu(x32), hg::gelu(x), 1e-6, 1e-7, "gelu float32");
  hgtest::check_close(hg::gelu(x32, "tanh"), hg::gelu(x, "tanh"), 1e-6, 1e-7, "gelu(tanh) float32");
  hgtest::check_close(hg::selu(x32), hg::selu(x), 1e-6, 1e-7, "selu float32");
  hgtest::check_close(hg::sigmoid(x32), hg::sigmoid(x), 1e-6, 1e-7, "sigmoid float32");
  // The brief's anchors, and softplus far out on both sides (linear above the threshold, e^x below).
  CHECK(hg::sigmoid(hg::zeros({1}, hg::TensorOptions(device))).item<float>() == 0.5f);
  hgtest::check_close(hg::softplus(f64({30.0, -30.0}).to(device)), f64({30.0, 9.357622968839737e-14}), 1e-12, 0);
  results.push_back(hg::gelu(x32));
  results.push_back(hg::selu(x32));

  // Gradients at the same points, against torch.autograd.
  struct ExpectedGrad {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    std::vector<double> want;
  };
  std::vector<ExpectedGrad> grads = {
      {"gelu", [](const Tensor& t) { return hg::gelu(t); },
       {-0.08523180107819692, -0.08331547058768635, 0.13250487534383712, 0.5, 0.8674951246561629, 1.0833154705876864,
        1.085231801078197}},
      {"gelu(tanh)", [](const Tensor& t) { return hg::gelu(t, "tanh"); },
       {-0.0860992566236183, -0.08296408384578252, 0.13263009646535764, 0.5, 0.8673699035346424, 1.0829640838457826,
        1.0860992566236183}},
      {"selu", [](const Tensor& t) { return hg::selu(t); },
       {0.2379328722516818, 0.646768603034814, 1.0663411530445053, 1.7580993408473766, 1.0507009873554805,
        1.0507009873554805, 1.0507009873554805}},
      {"softplus", [](const Tensor& t) { return hg::softplus(t); },
       {0.11920292202211755, 0.2689414213699951, 0.37754066879814546, 0.5, 0.6224593312018546, 0.7310585786300049,
        0.8807970779778824}},
  };
  for (const auto& c : grads) {
    Tensor leaf = x.detach().clone().requires_grad_();
    c.f(leaf).sum().backward();
    hgtest::check_close(leaf.grad(), f64(c.want), 1e-12, 1e-15, std::string(c.name) + " gradient");
    results.push_back(leaf.grad());
  }
  return results;
}

// Special inputs: the conventions PyTorch users rely on.
HG_BACKEND_TEST(unary_special_values) {
  Tensor special = f64({kNaN, -0.0, 0.0, kInf, -kInf, -3.0}).to(device);
  Tensor relu = hg::relu(special), sign = hg::sign(special), clamped = hg::clamp(special, -1.0, 1.0);
  hgtest::check_close(relu, f64({kNaN, 0.0, 0.0, kInf, 0.0, 0.0}), 0, 0, "relu keeps NaN");
  hgtest::check_close(sign, f64({0.0, 0.0, 0.0, 1.0, -1.0, -1.0}), 0, 0, "sign(NaN) = 0, as torch.sign");
  hgtest::check_close(clamped, f64({kNaN, -0.0, 0.0, 1.0, -1.0, -1.0}), 0, 0, "clamp keeps NaN");
  CHECK_FALSE(std::signbit(hg::abs(special).to_vector<double>()[1]));  // |−0| = +0
  // exp/sigmoid saturate without NaN; softplus and selu are finite at ±inf's neighbours.
  Tensor big = f64({-1000.0, 1000.0}).to(device);
  hgtest::check_close(hg::exp(big), f64({0.0, kInf}), 0, 0, "exp saturates");
  hgtest::check_close(hg::sigmoid(big), f64({0.0, 1.0}), 0, 0, "sigmoid saturates");
  hgtest::check_close(hg::softplus(big), f64({0.0, 1000.0}), 0, 0, "softplus saturates");
  hgtest::check_close(hg::selu(f64({-kInf}).to(device)), f64({-1.0507009873554805 * 1.6732632423543772}), 1e-15, 0,
                      "selu(−inf) = −scale·α");
  // min > max gives max everywhere; a NaN bound makes everything NaN.
  Tensor x = f64({0.0, 1.0, 2.0, 3.0}).to(device);
  hgtest::check_close(hg::clamp(x, 2.0, 1.0), f64({1.0, 1.0, 1.0, 1.0}), 0, 0, "clamp with min > max");
  hgtest::check_close(hg::clamp(x, kNaN, 1.0), f64({kNaN, kNaN, kNaN, kNaN}), 0, 0, "clamp with a NaN bound");
  return {relu, sign, clamped};
}

// ---- gelu's fused backward ----------------------------------------------------------------------------------

namespace {

constexpr const char* kGeluApproximations[] = {"none", "tanh"};

// The composites the fused gelu_backward kernel replaced, g ⊙ gelu′(x), spelled out here with elementary ops
// (independently of ops/unary.cpp).
Tensor gelu_backward_reference(const Tensor& g, const Tensor& x, const std::string& approximate) {
  if (approximate == "none") {
    Tensor cdf = hg::mul(hg::add(hg::erf(hg::mul(x, 1.0 / std::sqrt(2.0))), 1.0), 0.5);
    Tensor pdf = hg::mul(hg::exp(hg::mul(hg::square(x), -0.5)), 1.0 / std::sqrt(2.0 * M_PI));
    return hg::mul(g, hg::add(cdf, hg::mul(x, pdf)));
  }
  const double beta = std::sqrt(2.0 / M_PI), kappa = 0.044715;
  Tensor x_sq = hg::square(x);
  Tensor tanh_u = hg::tanh(hg::mul(hg::add(x, hg::mul(hg::mul(x_sq, x), kappa)), beta));
  Tensor left = hg::mul(hg::add(tanh_u, 1.0), 0.5);
  Tensor du_dx = hg::mul(hg::add(hg::mul(x_sq, 3.0 * kappa), 1.0), beta);
  Tensor right = hg::mul(hg::mul(hg::mul(x, 0.5), hg::rsub(hg::square(tanh_u), 1.0)), du_dx);
  return hg::mul(g, hg::add(left, right));
}

}  // namespace

// gelu's backward is one fused kernel (Backend::gelu_backward) reading g and x once; it must equal the composite
// it replaced, for both approximations and dtypes, with odd sizes, strided g and x, and a broadcast (0-stride) g.
HG_BACKEND_TEST(gelu_fused_backward_matches_composite) {
  Tensors results;
  // 63 = 7 × 9 values: random ones, values near 0 and out to where Φ saturates and φ underflows.
  Tensor values = hg::cat({hgtest::uniform({48}, -5, 5, 31),
                           f64({-10.0, -9.0, -3.0, -1e-3, -1e-30, -0.0, 0.0, 1e-30, 1e-8, 1e-3, 0.75, -0.75, 3.0,
                                9.0, 10.0})});
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    const bool f32 = dtype == hg::kFloat32;
    const double rtol = f32 ? 1e-5 : 1e-13, atol = f32 ? 1e-6 : 1e-15;
    for (const std::string approximate : kGeluApproximations) {
      INFO(hg::dtype_name(dtype), " approximate=", approximate);
      // Contiguous, 63 elements: the vector body and its tail.
      Tensor x = values.to(dtype).to(device).detach().requires_grad_(true);
      Tensor g = hgtest::uniform({63}, -1, 1, 32).to(dtype).to(device);
      Tensor fused = hg::grad({hg::gelu(x, approximate)}, {x}, {g})[0];
      hgtest::check_close(fused, gelu_backward_reference(g, x.detach(), approximate), rtol, atol, "contiguous");
      // x a transposed view, g every other column of a wider tensor.
      Tensor base = values.view({7, 9}).to(dtype).to(device).detach().requires_grad_(true);
      Tensor xt = base.t();
      Tensor gs = hgtest::uniform({9, 14}, -1, 1, 33).to(dtype).to(device).slice(1, 0, 14, 2);
      Tensor strided = hg::grad({hg::gelu(xt, approximate)}, {base}, {gs})[0];
      hgtest::check_close(strided, gelu_backward_reference(gs, xt.detach(), approximate).t(), rtol, atol,
                          "strided g and x");
      // sum()'s backward hands gelu an expanded scalar: g with stride 0.
      Tensor broadcast = hg::grad({hg::gelu(x, approximate).sum()}, {x})[0];
      hgtest::check_close(broadcast, gelu_backward_reference(hg::ones_like(g), x.detach(), approximate), rtol, atol,
                          "broadcast g");
      results.insert(results.end(), {fused, strided, broadcast});
    }
  }
  return results;
}

// relu's backward is one fused kernel (Backend::relu_backward) reading g and y once; it must equal the composite
// where(y <= 0, 0, g) it replaced (bit for bit: a select; a NaN y passes g on, as PyTorch's threshold_backward),
// with zeros, ±0, ±inf and NaN in x and in g, odd sizes, strided g and x, a broadcast g, and the composite again
// under create_graph.
HG_BACKEND_TEST(relu_fused_backward_matches_composite) {
  Tensors results;
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  Tensor values = hg::cat({hgtest::uniform({50}, -3, 3, 41), f64({-inf, -1.0, -0.0, 0.0, 1e-30, 2.0, inf, nan, 3.0,
                                                                  -2.0, 0.5, -0.5, nan})});  // 63
  Tensor g_values = hg::cat({hgtest::uniform({60}, -1, 1, 42), f64({nan, inf, -inf})});  // NaN, ±inf in g too
  auto reference = [](const Tensor& g, const Tensor& x) { return hg::where(hg::relu(x) <= 0.0, 0.0, g); };
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    INFO(hg::dtype_name(dtype));
    Tensor x = values.to(dtype).to(device).detach().requires_grad_(true);
    Tensor g = g_values.to(dtype).to(device);
    Tensor fused = hg::grad({hg::relu(x)}, {x}, {g})[0];
    hgtest::check_close(fused, reference(g, x.detach()), 0, 0, "contiguous");
    // x = NaN (index 57; g there is finite): the gradient is g, as torch's ([nan, 1] → [1, 1]).
    CHECK(fused.select(0, 57).to(hg::kCPU).item<double>() == g.select(0, 57).to(hg::kCPU).item<double>());
    Tensor base = values.view({7, 9}).to(dtype).to(device).detach().requires_grad_(true);
    Tensor xt = base.t();
    Tensor gs = hgtest::uniform({9, 14}, -1, 1, 43).to(dtype).to(device).slice(1, 0, 14, 2);
    Tensor strided = hg::grad({hg::relu(xt)}, {base}, {gs})[0];
    hgtest::check_close(strided, reference(gs, xt.detach()).t(), 0, 0, "strided g and x");
    Tensor broadcast = hg::grad({hg::relu(x).sum()}, {x})[0];
    hgtest::check_close(broadcast, reference(hg::ones_like(g), x.detach()), 0, 0, "broadcast g");
    // create_graph: the composite, whose gradient (g where y > 0) is differentiable in g.
    Tensor gr = g.detach().requires_grad_(true);
    Tensor recorded = hg::grad({hg::relu(x)}, {x}, {gr}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    hgtest::check_close(recorded.detach(), fused, 0, 0, "create_graph");
    CHECK(recorded.requires_grad());
    results.insert(results.end(), {fused, strided, broadcast});
  }
  return results;
}

// ELU's and SELU's backward is one fused kernel (Backend::elu_backward) reading g and x once; it must equal the
// composite g ⊙ (x > 0 ? scale : scale·α·e^min(x, 0)) (to an ulp of exp), with ±0, ±inf, NaN and far-negative x,
// strided g and x, a broadcast g, and the composite itself under create_graph.
HG_BACKEND_TEST(elu_selu_fused_backward_matches_composite) {
  Tensors results;
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  Tensor values = hg::cat({hgtest::uniform({50}, -4, 3, 44), f64({-inf, -1.0, -0.0, 0.0, -30.0, 2.0, inf, nan, -90.0,
                                                                  -2.0, 0.5, -0.5, -1e-30})});  // 63
  Tensor g_values = hg::cat({hgtest::uniform({60}, -1, 1, 45), f64({nan, inf, -inf})});
  const double selu_scale = 1.0507009873554804934193349852946, selu_alpha = 1.6732632423543772848170429916717;
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    double scale, alpha;
  };
  const Case cases[] = {{"elu", [](const Tensor& t) { return hg::elu(t, 0.7); }, 1.0, 0.7},
                        {"selu", [](const Tensor& t) { return hg::selu(t); }, selu_scale, selu_alpha}};
  for (const Case& c : cases) {
    auto reference = [&](const Tensor& g, const Tensor& x) {
      Tensor negative = hg::mul(hg::exp(hg::where(x > 0.0, 0.0, x)), c.scale * c.alpha);
      return hg::mul(g, hg::where(x > 0.0, c.scale, negative));
    };
    for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
      INFO(c.name, " ", hg::dtype_name(dtype));
      const double tol = dtype == hg::kFloat32 ? 1e-6 : 1e-14;
      Tensor x = values.to(dtype).to(device).detach().requires_grad_(true);
      Tensor g = g_values.to(dtype).to(device);
      Tensor fused = hg::grad({c.f(x)}, {x}, {g})[0];
      hgtest::check_close(fused, reference(g, x.detach()), tol, 0, "contiguous");
      Tensor base = values.view({7, 9}).to(dtype).to(device).detach().requires_grad_(true);
      Tensor xt = base.t();
      Tensor gs = hgtest::uniform({9, 14}, -1, 1, 46).to(dtype).to(device).slice(1, 0, 14, 2);
      Tensor strided = hg::grad({c.f(xt)}, {base}, {gs})[0];
      hgtest::check_close(strided, reference(gs, xt.detach()).t(), tol, 0, "strided g and x");
      Tensor broadcast = hg::grad({c.f(x).sum()}, {x})[0];
      hgtest::check_close(broadcast, reference(hg::ones_like(g), x.detach()), tol, 0, "broadcast g");
      Tensor gr = g.detach().requires_grad_(true);
      Tensor recorded = hg::grad({c.f(x)}, {x}, {gr}, /*retain_graph=*/true, /*create_graph=*/true)[0];
      hgtest::check_close(recorded.detach(), fused, tol, 0, "create_graph");
      CHECK(recorded.requires_grad());
      results.insert(results.end(), {fused, strided, broadcast});
    }
  }
  return results;
}

// NaN and ±inf, in x or in g, and |x| out to 1e20 give what torch.ops.aten.gelu_backward gives (torch 1.13,
// values printed from it): ∞·0 = NaN at x = ±inf in both formulas, and in float32 tanh-gelu where x² overflows.
// At x = −10, gelu′ = x·φ(x) = −7.7e-22 (Φ(−10) = 7.6e-24 is lost in 1 + erf in either dtype): torch's scalar loop
// gives that in float32 too; its AVX2 loop flushes e^−50 to 0, which this test does not follow.
HG_BACKEND_TEST(gelu_backward_special_values_as_pytorch) {
  Tensor x = f64({kNaN, kInf, -kInf, 0.0, -0.0, 1e-20, -1e-20, 1e4, -1e4, 40.0, -40.0, 10.0, -10.0, 1e20, -1e20});
  struct Case {
    hg::DType dtype;
    std::string approximate;
    std::vector<double> want;  // g = 1
  };
  const std::vector<Case> cases = {
      {hg::kFloat64, "none",
       {kNaN, kNaN, kNaN, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0, -7.694598626706419e-22, 1.0, 0.0}},
      {hg::kFloat64, "tanh", {kNaN, kNaN, kNaN, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0}},
      {hg::kFloat32, "none",
       {kNaN, kNaN, kNaN, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0, -7.694598626706419e-22, 1.0, 0.0}},
      {hg::kFloat32, "tanh", {kNaN, kNaN, kNaN, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, kNaN, kNaN}},
  };
  Tensors results;
  for (const Case& c : cases) {
    INFO(hg::dtype_name(c.dtype), " approximate=", c.approximate);
    Tensor leaf = x.to(c.dtype).to(device).detach().requires_grad_(true);
    Tensor got = hg::grad({hg::gelu(leaf, c.approximate)}, {leaf}, {hg::ones_like(leaf)})[0];
    hgtest::check_close(got, f64(c.want), 1e-6, 0, "x special");
    // Non-finite incoming gradients: inf·gelu′ keeps the sign, inf·0 and NaN·anything are NaN.
    Tensor at = f64({1.0, -40.0, 40.0, 0.0, 2.0}).to(c.dtype).to(device).detach().requires_grad_(true);
    Tensor g = f64({kInf, kInf, -kInf, kNaN, 0.0}).to(c.dtype).to(device);
    Tensor through = hg::grad({hg::gelu(at, c.approximate)}, {at}, {g})[0];
    hgtest::check_close(through, f64({kInf, kNaN, -kInf, kNaN, 0.0}), 0, 0, "g special");
    results.insert(results.end(), {got, through});
  }
  return results;
}

TEST_CASE("gelu: the CPU backward kernel's loops (vector, broadcast, strided, 1 and 2 threads) agree with float64") {
  hg::Backend& cpu = hg::backend_for(hg::kCPU);
  const int previous = hg::get_num_threads();
  // 37: one thread, vector body + tail; 100003: above the OpenMP grain, so split between threads.
  for (int64_t n : {int64_t{37}, int64_t{100003}}) {
    Tensor x64 = hgtest::uniform({n}, -12, 12, 41), g64 = hgtest::uniform({n}, -2, 2, 42);
    Tensor x = x64.to(hg::kFloat32), g = g64.to(hg::kFloat32);
    Tensor x_column = hg::empty({n, 2}, hg::kFloat32).select(1, 1).copy_(x);  // stride 2: the scalar loop
    Tensor g_scalar = hg::full({1}, 0.75, hg::kFloat32).expand({n});          // stride 0
    for (const std::string approximate : kGeluApproximations) {
      const hg::GeluApproximation a =
          approximate == "tanh" ? hg::GeluApproximation::Tanh : hg::GeluApproximation::None;
      Tensor reference = gelu_backward_reference(g64, x64, approximate);
      // float32 against float64, absolute: 1 + erf(x/√2) cancels to ~6e-8 for x ≪ 0; tanh's formula multiplies
      // 1 ± tanh u, quantised to float32's 6e-8 below 1, by up to ~10 (x/2·β(1 + 3κx²) at |x| ≈ 5), and |g| ≤ 2.
      // torch's float32 kernel is off by as much (1.04e-6 per unit of g at x = 5.06 against float64).
      const double atol = approximate == "tanh" ? 3e-6 : 1e-6;
      for (int threads : {1, 2}) {
        hg::set_num_threads(threads);
        std::string what = approximate + " n=" + std::to_string(n) + " threads=" + std::to_string(threads);
        Tensor out = hg::empty({n}, hg::kFloat32);
        cpu.gelu_backward(g, x, a, out);
        hgtest::check_close(out, reference, 1e-5, atol, what + " contiguous");
        cpu.gelu_backward(g, x_column, a, out);
        hgtest::check_close(out, reference, 1e-5, atol, what + " strided x");
        cpu.gelu_backward(g_scalar, x, a, out);
        hgtest::check_close(out, gelu_backward_reference(hg::full({n}, 0.75, hg::kFloat64), x64, approximate), 1e-5,
                            atol, what + " broadcast g");
        Tensor wide = hg::zeros({n, 2}, hg::kFloat32), out_column = wide.select(1, 0);
        cpu.gelu_backward(g, x, a, out_column);
        hgtest::check_close(out_column, reference, 1e-5, atol, what + " strided grad_x");
        hgtest::check_close(wide.select(1, 1), hg::zeros({n}, hg::kFloat32), 0, 0, what + " untouched");
      }
    }
  }
  hg::set_num_threads(previous);
}

// float32 erf is hopgrad's own polynomial pair and exp (ops/cpu/simd_erf.h; its exhaustive sweep over all 2^32
// floats, scripts/erf_f32_accuracy.cpp, measured 1.21 ulp at most). Here: a dense grid, both sides of the seam
// between its two pieces at |x| = 0.921875, the clamp at |x| = 4, denormals and huge values, on the vectorised
// and the strided loop, within 1.25 ulp of float64 erf; NaN, ±inf and ±0 as libm.
TEST_CASE("erf: float32 within 1.25 ulp of float64 erf on both CPU loops, at its seams and special values") {
  std::vector<float> values;
  for (int i = 0; i <= 4000; ++i) values.push_back(-4.5f + 9.0f * static_cast<float>(i) / 4000.0f);
  for (float edge : {0.921875f, 4.0f, 3.92f}) {
    float up = edge, down = edge;
    for (int k = 0; k < 4; ++k, up = std::nextafter(up, 10.0f), down = std::nextafter(down, 0.0f))
      for (float v : {up, down, -up, -down}) values.push_back(v);
  }
  for (float v : {1e-45f, 3e-45f, 1e-40f, FLT_MIN, 1e-20f, 1e-5f, 10.0f, 1e30f, FLT_MAX})
    for (float s : {v, -v}) values.push_back(s);
  const int64_t n = static_cast<int64_t>(values.size());
  Tensor x = hg::empty({n}, hg::kFloat32);
  std::copy(values.begin(), values.end(), x.data_ptr<float>());
  Tensor wide = hg::empty({n, 2}, hg::kFloat32), column = wide.select(1, 1);
  column.copy_(x);
  for (const auto& [what, got] : {std::pair{"contiguous", hg::erf(x)}, std::pair{"strided", hg::erf(column)}}) {
    const std::vector<float> y = got.to_vector<float>();
    double worst = 0;
    float worst_at = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double exact = std::erf(static_cast<double>(values[i]));
      // The spacing of float32 values at |exact| (the denormal spacing below FLT_MIN).
      int exponent;
      std::frexp(exact, &exponent);
      const double ulp = std::fabs(exact) < FLT_MIN ? std::ldexp(1.0, -149) : std::ldexp(1.0, exponent - 24);
      const double error = std::fabs(y[i] - exact) / ulp;
      if (error > worst) worst = error, worst_at = values[i];
    }
    INFO(what << ": worst at x = " << worst_at);
    CHECK(worst <= 1.25);
  }
  constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN(), kInff = std::numeric_limits<float>::infinity();
  Tensor special = hg::empty({5}, hg::kFloat32);
  const float special_values[] = {kNaNf, kInff, -kInff, 0.0f, -0.0f};
  std::copy(std::begin(special_values), std::end(special_values), special.data_ptr<float>());
  const std::vector<float> y = hg::erf(special).to_vector<float>();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 1.0f);
  CHECK(y[2] == -1.0f);
  CHECK((y[3] == 0.0f && !std::signbit(y[3])));
  CHECK((y[4] == 0.0f && std::signbit(y[4])));
}

// For x ≤ −5.6, float32 gelu′(x) = x·φ(x) (erf(x/√2) rounds to −1, so Φ(x) = 0). φ's exp is hopgrad's own
// (simd_erf.h), which must follow e^(−x²/2) into the denormals and to 0 as expf does, not flush. Checked against
// float64 at the same float32-rounded argument −x²/2 (whose rounding alone moves e^(−x²/2) by ~100·2^−24).
TEST_CASE("gelu: the float32 backward follows x·φ(x) into the denormals and to 0") {
  const std::vector<float> values = {-6.0f, -9.0f, -12.0f, -13.0f, -13.2f, -13.4f, -13.6f, -14.0f, -14.4f, -14.6f,
                                     -20.0f};
  const int64_t n = static_cast<int64_t>(values.size());
  Tensor x = hg::empty({n}, hg::kFloat32);
  std::copy(values.begin(), values.end(), x.data_ptr<float>());
  Tensor g = hg::ones_like(x);
  Tensor out = hg::empty({n}, hg::kFloat32);
  hg::backend_for(hg::kCPU).gelu_backward(g, x, hg::GeluApproximation::None, out);
  const std::vector<float> y = out.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float v = values[i], q = -0.5f * v * v;  // the kernel's argument, rounded as it rounds it
    const double x_phi = v * std::exp(static_cast<double>(q)) / std::sqrt(2 * std::numbers::pi);
    INFO("x = " << v);
    // Once φ(x) is denormal (x < −13.2) its rounding to the 2^−149 grid is then multiplied by |x|, in PyTorch's
    // order of operations as in ours: (|x| + 1) denormal steps.
    CHECK(std::fabs(y[i] - x_phi) <= 1e-6 * std::fabs(x_phi) + (std::fabs(v) + 1) * std::ldexp(1.0, -149));
  }
  CHECK(y.back() == 0.0f);  // x·φ(x) = −1.4e-86 at x = −20
}

TEST_CASE("gelu: create_graph records the composite backward, equal to the fused one and differentiable again") {
  Tensor x = hgtest::uniform({2, 5}, -3, 3, 51).requires_grad_(true);
  Tensor g = hgtest::uniform({2, 5}, -1, 1, 52);
  for (const std::string approximate : kGeluApproximations) {
    INFO("approximate=", approximate);
    Tensor fused = hg::grad({hg::gelu(x, approximate)}, {x}, {g})[0];
    CHECK_FALSE(fused.requires_grad());
    Tensor recorded = hg::grad({hg::gelu(x, approximate)}, {x}, {g}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    REQUIRE(recorded.requires_grad());
    hgtest::check_close(recorded, fused, 1e-14, 1e-16, "create_graph vs fused");
    if (approximate == "none") {
      // ∂/∂x Σ g ⊙ gelu′(x) = g ⊙ gelu″(x) = g ⊙ φ(x)·(2 − x²)
      Tensor second = hg::grad({recorded.sum()}, {x})[0];
      Tensor pdf = hg::mul(hg::exp(hg::mul(hg::square(x.detach()), -0.5)), 1.0 / std::sqrt(2.0 * M_PI));
      hgtest::check_close(second, hg::mul(g, hg::mul(pdf, hg::rsub(hg::square(x.detach()), 2.0))), 1e-13, 1e-15,
                          "gelu″");
    }
  }
}

TEST_CASE("gelu: gradcheck and gradgradcheck with strided and broadcast incoming gradients") {
  Tensor matrix = hgtest::uniform({3, 4}, -3, 3, 61);
  for (const std::string approximate : kGeluApproximations) {
    INFO("approximate=", approximate);
    // The transpose after gelu hands its backward a transposed g; the sum an expanded scalar.
    auto transposed = [approximate](const Tensors& t) { return hg::gelu(t[0], approximate).t(); };
    auto summed = [approximate](const Tensors& t) { return hg::gelu(t[0].t(), approximate).sum(); };
    hgtest::gradcheck(transposed, {matrix});
    hgtest::gradcheck(summed, {matrix});
    hgtest::gradgradcheck(transposed, {matrix});
    hgtest::gradgradcheck(summed, {matrix});
  }
}

// ---- dtypes -----------------------------------------------------------------------------------------

HG_BACKEND_TEST(unary_dtype_rules) {
  Tensor ints = i64({-3, 0, 5}).to(device);
  Tensor flags = hg::ne(i64({1, 0}), 0.0).to(device);
  // floating functions compute integer and bool inputs in float32
  for (const Tensor& t : {hg::exp(ints), hg::sigmoid(ints), hg::sqrt(ints), hg::gelu(ints), hg::exp(flags)})
    CHECK(t.dtype() == hg::kFloat32);
  hgtest::check_close(hg::exp(ints), f64({std::exp(-3.0), 1.0, std::exp(5.0)}), 1e-6, 0, "exp(int64)");
  hgtest::check_close(hg::reciprocal(ints), f64({-1.0 / 3.0, kInf, 0.2}), 1e-6, 0, "reciprocal(int64)");
  // neg/abs/sign/square/relu/clamp keep int64
  struct IntCase {
    const char* name;
    Tensor got;
    std::vector<int64_t> want;
  };
  std::vector<IntCase> int_cases = {
      {"neg", hg::neg(ints), {3, 0, -5}},       {"abs", hg::abs(ints), {3, 0, 5}},
      {"sign", hg::sign(ints), {-1, 0, 1}},     {"square", hg::square(ints), {9, 0, 25}},
      {"relu", hg::relu(ints), {0, 0, 5}},      {"clamp", hg::clamp(ints, -1.0, 4.0), {-1, 0, 4}},
      {"clamp_min", hg::clamp_min(ints, 1.0), {1, 1, 5}},
      {"square(bool)", hg::square(flags), {1, 0}},  // bool squares to int64, as torch.square
      {"clamp(bool)", hg::clamp(flags, 0.0, 1.0), {1, 0}},
  };
  Tensors results;
  for (const auto& c : int_cases) {
    INFO(c.name);
    CHECK(c.got.dtype() == hg::kInt64);
    CHECK(c.got.to_vector<int64_t>() == c.want);
    results.push_back(c.got);
  }
  // int64 overflow wraps like PyTorch's: −INT64_MIN and |INT64_MIN| are INT64_MIN.
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  CHECK(hg::neg(i64({kMin}).to(device)).item<int64_t>() == kMin);
  CHECK(hg::abs(i64({kMin}).to(device)).item<int64_t>() == kMin);
  // a fractional bound turns an integer clamp into float32
  Tensor frac = hg::clamp_max(ints, 1.5);
  CHECK(frac.dtype() == hg::kFloat32);
  hgtest::check_close(frac, f64({-3.0, 0.0, 1.5}), 0, 0, "clamp_max(int64, 1.5)");
  // sign keeps bool; logical_not gives bool from any dtype (NaN is true, so ¬NaN is false)
  CHECK(hg::sign(flags).dtype() == hg::kBool);
  CHECK(hg::sign(flags).to_vector<bool>() == std::vector<bool>{true, false});
  Tensor not_float = hg::logical_not(f64({0.0, 1.5, kNaN, -0.0}).to(device));
  CHECK(not_float.dtype() == hg::kBool);
  CHECK(not_float.to_vector<bool>() == std::vector<bool>{true, false, false, true});
  CHECK(hg::logical_not(ints).to_vector<bool>() == std::vector<bool>{false, true, false});
  CHECK(hg::logical_not(flags).to_vector<bool>() == std::vector<bool>{false, true});
  CHECK((!flags).to_vector<bool>() == std::vector<bool>{false, true});
  results.push_back(frac);
  results.push_back(not_float.to(hg::kInt64));
  return results;
}

HG_BACKEND_TEST(where_with_a_scalar_takes_the_arithmetic_dtype) {
  // where(cond, tensor, scalar) gives the scalar the dtype it has in arithmetic with the tensor, as torch.where:
  // a fractional scalar makes an int64 or bool result float32 (it was cast to the tensor's dtype and truncated).
  Tensor cond = hg::ne(i64({1, 0, 1}), 0.0).to(device);
  Tensor ints = i64({1, 2, 3}).to(device);
  Tensor half = hg::where(cond, ints, 0.5), first = hg::where(cond, -1.5, ints);
  CHECK(half.dtype() == hg::kFloat32);
  CHECK(first.dtype() == hg::kFloat32);
  hgtest::check_close(half, f64({1.0, 0.5, 3.0}), 0, 0, "where(c, int64, 0.5)");
  hgtest::check_close(first, f64({-1.5, 2.0, -1.5}), 0, 0, "where(c, -1.5, int64)");
  Tensor flags = hg::where(cond, cond, 0.5);
  CHECK(flags.dtype() == hg::kFloat32);
  hgtest::check_close(flags, f64({1.0, 0.5, 1.0}), 0, 0, "where(c, bool, 0.5)");
  // An integral scalar keeps int64; a float tensor keeps its dtype.
  Tensor whole = hg::where(cond, ints, 7.0);
  CHECK(whole.dtype() == hg::kInt64);
  CHECK(whole.to(hg::kCPU).to_vector<int64_t>() == std::vector<int64_t>{1, 7, 3});
  CHECK(hg::where(cond, f64({1, 2, 3}).to(device), 0.25).dtype() == hg::kFloat64);
  return {half, first, flags, whole.to(hg::kFloat64)};
}

// ---- the two CPU paths against float64 ------------------------------------------------------------------

namespace {

// x (float32) with special values spliced in at the start, the middle (inside SIMD lanes and, for large n,
// another thread's range) and the end (the loop tail).
Tensor with_specials(int64_t n, double lo, double hi, uint64_t seed) {
  std::vector<double> values = hgtest::uniform({n}, lo, hi, seed).to_vector<double>();
  const std::vector<double> specials = {kNaN, kInf, -kInf, 0.0, -0.0, 1e-40, -1e-40, 1e30, -1e30, 88.8, -104.0};
  for (size_t k = 0; k < specials.size() && values.size() >= 3 * specials.size(); ++k) {
    values[k] = specials[k];
    values[values.size() / 2 + k] = specials[k];
    values[values.size() - 1 - k] = specials[k];
  }
  return f64(values).to(hg::kFloat32);
}

}  // namespace

TEST_CASE("unary: float32 kernels (vectorised, scalar-strided and oneDNN paths) agree with float64") {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    double lo, hi;
    double atol;  // gelu's 1 + erf(x/√2) cancels for x ≪ 0 in float32, in PyTorch's formula as in ours
  };
  std::vector<Case> cases = {
      {"exp", [](const Tensor& x) { return hg::exp(x); }, -20, 20, 0},
      {"log", [](const Tensor& x) { return hg::log(x); }, 1e-3, 1e3, 0},
      {"log1p", [](const Tensor& x) { return hg::log1p(x); }, -0.9, 10, 0},
      {"expm1", [](const Tensor& x) { return hg::expm1(x); }, -5, 5, 0},
      {"sqrt", [](const Tensor& x) { return hg::sqrt(x); }, 0, 100, 0},
      {"rsqrt", [](const Tensor& x) { return hg::rsqrt(x); }, 1e-3, 100, 0},
      {"reciprocal", [](const Tensor& x) { return hg::reciprocal(x); }, -10, 10, 0},
      {"sin", [](const Tensor& x) { return hg::sin(x); }, -10, 10, 1e-7},
      {"cos", [](const Tensor& x) { return hg::cos(x); }, -10, 10, 1e-7},
      {"tanh", [](const Tensor& x) { return hg::tanh(x); }, -10, 10, 0},
      {"sigmoid", [](const Tensor& x) { return hg::sigmoid(x); }, -20, 20, 0},
      {"erf", [](const Tensor& x) { return hg::erf(x); }, -4, 4, 0},
      {"gelu", [](const Tensor& x) { return hg::gelu(x); }, -10, 10, 1e-6},
      {"gelu(tanh)", [](const Tensor& x) { return hg::gelu(x, "tanh"); }, -10, 10, 1e-6},
      {"selu", [](const Tensor& x) { return hg::selu(x); }, -10, 10, 0},
      {"elu", [](const Tensor& x) { return hg::elu(x, 0.5); }, -10, 10, 0},
      {"softplus", [](const Tensor& x) { return hg::softplus(x); }, -30, 30, 0},
      {"relu", [](const Tensor& x) { return hg::relu(x); }, -10, 10, 0},
      {"clamp", [](const Tensor& x) { return hg::clamp(x, -2.0, 3.0); }, -10, 10, 0},
      {"abs", [](const Tensor& x) { return hg::abs(x); }, -10, 10, 0},
      {"square", [](const Tensor& x) { return hg::square(x); }, -10, 10, 0},
  };
  // 37: one thread, vector body + tail; 100003: above the OpenMP grain and oneDNN sqrt's threshold.
  for (int64_t n : {int64_t{37}, int64_t{100003}}) {
    for (const auto& c : cases) {
      Tensor x32 = with_specials(n, c.lo, c.hi, 5);
      Tensor reference = c.f(x32.to(hg::kFloat64)).to(hg::kFloat32);
      std::string what = std::string(c.name) + " n=" + std::to_string(n);
      hgtest::check_close(c.f(x32), reference, 1e-6, c.atol, what + " contiguous");
      // A column of a [n, 2] tensor: the strided scalar loop.
      Tensor wide = hg::empty({n, 2}, hg::kFloat32);
      wide.select(1, 0).copy_(x32);
      hgtest::check_close(c.f(wide.select(1, 0)), reference, 1e-6, c.atol, what + " strided input");
    }
  }
}

TEST_CASE("unary: the CPU kernel writes strided and aliased (in-place) outputs") {
  hg::Backend& cpu = hg::backend_for(hg::kCPU);
  // 64×70 = 4480 float32 elements: above oneDNN sqrt's threshold when contiguous.
  Tensor x = hgtest::uniform({64, 70}, 0.5, 2.0, 3).to(hg::kFloat32);
  Tensor sqrt_x = hg::sqrt(x.to(hg::kFloat64));
  Tensor exp_x = hg::exp(x.to(hg::kFloat64));

  Tensor buffer = hg::empty({70, 64}, hg::kFloat32);
  Tensor transposed = buffer.t();  // a [64, 70] view with strides (1, 64)
  cpu.unary(hg::UnaryOp::Sqrt, x, transposed, {});
  hgtest::check_close(transposed, sqrt_x, 1e-6, 0, "sqrt into a transposed output");
  hgtest::check_close(buffer, sqrt_x.t(), 1e-6, 0, "the buffer behind the transposed output");

  Tensor in_place = x.clone();
  cpu.unary(hg::UnaryOp::Sqrt, in_place, in_place, {});  // oneDNN path, aliased
  hgtest::check_close(in_place, sqrt_x, 1e-6, 0, "in-place sqrt (oneDNN)");

  Tensor small = x.narrow(0, 0, 2).clone();  // 140 elements: loop path, aliased
  cpu.unary(hg::UnaryOp::Sqrt, small, small, {});
  hgtest::check_close(small, sqrt_x.narrow(0, 0, 2), 1e-6, 0, "in-place sqrt (loop)");

  Tensor strided_in_place = x.clone();
  Tensor view = strided_in_place.t();
  cpu.unary(hg::UnaryOp::Exp, view, view, {});
  hgtest::check_close(strided_in_place, exp_x, 1e-6, 0, "in-place exp through a transposed view");

  Tensor every_other = hg::zeros({64, 140}, hg::kFloat64);
  Tensor columns = every_other.slice(1, 0, 140, 2);
  Tensor x64 = x.to(hg::kFloat64);
  cpu.unary(hg::UnaryOp::Clamp, x64, columns, hg::UnaryParams{0.75, 1.5});
  hgtest::check_close(columns, hg::clamp(x64, 0.75, 1.5), 0, 0, "clamp into every other column");
  hgtest::check_close(every_other.slice(1, 1, 140, 2), hg::zeros({64, 70}, hg::kFloat64), 0, 0,
                      "the columns in between are untouched");
}

// ---- gradients ---------------------------------------------------------------------------------------------

TEST_CASE("unary: gradcheck of every differentiable op (contiguous, transposed and broadcast inputs)") {
  for (const auto& op : differentiable_ops()) {
    INFO(op.name);
    Tensor matrix = hgtest::uniform({3, 4}, op.lo, op.hi, 11);
    Tensor row = hgtest::uniform({5}, op.lo, op.hi, 12);
    Tensor cube = hgtest::uniform({2, 3, 2}, op.lo, op.hi, 13);
    auto f = op.f;
    hgtest::gradcheck([f](const Tensors& t) { return f(t[0]); }, {matrix});
    hgtest::gradcheck([f](const Tensors& t) { return f(t[0].transpose(0, 1)); }, {matrix});
    hgtest::gradcheck([f](const Tensors& t) { return f(t[0].expand({3, 5})); }, {row});  // 0-stride input
    hgtest::gradcheck([f](const Tensors& t) { return f(t[0].permute({2, 0, 1})); }, {cube});
  }
}

TEST_CASE("unary: gradgradcheck of the smooth ops") {
  std::vector<OpCase> ops;
  for (const auto& op : differentiable_ops()) {
    std::string name = op.name;
    for (const char* wanted : {"tanh", "sigmoid", "gelu", "gelu(tanh)", "softplus", "softplus(β=2, threshold=1)",
                               "elu", "selu", "exp", "log", "erf", "sqrt", "rsqrt", "reciprocal", "sin"})
      if (name == wanted) ops.push_back(op);
  }
  REQUIRE(ops.size() == 15);
  for (const auto& op : ops) {
    INFO(op.name);
    Tensor x = hgtest::uniform({2, 3}, op.lo, op.hi, 21);
    auto f = op.f;
    hgtest::gradgradcheck([f](const Tensors& t) { return f(t[0].t()); }, {x});
  }
}

TEST_CASE("unary: gradient conventions at kinks, boundaries and extremes (as PyTorch)") {
  auto grad_of = [](const std::function<Tensor(const Tensor&)>& f, const std::vector<double>& at) {
    Tensor x = f64(at).requires_grad_();
    f(x).sum().backward();
    return x.grad();
  };
  // relu'(0) = 0, |x|'(0) = 0, sign' = 0
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::relu(x); }, {-1, 0, 2}), f64({0, 0, 1}), 0, 0);
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::abs(x); }, {-1, 0, 2}), f64({-1, 0, 1}), 0, 0);
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::sign(x); }, {-1, 0, 2}), f64({0, 0, 0}), 0, 0);
  // clamp passes the gradient on both boundaries and inside, blocks it outside
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::clamp(x, -1.0, 1.0); }, {-2, -1, 0, 1, 2}),
                      f64({0, 1, 1, 1, 0}), 0, 0, "clamp");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::clamp_min(x, 0.5); }, {0, 0.5, 1}), f64({0, 1, 1}), 0,
                      0, "clamp_min");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::clamp_max(x, 0.5); }, {0, 0.5, 1}), f64({1, 1, 0}), 0,
                      0, "clamp_max");
  // elu'(0) = α and selu'(0) = scale·α (the x ≤ 0 branch, as PyTorch)
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::elu(x, 0.5); }, {0}), f64({0.5}), 1e-15, 0, "elu'(0)");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::selu(x); }, {0}), f64({1.7580993408473766}), 1e-15, 0,
                      "selu'(0)");
  // No overflow where a branch is not taken: selu/elu at x ≫ 0, softplus on both sides, sigmoid/tanh saturated.
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::selu(x); }, {800, -800}),
                      f64({1.0507009873554805, 0.0}), 1e-15, 0, "selu' far out");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::elu(x); }, {800, -800}), f64({1.0, 0.0}), 0, 0,
                      "elu' far out");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::softplus(x); }, {30, -800}), f64({1.0, 0.0}), 0, 0,
                      "softplus' far out");
  hgtest::check_close(grad_of([](const Tensor& x) { return hg::sigmoid(x) + hg::tanh(x); }, {800, -800}),
                      f64({0.0, 0.0}), 0, 0, "saturated sigmoid/tanh");
  // second derivative of selu at x ≫ 0 stays finite (0)
  Tensor x = f64({800.0, -1.0}).requires_grad_();
  Tensor first = hg::grad({hg::selu(x).sum()}, {x}, {}, true, true)[0];
  Tensor second = hg::grad({first.sum()}, {x})[0];
  hgtest::check_close(second, f64({0.0, 1.0507009873554805 * 1.6732632423543772 * std::exp(-1.0)}), 1e-14, 0,
                      "selu''");
  // A masked gradient does not leak inf/NaN from outside the mask (where, not a product).
  Tensor r = f64({-1.0, 2.0}).requires_grad_();
  hg::relu(r).backward(f64({kInf, 1.0}));
  hgtest::check_close(r.grad(), f64({0.0, 1.0}), 0, 0, "relu with an infinite upstream gradient");
}

// ---- errors ---------------------------------------------------------------------------------------------

TEST_CASE("unary: bad input is refused with the op's name") {
  Tensor x = f64({1.0, 2.0});
  Tensor flags = hg::gt(x, 1.5);
  CHECK_THROWS_WITH_AS(hg::gelu(x, "foo"),
                       doctest::Contains("gelu: approximate must be \"none\" or \"tanh\", got \"foo\""), hg::Error);
  CHECK_THROWS_WITH_AS(hg::clamp(x, std::nullopt, std::nullopt),
                       doctest::Contains("clamp: at least one of min and max must be given"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::neg(flags), doctest::Contains("neg: not defined for bool tensors"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::neg(flags), doctest::Contains("logical_not"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::abs(flags), doctest::Contains("abs: not defined for bool tensors"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::relu(flags), doctest::Contains("relu: not defined for bool tensors"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::exp(Tensor()), doctest::Contains("exp: got an undefined tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::clamp_min(Tensor(), 0.0), doctest::Contains("clamp_min: got an undefined tensor"),
                       hg::Error);
  // The kernel checks what the frontends guarantee.
  hg::Backend& cpu = hg::backend_for(hg::kCPU);
  Tensor out3 = hg::empty({3}, hg::kFloat64);
  CHECK_THROWS_WITH_AS(cpu.unary(hg::UnaryOp::Exp, x, out3, {}),
                       doctest::Contains("unary exp: input shape [2] differs from output shape [3]"), hg::Error);
  Tensor ints = i64({1, 2}), int_out = hg::empty({2}, hg::kInt64);
  CHECK_THROWS_WITH_AS(cpu.unary(hg::UnaryOp::Exp, ints, int_out, {}),
                       doctest::Contains("exp is not defined for int64"), hg::Error);
  Tensor float_out = hg::empty({2}, hg::kFloat32);
  CHECK_THROWS_WITH_AS(cpu.unary(hg::UnaryOp::Exp, x, float_out, {}),
                       doctest::Contains("input dtype float64 differs from output dtype float32"), hg::Error);
  CHECK_THROWS_WITH_AS(
      cpu.gelu_backward(x, x, hg::GeluApproximation::None, out3),
      doctest::Contains("gelu_backward kernel: expects grad_out, x and grad_x of one shape, got [2], [2] and [3]"),
      hg::Error);
  CHECK_THROWS_WITH_AS(cpu.gelu_backward(x, x, hg::GeluApproximation::Tanh, float_out),
                       doctest::Contains("gelu_backward kernel: expects grad_out, x and grad_x of one floating dtype, "
                                         "got float64, float64 and float32"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(cpu.gelu_backward(ints, ints, hg::GeluApproximation::None, int_out),
                       doctest::Contains("got int64, int64 and int64"), hg::Error);
  CHECK_THROWS_WITH_AS(
      cpu.relu_backward(x, x, out3),
      doctest::Contains("relu_backward kernel: expects grad_out, y and grad_x of one shape, got [2], [2] and [3]"),
      hg::Error);
  CHECK_THROWS_WITH_AS(cpu.relu_backward(x, x, float_out),
                       doctest::Contains("relu_backward kernel: expects grad_out, y and grad_x of one floating dtype, "
                                         "got float64, float64 and float32"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(cpu.relu_backward(ints, ints, int_out), doctest::Contains("got int64, int64 and int64"),
                       hg::Error);
}

// ---- allclose and max_abs_diff ------------------------------------------------------------------------------

HG_BACKEND_TEST(compare_allclose_and_max_abs_diff) {
  auto on = [&](const std::vector<double>& v) { return f64(v).to(device); };
  Tensor a = on({1.0, 2.0, 3.0});
  CHECK(hg::allclose(a, on({1.0, 2.0, 3.0 + 1e-6})));
  CHECK_FALSE(hg::allclose(a, on({1.0, 2.0, 3.0 + 1e-6}), 0.0, 1e-7));
  // |a − b| ≤ atol + rtol·|b| is asymmetric in b, as torch.allclose
  CHECK(hg::allclose(on({1.0}), on({1.1}), 0.095, 0.0));
  CHECK_FALSE(hg::allclose(on({1.1}), on({1.0}), 0.095, 0.0));
  // broadcasting, other dtypes, mixed dtypes
  Tensor matrix = f64({1, 2, 3, 1, 2, 3}).reshape({2, 3}).to(device);
  CHECK(hg::allclose(matrix, a));
  CHECK_FALSE(hg::allclose(matrix, on({1.0, 2.0, 3.5})));
  CHECK(hg::allclose(i64({1, 2, 3}).to(device), a.to(hg::kFloat32)));
  CHECK(hg::allclose(hg::gt(a, 1.5), hg::gt(a, 1.9)));
  CHECK_FALSE(hg::allclose(hg::gt(a, 1.5), hg::gt(a, 2.5)));
  // NaN is never close; equal infinities are; a finite value is not close to an infinity
  CHECK_FALSE(hg::allclose(on({kNaN}), on({kNaN})));
  CHECK(hg::allclose(on({kInf, -kInf}), on({kInf, -kInf})));
  CHECK_FALSE(hg::allclose(on({kInf}), on({-kInf})));
  CHECK_FALSE(hg::allclose(on({1e300}), on({kInf}), 1.0, 1.0));
  CHECK(hg::allclose(hg::zeros({0}, hg::TensorOptions(hg::kFloat64).device(device)), on({1.0})));

  CHECK(hg::max_abs_diff(a, on({1.0, 2.5, 2.0})) == 1.0);
  CHECK(hg::max_abs_diff(matrix, on({0.0, 2.0, 3.0})) == 1.0);
  CHECK(hg::max_abs_diff(i64({5, -5}).to(device), i64({3, -1}).to(device)) == 4.0);
  CHECK(std::isnan(hg::max_abs_diff(a, on({1.0, kNaN, 3.0}))));
  CHECK(hg::max_abs_diff(hg::zeros({0}, hg::TensorOptions(hg::kFloat64).device(device)), on({1.0})) == 0.0);
  // gradients are not tracked
  Tensor leaf = a.detach().clone().requires_grad_();
  CHECK(hg::allclose(leaf * 2.0, a * 2.0));
  CHECK(hg::max_abs_diff(leaf, a) == 0.0);

  CHECK_THROWS_WITH_AS(hg::allclose(a, on({1.0, 2.0})), doctest::Contains("allclose: shapes [3] and [2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_abs_diff(a, on({1.0, 2.0})), doctest::Contains("max_abs_diff: shapes [3] and [2]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::allclose(a, a, -1.0), doctest::Contains("allclose: rtol and atol must be non-negative"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::allclose(a, Tensor()), doctest::Contains("allclose: got an undefined tensor"), hg::Error);
  return {};
}

TEST_CASE("compare: tensors on different devices are refused, naming both" * doctest::skip(!hgtest::has_cuda())) {
  Tensor a = f64({1.0, 2.0});
  Tensor b = a.to(hg::Device::cuda(0));
  CHECK_THROWS_WITH_AS(hg::allclose(a, b), doctest::Contains("allclose: tensors are on different devices"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_abs_diff(b, a), doctest::Contains("cuda"), hg::Error);
}

// The negative branch's derivative, α·eˣ, from the input: written from the output as y + α it cancelled for x ≪ 0
// (SELU's float32 gradient at −10 was 6.6e-4 off, and 0 from −17 on; float64's 0 at −40).
TEST_CASE("unary: ELU and SELU gradients keep their relative precision far below zero") {
  const double scale = 1.0507009873554804934193349852946, alpha = 1.6732632423543772848170429916717;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    const std::vector<double> xs = dtype == hg::kFloat32 ? std::vector<double>{-10, -20, -1} : std::vector<double>{-30, -40, -1};
    Tensor x = hg::from_vector<double>(xs, {3}).to(dtype).requires_grad_();
    Tensor x2 = x.detach().requires_grad_();
    hg::selu(x).sum().backward();
    hg::elu(x2, 0.7).sum().backward();
    const std::vector<double> gs = x.grad().to(hg::kFloat64).to_vector<double>();
    const std::vector<double> ge = x2.grad().to(hg::kFloat64).to_vector<double>();
    const double tol = dtype == hg::kFloat32 ? 1e-6 : 1e-14;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double x_i = static_cast<double>(x.detach().to(hg::kFloat64).to_vector<double>()[i]);
      CHECK(gs[i] == doctest::Approx(scale * alpha * std::exp(x_i)).epsilon(tol));
      CHECK(ge[i] == doctest::Approx(0.7 * std::exp(x_i)).epsilon(tol));
    }
  }
}
