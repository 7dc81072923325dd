// Reductions: sum, mean, prod, var/std, max/min (values and indices), argmax/argmin, logsumexp, norm.
#include <cmath>
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

struct ReducedShape {
  Shape keep;     // x's shape with reduced dims set to 1
  Shape result;   // keep, or with reduced dims removed when !keepdim
  int64_t count;  // number of elements reduced into each output
};

ReducedShape reduced_shape(const Tensor& x, IntArrayRef dims, bool keepdim, const char* op) {
  ReducedShape r{x.sizes(), Shape{}, 1};
  std::vector<bool> mask(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    HG_CHECK(!mask[w] || dims.empty(), "{}: dimension {} appears twice in {}", op, w, dims);
    mask[w] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (mask[d]) {
      r.count *= x.sizes()[d];
      r.keep[d] = 1;
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
