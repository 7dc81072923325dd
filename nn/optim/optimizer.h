#pragma once
// Optimizer: parameter groups with their own options, per-parameter state, zero_grad, and state save/load —
// the machinery SGD, Adam and AdamW share (torch.optim.Optimizer).
//
//   hg::optim::Adam opt(model->parameters(), hg::optim::AdamOptions(1e-3));
//   opt.zero_grad();  loss.backward();  opt.step();
//
//   // parameter groups, each with its own options
//   hg::optim::Adam opt({{encoder_params, hg::optim::AdamOptions(1e-3)},
//                        {head_params, hg::optim::AdamOptions(1e-2).weight_decay(0)}});
//
// Parameters whose grad() is undefined are skipped by step() and get no state, as in PyTorch.
//
// ## State-dict key convention (what nn/serialize writes into a checkpoint)
// state_dict() returns an OptimizerStateDict; every key is flat and dotted:
//
//   optimizer                                 "SGD", "Adam" or "AdamW"; load_state_dict refuses another kind
//   tensors["state.<i>.<buffer>"]             per-parameter buffers, same shape as parameter i
//                                               SGD:        momentum_buffer (only when momentum != 0)
//                                               Adam/AdamW: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only)
//   scalars["state.<i>.step"]                 Adam/AdamW: updates parameter i has had (bias correction)
//   scalars["param_groups.<g>.num_params"]    number of parameters in group g
//   scalars["param_groups.<g>.<option>"]      every hyperparameter of group g, bools as 0/1:
//                                               SGD:        lr, momentum, dampening, weight_decay, nesterov
//                                               Adam/AdamW: lr, beta1, beta2, eps, weight_decay, amsgrad
//
// <i> numbers the parameters across all groups in order (group 0's parameters first), as torch's
// state_dict does; a parameter that has never been updated has no `state.<i>.*` keys. load_state_dict
// restores the hyperparameters too (so a scheduled lr resumes where it was), moves each buffer to its
// parameter's device and dtype, and checks every key and shape first, naming the first mismatch; on error
// the optimizer is left unchanged.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::optim {

/// An optimizer's state in flat, dotted keys (the convention is documented at the top of this header).
struct OptimizerStateDict {
  std::string optimizer;                  ///< "SGD", "Adam" or "AdamW"
  std::map<std::string, Tensor> tensors;  ///< state.<i>.<buffer>; the optimizer's live buffers, not copies
  std::map<std::string, double> scalars;  ///< state.<i>.step, param_groups.<g>.<option>
};

/// Parameters that share one set of options: `{params, AdamOptions(1e-3).weight_decay(0)}`.
template <typename Options>
struct ParamGroup {
  std::vector<Tensor> params;
  Options options;
};

/// The one group of an optimizer built from a flat parameter list, which must not be empty (as torch: a module
/// whose tensors were never registered gives none, and training would silently do nothing). Explicit groups may
/// be empty.
template <typename Options>
std::vector<ParamGroup<Options>> single_group(const char* optimizer, std::vector<Tensor> params, Options options) {
  HG_CHECK(!params.empty(),
           "{}: optimizer got an empty parameter list (were the module's tensors registered with "
           "register_parameter?)",
           optimizer);
  return {ParamGroup<Options>{std::move(params), std::move(options)}};
}

/// The interface every optimizer offers (what schedulers and checkpoints use).
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient (under NoGradGuard, in place).
  virtual void step() = 0;
  /// Clears the gradients: set_to_none = true drops them (the next backward allocates fresh ones), false
  /// fills them with zeros (detaching any that carry a graph), as torch's zero_grad.
  void zero_grad(bool set_to_none = true);

  /// "SGD", "Adam" or "AdamW".
  const std::string& name() const { return name_; }
  virtual size_t num_param_groups() const = 0;
  virtual const std::vector<Tensor>& params(size_t group) const = 0;
  /// Every parameter, group by group (the order that numbers `state.<i>` keys).
  std::vector<Tensor> parameters() const;
  /// Learning rate of `group` (what schedulers read and write).
  virtual double lr(size_t group) const = 0;
  virtual void set_lr(size_t group, double lr) = 0;

  virtual OptimizerStateDict state_dict() const = 0;
  virtual void load_state_dict(const OptimizerStateDict& state) = 0;

 protected:
  /// Checks the groups as torch does: at least one group, defined leaf parameters, none in two groups.
  Optimizer(std::string name, const std::vector<const std::vector<Tensor>*>& groups);
  /// Throws unless 0 <= group < num_param_groups(), naming `what`.
  void check_group(size_t group, const char* what) const;

  std::string name_;
};

