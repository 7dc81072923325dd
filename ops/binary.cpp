// Binary elementwise ops with NumPy broadcasting, comparisons, where, and the in-place forms.
#include <cmath>
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    HG_CHECK(da == db || da == 1 || db == 1,
             "{}: shapes {} and {} cannot be broadcast together (dimension {}: {} vs {}; sizes must match or one "
             "must be 1)",
             op, a, b, i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  const size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[lead + i]) return false;
  return true;
}

bool broadcastable(const Shape& a, const Shape& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 1; i <= n; ++i) {  // aligned from the right
    const int64_t da = a[a.size() - i], db = b[b.size() - i];
    if (da != db && da != 1 && db != 1) return false;
  }
  return true;
}

namespace {

int category(DType t) { return t == kBool ? 0 : is_floating(t) ? 2 : 1; }

// Whether s is an integer that int64 holds: [-2^63, 2^63).
bool fits_int64(double s) { return std::floor(s) == s && s >= -0x1p63 && s < 0x1p63; }

}  // namespace

DType result_type(const Tensor& a, const Tensor& b) {
  HG_CHECK(a.defined() && b.defined(), "result_type: got an undefined tensor");
  const bool a0 = a.dim() == 0, b0 = b.dim() == 0;
  if (a0 == b0) return promote_types(a.dtype(), b.dtype());
  const DType dims = a0 ? b.dtype() : a.dtype(), zero = a0 ? a.dtype() : b.dtype();
  return category(zero) > category(dims) ? zero : dims;
}

DType result_type(const Tensor& a, double s) {
  HG_CHECK(a.defined(), "result_type: got an undefined tensor");
  if (is_floating(a.dtype())) return a.dtype();
  return fits_int64(s) ? kInt64 : kFloat32;
}

bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  return !(to == kBool && from != kBool);
}

namespace {

void check_devices(const char* op, const Tensor& a, const Tensor& b) {
  HG_CHECK(a.defined() && b.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(a.device() == b.device(), "{}: tensors are on different devices ({} and {}); move one with .to()", op,
           a.desc(), b.desc());
}

// Runs a broadcasting binary kernel: both operands converted to `compute`, output `out_dtype`.
Tensor run_binary(BinaryOp op, const char* name, const Tensor& a, const Tensor& b, DType compute, DType out_dtype) {
  check_devices(name, a, b);
  Shape shape = broadcast_shapes(a.sizes(), b.sizes(), name);
  Tensor ac = a.detach().to(compute), bc = b.detach().to(compute);
  if (ac.sizes() != shape) ac = ac.expand(shape);
  if (bc.sizes() != shape) bc = bc.expand(shape);
  Tensor out = empty(shape, out_dtype, a.device());
  backend_for(a.device()).binary(op, ac, bc, out);
  return out;
}

DType arith_dtype(const char* op, const Tensor& a, const Tensor& b) {
  check_devices(op, a, b);
  DType t = result_type(a, b);
  return t == kBool ? kInt64 : t;
}

Tensor run_scalar(BinaryOp op, const char* name, const Tensor& a, double s, bool scalar_first, DType compute,
                  DType out_dtype) {
  HG_CHECK(a.defined(), "{}: got an undefined tensor", name);
  Tensor ac = a.detach().to(compute);
  Tensor out = empty(a.sizes(), out_dtype, a.device());
  backend_for(a.device()).binary_scalar(op, ac, s, scalar_first, out);
  return out;
}

}  // namespace

// y = a + alpha·b ;  ∂y/∂a = 1, ∂y/∂b = alpha
Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  if (alpha != 1.0) return add(a, mul(b, alpha));
  const DType t = arith_dtype("add", a, b);
  Tensor out = run_binary(BinaryOp::Add, "add", a, b, t, t);
  if (any_requires_grad(a, b))
    record_op("add", {a, b}, out, [](const Tensors& g, const BackwardContext&) { return Tensors{g[0], g[0]}; });
  return out;
}

// y = a - alpha·b
Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  if (alpha != 1.0) return sub(a, mul(b, alpha));
  const DType t = arith_dtype("sub", a, b);
  Tensor out = run_binary(BinaryOp::Sub, "sub", a, b, t, t);
  if (any_requires_grad(a, b))
    record_op("sub", {a, b}, out, [](const Tensors& g, const BackwardContext&) { return Tensors{g[0], -g[0]}; });
  return out;
}

