// CPU/CUDA parity of every hg::Backend method, path by path. Each HG_BACKEND_TEST below calls the backend
// directly (hg::backend_for(device)) with inputs shaped to reach one branch of the CUDA kernels in ops/cuda/*.cu —
// dtype dispatches (float32/float64/int64/bool), strided, broadcast (stride 0) and expanded operands, strided
// outputs, empty tensors, NaN/±inf/−0, and sizes on both sides of the kernels' thresholds (1, 16/17, 31/32/33,
// 64/65, 1000+, row splits, few long columns) — and returns the results, so that a GPU run reports any CPU/CUDA
// mismatch. Each body also checks its results against an independent reference (plain loops in double), so the
// CPU half is a test of its own.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include <hopgrad/ops/backend.h>

#include "testing.h"

namespace {

using hg::Device;
using hg::DType;
using hg::Tensor;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

hg::Backend& be(Device d) { return hg::backend_for(d); }

Tensor empty_on(hg::IntArrayRef sizes, DType dtype, Device device) {
  return hg::empty(sizes, hg::TensorOptions(dtype).device(device));
}

// A CPU float64 tensor of `values`, converted to `dtype`.
Tensor host(const std::vector<double>& values, hg::IntArrayRef sizes, DType dtype = hg::kFloat64) {
  return hg::from_vector<double>(values, sizes).to(dtype);
}

Tensor host_i64(const std::vector<int64_t>& values, hg::IntArrayRef sizes) {
  return hg::from_vector<int64_t>(values, sizes);
}

// The elements of t in row-major order, as doubles, on the host.
std::vector<double> vals(const Tensor& t) {
  return t.detach().to(hg::kCPU).to(hg::kFloat64).contiguous().to_vector<double>();
}

Tensor uni(hg::IntArrayRef sizes, double lo, double hi, uint64_t seed, DType dtype, Device device) {
  return hgtest::uniform(sizes, lo, hi, seed).to(dtype).to(device);
}

// Integer-valued float64 in [lo, hi]: exact sums in any order (scatter_add's atomics, split reductions).
Tensor ints(hg::IntArrayRef sizes, int64_t lo, int64_t hi, uint64_t seed) {
  // truncation toward zero keeps every value in [lo, hi]
  return hgtest::uniform(sizes, static_cast<double>(lo), static_cast<double>(hi) + 1.0, seed).to(hg::kInt64).to(hg::kFloat64);
}

Tensor ref(const std::vector<double>& v, hg::IntArrayRef sizes) { return host(v, sizes); }

double round_to(DType dtype, double v) {
  if (dtype == hg::kFloat32) return static_cast<double>(static_cast<float>(v));
  return v;
}

const DType kFloating[] = {hg::kFloat32, hg::kFloat64};
const DType kNumeric[] = {hg::kFloat32, hg::kFloat64, hg::kInt64};
const DType kAll[] = {hg::kFloat32, hg::kFloat64, hg::kInt64, hg::kBool};

}  // namespace

// ---- copy, fill, arange, random ------------------------------------------------------------------------------

HG_BACKEND_TEST(parity_copy_every_dtype_pair_layout_and_host_transfer) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  // Values every dtype can hold somewhere: NaN/±inf become INT64_MIN in int64 and true in bool; −0.0 is false.
  std::vector<double> v = {kNaN, kInf, -kInf, -0.0, 0.0, 0.5, -2.75, 3.0, 1e20, -7.0, 1.0, 2.0};
  for (DType src_dtype : kAll) {
    Tensor src_host = host(v, {3, 4}, src_dtype == hg::kInt64 || src_dtype == hg::kBool ? hg::kFloat64 : src_dtype);
    if (src_dtype == hg::kInt64) src_host = host_i64({-5, 0, 7, kI64Min, kI64Max, 1, -1, 2, 3, 4, 5, 6}, {3, 4});
    if (src_dtype == hg::kBool) src_host = src_host.to(hg::kBool);
    const std::vector<double> sv = vals(src_host);
    for (DType out_dtype : kAll) {
      auto expect = [&](double s) -> double {
        if (out_dtype == hg::kBool) return s != 0.0 || std::isnan(s) ? 1.0 : 0.0;
        if (out_dtype == hg::kInt64) {
          if (src_dtype == hg::kInt64) return s;
          return std::isfinite(s) && std::abs(s) < 9.2e18 ? std::trunc(s) : static_cast<double>(kI64Min);
        }
        return round_to(out_dtype, s);
      };
      Tensor src = src_host.to(device);
      // contiguous → contiguous (a plain memcpy when the dtypes agree)
      Tensor a = empty_on({3, 4}, out_dtype, device);
      B.copy(src, a);
      // transposed source → strided (transposed) destination
      Tensor b = empty_on({3, 4}, out_dtype, device).t();
      B.copy(src.t(), b);
      // broadcast source (a row expanded over 5 rows, stride 0) → contiguous
      Tensor c = empty_on({5, 4}, out_dtype, device);
      B.copy(src.select(0, 1).expand({5, 4}), c);
      std::vector<double> ea, eb, ec;
      for (double s : sv) ea.push_back(expect(s));
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 3; ++j) eb.push_back(expect(sv[static_cast<size_t>(j * 4 + i)]));
      for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < 4; ++j) ec.push_back(expect(sv[static_cast<size_t>(4 + j)]));
      hgtest::check_close(a, ref(ea, {3, 4}), 0, 0, "copy contiguous");
      hgtest::check_close(b, ref(eb, {4, 3}), 0, 0, "copy strided");
      hgtest::check_close(c, ref(ec, {5, 4}), 0, 0, "copy broadcast");
      results.insert(results.end(), {a, b, c});
    }
  }
  // Host → device with a strided, a broadcast and a converted source, into a strided destination; device → host
  // into a strided host destination with conversion (the staged transfers of ops/cuda/memory.cu).
  Tensor h = hgtest::uniform({6, 5}, -3, 3, 11);
  Tensor d1 = empty_on({5, 6}, hg::kFloat32, device);
  B.copy(h.t(), d1);
  Tensor d2 = empty_on({6, 5}, hg::kFloat64, device).t();
  B.copy(h.select(1, 2).expand({5, 6}), d2);
  Tensor d3 = empty_on({4, 6}, hg::kInt64, device).t();  // [6, 4] strided
  B.copy(h.narrow(1, 0, 4), d3);
  Tensor back = hg::zeros({4, 6}, hg::kFloat64).t();  // strided host destination
  B.copy(d3, back);
  hgtest::check_close(d1, h.t().to(hg::kFloat32).to(hg::kFloat64), 0, 0, "h2d strided");
  hgtest::check_close(d2, h.select(1, 2).expand({5, 6}), 0, 0, "h2d broadcast");
  std::vector<double> hv = vals(h.narrow(1, 0, 4));
  for (double& x : hv) x = std::trunc(x);
  hgtest::check_close(back, ref(hv, {6, 4}), 0, 0, "d2h converted strided");
  // Empty tensors copy nothing.
  Tensor e = empty_on({0, 3}, hg::kFloat32, device);
  B.copy(empty_on({0, 3}, hg::kFloat64, device), e);
  results.insert(results.end(), {d1, d2, d3, back.to(device), e});
  return results;
}

HG_BACKEND_TEST(parity_fill_and_arange_every_dtype) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  for (DType dtype : kAll) {
    for (double value : {0.0, -0.0, 2.5, -3.0, kNaN}) {
      if (dtype != hg::kFloat32 && dtype != hg::kFloat64 && std::isnan(value)) continue;
      Tensor a = empty_on({33}, dtype, device);
      B.fill(a, value);
      Tensor base = hg::full({7, 9}, 5.0, hg::TensorOptions(dtype).device(device));
      Tensor strided = base.slice(1, 1, 9, 2);  // [7, 4] with column stride 2: the kernel path, not memset
      B.fill(strided, value);
      double expect = dtype == hg::kBool ? (value != 0.0 ? 1.0 : 0.0)
                      : dtype == hg::kInt64 ? std::trunc(value)
                                            : value;
      hgtest::check_close(a, hg::full({33}, expect, hg::kFloat64), 0, 0, "fill");
      std::vector<double> bv = vals(base);
      double untouched = dtype == hg::kBool ? 1.0 : 5.0;
      for (int64_t i = 0; i < 63; ++i) {
        bool hit = (i % 9) % 2 == 1;
        double got = bv[static_cast<size_t>(i)];
        if (hit)
          CHECK((std::isnan(expect) ? std::isnan(got) : got == expect));
        else
          CHECK(got == untouched);
      }
      if (value == 0.0 && std::signbit(value) && dtype != hg::kInt64 && dtype != hg::kBool) {
        CHECK(std::signbit(vals(a)[0]));  // −0.0 is not all-zero bytes: it must not take the memset path
        results.push_back(hg::reciprocal(a));  // −inf shows the sign in the comparison
      }
      results.insert(results.end(), {a, base});
    }
  }
  Tensor empty = empty_on({0}, hg::kFloat32, device);
  B.fill(empty, 1.0);
  for (DType dtype : kNumeric) {
    for (int64_t n : {1, 33, 1025}) {
      Tensor r = empty_on({n}, dtype, device);
      double start = dtype == hg::kInt64 ? -1000000000000.0 : -1.5, step = dtype == hg::kInt64 ? 3.0 : 0.25;
      B.arange(r, start, step);
      std::vector<double> e;
      for (int64_t i = 0; i < n; ++i) e.push_back(round_to(dtype, start + static_cast<double>(i) * step));
      hgtest::check_close(r, ref(e, {n}), 0, 0, "arange");
      results.push_back(r);
    }
  }
  Tensor down = empty_on({40}, hg::kFloat64, device);
  B.arange(down, 10.0, -0.5);
  CHECK(vals(down)[39] == 10.0 - 39 * 0.5);
  results.insert(results.end(), {empty, down});
  return results;
}

HG_BACKEND_TEST(parity_random_fills_every_dtype_and_offset) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  for (DType dtype : kFloating) {
    for (int64_t n : {1, 33, 4099}) {
      Tensor u = empty_on({n}, dtype, device), z = empty_on({n}, dtype, device);
      B.uniform(u, -2.0, 3.0, 1234, static_cast<uint64_t>(n));
      B.normal(z, 1.0, 2.0, 99, 7);
      std::vector<double> uv = vals(u);
      for (double x : uv) CHECK((x >= -2.0 && x <= 3.0));
      if (n > 1000) {
        std::vector<double> zv = vals(z);
        double mean = std::accumulate(zv.begin(), zv.end(), 0.0) / static_cast<double>(n);
        CHECK(std::abs(mean - 1.0) < 0.15);
      }
      results.insert(results.end(), {u, z});
    }
  }
  // The same counters give the same numbers: offset k reads element k of a draw from offset 0.
  Tensor whole = empty_on({64}, hg::kFloat64, device), tail = empty_on({32}, hg::kFloat64, device);
  B.uniform(whole, 0, 1, 5, 0);
  B.uniform(tail, 0, 1, 5, 32);
  hgtest::check_close(tail, whole.narrow(0, 32, 32), 0, 0, "philox offsets");
  for (DType dtype : kNumeric) {
    Tensor r = empty_on({1000}, dtype, device);
    B.randint(r, -3, 4, 77, 3);
    for (double x : vals(r)) CHECK((x >= -3 && x < 4 && x == std::floor(x)));
    results.push_back(r);
  }
  // A range wider than INT64_MAX (computed in uint64).
  Tensor wide = empty_on({257}, hg::kInt64, device);
  B.randint(wide, kI64Min / 2 - 10, kI64Max / 2 + 10, 3, 0);
  results.insert(results.end(), {whole, tail, wide});
  return results;
}

