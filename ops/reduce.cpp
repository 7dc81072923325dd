// Reductions: sum, mean, prod, var/std, max/min (values and indices), amax/amin, argmax/argmin, logsumexp, norm.
#include <cmath>
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>
#include <hopgrad/ops/selection_grad.h>

namespace hg {

namespace {

struct ReducedShape {
  Shape keep;                 // x's shape with reduced dims set to 1
  Shape result;               // keep, or with reduced dims removed when !keepdim
  int64_t count;              // number of elements reduced into each output
  std::vector<int64_t> dims;  // the reduced dims, wrapped and ascending
};

ReducedShape reduced_shape(const Tensor& x, IntArrayRef dims, bool keepdim, const char* op) {
  ReducedShape r{x.sizes(), Shape{}, 1, {}};
  std::vector<bool> mask(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;  // dim 0 / -1 of a 0-dim tensor names the tensor itself (as torch)
    HG_CHECK(!mask[w] || dims.empty(), "{}: dimension {} appears twice in {}", op, w, dims);
    mask[w] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (mask[d]) {
      r.count *= x.sizes()[d];
      r.keep[d] = 1;
      r.dims.push_back(d);
      if (keepdim) r.result.push_back(1);
    } else {
      r.result.push_back(x.sizes()[d]);
    }
  }
  return r;
}

// Runs the backend reduction into a keepdim-shaped tensor.
Tensor reduce_raw(ReduceOp op, const Tensor& x, const Shape& keep, DType out_dtype) {
  Tensor src = x.detach();
  if (src.dtype() != out_dtype) src = src.to(out_dtype);
  Tensor out = empty(keep, out_dtype, x.device());
  backend_for(x.device()).reduce(op, src, out);
  return out;
}

}  // namespace

// y = Σ x ;  ∂y/∂x = 1 (the gradient is broadcast back over the reduced dims)
Tensor sum(const Tensor& x, IntArrayRef dims, bool keepdim) {
  HG_CHECK(x.defined(), "sum: got an undefined tensor");
  ReducedShape r = reduced_shape(x, dims, keepdim, "sum");
  DType t = is_floating(x.dtype()) ? x.dtype() : kInt64;
  Tensor out = reduce_raw(ReduceOp::Sum, x, r.keep, t).view(r.result);
  if (any_requires_grad(x)) {
    Shape keep = r.keep, in_sizes = x.sizes();
    record_op("sum", {x}, out, [keep, in_sizes](const Tensors& g, const BackwardContext&) {
      return Tensors{g[0].reshape(keep).expand(in_sizes)};
    });
  }
  return out;
}

// y = Σ x / n
Tensor mean(const Tensor& x, IntArrayRef dims, bool keepdim) {
  HG_CHECK(x.defined(), "mean: got an undefined tensor");
  HG_CHECK(is_floating(x.dtype()), "mean: expects a floating-point tensor, got {}; convert with .to(hg::kFloat32)",
           x.desc());
  ReducedShape r = reduced_shape(x, dims, keepdim, "mean");
  Tensor out = reduce_raw(ReduceOp::Mean, x, r.keep, x.dtype()).view(r.result);
  if (any_requires_grad(x)) {
    Shape keep = r.keep, in_sizes = x.sizes();
    double n = static_cast<double>(r.count);
    record_op("mean", {x}, out, [keep, in_sizes, n](const Tensors& g, const BackwardContext&) {
      return Tensors{div(g[0].reshape(keep), n).expand(in_sizes)};
    });
  }
  return out;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_floating(const Tensor& x, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(is_floating(x.dtype()), "{}: expects a floating-point tensor, got {}; convert with .to(hg::kFloat32)", op,
           x.desc());
}

// Π_{j≠i} xⱼ over each reduced group, for every element i, exact (with its own derivative, for double backward)
// when the group holds zeros, where y / xᵢ is not. With P the product of the group's nonzeros and Zᵢ the product
// of its zeros other than xᵢ:  Π_{j≠i} xⱼ = P / xᵢ · Zᵢ (nonzero xᵢ)  or  P · Zᵢ (xᵢ = 0).
// Zᵢ at a nonzero element is the product of all zeros (1 if none). At a zero element it is 1 if that is the only
// zero; with exactly one other zero xₖ it is xₖ — written Σ_zeros x − xᵢ, which is 0 but has derivative 1 in
// xₖ; with more zeros it is 0 up to second order.
Tensor prod_of_others(const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor is_zero = eq(x, 0.0);
  Tensor zero_count = sum(is_zero, dims, /*keepdim=*/true);
  Tensor nonzero = where(is_zero, 1.0, x);
  Tensor nonzero_product = prod(nonzero, dims, /*keepdim=*/true);
  Tensor zeros_product = prod(where(is_zero, x, 1.0), dims, /*keepdim=*/true);
  Tensor other_zero = sub(sum(where(is_zero, x, 0.0), dims, /*keepdim=*/true), x);
  Tensor others_at_zero = where(eq(zero_count, 1.0), 1.0, where(eq(zero_count, 2.0), other_zero, 0.0));
  Tensor zeros_factor = where(is_zero, others_at_zero, zeros_product);
  // Where the factor of zeros is 0 so is the product of the others, but P / xᵢ may have overflowed to inf there,
  // and inf · 0 is NaN: a finite stand-in (0) keeps the value 0. Only its derivative for double backward is lost,
  // and only where P / xᵢ overflowed. When the others hold a NaN or an infinity the product of the others is NaN
  // (inf · 0), and so is the stand-in; xᵢ's own value does not count.
  Tensor nonfinite = where(lt(abs(x), kInf), zeros_like(x), 1.0);
  Tensor others_nonfinite = sub(sum(nonfinite, dims, /*keepdim=*/true), nonfinite);
  Tensor stand_in = where(gt(others_nonfinite, 0.5), full_like(x, std::numeric_limits<double>::quiet_NaN()), 0.0);
  Tensor others_nonzero = div(nonzero_product, nonzero);
  Tensor finite = where(lt(abs(others_nonzero), kInf), others_nonzero, stand_in);
  return mul(where(eq(zeros_factor, 0.0), finite, others_nonzero), zeros_factor);
}

// Σ (x − μ)² / dof over r.dims, kept dims of size 1 (forward only).
Tensor variance(const Tensor& x, const ReducedShape& r, double dof) {
  NoGradGuard no_grad;
  Tensor centered = sub(x, mean(x, r.dims, /*keepdim=*/true));
  mul_(centered, centered);  // squared in place: one full-size temporary instead of two
  return div(sum(centered, r.dims, /*keepdim=*/true), dof);
}

// ∂var/∂x = 2 (x − μ) / dof ;  g has x's rank (size 1 along dims).
Tensor var_backward(const Tensor& g, const Tensor& x, const std::vector<int64_t>& dims, double dof) {
  return mul(mul(g, sub(x, mean(x, dims, /*keepdim=*/true))), 2.0 / dof);
}

// dof = N − δ with δ = 1 for Bessel's correction, clamped at 0 (so one element gives NaN, as torch).
double degrees_of_freedom(const ReducedShape& r, bool unbiased) {
  return std::max(0.0, static_cast<double>(r.count) - (unbiased ? 1.0 : 0.0));
}

// max/min over dims; bool input is compared as int64 and returned as bool (as torch).
Tensor extremum(const Tensor& x, IntArrayRef dims, bool keepdim, bool is_max, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  ReducedShape r = reduced_shape(x, dims, keepdim, op);
  HG_CHECK(r.count > 0,
           "{}: cannot reduce over zero elements (input shape {}, reduced dims {}): max/min have no identity; "
           "reduce only over non-empty dimensions",
           op, x.sizes(), IntArrayRef(r.dims));
  DType compute = x.dtype() == kBool ? kInt64 : x.dtype();
  Tensor out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, x, r.keep, compute);
  if (x.dtype() == kBool) out = out.to(kBool);
  out = out.view(r.result);
  if (any_requires_grad(x)) {
    record_op(op, {x}, out,
              [sx = SavedTensor(x), sy = SavedTensor(out, true), keep = r.keep, dims = r.dims](
                  const Tensors& g, const BackwardContext& c) {
                return Tensors{detail::split_among_ties(g[0].reshape(keep), sx.unpack(c), sy.unpack(c).reshape(keep),
                                                        dims)};
              });
  }
  return out;
}

// Max (min) along one dim with the index of its first occurrence, both in keepdim shape; `work` is x viewed as
// at least 1-D (a 0-dim tensor reduces as a 1-element vector).
struct ArgExtremum {
  Tensor values, indices;
  Shape result;  // the shape the caller returns (keepdim or not)
  Shape work_sizes, keep;
  int64_t dim;
};
ArgExtremum arg_extremum(const Tensor& x, int64_t dim, bool keepdim, bool is_max, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  ArgExtremum a;
  a.dim = wrap_dim(dim, x.dim(), op);
  Tensor src = x.dim() == 0 ? x.detach().reshape({1}) : x.detach();
  HG_CHECK(src.size(a.dim) > 0,
           "{}: cannot reduce over dimension {} of size 0 (input shape {}): there is no maximum or minimum of zero "
           "elements",
           op, dim, x.sizes());
  if (src.dtype() == kBool) src = src.to(kInt64);
  a.work_sizes = src.sizes();
  a.keep = src.sizes();
  a.keep[static_cast<size_t>(a.dim)] = 1;
  a.values = empty(a.keep, src.dtype(), x.device());
  a.indices = empty(a.keep, kInt64, x.device());
  backend_for(x.device()).arg_reduce(is_max, src, a.dim, a.values, a.indices);
  if (x.dtype() == kBool) a.values = a.values.to(kBool);
  a.result = x.dim() == 0 ? Shape{} : a.keep;
  if (!keepdim && x.dim() > 0) a.result.erase(static_cast<size_t>(a.dim));
  return a;
}

// (values, indices) = max (min) along dim ;  ∂values/∂x = g at the selected index, 0 elsewhere
std::tuple<Tensor, Tensor> extremum_along(const Tensor& x, int64_t dim, bool keepdim, bool is_max, const char* op) {
  ArgExtremum a = arg_extremum(x, dim, keepdim, is_max, op);
  Tensor values = a.values.view(a.result), indices = a.indices.view(a.result);
  if (any_requires_grad(x)) {
    record_op(op, {x}, values,
              [si = SavedTensor(a.indices), keep = a.keep, d = a.dim, work = a.work_sizes, in_sizes = x.sizes()](
                  const Tensors& g, const BackwardContext& c) {
                Tensor gx = detail::scatter_to_input(g[0].reshape(keep), si.unpack(c), d, work);
                return Tensors{gx.reshape(in_sizes)};
              });
  }
  return {values, indices};
}

// ‖x‖_p over dims, kept dims of size 1 (forward only).
Tensor norm_forward(const Tensor& x, double p, const std::vector<int64_t>& dims) {
  NoGradGuard no_grad;
  if (p == 2.0) return sqrt(sum(mul(x, x), dims, true));
  if (p == 1.0) return sum(abs(x), dims, true);
  if (p == 0.0) return sum(ne(x, 0.0), dims, true).to(x.dtype());
  if (p == kInf) return amax(abs(x), dims, true);
  if (p == -kInf) return amin(abs(x), dims, true);
  return pow(sum(pow(abs(x), p), dims, true), 1.0 / p);
}

// ∂‖x‖_p/∂x = sign(x) |x|^(p−1) / ‖x‖^(p−1), with torch's choices where that is undefined: 0 where ‖x‖ = 0
// (p ≥ 1) and at x = 0 (p < 1); for p = ±∞ the gradient is split evenly among the elements attaining the norm;
// p = 0 has gradient 0. g and y have x's rank (size 1 along dims). The masked denominators are replaced by 1
// before dividing, so that the formula's own gradient is free of 0·∞ NaNs.
Tensor norm_backward(const Tensor& g, const Tensor& x, const Tensor& y, double p, const std::vector<int64_t>& dims) {
  if (p == 0.0) return zeros_like(x);
  if (p == 1.0) return mul(sign(x), g);
  if (std::isinf(p)) return mul(sign(x), detail::split_among_ties(g, abs(x), y, dims));
  Tensor zero_norm = eq(y, 0.0);
  Tensor safe_y = where(zero_norm, 1.0, y);
  if (p == 2.0) return mul(x, where(zero_norm, 0.0, div(g, safe_y)));
  if (p < 1.0) {
    Tensor at_zero = eq(x, 0.0);
    Tensor slope = where(at_zero, 0.0, mul(sign(x), pow(where(at_zero, 1.0, abs(x)), p - 1.0)));
    return mul(mul(slope, g), pow(y, 1.0 - p));
  }
  Tensor slope = mul(sign(x), pow(abs(x), p - 1.0));
  return mul(slope, where(zero_norm, 0.0, div(g, pow(safe_y, p - 1.0))));
}

}  // namespace

