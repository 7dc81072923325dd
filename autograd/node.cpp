#include <hopgrad/autograd/node.h>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
}

Node::Node(const char* name, std::vector<Edge> next_edges, std::vector<InputMeta> input_meta)
    : name_(name),
      next_edges_(std::move(next_edges)),
      input_meta_(std::move(input_meta)),
      sequence_nr_(next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

// A long chain of nodes would be destroyed recursively (node → edge → node → ...) and overflow the stack.
// Instead the first destructor on a thread drains a worklist: nested destructors only hand their edges over.
Node::~Node() {
  thread_local std::vector<std::shared_ptr<Node>> pending;
  thread_local bool draining = false;
  for (auto& e : next_edges_)
    if (e.node) pending.push_back(std::move(e.node));
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n.reset();  // may run ~Node of n, which appends its own edges to `pending`
  }
  draining = false;
}

bool BackwardContext::needs_input_grad(size_t i) const {
  return i < node->next_edges().size() && node->next_edges()[i].valid();
}

void Node::add_pre_hook(uint32_t output_nr, std::function<Tensor(const Tensor&)> hook) {
  pre_hooks_.emplace_back(output_nr, std::move(hook));
}

void Node::add_retain_grad_hook(uint32_t output_nr, std::function<Tensor(const Tensor&)> hook) {
  retain_grad_hooks_.emplace_back(output_nr, std::move(hook));
}

namespace {

// A hook may replace a gradient, but not with one of another shape, dtype or device: the rest of the backward
// would sum a wider one down as if broadcast, or cast it, and give a wrong gradient without a word (PyTorch:
// "hook has changed the size of value").
void check_hook_result(const Tensor& replaced, const Tensor& g, const char* where) {
  HG_CHECK(replaced.sizes() == g.sizes() && replaced.dtype() == g.dtype() && replaced.device() == g.device(),
           "a gradient hook on {} returned {}, but the gradient it was given is {}: a hook may change the "
           "values only, not the shape, dtype or device",
           where, replaced.desc(), g.desc());
}

// Runs hooks[0, n) for n = the count at the start: a hook may register another hook on the same tensor, which
// reallocates the vector (each one is copied before it runs) and first runs on the next backward, as in PyTorch.
template <typename Hooks, typename Run>
void run_each(const Hooks& hooks, Run run) {
  const size_t n = hooks.size();
  for (size_t i = 0; i < n; ++i) {
    auto hook = hooks[i];
    run(hook);
  }
}

}  // namespace

void Node::run_pre_hooks(Tensors& grad_outputs) const {
  for (const auto* hooks : {&pre_hooks_, &retain_grad_hooks_}) {
    run_each(*hooks, [&](const std::pair<uint32_t, std::function<Tensor(const Tensor&)>>& entry) {
      const auto& [nr, hook] = entry;
      if (nr >= grad_outputs.size() || !grad_outputs[nr].defined()) return;
      Tensor replaced = hook(grad_outputs[nr]);
      if (!replaced.defined()) return;
      check_hook_result(replaced, grad_outputs[nr], fmt::format("output {} of '{}'", nr, name_).c_str());
      grad_outputs[nr] = std::move(replaced);
    });
  }
}

// ---- SavedTensor --------------------------------------------------------------------------------

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : is_output_(is_output) {
  if (!t.defined()) return;
  saved_version_ = t.version();
  if (is_output) {
    // Keep the data without grad_fn: the node owns this SavedTensor, so a strong grad_fn would be a cycle.
    data_ = t.detach();
    if (auto* meta = autograd_meta_or_null(t)) output_nr_ = meta->output_nr;
  } else if (t.unsafe_impl()->view_base) {
    // A view keeps its base alive, and the base's history may come to include this node (a write into the base
    // that depends on the node's output): an alias without the base, carrying the view's history, breaks that
    // cycle. A saved tensor is only read, and is checked for writes through its version.
    const std::shared_ptr<Node> history = t.grad_fn();  // brings a stale view's history up to date first
    const AutogradMeta* meta = autograd_meta_or_null(t);
    if (meta && meta->requires_grad && !history) {
      data_ = t;  // a view made a leaf by hand: the leaf itself
    } else {
      data_ = make_tensor(t.storage(), t.sizes(), t.strides(), t.offset(), t.dtype());
      if (history) {
        AutogradMeta& alias = autograd_meta(data_);
        alias.grad_fn = history;
        alias.output_nr = meta->output_nr;
      }
    }
  } else {
    data_ = t;
  }
}

