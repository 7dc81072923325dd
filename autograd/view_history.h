#pragma once
// Autograd through views that are written in place, and through views whose base is (PyTorch's CopySlices and
// view replay).
//
// A view (TensorImpl::view_base) shares its base's storage, so a write through either changes both; autograd
// follows the write whichever tensor it went through:
//  - an in-place op on a view records its node on the view, then a `copy_slices` node on the base: the base's
//    new value is its old one with the view's elements replaced, so the base's gradient splits into the view's
//    elements (to the view's new history) and the rest (to the base's old history);
//  - a view whose storage was written after its history was recorded (through its base or another view) takes
//    a fresh history, `as_strided` of its base's current one, the first time autograd looks at it
//    (gradient_edge, Tensor::requires_grad, Tensor::grad_fn).
// Writes under NoGradGuard are invisible to autograd, as in PyTorch. A view taken under NoGradGuard stays outside
// the graph; using it in grad mode after its storage was written is refused as ambiguous (as PyTorch does).
//
//   hg::Tensor buf = hg::zeros({2, 3});
//   buf.select(0, 1).copy_(x * 2);   // buf now requires grad: its history is copy_slices(zeros, x * 2)
//   hg::sum(buf).backward();         // x.grad() == 2
#include <initializer_list>

#include <hopgrad/core/tensor.h>

namespace hg {

/// Brings a stale view's history up to date (see above). A no-op for tensors that are not views, under
/// NoGradGuard, and for views whose storage has not been written since.
void refresh_view_history(const Tensor& view);

/// The autograd side of an in-place op on `self`, around its write:
///
///   InplaceWrite write(self, "mul_", {&other});   // checks; brings a view's history up to date
///   ...the kernel writes self...
///   if (write.tracked()) record_op("mul_", {self, other}, self, backward);   // reads self's history before the write
///   write.commit();                               // bumps the version; for a view, records the write on its base
///
/// Refused (hg::Error, before anything is written): a write other than fill_/zero_ into a tensor whose elements
/// share memory; a leaf that requires grad, or a view of one, outside NoGradGuard; a tracked write into a view
/// whose elements overlap or whose base is not contiguous.
class InplaceWrite {
 public:
  /// Whether self may have elements that share memory (an expand(), a stride-0 gradient from hg::grad of a sum).
  /// Only a write of one value everywhere (fill_, zero_) is well defined there; add_, mul_ or copy_ would apply
  /// once per alias, so they are refused, as in PyTorch.
  enum class SelfOverlap { Refused, Allowed };

  InplaceWrite(const Tensor& self, const char* op, std::initializer_list<const Tensor*> inputs = {},
               SelfOverlap self_overlap = SelfOverlap::Refused);
  ~InplaceWrite();
  InplaceWrite(const InplaceWrite&) = delete;
  InplaceWrite& operator=(const InplaceWrite&) = delete;

  /// Whether the op records its node on self: grad mode is on and self or one of the inputs requires grad.
  bool tracked() const { return tracked_; }
  /// Call after the write and after the op's record_op.
  void commit();

 private:
  Tensor self_;
  bool tracked_ = false;
  bool committed_ = false;
  bool view_was_current_ = false;  ///< self is a view whose history was current before the write
};

}  // namespace hg
