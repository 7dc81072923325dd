#pragma once
// Per-tensor autograd state, allocated only for tensors that take part in a graph.
#include <functional>
#include <memory>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg {

class Node;

struct AutogradMeta {
  bool requires_grad = false;  ///< leaf flag set by the user; non-leaves require grad through grad_fn
  Tensor grad;                 ///< accumulated gradient (leaves, and non-leaves with retain_grad)
  std::shared_ptr<Node> grad_fn;  ///< the node that produced this tensor (null for leaves)
  uint32_t output_nr = 0;         ///< which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator;  ///< a leaf's AccumulateGrad node, shared by all graphs using it
  std::vector<std::function<Tensor(const Tensor&)>> hooks;  ///< leaf hooks (non-leaf hooks live on grad_fn)
  bool retains_grad = false;
};

/// The autograd state of t, created on first use.
AutogradMeta& autograd_meta(const Tensor& t);
/// Has .grad() of t, a non-leaf with retains_grad set, receive the gradient of its current grad_fn's output.
void attach_retain_grad_hook(const Tensor& t);
/// The autograd state of t or null.
inline AutogradMeta* autograd_meta_or_null(const Tensor& t) { return t.unsafe_impl()->autograd.get(); }

}  // namespace hg
