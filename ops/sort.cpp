// Sorting and selection along one dim (sort, argsort, topk, kthvalue, median) and the cumulative sum.
// The selecting ops send each output's gradient back to the input element it was taken from.
#include <cmath>
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>
#include <hopgrad/ops/selection_grad.h>

namespace hg {

namespace {

// x prepared for a kernel along one dim: detached, at least 1-D (a 0-dim tensor acts as a 1-element vector, as
// in torch) and bool compared as int64.
struct AlongDim {
  Tensor work;
  int64_t dim;   // wrapped
  int64_t size;  // work.size(dim)
};
AlongDim along_dim(const Tensor& x, int64_t dim, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  AlongDim a;
  a.dim = wrap_dim(dim, x.dim(), op);
  a.work = x.dim() == 0 ? x.detach().reshape({1}) : x.detach();
  if (a.work.dtype() == kBool) a.work = a.work.to(kInt64);
  a.size = a.work.size(a.dim);
  return a;
}

// Values back in x's dtype and rank (a 0-dim input gives 0-dim results).
Tensor restore(const Tensor& t, const Tensor& x) {
  Tensor r = x.dim() == 0 ? t.reshape({}) : t;
  return x.dtype() == kBool ? r.to(kBool) : r;
}

// Records the gradient of values taken from x at `indices` along dim (all three in the work layout).
void record_selection(const char* op, const Tensor& x, const Tensor& values, const Tensor& indices,
                      const AlongDim& a) {
  record_op(op, {x}, values,
            [si = SavedTensor(indices), d = a.dim, work = a.work.sizes(), picked = indices.sizes(),
             in_sizes = x.sizes()](const Tensors& g, const BackwardContext& c) {
              Tensor gx = detail::scatter_to_input(g[0].reshape(picked), si.unpack(c), d, work);
              return Tensors{gx.reshape(in_sizes)};
            });
}

// The k-th smallest along a.dim (1 ≤ k ≤ size) in keepdim layout, equal values ranked by index: the last of
// the k smallest in stable order.
std::pair<Tensor, Tensor> kth_smallest(const AlongDim& a, int64_t k) {
  Shape sizes = a.work.sizes();
  sizes[static_cast<size_t>(a.dim)] = k;
  Tensor values = empty(sizes, a.work.dtype(), a.work.device());
  Tensor indices = empty(sizes, kInt64, a.work.device());
  backend_for(a.work.device()).topk(a.work, k, a.dim, /*largest=*/false, values, indices);
  return {values.narrow(a.dim, k - 1, 1).contiguous(), indices.narrow(a.dim, k - 1, 1).contiguous()};
}

// torch.median propagates NaN: a row holding NaN has median NaN, at the index of its first NaN (which is where
// argmax puts it).
void propagate_nan(const AlongDim& a, Tensor& values, Tensor& indices) {
  if (!is_floating(a.work.dtype())) return;
  Tensor top = empty(values.sizes(), values.dtype(), values.device());
  Tensor top_index = empty(values.sizes(), kInt64, values.device());
  backend_for(a.work.device()).arg_reduce(/*is_max=*/true, a.work, a.dim, top, top_index);
  Tensor has_nan = ne(top, top);
  values = where(has_nan, top, values);
  indices = where(has_nan, top_index, indices);
}

// Σ_{i ≥ j} gᵢ along dim: the cumulative sum of g reversed, reversed back. Exact where Σg − cumsum(g) + g
// would cancel catastrophically, and differentiable (its gradient is a plain cumsum).
Tensor reverse_cumsum(const Tensor& g, int64_t dim) {
  if (g.dim() == 0) return g;
  int64_t n = g.size(dim);
  Tensor reversed = arange(static_cast<double>(n - 1), -1.0, -1.0, TensorOptions(kInt64).device(g.device()));
  return index_select(cumsum(index_select(g, dim, reversed), dim), dim, reversed);
}

}  // namespace

// (values, indices) = the k largest (smallest) along dim, sorted, ties by lower index ;  ∂values/∂x scatters g
// back to the picked indices. `sorted = false` allows any order; the result is sorted either way.
std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool sorted) {
  AlongDim a = along_dim(x, dim, "topk");
  HG_CHECK(k >= 0 && k <= a.size,
           "topk: k = {} is out of range for dimension {} of size {} (input shape {}); expected 0 <= k <= {}", k, dim,
           a.size, x.sizes(), a.size);
  // A 0-dim result holds one element, so k = 0 has no 0-dim answer (torch returns the element anyway).
  HG_CHECK(x.dim() > 0 || k == 1, "topk: k = {} for a 0-dim input; expected k = 1 (its one element)", k);
  Shape sizes = a.work.sizes();
  sizes[static_cast<size_t>(a.dim)] = k;
  Tensor values = empty(sizes, a.work.dtype(), x.device()), indices = empty(sizes, kInt64, x.device());
  if (values.numel() > 0) backend_for(x.device()).topk(a.work, k, a.dim, largest, values, indices);
  if (any_requires_grad(x)) record_selection("topk", x, values, indices, a);
  return {restore(values, x), x.dim() == 0 ? indices.reshape({}) : indices};
}