namespace detail {
std::string state_key(size_t param, const char* name);  ///< "state.<param>.<name>"
std::string group_key(size_t group, const char* name);  ///< "param_groups.<group>.<name>"
/// Buffer `value` restored for `param`: its shape checked, moved to the parameter's device and dtype, and
/// never sharing storage with `value` (so two optimizers loaded from one dict do not share state).
Tensor restore_buffer(const std::string& optimizer, const std::string& key, const Tensor& value,
                      const Tensor& param);

/// What SGD, Adam and AdamW have in common, given
///   Options: lr() / lr(double), validate(const char* optimizer), and
///            `template <class Self, class Visit> static void visit(Self&, Visit&&)` calling
///            visit(name, double& or bool&) for each hyperparameter;
///   State:   `template <class Self, class Visit> static void visit(Self&, Visit&&)` calling
///            visit(name, Tensor&, bool required) for each buffer, and optionally an `int64_t step` member.
template <typename Options, typename State>
class OptimizerBase : public Optimizer {
 public:
  size_t num_param_groups() const override { return groups_.size(); }
  const std::vector<Tensor>& params(size_t group) const override {
    check_group(group, "params");
    return groups_[group].params;
  }
  double lr(size_t group) const override {
    check_group(group, "lr");
    return groups_[group].options.lr();
  }
  void set_lr(size_t group, double lr) override {
    check_group(group, "set_lr");
    Options options = groups_[group].options;
    options.lr(lr);
    options.validate(name_.c_str());
    groups_[group].options = options;
  }
  /// The options of `group`, to change hyperparameters between steps (`opt.options(1).weight_decay(0)`).
  /// They are validated when the next step() runs.
  Options& options(size_t group) {
    check_group(group, "options");
    return groups_[group].options;
  }
  const Options& options(size_t group) const {
    check_group(group, "options");
    return groups_[group].options;
  }

  OptimizerStateDict state_dict() const override {
    OptimizerStateDict dict{name_, {}, {}};
    size_t i = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      dict.scalars[group_key(g, "num_params")] = static_cast<double>(groups_[g].params.size());
      Options::visit(groups_[g].options, [&](const char* option, const auto& value) {
        dict.scalars[group_key(g, option)] = static_cast<double>(value);
      });
      for (size_t k = 0; k < groups_[g].params.size(); ++k, ++i) {
        const State& state = state_[i];
        bool initialized = false;
        State::visit(state, [&](const char* buffer, const Tensor& value, bool) {
          if (!value.defined()) return;
          dict.tensors[state_key(i, buffer)] = value;
          initialized = true;
        });
        if constexpr (requires { state.step; })
          if (initialized) dict.scalars[state_key(i, "step")] = static_cast<double>(state.step);
      }
    }
    return dict;
  }

