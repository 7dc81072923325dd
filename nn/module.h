#pragma once
// nn::Module: the base of every layer and model — named parameters, buffers and submodules, train/eval mode,
// device/dtype moves and printing, as in libtorch's C++ frontend.
//
//   struct NetImpl : hg::nn::Module {
//     NetImpl() {
//       fc1 = register_module("fc1", hg::nn::Linear(784, 64));
//       fc2 = register_module("fc2", hg::nn::Linear(64, 10));
//     }
//     hg::Tensor forward(const hg::Tensor& x) { return fc2(fc1(x).relu()); }
//     hg::nn::Linear fc1{nullptr}, fc2{nullptr};
//   };
//   HG_MODULE(Net);
//   Net net;  net->to(hg::kFloat64);  for (auto& [name, p] : net->named_parameters()) ...   // "fc1.weight", ...
#include <concepts>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <hopgrad/core/device.h>
#include <hopgrad/core/dtype.h>
#include <hopgrad/core/tensor.h>

namespace hg::nn {

template <typename T> using Named = std::vector<std::pair<std::string, T>>;

class Module;
template <typename Contained> class ModuleHolder;

namespace detail {
/// "hg::nn::LinearImpl" → "Linear": a module type's name as messages and printing show it.
std::string readable_type_name(const std::type_info& type);
}  // namespace detail

/// True for HG_MODULE holders (`Linear`, `Sequential`, ...), which wrap a shared_ptr to their Impl.
template <typename T>
concept ModuleHolderType = std::is_base_of_v<ModuleHolder<typename T::ContainedType>, T>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  /// `name` is the type name shown when printing ("Linear"); empty = the demangled C++ class name without
  /// namespaces and a trailing "Impl".
  explicit Module(std::string name = "");
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The module's type name, e.g. "Linear".
  const std::string& name() const;

  // ---- registration ---------------------------------------------------------------------------
  /// Adds a parameter (a leaf that requires grad unless `requires_grad` is false); returns a handle sharing the
  /// stored tensor (moves by to() are seen through it): `weight = register_parameter("weight", hg::empty({o, i}));`
  Tensor register_parameter(std::string name, Tensor tensor, bool requires_grad = true);
  /// Adds a buffer: state that is saved and moved with the module but not trained (e.g. running statistics).
  Tensor register_buffer(std::string name, Tensor tensor);
  /// Adds a submodule; its parameters appear as "<name>.<their name>". Returns the argument.
  template <std::derived_from<Module> M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }
  template <ModuleHolderType H> H register_module(std::string name, H holder) {
    add_child(std::move(name), holder.ptr());
    return holder;
  }

  // ---- traversal (registration order, depth first, each tensor or module once) ----------------
  Tensors parameters(bool recurse = true) const;
  /// Parameters with dotted names ("encoder.layers.0.attn.in_proj_weight"), the keys of checkpoints.
  Named<Tensor> named_parameters(bool recurse = true) const;
  Tensors buffers(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;
  /// Direct submodules.
  std::vector<std::shared_ptr<Module>> children() const;
  const Named<std::shared_ptr<Module>>& named_children() const { return children_; }
  /// This module (first, named "" or `prefix`) and every submodule, depth first.
  std::vector<std::shared_ptr<Module>> modules(bool include_self = true);
  Named<std::shared_ptr<Module>> named_modules(const std::string& prefix = "", bool include_self = true);

  // ---- mode, placement, gradients -------------------------------------------------------------
  /// Sets training mode on this module and every submodule (Dropout and MultiheadAttention's dropout act only
  /// in training mode).
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Moves every parameter and buffer (recursively) in place: handles held by layers stay valid, parameters
  /// stay leaves that require grad, names are unchanged, and existing gradients are moved along. Integer and
  /// bool buffers keep their dtype when converting to another floating dtype.
  /// Shared (tied) tensors are converted once and stay shared.
  void to(Device device);
  void to(DType dtype);
  void to(Device device, DType dtype);

  /// Clears the gradients of every parameter (set_to_none = true) or fills them with zeros.
  void zero_grad(bool set_to_none = true);

  /// Calls fn on this module and every submodule, depth first, parents before children (as libtorch).
  void apply(const std::function<void(Module&)>& fn);
  /// The same with each module's dotted name ("" for this one).
  void apply(const std::function<void(const std::string&, Module&)>& fn);

  // ---- printing -------------------------------------------------------------------------------
  /// One-line description of this module alone, e.g. "Linear(in_features=4, out_features=2, bias=true)".
  /// The tree (children indented below) is printed by operator<< / fmt::format("{}", module).
  virtual void pretty_print(std::ostream& stream) const;

  /// Direct parameters / buffers / children, by name (no recursion).
  const Named<Tensor>& direct_parameters() const { return parameters_; }
  const Named<Tensor>& direct_buffers() const { return buffers_; }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, const char* what) const;

  mutable std::string name_;
  Named<Tensor> parameters_;
  Named<Tensor> buffers_;
  Named<std::shared_ptr<Module>> children_;
  bool training_ = true;
};

