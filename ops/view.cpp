// View ops: new sizes/strides/offset over the same storage, no copy. Each records a backward that maps the
// view's gradient back to the input's shape.
#include <optional>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// A view of `base` that remembers the tensor it is ultimately a view of (TensorImpl::view_base).
Tensor make_view(const Tensor& base, const Shape& sizes, const Shape& strides, int64_t offset) {
  Tensor out = make_tensor(base.storage(), sizes, strides, offset, base.dtype());
  TensorImpl& impl = *out.unsafe_impl();
  impl.view_base = base.unsafe_impl()->view_base ? base.unsafe_impl()->view_base : base.impl_ptr();
  impl.view_version = base.version();
  impl.view_made_without_grad = !GradMode::is_enabled();
  return out;
}

// Records the view's backward, which captures only shapes (so the node can run again in a later backward).
void record_view(const char* name, const Tensor& input, const Tensor& view, FunctionNode::Backward backward) {
  if (!any_requires_grad(input)) return;
  std::static_pointer_cast<FunctionNode>(record_op(name, {input}, view, std::move(backward)))->set_keeps_no_tensors();
}

// Strides for viewing (sizes, strides) as `shape` without a copy, or nullopt (the algorithm of PyTorch's
// computeStride: every run of dims that is contiguous in memory must map onto a run of new dims).
std::optional<Shape> view_strides(const Shape& old_sizes, const Shape& old_strides, const Shape& shape) {
  Shape out(shape.size(), 1);
  if (old_sizes.empty()) return contiguous_strides(shape);
  if (old_sizes.numel() == 0) return contiguous_strides(shape);
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_sizes[d];
    if (d == 0 || (old_sizes[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// Resolves one -1 and checks the element count.
Shape infer_shape(IntArrayRef requested, int64_t numel, const char* op, const Shape& from) {
  Shape shape(requested);
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      HG_CHECK(infer < 0, "{}: only one dimension can be -1, got {}", op, IntArrayRef(requested));
      infer = static_cast<int64_t>(i);
    } else {
      HG_CHECK(shape[i] >= 0, "{}: invalid size {} in {}", op, shape[i], IntArrayRef(requested));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    HG_CHECK(known != 0 && numel % known == 0, "{}: shape {} is invalid for input of shape {} ({} elements)", op,
             IntArrayRef(requested), from, numel);
    shape[infer] = numel / known;
  }
  HG_CHECK(shape.numel() == numel, "{}: shape {} is invalid for input of shape {} ({} elements)", op,
           IntArrayRef(requested), from, numel);
  return shape;
}

// Gradient of a slice: zeros of the input's shape with g written into the slice (differentiable: its own
// backward slices the incoming gradient again).
Tensor slice_scatter(const Tensor& g, const Shape& input_sizes, int64_t dim, int64_t start, int64_t step) {
  Tensor z = zeros(input_sizes, TensorOptions(g.dtype()).device(g.device()));
  Shape strides = z.strides();
  Shape sizes = input_sizes;
  sizes[dim] = g.size(dim);
  int64_t offset = start * strides[dim];
  strides[dim] *= step;
  Tensor target = make_view(z, sizes, strides, offset);
  backend_for(g.device()).copy(g, target);
  if (any_requires_grad(g)) {
    int64_t len = g.size(dim);
    record_op("slice_backward", {g}, z, [dim, start, step, len](const Tensors& gg, const BackwardContext&) {
      return Tensors{gg[0].slice(dim, start, start + (len - 1) * step + 1, step)};
    });
  }
  return z;
}

}  // namespace

Tensor Tensor::view(IntArrayRef shape_ref) const {
  Shape shape = infer_shape(shape_ref, numel(), "view", sizes());
  auto strides_opt = view_strides(sizes(), strides(), shape);
  HG_CHECK(strides_opt.has_value(),
           "view: shape {} is not compatible with the input's sizes {} and strides {} (the data is not laid out "
           "contiguously enough); use reshape() instead",
           shape, sizes(), strides());
  Tensor out = make_view(*this, shape, *strides_opt, offset());
  Shape in_sizes = sizes();
  record_view("view", *this, out,
              [in_sizes](const Tensors& g, const BackwardContext&) { return Tensors{g[0].reshape(in_sizes)}; });
  return out;
}

Tensor Tensor::reshape(IntArrayRef shape_ref) const {
  Shape shape = infer_shape(shape_ref, numel(), "reshape", sizes());
  if (view_strides(sizes(), strides(), shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  if (dim() == 0) return view({});  // as torch: a 0-dim tensor transposed (dims 0 or -1) is a view of itself
  Shape sz = sizes(), st = strides();
  std::swap(sz[d0], sz[d1]);
  std::swap(st[d0], st[d1]);
  Tensor out = make_view(*this, sz, st, offset());
  record_view("transpose", *this, out,
              [d0, d1](const Tensors& g, const BackwardContext&) { return Tensors{g[0].transpose(d0, d1)}; });
  return out;
}

Tensor Tensor::t() const {
  HG_CHECK(dim() <= 2, "t: expects a tensor with at most 2 dimensions, got {}", sizes());
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::permute(IntArrayRef dims) const {
  HG_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got {} dims for a {}-D tensor {}", dims.size(),
           dim(), sizes());
  Shape sz(dims.size()), st(dims.size()), inverse(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    HG_CHECK(!seen[d], "permute: dimension {} repeated in {}", d, dims);
    seen[d] = true;
    sz[i] = sizes()[d];
    st[i] = strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  Tensor out = make_view(*this, sz, st, offset());
  record_view("permute", *this, out,
              [inverse](const Tensors& g, const BackwardContext&) { return Tensors{g[0].permute(inverse)}; });
  return out;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  HG_CHECK(dim() > 0, "slice: cannot slice a 0-dim tensor (dimension {} asked)", d);
  d = wrap_dim(d, dim(), "slice");
  HG_CHECK(step > 0, "slice: step must be positive, got {}", step);
  int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sz = sizes(), st = strides();
  sz[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(*this, sz, st, offset() + start * strides()[d]);
  Shape in_sizes = sizes();
  record_view("slice", *this, out, [in_sizes, d, start, step](const Tensors& g, const BackwardContext&) {
    return Tensors{slice_scatter(g[0], in_sizes, d, start, step)};
  });
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  HG_CHECK(dim() > 0, "narrow: cannot narrow a 0-dim tensor (dimension {} asked)", d);
  d = wrap_dim(d, dim(), "narrow");
  int64_t n = sizes()[d];
  if (start < 0) start += n;
  HG_CHECK(start >= 0 && length >= 0 && start + length <= n,
           "narrow: range [{}, {}) is outside dimension {} of size {} (tensor {})", start, start + length, d, n,
           sizes());
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  HG_CHECK(dim() > 0, "select: cannot select from a 0-dim tensor");
  int64_t n = sizes()[d];
  HG_CHECK(index >= -n && index < n, "select: index {} out of range for dimension {} of size {}", index, d, n);
  if (index < 0) index += n;
  Shape sz = sizes(), st = strides();
  sz.erase(d);
  st.erase(d);
  Tensor out = make_view(*this, sz, st, offset() + index * strides()[d]);
  Shape in_sizes = sizes();
  record_view("select", *this, out, [in_sizes, d, index](const Tensors& g, const BackwardContext&) {
    return Tensors{slice_scatter(g[0].unsqueeze(d), in_sizes, d, index, 1)};
  });
  return out;
}

Tensor Tensor::expand(IntArrayRef shape) const {
  HG_CHECK(shape.size() >= static_cast<size_t>(dim()),
           "expand: the target shape {} has fewer dimensions than the tensor {}", shape, sizes());
  size_t lead = shape.size() - static_cast<size_t>(dim());
  Shape sz(shape.size()), st(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t want = shape[i];
    if (i < lead) {
      HG_CHECK(want >= 0, "expand: new leading dimension {} cannot be {} (target {})", i, want, shape);
      sz[i] = want;
      st[i] = 0;
      continue;
    }
    int64_t have = sizes()[i - lead];
    if (want == -1) want = have;
    HG_CHECK(want >= 0, "expand: size {} at dimension {} is negative (only -1, keep the size, is allowed; target {})",
             want, i, shape);
    HG_CHECK(have == want || have == 1,
             "expand: the tensor's size {} at dimension {} must match the target {} or be 1 (tensor {}, target {})",
             have, i - lead, want, sizes(), shape);
    sz[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, sz, st, offset());
  Shape in_sizes = sizes();
  record_view("expand", *this, out,
              [in_sizes](const Tensors& g, const BackwardContext&) { return Tensors{sum_to(g[0], in_sizes)}; });
  return out;
}

Tensor Tensor::squeeze() const {
  Shape sz;
  for (int64_t s : sizes())
    if (s != 1) sz.push_back(s);
  return sz.size() == sizes().size() ? view(sizes()) : view(sz);
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) {  // a 0-dim tensor takes dims -1 and 0, as PyTorch
    wrap_dim(d, 1, "squeeze");
    return view(sizes());
  }
  d = wrap_dim(d, dim(), "squeeze");
  if (sizes()[d] != 1) return view(sizes());
  Shape sz = sizes();
  sz.erase(d);
  return view(sz);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape sz = sizes(), st = strides();
  int64_t s = d < dim() ? sizes()[d] * strides()[d] : 1;
  sz.insert(d, 1);
  st.insert(d, s);
  Tensor out = make_view(*this, sz, st, offset());
  record_view("unsqueeze", *this, out,
              [d](const Tensors& g, const BackwardContext&) { return Tensors{g[0].squeeze(d)}; });
  return out;
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) {  // a 0-dim tensor takes dims -1 and 0, as PyTorch
    wrap_dim(start, 1, "flatten");
    wrap_dim(end, 1, "flatten");
    return reshape({1});
  }
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  HG_CHECK(start <= end, "flatten: start_dim {} comes after end_dim {}", start, end);
  Shape sz;
  for (int64_t i = 0; i < start; ++i) sz.push_back(sizes()[i]);
  int64_t p = 1;
  for (int64_t i = start; i <= end; ++i) p *= sizes()[i];
  sz.push_back(p);
  for (int64_t i = end + 1; i < dim(); ++i) sz.push_back(sizes()[i]);
  return reshape(sz);
}

Tensor Tensor::unflatten(int64_t d, IntArrayRef parts) const {
  HG_CHECK(dim() > 0, "unflatten: cannot unflatten a 0-dim tensor (dimension {} asked)", d);
  d = wrap_dim(d, dim(), "unflatten");
  Shape inner = infer_shape(parts, sizes()[d], "unflatten", sizes());
  Shape sz;
  for (int64_t i = 0; i < d; ++i) sz.push_back(sizes()[i]);
  for (int64_t s : inner) sz.push_back(s);
  for (int64_t i = d + 1; i < dim(); ++i) sz.push_back(sizes()[i]);
  return view(sz);
}

Tensor Tensor::as_strided(IntArrayRef sz_ref, IntArrayRef st_ref, int64_t off) const {
  Shape sz(sz_ref), st(st_ref);
  HG_CHECK(sz.size() == st.size(), "as_strided: {} sizes but {} strides", sz.size(), st.size());
  int64_t last = off;
  for (size_t i = 0; i < sz.size(); ++i) {
    HG_CHECK(sz[i] >= 0 && st[i] >= 0, "as_strided: negative size or stride in {} / {}", sz, st);
    if (sz[i] > 0) last += (sz[i] - 1) * st[i];
  }
  int64_t capacity = static_cast<int64_t>(storage()->nbytes / element_size());
  HG_CHECK(off >= 0 && (sz.numel() == 0 || last < capacity),
           "as_strided: sizes {} strides {} offset {} reach element {}, beyond the storage of {} elements", sz, st,
           off, last, capacity);
  Tensor out = make_view(*this, sz, st, off);
  if (any_requires_grad(*this)) {
    HG_CHECK(is_contiguous(), "as_strided: gradients are supported only for contiguous inputs, got strides {}",
             strides());
    Shape in_sizes = sizes();
    int64_t base = offset();
    // The backward scatters into the input's own elements [base, base + numel): a view reaching beyond them would
    // index outside that buffer.
    HG_CHECK(sz.numel() == 0 || (off >= base && last < base + numel()),
             "as_strided: with gradients the view must stay within the input's own elements (offsets {} to {}); "
             "sizes {} strides {} offset {} reach offsets {} to {}",
             base, base + numel() - 1, sz, st, off, off, last);
    record_view("as_strided", *this, out, [in_sizes, sz, st, off, base](const Tensors& g, const BackwardContext&) {
      // Scatter-add the view's gradient into a contiguous buffer laid out like the input (views may overlap).
      Tensor buf = zeros({in_sizes.numel()}, TensorOptions(g[0].dtype()).device(g[0].device()));
      Tensor idx = arange(static_cast<double>(in_sizes.numel()), TensorOptions(kInt64).device(g[0].device()));
      Tensor positions = make_tensor(idx.storage(), sz, st, off - base, kInt64).contiguous().reshape({-1});
      return Tensors{index_add(buf, 0, positions, g[0].reshape({-1})).view(in_sizes)};
    });
  }
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

// Free-function spellings.
Tensor reshape(const Tensor& x, IntArrayRef shape) { return x.reshape(shape); }
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) { return x.transpose(d0, d1); }
Tensor permute(const Tensor& x, IntArrayRef dims) { return x.permute(dims); }
Tensor squeeze(const Tensor& x, int64_t d) { return x.squeeze(d); }
Tensor unsqueeze(const Tensor& x, int64_t d) { return x.unsqueeze(d); }
Tensor flatten(const Tensor& x, int64_t s, int64_t e) { return x.flatten(s, e); }

}  // namespace hg