// y = Π x ;  ∂y/∂xᵢ = Π_{j≠i} xⱼ (exact when the group holds zeros; see prod_of_others)
Tensor prod(const Tensor& x, IntArrayRef dims, bool keepdim) {
  HG_CHECK(x.defined(), "prod: got an undefined tensor");
  ReducedShape r = reduced_shape(x, dims, keepdim, "prod");
  DType t = is_floating(x.dtype()) ? x.dtype() : kInt64;
  Tensor out = reduce_raw(ReduceOp::Prod, x, r.keep, t).view(r.result);
  if (any_requires_grad(x)) {
    record_op("prod", {x}, out,
              [sx = SavedTensor(x), keep = r.keep, dims = r.dims](const Tensors& g, const BackwardContext& c) {
                return Tensors{mul(g[0].reshape(keep), prod_of_others(sx.unpack(c), dims))};
              });
  }
  return out;
}

// var = Σ (x − μ)² / (N − δ), δ = 1 when unbiased ;  ∂var/∂x = 2 (x − μ) / (N − δ)
Tensor var(const Tensor& x, IntArrayRef dims, bool unbiased, bool keepdim) {
  check_floating(x, "var");
  ReducedShape r = reduced_shape(x, dims, keepdim, "var");
  double dof = degrees_of_freedom(r, unbiased);
  Tensor out = variance(x, r, dof).view(r.result);
  if (any_requires_grad(x)) {
    record_op("var", {x}, out,
              [sx = SavedTensor(x), keep = r.keep, dims = r.dims, dof](const Tensors& g, const BackwardContext& c) {
                return Tensors{var_backward(g[0].reshape(keep), sx.unpack(c), dims, dof)};
              });
  }
  return out;
}

