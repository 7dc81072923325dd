#pragma once
// Helpers that op frontends use to put their result into the graph.
#include <initializer_list>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/autograd/node.h>
#include <hopgrad/autograd/view_history.h>

namespace hg {

/// True when grad mode is on and any input requires grad: the op must record a node.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const Tensors& inputs);
inline bool any_requires_grad(const Tensor& a) { return any_requires_grad({&a}); }
inline bool any_requires_grad(const Tensor& a, const Tensor& b) { return any_requires_grad({&a, &b}); }
inline bool any_requires_grad(const Tensor& a, const Tensor& b, const Tensor& c) {
  return any_requires_grad({&a, &b, &c});
}

/// The edge that gradients of `t` flow into (its grad_fn output, its leaf accumulator, or none).
Edge gradient_edge(const Tensor& t);

/// Records `backward` as the grad_fn of `outputs` with edges to `inputs` (undefined inputs allowed).
/// Gradients returned for input i are checked against its shape (broadcast gradients are summed down to
/// it) and dtype. Returns the node.
std::shared_ptr<Node> record_op(const char* name, const Tensors& inputs, const Tensors& outputs,
                                FunctionNode::Backward backward);
inline std::shared_ptr<Node> record_op(const char* name, const Tensors& inputs, const Tensor& output,
                                       FunctionNode::Backward backward) {
  return record_op(name, inputs, Tensors{output}, std::move(backward));
}

/// Clears a parameter's gradient (set_to_none) or zeroes it in place — a gradient that a create_graph backward
/// left in the graph is detached first (torch's detach_()), so the zeroed gradient does not carry the old graph
/// into the next backward. Module::zero_grad and Optimizer::zero_grad.
void zero_grad(const Tensor& param, bool set_to_none);

}  // namespace hg