Tensor SavedTensor::unpack(const BackwardContext& ctx) const {
  if (!data_.defined()) return data_;
  HG_CHECK(data_.version() == saved_version_,
           "backward of '{}': a tensor it saved ({}) was modified by an in-place operation after it was saved "
           "(version {} then, {} now); use the out-of-place op or clone() before modifying",
           ctx.node->name(), data_.desc(), saved_version_, data_.version());
  if (!is_output_ || !GradMode::is_enabled()) return data_;
  // Double backward: the output must appear as the node's output so its own gradient flows back through it.
  Tensor linked = data_.detach();
  auto& meta = autograd_meta(linked);
  meta.grad_fn = std::const_pointer_cast<Node>(ctx.node->shared_from_this());
  meta.output_nr = output_nr_;
  return linked;
}

// ---- FunctionNode -------------------------------------------------------------------------------

FunctionNode::FunctionNode(const char* name, std::vector<Edge> next_edges, std::vector<InputMeta> input_meta,
                           Backward fn)
    : Node(name, std::move(next_edges), std::move(input_meta)), fn_(std::move(fn)) {}

Tensors FunctionNode::apply(Tensors&& grad_outputs) {
  HG_CHECK(!released_,
           "backward through the graph a second time: the node of '{}' already freed what it saved; pass "
           "retain_graph=true to the first backward() if you need to call it twice",
           name_);
  return fn_(grad_outputs, BackwardContext{this});
}

void FunctionNode::release() {
  if (keeps_no_tensors_) return;
  fn_ = nullptr;  // drops the saved tensors captured by the closure
  released_ = true;
}

// ---- AccumulateGrad -----------------------------------------------------------------------------

AccumulateGrad::AccumulateGrad(const Tensor& leaf)
    : Node("AccumulateGrad", {}, {InputMeta{leaf.sizes(), leaf.dtype(), leaf.device()}}),
      leaf_(leaf.impl_ptr()) {}

Tensor AccumulateGrad::leaf() const {
  auto impl = leaf_.lock();
  return impl ? Tensor(std::move(impl)) : Tensor();
}

Tensor AccumulateGrad::run_leaf_hooks(Tensor g) const {
  Tensor leaf_tensor = leaf();
  if (!leaf_tensor.defined() || !g.defined()) return g;
  run_each(autograd_meta(leaf_tensor).hooks, [&](const std::function<Tensor(const Tensor&)>& hook) {
    Tensor replaced = hook(g);
    if (!replaced.defined()) return;
    check_hook_result(replaced, g, fmt::format("the leaf {}", leaf_tensor.desc()).c_str());
    g = std::move(replaced);
  });
  return g;
}

Tensors AccumulateGrad::apply(Tensors&& grad_outputs) {
  Tensor leaf_tensor = leaf();
  if (!leaf_tensor.defined() || grad_outputs.empty() || !grad_outputs[0].defined()) return {};
  auto& meta = autograd_meta(leaf_tensor);
  // requires_grad_(false) after the graph was built: the leaf no longer wants a gradient (as PyTorch).
  if (!meta.requires_grad) return {};
  Tensor g = run_leaf_hooks(std::move(grad_outputs[0]));
  std::lock_guard lock(mutex_);
  HG_CHECK(g.sizes() == leaf_tensor.sizes() && g.dtype() == leaf_tensor.dtype(),
           "gradient accumulation: the gradient {} does not match the leaf {} it is accumulated into", g.desc(),
           leaf_tensor.desc());
  if (GradMode::is_enabled()) {  // create_graph: keep the gradient differentiable
    // A clone (differentiable), never g itself: g may be a stride-0 expansion or shared with another leaf's
    // gradient, and a later backward adds into .grad in place.
    meta.grad = meta.grad.defined() ? add(meta.grad, g) : g.clone();
    return {};
  }
  if (!meta.grad.defined()) {
    // Steal the buffer when nobody else can see it; otherwise copy so that later in-place accumulation
    // cannot write into another tensor.
    // A view's base (TensorImpl::view_base) holds the storage too; it counts as nobody else when only this
    // view holds the base (a gradient formed as a view of a temporary, such as a reshape).
    const std::shared_ptr<TensorImpl>& base = g.unsafe_impl()->view_base;
    const long holders = base && base.use_count() == 1 ? 2 : 1;
    bool exclusive = g.impl_ptr().use_count() == 1 && g.storage().use_count() == holders && g.is_contiguous();
    meta.grad = exclusive ? g.detach() : g.detach().clone();
  } else {
    meta.grad.add_(g);
  }
  return {};
}

}  // namespace hg
