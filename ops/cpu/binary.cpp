// CPU binary elementwise ops and where(): loops from ops/cpu/loops.h over broadcast views.
#include <cmath>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {

// maximum/minimum propagate NaN, as torch.maximum does.
template <typename T> inline T nan_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a > b ? a : b;
}
template <typename T> inline T nan_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a < b ? a : b;
}
template <typename T> inline T int_pow(T base, T exp) {
  if (exp < 0) return base == 1 ? 1 : (base == -1 ? ((exp & 1) ? -1 : 1) : 0);
  T r = 1;
  while (exp) {
    if (exp & 1) r *= base;
    base *= base;
    exp >>= 1;
  }
  return r;
}

// Arithmetic ops: out has the inputs' dtype. `get_a(i)`/`get_b(i)` abstraction is avoided so that the
// compiler sees plain loops; the scalar variants below reuse the same functors.
template <typename T, typename F>
void arith(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  cpu_kernel<T, T, T>(out, {&a, &b}, f);
}

template <typename T>
void run_arith(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Add: return arith<T>(a, b, out, [](T x, T y) { return x + y; });
    case BinaryOp::Sub: return arith<T>(a, b, out, [](T x, T y) { return x - y; });
    case BinaryOp::Mul: return arith<T>(a, b, out, [](T x, T y) { return x * y; });
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<T>) {
        HG_FAIL("div: integer division is not supported by the kernel (the frontend promotes to float)");
      } else {
        return arith<T>(a, b, out, [](T x, T y) { return x / y; });
      }
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<T>)
        return arith<T>(a, b, out, [](T x, T y) { return int_pow<T>(x, y); });
      else
        return arith<T>(a, b, out, [](T x, T y) { return std::pow(x, y); });
    case BinaryOp::Maximum: return arith<T>(a, b, out, [](T x, T y) { return nan_max(x, y); });
    case BinaryOp::Minimum: return arith<T>(a, b, out, [](T x, T y) { return nan_min(x, y); });
    case BinaryOp::Heaviside:
      return arith<T>(a, b, out, [](T x, T y) { return x == T(0) ? y : static_cast<T>(x > T(0)); });
    default: break;
  }
  HG_FAIL("binary: op {} is not an arithmetic op", static_cast<int>(op));
}

template <typename T>
void run_compare(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  auto cmp = [&](auto f) { cpu_kernel<uint8_t, T, T>(out, {&a, &b}, f); };
  switch (op) {
    case BinaryOp::Eq: return cmp([](T x, T y) { return static_cast<uint8_t>(x == y); });
    case BinaryOp::Ne: return cmp([](T x, T y) { return static_cast<uint8_t>(x != y); });
    case BinaryOp::Lt: return cmp([](T x, T y) { return static_cast<uint8_t>(x < y); });
    case BinaryOp::Le: return cmp([](T x, T y) { return static_cast<uint8_t>(x <= y); });
    case BinaryOp::Gt: return cmp([](T x, T y) { return static_cast<uint8_t>(x > y); });
    case BinaryOp::Ge: return cmp([](T x, T y) { return static_cast<uint8_t>(x >= y); });
    case BinaryOp::LogicalAnd: return cmp([](T x, T y) { return static_cast<uint8_t>(x != T(0) && y != T(0)); });
    case BinaryOp::LogicalOr: return cmp([](T x, T y) { return static_cast<uint8_t>(x != T(0) || y != T(0)); });
    default: break;
  }
  HG_FAIL("binary: op {} is not a comparison", static_cast<int>(op));
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  HG_CHECK(a.dtype() == b.dtype(), "binary: operand dtypes differ ({} and {})", a.dtype(), b.dtype());
  if (is_comparison(op)) {
    HG_CHECK(out.dtype() == kBool, "binary: comparison output must be bool, got {}", out.dtype());
    HG_DISPATCH_ALL(a.dtype(), "compare", [&] { run_compare<scalar_t>(op, a, b, out); });
    return;
  }
  HG_DISPATCH_NUMERIC(a.dtype(), "binary", [&] { run_arith<scalar_t>(op, a, b, out); });
}

void CpuBackend::binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, Tensor& out) {
  // A 0-stride view of a one-element host tensor turns the scalar into a broadcast operand, so the scalar
  // path reuses the same vectorised loops.
  Tensor scalar = empty({}, a.dtype(), kCPU);
  fill(scalar, s);
  Tensor sb = make_tensor(scalar.storage(), a.sizes(), Shape(a.sizes().size(), 0), 0, a.dtype());
  if (scalar_first)
    binary(op, sb, a, out);
  else
    binary(op, a, sb, out);
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  HG_CHECK(cond.dtype() == kBool, "where: condition must be bool, got {}", cond.dtype());
  HG_DISPATCH_ALL(out.dtype(), "where", [&] {
    cpu_kernel<scalar_t, uint8_t, scalar_t, scalar_t>(out, {&cond, &a, &b},
                                                      [](uint8_t c, scalar_t x, scalar_t y) { return c ? x : y; });
  });
}

}  // namespace hg::cpu
