// CUDA elementwise unary ops (CudaBackend::unary). CPU reference: ops/cpu/unary.cpp — the same formulas (PyTorch's),
// the same dtype rules (float32/float64 for everything, int64 for the ops that keep integers, bool for sign and
// logical_not) and the same NaN behaviour (sign(NaN) = 0, relu and clamp keep NaN, a NaN clamp bound gives NaN).
#include <hopgrad/ops/cuda/common.cuh>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cuda {

namespace {

// SELU's constants, as in PyTorch (Klambauer et al. 2017, eq. 14).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
// 1/√2, and √(2/π) = √2 · (2/√π) / 2 spelled with the digits of M_SQRT2 and M_2_SQRTPI, as the CPU computes it.
constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kSqrtTwoOverPi = 1.41421356237309504880 * 1.12837916709551257390 * 0.5;
constexpr double kInvSqrtTwoPi = 0.39894228040143267794;  // 1/√(2π)

// gelu′(x) = Φ(x) + x·φ(x) = (1 + erf(x/√2))/2 + x·e^(−x²/2)/√(2π), in the CPU's (PyTorch's) order of operations;
// the GeluDerivative op and the fused gelu_backward both evaluate it here.
template <typename T> __device__ inline T gelu_derivative_at(T v) {
  const T cdf = T(0.5) * (T(1) + math::erf(v * static_cast<T>(kSqrtHalf)));
  const T pdf = static_cast<T>(kInvSqrtTwoPi) * math::exp(T(-0.5) * v * v);
  return cdf + v * pdf;
}


// float32/float64: every op but LogicalNot.
template <typename T> void floating_unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams p) {
  auto run = [&](auto f) { gpu_kernel<T, T>(out, {&x}, f); };
  switch (op) {
    case UnaryOp::Neg: return run([] __device__(T v) { return -v; });
    case UnaryOp::Abs: return run([] __device__(T v) { return math::fabs(v); });
    // sign(NaN) = 0, as torch.sign.
    case UnaryOp::Sign: return run([] __device__(T v) { return static_cast<T>((T(0) < v) - (v < T(0))); });
    case UnaryOp::Exp: return run([] __device__(T v) { return math::exp(v); });
    case UnaryOp::Log: return run([] __device__(T v) { return math::log(v); });
    case UnaryOp::Log1p: return run([] __device__(T v) { return math::log1p(v); });
    case UnaryOp::Expm1: return run([] __device__(T v) { return math::expm1(v); });
    case UnaryOp::Sqrt: return run([] __device__(T v) { return math::sqrt(v); });
    case UnaryOp::Rsqrt: return run([] __device__(T v) { return T(1) / math::sqrt(v); });
    case UnaryOp::Reciprocal: return run([] __device__(T v) { return T(1) / v; });
    case UnaryOp::Sin: return run([] __device__(T v) { return math::sin(v); });
    case UnaryOp::Cos: return run([] __device__(T v) { return math::cos(v); });
    case UnaryOp::Tanh: return run([] __device__(T v) { return math::tanh(v); });
    // σ(x) = 1 / (1 + e^−x): exp overflows to inf for x ≪ 0 and σ correctly becomes 0.
    case UnaryOp::Sigmoid: return run([] __device__(T v) { return T(1) / (T(1) + math::exp(-v)); });
    case UnaryOp::Erf: return run([] __device__(T v) { return math::erf(v); });
    case UnaryOp::Square: return run([] __device__(T v) { return v * v; });
    // relu keeps NaN (NaN < 0 is false), as torch.relu.
    case UnaryOp::Relu: return run([] __device__(T v) { return v < T(0) ? T(0) : v; });
    // gelu(x) = x·Φ(x) = x/2 · (1 + erf(x/√2))
    case UnaryOp::Gelu:
      return run([] __device__(T v) { return T(0.5) * v * (T(1) + math::erf(v * static_cast<T>(kSqrtHalf))); });
    // gelu′(x) = Φ(x) + x·φ(x)
    case UnaryOp::GeluDerivative: return run([] __device__(T v) { return gelu_derivative_at(v); });
    // gelu_tanh(x) = x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))
    case UnaryOp::GeluTanh:
      return run([] __device__(T v) {
        const T beta = static_cast<T>(kSqrtTwoOverPi), kappa = static_cast<T>(0.044715);
        return T(0.5) * v * (T(1) + math::tanh(beta * (v + kappa * v * v * v)));
      });
    // selu(x) = scale·(x > 0 ? x : α·(eˣ − 1)); expm1 keeps tiny negative inputs exact.
    case UnaryOp::Selu:
      return run([] __device__(T v) {
        const T alpha = static_cast<T>(kSeluAlpha), scale = static_cast<T>(kSeluScale);
        return v > T(0) ? scale * v : scale * alpha * math::expm1(v);
      });
    // elu(x) = x > 0 ? x : α·(eˣ − 1)
    case UnaryOp::Elu: {
      T alpha = static_cast<T>(p.a);
      return run([alpha] __device__(T v) { return v > T(0) ? v : alpha * math::expm1(v); });
    }
    // softplus(x) = log(1 + e^(βx)) / β, and x itself where βx > threshold.
    case UnaryOp::Softplus: {
      T beta = static_cast<T>(p.a), threshold = static_cast<T>(p.b);
      return run([beta, threshold] __device__(T v) {
        T z = v * beta;
        return z > threshold ? v : math::log1p(math::exp(z)) / beta;
      });
    }
    // clamp(x) = min(max(x, lo), hi): NaN inputs stay NaN; lo > hi gives hi everywhere, as torch.clamp.
    case UnaryOp::Clamp: {
      if (std::isnan(p.a) || std::isnan(p.b))  // a NaN bound makes every result NaN
        return run([] __device__(T) { return std::numeric_limits<T>::quiet_NaN(); });
      T lo = static_cast<T>(p.a), hi = static_cast<T>(p.b);
      return run([lo, hi] __device__(T v) {
        T y = v < lo ? lo : v;
        return y > hi ? hi : y;
      });
    }
    case UnaryOp::LogicalNot: break;
  }
  HG_FAIL("unary (cuda): op {} is not handled by the floating-point kernel", unary_name(op));
}