// y = a·b ;  ∂y/∂a = b, ∂y/∂b = a
Tensor mul(const Tensor& a, const Tensor& b) {
  const DType t = arith_dtype("mul", a, b);
  Tensor out = run_binary(BinaryOp::Mul, "mul", a, b, t, t);
  if (any_requires_grad(a, b)) {
    record_op("mul", {a, b}, out, [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensors& g, const BackwardContext& c) {
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = mul(g[0], sb.unpack(c));
      if (c.needs_input_grad(1)) r[1] = mul(g[0], sa.unpack(c));
      return r;
    });
  }
  return out;
}

// y = a / b ;  ∂y/∂a = 1/b, ∂y/∂b = -a/b²
Tensor div(const Tensor& a, const Tensor& b) {
  DType t = arith_dtype("div", a, b);
  if (!is_floating(t)) t = kFloat32;  // true division, as torch.div
  Tensor out = run_binary(BinaryOp::Div, "div", a, b, t, t);
  if (any_requires_grad(a, b)) {
    record_op("div", {a, b}, out, [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensors& g, const BackwardContext& c) {
      Tensor bb = sb.unpack(c);
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = div(g[0], bb);
      if (c.needs_input_grad(1)) r[1] = neg(div(mul(g[0], sa.unpack(c)), mul(bb, bb)));
      return r;
    });
  }
  return out;
}

// y = a^b ;  ∂y/∂a = b·a^(b-1) (taken as 0 where b = 0, as PyTorch: 0·a^−1 is NaN at a = 0 or NaN),
// ∂y/∂b = a^b·ln a (taken as 0 where a = 0 and b ≥ 0, as PyTorch)
Tensor pow(const Tensor& a, const Tensor& b) {
  const DType t = arith_dtype("pow", a, b);
  Tensor out = run_binary(BinaryOp::Pow, "pow", a, b, t, t);
  if (any_requires_grad(a, b)) {
    record_op("pow", {a, b}, out, [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensors& g, const BackwardContext& c) {
      Tensor x = sa.unpack(c), e = sb.unpack(c);
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = mul(g[0], where(eq(e, 0.0), 0.0, mul(e, pow(x, sub(e, 1.0)))));
      if (c.needs_input_grad(1)) {
        Tensor d = mul(pow(x, e), log(x));
        r[1] = mul(g[0], where(logical_and(eq(x, 0.0), ge(e, 0.0)), 0.0, d));
      }
      return r;
    });
  }
  return out;
}