// σ = √var ;  ∂σ/∂x = (∂var/∂x) / 2σ, taken as 0 where σ = 0 (as torch)
Tensor std(const Tensor& x, IntArrayRef dims, bool unbiased, bool keepdim) {
  check_floating(x, "std");
  ReducedShape r = reduced_shape(x, dims, keepdim, "std");
  double dof = degrees_of_freedom(r, unbiased);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = sqrt(variance(x, r, dof)).view(r.result);
  }
  if (any_requires_grad(x)) {
    record_op("std", {x}, out,
              [sx = SavedTensor(x), sy = SavedTensor(out, true), keep = r.keep, dims = r.dims, dof](
                  const Tensors& g, const BackwardContext& c) {
                Tensor sigma = sy.unpack(c).reshape(keep);
                Tensor flat = eq(sigma, 0.0);
                Tensor grad_var = where(flat, 0.0, div(g[0].reshape(keep), mul(where(flat, 1.0, sigma), 2.0)));
                return Tensors{var_backward(grad_var, sx.unpack(c), dims, dof)};
              });
  }
  return out;
}

// y = max x (over all elements) ;  ∂y/∂x = g split evenly among the elements equal to y
Tensor max(const Tensor& x) { return extremum(x, {}, false, /*is_max=*/true, "max"); }
Tensor min(const Tensor& x) { return extremum(x, {}, false, /*is_max=*/false, "min"); }
Tensor amax(const Tensor& x, IntArrayRef dims, bool keepdim) { return extremum(x, dims, keepdim, true, "amax"); }
Tensor amin(const Tensor& x, IntArrayRef dims, bool keepdim) { return extremum(x, dims, keepdim, false, "amin"); }