  void load_state_dict(const OptimizerStateDict& dict) override {
    const char* op = name_.c_str();
    HG_CHECK(dict.optimizer == name_, "{}.load_state_dict: the state is from a {} optimizer, expected {}", op,
             dict.optimizer.empty() ? "unnamed" : dict.optimizer, name_);
    std::set<std::string> used;
    auto scalar = [&](const std::string& key) -> double {
      auto it = dict.scalars.find(key);
      HG_CHECK(it != dict.scalars.end(), "{}.load_state_dict: missing key '{}'", op, key);
      used.insert(key);
      return it->second;
    };
    // Everything is read into copies and checked first; the optimizer changes only once all of it fits.
    std::vector<Options> options;
    std::vector<State> states(state_.size());
    size_t i = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      double count = scalar(group_key(g, "num_params"));
      HG_CHECK(count == static_cast<double>(groups_[g].params.size()),
               "{}.load_state_dict: param_groups.{} has {} parameters in the state, {} in this optimizer", op, g,
               count, groups_[g].params.size());
      Options loaded = groups_[g].options;
      Options::visit(loaded, [&](const char* option, auto& value) {
        std::string key = group_key(g, option);
        double v = scalar(key);
        if constexpr (std::is_same_v<std::remove_reference_t<decltype(value)>, bool>) {
          HG_CHECK(v == 0.0 || v == 1.0, "{}.load_state_dict: '{}' is {}, expected 0 or 1", op, key, v);
          value = v != 0.0;
        } else {
          value = v;
        }
      });
      loaded.validate(op);
      options.push_back(loaded);
      for (const Tensor& param : groups_[g].params) {
        State& state = states[i];
        std::vector<std::string> missing;
        bool initialized = false;
        State::visit(state, [&](const char* buffer, Tensor& value, bool required) {
          std::string key = state_key(i, buffer);
          auto it = dict.tensors.find(key);
          if (it == dict.tensors.end()) {
            if (required) missing.push_back(key);
            return;
          }
          value = restore_buffer(name_, key, it->second, param);
          used.insert(key);
          initialized = true;
        });
        if constexpr (requires { state.step; }) {
          std::string key = state_key(i, "step");
          if (dict.scalars.count(key)) {
            double step = scalar(key);
            HG_CHECK(step >= 0 && step == std::floor(step) && step < 9.0e15,
                     "{}.load_state_dict: '{}' is {}, expected a count of steps", op, key, step);
            state.step = static_cast<int64_t>(step);
            initialized = true;
          } else if (initialized) {
            missing.push_back(key);
          }
        }
        HG_CHECK(!initialized || missing.empty(), "{}.load_state_dict: missing key '{}' (parameter {} has other state)",
                 op, missing.empty() ? "" : missing.front(), i);
        ++i;
      }
    }
    for (const auto& [key, value] : dict.tensors)
      HG_CHECK(used.count(key), "{}.load_state_dict: unexpected key '{}' (this optimizer has {} parameters in {} groups)",
               op, key, state_.size(), groups_.size());
    for (const auto& [key, value] : dict.scalars)
      HG_CHECK(used.count(key), "{}.load_state_dict: unexpected key '{}' (this optimizer has {} parameters in {} groups)",
               op, key, state_.size(), groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = options[g];
    state_ = std::move(states);
  }

 protected:
  OptimizerBase(std::string name, std::vector<ParamGroup<Options>> groups)
      : Optimizer(std::move(name), group_pointers(groups)), groups_(std::move(groups)) {
    size_t count = 0;
    for (const auto& group : groups_) {
      group.options.validate(name_.c_str());
      count += group.params.size();
    }
    state_.resize(count);
  }

  /// Calls update(param, grad, state, options) for every parameter that has a gradient.
  template <typename Update>
  void for_each_update(Update&& update) {
    size_t i = 0;
    for (const auto& group : groups_) {
      group.options.validate(name_.c_str());
      for (const Tensor& param : group.params) {
        State& state = state_[i++];
        const Tensor& grad = param.grad();
        if (grad.defined()) update(param, grad, state, group.options);
      }
    }
  }

  std::vector<ParamGroup<Options>> groups_;
  std::vector<State> state_;  ///< one per parameter, numbered across groups

 private:
  static std::vector<const std::vector<Tensor>*> group_pointers(const std::vector<ParamGroup<Options>>& groups) {
    std::vector<const std::vector<Tensor>*> pointers;
    for (const auto& group : groups) pointers.push_back(&group.params);
    return pointers;
  }
};
}  // namespace detail

}  // namespace hg::optim
