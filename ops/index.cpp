// Indexing ops: index_select, gather, scatter_add, index_add, one_hot (torch semantics). Indices are int64 and are
// range-checked here, before any kernel runs, so backends can trust them. Each op's backward is another op of
// this family (select ↔ add, gather ↔ scatter_add), so all of them are differentiable twice.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/index_check.h>
#include <hopgrad/ops/ops.h>

namespace hg {

void check_index(const char* op, const Tensor& index, const Tensor& self, int64_t dim, const char* self_name) {
  HG_CHECK(index.dtype() == kInt64, "{}: index must be int64, got {}; convert it with .to(hg::kInt64)", op,
           index.desc());
  HG_CHECK(index.device() == self.device(), "{}: index ({}) and {} ({}) are on different devices", op, index.desc(),
           self_name, self.desc());
  if (index.numel() == 0) return;
  // min and max side by side in one 2-element buffer: one reduction each, one transfer to the host.
  Tensor extremes = empty({2}, kInt64, index.device());
  Shape ones(static_cast<size_t>(index.dim()), 1);
  Tensor lo = make_tensor(extremes.storage(), ones, ones, 0, kInt64);
  Tensor hi = make_tensor(extremes.storage(), ones, ones, 1, kInt64);
  Backend& backend = backend_for(index.device());
  Tensor values = index.detach();
  backend.reduce(ReduceOp::Min, values, lo);
  backend.reduce(ReduceOp::Max, values, hi);
  std::vector<int64_t> range = extremes.to_vector<int64_t>();
  const int64_t size = self.sizes()[dim];
  HG_CHECK(range[0] >= 0 && range[1] < size,
           "{}: index {} is out of range for dimension {} of {} {} (expected 0 <= index < {})", op,
           range[0] < 0 ? range[0] : range[1], dim, self_name, self.sizes(), size);
}

namespace {

void check_defined(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) HG_CHECK(t->defined(), "{}: got an undefined tensor", op);
}

// Wraps dim against x's rank; the indexing ops need at least one dimension to index.
int64_t index_dim(const char* op, const Tensor& x, int64_t dim, const char* name) {
  HG_CHECK(x.dim() > 0, "{}: {} must have at least one dimension, got a 0-dim tensor", op, name);
  return wrap_dim(dim, x.dim(), op);
}

// A 1-D view of a 0-dim or 1-D index (index_select and index_add take either, as torch).
Tensor as_index_vector(const char* op, const Tensor& index) {
  HG_CHECK(index.dim() <= 1, "{}: index must be 1-D (or 0-dim), got shape {}", op, index.sizes());
  return index.detach().reshape({index.numel()});
}

// src must match self in dtype and device (no silent conversion of the values being added).
void check_src_matches(const char* op, const Tensor& self, const Tensor& src) {
  HG_CHECK(self.dtype() == src.dtype(), "{}: self ({}) and src ({}) must have the same dtype", op, self.desc(),
           src.desc());
  HG_CHECK(self.device() == src.device(), "{}: self ({}) and src ({}) are on different devices", op, self.desc(),
           src.desc());
}

// A fresh contiguous copy of self for the scatter-style ops to accumulate into.
Tensor accumulator_copy(const Tensor& self) {
  Tensor out = empty(self.sizes(), self.dtype(), self.device());
  if (out.numel() > 0) backend_for(self.device()).copy(self.detach(), out);
  return out;
}

Tensor zeros_on(const Shape& sizes, const Tensor& like) {
  return zeros(sizes, TensorOptions(like.dtype()).device(like.device()));
}

}  // namespace

// y = x.index_select(dim, index) ;  ∂L/∂x = index_add(0, dim, index, g)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", {&x, &index});
  dim = index_dim("index_select", x, dim, "input");
  Tensor idx = as_index_vector("index_select", index);
  check_index("index_select", idx, x, dim, "input");
  Shape out_sizes = x.sizes();
  out_sizes[dim] = idx.numel();
  Tensor out = empty(out_sizes, x.dtype(), x.device());
  if (out.numel() > 0) backend_for(x.device()).index_select(x.detach(), dim, idx, out);
  if (any_requires_grad(x)) {
    record_op("index_select", {x}, out,
              [sizes = x.sizes(), dim, si = SavedTensor(idx)](const Tensors& g, const BackwardContext& c) {
                return Tensors{index_add(zeros_on(sizes, g[0]), dim, si.unpack(c), g[0])};
              });
  }
  return out;
}

// y[..i..] = x[..index[..i..]..] (index replaces the position along dim) ;  ∂L/∂x = scatter_add(0, dim, index, g)
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("gather", {&x, &index});
  dim = index_dim("gather", x, dim, "input");
  HG_CHECK(index.dim() == x.dim(), "gather: index must have as many dimensions as the input, got index {} for input {}",
           index.sizes(), x.sizes());
  for (int64_t d = 0; d < x.dim(); ++d) {
    HG_CHECK(d == dim || index.sizes()[d] <= x.sizes()[d],
             "gather: index {} is larger than the input {} in dimension {} (only dimension {}, the gathered one, "
             "may be larger)",
             index.sizes(), x.sizes(), d, dim);
  }
  check_index("gather", index, x, dim, "input");
  Tensor out = empty(index.sizes(), x.dtype(), x.device());
  if (out.numel() > 0) backend_for(x.device()).gather(x.detach(), dim, index.detach(), out);
  if (any_requires_grad(x)) {
    record_op("gather", {x}, out,
              [sizes = x.sizes(), dim, si = SavedTensor(index)](const Tensors& g, const BackwardContext& c) {
                return Tensors{scatter_add(zeros_on(sizes, g[0]), dim, si.unpack(c), g[0])};
              });
  }
  return out;
}