std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along(x, dim, keepdim, /*is_max=*/true, "max");
}
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along(x, dim, keepdim, /*is_max=*/false, "min");
}

// Index of the first maximum (minimum) along dim; a NaN counts as the maximum (and minimum), as torch.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  ArgExtremum a = arg_extremum(x, dim, keepdim, /*is_max=*/true, "argmax");
  return a.indices.view(a.result);
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  ArgExtremum a = arg_extremum(x, dim, keepdim, /*is_max=*/false, "argmin");
  return a.indices.view(a.result);
}

// y = m + log Σ exp(x − m), m = max x over dims (0 where infinite: all −inf gives −inf, any +inf gives +inf);
// ∂y/∂x = exp(x − y), the softmax of x over dims (0 for groups that are all −inf)
Tensor logsumexp(const Tensor& x, IntArrayRef dims, bool keepdim) {
  HG_CHECK(x.defined(), "logsumexp: got an undefined tensor");
  // Integer and bool input give float32, as torch (no gradient flows through that conversion anyway).
  Tensor xf = is_floating(x.dtype()) ? x : x.to(kFloat32);
  ReducedShape r = reduced_shape(xf, dims, keepdim, "logsumexp");
  Tensor out;
  {
    NoGradGuard no_grad;
    if (r.count == 0) {
      out = full(r.keep, -kInf, TensorOptions(xf.dtype()).device(xf.device()));  // log of an empty sum
    } else {
      Tensor m = reduce_raw(ReduceOp::Max, xf, r.keep, xf.dtype());
      m = masked_fill(m, logical_or(eq(m, kInf), eq(m, -kInf)), 0.0);
      out = add(log(sum(exp(sub(xf, m)), r.dims, /*keepdim=*/true)), m);
    }
    out = out.view(r.result);
  }
  if (any_requires_grad(x)) {
    record_op("logsumexp", {x}, out,
              [sx = SavedTensor(x), sy = SavedTensor(out, true), keep = r.keep](const Tensors& g,
                                                                                 const BackwardContext& c) {
                Tensor y = sy.unpack(c).reshape(keep);
                // exp(x − y) with y = −inf replaced by 0: an all −inf group gets exp(−inf) = 0, not NaN.
                Tensor y_finite = masked_fill(y, eq(y, -kInf), 0.0);
                return Tensors{mul(g[0].reshape(keep), exp(sub(sx.unpack(c), y_finite)))};
              });
  }
  return out;
}