// (values, indices) = x sorted along dim, stably (equal values keep their order; NaN sorts as the largest) ;
// ∂values/∂x scatters g back through the permutation
std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  AlongDim a = along_dim(x, dim, "sort");
  Tensor values = empty(a.work.sizes(), a.work.dtype(), x.device());
  Tensor indices = empty(a.work.sizes(), kInt64, x.device());
  if (values.numel() > 0) backend_for(x.device()).sort(a.work, a.dim, descending, values, indices);
  if (any_requires_grad(x)) record_selection("sort", x, values, indices, a);
  return {restore(values, x), x.dim() == 0 ? indices.reshape({}) : indices};
}

// The permutation that sorts x along dim (stable); not differentiable.
Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  AlongDim a = along_dim(x, dim, "argsort");
  Tensor values = empty(a.work.sizes(), a.work.dtype(), x.device());
  Tensor indices = empty(a.work.sizes(), kInt64, x.device());
  if (values.numel() > 0) backend_for(x.device()).sort(a.work, a.dim, descending, values, indices);
  return x.dim() == 0 ? indices.reshape({}) : indices;
}

// (values, indices) = the k-th smallest along dim (1-based k; NaN ranks as the largest) ;  ∂values/∂x = g at the
// index, 0 elsewhere
std::tuple<Tensor, Tensor> kthvalue(const Tensor& x, int64_t k, int64_t dim, bool keepdim) {
  AlongDim a = along_dim(x, dim, "kthvalue");
  HG_CHECK(k >= 1 && k <= a.size,
           "kthvalue: k = {} is out of range for dimension {} of size {} (input shape {}); expected 1 <= k <= {} "
           "(k is 1-based)",
           k, dim, a.size, x.sizes(), a.size);
  auto [values, indices] = kth_smallest(a, k);
  if (any_requires_grad(x)) record_selection("kthvalue", x, values, indices, a);
  if (!keepdim) values = values.squeeze(a.dim), indices = indices.squeeze(a.dim);
  return {restore(values, x), x.dim() == 0 ? indices.reshape({}) : indices};
}

// (values, indices) = the lower median along dim: element (n − 1)/2 of the sorted values, as torch.median (NaN
// if the row holds one) ;  ∂values/∂x = g at the index, 0 elsewhere
std::tuple<Tensor, Tensor> median(const Tensor& x, int64_t dim, bool keepdim) {
  AlongDim a = along_dim(x, dim, "median");
  HG_CHECK(a.size > 0, "median: cannot reduce over dimension {} of size 0 (input shape {}): zero elements have no "
                       "median",
           dim, x.sizes());
  auto [values, indices] = kth_smallest(a, (a.size - 1) / 2 + 1);
  propagate_nan(a, values, indices);
  if (any_requires_grad(x)) record_selection("median", x, values, indices, a);
  if (!keepdim) values = values.squeeze(a.dim), indices = indices.squeeze(a.dim);
  return {restore(values, x), x.dim() == 0 ? indices.reshape({}) : indices};
}

// y = the lower median of all elements (NaN if any is NaN; NaN for no elements, as torch) ;  ∂y/∂x = g split
// evenly among the elements equal to y (as torch)
Tensor median(const Tensor& x) {
  HG_CHECK(x.defined(), "median: got an undefined tensor");
  Tensor out;
  if (x.numel() == 0) {
    HG_CHECK(is_floating(x.dtype()),
             "median: the median of zero elements is NaN, which dtype {} cannot hold (input shape {})", x.dtype(),
             x.sizes());
    out = full({}, std::numeric_limits<double>::quiet_NaN(), TensorOptions(x.dtype()).device(x.device()));
  } else {
    AlongDim a = along_dim(x.detach().reshape({-1}), 0, "median");
    auto [values, indices] = kth_smallest(a, (a.size - 1) / 2 + 1);
    propagate_nan(a, values, indices);
    out = restore(values.reshape({}), x);
  }
  if (any_requires_grad(x)) {
    record_op("median", {x}, out,
              [sx = SavedTensor(x), sy = SavedTensor(out, true)](const Tensors& g, const BackwardContext& c) {
                Tensor input = sx.unpack(c);
                Shape ones(static_cast<size_t>(input.dim()), 1);
                return Tensors{detail::split_among_ties(g[0].reshape(ones), input, sy.unpack(c).reshape(ones), {})};
              });
  }
  return out;
}

// yᵢ = Σ_{j ≤ i} xⱼ along dim (bool and int64 sum as int64) ;  ∂L/∂xⱼ = Σ_{i ≥ j} gᵢ
Tensor cumsum(const Tensor& x, int64_t dim) {
  HG_CHECK(x.defined(), "cumsum: got an undefined tensor");
  int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  DType t = is_floating(x.dtype()) ? x.dtype() : kInt64;
  Tensor src = x.detach().to(t);
  if (src.dim() == 0) src = src.reshape({1});
  Tensor out = empty(src.sizes(), t, x.device());
  if (out.numel() > 0) backend_for(x.device()).cumsum(src, d, out);
  out = out.reshape(x.sizes());
  if (any_requires_grad(x)) {
    record_op("cumsum", {x}, out,
              [d](const Tensors& g, const BackwardContext&) { return Tensors{reverse_cumsum(g[0], d)}; });
  }
  return out;
}

}  // namespace hg
