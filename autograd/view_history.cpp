#include <hopgrad/autograd/view_history.h>

#include <algorithm>
#include <utility>
#include <vector>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

Tensor base_of(const Tensor& view) { return Tensor(view.unsafe_impl()->view_base); }

// Whether two indices of t address the same element (a broadcast from expand(), or an as_strided view whose
// strides fold onto themselves). Quick when, walking the dims from the smallest stride up, each stride steps
// past everything the smaller ones reach (every view op but as_strided gives that); otherwise the offsets are
// listed and compared.
bool has_internal_overlap(const Tensor& t) {
  if (t.is_contiguous()) return false;  // the common case, without listing anything
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dims that have more than one index
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) > 1) dims.emplace_back(t.stride(d), t.size(d));
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;  // the largest offset the smaller dims address
  bool interleaved = false;
  for (const auto& [stride, size] : dims) {
    if (stride == 0) return true;
    if (stride <= reach) interleaved = true;
    reach += (size - 1) * stride;
  }
  if (!interleaved) return false;
  std::vector<int64_t> offsets{0};
  for (const auto& [stride, size] : dims) {
    const size_t n = offsets.size();
    for (int64_t i = 1; i < size; ++i)
      for (size_t j = 0; j < n; ++j) offsets.push_back(offsets[j] + i * stride);
  }
  std::sort(offsets.begin(), offsets.end());
  return std::adjacent_find(offsets.begin(), offsets.end()) != offsets.end();
}

// A view's strides index its base's elements directly only when the base is contiguous: what as_strided(base)
// and the gradient split of copy_slices rely on.
void require_contiguous_base(const Tensor& view, const Tensor& base, const char* op) {
  HG_CHECK(base.is_contiguous(),
           "{}: autograd follows writes through views of contiguous tensors only; {} is a view of {}, whose strides {} "
           "are not contiguous (call contiguous() on it before taking the view)",
           op, view.desc(), base.desc(), base.strides());
}

// The view's history as that of its base's elements: as_strided(base).
void take_history_from_base(const Tensor& view, const Tensor& base, const char* op) {
  require_contiguous_base(view, base, op);
  Tensor replay = base.as_strided(view.sizes(), view.strides(), view.offset());
  AutogradMeta& meta = autograd_meta(view);
  meta.grad_fn = replay.grad_fn();
  meta.output_nr = replay.output_nr();
  if (meta.retains_grad) attach_retain_grad_hook(view);
}

// g (the gradient of a contiguous base) with the view's elements (sizes, strides, offset rel from g's first
// element) set to 0: the part of the gradient that goes to the base's value before the write. Differentiable.
Tensor without_view_elements(const Tensor& g, const Shape& sizes, const Shape& strides, int64_t rel) {
  Tensor out = g.detach().clone();
  {
    NoGradGuard no_grad;
    out.as_strided(sizes, strides, out.offset() + rel).zero_();
  }
  if (any_requires_grad(g))
    record_op("copy_slices_backward", {g}, out, [sizes, strides, rel](const Tensors& gg, const BackwardContext&) {
      return Tensors{without_view_elements(gg[0].contiguous(), sizes, strides, rel)};
    });
  return out;
}

}  // namespace

void refresh_view_history(const Tensor& view) {
  TensorImpl& impl = *view.unsafe_impl();
  if (!impl.view_base || impl.view_writing || !GradMode::is_enabled()) return;
  const uint64_t now = view.version();
  if (impl.view_version == now) return;
  Tensor base = base_of(view);
  const bool has_history = impl.autograd && impl.autograd->grad_fn;
  // A leaf's values change only invisibly (under NoGradGuard: writes into it or its views are refused
  // otherwise), so a view of one that has a history already keeps it: its view nodes end at the leaf's
  // accumulator either way (an optimizer step does not turn a cached weight.t() into an as_strided).
  if (!base.requires_grad() || (base.is_leaf() && has_history)) {
    impl.view_version = now;
    return;
  }
  // A view taken under NoGradGuard was meant to be outside the graph; whether it should follow a later write
  // into its base is ambiguous, and PyTorch refuses it too.
  HG_CHECK(has_history || !impl.view_made_without_grad,
           "autograd: {} is a view of {} taken under hg::NoGradGuard, and its base (or another view of it) was "
           "written in place since; whether gradients should follow that write is ambiguous: take the view outside "
           "the guard, or clone() it under the guard",
           view.desc(), base.desc());
  impl.view_version = now;
  take_history_from_base(view, base, "autograd");
}