// y = ‖x‖_p over dims (see norm_forward / norm_backward for the special p)
Tensor norm(const Tensor& x, double p, IntArrayRef dims, bool keepdim) {
  check_floating(x, "norm");
  HG_CHECK(!std::isnan(p), "norm: the order p must be a number, got NaN");
  ReducedShape r = reduced_shape(x, dims, keepdim, "norm");
  HG_CHECK(!std::isinf(p) || r.count > 0,
           "norm: the {} norm of zero elements is undefined (input shape {}, reduced dims {}); max/min have no "
           "identity",
           p, x.sizes(), IntArrayRef(r.dims));
  Tensor out = norm_forward(x, p, r.dims).view(r.result);
  if (any_requires_grad(x)) {
    record_op("norm", {x}, out,
              [sx = SavedTensor(x), sy = SavedTensor(out, true), keep = r.keep, dims = r.dims, p](
                  const Tensors& g, const BackwardContext& c) {
                return Tensors{norm_backward(g[0].reshape(keep), sx.unpack(c), sy.unpack(c).reshape(keep), p, dims)};
              });
  }
  return out;
}

Tensor sum_to(const Tensor& x, IntArrayRef shape_ref) {
  Shape shape(shape_ref);
  if (x.sizes() == shape) return x;
  HG_CHECK(static_cast<size_t>(x.dim()) >= shape.size(), "sum_to: cannot sum shape {} down to {}", x.sizes(), shape);
  size_t lead = static_cast<size_t>(x.dim()) - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < static_cast<size_t>(x.dim()); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
    } else if (shape[d - lead] == 1 && x.sizes()[d] != 1) {
      dims.push_back(static_cast<int64_t>(d));
    } else {
      HG_CHECK(shape[d - lead] == x.sizes()[d], "sum_to: cannot sum shape {} down to {}", x.sizes(), shape);
    }
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, true).reshape(shape);
}

Tensor Tensor::sum() const { return hg::sum(*this); }
Tensor Tensor::sum(IntArrayRef dims, bool keepdim) const { return hg::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return hg::mean(*this); }
Tensor Tensor::mean(IntArrayRef dims, bool keepdim) const { return hg::mean(*this, dims, keepdim); }

}  // namespace hg
