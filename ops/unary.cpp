// Elementwise unary ops: math functions, activations, clamp and logical_not, each with its backward formula
// written in hg ops (so it runs on any backend and can be differentiated again).
//
// dtypes follow PyTorch: the floating-point functions compute int64/bool inputs in float32; neg, abs, sign,
// square, relu and clamp keep int64 (bool: sign keeps bool, square and integral clamps give int64, neg, abs
// and relu refuse it); logical_not gives bool.
#include <cmath>
#include <limits>
#include <numbers>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// SELU's constants (Klambauer et al. 2017, eq. 14), as in PyTorch.
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kTwoOverSqrtPi = 2.0 * std::numbers::inv_sqrtpi;                 // erf'(0)
constexpr double kInvSqrt2Pi = std::numbers::inv_sqrtpi / std::numbers::sqrt2;    // φ(0) = 1/√(2π)
constexpr double kSqrt2OverPi = std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // √(2/π), tanh-gelu's β

void check_defined(const Tensor& x, const char* op) { HG_CHECK(x.defined(), "{}: got an undefined tensor", op); }

// dtype of a floating-point function of x: x's own when floating, float32 for int64/bool (as torch.exp).
DType floating_dtype(const Tensor& x, const char* op) {
  check_defined(x, op);
  return is_floating(x.dtype()) ? x.dtype() : kFloat32;
}

// dtype of an op that keeps numbers numeric (neg, abs, relu): bool is refused, as in PyTorch.
DType numeric_dtype(const Tensor& x, const char* op, const char* hint) {
  check_defined(x, op);
  HG_CHECK(x.dtype() != kBool, "{}: not defined for bool tensors (got {}){}", op, x.desc(), hint);
  return x.dtype();
}

// Runs the backend kernel into a new tensor of x's shape; x is converted to `dtype` first.
Tensor run_unary(UnaryOp op, const Tensor& x, DType dtype, UnaryParams params = {}) {
  Tensor input = x.detach().to(dtype);
  Tensor out = empty(x.sizes(), op == UnaryOp::LogicalNot ? kBool : dtype, x.device());
  backend_for(x.device()).unary(op, input, out, params);
  return out;
}

// Which tensors a backward formula reads.
enum Saves : unsigned { kSaveNothing = 0, kSaveInput = 1, kSaveOutput = 2, kSaveBoth = 3 };

// Records y = op(x) with ∂L/∂x = grad(g, x, y); x and y are kept only when `saves` asks for them (y is kept as
// this node's output, so a second differentiation sees it as a function of x).
template <typename Grad>
void record_unary(const char* name, const Tensor& x, const Tensor& y, Saves saves, Grad grad) {
  if (!any_requires_grad(x)) return;
  SavedTensor saved_x = (saves & kSaveInput) ? SavedTensor(x) : SavedTensor();
  SavedTensor saved_y = (saves & kSaveOutput) ? SavedTensor(y, true) : SavedTensor();
  record_op(name, {x}, y, [saved_x, saved_y, grad](const Tensors& g, const BackwardContext& c) {
    Tensor xs = saved_x.defined() ? saved_x.unpack(c) : Tensor();
    Tensor ys = saved_y.defined() ? saved_y.unpack(c) : Tensor();
    return Tensors{grad(g[0], xs, ys)};
  });
}

// g where `mask`, else 0 (a where, not a product, so that inf/NaN gradients outside the mask do not leak).
Tensor masked_grad(const Tensor& mask, const Tensor& g) { return where(mask, g, 0.0); }

// Shared by clamp, clamp_min and clamp_max; lo/hi = ∓inf for a missing bound.
Tensor clamp_impl(const char* name, const Tensor& x, std::optional<double> min, std::optional<double> max) {
  check_defined(x, name);
  double lo = min.value_or(-std::numeric_limits<double>::infinity());
  double hi = max.value_or(std::numeric_limits<double>::infinity());
  // An integer tensor stays int64 under integral bounds (bool becomes int64, as torch.clamp); a fractional
  // bound, or one beyond int64's range, makes the result float32 (as binary ops with a scalar do).
  auto fits_int64 = [](std::optional<double> b) {
    return !b || (std::floor(*b) == *b && std::abs(*b) < 0x1p63);
  };
  DType dtype = x.dtype();
  if (!is_floating(dtype)) dtype = fits_int64(min) && fits_int64(max) ? kInt64 : kFloat32;
  Tensor y = run_unary(UnaryOp::Clamp, x, dtype, UnaryParams{lo, hi});
  // ∂L/∂x = g where lo ≤ x ≤ hi (both boundaries pass the gradient, as PyTorch), else 0.
  record_unary(name, x, y, kSaveInput, [min, max](const Tensor& g, const Tensor& xs, const Tensor&) {
    Tensor inside;
    if (min) inside = ge(xs, *min);
    if (max) inside = inside.defined() ? logical_and(inside, le(xs, *max)) : le(xs, *max);
    return masked_grad(inside, g);
  });
  return y;
}

}  // namespace