InplaceWrite::InplaceWrite(const Tensor& self, const char* op, std::initializer_list<const Tensor*> inputs,
                           SelfOverlap self_overlap)
    : self_(self) {
  TensorImpl& impl = *self.unsafe_impl();
  HG_CHECK(self_overlap == SelfOverlap::Allowed || !has_internal_overlap(self),
           "{}: {} (sizes {}, strides {}) has elements that share memory (an expand(), or a stride-0 gradient such as "
           "hg::grad of a sum gives); the op would apply once per alias; write into a clone() (only fill_ and zero_ "
           "are allowed there)",
           op, self.desc(), self.sizes(), self.strides());
  if (GradMode::is_enabled()) {
    refresh_view_history(self);
    if (impl.view_base) {
      Tensor base = base_of(self);
      if (base.requires_grad()) {
        HG_CHECK(!base.is_leaf(),
                 "{}: {} is a view of a leaf tensor that requires grad ({}), and an in-place write would make that "
                 "leaf a computed tensor; wrap the update in hg::NoGradGuard (as optimizers do) or write into a clone",
                 op, self.desc(), base.desc());
        // A view taken under NoGradGuard, or before its base joined the graph, has no history of its own yet.
        if (!self.requires_grad()) take_history_from_base(self, base, op);
      }
    }
    const AutogradMeta* meta = autograd_meta_or_null(self);
    HG_CHECK(!(meta && meta->requires_grad && !meta->grad_fn),
             "{}: a leaf tensor that requires grad ({}) is being modified in place; wrap the update in "
             "hg::NoGradGuard (as optimizers do) or use the out-of-place op",
             op, self.desc());
    tracked_ = self.requires_grad();
    for (const Tensor* t : inputs) tracked_ = tracked_ || (t->defined() && t->requires_grad());
    if (tracked_ && impl.view_base) {
      // Only fill_ gets here with overlapping elements (the others were refused above).
      HG_CHECK(self_overlap == SelfOverlap::Refused || !has_internal_overlap(self),
               "{}: in-place write into {} (sizes {}, strides {}), a view in which several indices address one "
               "element (an expand(), or an as_strided() folded onto itself); autograd cannot follow it; write into "
               "a clone()",
               op, self.desc(), self.sizes(), self.strides());
      require_contiguous_base(self, base_of(self), op);
    }
  }
  view_was_current_ = impl.view_base && impl.view_version == self.version();
  impl.view_writing = true;
}

InplaceWrite::~InplaceWrite() {
  if (!committed_) self_.unsafe_impl()->view_writing = false;
}

void InplaceWrite::commit() {
  committed_ = true;
  TensorImpl& impl = *self_.unsafe_impl();
  impl.view_writing = false;
  self_.bump_version();
  if (!impl.view_base) return;
  // A tracked write's node is the view's history now; an untracked one (under NoGradGuard) is invisible to
  // autograd and leaves the history as current (or as stale) as it was.
  if (tracked_ || view_was_current_) impl.view_version = self_.version();
  if (!tracked_) return;
  // The base's new value: its old one with the view's elements replaced by the view's new value.
  Tensor base = base_of(self_);
  const Shape sizes = self_.sizes(), strides = self_.strides();
  const int64_t rel = self_.offset() - base.offset();
  record_op("copy_slices", {base, self_}, base,
            [sizes, strides, rel](const Tensors& g, const BackwardContext& c) {
              Tensors r(2);
              const Tensor gc = g[0].contiguous();
              if (c.needs_input_grad(0)) r[0] = without_view_elements(gc, sizes, strides, rel);
              if (c.needs_input_grad(1)) r[1] = gc.as_strided(sizes, strides, gc.offset() + rel);
              return r;
            });
}

}  // namespace hg