// ---- elementwise ---------------------------------------------------------------------------------------------

namespace {

struct UnaryCase {
  hg::UnaryOp op;
  hg::UnaryParams params;
  std::function<double(double)> f;
};

double sigmoid_ref(double v) { return 1.0 / (1.0 + std::exp(-v)); }

std::vector<UnaryCase> unary_cases() {
  using U = hg::UnaryOp;
  const double sq2pi = std::sqrt(2.0 / M_PI);
  const double sa = 1.6732632423543772848170429916717, ss = 1.0507009873554804934193349852946;
  auto clamp = [](double lo, double hi) {
    return [lo, hi](double v) {
      if (std::isnan(lo) || std::isnan(hi)) return kNaN;
      double y = v < lo ? lo : v;
      return y > hi ? hi : y;
    };
  };
  return {
      {U::Neg, {}, [](double v) { return -v; }},
      {U::Abs, {}, [](double v) { return std::abs(v); }},
      {U::Sign, {}, [](double v) { return static_cast<double>((0.0 < v) - (v < 0.0)); }},
      {U::Exp, {}, [](double v) { return std::exp(v); }},
      {U::Log, {}, [](double v) { return std::log(v); }},
      {U::Log1p, {}, [](double v) { return std::log1p(v); }},
      {U::Expm1, {}, [](double v) { return std::expm1(v); }},
      {U::Sqrt, {}, [](double v) { return std::sqrt(v); }},
      {U::Rsqrt, {}, [](double v) { return 1.0 / std::sqrt(v); }},
      {U::Reciprocal, {}, [](double v) { return 1.0 / v; }},
      {U::Sin, {}, [](double v) { return std::sin(v); }},
      {U::Cos, {}, [](double v) { return std::cos(v); }},
      {U::Tanh, {}, [](double v) { return std::tanh(v); }},
      {U::Sigmoid, {}, sigmoid_ref},
      {U::Erf, {}, [](double v) { return std::erf(v); }},
      {U::Square, {}, [](double v) { return v * v; }},
      {U::Relu, {}, [](double v) { return v < 0 ? 0.0 : v; }},
      {U::Gelu, {}, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {U::GeluTanh, {}, [sq2pi](double v) { return 0.5 * v * (1 + std::tanh(sq2pi * (v + 0.044715 * v * v * v))); }},
      {U::Selu, {}, [sa, ss](double v) { return v > 0 ? ss * v : ss * sa * std::expm1(v); }},
      {U::Elu, {0.7, 0}, [](double v) { return v > 0 ? v : 0.7 * std::expm1(v); }},
      {U::Softplus, {2.0, 5.0}, [](double v) { return 2.0 * v > 5.0 ? v : std::log1p(std::exp(2.0 * v)) / 2.0; }},
      {U::Clamp, {-0.5, 0.75}, clamp(-0.5, 0.75)},
      {U::Clamp, {-kInf, 0.3}, clamp(-kInf, 0.3)},
      {U::Clamp, {1.0, -1.0}, clamp(1.0, -1.0)},  // lo > hi: hi everywhere
      {U::Clamp, {kNaN, 1.0}, clamp(kNaN, 1.0)},  // a NaN bound: NaN everywhere
      {U::GeluDerivative, {},
       [](double v) { return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI); }},
  };
}

}  // namespace

HG_BACKEND_TEST(parity_unary_every_op_float_dtypes_special_values_and_layouts) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  // 24 special values, then random values: 1049 elements cross every vector width and the thread grain's edges.
  std::vector<double> special = {kNaN, kInf, -kInf, 0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 2.4, -2.4,
                                 3.0, -3.0, 7.5, -7.5, 19.0, -19.0, 30.0, -30.0, 90.0, -90.0, 1e-30};
  std::vector<double> xs = special;
  for (double r : vals(hgtest::uniform({1025}, -6, 6, 31))) xs.push_back(r);
  const int64_t n = static_cast<int64_t>(xs.size());
  Tensor x64 = host(xs, {n});
  for (const UnaryCase& c : unary_cases()) {
    for (DType dtype : kFloating) {
      Tensor x = x64.to(dtype).to(device);
      Tensor out = empty_on({n}, dtype, device);
      B.unary(c.op, x, out, c.params);
      // The double reference on the dtype's inputs, checked where the input is finite and moderate (the
      // special ±inf/NaN rows are covered by the CPU/CUDA comparison).
      std::vector<double> xin = vals(x), got = vals(out), e(static_cast<size_t>(n));
      for (size_t i = 0; i < xin.size(); ++i) e[i] = round_to(dtype, c.f(xin[i]));
      const double rtol = dtype == hg::kFloat32 ? 2e-5 : 1e-11, atol = dtype == hg::kFloat32 ? 1e-6 : 1e-13;
      for (size_t i = 3; i < xin.size(); ++i) {
        bool same = (std::isnan(e[i]) && std::isnan(got[i])) || got[i] == e[i] ||
                    std::abs(got[i] - e[i]) <= atol + rtol * std::abs(e[i]);
        if (!same) {
          FAIL_CHECK(hg::unary_name(c.op) << " " << dtype << " at x = " << xin[i] << ": got " << got[i]
                                          << ", expected " << e[i]);
          break;
        }
      }
      results.push_back(out);
    }
    // Strided input (every other element) into a strided (transposed) output, and an expanded scalar input.
    Tensor xd = x64.to(hg::kFloat32).to(device);
    Tensor src = xd.narrow(0, 0, 1048).view({2, 524}).slice(1, 0, 524, 2);  // [2, 262], stride 2
    Tensor out2 = empty_on({262, 2}, hg::kFloat32, device).t();
    B.unary(c.op, src, out2, c.params);
    Tensor dense = empty_on({2, 262}, hg::kFloat32, device);
    B.unary(c.op, src.contiguous(), dense, c.params);
    // the strided loop may take the scalar path where the dense one vectorises: equal to float32 rounding
    hgtest::check_close(out2, dense, 2e-6, 2e-6, std::string("strided ") + hg::unary_name(c.op));
    Tensor scalar = xd.narrow(0, 7, 1).expand({5, 3});  // 0.5 everywhere, strides 0
    Tensor out3 = empty_on({5, 3}, hg::kFloat32, device);
    B.unary(c.op, scalar, out3, c.params);
    const double at_half = round_to(hg::kFloat32, c.f(0.5));
    if (std::isnan(at_half))
      CHECK(std::isnan(vals(out3)[14]));
    else
      CHECK(vals(out3)[14] == doctest::Approx(at_half).epsilon(2e-5));
    results.insert(results.end(), {out2, out3});
  }
  // Empty tensors, and in-place (out is x).
  Tensor e = empty_on({0, 4}, hg::kFloat64, device);
  B.unary(hg::UnaryOp::Exp, e, e, {});
  Tensor inplace = x64.to(device).clone();
  B.unary(hg::UnaryOp::Tanh, inplace, inplace, {});
  hgtest::check_close(inplace, hg::tanh(x64), 1e-12, 1e-14, "in-place tanh");
  results.insert(results.end(), {e, inplace});
  return results;
}

HG_BACKEND_TEST(parity_unary_int64_bool_and_logical_not) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  using U = hg::UnaryOp;
  std::vector<int64_t> iv = {kI64Min, kI64Min + 1, -3037000500, -7, -1, 0, 1, 5, 3037000500, kI64Max};
  const int64_t n = static_cast<int64_t>(iv.size());
  Tensor xi = host_i64(iv, {n}).to(device);
  struct IntCase {
    U op;
    hg::UnaryParams p;
    std::function<int64_t(int64_t)> f;
  };
  auto wrap_neg = [](int64_t v) { return static_cast<int64_t>(uint64_t{0} - static_cast<uint64_t>(v)); };
  std::vector<IntCase> cases = {
      {U::Neg, {}, wrap_neg},
      {U::Abs, {}, [wrap_neg](int64_t v) { return v < 0 ? wrap_neg(v) : v; }},
      {U::Sign, {}, [](int64_t v) { return static_cast<int64_t>((0 < v) - (v < 0)); }},
      {U::Square, {}, [](int64_t v) { return static_cast<int64_t>(static_cast<uint64_t>(v) * static_cast<uint64_t>(v)); }},
      {U::Relu, {}, [](int64_t v) { return v < 0 ? int64_t{0} : v; }},
      {U::Clamp, {-6.0, 4.0}, [](int64_t v) { return std::min<int64_t>(std::max<int64_t>(v, -6), 4); }},
      {U::Clamp, {-kInf, 2.0}, [](int64_t v) { return std::min<int64_t>(v, 2); }},
      {U::Clamp, {-2.0, kInf}, [](int64_t v) { return std::max<int64_t>(v, -2); }},
  };
  for (const IntCase& c : cases) {
    Tensor out = empty_on({n}, hg::kInt64, device);
    B.unary(c.op, xi, out, c.p);
    std::vector<int64_t> got = out.to(hg::kCPU).to_vector<int64_t>();
    for (size_t i = 0; i < iv.size(); ++i) CHECK_MESSAGE(got[i] == c.f(iv[i]), hg::unary_name(c.op) << " at " << iv[i]);
    results.push_back(out);
  }
  // sign of bool is the bool itself; logical_not of every dtype writes bool (NaN is nonzero: not → false).
  Tensor b = host({1, 0, 1, 1, 0}, {5}, hg::kBool).to(device);
  Tensor sb = empty_on({5}, hg::kBool, device);
  B.unary(U::Sign, b, sb, {});
  hgtest::check_close(sb, host({1, 0, 1, 1, 0}, {5}), 0, 0, "sign(bool)");
  results.push_back(sb);
  for (DType dtype : kAll) {
    Tensor x = host({0, -0.0, 2, kNaN, -1, 0}, {2, 3}, dtype == hg::kInt64 || dtype == hg::kBool ? hg::kFloat64 : dtype);
    if (dtype == hg::kInt64) x = host_i64({0, 0, 2, 9, -1, 0}, {2, 3});
    if (dtype == hg::kBool) x = x.to(hg::kBool);
    Tensor out = empty_on({3, 2}, hg::kBool, device).t();  // strided bool output
    B.unary(U::LogicalNot, x.to(device).t().contiguous().t(), out, {});
    hgtest::check_close(out, host({1, 1, 0, 0, 0, 1}, {2, 3}), 0, 0, "logical_not");
    results.push_back(out);
  }
  return results;
}

