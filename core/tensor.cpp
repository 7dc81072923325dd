#include <hopgrad/core/tensor.h>

#include <algorithm>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/autograd/node.h>
#include <hopgrad/autograd/view_history.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace detail {
void throw_too_many_dims(size_t n) {
  HG_FAIL("hopgrad tensors have at most {} dimensions; got {}", kMaxDims, n);
}
}  // namespace detail

TensorImpl::TensorImpl(std::shared_ptr<Storage> s, Shape sz, Shape st, int64_t off, DType dt)
    : storage(std::move(s)), sizes(sz), strides(st), offset(off), dtype(dt) {}
TensorImpl::~TensorImpl() = default;

void Tensor::throw_undefined() { HG_FAIL("operation on an undefined tensor (a default-constructed hg::Tensor)"); }

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  HG_CHECK(dim >= lo && dim <= hi, "{}: dimension {} out of range for a {}-D tensor (expected {} to {})", op, dim,
           ndim, lo, hi);
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

// wrap_dim takes dims 0 and -1 of a 0-dim tensor (reductions over "its only dim", as torch), but a 0-dim tensor
// has no size or stride to report (torch: "dimension specified as 0 but tensor has no dimensions").
int64_t Tensor::size(int64_t d) const {
  HG_CHECK(dim() > 0, "size: dimension {} asked of a 0-dim tensor, which has none", d);
  return sizes()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  HG_CHECK(dim() > 0, "stride: dimension {} asked of a 0-dim tensor, which has none", d);
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // as torch: an empty tensor has no elements to lay out
  const auto& sz = sizes();
  const auto& st = strides();
  int64_t expected = 1;
  for (size_t i = sz.size(); i-- > 0;) {
    if (sz[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sz[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const auto& im = impl();
  return static_cast<char*>(im.storage->data) + im.offset * static_cast<int64_t>(hg::element_size(im.dtype));
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return fmt::format("{}{} {}", dtype(), sizes(), device());
}

Tensor make_tensor(std::shared_ptr<Storage> storage, const Shape& sizes, const Shape& strides, int64_t offset,
                   DType dtype) {
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), sizes, strides, offset, dtype));
}

Tensor empty(IntArrayRef sizes, DType dtype, Device device) {
  Shape shape(sizes);
  for (int64_t s : shape) HG_CHECK(s >= 0, "empty: negative size in shape {}", shape);
  // The element count and byte size with overflow checks (a wrapped product made a tensor of those sizes with a
  // few bytes, or none, behind it); a zero size makes any shape empty, as torch.
  int64_t numel = 1;
  size_t bytes = 0;
  bool overflow = false;
  if (std::find(shape.begin(), shape.end(), int64_t{0}) == shape.end()) {
    for (int64_t s : shape) overflow = overflow || __builtin_mul_overflow(numel, s, &numel);
    overflow = overflow || __builtin_mul_overflow(static_cast<size_t>(numel), hg::element_size(dtype), &bytes);
  }
  HG_CHECK(!overflow, "empty: shape {} of {} has more elements than memory can address", shape, dtype);
  auto storage = allocate_storage(bytes, device);
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

// ---- autograd accessors -----------------------------------------------------------------------------

AutogradMeta& autograd_meta(const Tensor& t) {
  auto& slot = t.unsafe_impl()->autograd;
  if (!slot) slot = std::make_unique<AutogradMeta>();
  return *slot;
}

bool Tensor::requires_grad() const {
  if (impl().view_base) refresh_view_history(*this);
  const AutogradMeta* m = impl().autograd.get();
  return m && (m->requires_grad || m->grad_fn);
}

const Tensor& Tensor::requires_grad_(bool value) const {
  // A tensor computed in the graph already requires grad: asking for it again changes nothing (as PyTorch).
  if (!is_leaf() && value) return *this;
  HG_CHECK(is_leaf(),
           "requires_grad_: only leaf tensors can change requires_grad; {} was computed by '{}' (use detach())",
           desc(), grad_fn()->name());
  HG_CHECK(!value || is_floating(dtype()), "requires_grad_: only floating-point tensors can require grad, got {}",
           dtype());
  if (value || impl().autograd) autograd_meta(*this).requires_grad = value;
  return *this;
}

const Tensor& Tensor::grad() const {
  static const Tensor undefined;
  const AutogradMeta* m = impl().autograd.get();
  return m ? m->grad : undefined;
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined())
    HG_CHECK(g.sizes() == sizes() && g.dtype() == dtype() && g.device() == device(),
             "set_grad: gradient {} does not match tensor {}", g.desc(), desc());
  autograd_meta(*this).grad = g;
}

Tensor Tensor::detach() const {
  const auto& im = impl();
  return make_tensor(im.storage, im.sizes, im.strides, im.offset, im.dtype);
}

bool Tensor::is_leaf() const {
  if (impl().view_base) refresh_view_history(*this);
  const AutogradMeta* m = impl().autograd.get();
  return !m || !m->grad_fn;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  if (impl().view_base) refresh_view_history(*this);
  const AutogradMeta* m = impl().autograd.get();
  return m ? m->grad_fn : none;
}

uint32_t Tensor::output_nr() const {
  const AutogradMeta* m = impl().autograd.get();
  return m ? m->output_nr : 0;
}

void Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  HG_CHECK(requires_grad(), "register_hook: {} does not require grad, so no gradient will reach the hook",
           desc());
  auto& meta = autograd_meta(*this);
  if (meta.grad_fn)
    meta.grad_fn->add_pre_hook(meta.output_nr, std::move(hook));
  else
    meta.hooks.push_back(std::move(hook));
}

void Tensor::retain_grad() const {
  HG_CHECK(requires_grad(), "retain_grad: {} does not require grad", desc());
  auto& meta = autograd_meta(*this);
  if (!meta.grad_fn || meta.retains_grad) return;  // leaves keep their gradient anyway
  meta.retains_grad = true;
  attach_retain_grad_hook(*this);
}

void attach_retain_grad_hook(const Tensor& t) {
  AutogradMeta& meta = *t.unsafe_impl()->autograd;
  std::weak_ptr<TensorImpl> weak = t.impl_ptr();
  // The hook keeps the gradient of the tensor's current value: once an in-place op (or a write through a view)
  // gives the tensor a new history, the hook on the old node stays silent and a new one is attached
  // (record_op, refresh_view_history), as in PyTorch.
  const Node* node = meta.grad_fn.get();
  meta.grad_fn->add_retain_grad_hook(meta.output_nr, [weak, node](const Tensor& g) {
    auto impl = weak.lock();
    if (impl && impl->autograd && impl->autograd->grad_fn.get() == node) {
      auto& m = *impl->autograd;
      // Under create_graph (grad mode on in the backward) the kept gradient stays differentiable, as
      // AccumulateGrad keeps a leaf's.
      if (GradMode::is_enabled())
        m.grad = m.grad.defined() ? m.grad + g : g.clone();
      else
        m.grad = m.grad.defined() ? m.grad + g.detach() : g.detach().clone();
    }
    return Tensor();
  });
}

}  // namespace hg
