#include <hopgrad/autograd/engine.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

struct NodeState {
  int dependencies = 0;  // edges from not-yet-run nodes into this one
  Tensors buffer;        // accumulated gradients of the node's outputs
  bool needed = true;    // on a path to a requested input (autograd::grad only)
};

// Checks one gradient produced for input i of `node` against what the input was, un-broadcasting when the
// forward broadcast it.
Tensor validate_gradient(const Node& node, size_t i, Tensor g) {
  const InputMeta& m = node.input_meta()[i];
  if (g.sizes() != m.sizes) {
    // A formula may return the broadcast gradient; summing it down to the input shape is the chain rule.
    Shape bs;
    bool broadcastable = g.dim() >= static_cast<int64_t>(m.sizes.size());
    if (broadcastable) {
      size_t lead = g.sizes().size() - m.sizes.size();
      for (size_t d = 0; d < m.sizes.size(); ++d)
        if (m.sizes[d] != 1 && m.sizes[d] != g.sizes()[lead + d]) broadcastable = false;
    }
    HG_CHECK(broadcastable, "backward of '{}': gradient for input {} has shape {}, expected {}", node.name(), i,
             g.sizes(), m.sizes);
    g = sum_to(g, m.sizes);
  }
  HG_CHECK(g.device() == m.device, "backward of '{}': gradient for input {} is on {}, expected {}", node.name(), i,
           g.device(), m.device);
  if (g.dtype() != m.dtype) {
    HG_CHECK(is_floating(g.dtype()) && is_floating(m.dtype),
             "backward of '{}': gradient for input {} has dtype {}, expected {}", node.name(), i, g.dtype(),
             m.dtype);
    g = g.to(m.dtype);
  }
  return g;
}

void accumulate(Tensors& buffer, uint32_t slot, Tensor g) {
  if (buffer.size() <= slot) buffer.resize(slot + 1);
  Tensor& dst = buffer[slot];
  dst = dst.defined() ? add(dst, g) : std::move(g);
}

struct Task {
  std::unordered_map<Node*, NodeState> states;
  std::vector<std::shared_ptr<Node>> ready;  // max-heap on sequence_nr: later ops first, as PyTorch does
  static bool later_first(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr() < b->sequence_nr();
  }
  void push_ready(std::shared_ptr<Node> n) {
    ready.push_back(std::move(n));
    std::push_heap(ready.begin(), ready.end(), later_first);
  }
  std::shared_ptr<Node> pop_ready() {
    std::pop_heap(ready.begin(), ready.end(), later_first);
    auto n = std::move(ready.back());
    ready.pop_back();
    return n;
  }
};

// Counts dependencies with an explicit stack (a 100 000-op chain must not recurse).
void count_dependencies(Task& task, const std::vector<Node*>& roots) {
  std::vector<Node*> stack;
  for (Node* r : roots)
    if (task.states.emplace(r, NodeState{}).second) stack.push_back(r);
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges()) {
      if (!e.node) continue;
      auto [it, inserted] = task.states.emplace(e.node.get(), NodeState{});
      it->second.dependencies++;
      if (inserted) stack.push_back(e.node.get());
    }
  }
}

// For autograd::grad: marks the nodes that lie on a path to one of the targets (iterative post-order).
void mark_needed(Task& task, const std::vector<Node*>& roots, const std::unordered_set<Node*>& targets) {
  for (auto& [n, s] : task.states) s.needed = false;
  std::unordered_map<Node*, int> visit;  // 0 new, 1 open, 2 done
  std::vector<std::pair<Node*, size_t>> stack;
  for (Node* r : roots) {
    if (visit[r]) continue;
    stack.emplace_back(r, 0);
    visit[r] = 1;
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->next_edges().size()) {
        Node* child = n->next_edges()[i++].node.get();
        if (child && visit[child] == 0) {
          visit[child] = 1;
          stack.emplace_back(child, 0);
        }
        continue;
      }
      bool needed = false;
      for (const Edge& e : n->next_edges())
        if (e.node && (targets.count(e.node.get()) || task.states[e.node.get()].needed)) needed = true;
      task.states[n].needed = needed;
      visit[n] = 2;
      stack.pop_back();
    }
  }
}