// grad_x = g ⊙ gelu′(x) in one pass, the CPU kernel's formulas (PyTorch's) in the same order of operations.
template <typename T>
void gelu_backward_kernel(const Tensor& g, const Tensor& x, GeluApproximation approximate, Tensor& grad_x) {
  auto run = [&](auto derivative_times) { gpu_kernel<T, T, T>(grad_x, {&g, &x}, derivative_times); };
  if (approximate == GeluApproximation::None)
    return run([] __device__(T dy, T v) { return dy * gelu_derivative_at(v); });
  // gelu′(x) = (1 + tanh u)/2 + x/2 · (1 − tanh²u) · β(1 + 3κx²),  u = β(x + κx³), β = √(2/π), κ = 0.044715
  return run([] __device__(T dy, T v) {
    const T beta = static_cast<T>(kSqrtTwoOverPi), kappa = static_cast<T>(0.044715);
    const T x_sq = v * v;
    const T tanh_u = math::tanh(beta * (v + kappa * (x_sq * v)));
    const T left_derivative = T(0.5) * (T(1) + tanh_u);
    const T right_derivative = (T(0.5) * v) * (T(1) - tanh_u * tanh_u) * (beta * (T(1) + T(3) * kappa * x_sq));
    return dy * (left_derivative + right_derivative);
  });
}

// A double bound as an int64 bound, saturating (±inf for a missing bound becomes the int64 limit).
int64_t saturate_to_int64(double v) {
  if (v <= static_cast<double>(std::numeric_limits<int64_t>::min())) return std::numeric_limits<int64_t>::min();
  if (v >= static_cast<double>(std::numeric_limits<int64_t>::max())) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(v);
}

