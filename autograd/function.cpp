#include <hopgrad/autograd/function.h>

#include <mutex>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/autograd/meta.h>
#include <hopgrad/autograd/view_history.h>
#include <hopgrad/ops/ops.h>

namespace hg {

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const Tensors& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  refresh_view_history(t);
  AutogradMeta* meta = autograd_meta_or_null(t);
  if (!meta) return {};
  if (meta->grad_fn) return Edge{meta->grad_fn, meta->output_nr};
  if (!meta->requires_grad) return {};
  // A leaf (a parameter) may be used by graphs built on several threads at once; its one accumulator is made
  // under a lock (std::weak_ptr is not safe to read and write concurrently).
  static std::mutex accumulator_mutex;
  std::lock_guard lock(accumulator_mutex);
  std::shared_ptr<Node> acc = meta->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    meta->grad_accumulator = acc;
  }
  return Edge{acc, 0};
}

std::shared_ptr<Node> record_op(const char* name, const Tensors& inputs, const Tensors& outputs,
                                FunctionNode::Backward backward) {
  std::vector<Edge> edges;
  std::vector<InputMeta> metas;
  edges.reserve(inputs.size());
  metas.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    edges.push_back(gradient_edge(t));
    if (t.defined())
      metas.push_back(InputMeta{t.sizes(), t.dtype(), t.device()});
    else
      metas.push_back(InputMeta{Shape{}, kFloat32, kCPU});
  }
  auto node = std::make_shared<FunctionNode>(name, std::move(edges), std::move(metas), std::move(backward));
  node->set_num_outputs(static_cast<uint32_t>(outputs.size()));
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto& meta = autograd_meta(outputs[i]);
    meta.grad_fn = node;
    meta.output_nr = static_cast<uint32_t>(i);
    if (meta.retains_grad) attach_retain_grad_hook(outputs[i]);  // an in-place op gave it a new history
  }
  return node;
}

void zero_grad(const Tensor& param, bool set_to_none) {
  Tensor grad = param.grad();
  if (!grad.defined()) return;
  if (set_to_none) {
    param.set_grad(Tensor());
    return;
  }
  NoGradGuard no_grad;
  if (grad.grad_fn()) {
    grad = grad.detach();
    param.set_grad(grad);
  }
  grad.zero_();
}

}  // namespace hg