HG_BACKEND_TEST(parity_activation_backward_kernels_broadcast_strided_and_special) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  std::vector<double> xs = {kNaN, kInf, -kInf, 0.0, -0.0, 1e-9, -1e-9, 0.3, -0.3, 2.0, -2.0, 9.0, -9.0};
  for (double r : vals(hgtest::uniform({100}, -5, 5, 41))) xs.push_back(r);
  const int64_t n = static_cast<int64_t>(xs.size()), half = n / 2;
  const double k = std::sqrt(2.0 / M_PI), kappa = 0.044715;
  auto gelu_d = [](double v) { return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI); };
  auto gelu_tanh_d = [&](double v) {
    double t = std::tanh(k * (v + kappa * v * v * v));
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * kappa * v * v);
  };
  for (DType dtype : kFloating) {
    Tensor x = host(xs, {n}).to(dtype).to(device);
    Tensor g = uni({n}, -2, 2, 42, dtype, device);
    std::vector<double> xv = vals(x), gv = vals(g);
    const double rtol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
    // gelu, both approximations: a contiguous pair, and an expanded scalar gradient into a strided grad_x.
    for (auto approx : {hg::GeluApproximation::None, hg::GeluApproximation::Tanh}) {
      Tensor gx = empty_on({n}, dtype, device);
      B.gelu_backward(g, x, approx, gx);
      Tensor gs = empty_on({2, half}, dtype, device).t();  // [half, 2] strided
      Tensor xs2 = x.narrow(0, 0, 2 * half).view({half, 2});
      B.gelu_backward(g.narrow(0, 3, 1).view({1, 1}).expand({half, 2}), xs2, approx, gs);
      std::vector<double> e;
      for (size_t i = 0; i < xv.size(); ++i)
        e.push_back(gv[i] * (approx == hg::GeluApproximation::None ? gelu_d(xv[i]) : gelu_tanh_d(xv[i])));
      Tensor er = ref(e, {n});
      hgtest::check_close(gx.narrow(0, 3, n - 3), er.narrow(0, 3, n - 3), rtol, rtol, "gelu_backward");
      results.insert(results.end(), {gx, gs});
    }
    // relu: grad passes where y > 0 and where y is NaN (PyTorch's threshold_backward; both backends agree).
    Tensor y = empty_on({n}, dtype, device);
    B.unary(hg::UnaryOp::Relu, x, y, {});
    Tensor gr = empty_on({n}, dtype, device);
    B.relu_backward(g, y, gr);
    std::vector<double> yv = vals(y), grv = vals(gr);
    for (size_t i = 0; i < yv.size(); ++i) CHECK(grv[i] == (yv[i] <= 0 ? 0.0 : gv[i]));
    Tensor grs = empty_on({2, half}, dtype, device).t();
    B.relu_backward(g.narrow(0, 0, 1).view({1, 1}).expand({half, 2}), y.narrow(0, 0, 2 * half).view({half, 2}), grs);
    // elu (scale 1, α = 0.7) and selu (λ, α) from the input.
    const double sa = 1.6732632423543772848170429916717, ss = 1.0507009873554804934193349852946;
    for (auto [scale, alpha] : {std::pair{1.0, 0.7}, std::pair{ss, sa}}) {
      Tensor ge = empty_on({n}, dtype, device);
      B.elu_backward(g, x, scale, alpha, ge);
      std::vector<double> e;
      for (size_t i = 0; i < xv.size(); ++i)
        e.push_back(gv[i] * (xv[i] > 0 ? scale : scale * alpha * std::exp(std::isnan(xv[i]) ? xv[i] : std::min(xv[i], 0.0))));
      hgtest::check_close(ge, ref(e, {n}), dtype == hg::kFloat32 ? 1e-5 : 1e-12, 1e-12, "elu_backward");
      Tensor ges = empty_on({2, half}, dtype, device).t();
      B.elu_backward(g.narrow(0, 5, 1).view({1, 1}).expand({half, 2}), x.narrow(0, 0, 2 * half).view({half, 2}),
                     scale, alpha, ges);
      results.insert(results.end(), {ge, ges});
    }
    results.insert(results.end(), {gr, grs});
  }
  return results;
}

namespace {

double binary_ref(hg::BinaryOp op, double a, double b, DType dtype) {
  using O = hg::BinaryOp;
  switch (op) {
    case O::Add: return a + b;
    case O::Sub: return a - b;
    case O::Mul: return a * b;
    case O::Div: return a / b;
    case O::Pow:
      if (dtype == hg::kInt64) {
        auto base = static_cast<int64_t>(a), e = static_cast<int64_t>(b);
        if (e < 0) return base == 1 ? 1.0 : base == -1 ? ((e & 1) ? -1.0 : 1.0) : 0.0;
        int64_t r = 1;
        for (int64_t i = 0; i < e; ++i) r *= base;
        return static_cast<double>(r);
      }
      return std::pow(a, b);
    case O::Maximum: return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b);
    case O::Minimum: return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b);
    case O::Eq: return a == b;
    case O::Ne: return a != b;
    case O::Lt: return a < b;
    case O::Le: return a <= b;
    case O::Gt: return a > b;
    case O::Ge: return a >= b;
    case O::Heaviside: return a == 0 ? b : (a > 0 ? 1.0 : 0.0);
    case O::LogicalAnd: return (a != 0) && (b != 0);
    case O::LogicalOr: return (a != 0) || (b != 0);
  }
  return kNaN;
}

}  // namespace

HG_BACKEND_TEST(parity_binary_every_op_dtype_broadcast_and_scalar) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  using O = hg::BinaryOp;
  const O arith[] = {O::Add, O::Sub, O::Mul, O::Div, O::Pow, O::Maximum, O::Minimum, O::Heaviside};
  const O cmp[] = {O::Eq, O::Ne, O::Lt, O::Le, O::Gt, O::Ge, O::LogicalAnd, O::LogicalOr};
  // a [7, 1] and b [1, 5] broadcast to [7, 5]; floats hold NaN, ±inf, ±0 and ties; ints small (no overflow).
  std::vector<double> af = {kNaN, kInf, -0.0, 0.0, 1.5, -2.0, 2.0};
  std::vector<double> bf = {2.0, -0.0, kNaN, -kInf, 0.5};
  std::vector<double> ai = {-3, -1, 0, 1, 2, 3, -2}, bi = {2, -1, 0, 3, -2};
  std::vector<double> ab = {1, 0, 1, 0, 1, 1, 0}, bb = {0, 1, 1, 0, 1};
  for (DType dtype : kAll) {
    const bool is_int = dtype == hg::kInt64, is_bool = dtype == hg::kBool;
    const std::vector<double>& av = is_int ? ai : is_bool ? ab : af;
    const std::vector<double>& bv = is_int ? bi : is_bool ? bb : bf;
    Tensor a = host(av, {7, 1}, dtype).to(device), b = host(bv, {1, 5}, dtype).to(device);
    auto check = [&](const Tensor& out, O op, const char* what) {
      std::vector<double> got = vals(out), e;
      for (double x : av)
        for (double y : bv) e.push_back(round_to(dtype, binary_ref(op, x, y, dtype)));
      hgtest::check_close(out.contiguous().view({7, 5}), ref(e, {7, 5}), 1e-6, 0, what);
    };
    for (O op : cmp) {
      Tensor out = empty_on({5, 7}, hg::kBool, device).t();  // strided bool output
      B.binary(op, a.expand({7, 5}), b.expand({7, 5}), out);
      check(out, op, "compare");
      results.push_back(out);
    }
    if (is_bool) continue;
    for (O op : arith) {
      if (is_int && op == O::Div) continue;  // the frontend promotes integer division to float
      Tensor out = empty_on({7, 5}, dtype, device);
      B.binary(op, a.expand({7, 5}), b.expand({7, 5}), out);
      check(out, op, "arith");
      results.push_back(out);
    }
  }
  // Integer pow by squaring with larger exponents, and negative exponents of ±1 and others.
  Tensor base = host_i64({2, -3, 1, -1, -1, 5, 0, 7}, {8}).to(device), ex = host_i64({30, 15, -4, -3, -2, -1, 0, 20}, {8}).to(device);
  Tensor pw = empty_on({8}, hg::kInt64, device);
  B.binary(O::Pow, base, ex, pw);
  CHECK(pw.to(hg::kCPU).to_vector<int64_t>() ==
        std::vector<int64_t>{1073741824, -14348907, 1, -1, 1, 0, 1, 79792266297612001});
  // In place (out aliases a), large enough for the threaded/vectorised paths; strided operands.
  Tensor x = uni({40, 65}, -1, 1, 51, hg::kFloat32, device).clone(), y = uni({65, 40}, -1, 1, 52, hg::kFloat32, device);
  Tensor expect = (x.to(hg::kFloat64) + y.t().to(hg::kFloat64)).to(hg::kFloat32);
  B.binary(O::Add, x, y.t(), x);
  hgtest::check_close(x, expect, 0, 0, "in-place add");
  // binary_scalar: both operand orders, every dtype, comparisons with a fractional scalar.
  for (DType dtype : kNumeric) {
    Tensor t = (dtype == hg::kInt64 ? host_i64({-4, -1, 0, 2, 5, 9}, {2, 3}) : host({-4.5, -1, 0, 2, 5, kNaN}, {2, 3}, dtype));
    Tensor td = t.to(device);
    std::vector<double> tv = vals(t);
    for (O op : {O::Sub, O::Div, O::Pow, O::Maximum, O::Heaviside}) {
      if (dtype == hg::kInt64 && op == O::Div) continue;
      for (bool first : {false, true}) {
        const double s = dtype == hg::kInt64 ? 2.0 : 1.5;
        Tensor out = empty_on({2, 3}, dtype, device);
        B.binary_scalar(op, td, s, first, out);
        std::vector<double> e;
        for (double v : tv) e.push_back(round_to(dtype, first ? binary_ref(op, s, v, dtype) : binary_ref(op, v, s, dtype)));
        hgtest::check_close(out, ref(e, {2, 3}), 1e-6, 0, "binary_scalar");
        results.push_back(out);
      }
    }
    for (O op : {O::Lt, O::Ge, O::Eq}) {
      Tensor out = empty_on({2, 3}, hg::kBool, device);
      B.binary_scalar(op, td, 2.0, true, out);
      std::vector<double> e;
      for (double v : tv) e.push_back(binary_ref(op, 2.0, v, dtype));
      hgtest::check_close(out, ref(e, {2, 3}), 0, 0, "compare scalar");
      results.push_back(out);
    }
  }
  Tensor bt = host({1, 0, 1}, {3}, hg::kBool).to(device), bo = empty_on({3}, hg::kBool, device);
  B.binary_scalar(O::Eq, bt, 0.5, false, bo);  // the scalar as bool is true
  hgtest::check_close(bo, host({1, 0, 1}, {3}), 0, 0, "bool == 0.5");
  Tensor e0 = empty_on({0, 5}, hg::kFloat32, device);
  B.binary(O::Add, e0, e0, e0);
  results.insert(results.end(), {pw, x, bo, e0});
  return results;
}

HG_BACKEND_TEST(parity_where_every_dtype_with_broadcast_condition) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  Tensor cond = host({1, 0, 0, 1, 1}, {1, 5}, hg::kBool).to(device).expand({4, 5});
  for (DType dtype : kAll) {
    Tensor a = host({1, 0, 3, kNaN}, {4, 1}, dtype == hg::kFloat32 || dtype == hg::kFloat64 ? dtype : hg::kFloat64);
    Tensor b = host({-1, -2, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, {5, 4});
    if (dtype == hg::kInt64 || dtype == hg::kBool) a = host({1, 0, 3, 4}, {4, 1}).to(dtype);
    b = b.to(dtype);
    Tensor out = empty_on({5, 4}, dtype, device).t();
    B.where(cond, a.to(device).expand({4, 5}), b.to(device).t(), out);
    std::vector<double> av = vals(a), bv = vals(b.t()), c = {1, 0, 0, 1, 1}, e;
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 5; ++j) e.push_back(c[static_cast<size_t>(j)] != 0 ? av[static_cast<size_t>(i)] : bv[static_cast<size_t>(i * 5 + j)]);
    hgtest::check_close(out, ref(e, {4, 5}), 0, 0, "where");
    results.push_back(out);
  }
  Tensor e = empty_on({0}, hg::kFloat32, device);
  B.where(empty_on({0}, hg::kBool, device), e, e, e);
  results.push_back(e);
  return results;
}