// y = −x ;  ∂L/∂x = −g
Tensor neg(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Neg, x, numeric_dtype(x, "neg", "; to invert a mask use hg::logical_not"));
  record_unary("neg", x, y, kSaveNothing, [](const Tensor& g, const Tensor&, const Tensor&) { return neg(g); });
  return y;
}

// y = |x| ;  ∂L/∂x = g ⊙ sign(x)  (0 at x = 0, as PyTorch)
Tensor abs(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Abs, x, numeric_dtype(x, "abs", ""));
  record_unary("abs", x, y, kSaveInput,
               [](const Tensor& g, const Tensor& xs, const Tensor&) { return mul(g, sign(xs)); });
  return y;
}

// y = sign(x) ∈ {−1, 0, 1} (0 for NaN, as torch.sign) ;  ∂L/∂x = 0
Tensor sign(const Tensor& x) {
  check_defined(x, "sign");
  Tensor y = run_unary(UnaryOp::Sign, x, x.dtype());
  record_unary("sign", x, y, kSaveNothing,
               [](const Tensor& g, const Tensor&, const Tensor&) { return zeros_like(g); });
  return y;
}

// y = eˣ ;  ∂L/∂x = g ⊙ y
Tensor exp(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Exp, x, floating_dtype(x, "exp"));
  record_unary("exp", x, y, kSaveOutput, [](const Tensor& g, const Tensor&, const Tensor& ys) { return mul(g, ys); });
  return y;
}

// y = ln x ;  ∂L/∂x = g / x
Tensor log(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Log, x, floating_dtype(x, "log"));
  record_unary("log", x, y, kSaveInput, [](const Tensor& g, const Tensor& xs, const Tensor&) { return div(g, xs); });
  return y;
}

// y = ln(1 + x) ;  ∂L/∂x = g / (1 + x)
Tensor log1p(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Log1p, x, floating_dtype(x, "log1p"));
  record_unary("log1p", x, y, kSaveInput,
               [](const Tensor& g, const Tensor& xs, const Tensor&) { return div(g, add(xs, 1.0)); });
  return y;
}

// y = eˣ − 1 ;  ∂L/∂x = g ⊙ (y + 1)
Tensor expm1(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Expm1, x, floating_dtype(x, "expm1"));
  record_unary("expm1", x, y, kSaveOutput,
               [](const Tensor& g, const Tensor&, const Tensor& ys) { return mul(g, add(ys, 1.0)); });
  return y;
}

// y = √x ;  ∂L/∂x = g / (2y)
Tensor sqrt(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Sqrt, x, floating_dtype(x, "sqrt"));
  record_unary("sqrt", x, y, kSaveOutput,
               [](const Tensor& g, const Tensor&, const Tensor& ys) { return div(g, mul(ys, 2.0)); });
  return y;
}

// y = 1/√x ;  ∂L/∂x = −g ⊙ y³ / 2
Tensor rsqrt(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Rsqrt, x, floating_dtype(x, "rsqrt"));
  record_unary("rsqrt", x, y, kSaveOutput, [](const Tensor& g, const Tensor&, const Tensor& ys) {
    return mul(g, mul(mul(ys, square(ys)), -0.5));
  });
  return y;
}

// y = 1/x ;  ∂L/∂x = −g ⊙ y²
Tensor reciprocal(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Reciprocal, x, floating_dtype(x, "reciprocal"));
  record_unary("reciprocal", x, y, kSaveOutput,
               [](const Tensor& g, const Tensor&, const Tensor& ys) { return neg(mul(g, square(ys))); });
  return y;
}

// y = sin x ;  ∂L/∂x = g ⊙ cos x
Tensor sin(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Sin, x, floating_dtype(x, "sin"));
  record_unary("sin", x, y, kSaveInput,
               [](const Tensor& g, const Tensor& xs, const Tensor&) { return mul(g, cos(xs)); });
  return y;
}

// y = cos x ;  ∂L/∂x = −g ⊙ sin x
Tensor cos(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Cos, x, floating_dtype(x, "cos"));
  record_unary("cos", x, y, kSaveInput,
               [](const Tensor& g, const Tensor& xs, const Tensor&) { return neg(mul(g, sin(xs))); });
  return y;
}

// y = tanh x ;  ∂L/∂x = g ⊙ (1 − y²)
Tensor tanh(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Tanh, x, floating_dtype(x, "tanh"));
  record_unary("tanh", x, y, kSaveOutput,
               [](const Tensor& g, const Tensor&, const Tensor& ys) { return mul(g, rsub(square(ys), 1.0)); });
  return y;
}