/// Prints the module tree in PyTorch's layout:
///   Sequential(
///     (0): Linear(in_features=4, out_features=2, bias=true)
///     (1): ReLU()
///   )
std::ostream& operator<<(std::ostream& stream, const Module& module);
/// The text operator<< prints.
std::string to_string(const Module& module);

/// A shared handle to a module implementation, made by HG_MODULE: `Linear` holds a shared_ptr<LinearImpl>;
/// `linear->weight`, `linear(x)` (calls forward), `Linear{nullptr}` (empty, assign later).
template <typename Contained> class ModuleHolder {
 public:
  using ContainedType = Contained;

  /// An empty holder (must be assigned before use).
  ModuleHolder(std::nullptr_t) {}
  /// Constructs the implementation from the arguments: `Linear(LinearOptions(4, 2).bias(false))`, `Linear(4, 2)`.
  template <typename... Args>
    requires std::constructible_from<Contained, Args...> &&
             (!(sizeof...(Args) == 1 &&
                (std::is_same_v<std::remove_cvref_t<Args>, std::shared_ptr<Contained>> && ...)))
  explicit(sizeof...(Args) == 1) ModuleHolder(Args&&... args)
      : impl_(std::make_shared<Contained>(std::forward<Args>(args)...)) {}
  /// Wraps an existing implementation.
  ModuleHolder(std::shared_ptr<Contained> impl) : impl_(std::move(impl)) {}

  Contained* operator->() const { return get(); }
  Contained& operator*() const { return *get(); }
  const std::shared_ptr<Contained>& ptr() const { return impl_; }
  Contained* get() const {
    HG_CHECK(impl_ != nullptr, "ModuleHolder: accessing an empty {} holder (constructed with nullptr)",
             detail::readable_type_name(typeid(Contained)));
    return impl_.get();
  }
  bool is_empty() const { return impl_ == nullptr; }
  explicit operator bool() const { return impl_ != nullptr; }

  /// Indexes the implementation (containers): `list[0]`, `dict["head"]`.
  template <typename Key> decltype(auto) operator[](Key&& key) const { return (*get())[std::forward<Key>(key)]; }

  /// Calls the implementation's forward.
  template <typename... Args> decltype(auto) operator()(Args&&... args) const {
    return get()->forward(std::forward<Args>(args)...);
  }

 private:
  std::shared_ptr<Contained> impl_;
};

template <typename Contained> std::ostream& operator<<(std::ostream& stream, const ModuleHolder<Contained>& h) {
  return stream << *h;
}

}  // namespace hg::nn

/// Declares the holder `Name` for the implementation class `NameImpl`, as TORCH_MODULE does.
#define HG_MODULE(Name)                                                \
  class Name : public ::hg::nn::ModuleHolder<Name##Impl> {             \
   public:                                                             \
    using ::hg::nn::ModuleHolder<Name##Impl>::ModuleHolder;            \
    using Impl = Name##Impl;                                           \
  }

/// fmt::format("{}", module) for modules, shared_ptrs to modules and holders prints the module tree.
template <typename M>
  requires std::derived_from<M, hg::nn::Module>
struct fmt::formatter<M> : fmt::formatter<std::string> {
  auto format(const M& module, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(hg::nn::to_string(module), ctx);
  }
};
template <typename H>
  requires hg::nn::ModuleHolderType<H>
struct fmt::formatter<H> : fmt::formatter<std::string> {
  auto format(const H& holder, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(hg::nn::to_string(*holder), ctx);
  }
};