// ---- reductions, scans, sorting ------------------------------------------------------------------------------

namespace {

// Reference of Backend::reduce for x viewed as [A, Bd, C] (contiguous values xv) reduced over `mask` dims.
std::vector<double> reduce_ref(hg::ReduceOp op, const std::vector<double>& xv, const std::array<int64_t, 3>& s,
                               const std::array<bool, 3>& mask) {
  std::array<int64_t, 3> o;
  for (int d = 0; d < 3; ++d) o[static_cast<size_t>(d)] = mask[static_cast<size_t>(d)] ? 1 : s[static_cast<size_t>(d)];
  const int64_t outputs = o[0] * o[1] * o[2];
  std::vector<double> acc(static_cast<size_t>(outputs)), count(static_cast<size_t>(outputs), 0);
  for (auto& a : acc) a = op == hg::ReduceOp::Prod ? 1.0 : op == hg::ReduceOp::Max ? -kInf : op == hg::ReduceOp::Min ? kInf : 0.0;
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k) {
        int64_t oi = mask[0] ? 0 : i, oj = mask[1] ? 0 : j, ok = mask[2] ? 0 : k;
        auto at = static_cast<size_t>((oi * o[1] + oj) * o[2] + ok);
        double v = xv[static_cast<size_t>((i * s[1] + j) * s[2] + k)];
        double& a = acc[at];
        switch (op) {
          case hg::ReduceOp::Sum:
          case hg::ReduceOp::Mean: a += v; break;
          case hg::ReduceOp::Prod: a *= v; break;
          case hg::ReduceOp::Max: a = (v > a || std::isnan(v)) && !std::isnan(a) ? v : a; break;
          case hg::ReduceOp::Min: a = (v < a || std::isnan(v)) && !std::isnan(a) ? v : a; break;
        }
        count[at] += 1;
      }
  if (op == hg::ReduceOp::Mean)
    for (size_t i = 0; i < acc.size(); ++i) acc[i] = count[i] == 0 ? kNaN : acc[i] / count[i];
  return acc;
}

}  // namespace

HG_BACKEND_TEST(parity_reduce_rows_columns_splits_permutes_and_empty) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  using R = hg::ReduceOp;
  struct Case {
    std::array<int64_t, 3> shape;
    std::array<bool, 3> mask;
    int layout;  // 0 contiguous, 1 x = base.transpose(0, 2) (base contiguous), 2 x = base.select-like strided view
  };
  // Rows (contiguous reduced run > 16), short reductions (≤ 16), coalesced columns (reducing leading dims, split
  // when the outputs are few), one long row (split across blocks), neither (the permuting copy), empty sets.
  const Case cases[] = {
      {{1, 1, 1}, {false, false, true}, 0},    {{3, 4, 16}, {false, false, true}, 0},
      {{3, 4, 17}, {false, false, true}, 0},   {{5, 2, 33}, {false, false, true}, 0},
      {{2, 3, 1000}, {false, false, true}, 0}, {{1, 1, 70001}, {false, false, true}, 0},
      {{1000, 8, 1}, {true, false, false}, 0}, {{1000, 1, 600}, {true, false, false}, 0},
      {{5, 300, 1}, {true, false, false}, 0},  {{20, 31, 6}, {true, false, true}, 0},
      {{6, 40, 7}, {false, true, false}, 1},   {{9, 3, 50}, {true, true, true}, 1},
      {{20, 100, 1}, {false, true, false}, 2}, {{12, 33, 1}, {true, true, false}, 2},
      {{4, 0, 3}, {false, true, false}, 0},    {{0, 5, 3}, {false, false, true}, 0},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    for (DType dtype : kNumeric) {
      Tensor base64 = dtype == hg::kInt64 ? ints({c.shape[0], c.shape[1], c.shape[2]}, -9, 9, ++seed)
                                          : hgtest::uniform({c.shape[0], c.shape[1], c.shape[2]}, 0.9, 1.1, ++seed);
      if (dtype != hg::kInt64 && base64.numel() > 7) {
        double* p = base64.data_ptr<double>();
        p[3] = 1.25;  // a tie with p[5]
        p[5] = 1.25;
      }
      // The tensor x (logical shape c.shape) in the requested layout, on the device.
      Tensor x;
      if (c.layout == 0) {
        x = base64.to(dtype).to(device);
      } else if (c.layout == 1) {
        x = base64.transpose(0, 2).contiguous().to(dtype).to(device).transpose(0, 2);
      } else {
        // strides (shape1·3, 3, 1)·... : element (i, j, 0) of a [A, B, 3] buffer, so no dim has unit stride
        Tensor wide = hg::cat({base64.unsqueeze(3), base64.unsqueeze(3), base64.unsqueeze(3)}, 3);
        x = wide.to(dtype).to(device).select(3, 0);
      }
      std::vector<double> xv = vals(x);
      hg::Shape out_shape;
      for (int d = 0; d < 3; ++d) out_shape.push_back(c.mask[static_cast<size_t>(d)] ? 1 : c.shape[static_cast<size_t>(d)]);
      for (R op : {R::Sum, R::Mean, R::Max, R::Min, R::Prod}) {
        if (op == R::Mean && dtype == hg::kInt64) continue;
        if (op == R::Prod && dtype == hg::kInt64 && x.numel() > 20) continue;  // no overflow
        bool empty_set = false;
        for (int d = 0; d < 3; ++d) empty_set |= c.mask[static_cast<size_t>(d)] && c.shape[static_cast<size_t>(d)] == 0;
        if (empty_set && (op == R::Max || op == R::Min)) continue;
        Tensor out = empty_on(out_shape, dtype, device);
        B.reduce(op, x, out);
        std::vector<double> e = reduce_ref(op, xv, c.shape, c.mask);
        for (double& v : e) v = round_to(dtype, v);
        const double tol = dtype == hg::kFloat32 ? 2e-5 : 1e-11;
        hgtest::check_close(out, ref(e, out_shape), tol, tol, "reduce");
        results.push_back(out);
      }
    }
  }
  // NaN propagates through max/min on every path; a strided output.
  for (auto shape : {std::array<int64_t, 2>{4, 10}, std::array<int64_t, 2>{4, 40}, std::array<int64_t, 2>{3000, 2}}) {
    Tensor x = hgtest::uniform({shape[0], shape[1]}, -1, 1, 7);
    x.data_ptr<double>()[shape[1] + 1] = kNaN;
    Tensor xd = x.to(hg::kFloat32).to(device);
    for (R op : {R::Max, R::Min, R::Sum}) {
      Tensor rows = empty_on({1, shape[0]}, hg::kFloat32, device).t();  // [A, 1] strided
      B.reduce(op, xd, rows);
      CHECK(std::isnan(vals(rows)[1]));
      Tensor cols = empty_on({1, shape[1]}, hg::kFloat32, device);
      B.reduce(op, xd, cols);
      CHECK(std::isnan(vals(cols)[1]));
      results.insert(results.end(), {rows, cols});
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_arg_reduce_rows_columns_permutes_ties_nan) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t rows, n;
    bool transposed;  // x = contiguous [n, rows] buffer seen as [rows, n] (reduce dim 1 with stride rows)
  };
  // rows path (unit stride, n > 16), short scans (n ≤ 16), coalesced columns with ≥ 4096 outputs, and the
  // permuting copy (strided, few outputs).
  const Case cases[] = {{3, 1, false},  {5, 16, false},  {5, 17, false},  {4, 33, false}, {2, 1000, false},
                        {7, 16, true},  {4100, 20, true}, {40, 50, true},  {3, 1500, true}};
  uint64_t seed = 300;
  for (const Case& c : cases) {
    for (DType dtype : kNumeric) {
      Tensor v = ints({c.rows, c.n}, -5, 5, ++seed);  // many ties
      if (dtype != hg::kInt64 && c.n > 3) {
        double* p = v.data_ptr<double>();
        p[2] = kNaN;  // row 0: the first NaN wins
        p[std::min<int64_t>(c.n - 1, 3)] = kNaN;
        if (c.rows > 1) p[c.n + 1] = kInf, p[c.n + 2] = -kInf;
      }
      Tensor x = c.transposed ? v.t().contiguous().to(dtype).to(device).t() : v.to(dtype).to(device);
      std::vector<double> xv = vals(v.to(dtype));
      for (bool is_max : {true, false}) {
        Tensor values = empty_on({c.rows, 1}, dtype, device), indices = empty_on({c.rows, 1}, hg::kInt64, device);
        B.arg_reduce(is_max, x, 1, values, indices);
        std::vector<double> ev, ei;
        for (int64_t r = 0; r < c.rows; ++r) {
          int64_t at = 0;
          for (int64_t j = 1; j < c.n; ++j) {
            double cand = xv[static_cast<size_t>(r * c.n + j)], best = xv[static_cast<size_t>(r * c.n + at)];
            if (std::isnan(best)) break;
            if (std::isnan(cand) || (is_max ? cand > best : cand < best)) at = j;
          }
          ev.push_back(xv[static_cast<size_t>(r * c.n + at)]);
          ei.push_back(static_cast<double>(at));
        }
        hgtest::check_close(values, ref(ev, {c.rows, 1}), 0, 0, "arg_reduce values");
        hgtest::check_close(indices, ref(ei, {c.rows, 1}), 0, 0, "arg_reduce indices");
        results.insert(results.end(), {values, indices});
      }
    }
  }
  // Along dim 0 of a 3-D tensor, and an expanded (stride 0) input: the first index of equal values.
  Tensor x3 = hgtest::uniform({25, 3, 4}, -1, 1, 9).to(device);
  Tensor v3 = empty_on({1, 3, 4}, hg::kFloat64, device), i3 = empty_on({1, 3, 4}, hg::kInt64, device);
  B.arg_reduce(true, x3, 0, v3, i3);
  hgtest::check_close(v3, hg::amax(x3, {0}, true), 0, 0, "argmax dim 0");
  Tensor ex = hgtest::uniform({4, 1}, -1, 1, 10).to(device).expand({4, 40});
  Tensor ve = empty_on({4, 1}, hg::kFloat64, device), ie = empty_on({4, 1}, hg::kInt64, device);
  B.arg_reduce(false, ex, 1, ve, ie);
  hgtest::check_close(ie, hg::zeros({4, 1}), 0, 0, "argmin of an expanded row");
  results.insert(results.end(), {v3, i3, ve, ie});
  return results;
}

