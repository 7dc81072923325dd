// nn::Module: registration, recursive traversal, train/eval, in-place device/dtype moves and printing.
#include <hopgrad/nn/module.h>

#include <cxxabi.h>

#include <cstdlib>
#include <mutex>
#include <ostream>
#include <sstream>
#include <unordered_set>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

// "hg::nn::LinearImpl" → "Linear"; "(anonymous namespace)::NetImpl" → "Net".
std::string detail::readable_type_name(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : type.name();
  std::free(demangled);
  if (auto colon = name.rfind("::"); colon != std::string::npos && name.find('<') == std::string::npos)
    name = name.substr(colon + 2);
  if (name.size() > 4 && name.ends_with("Impl")) name.resize(name.size() - 4);
  return name;
}

namespace {

// Points `param`'s TensorImpl at `data`'s storage and layout (what libtorch's set_data does), so that every
// handle to the parameter — a layer's `weight` member, an optimizer's parameter list — sees the moved tensor
// and it stays the same leaf with the same autograd state.
void set_data(const Tensor& param, const Tensor& data) {
  TensorImpl& impl = *param.unsafe_impl();
  const TensorImpl& source = *data.unsafe_impl();
  impl.storage = source.storage;
  impl.sizes = source.sizes;
  impl.strides = source.strides;
  impl.offset = source.offset;
  impl.dtype = source.dtype;
}

// Applies `convert` once to each distinct tensor of the tree (parameters, buffers and their gradients).
void move_tree(Module& root, const std::function<Tensor(const Tensor&)>& convert) {
  NoGradGuard no_grad;
  std::unordered_set<const TensorImpl*> done;
  for (const auto& module : root.modules()) {
    for (const auto* group : {&module->direct_parameters(), &module->direct_buffers()}) {
      for (const auto& [name, tensor] : *group) {
        if (!tensor.defined() || !done.insert(tensor.unsafe_impl()).second) continue;
        // A frozen parameter's gradient moves too (as torch's _apply): left behind it would no longer match.
        Tensor grad = tensor.grad();
        set_data(tensor, convert(tensor.detach()));
        if (grad.defined()) tensor.set_grad(convert(grad));
      }
    }
  }
}

void print_tree(std::ostream& stream, const Module& module, int indent) {
  std::ostringstream own;
  module.pretty_print(own);
  const auto& children = module.named_children();
  if (children.empty()) {
    // A module with nothing to show is "Name()", as PyTorch prints it; layers print their arguments.
    const std::string text = own.str();
    stream << text << (text.ends_with(")") ? "" : "()");
    return;
  }
  stream << own.str();
  stream << "(\n";
  for (const auto& [name, child] : children) {
    stream << std::string(indent + 2, ' ') << "(" << name << "): ";
    print_tree(stream, *child, indent + 2);
    stream << "\n";
  }
  stream << std::string(indent, ' ') << ")";
}

}  // namespace

Module::Module(std::string name) : name_(std::move(name)) {}

const std::string& Module::name() const {
  // The dynamic type is known only after construction, so the default name is computed on first use; under a
  // lock, since a module shared by threads (inference from several) may be asked for it by two at once. Once set,
  // name_ never changes, so the reference stays valid without the lock.
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (name_.empty()) name_ = detail::readable_type_name(typeid(*this));
  return name_;
}

void Module::check_new_name(const std::string& name, const char* what) const {
  HG_CHECK(!name.empty() && name.find('.') == std::string::npos,
           "{}::{}: name '{}' must be non-empty and contain no '.' (dots separate nested names)", this->name(),
           what, name);
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  HG_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
           "{}::{}: '{}' is already registered as a parameter, buffer or submodule", this->name(), what, name);
}

Tensor Module::register_parameter(std::string name, Tensor tensor, bool requires_grad) {
  check_new_name(name, "register_parameter");
  HG_CHECK(tensor.defined(), "{}::register_parameter: '{}' is an undefined tensor", this->name(), name);
  HG_CHECK(!requires_grad || is_floating(tensor.dtype()),
           "{}::register_parameter: '{}' is {}; only floating-point parameters can require grad", this->name(),
           name, tensor.desc());
  // A parameter is a leaf of its own, whatever graph the given tensor came from.
  if (!tensor.is_leaf()) tensor = tensor.detach();
  tensor.requires_grad_(requires_grad);
  parameters_.emplace_back(std::move(name), std::move(tensor));
  return parameters_.back().second;
}