// Runs the graph. With `captures` (autograd::grad), gradients arriving at the (node, slot) of each requested
// input are recorded instead of being accumulated into leaves.
void execute(const Tensors& roots, const Tensors& grad_outputs, bool retain_graph_in, bool create_graph,
             const std::vector<Edge>* capture_edges, Tensors* captured) {
  // A recorded backward runs through the same nodes again (double backward), so create_graph keeps the graph,
  // as PyTorch's retain_graph defaults to create_graph.
  const bool retain_graph = retain_graph_in || create_graph;
  HG_CHECK(roots.size() == grad_outputs.size() || grad_outputs.empty(),
           "backward: got {} gradients for {} outputs", grad_outputs.size(), roots.size());
  Task task;
  std::vector<Node*> root_nodes;
  std::vector<std::pair<Edge, Tensor>> seeds;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    HG_CHECK(r.defined(), "backward: output {} is an undefined tensor", i);
    HG_CHECK(r.requires_grad(),
             "backward: output {} ({}) does not require grad and has no grad_fn; did you compute it under "
             "NoGradGuard, or forget requires_grad_() on the inputs?",
             i, r.desc());
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      HG_CHECK(r.numel() == 1,
               "backward: a gradient can be created implicitly only for one-element outputs; output {} has "
               "shape {}; pass the gradient explicitly",
               i, r.sizes());
      g = ones_like(r);
    } else {
      HG_CHECK(g.sizes() == r.sizes() && g.device() == r.device(),
               "backward: gradient {} does not match output {} ({})", g.desc(), i, r.desc());
      if (g.dtype() != r.dtype()) {  // as PyTorch: a floating gradient is cast to the output's dtype
        HG_CHECK(is_floating(g.dtype()),
                 "backward: gradient {} for output {} ({}) must be floating point like the output", g.desc(), i,
                 r.desc());
        g = g.to(r.dtype());
      }
    }
    Edge e = gradient_edge(r);
    root_nodes.push_back(e.node.get());
    seeds.emplace_back(std::move(e), std::move(g));
  }
  count_dependencies(task, root_nodes);

  std::unordered_set<Node*> targets;
  if (capture_edges) {
    for (const Edge& e : *capture_edges)
      if (e.node) targets.insert(e.node.get());
    mark_needed(task, root_nodes, targets);
  }
  auto capture = [&](Node* n, const Tensors& buffer) {
    for (size_t k = 0; k < capture_edges->size(); ++k) {
      const Edge& e = (*capture_edges)[k];
      if (e.node.get() != n || e.input_nr >= buffer.size() || !buffer[e.input_nr].defined()) continue;
      // A leaf's hooks apply to the gradient hg::grad returns for it, as a non-leaf's (node pre-hooks) do, and
      // as backward() applies them before accumulating (PyTorch 2.x does the same).
      const auto* accumulator = dynamic_cast<const AccumulateGrad*>(n);
      Tensor g = accumulator ? accumulator->run_leaf_hooks(buffer[e.input_nr]) : buffer[e.input_nr];
      (*captured)[k] = (*captured)[k].defined() ? add((*captured)[k], g) : g;
    }
  };

  AutoGradMode mode(create_graph);
  for (auto& [edge, g] : seeds) accumulate(task.states[edge.node.get()].buffer, edge.input_nr, std::move(g));
  for (const auto& [edge, g] : seeds) {
    NodeState& s = task.states[edge.node.get()];
    if (s.dependencies == 0 && !s.buffer.empty()) {
      task.push_ready(edge.node);
      s.dependencies = -1;  // queued
    }
  }

  while (!task.ready.empty()) {
    std::shared_ptr<Node> node = task.pop_ready();
    NodeState& state = task.states[node.get()];
    Tensors buffer = std::move(state.buffer);
    buffer.resize(node->num_outputs());
    node->run_pre_hooks(buffer);

    Tensors input_grads;
    bool has_gradient = std::any_of(buffer.begin(), buffer.end(), [](const Tensor& t) { return t.defined(); });
    bool is_accumulator = dynamic_cast<AccumulateGrad*>(node.get()) != nullptr;
    const bool runs = capture_edges ? !is_accumulator && state.needed && has_gradient : has_gradient;
    if (capture_edges && targets.count(node.get())) capture(node.get(), buffer);
    if (runs) input_grads = node->apply(std::move(buffer));
    // Only a node that ran gives up what it saved: one this pass skipped (hg::grad needs only part of the graph)
    // stays usable for a later backward.
    if (runs && !retain_graph) node->release();

    const auto& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.node) continue;
      NodeState& next = task.states[e.node.get()];
      if (i < input_grads.size() && input_grads[i].defined())
        accumulate(next.buffer, e.input_nr, validate_gradient(*node, i, std::move(input_grads[i])));
      if (--next.dependencies == 0) task.push_ready(e.node);
    }
  }
}

}  // namespace

void run_backward(const Tensors& roots, const Tensors& grad_outputs, bool retain_graph, bool create_graph) {
  execute(roots, grad_outputs, retain_graph, create_graph, nullptr, nullptr);
}

Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& grad_outputs, bool retain_graph,
             bool create_graph, bool allow_unused) {
  std::vector<Edge> edges;
  for (size_t i = 0; i < inputs.size(); ++i) {
    HG_CHECK(inputs[i].defined() && inputs[i].requires_grad(),
             "autograd::grad: input {} does not require grad", i);
    edges.push_back(gradient_edge(inputs[i]));
  }
  Tensors captured(inputs.size());
  execute(outputs, grad_outputs, retain_graph, create_graph, &edges, &captured);
  for (size_t i = 0; i < inputs.size(); ++i)
    HG_CHECK(allow_unused || captured[i].defined(),
             "autograd::grad: input {} ({}) was not used to compute the outputs; pass allow_unused=true",
             i, inputs[i].desc());
  return captured;
}

}  // namespace hg

namespace hg {
void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  run_backward({*this}, {gradient}, retain_graph, create_graph);
}
}  // namespace hg
