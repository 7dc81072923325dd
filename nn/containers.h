#pragma once
// Containers: Sequential (a chain of Tensor → Tensor modules), ModuleList and ModuleDict (registered
// submodules by position or by name), and Functional (a function as a module, for Sequential).
//
//   hg::nn::Sequential mlp(hg::nn::Linear(4, 8), hg::nn::ReLU(), hg::nn::Linear(8, 2));
//   hg::Tensor y = mlp(x);                                  // parameters "0.weight", "0.bias", "2.weight", ...
//   hg::nn::ModuleList blocks;  blocks->push_back(hg::nn::Linear(8, 8));   blocks[0]
//   hg::nn::ModuleDict heads;   heads->insert("class", hg::nn::Linear(8, 10));
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <hopgrad/nn/module.h>

namespace hg::nn {

namespace detail {
template <typename M> std::shared_ptr<Module> module_ptr(const std::shared_ptr<M>& module) { return module; }
template <ModuleHolderType H> std::shared_ptr<Module> module_ptr(const H& holder) { return holder.ptr(); }
template <typename M> auto* impl_of(const std::shared_ptr<M>& module) { return module.get(); }
template <ModuleHolderType H> auto* impl_of(const H& holder) { return holder.ptr().get(); }

// The concrete module type `T` at `module`, or an error naming the container, the position and the element's
// type.
template <typename T> std::shared_ptr<T> cast_module(const std::shared_ptr<Module>& module, const char* container,
                                                     const std::string& key) {
  auto typed = std::dynamic_pointer_cast<T>(module);
  HG_CHECK(typed != nullptr, "{}: element {} is a {}, not the requested type", container, key, module->name());
  return typed;
}
}  // namespace detail

/// A module handle: a holder (`Linear`) or a shared_ptr to a Module.
template <typename M>
concept ModuleHandle = requires(const M& m) {
  { detail::module_ptr(m) } -> std::convertible_to<std::shared_ptr<Module>>;
};

/// A module that can go into a Sequential: anything with Tensor forward(const Tensor&).
template <typename M>
concept SequentialElement = requires(M& m, const Tensor& x) {
  { detail::impl_of(m)->forward(x) } -> std::convertible_to<Tensor>;
};

/// y = fₙ(…f₂(f₁(x))): applies its modules in order (the input itself when empty).
class SequentialImpl : public Module {
 public:
  SequentialImpl() : Module("Sequential") {}
  template <SequentialElement... Ms> explicit SequentialImpl(Ms&&... modules) : Module("Sequential") {
    (push_back(std::forward<Ms>(modules)), ...);
  }

  /// Appends a module named by its position ("0", "1", ...).
  template <SequentialElement M> void push_back(M&& module) { push_back(std::to_string(size()), std::forward<M>(module)); }
  /// Appends a module under `name`.
  template <SequentialElement M> void push_back(std::string name, M&& module) {
    auto* impl = detail::impl_of(module);
    register_module(std::move(name), detail::module_ptr(module));
    steps_.push_back([impl](const Tensor& x) -> Tensor { return impl->forward(x); });
  }

  Tensor forward(const Tensor& x);

  size_t size() const { return steps_.size(); }
  bool empty() const { return steps_.empty(); }
  /// The i-th module.
  std::shared_ptr<Module> ptr(size_t index) const;
  template <typename T> std::shared_ptr<T> ptr(size_t index) const {
    return detail::cast_module<T>(ptr(index), "Sequential", std::to_string(index));
  }
  /// The i-th module as its concrete type: `seq->at<hg::nn::LinearImpl>(0).weight`.
  template <typename T> T& at(size_t index) const { return *ptr<T>(index); }
  std::shared_ptr<Module> operator[](size_t index) const { return ptr(index); }

 private:
  std::vector<std::function<Tensor(const Tensor&)>> steps_;
};
HG_MODULE(Sequential);

/// Submodules by position, registered as "0", "1", ...; no forward (the owner decides how to call them).
class ModuleListImpl : public Module {
 public:
  ModuleListImpl() : Module("ModuleList") {}
  template <ModuleHandle... Ms> explicit ModuleListImpl(Ms&&... modules) : Module("ModuleList") {
    (push_back(std::forward<Ms>(modules)), ...);
  }

  template <ModuleHandle M> void push_back(const M& module) {
    auto pointer = detail::module_ptr(module);
    register_module(std::to_string(items_.size()), pointer);
    items_.push_back(std::move(pointer));
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::shared_ptr<Module> ptr(size_t index) const;
  template <typename T> std::shared_ptr<T> ptr(size_t index) const {
    return detail::cast_module<T>(ptr(index), "ModuleList", std::to_string(index));
  }
  template <typename T> T& at(size_t index) const { return *ptr<T>(index); }
  std::shared_ptr<Module> operator[](size_t index) const { return ptr(index); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};
HG_MODULE(ModuleList);

/// Submodules by name, in insertion order; no forward.
class ModuleDictImpl : public Module {
 public:
  ModuleDictImpl() : Module("ModuleDict") {}

  /// Adds `module` under `key` (keys are unique and contain no '.').
  template <ModuleHandle M> void insert(const std::string& key, const M& module) {
    register_module(key, detail::module_ptr(module));
  }

  size_t size() const { return named_children().size(); }
  bool empty() const { return size() == 0; }
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;
  /// The module under `key`; throws listing the keys when absent.
  std::shared_ptr<Module> ptr(const std::string& key) const;
  template <typename T> std::shared_ptr<T> ptr(const std::string& key) const {
    return detail::cast_module<T>(ptr(key), "ModuleDict", "'" + key + "'");
  }
  template <typename T> T& at(const std::string& key) const { return *ptr<T>(key); }
  std::shared_ptr<Module> operator[](const std::string& key) const { return ptr(key); }
};
HG_MODULE(ModuleDict);

/// y = f(x) for a plain function, so a Sequential can hold a reshape or an op without a module of its own:
/// `Sequential(Linear(4, 4), Functional([](const hg::Tensor& x) { return hg::softmax(x, -1); }))`.
class FunctionalImpl : public Module {
 public:
  explicit FunctionalImpl(std::function<Tensor(const Tensor&)> function)
      : Module("Functional"), function_(std::move(function)) {}
  Tensor forward(const Tensor& x) { return function_(x); }
  void pretty_print(std::ostream& stream) const override;

 private:
  std::function<Tensor(const Tensor&)> function_;
};
HG_MODULE(Functional);

}  // namespace hg::nn