HG_BACKEND_TEST(parity_split_among_ties_short_and_long_groups) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    hg::Shape x, y;
  };
  const Case cases[] = {{{6, 32}, {6, 1}}, {{6, 33}, {6, 1}}, {{3, 1000}, {3, 1}}, {{40, 5, 7}, {1, 5, 1}},
                        {{2, 3, 4}, {1, 1, 1}}, {{50, 60}, {1, 1}}, {{4, 5}, {4, 5}}};
  uint64_t seed = 500;
  for (const Case& c : cases) {
    for (DType dtype : kFloating) {
      Tensor x64 = ints(c.x, 0, 3, ++seed);  // many ties
      if (x64.numel() > 10) x64.data_ptr<double>()[7] = kNaN;
      Tensor x = x64.to(dtype).to(device);
      std::vector<int64_t> dims;
      for (size_t d = 0; d < c.x.size(); ++d)
        if (c.y[d] == 1 && c.x[d] != 1) dims.push_back(static_cast<int64_t>(d));
      Tensor y = dims.empty() ? x.clone() : hg::amax(x, dims, true);
      Tensor g = uni(c.y, -2, 2, ++seed, dtype, device);
      if (g.numel() > 1) g = g.contiguous();
      Tensor dx = empty_on(c.x, dtype, device);
      B.split_among_ties(g, x, y, dx);
      // reference: dx = g / count · [x attains y]
      Tensor attains = hg::logical_or(hg::eq(x, y), hg::logical_and(hg::ne(x, x), hg::ne(y, y))).to(hg::kFloat64);
      Tensor count = dims.empty() ? attains : hg::sum(attains, dims, true);
      Tensor e = g.to(hg::kFloat64) / count * attains;
      hgtest::check_close(dx, e, 1e-6, 1e-7, "split_among_ties");
      // A broadcast (stride 0) gradient and a transposed x.
      Tensor dx2 = empty_on(c.x, dtype, device);
      B.split_among_ties(g.narrow(0, 0, 1).expand(c.y), x, y, dx2);
      results.insert(results.end(), {dx, dx2});
    }
  }
  Tensor xt = hgtest::uniform({40, 3}, 0, 1, 600).to(device).t();  // [3, 40], strided groups
  Tensor yt = hg::amax(xt, {1}, true), gt = hg::ones({3, 1}, hg::kFloat64).to(device);
  Tensor dxt = empty_on({3, 40}, hg::kFloat64, device);
  B.split_among_ties(gt, xt, yt, dxt);
  hgtest::check_close(hg::sum(dxt, {1}), hg::ones({3}, hg::kFloat64), 0, 1e-12, "one per group");
  results.push_back(dxt);
  return results;
}

HG_BACKEND_TEST(parity_cumsum_block_rows_lines_and_long_columns) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    hg::Shape shape;
    int64_t dim;
    bool transposed_input;
  };
  // block rows (dim last, n > 64, across 1024-element tiles), one thread per line (n ≤ 64, or dim not last),
  // few long columns (dim 0, n > 4096, fewer than 4096 rows), a strided input, size-1 and empty dims.
  const Case cases[] = {{{3, 64}, 1, false},  {{3, 65}, 1, false},   {{2, 2500}, 1, false}, {{1, 1}, 0, false},
                        {{40, 7}, 0, false},  {{5000, 3}, 0, false}, {{6, 90}, 1, true},    {{4, 70, 1}, 1, false},
                        {{0, 5}, 1, false},   {{2, 3, 80}, 2, false}};
  uint64_t seed = 700;
  for (const Case& c : cases) {
    for (DType dtype : kNumeric) {
      Tensor x64 = dtype == hg::kInt64 ? ints(c.shape, -1000, 1000, ++seed) : hgtest::uniform(c.shape, -1, 1, ++seed);
      Tensor x = c.transposed_input ? x64.t().contiguous().to(dtype).to(device).t() : x64.to(dtype).to(device);
      Tensor out = empty_on(c.shape, dtype, device);
      B.cumsum(x, c.dim, out);
      // reference in double: a running sum along dim, by moving dim last
      Tensor moved = x.to(hg::kFloat64).transpose(c.dim, static_cast<int64_t>(c.shape.size()) - 1).contiguous();
      std::vector<double> mv = vals(moved);
      const int64_t n = c.shape[static_cast<size_t>(c.dim)];
      for (size_t r = 0; n > 0 && r < mv.size(); r += static_cast<size_t>(n)) {
        double acc = 0;
        for (int64_t i = 0; i < n; ++i) acc += mv[r + static_cast<size_t>(i)], mv[r + static_cast<size_t>(i)] = round_to(dtype, acc);
      }
      Tensor e = ref(mv, moved.sizes()).transpose(c.dim, static_cast<int64_t>(c.shape.size()) - 1);
      hgtest::check_close(out, e, dtype == hg::kFloat32 ? 1e-6 : 1e-12, 1e-6, "cumsum");
      results.push_back(out);
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_sort_and_topk_single_and_segmented_rows) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t rows, n;
    bool along_dim0;  // sort [n, rows] along dim 0 (strided rows)
  };
  const Case cases[] = {{1, 1, false}, {1, 33, false}, {1, 3000, false}, {5, 31, false},
                        {64, 17, false}, {3, 1000, true}, {33, 5, true}};
  uint64_t seed = 900;
  for (const Case& c : cases) {
    for (DType dtype : kNumeric) {
      Tensor v = ints({c.rows, c.n}, -20, 20, ++seed);  // ties
      if (dtype != hg::kInt64 && c.n >= 8) {
        double* p = v.data_ptr<double>();
        p[0] = kNaN, p[1] = -0.0, p[2] = 0.0, p[3] = kInf, p[4] = -kInf, p[5] = kNaN, p[6] = 0.0;
      }
      if (dtype == hg::kInt64 && c.n >= 8) {
        v = v.to(hg::kInt64);
        int64_t* p = v.data_ptr<int64_t>();
        p[0] = kI64Min, p[1] = kI64Max, p[2] = kI64Min;
      }
      Tensor x = c.along_dim0 ? v.t().contiguous().to(dtype).to(device) : v.to(dtype).to(device);
      const int64_t dim = c.along_dim0 ? 0 : 1;
      const hg::Shape shape = x.sizes();
      // reference: a stable sort of each row by the value order (NaN above +inf, −0 == +0)
      std::vector<double> xv = vals(v.to(dtype));
      auto less = [](double a, double b) { return std::isnan(a) ? false : std::isnan(b) ? true : a < b; };
      for (bool descending : {false, true}) {
        Tensor values = empty_on(shape, dtype, device), indices = empty_on(shape, hg::kInt64, device);
        B.sort(x, dim, descending, values, indices);
        std::vector<double> ev, ei;
        for (int64_t r = 0; r < c.rows; ++r) {
          std::vector<int64_t> order(static_cast<size_t>(c.n));
          std::iota(order.begin(), order.end(), 0);
          auto at = [&](int64_t j) { return xv[static_cast<size_t>(r * c.n + j)]; };
          std::stable_sort(order.begin(), order.end(),
                           [&](int64_t a, int64_t b) { return descending ? less(at(b), at(a)) : less(at(a), at(b)); });
          for (int64_t j : order) ev.push_back(at(j)), ei.push_back(static_cast<double>(j));
        }
        Tensor er = ref(ev, {c.rows, c.n}), eri = ref(ei, {c.rows, c.n});
        if (c.along_dim0) er = er.t(), eri = eri.t();
        hgtest::check_close(values, er, 0, 0, "sort values");
        hgtest::check_close(indices, eri, 0, 0, "sort indices");
        // topk: the first k of the same order (k = 0, 1, n / 2, n)
        for (int64_t k : {int64_t{0}, int64_t{1}, c.n / 2, c.n}) {
          hg::Shape ks = shape;
          ks[static_cast<size_t>(dim)] = k;
          Tensor tv = empty_on(ks, dtype, device), ti = empty_on(ks, hg::kInt64, device);
          B.topk(x, k, dim, descending, tv, ti);
          hgtest::check_close(ti, eri.narrow(dim, 0, k), 0, 0, "topk indices");
          results.insert(results.end(), {tv, ti});
        }
        results.insert(results.end(), {values, indices});
      }
    }
  }
  Tensor e = empty_on({0, 3}, hg::kFloat32, device), ei = empty_on({0, 3}, hg::kInt64, device);
  B.sort(e, 1, false, e, ei);
  results.insert(results.end(), {e, ei});
  return results;
}

// ---- linear algebra ------------------------------------------------------------------------------------------

namespace {

Tensor matmul_ref(const Tensor& a, const Tensor& b) {  // [Bt, M, K] · [Bt, K, N] in double, by loops
  std::vector<double> av = vals(a), bv = vals(b);
  const int64_t Bt = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  std::vector<double> c(static_cast<size_t>(Bt * M * N), 0.0);
  for (int64_t z = 0; z < Bt; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += av[static_cast<size_t>((z * M + i) * K + k)] * bv[static_cast<size_t>((z * K + k) * N + j)];
        c[static_cast<size_t>((z * M + i) * N + j)] = s;
      }
  return ref(c, {Bt, M, N});
}

// t [b, r, c] as a view with unit-free inner strides: every other element of a [b, r, 2c] buffer.
Tensor every_other(const Tensor& t) {
  return hg::cat({t.unsqueeze(3), t.unsqueeze(3)}, 3).flatten(2).slice(2, 0, 2 * t.size(2), 2);
}

}  // namespace

HG_BACKEND_TEST(parity_matmul_and_linear_operand_layouts) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t Bt, M, K, N;
  };
  const Case cases[] = {{1, 1, 1, 1}, {2, 1, 7, 5}, {3, 6, 1, 4}, {2, 33, 17, 1}, {1, 40, 65, 31}, {2, 3, 0, 4}};
  uint64_t seed = 1100;
  for (const Case& c : cases) {
    for (DType dtype : kFloating) {
      Tensor a64 = hgtest::uniform({c.Bt, c.M, c.K}, -1, 1, ++seed), b64 = hgtest::uniform({c.Bt, c.K, c.N}, -1, 1, ++seed);
      Tensor a = a64.to(dtype).to(device), b = b64.to(dtype).to(device);
      Tensor e = matmul_ref(a, b);
      const double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
      // row-major; transposed storage (a.transpose view of a [B, K, M] buffer); no unit stride (copied first);
      // the batch broadcast with stride 0.
      Tensor at = a.transpose(1, 2).contiguous().transpose(1, 2), bt = b.transpose(1, 2).contiguous().transpose(1, 2);
      const std::pair<Tensor, Tensor> layouts[] = {{a, b}, {at, bt}, {every_other(a), every_other(b)}, {at, every_other(b)}};
      for (const auto& [x, y] : layouts) {
        Tensor out = empty_on({c.Bt, c.M, c.N}, dtype, device);
        B.matmul(x, y, out);
        hgtest::check_close(out, e, tol, tol, "matmul");
        results.push_back(out);
      }
      Tensor bb = b.narrow(0, 0, 1).expand({c.Bt, c.K, c.N});
      Tensor out = empty_on({c.Bt, c.M, c.N}, dtype, device);
      B.matmul(a, bb, out);
      hgtest::check_close(out, matmul_ref(a, bb.contiguous()), tol, tol, "matmul broadcast batch");
      results.push_back(out);
      // linear: x [M, K] · w [N, K]ᵀ + bias, plain and with strided x and w, with and without bias
      Tensor x2 = a.select(0, 0), w = b.select(0, 0).t().contiguous();  // w [N, K]
      Tensor bias = uni({c.N}, -1, 1, ++seed, dtype, device);
      Tensor el = matmul_ref(x2.unsqueeze(0), w.t().unsqueeze(0)).select(0, 0);
      for (bool with_bias : {false, true}) {
        for (int strided = 0; strided < 2; ++strided) {
          Tensor xs = strided ? x2.t().contiguous().t() : x2, ws = strided ? every_other(w.unsqueeze(0)).select(0, 0) : w;
          Tensor o = empty_on({c.M, c.N}, dtype, device);
          B.linear(xs, ws, with_bias ? &bias : nullptr, o);
          hgtest::check_close(o, with_bias ? el + bias.to(hg::kCPU, hg::kFloat64) : el, tol, tol, "linear");
          results.push_back(o);
        }
      }
    }
  }
  return results;
}