Tensor Module::register_buffer(std::string name, Tensor tensor) {
  check_new_name(name, "register_buffer");
  buffers_.emplace_back(std::move(name), std::move(tensor));
  return buffers_.back().second;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_new_name(name, "register_module");
  HG_CHECK(module != nullptr, "{}::register_module: '{}' is an empty module", this->name(), name);
  HG_CHECK(module.get() != this, "{}::register_module: a module cannot contain itself ('{}')", this->name(), name);
  children_.emplace_back(std::move(name), std::move(module));
}

// ---- traversal ------------------------------------------------------------------------------------

namespace {
// Depth-first walk collecting each distinct tensor once, first name wins (as PyTorch's remove_duplicate).
void collect(const Module& module, const std::string& prefix, bool recurse, bool want_parameters,
             std::unordered_set<const TensorImpl*>& seen, Named<Tensor>& out) {
  const auto& own = want_parameters ? module.direct_parameters() : module.direct_buffers();
  for (const auto& [name, tensor] : own)
    if (tensor.defined() && seen.insert(tensor.unsafe_impl()).second) out.emplace_back(prefix + name, tensor);
  if (!recurse) return;
  for (const auto& [name, child] : module.named_children())
    collect(*child, prefix + name + ".", true, want_parameters, seen, out);
}

Tensors values(const Named<Tensor>& named) {
  Tensors out;
  out.reserve(named.size());
  for (const auto& entry : named) out.push_back(entry.second);
  return out;
}
}  // namespace

Named<Tensor> Module::named_parameters(bool recurse) const {
  Named<Tensor> out;
  std::unordered_set<const TensorImpl*> seen;
  collect(*this, "", recurse, true, seen, out);
  return out;
}
Tensors Module::parameters(bool recurse) const { return values(named_parameters(recurse)); }

Named<Tensor> Module::named_buffers(bool recurse) const {
  Named<Tensor> out;
  std::unordered_set<const TensorImpl*> seen;
  collect(*this, "", recurse, false, seen, out);
  return out;
}
Tensors Module::buffers(bool recurse) const { return values(named_buffers(recurse)); }

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& entry : children_) out.push_back(entry.second);
  return out;
}

Named<std::shared_ptr<Module>> Module::named_modules(const std::string& prefix, bool include_self) {
  Named<std::shared_ptr<Module>> out;
  std::unordered_set<const Module*> seen;
  std::function<void(const std::shared_ptr<Module>&, const std::string&)> visit =
      [&](const std::shared_ptr<Module>& module, const std::string& name) {
        if (!seen.insert(module.get()).second) return;
        out.emplace_back(name, module);
        for (const auto& [child_name, child] : module->children_)
          visit(child, name.empty() ? child_name : name + "." + child_name);
      };
  // A module that is not owned by a shared_ptr (e.g. on the stack) is listed through a non-owning alias.
  std::shared_ptr<Module> self = weak_from_this().lock();
  if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), this);
  visit(self, prefix);
  if (!include_self) out.erase(out.begin());
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules(bool include_self) {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& entry : named_modules("", include_self)) out.push_back(std::move(entry.second));
  return out;
}

// ---- mode, placement, gradients -----------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  move_tree(*this, [device](const Tensor& t) { return t.to(device); });
}

void Module::to(DType dtype) {
  HG_CHECK(is_floating(dtype), "{}::to: only floating-point dtypes are accepted, got {}", name(), dtype);
  move_tree(*this, [dtype](const Tensor& t) { return is_floating(t.dtype()) ? t.to(dtype) : t; });
}

void Module::to(Device device, DType dtype) {
  HG_CHECK(is_floating(dtype), "{}::to: only floating-point dtypes are accepted, got {}", name(), dtype);
  // As torch.nn.Module.to: floating tensors take the new dtype, integer and bool buffers keep theirs.
  move_tree(*this, [device, dtype](const Tensor& t) {
    return is_floating(t.dtype()) ? t.to(device, dtype) : t.to(device);
  });
}

void Module::zero_grad(bool set_to_none) {
  for (const Tensor& p : parameters()) hg::zero_grad(p, set_to_none);
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (const auto& module : modules()) fn(*module);
}

void Module::apply(const std::function<void(const std::string&, Module&)>& fn) {
  for (const auto& [name, module] : named_modules()) fn(name, *module);
}

// ---- printing -----------------------------------------------------------------------------------

void Module::pretty_print(std::ostream& stream) const { stream << name(); }

std::ostream& operator<<(std::ostream& stream, const Module& module) {
  print_tree(stream, module, 0);
  return stream;
}

std::string to_string(const Module& module) {
  std::ostringstream stream;
  stream << module;
  return stream.str();
}

}  // namespace hg::nn