// y = σ(x) = 1 / (1 + e^−x) ;  ∂L/∂x = g ⊙ y ⊙ (1 − y)
Tensor sigmoid(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Sigmoid, x, floating_dtype(x, "sigmoid"));
  record_unary("sigmoid", x, y, kSaveOutput, [](const Tensor& g, const Tensor&, const Tensor& ys) {
    return mul(g, mul(ys, rsub(ys, 1.0)));
  });
  return y;
}

// y = erf x ;  ∂L/∂x = g ⊙ (2/√π)·e^(−x²)
Tensor erf(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Erf, x, floating_dtype(x, "erf"));
  record_unary("erf", x, y, kSaveInput, [](const Tensor& g, const Tensor& xs, const Tensor&) {
    return mul(g, mul(exp(neg(square(xs))), kTwoOverSqrtPi));
  });
  return y;
}

// y = x² ;  ∂L/∂x = 2g ⊙ x
Tensor square(const Tensor& x) {
  check_defined(x, "square");
  DType dtype = x.dtype() == kBool ? kInt64 : x.dtype();  // torch.square(bool) is int64
  Tensor y = run_unary(UnaryOp::Square, x, dtype);
  record_unary("square", x, y, kSaveInput,
               [](const Tensor& g, const Tensor& xs, const Tensor&) { return mul(g, mul(xs, 2.0)); });
  return y;
}

// y = max(x, 0) (NaN stays NaN) ;  ∂L/∂x = 0 where y <= 0, else g (so a NaN passes g on, as PyTorch's
// threshold_backward): one backend pass over g and y, or, when this backward is itself recorded (create_graph) or
// g comes in another dtype, the composite where(!(y <= 0), g, 0), which the fused kernel is tested against.
Tensor relu(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Relu, x, numeric_dtype(x, "relu", ""));
  record_unary("relu", x, y, kSaveOutput, [](const Tensor& g, const Tensor&, const Tensor& ys) {
    if (GradMode::is_enabled() || g.dtype() != ys.dtype() || !is_floating(ys.dtype()))
      return masked_grad(logical_not(le(ys, 0.0)), g);
    Tensor grad_x = empty(ys.sizes(), ys.dtype(), ys.device());
    backend_for(ys.device()).relu_backward(g, ys, grad_x);
    return grad_x;
  });
  return y;
}

namespace {

// y = gelu′(x) = Φ(x) + x·φ(x) in one kernel pass: the derivative in gelu's differentiable backward
// ∂L/∂x = g · φ(x)·(2 − x²)
Tensor gelu_derivative(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::GeluDerivative, x, x.dtype());
  record_unary("gelu_derivative", x, y, kSaveInput, [](const Tensor& g, const Tensor& xs, const Tensor&) {
    Tensor x_sq = square(xs);
    Tensor pdf = mul(exp(mul(x_sq, -0.5)), kInvSqrt2Pi);
    return mul(g, mul(pdf, rsub(x_sq, 2.0)));
  });
  return y;
}

// gelu's backward written with ops: it can be differentiated again (create_graph), and it is what the fused
// kernel is tested against.
Tensor gelu_backward_composite(const Tensor& g, const Tensor& x, GeluApproximation approximate) {
  if (approximate == GeluApproximation::None) return mul(g, gelu_derivative(x));
  constexpr double kBeta = kSqrt2OverPi, kKappa = 0.044715;
  Tensor x_sq = square(x);
  Tensor tanh_u = tanh(mul(mul(x, add(mul(x_sq, kKappa), 1.0)), kBeta));
  Tensor left_derivative = mul(add(tanh_u, 1.0), 0.5);
  Tensor du_dx = mul(add(mul(x_sq, 3.0 * kKappa), 1.0), kBeta);
  Tensor right_derivative = mul(mul(mul(x, 0.5), rsub(square(tanh_u), 1.0)), du_dx);
  return mul(g, add(left_derivative, right_derivative));
}

// ∂L/∂x = g ⊙ gelu′(x): one backend pass that reads g and x once (PyTorch's gelu_backward), unless this backward
// is itself being recorded (create_graph) — then the composite. The engine hands g over in y's shape (at most an
// expanded view, which the kernel reads through its strides) and, except for a root gradient passed to
// backward(), in y's dtype; a root gradient of another dtype takes the composite, which promotes.
Tensor gelu_backward(const Tensor& g, const Tensor& x, GeluApproximation approximate) {
  if (GradMode::is_enabled() || g.dtype() != x.dtype()) return gelu_backward_composite(g, x, approximate);
  Tensor grad_x = empty(x.sizes(), x.dtype(), x.device());
  backend_for(x.device()).gelu_backward(g, x, approximate, grad_x);
  return grad_x;
}

}  // namespace