// int64: the ops that keep integer results. Negation and squaring wrap around (two's complement), computed in
// uint64_t so that overflow is defined.
void int64_unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams p) {
  auto run = [&](auto f) { gpu_kernel<int64_t, int64_t>(out, {&x}, f); };
  switch (op) {
    case UnaryOp::Neg:
      return run([] __device__(int64_t v) { return static_cast<int64_t>(uint64_t{0} - static_cast<uint64_t>(v)); });
    case UnaryOp::Abs:
      return run([] __device__(int64_t v) {
        return v < 0 ? static_cast<int64_t>(uint64_t{0} - static_cast<uint64_t>(v)) : v;
      });
    case UnaryOp::Sign: return run([] __device__(int64_t v) { return static_cast<int64_t>((0 < v) - (v < 0)); });
    case UnaryOp::Square:
      return run([] __device__(int64_t v) {
        return static_cast<int64_t>(static_cast<uint64_t>(v) * static_cast<uint64_t>(v));
      });
    case UnaryOp::Relu: return run([] __device__(int64_t v) { return v < 0 ? int64_t{0} : v; });
    case UnaryOp::Clamp: {
      int64_t lo = saturate_to_int64(p.a), hi = saturate_to_int64(p.b);
      return run([lo, hi] __device__(int64_t v) {
        int64_t y = v < lo ? lo : v;
        return y > hi ? hi : y;
      });
    }
    default: break;
  }
  HG_FAIL("unary (cuda): {} is not defined for int64 tensors (expected float32 or float64; the op frontends convert)",
          unary_name(op));
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams params) {
  check_on_device(unary_name(op), out.device(), {&x, &out});
  HG_CHECK(x.sizes() == out.sizes(), "unary {} (cuda): input shape {} differs from output shape {}", unary_name(op),
           x.sizes(), out.sizes());
  DeviceGuard guard(out.device());
  if (op == UnaryOp::LogicalNot) {
    HG_CHECK(out.dtype() == kBool, "unary logical_not (cuda): output must be bool, got {}", out.dtype());
    HG_CUDA_DISPATCH_ALL(x.dtype(), "logical_not", [&] {
      gpu_kernel<uint8_t, scalar_t>(out, {&x},
                                    [] __device__(scalar_t v) { return static_cast<uint8_t>(v == scalar_t(0)); });
    });
    return;
  }
  HG_CHECK(x.dtype() == out.dtype(), "unary {} (cuda): input dtype {} differs from output dtype {}", unary_name(op),
           x.dtype(), out.dtype());
  if (out.numel() == 0) return;
  switch (x.dtype()) {
    case kFloat32: return floating_unary<float>(op, x, out, params);
    case kFloat64: return floating_unary<double>(op, x, out, params);
    case kInt64: return int64_unary(op, x, out, params);
    case kBool:
      // sign of a bool is the bool itself (torch.sign keeps bool); the frontends convert bool for the others.
      HG_CHECK(op == UnaryOp::Sign, "unary (cuda): {} is not defined for bool tensors", unary_name(op));
      gpu_kernel<uint8_t, uint8_t>(out, {&x}, [] __device__(uint8_t v) { return static_cast<uint8_t>(v != 0); });
      return;
  }
}

void CudaBackend::gelu_backward(const Tensor& grad_out, const Tensor& x, GeluApproximation approximate,
                                Tensor& grad_x) {
  check_on_device("gelu_backward", grad_x.device(), {&grad_out, &x, &grad_x});
  hg::detail::check_activation_backward_kernel("gelu_backward", "x", grad_out, x, grad_x);
  DeviceGuard guard(grad_x.device());
  if (x.dtype() == kFloat32) return gelu_backward_kernel<float>(grad_out, x, approximate, grad_x);
  gelu_backward_kernel<double>(grad_out, x, approximate, grad_x);
}

// grad_x = y > 0 ? g : 0 in one pass, as the CPU kernel.
template <typename T>
void relu_backward_kernel(const Tensor& g, const Tensor& y, Tensor& grad_x) {
  gpu_kernel<T, T, T>(grad_x, {&g, &y}, [] __device__(T dy, T v) { return v <= T(0) ? T(0) : dy; });
}

void CudaBackend::relu_backward(const Tensor& grad_out, const Tensor& y, Tensor& grad_x) {
  check_on_device("relu_backward", grad_x.device(), {&grad_out, &y, &grad_x});
  hg::detail::check_activation_backward_kernel("relu_backward", "y", grad_out, y, grad_x);
  DeviceGuard guard(grad_x.device());
  if (y.dtype() == kFloat32) return relu_backward_kernel<float>(grad_out, y, grad_x);
  relu_backward_kernel<double>(grad_out, y, grad_x);
}

// grad_x = g ⊙ (x > 0 ? scale : scale·α·eˣ) in one pass, as the CPU kernel.
template <typename T>
void elu_backward_kernel(const Tensor& g, const Tensor& x, T s, T sa, Tensor& grad_x) {
  gpu_kernel<T, T, T>(grad_x, {&g, &x}, [s, sa] __device__(T dy, T v) {
    const T negative = sa * math::exp(v < T(0) || v != v ? v : T(0));
    return dy * (v > T(0) ? s : negative);
  });
}

void CudaBackend::elu_backward(const Tensor& grad_out, const Tensor& x, double scale, double alpha, Tensor& grad_x) {
  check_on_device("elu_backward", grad_x.device(), {&grad_out, &x, &grad_x});
  hg::detail::check_activation_backward_kernel("elu_backward", "x", grad_out, x, grad_x);
  DeviceGuard guard(grad_x.device());
  if (x.dtype() == kFloat32)
    return elu_backward_kernel<float>(grad_out, x, static_cast<float>(scale), static_cast<float>(scale * alpha),
                                      grad_x);
  elu_backward_kernel<double>(grad_out, x, scale, scale * alpha, grad_x);
}

}  // namespace hg::cuda