namespace {
// maximum/minimum: the gradient goes to the selected input; ties split it evenly; an input loses it only where
// the other is strictly selected, so a NaN pair (no order) passes it to both (as PyTorch).
Tensor extremum(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  const DType t = arith_dtype(name, a, b);
  Tensor out = run_binary(op, name, a, b, t, t);
  if (any_requires_grad(a, b)) {
    bool is_max = op == BinaryOp::Maximum;
    record_op(name, {a, b}, out,
              [sa = SavedTensor(a), sb = SavedTensor(b), is_max](const Tensors& g, const BackwardContext& c) {
                Tensor x = sa.unpack(c), y = sb.unpack(c);
                Tensor a_wins = (is_max ? gt(x, y) : lt(x, y)).to(g[0].dtype());
                Tensor b_wins = (is_max ? lt(x, y) : gt(x, y)).to(g[0].dtype());
                Tensor half_ties = mul(eq(x, y).to(g[0].dtype()), 0.5);
                Tensor share_a = rsub(add(b_wins, half_ties), 1.0);  // 1 − [b selected] − ½ [tie]
                Tensor share_b = rsub(add(a_wins, half_ties), 1.0);
                return Tensors{mul(g[0], share_a), mul(g[0], share_b)};
              });
  }
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::Maximum, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(BinaryOp::Minimum, "minimum", a, b); }

// ---- tensor ⊕ scalar ------------------------------------------------------------------------------

Tensor add(const Tensor& a, double s) {
  DType t = result_type(a, s);
  Tensor out = run_scalar(BinaryOp::Add, "add", a, s, false, t, t);
  if (any_requires_grad(a))
    record_op("add", {a}, out, [](const Tensors& g, const BackwardContext&) { return Tensors{g[0]}; });
  return out;
}
Tensor sub(const Tensor& a, double s) { return add(a, -s); }

Tensor mul(const Tensor& a, double s) {
  DType t = result_type(a, s);
  Tensor out = run_scalar(BinaryOp::Mul, "mul", a, s, false, t, t);
  if (any_requires_grad(a))
    record_op("mul", {a}, out, [s](const Tensors& g, const BackwardContext&) { return Tensors{mul(g[0], s)}; });
  return out;
}

Tensor div(const Tensor& a, double s) {
  DType t = is_floating(a.dtype()) ? a.dtype() : kFloat32;
  Tensor out = run_scalar(BinaryOp::Div, "div", a, s, false, t, t);
  if (any_requires_grad(a))
    record_op("div", {a}, out, [s](const Tensors& g, const BackwardContext&) { return Tensors{div(g[0], s)}; });
  return out;
}

// y = b - a
Tensor rsub(const Tensor& a, double s) {
  DType t = result_type(a, s);
  Tensor out = run_scalar(BinaryOp::Sub, "rsub", a, s, true, t, t);
  if (any_requires_grad(a))
    record_op("rsub", {a}, out, [](const Tensors& g, const BackwardContext&) { return Tensors{neg(g[0])}; });
  return out;
}

// y = s / a ;  ∂y/∂a = -s/a² = -y/a
Tensor rdiv(const Tensor& a, double s) {
  DType t = is_floating(a.dtype()) ? a.dtype() : kFloat32;
  Tensor out = run_scalar(BinaryOp::Div, "rdiv", a, s, true, t, t);
  if (any_requires_grad(a)) {
    record_op("rdiv", {a}, out,
              [sa = SavedTensor(a), sy = SavedTensor(out, true)](const Tensors& g, const BackwardContext& c) {
                return Tensors{neg(div(mul(g[0], sy.unpack(c)), sa.unpack(c)))};
              });
  }
  return out;
}

// y = a^e ;  ∂y/∂a = e·a^(e-1)
Tensor pow(const Tensor& a, double e) {
  DType t = result_type(a, e);
  HG_CHECK(is_floating(t) || e >= 0, "pow: integers to negative integer powers are not allowed ({} to the power {})",
           a.desc(), e);
  Tensor out;
  if (is_floating(a.dtype()) && (e == 0.5 || e == -0.5)) {
    // As torch: x^0.5 is √x and x^−0.5 is 1/√x (NaN at −inf and −0 kept signed, where C's pow gives +inf, +0).
    NoGradGuard no_grad;
    out = e == 0.5 ? sqrt(a) : rsqrt(a);
  } else {
    out = run_scalar(BinaryOp::Pow, "pow", a, e, false, t, t);
  }
  if (any_requires_grad(a)) {
    record_op("pow", {a}, out, [sa = SavedTensor(a), e](const Tensors& g, const BackwardContext& c) {
      if (e == 0.0) return Tensors{zeros_like(g[0])};
      return Tensors{mul(g[0], mul(pow(sa.unpack(c), e - 1.0), e))};
    });
  }
  return out;
}

// y = base^a ;  ∂y/∂a = y·ln(base), taken as 0 where base = 0 and a ≥ 0 (as PyTorch: 0·(−inf) is NaN there)
Tensor pow(double base, const Tensor& a) {
  DType t = is_floating(a.dtype()) ? a.dtype() : kFloat32;
  Tensor out = run_scalar(BinaryOp::Pow, "pow", a, base, true, t, t);
  if (any_requires_grad(a)) {
    if (base == 0.0) {
      // 0 for a ≥ 0, y·ln 0 = −inf for a < 0 (NaN for a NaN): piecewise constant in a, so formed from y detached —
      // a recorded y·(−inf) in where's unselected branch would give the second derivative 0·(−inf) = NaN.
      record_op("pow", {a}, out,
                [sa = SavedTensor(a), sy = SavedTensor(out, true)](const Tensors& g, const BackwardContext& c) {
                  const Tensor d = mul(sy.unpack(c).detach(), -std::numeric_limits<double>::infinity());
                  return Tensors{mul(g[0], where(ge(sa.unpack(c).detach(), 0.0), 0.0, d))};
                });
    } else {
      record_op("pow", {a}, out, [sy = SavedTensor(out, true), base](const Tensors& g, const BackwardContext& c) {
        return Tensors{mul(g[0], mul(sy.unpack(c), std::log(base)))};
      });
    }
  }
  return out;
}

// ---- comparisons and logic (not differentiable) ----------------------------------------------------

#define HG_COMPARE(fn, OP)                                                                          \
  Tensor fn(const Tensor& a, const Tensor& b) {                                                     \
    check_devices(#fn, a, b);                                                                       \
    return run_binary(BinaryOp::OP, #fn, a, b, result_type(a, b), kBool);                          \
  }                                                                                                 \
  /* An integer or bool tensor is compared in its own dtype with a scalar that dtype holds, else in */ \
  /* float64 (x < inf, x < 1e19 and x < 0.5 are exact there for |x| < 2^53). */                      \
  Tensor fn(const Tensor& a, double s) {                                                            \
    HG_CHECK(a.defined(), "{}: got an undefined tensor", #fn);                                      \
    DType t = a.dtype();                                                                            \
    if (!is_floating(t)) t = !fits_int64(s) ? kFloat64 : (t == kBool && s != 0.0 && s != 1.0) ? kInt64 : t; \
    return run_scalar(BinaryOp::OP, #fn, a, s, false, t, kBool);                                    \
  }
HG_COMPARE(eq, Eq)
HG_COMPARE(ne, Ne)
HG_COMPARE(lt, Lt)
HG_COMPARE(le, Le)
HG_COMPARE(gt, Gt)
HG_COMPARE(ge, Ge)
#undef HG_COMPARE

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return run_binary(BinaryOp::LogicalAnd, "logical_and", a, b, promote_types(a.dtype(), b.dtype()), kBool);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return run_binary(BinaryOp::LogicalOr, "logical_or", a, b, promote_types(a.dtype(), b.dtype()), kBool);
}

// heaviside(x, v): step function; its derivative is zero wherever it exists.
Tensor heaviside(const Tensor& x, const Tensor& values) {
  const DType t = arith_dtype("heaviside", x, values);
  Tensor out = run_binary(BinaryOp::Heaviside, "heaviside", x, values, t, t);
  if (any_requires_grad(x, values))
    record_op("heaviside", {x, values}, out, [](const Tensors& g, const BackwardContext&) {
      return Tensors{zeros_like(g[0]), zeros_like(g[0])};
    });
  return out;
}

// y = cond ? a : b ;  ∂y/∂a = cond, ∂y/∂b = !cond
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_devices("where", cond, a);
  check_devices("where", a, b);
  HG_CHECK(cond.dtype() == kBool, "where: condition must be bool, got {}", cond.desc());
  Shape shape = broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  DType t = result_type(a, b);
  Tensor out = empty(shape, t, a.device());
  backend_for(a.device()).where(cond.detach().expand(shape), a.detach().to(t).expand(shape),
                                b.detach().to(t).expand(shape), out);
  if (any_requires_grad(a, b)) {
    record_op("where", {a, b}, out, [sc = SavedTensor(cond)](const Tensors& g, const BackwardContext& c) {
      Tensor m = sc.unpack(c);
      Tensor z = zeros({}, TensorOptions(g[0].dtype()).device(g[0].device()));
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = where(m, g[0], z);
      if (c.needs_input_grad(1)) r[1] = where(m, z, g[0]);
      return r;
    });
  }
  return out;
}
// The scalar takes the dtype it has in arithmetic with the tensor (result_type: a fractional value makes an integer
// or bool tensor's result float32, as torch.where), not the tensor's own, which would truncate it.
Tensor where(const Tensor& cond, const Tensor& a, double b) {
  return where(cond, a, full({}, b, TensorOptions(result_type(a, b)).device(a.device())));
}
Tensor where(const Tensor& cond, double a, const Tensor& b) {
  return where(cond, full({}, a, TensorOptions(result_type(b, a)).device(b.device())), b);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_devices("masked_fill", x, mask);
  HG_CHECK(mask.dtype() == kBool, "masked_fill: mask must be bool, got {}", mask.desc());
  HG_CHECK(broadcasts_to(mask.sizes(), x.sizes()),
           "masked_fill: mask of shape {} does not broadcast to the input's shape {}", mask.sizes(), x.sizes());
  Tensor out = where(mask, full({}, value, TensorOptions(x.dtype()).device(x.device())), x);
  HG_CHECK(out.sizes() == x.sizes(), "masked_fill: mask of shape {} does not broadcast to the input's shape {}",
           mask.sizes(), x.sizes());
  return out;
}

// ---- operators ---------------------------------------------------------------------------------------
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) { return rdiv(b, a); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, double b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, double b) { return le(a, b); }
Tensor operator>(const Tensor& a, double b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, b); }
Tensor operator&&(const Tensor& a, const Tensor& b) { return logical_and(a, b); }
Tensor operator||(const Tensor& a, const Tensor& b) { return logical_or(a, b); }
Tensor operator!(const Tensor& a) { return logical_not(a); }

}  // namespace hg
