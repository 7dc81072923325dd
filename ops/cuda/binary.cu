// CUDA binary elementwise ops, binary_scalar and where(). CPU reference: ops/cpu/binary.cpp — NaN-propagating
// maximum/minimum, integer pow by squaring, heaviside(x, v) = v at x = 0, comparisons and logical ops writing bool.
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

template <typename T> __device__ __forceinline__ T nan_max(T a, T b) {
  if (is_nan(a) || is_nan(b)) return std::numeric_limits<T>::quiet_NaN();
  return a > b ? a : b;
}
template <typename T> __device__ __forceinline__ T nan_min(T a, T b) {
  if (is_nan(a) || is_nan(b)) return std::numeric_limits<T>::quiet_NaN();
  return a < b ? a : b;
}
// base^exp by squaring; negative exponents give 0 except for bases ±1, as torch.pow on integers.
__device__ __forceinline__ int64_t int_pow(int64_t base, int64_t exp) {
  if (exp < 0) return base == 1 ? 1 : (base == -1 ? ((exp & 1) ? -1 : 1) : 0);
  int64_t r = 1;
  while (exp) {
    if (exp & 1) r *= base;
    base *= base;
    exp >>= 1;
  }
  return r;
}
__device__ __forceinline__ float pow_(float a, float b) { return ::powf(a, b); }
__device__ __forceinline__ double pow_(double a, double b) { return ::pow(a, b); }

// Loads operand a (a tensor value) and b (a tensor value, or the captured scalar), in the requested order.
template <typename T, typename Op>
void launch_arith(const Tensor& a, const Tensor* b, T s, bool scalar_first, Tensor& out, Op op) {
  if (b) return gpu_kernel<T, T, T>(out, {&a, b}, op);
  if (scalar_first)
    gpu_kernel<T, T>(out, {&a}, [s, op] __device__(T x) { return op(s, x); });
  else
    gpu_kernel<T, T>(out, {&a}, [s, op] __device__(T x) { return op(x, s); });
}

template <typename T, typename Op>
void launch_compare(const Tensor& a, const Tensor* b, T s, bool scalar_first, Tensor& out, Op op) {
  if (b) return gpu_kernel<uint8_t, T, T>(out, {&a, b}, op);
  if (scalar_first)
    gpu_kernel<uint8_t, T>(out, {&a}, [s, op] __device__(T x) { return op(s, x); });
  else
    gpu_kernel<uint8_t, T>(out, {&a}, [s, op] __device__(T x) { return op(x, s); });
}

// out = a op b (b null: the scalar s, on the side given by scalar_first); out has a's dtype.
template <typename T>
void run_arith(BinaryOp op, const Tensor& a, const Tensor* b, T s, bool scalar_first, Tensor& out) {
  auto run = [&](auto f) { launch_arith<T>(a, b, s, scalar_first, out, f); };
  switch (op) {
    case BinaryOp::Add: return run([] __device__(T x, T y) { return x + y; });
    case BinaryOp::Sub: return run([] __device__(T x, T y) { return x - y; });
    case BinaryOp::Mul: return run([] __device__(T x, T y) { return x * y; });
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<T>) {
        HG_FAIL("div (cuda): integer division is not supported by the kernel (the frontend promotes to float)");
      } else {
        return run([] __device__(T x, T y) { return x / y; });
      }
    case BinaryOp::Pow:
      if constexpr (std::is_integral_v<T>)
        return run([] __device__(T x, T y) { return int_pow(x, y); });
      else
        return run([] __device__(T x, T y) { return pow_(x, y); });
    case BinaryOp::Maximum: return run([] __device__(T x, T y) { return nan_max(x, y); });
    case BinaryOp::Minimum: return run([] __device__(T x, T y) { return nan_min(x, y); });
    case BinaryOp::Heaviside: return run([] __device__(T x, T y) { return x == T(0) ? y : static_cast<T>(x > T(0)); });
    default: break;
  }
  HG_FAIL("binary (cuda): op {} is not an arithmetic op", static_cast<int>(op));
}

