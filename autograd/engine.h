#pragma once
// The backward engine: iterative topological walk from the roots, accumulating gradients per node.
#include <hopgrad/core/tensor.h>

namespace hg {

/// Backpropagates `grad_outputs` (one per root; undefined = ones for one-element roots) from `roots`.
/// retain_graph keeps saved tensors for a second backward; create_graph records the backward itself (and implies
/// retain_graph, as in PyTorch).
void run_backward(const Tensors& roots, const Tensors& grad_outputs, bool retain_graph, bool create_graph);

/// Gradients of `outputs` with respect to `inputs`, returned instead of accumulated into .grad()
/// (torch.autograd.grad). An input that the outputs do not depend on gets an undefined tensor unless
/// allow_unused is false, in which case it throws.
Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& grad_outputs = {},
             bool retain_graph = false, bool create_graph = false, bool allow_unused = false);

}  // namespace hg