// ---- neural-net kernels --------------------------------------------------------------------------------------

HG_BACKEND_TEST(parity_softmax_rows_columns_and_dead_rows) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    hg::Shape shape;
    int64_t dim;
  };
  const Case cases[] = {{{4, 1}, 1},   {{3, 31}, 1},    {{3, 33}, 1},      {{2, 1000}, 1}, {{2, 5000}, 1},
                        {{5, 7, 3}, 1}, {{40, 300}, 0}, {{2, 65, 33}, 2},  {{0, 5}, 1},    {{}, 0}};
  uint64_t seed = 1300;
  for (const Case& c : cases) {
    for (DType dtype : kFloating) {
      Tensor x64 = hgtest::uniform(c.shape, -30, 30, ++seed);
      const int64_t nd = static_cast<int64_t>(c.shape.size());
      // row 0 all −inf, row 1 holds a NaN, row 2 holds +inf (along dim, at position 0 of the other dims)
      if (nd > 0 && x64.numel() > 0) {
        Tensor moved = x64.transpose(c.dim, nd - 1);
        const int64_t rows = x64.numel() / c.shape[static_cast<size_t>(c.dim)];
        Tensor flat = moved.reshape({rows, -1});
        if (rows >= 3 && flat.size(1) > 1) {
          flat.select(0, 0).fill_(-kInf);
          flat.select(0, 1).narrow(0, 0, 1).fill_(kNaN);
          flat.select(0, 2).narrow(0, 0, 1).fill_(kInf);
          x64 = flat.reshape(moved.sizes()).transpose(c.dim, nd - 1).contiguous();
        }
      }
      Tensor x = x64.to(dtype).to(device);
      for (bool log : {false, true}) {
        Tensor out = empty_on(c.shape, dtype, device);
        B.softmax(x, c.dim, log, out);
        // reference in double, row by row
        if (nd > 0 && x.numel() > 0) {
          Tensor moved = x.to(hg::kFloat64).transpose(c.dim, nd - 1).contiguous();
          std::vector<double> mv = vals(moved);
          const int64_t n = c.shape[static_cast<size_t>(c.dim)];
          for (size_t r = 0; r < mv.size(); r += static_cast<size_t>(n)) {
            double m = -kInf;
            for (int64_t i = 0; i < n; ++i) m = mv[r + static_cast<size_t>(i)] > m ? mv[r + static_cast<size_t>(i)] : m;
            if (m == -kInf) m = 0;
            double s = 0;
            for (int64_t i = 0; i < n; ++i) s += std::exp(mv[r + static_cast<size_t>(i)] - m);
            for (int64_t i = 0; i < n; ++i) {
              double& v = mv[r + static_cast<size_t>(i)];
              v = s == 0 ? 0.0 : log ? (v - m) - std::log(s) : std::exp(v - m) / s;
            }
          }
          Tensor e = ref(mv, moved.sizes()).transpose(c.dim, nd - 1);
          hgtest::check_close(out, e, dtype == hg::kFloat32 ? 1e-4 : 1e-10, dtype == hg::kFloat32 ? 1e-5 : 1e-12, "softmax");
        } else if (nd == 0) {
          CHECK(vals(out)[0] == (log ? 0.0 : 1.0));
        }
        results.push_back(out);
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_layer_norm_forward_backward_sizes_and_optional_outputs) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t rows, N;
  };
  // 3000 and 4100 rows: the CUDA weight and bias sums split the rows over blocks (unequal last split, a remainder
  // of rows after the unrolled loads).
  const Case cases[] = {{3, 1},   {5, 31},   {5, 33}, {100, 40}, {2, 1000}, {2, 5000},
                        {3000, 40}, {4100, 7}, {0, 8}, {3, 0}};
  uint64_t seed = 1500;
  for (const Case& c : cases) {
    for (DType dtype : kFloating) {
      Tensor x64 = hgtest::uniform({c.rows, c.N}, -2, 3, ++seed);
      Tensor x = x64.to(dtype).to(device);
      Tensor w = uni({c.N}, 0.5, 1.5, ++seed, dtype, device), b = uni({c.N}, -1, 1, ++seed, dtype, device);
      Tensor g = uni({c.rows, c.N}, -1, 1, ++seed, dtype, device);
      const double eps = 1e-5, tol = dtype == hg::kFloat32 ? 2e-4 : 1e-10;
      // reference statistics and outputs in double
      std::vector<double> xv = vals(x), wv = vals(w), bv = vals(b), gv = vals(g);
      std::vector<double> em(static_cast<size_t>(c.rows)), er(static_cast<size_t>(c.rows));
      std::vector<double> gx(static_cast<size_t>(c.rows * c.N)), gw(static_cast<size_t>(c.N), 0), gb(static_cast<size_t>(c.N), 0);
      for (int64_t r = 0; r < c.rows; ++r) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < c.N; ++i) mu += xv[static_cast<size_t>(r * c.N + i)];
        mu /= static_cast<double>(c.N);
        for (int64_t i = 0; i < c.N; ++i) var += std::pow(xv[static_cast<size_t>(r * c.N + i)] - mu, 2);
        const double rs = 1 / std::sqrt(var / static_cast<double>(c.N) + eps);
        em[static_cast<size_t>(r)] = mu, er[static_cast<size_t>(r)] = rs;
        double mg = 0, mgx = 0;
        for (int64_t i = 0; i < c.N; ++i) {
          auto k = static_cast<size_t>(r * c.N + i);
          double xh = (xv[k] - mu) * rs, gh = gv[k] * wv[static_cast<size_t>(i)];
          mg += gh, mgx += gh * xh;
          gw[static_cast<size_t>(i)] += gv[k] * xh, gb[static_cast<size_t>(i)] += gv[k];
        }
        mg /= static_cast<double>(c.N), mgx /= static_cast<double>(c.N);
        for (int64_t i = 0; i < c.N; ++i) {
          auto k = static_cast<size_t>(r * c.N + i);
          gx[k] = rs * (gv[k] * wv[static_cast<size_t>(i)] - mg - (xv[k] - mu) * rs * mgx);
        }
      }
      for (int affine = 0; affine < 3; ++affine) {  // weight and bias, weight only, neither
        const Tensor* wp = affine < 2 ? &w : nullptr;
        const Tensor* bp = affine < 1 ? &b : nullptr;
        Tensor out = empty_on({c.rows, c.N}, dtype, device);
        Tensor mean = empty_on({c.rows}, dtype, device), rstd = empty_on({c.rows}, dtype, device);
        B.layer_norm(x, wp, bp, c.N, eps, out, mean, rstd);
        if (c.N > 0) {
          std::vector<double> eo;
          for (int64_t r = 0; r < c.rows; ++r)
            for (int64_t i = 0; i < c.N; ++i) {
              auto k = static_cast<size_t>(r * c.N + i);
              eo.push_back((xv[k] - em[static_cast<size_t>(r)]) * er[static_cast<size_t>(r)] * (wp ? wv[static_cast<size_t>(i)] : 1.0) +
                           (bp ? bv[static_cast<size_t>(i)] : 0.0));
            }
          hgtest::check_close(out, ref(eo, {c.rows, c.N}), tol, tol, "layer_norm");
          hgtest::check_close(mean, ref(em, {c.rows}), tol, tol, "layer_norm mean");
          hgtest::check_close(rstd, ref(er, {c.rows}), tol, tol, "layer_norm rstd");
        } else {
          for (double m : vals(mean)) CHECK(std::isnan(m));
        }
        results.insert(results.end(), {out, mean, rstd});
        if (affine != 0 || c.N == 0) continue;
        // backward: every subset of the three outputs
        for (int mask = 1; mask < 8; ++mask) {
          Tensor dx = empty_on({c.rows, c.N}, dtype, device), dw = empty_on({c.N}, dtype, device),
                 db = empty_on({c.N}, dtype, device);
          B.layer_norm_backward(g, x, &w, mean, rstd, c.N, (mask & 1) ? &dx : nullptr, (mask & 2) ? &dw : nullptr,
                                (mask & 4) ? &db : nullptr);
          if (mask & 1) hgtest::check_close(dx, ref(gx, {c.rows, c.N}), tol, tol, "layer_norm grad_x"), results.push_back(dx);
          if (mask & 2) hgtest::check_close(dw, ref(gw, {c.N}), tol, tol, "layer_norm grad_weight"), results.push_back(dw);
          if (mask & 4) hgtest::check_close(db, ref(gb, {c.N}), tol, tol, "layer_norm grad_bias"), results.push_back(db);
        }
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_cross_entropy_inner_weights_smoothing_ignore_and_dead_rows) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t outer, C, inner;
  };
  const Case cases[] = {{7, 5, 1}, {3, 4, 6}, {40, 33, 1}, {1, 1, 3}};
  uint64_t seed = 1700;
  for (const Case& c : cases) {
    for (DType dtype : kFloating) {
      Tensor x64 = hgtest::uniform({c.outer, c.C, c.inner}, -4, 4, ++seed);
      if (c.outer >= 3 && c.C > 1) {
        x64.select(0, 0).select(1, 0).fill_(-kInf);  // row (0, 0): all −inf
        x64.select(0, 1).select(1, 0).narrow(0, 0, 1).fill_(kNaN);  // row (1, 0): NaN
        x64.select(0, 2).select(1, 0).narrow(0, 1, 1).fill_(-kInf);  // one −inf entry
      }
      Tensor x = x64.to(dtype).to(device);
      Tensor t64 = ints({c.outer, c.inner}, 0, c.C - 1, ++seed);
      if (c.outer * c.inner > 3) t64.data_ptr<double>()[3] = -100;  // ignored
      Tensor target = t64.to(hg::kInt64).to(device);
      Tensor weight = uni({c.C}, 0.2, 2, ++seed, dtype, device);
      Tensor grad_loss = uni({c.outer, c.inner}, -1, 1, ++seed, dtype, device);
      std::vector<double> xv = vals(x), tv = vals(t64), wv = vals(weight), glv = vals(grad_loss);
      for (bool weighted : {false, true}) {
        for (double eps : {0.0, 0.2}) {
          Tensor loss = empty_on({c.outer, c.inner}, dtype, device), lsum = empty_on({c.outer, c.inner}, dtype, device),
                 tw = empty_on({c.outer, c.inner}, dtype, device);
          const Tensor* wp = weighted ? &weight : nullptr;
          B.cross_entropy(x, target, wp, -100, eps, loss, lsum, tw);
          Tensor grad = empty_on({c.outer, c.C, c.inner}, dtype, device);
          B.cross_entropy_backward(x, target, wp, -100, eps, lsum, grad_loss, grad);
          // reference (ops/backend.h's formulas) in double
          std::vector<double> el, eg(static_cast<size_t>(c.outer * c.C * c.inner), 0.0);
          for (int64_t o = 0; o < c.outer; ++o)
            for (int64_t i = 0; i < c.inner; ++i) {
              auto at = [&](int64_t k) { return xv[static_cast<size_t>((o * c.C + k) * c.inner + i)]; };
              auto wt = [&](int64_t k) { return weighted ? wv[static_cast<size_t>(k)] : 1.0; };
              double m = -kInf;
              for (int64_t k = 0; k < c.C; ++k) m = at(k) > m ? at(k) : m;
              if (m == -kInf) m = 0;
              double s = 0;
              for (int64_t k = 0; k < c.C; ++k) s += std::exp(at(k) - m);
              const double l = std::log(s);
              const auto t = static_cast<int64_t>(tv[static_cast<size_t>(o * c.inner + i)]);
              if (t == -100 || l == -kInf) {
                el.push_back(0.0);
                continue;
              }
              double v = (1 - eps) * wt(t) * (l - (at(t) - m)), W = 0;
              for (int64_t k = 0; k < c.C; ++k) {
                W += wt(k);
                if (eps != 0) v += eps / static_cast<double>(c.C) * wt(k) * (l - (at(k) - m));  // (0·inf: no term)
              }
              el.push_back(v);
              const double gl = glv[static_cast<size_t>(o * c.inner + i)];
              for (int64_t k = 0; k < c.C; ++k) {
                double p = std::exp((at(k) - m) - l);
                eg[static_cast<size_t>((o * c.C + k) * c.inner + i)] =
                    gl * ((1 - eps) * wt(t) * (p - (k == t ? 1.0 : 0.0)) + eps / static_cast<double>(c.C) * (W * p - wt(k)));
              }
            }
          const double tol = dtype == hg::kFloat32 ? 1e-4 : 1e-10;
          hgtest::check_close(loss, ref(el, {c.outer, c.inner}), tol, tol, "cross_entropy loss");
          hgtest::check_close(grad, ref(eg, {c.outer, c.C, c.inner}), tol, tol, "cross_entropy grad");
          results.insert(results.end(), {loss, lsum, tw, grad});
        }
      }
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_adam_step_every_variant) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  const int64_t n = 1037;
  for (DType dtype : kFloating) {
    for (int variant = 0; variant < 6; ++variant) {
      hg::AdamParams p;
      p.lr = 0.01;
      p.weight_decay = variant % 3 == 0 ? 0.0 : 0.1;
      p.decoupled_weight_decay = variant % 3 == 2;
      p.amsgrad = variant >= 3;
      p.bias_correction1 = 1 - std::pow(0.9, 3);
      p.bias_correction2_sqrt = std::sqrt(1 - std::pow(0.999, 3));
      Tensor param = uni({n}, -1, 1, 1900 + static_cast<uint64_t>(variant), dtype, device).clone();
      Tensor grad = uni({n}, -1, 1, 1910, dtype, device);
      Tensor m = uni({n}, -0.1, 0.1, 1911, dtype, device).clone();
      Tensor v = uni({n}, 0, 0.01, 1912, dtype, device).clone();
      Tensor vmax = uni({n}, 0, 0.02, 1913, dtype, device).clone();
      if (p.amsgrad) {  // a NaN previous maximum sticks
        Tensor h = vmax.to(hg::kCPU).to(hg::kFloat64);
        h.data_ptr<double>()[5] = kNaN;
        vmax = h.to(dtype).to(device);
      }
      std::vector<double> pv = vals(param), gv = vals(grad), mv = vals(m), vv = vals(v), xv = vals(vmax);
      B.adam_step(param, grad, m, v, p.amsgrad ? &vmax : nullptr, p);
      std::vector<double> ep;
      for (size_t i = 0; i < pv.size(); ++i) {
        double pi = pv[i], g = gv[i];
        if (p.weight_decay != 0 && !p.decoupled_weight_decay) g += p.weight_decay * pi;
        if (p.weight_decay != 0 && p.decoupled_weight_decay) pi *= 1 - p.lr * p.weight_decay;
        double mi = 0.9 * mv[i] + 0.1 * g, vi = 0.999 * vv[i] + 0.001 * g * g;
        if (p.amsgrad) vi = (xv[i] > vi || std::isnan(xv[i])) ? xv[i] : vi;
        ep.push_back(pi - p.lr / p.bias_correction1 * mi / (std::sqrt(vi) / p.bias_correction2_sqrt + p.eps));
      }
      hgtest::check_close(param, ref(ep, {n}), dtype == hg::kFloat32 ? 1e-5 : 1e-12, 1e-6, "adam");
      results.insert(results.end(), {param, m, v});
      if (p.amsgrad) results.push_back(vmax);
    }
  }
  Tensor e = empty_on({0}, hg::kFloat32, device);
  B.adam_step(e, e, e, e, nullptr, hg::AdamParams{});
  results.push_back(e);
  return results;
}