// approximate = "none":  y = x·Φ(x) ;  ∂L/∂x = g ⊙ (Φ(x) + x·φ(x)),  Φ(x) = (1 + erf(x/√2))/2, φ(x) = e^(−x²/2)/√(2π)
// approximate = "tanh":  y = x/2 · (1 + tanh u),  u = √(2/π)·(x + κx³), κ = 0.044715 ;
//                        ∂L/∂x = g ⊙ ((1 + tanh u)/2 + x/2 · (1 − tanh² u) · √(2/π)·(1 + 3κx²))
Tensor gelu(const Tensor& x, const std::string& approximate) {
  HG_CHECK(approximate == "none" || approximate == "tanh",
           "gelu: approximate must be \"none\" or \"tanh\", got \"{}\"", approximate);
  const GeluApproximation approximation = approximate == "tanh" ? GeluApproximation::Tanh : GeluApproximation::None;
  Tensor y = run_unary(approximation == GeluApproximation::Tanh ? UnaryOp::GeluTanh : UnaryOp::Gelu, x,
                       floating_dtype(x, "gelu"));
  record_unary("gelu", x, y, kSaveInput, [approximation](const Tensor& g, const Tensor& xs, const Tensor&) {
    return gelu_backward(g, xs, approximation);
  });
  return y;
}

// α·e^min(x, 0): the negative branch's derivative from the input. Written from the output as y + α it cancels
// for x ≪ 0 (y → −α): SELU's float32 gradient at x = −10 was 6.6e-4 off, and exactly 0 from x ≈ −17 (PyTorch's
// out-of-place elu_backward also works from the input). min(x, 0) keeps eˣ finite where the branch is not taken.
namespace {
// ∂L/∂x = g ⊙ (x > 0 ? scale : scale·α·eˣ): one backend pass (Backend::elu_backward), or, when this backward is
// itself recorded (create_graph) or g comes in another dtype, the composite the kernel is tested against.
Tensor elu_backward(const Tensor& g, const Tensor& x, double scale, double alpha) {
  if (GradMode::is_enabled() || g.dtype() != x.dtype())
    return mul(g, where(gt(x, 0.0), scale, mul(exp(where(gt(x, 0.0), 0.0, x)), scale * alpha)));
  Tensor grad_x = empty(x.sizes(), x.dtype(), x.device());
  backend_for(x.device()).elu_backward(g, x, scale, alpha, grad_x);
  return grad_x;
}
}  // namespace

// y = scale·(x > 0 ? x : α(eˣ − 1)) ;  ∂L/∂x = g ⊙ (x > 0 ? scale : scale·α·eˣ)
Tensor selu(const Tensor& x) {
  Tensor y = run_unary(UnaryOp::Selu, x, floating_dtype(x, "selu"));
  record_unary("selu", x, y, kSaveInput, [](const Tensor& g, const Tensor& xs, const Tensor&) {
    return elu_backward(g, xs, kSeluScale, kSeluAlpha);
  });
  return y;
}

// y = x > 0 ? x : α(eˣ − 1) ;  ∂L/∂x = g ⊙ (x > 0 ? 1 : α·eˣ)
Tensor elu(const Tensor& x, double alpha) {
  Tensor y = run_unary(UnaryOp::Elu, x, floating_dtype(x, "elu"), UnaryParams{alpha, 0.0});
  record_unary("elu", x, y, kSaveInput, [alpha](const Tensor& g, const Tensor& xs, const Tensor&) {
    return elu_backward(g, xs, 1.0, alpha);
  });
  return y;
}

// y = βx > threshold ? x : ln(1 + e^(βx))/β ;  ∂L/∂x = βx > threshold ? g : g ⊙ σ(βx)
Tensor softplus(const Tensor& x, double beta, double threshold) {
  Tensor y = run_unary(UnaryOp::Softplus, x, floating_dtype(x, "softplus"), UnaryParams{beta, threshold});
  record_unary("softplus", x, y, kSaveInput, [beta, threshold](const Tensor& g, const Tensor& xs, const Tensor&) {
    Tensor z = mul(xs, beta);
    return where(gt(z, threshold), g, mul(g, sigmoid(z)));
  });
  return y;
}

// y = ¬x (true where x == 0) ; not differentiable
Tensor logical_not(const Tensor& x) {
  check_defined(x, "logical_not");
  return run_unary(UnaryOp::LogicalNot, x, x.dtype());
}

// y = min(max(x, min), max)
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  HG_CHECK(min.has_value() || max.has_value(), "clamp: at least one of min and max must be given (got neither)");
  return clamp_impl("clamp", x, min, max);
}
Tensor clamp_min(const Tensor& x, double min) { return clamp_impl("clamp_min", x, min, std::nullopt); }
Tensor clamp_max(const Tensor& x, double max) { return clamp_impl("clamp_max", x, std::nullopt, max); }

}  // namespace hg