// y = self; y[..index[..i..]..] += src[..i..] along dim, over the positions i of index
// ∂L/∂self = g ;  ∂L/∂src = gather(g, dim, index), zero where index does not reach (index smaller than src)
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined("scatter_add", {&self, &index, &src});
  dim = index_dim("scatter_add", self, dim, "self");
  check_src_matches("scatter_add", self, src);
  HG_CHECK(index.dim() == self.dim() && src.dim() == self.dim(),
           "scatter_add: self, index and src must have the same number of dimensions, got self {}, index {}, src {}",
           self.sizes(), index.sizes(), src.sizes());
  for (int64_t d = 0; d < self.dim(); ++d) {
    HG_CHECK(index.sizes()[d] <= src.sizes()[d] && (d == dim || index.sizes()[d] <= self.sizes()[d]),
             "scatter_add: index {} must be no larger than src {} in every dimension and no larger than self {} in "
             "every dimension but {}; dimension {} is not",
             index.sizes(), src.sizes(), self.sizes(), dim, d);
  }
  check_index("scatter_add", index, self, dim, "self");
  Tensor out = accumulator_copy(self);
  // Only the part of src that index covers takes part (as torch).
  Tensor src_used = make_tensor(src.storage(), index.sizes(), src.strides(), src.offset(), src.dtype());
  backend_for(self.device()).scatter_add(out, dim, index.detach(), src_used);
  if (any_requires_grad(self, src)) {
    Shape src_sizes = src.sizes();
    record_op("scatter_add", {self, src}, out,
              [dim, src_sizes, si = SavedTensor(index)](const Tensors& g, const BackwardContext& c) {
                Tensors r(2);
                if (c.needs_input_grad(0)) r[0] = g[0];
                if (c.needs_input_grad(1)) {
                  Tensor idx = si.unpack(c);
                  r[1] = gather(g[0], dim, idx);
                  if (idx.sizes() != src_sizes) {
                    std::vector<int64_t> widen;  // (before, after) pairs from the last dim, as pad() takes them
                    for (int64_t d = idx.dim() - 1; d >= 0; --d)
                      widen.insert(widen.end(), {0, src_sizes[d] - idx.sizes()[d]});
                    r[1] = pad(r[1], widen);
                  }
                }
                return r;
              });
  }
  return out;
}

// y = self; y.select(dim, index[j]) += src.select(dim, j)
// ∂L/∂self = g ;  ∂L/∂src = index_select(g, dim, index)
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined("index_add", {&self, &index, &src});
  dim = index_dim("index_add", self, dim, "self");
  check_src_matches("index_add", self, src);
  Tensor idx = as_index_vector("index_add", index);
  Shape expected = self.sizes();
  expected[dim] = idx.numel();
  HG_CHECK(src.sizes() == expected,
           "index_add: src must have self's shape {} except {} (the number of indices) in dimension {}, i.e. {}; "
           "got src {}",
           self.sizes(), idx.numel(), dim, expected, src.sizes());
  check_index("index_add", idx, self, dim, "self");
  Tensor out = accumulator_copy(self);
  backend_for(self.device()).index_add(out, dim, idx, src.detach());
  if (any_requires_grad(self, src)) {
    record_op("index_add", {self, src}, out, [dim, si = SavedTensor(idx)](const Tensors& g, const BackwardContext& c) {
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = g[0];
      if (c.needs_input_grad(1)) r[1] = index_select(g[0], dim, si.unpack(c));
      return r;
    });
  }
  return out;
}

// one_hot[..., c] = (index[...] == c): a comparison against the class numbers, broadcast over a new last dim.
Tensor one_hot(const Tensor& index, int64_t num_classes) {
  HG_CHECK(index.defined(), "one_hot: got an undefined tensor");
  HG_CHECK(index.dtype() == kInt64, "one_hot: expects int64 class indices, got {}; convert with .to(hg::kInt64)",
           index.desc());
  HG_CHECK(num_classes >= -1, "one_hot: num_classes must be -1 (inferred) or non-negative, got {}", num_classes);
  if (index.numel() == 0) {
    HG_CHECK(num_classes >= 0, "one_hot: cannot infer the number of classes from an empty index; pass num_classes");
  } else {
    const auto lowest = min(index).item<int64_t>(), highest = max(index).item<int64_t>();
    HG_CHECK(lowest >= 0, "one_hot: class indices must be non-negative, got {} (index {})", lowest, index.desc());
    if (num_classes < 0) num_classes = highest + 1;
    HG_CHECK(highest < num_classes, "one_hot: class index {} is not below num_classes = {} (index {})", highest,
             num_classes, index.desc());
  }
  const Tensor classes = arange(static_cast<double>(num_classes), TensorOptions(kInt64).device(index.device()));
  return eq(index.unsqueeze(-1), classes).to(kInt64);
}

}  // namespace hg
