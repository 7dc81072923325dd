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

// Whether two indices of t can address the same element (a broadcast from expand(), or strides that interleave):
// walking the dims from the smallest stride up, each stride must step past everything the smaller ones reach.
bool has_internal_overlap(const Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dims that have more than one index
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) > 1) dims.emplace_back(t.stride(d), t.size(d));
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;  // the largest offset the smaller dims address
  for (const auto& [stride, size] : dims) {
    if (stride <= reach) return true;
    reach += (size - 1) * stride;
  }
  return false;
}

// The view's history as that of its base's elements: as_strided(base). The base must be contiguous for that
// (the view's strides then index the base's elements directly).
void take_history_from_base(const Tensor& view, const Tensor& base, const char* op) {
  HG_CHECK(base.is_contiguous(),
           "{}: autograd follows writes through views of contiguous tensors only; {} is a view of {}, whose strides {} "
           "are not contiguous (call contiguous() on it before taking the view)",
           op, view.desc(), base.desc(), base.strides());
  Tensor replay = base.as_strided(view.sizes(), view.strides(), view.offset());
  AutogradMeta& meta = autograd_meta(view);
  meta.grad_fn = replay.grad_fn();
  meta.output_nr = replay.output_nr();
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
  impl.view_version = now;
  Tensor base = base_of(view);
  if (!base.requires_grad()) return;
  // A leaf's values change only invisibly (under NoGradGuard: writes into it or its views are refused
  // otherwise), so a view of one that has a history already keeps it: its view nodes end at the leaf's
  // accumulator either way (an optimizer step does not turn a cached weight.t() into an as_strided).
  if (base.is_leaf() && view.unsafe_impl()->autograd && view.unsafe_impl()->autograd->grad_fn) return;
  take_history_from_base(view, base, "autograd");
}

InplaceWrite::InplaceWrite(const Tensor& self, const char* op, std::initializer_list<const Tensor*> inputs)
    : self_(self), op_(op) {
  TensorImpl& impl = *self.unsafe_impl();
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
      HG_CHECK(!has_internal_overlap(self),
               "{}: in-place write into {} (sizes {}, strides {}), a view in which several indices address one "
               "element (an expand()); autograd cannot follow it; write into a clone()",
               op, self.desc(), self.sizes(), self.strides());
      const Tensor base = base_of(self);
      HG_CHECK(base.is_contiguous(),
               "{}: autograd follows writes through views of contiguous tensors only; {} is a view of {}, whose "
               "strides {} are not contiguous (call contiguous() on it before taking the view)",
               op, self.desc(), base.desc(), base.strides());
    }
  }
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
  impl.view_version = self_.version();  // the op's node (when tracked) is the view's history now
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