template <typename T>
void run_compare(BinaryOp op, const Tensor& a, const Tensor* b, T s, bool scalar_first, Tensor& out) {
  auto run = [&](auto f) { launch_compare<T>(a, b, s, scalar_first, out, f); };
  switch (op) {
    case BinaryOp::Eq: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x == y); });
    case BinaryOp::Ne: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x != y); });
    case BinaryOp::Lt: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x < y); });
    case BinaryOp::Le: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x <= y); });
    case BinaryOp::Gt: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x > y); });
    case BinaryOp::Ge: return run([] __device__(T x, T y) { return static_cast<uint8_t>(x >= y); });
    case BinaryOp::LogicalAnd:
      return run([] __device__(T x, T y) { return static_cast<uint8_t>(x != T(0) && y != T(0)); });
    case BinaryOp::LogicalOr:
      return run([] __device__(T x, T y) { return static_cast<uint8_t>(x != T(0) || y != T(0)); });
    default: break;
  }
  HG_FAIL("binary (cuda): op {} is not a comparison", static_cast<int>(op));
}

// Shared by binary and binary_scalar (b null: scalar s).
void run_binary(BinaryOp op, const Tensor& a, const Tensor* b, double s, bool scalar_first, Tensor& out) {
  if (out.numel() == 0) return;
  if (is_comparison(op)) {
    HG_CHECK(out.dtype() == kBool, "binary (cuda): comparison output must be bool, got {}", out.dtype());
    HG_CUDA_DISPATCH_ALL(a.dtype(), "compare", [&] {
      // The scalar converted as the CPU backend's fill() does: to bool means nonzero.
      scalar_t sv = std::is_same_v<scalar_t, uint8_t> ? static_cast<scalar_t>(s != 0.0) : static_cast<scalar_t>(s);
      run_compare<scalar_t>(op, a, b, sv, scalar_first, out);
    });
    return;
  }
  HG_CHECK(out.dtype() == a.dtype(), "binary (cuda): output dtype {} differs from the operands' dtype {}", out.dtype(),
           a.dtype());
  HG_CUDA_DISPATCH_NUMERIC(a.dtype(), "binary",
                           [&] { run_arith<scalar_t>(op, a, b, static_cast<scalar_t>(s), scalar_first, out); });
}

}  // namespace

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  check_on_device("binary", out.device(), {&a, &b, &out});
  HG_CHECK(a.dtype() == b.dtype(), "binary (cuda): operand dtypes differ ({} and {})", a.dtype(), b.dtype());
  HG_CHECK(a.sizes() == out.sizes() && b.sizes() == out.sizes(),
           "binary (cuda): operands {} and {} must be broadcast to the output shape {}", a.sizes(), b.sizes(),
           out.sizes());
  DeviceGuard guard(out.device());
  run_binary(op, a, &b, 0.0, false, out);
}

void CudaBackend::binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, Tensor& out) {
  check_on_device("binary_scalar", out.device(), {&a, &out});
  HG_CHECK(a.sizes() == out.sizes(), "binary_scalar (cuda): operand shape {} differs from the output shape {}",
           a.sizes(), out.sizes());
  DeviceGuard guard(out.device());
  run_binary(op, a, nullptr, s, scalar_first, out);
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  check_on_device("where", out.device(), {&cond, &a, &b, &out});
  HG_CHECK(cond.dtype() == kBool, "where (cuda): condition must be bool, got {}", cond.dtype());
  HG_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "where (cuda): dtypes differ ({}, {}, output {})",
           a.dtype(), b.dtype(), out.dtype());
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_ALL(out.dtype(), "where", [&] {
    gpu_kernel<scalar_t, uint8_t, scalar_t, scalar_t>(
        out, {&cond, &a, &b}, [] __device__(uint8_t c, scalar_t x, scalar_t y) { return c ? x : y; });
  });
}

}  // namespace hg::cuda
