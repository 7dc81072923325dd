#include <hopgrad/nn/optim/optimizer.h>

#include <unordered_set>

#include <fmt/format.h>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/grad_mode.h>

namespace hg::optim {

Optimizer::Optimizer(std::string name, const std::vector<const std::vector<Tensor>*>& groups)
    : name_(std::move(name)) {
  HG_CHECK(!groups.empty(), "{}: got an empty list of parameter groups", name_);
  std::unordered_set<const TensorImpl*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t k = 0; k < groups[g]->size(); ++k) {
      const Tensor& param = (*groups[g])[k];
      HG_CHECK(param.defined(), "{}: parameter {} of group {} is an undefined tensor", name_, k, g);
      HG_CHECK(param.is_leaf(), "{}: parameter {} of group {} ({}) is not a leaf tensor; optimize the leaves it "
               "was computed from", name_, k, g, param.desc());
      HG_CHECK(seen.insert(param.unsafe_impl()).second,
               "{}: parameter {} of group {} ({}) appears more than once in the parameter groups", name_, k, g,
               param.desc());
    }
  }
}

void Optimizer::check_group(size_t group, const char* what) const {
  HG_CHECK(group < num_param_groups(), "{}.{}: group {} is out of range (the optimizer has {} groups)", name_, what,
           group, num_param_groups());
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> all;
  for (size_t g = 0; g < num_param_groups(); ++g) all.insert(all.end(), params(g).begin(), params(g).end());
  return all;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (size_t g = 0; g < num_param_groups(); ++g)
    for (const Tensor& param : params(g)) hg::zero_grad(param, set_to_none);
}

namespace detail {

std::string state_key(size_t param, const char* name) { return fmt::format("state.{}.{}", param, name); }
std::string group_key(size_t group, const char* name) { return fmt::format("param_groups.{}.{}", group, name); }

Tensor restore_buffer(const std::string& optimizer, const std::string& key, const Tensor& value, const Tensor& param) {
  HG_CHECK(value.defined(), "{}.load_state_dict: '{}' is an undefined tensor", optimizer, key);
  HG_CHECK(value.sizes() == param.sizes(), "{}.load_state_dict: '{}' has shape {}, its parameter has shape {}",
           optimizer, key, value.sizes(), param.sizes());
  HG_CHECK(is_floating(value.dtype()), "{}.load_state_dict: '{}' has dtype {}, expected a floating-point dtype",
           optimizer, key, value.dtype());
  Tensor restored = value.detach().to(param.device(), param.dtype());
  if (restored.storage() == value.storage()) restored = restored.clone();
  return restored;
}

}  // namespace detail
}  // namespace hg::optim
