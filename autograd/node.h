#pragma once
// Graph nodes. Each op that needs a gradient records one Node whose apply() maps the gradients of its outputs
// to the gradients of its inputs, and whose edges point at the nodes that produced those inputs.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg {

class Node;

/// Where a gradient flows: input `input_nr` of `node` (node null = the input needs no gradient).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool valid() const { return node != nullptr; }
};

/// What a backward formula may ask about the node it runs in.
struct BackwardContext {
  const Node* node;
  /// True when input i of the op needs a gradient (formulas may skip the others and return undefined).
  bool needs_input_grad(size_t i) const;
};

/// Shape, dtype and device of an op input, kept to check (and un-broadcast) the gradients flowing into it.
struct InputMeta {
  Shape sizes;
  DType dtype;
  Device device;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node(const char* name, std::vector<Edge> next_edges, std::vector<InputMeta> input_meta);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Gradients of the inputs from the gradients of the outputs (one per output; undefined = zero).
  virtual Tensors apply(Tensors&& grad_outputs) = 0;
  /// Frees saved tensors (called after apply unless retain_graph); later applies throw.
  virtual void release() {}

  const char* name() const { return name_; }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  const std::vector<InputMeta>& input_meta() const { return input_meta_; }
  size_t num_inputs() const { return next_edges_.size(); }
  uint32_t num_outputs() const { return num_outputs_; }
  void set_num_outputs(uint32_t n) { num_outputs_ = n; }
  uint64_t sequence_nr() const { return sequence_nr_; }

  /// Hooks on output `output_nr`'s gradient, run before apply (Tensor::register_hook on a non-leaf).
  void add_pre_hook(uint32_t output_nr, std::function<Tensor(const Tensor&)> hook);
  /// A hook that runs after all other pre-hooks (Tensor::retain_grad sees the final gradient, as in PyTorch).
  void add_retain_grad_hook(uint32_t output_nr, std::function<Tensor(const Tensor&)> hook);
  /// Runs the pre-hooks, then the retain-grad hooks, on the incoming gradients.
  void run_pre_hooks(Tensors& grad_outputs) const;

 protected:
  const char* name_;
  std::vector<Edge> next_edges_;
  std::vector<InputMeta> input_meta_;
  uint32_t num_outputs_ = 1;
  uint64_t sequence_nr_;
  std::vector<std::pair<uint32_t, std::function<Tensor(const Tensor&)>>> pre_hooks_;
  std::vector<std::pair<uint32_t, std::function<Tensor(const Tensor&)>>> retain_grad_hooks_;
};

/// A tensor kept for backward. It remembers the storage version at save time and refuses to unpack after an
/// in-place change. Outputs of the node are stored without their grad_fn (no reference cycle) and re-linked
/// to the node on unpack, so double backward sees them as the node's outputs.
class SavedTensor {
 public:
  SavedTensor() = default;
  /// Saves `t`; pass is_output = true when t is an output of the node that saves it.
  explicit SavedTensor(const Tensor& t, bool is_output = false);
  Tensor unpack(const BackwardContext& ctx) const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint64_t saved_version_ = 0;
  bool is_output_ = false;
  uint32_t output_nr_ = 0;
};

/// A node whose backward is a closure. Almost every op uses this:
///
///   record_op("mul", {a, b}, out, [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensors& g, auto& ctx) {
///     return Tensors{g[0] * sb.unpack(ctx), g[0] * sa.unpack(ctx)};
///   });
class FunctionNode : public Node {
 public:
  using Backward = std::function<Tensors(const Tensors& grad_outputs, const BackwardContext& ctx)>;
  FunctionNode(const char* name, std::vector<Edge> next_edges, std::vector<InputMeta> input_meta, Backward fn);
  Tensors apply(Tensors&& grad_outputs) override;
  void release() override;
  /// For a backward that keeps no tensor (a view op's, which captures only shapes): release() leaves it in
  /// place, so the node can run in a later backward too (a cached w.t(), used in every step, as in PyTorch).
  void set_keeps_no_tensors() { keeps_no_tensors_ = true; }

 private:
  Backward fn_;
  bool released_ = false;
  bool keeps_no_tensors_ = false;
};

/// Sink node of a leaf: adds the incoming gradient into leaf.grad() (after the leaf's hooks). One per leaf, shared
/// by every graph that uses it, so backward passes on several threads through a shared parameter (as PyTorch
/// allows) accumulate under its lock.
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const Tensor& leaf);
  Tensors apply(Tensors&& grad_outputs) override;
  /// The leaf, or undefined when it no longer exists.
  Tensor leaf() const;
  /// `g` after the leaf's hooks (Tensor::register_hook on the leaf), in the order they were registered.
  Tensor run_leaf_hooks(Tensor g) const;

 private:
  std::weak_ptr<TensorImpl> leaf_;
  std::mutex mutex_;  // held while .grad is formed or added to (the hooks run before, outside it)
};

}  // namespace hg