HG_BACKEND_TEST(parity_index_kernels_dtypes_strides_and_repeats) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  Tensor idx = host_i64({5, 0, 5, 2, 1, 3, 3, 0}, {8}).to(device);
  Tensor idx_strided = idx.slice(0, 0, 8, 2);  // {5, 5, 1, 3}, stride 2
  const std::vector<int64_t> iv = {5, 0, 5, 2, 1, 3, 3, 0}, isv = {5, 5, 1, 3};
  for (DType dtype : kAll) {
    Tensor x64 = dtype == hg::kBool ? ints({6, 7}, 0, 1, 2100) : ints({6, 7}, -9, 9, 2100);
    Tensor x = x64.t().contiguous().to(dtype).to(device).t();  // [6, 7] strided
    std::vector<double> xv = vals(x64);
    auto X = [&](int64_t i, int64_t j) { return xv[static_cast<size_t>(i * 7 + j)]; };
    // index_select along both dims, repeated indices, a strided index
    Tensor s0 = empty_on({4, 7}, dtype, device), s1 = empty_on({6, 8}, dtype, device);
    B.index_select(x, 0, idx_strided, s0);
    B.index_select(x, 1, idx, s1);
    std::vector<double> e0, e1;
    for (int64_t r : isv)
      for (int64_t j = 0; j < 7; ++j) e0.push_back(X(r, j));
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t c : iv) e1.push_back(X(i, c));
    hgtest::check_close(s0, ref(e0, {4, 7}), 0, 0, "index_select dim 0");
    hgtest::check_close(s1, ref(e1, {6, 8}), 0, 0, "index_select dim 1");
    // gather along dim 1 with a transposed index smaller than x in the other dim
    Tensor gi64 = ints({9, 4}, 0, 6, 2101);
    Tensor gidx = gi64.to(hg::kInt64).to(device).t();  // [4, 9] strided
    Tensor g = empty_on({4, 9}, dtype, device);
    B.gather(x, 1, gidx, g);
    std::vector<double> giv = vals(gi64.t()), eg;
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 9; ++j) eg.push_back(X(i, static_cast<int64_t>(giv[static_cast<size_t>(i * 9 + j)])));
    hgtest::check_close(g, ref(eg, {4, 9}), 0, 0, "gather");
    results.insert(results.end(), {s0, s1, g});
    if (dtype == hg::kBool) continue;
    // scatter_add / index_add with colliding indices (integer values: exact in any order of the atomics)
    Tensor src64 = ints({4, 9}, -5, 5, 2102);
    Tensor out = hg::zeros({6, 9}, hg::TensorOptions(dtype).device(device));
    Tensor sidx = ints({4, 9}, 0, 5, 2103).to(hg::kInt64).to(device);
    B.scatter_add(out, 0, sidx, src64.to(dtype).to(device).t().contiguous().t());
    std::vector<double> es(54, 0.0), sv = vals(src64), siv = vals(sidx);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 9; ++j)
        es[static_cast<size_t>(static_cast<int64_t>(siv[static_cast<size_t>(i * 9 + j)]) * 9 + j)] += sv[static_cast<size_t>(i * 9 + j)];
    hgtest::check_close(out, ref(es, {6, 9}), 0, 0, "scatter_add");
    Tensor acc = hg::ones({3, 6}, hg::TensorOptions(dtype).device(device));
    Tensor isrc64 = ints({3, 8}, -4, 4, 2104);
    B.index_add(acc, 1, idx, isrc64.to(dtype).to(device));
    std::vector<double> ea(18, 1.0), isrc = vals(isrc64);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t k = 0; k < 8; ++k) ea[static_cast<size_t>(i * 6 + iv[static_cast<size_t>(k)])] += isrc[static_cast<size_t>(i * 8 + k)];
    hgtest::check_close(acc, ref(ea, {3, 6}), 0, 0, "index_add");
    results.insert(results.end(), {out, acc});
  }
  // Many collisions in float32 (the order of atomic adds may differ; the sum of integers may not), and empty.
  Tensor big = hg::zeros({3}, hg::TensorOptions(hg::kFloat32).device(device));
  Tensor bidx = ints({5000}, 0, 2, 2105).to(hg::kInt64).to(device);
  B.scatter_add(big, 0, bidx, hg::ones({5000}, hg::TensorOptions(hg::kFloat32).device(device)));
  CHECK(hg::sum(big).item<float>() == 5000.0f);
  Tensor none = empty_on({0}, hg::kInt64, device), e = empty_on({6, 0}, hg::kFloat32, device);
  B.index_select(hg::ones({6, 7}, hg::TensorOptions(hg::kFloat32).device(device)), 1, none, e);
  results.insert(results.end(), {big, e});
  return results;
}

