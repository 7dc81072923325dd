// Sequential, ModuleList, ModuleDict, Functional.
#include <hopgrad/nn/containers.h>

#include <ostream>

namespace hg::nn {

// y = fₙ(…f₁(x))
Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& step : steps_) y = step(y);
  return y;
}

std::shared_ptr<Module> SequentialImpl::ptr(size_t index) const {
  HG_CHECK(index < steps_.size(), "Sequential: index {} is out of range for {} modules", index, steps_.size());
  return named_children()[index].second;
}

std::shared_ptr<Module> ModuleListImpl::ptr(size_t index) const {
  HG_CHECK(index < items_.size(), "ModuleList: index {} is out of range for {} modules", index, items_.size());
  return items_[index];
}

bool ModuleDictImpl::contains(const std::string& key) const {
  for (const auto& entry : named_children())
    if (entry.first == key) return true;
  return false;
}

std::vector<std::string> ModuleDictImpl::keys() const {
  std::vector<std::string> out;
  for (const auto& entry : named_children()) out.push_back(entry.first);
  return out;
}

std::shared_ptr<Module> ModuleDictImpl::ptr(const std::string& key) const {
  for (const auto& entry : named_children())
    if (entry.first == key) return entry.second;
  HG_FAIL("ModuleDict: no module under key '{}' (keys: [{}])", key, fmt::join(keys(), ", "));
}

void FunctionalImpl::pretty_print(std::ostream& stream) const { stream << "Functional()"; }

}  // namespace hg::nn