HG_BACKEND_TEST(parity_max_pool_nan_windows_padding_dilation_and_backward) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    hg::PoolParams p;
    int64_t H, W;
  };
  auto pp = [](int64_t k0, int64_t k1, int64_t s0, int64_t s1, int64_t p0, int64_t p1, int64_t d0, int64_t d1) {
    hg::PoolParams p;
    p.kernel[0] = k0, p.kernel[1] = k1, p.stride[0] = s0, p.stride[1] = s1;
    p.padding[0] = p0, p.padding[1] = p1, p.dilation[0] = d0, p.dilation[1] = d1;
    return p;
  };
  const Case cases[] = {{pp(2, 2, 2, 2, 0, 0, 1, 1), 6, 7}, {pp(3, 3, 1, 1, 1, 1, 1, 1), 5, 5},
                        {pp(3, 2, 2, 1, 1, 0, 2, 3), 9, 8}, {pp(1, 1, 1, 1, 0, 0, 1, 1), 1, 33}};
  uint64_t seed = 2300;
  for (const Case& c : cases) {
    const auto& p = c.p;
    const int64_t OH = (c.H + 2 * p.padding[0] - p.dilation[0] * (p.kernel[0] - 1) - 1) / p.stride[0] + 1;
    const int64_t OW = (c.W + 2 * p.padding[1] - p.dilation[1] * (p.kernel[1] - 1) - 1) / p.stride[1] + 1;
    for (DType dtype : kFloating) {
      Tensor x64 = ints({2, 3, c.H, c.W}, -3, 3, ++seed);  // ties
      double* px = x64.data_ptr<double>();
      px[1] = kNaN, px[c.W] = kNaN;  // two NaNs in plane 0: the last scanned wins
      for (int64_t i = 0; i < c.H * c.W; ++i) px[c.H * c.W + i] = -kInf;  // plane 1: all −inf
      Tensor x = x64.to(dtype).to(device);
      Tensor out = empty_on({2, 3, OH, OW}, dtype, device), idx = empty_on({2, 3, OH, OW}, hg::kInt64, device);
      B.max_pool2d(x, p, out, idx);
      std::vector<double> xv = vals(x), eo, ei;
      for (int64_t pl = 0; pl < 6; ++pl)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            double best = -kInf;
            int64_t at = -1;
            for (int64_t kh = 0; kh < p.kernel[0]; ++kh)
              for (int64_t kw = 0; kw < p.kernel[1]; ++kw) {
                int64_t h = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
                int64_t w = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                if (h < 0 || h >= c.H || w < 0 || w >= c.W) continue;
                double v = xv[static_cast<size_t>(pl * c.H * c.W + h * c.W + w)];
                if (at < 0) at = h * c.W + w;
                if (v > best || std::isnan(v)) best = v, at = h * c.W + w;
              }
            eo.push_back(best), ei.push_back(static_cast<double>(at));
          }
      hgtest::check_close(out, ref(eo, {2, 3, OH, OW}), 0, 0, "max_pool2d values");
      hgtest::check_close(idx, ref(ei, {2, 3, OH, OW}), 0, 0, "max_pool2d indices");
      // backward: overlapping windows add up (integer gradients: exact in any order)
      Tensor go64 = ints({2, 3, OH, OW}, -4, 4, ++seed);
      Tensor gx = hg::zeros({2, 3, c.H, c.W}, hg::TensorOptions(dtype).device(device));
      B.max_pool2d_backward(go64.to(dtype).to(device), idx, p, gx);
      std::vector<double> eg(static_cast<size_t>(6 * c.H * c.W), 0.0), gov = vals(go64);
      for (int64_t pl = 0; pl < 6; ++pl)
        for (int64_t o = 0; o < OH * OW; ++o)
          eg[static_cast<size_t>(pl * c.H * c.W + static_cast<int64_t>(ei[static_cast<size_t>(pl * OH * OW + o)]))] +=
              gov[static_cast<size_t>(pl * OH * OW + o)];
      hgtest::check_close(gx, ref(eg, {2, 3, c.H, c.W}), 0, 0, "max_pool2d backward");
      results.insert(results.end(), {out, idx, gx});
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_conv2d_groups_geometry_strided_input_and_empty_batch) {
  hg::Backend& B = be(device);
  hg::Tensors results;
  struct Case {
    int64_t N, Cin, H, W, Cout, KH, KW, groups;
    hg::ConvParams p;
  };
  auto cp = [](int64_t s0, int64_t s1, int64_t p0, int64_t p1, int64_t d0, int64_t d1, int64_t g) {
    hg::ConvParams p;
    p.stride[0] = s0, p.stride[1] = s1, p.padding[0] = p0, p.padding[1] = p1;
    p.dilation[0] = d0, p.dilation[1] = d1, p.groups = g;
    return p;
  };
  // Small images (under 1024 output positions: the CUDA backend's one GEMM per group over the chunk) and large
  // ones (its per-image products, batched over images when groups ≤ images, else over groups); stride, padding,
  // dilation, 1×1 kernels, and an empty batch.
  const Case cases[] = {{3, 4, 6, 5, 6, 3, 2, 2, cp(1, 1, 1, 0, 1, 1, 2)},
                        {1, 8, 7, 7, 4, 3, 3, 4, cp(2, 1, 1, 2, 2, 1, 4)},
                        {2, 3, 5, 9, 5, 1, 1, 1, cp(1, 2, 0, 0, 1, 1, 1)},
                        {0, 2, 4, 4, 2, 2, 2, 1, cp(1, 1, 0, 0, 1, 1, 1)},
                        {2, 2, 34, 33, 4, 3, 3, 2, cp(1, 1, 1, 1, 1, 1, 2)},   // 34·33 positions, batched over images
                        {1, 4, 32, 33, 4, 1, 1, 4, cp(1, 1, 0, 0, 1, 1, 4)},   // 32·33, batched over groups
                        // one-dimensional (H = 1: CUDA's im2col stages the images' slices in shared memory), a tile
                        // of 256 positions spanning many short images; stride, padding, dilation and groups
                        {40, 3, 1, 14, 4, 1, 9, 1, cp(1, 1, 0, 2, 1, 1, 1)},
                        {7, 4, 1, 17, 6, 1, 3, 2, cp(1, 2, 0, 1, 1, 2, 2)}};
  uint64_t seed = 2500;
  for (const Case& c : cases) {
    const auto& p = c.p;
    const int64_t OH = (c.H + 2 * p.padding[0] - p.dilation[0] * (c.KH - 1) - 1) / p.stride[0] + 1;
    const int64_t OW = (c.W + 2 * p.padding[1] - p.dilation[1] * (c.KW - 1) - 1) / p.stride[1] + 1;
    const int64_t cin_g = c.Cin / c.groups, cout_g = c.Cout / c.groups;
    Tensor x64 = hgtest::uniform({c.N, c.Cin, c.H, c.W}, -1, 1, ++seed);
    Tensor w64 = hgtest::uniform({c.Cout, cin_g, c.KH, c.KW}, -1, 1, ++seed);
    Tensor b64 = hgtest::uniform({c.Cout}, -1, 1, ++seed);
    Tensor go64 = hgtest::uniform({c.N, c.Cout, OH, OW}, -1, 1, ++seed);
    // direct double loops: y, and the gradients of Σ go ⊙ y
    std::vector<double> xv = vals(x64), wv = vals(w64), bv = vals(b64), gov = vals(go64);
    std::vector<double> ey(static_cast<size_t>(c.N * c.Cout * OH * OW)), egx(xv.size(), 0.0), egw(wv.size(), 0.0);
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t oc = 0; oc < c.Cout; ++oc)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const auto yo = static_cast<size_t>(((n * c.Cout + oc) * OH + oh) * OW + ow);
            double s = bv[static_cast<size_t>(oc)];
            for (int64_t ic = 0; ic < cin_g; ++ic)
              for (int64_t kh = 0; kh < c.KH; ++kh)
                for (int64_t kw = 0; kw < c.KW; ++kw) {
                  int64_t h = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
                  int64_t w = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                  if (h < 0 || h >= c.H || w < 0 || w >= c.W) continue;
                  const int64_t cin = oc / cout_g * cin_g + ic;
                  const auto xi = static_cast<size_t>(((n * c.Cin + cin) * c.H + h) * c.W + w);
                  const auto wi = static_cast<size_t>(((oc * cin_g + ic) * c.KH + kh) * c.KW + kw);
                  s += xv[xi] * wv[wi];
                  egx[xi] += gov[yo] * wv[wi];
                  egw[wi] += gov[yo] * xv[xi];
                }
            ey[yo] = s;
          }
    for (DType dtype : kFloating) {
      const double tol = dtype == hg::kFloat32 ? 1e-5 : 1e-12;
      Tensor x = x64.to(dtype).to(device), w = w64.to(dtype).to(device), b = b64.to(dtype).to(device);
      Tensor xcl = x64.permute({0, 2, 3, 1}).contiguous().to(dtype).to(device).permute({0, 3, 1, 2});  // channels-last
      Tensor y = empty_on({c.N, c.Cout, OH, OW}, dtype, device), yn = empty_on({c.N, c.Cout, OH, OW}, dtype, device);
      B.conv2d(xcl, w, &b, p, y);
      B.conv2d(x, w, nullptr, p, yn);
      hgtest::check_close(y, ref(ey, {c.N, c.Cout, OH, OW}), tol, tol, "conv2d");
      hgtest::check_close(yn + b.view({1, c.Cout, 1, 1}), y, tol, tol, "conv2d without bias");
      Tensor go = go64.to(dtype).to(device);
      Tensor gx = empty_on({c.N, c.Cin, c.H, c.W}, dtype, device), gw = empty_on({c.Cout, cin_g, c.KH, c.KW}, dtype, device);
      B.conv2d_backward_input(go, w, p, gx);
      B.conv2d_backward_weight(xcl, go, p, gw);
      hgtest::check_close(gx, ref(egx, {c.N, c.Cin, c.H, c.W}), tol, tol, "conv2d grad_x");
      hgtest::check_close(gw, ref(egw, {c.Cout, cin_g, c.KH, c.KW}), tol, tol, "conv2d grad_w");
      results.insert(results.end(), {y, yn, gx, gw});
    }
  }
  return results;
}

HG_BACKEND_TEST(parity_attention_masks_broadcast_and_fully_masked_rows) {
  // The fused kernels with a broadcast float mask and a broadcast bool mask that masks one query completely,
  // against the composite softmax(q kᵀ·scale + mask) v (the CUDA half runs the kernels explicitly, as Auto would
  // pick the composite at this size there).
  hg::Tensors results;
  hg::AttentionImplGuard fused(hg::AttentionImpl::Fused);
  for (DType dtype : kFloating) {
    const double tol = dtype == hg::kFloat32 ? 1e-4 : 1e-10;
    Tensor q = uni({2, 3, 5, 4}, -1, 1, 2700, dtype, device), k = uni({2, 1, 7, 4}, -1, 1, 2701, dtype, device);
    Tensor v = uni({2, 1, 7, 3}, -1, 1, 2702, dtype, device);
    Tensor fmask = uni({5, 7}, -2, 0, 2703, dtype, device);  // broadcast over batch and heads
    Tensor bmask64 = hg::ones({1, 1, 5, 7}, hg::kFloat64);
    bmask64.select(2, 2).fill_(0.0);  // query 2 sees no key
    bmask64.select(2, 4).narrow(2, 0, 3).fill_(0.0);
    Tensor bmask = bmask64.to(hg::kBool).to(device);
    for (int which = 0; which < 2; ++which) {
      Tensor mask = which == 0 ? fmask : bmask;
      Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(), vg = v.detach().requires_grad_();
      Tensor out = hg::scaled_dot_product_attention(qg, kg.expand({2, 3, 7, 4}), vg.expand({2, 3, 7, 3}), mask);
      Tensor w = uni({2, 3, 5, 3}, -1, 1, 2704, dtype, device);
      hg::sum(out * w).backward();
      // composite reference in float64 on the host
      auto leaf = [](const Tensor& t) { return t.to(hg::kCPU).to(hg::kFloat64).detach().clone().requires_grad_(); };
      Tensor q64 = leaf(q), k64 = leaf(k), v64 = leaf(v);
      Tensor scores = hg::matmul(q64, k64.transpose(2, 3)) * (1.0 / 2.0);
      Tensor add = which == 0 ? fmask.to(hg::kCPU).to(hg::kFloat64) : hg::where(bmask.to(hg::kCPU), 0.0, hg::full({1}, -kInf, hg::kFloat64));
      Tensor pr = hg::softmax(scores + add, -1);
      Tensor eo = hg::matmul(pr, v64);
      hg::sum(eo * w.to(hg::kCPU).to(hg::kFloat64)).backward();
      hgtest::check_close(out, eo, tol, tol, "attention out");
      if (which == 1) CHECK(vals(out.select(2, 2)) == std::vector<double>(6 * 3, 0.0));
      hgtest::check_close(qg.grad(), q64.grad(), tol, tol, "attention grad q");
      hgtest::check_close(kg.grad(), k64.grad(), tol, tol, "attention grad k");
      hgtest::check_close(vg.grad(), v64.grad(), tol, tol, "attention grad v");
      results.insert(results.end(), {out.detach(), qg.grad(), kg.grad(), vg.grad()});
    }
  }
  return results;
}
