#include <hopgrad/nn/optim/lr_scheduler.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

namespace hg::optim {

// ---- state -------------------------------------------------------------------------------------
std::map<std::string, double> SchedulerState::to_map() const {
  std::map<std::string, double> map{{"last_epoch", static_cast<double>(last_epoch)}};
  for (size_t g = 0; g < base_lrs.size(); ++g) map[fmt::format("base_lrs.{}", g)] = base_lrs[g];
  for (size_t g = 0; g < last_lrs.size(); ++g) map[fmt::format("last_lrs.{}", g)] = last_lrs[g];
  return map;
}

SchedulerState SchedulerState::from_map(const std::map<std::string, double>& map) {
  auto it = map.find("last_epoch");
  HG_CHECK(it != map.end(), "SchedulerState::from_map: missing key 'last_epoch'");
  HG_CHECK(it->second >= 0 && it->second == std::floor(it->second) && it->second < 9.0e15,
           "SchedulerState::from_map: 'last_epoch' is {}, expected a count of steps", it->second);
  SchedulerState state;
  state.last_epoch = static_cast<int64_t>(it->second);
  size_t used = 1;
  for (auto [prefix, lrs] : {std::pair{"base_lrs", &state.base_lrs}, std::pair{"last_lrs", &state.last_lrs}}) {
    for (size_t g = 0;; ++g) {
      auto found = map.find(fmt::format("{}.{}", prefix, g));
      if (found == map.end()) break;
      lrs->push_back(found->second);
      ++used;
    }
  }
  HG_CHECK(state.base_lrs.size() == state.last_lrs.size(),
           "SchedulerState::from_map: {} base_lrs but {} last_lrs (expected one of each per group)",
           state.base_lrs.size(), state.last_lrs.size());
  if (used != map.size())
    for (const auto& [key, value] : map) {
      bool known = key == "last_epoch";
      for (const char* prefix : {"base_lrs.", "last_lrs."})
        for (size_t g = 0; g < state.base_lrs.size(); ++g) known |= key == fmt::format("{}{}", prefix, g);
      HG_CHECK(known, "SchedulerState::from_map: unexpected key '{}'", key);
    }
  return state;
}

// ---- base --------------------------------------------------------------------------------------
LRScheduler::LRScheduler(Optimizer& optimizer, const char* name) : optimizer_(optimizer), name_(name) {
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::initialize() { step(); }

void LRScheduler::step() {
  ++last_epoch_;
  try {
    apply();
  } catch (...) {  // a step that set nothing is not counted
    --last_epoch_;
    throw;
  }
}

void LRScheduler::apply() {
  std::vector<double> lrs = compute_lrs();
  // Every lr is checked before any is set, so that a failed step leaves no group changed. The recursive
  // schedules (cosine) follow the groups' current lrs, so an lr set by hand can lead them below 0.
  for (size_t g = 0; g < lrs.size(); ++g)
    HG_CHECK(std::isfinite(lrs[g]) && lrs[g] >= 0.0,
             "{}: step {} gives parameter group {} the learning rate {} (its lr now {}); expected a finite lr >= 0",
             name_, last_epoch_, g, lrs[g], optimizer_.lr(g));
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
  last_lrs_ = std::move(lrs);
}

void LRScheduler::load_state(const SchedulerState& state) {
  size_t groups = optimizer_.num_param_groups();
  HG_CHECK(state.base_lrs.size() == groups && state.last_lrs.size() == groups,
           "{}.load_state: the state has {} base_lrs and {} last_lrs, the optimizer has {} parameter groups", name_,
           state.base_lrs.size(), state.last_lrs.size(), groups);
  HG_CHECK(state.last_epoch >= 0, "{}.load_state: last_epoch is {}, expected >= 0", name_, state.last_epoch);
  for (size_t g = 0; g < groups; ++g)
    HG_CHECK(state.base_lrs[g] >= 0 && state.last_lrs[g] >= 0,
             "{}.load_state: group {} has base lr {} and last lr {}, expected both >= 0", name_, g,
             state.base_lrs[g], state.last_lrs[g]);
  last_epoch_ = state.last_epoch;
  base_lrs_ = state.base_lrs;
  last_lrs_ = state.last_lrs;
  // The optimizer takes the lrs the schedule had reached, whichever was restored first: a scheduler built after
  // the optimizer's state was loaded has set its step-0 lrs (0 during a warm-up) over the loaded ones.
  for (size_t g = 0; g < groups; ++g) optimizer_.set_lr(g, last_lrs_[g]);
}

namespace {
std::vector<double> current_lrs(const Optimizer& optimizer) {
  std::vector<double> lrs;
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) lrs.push_back(optimizer.lr(g));
  return lrs;
}
void check_gamma(const char* scheduler, double gamma) {
  HG_CHECK(gamma > 0.0 && std::isfinite(gamma), "{}: gamma must be positive and finite, got {}", scheduler, gamma);
}
}  // namespace

// ---- StepLR ------------------------------------------------------------------------------------
StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  HG_CHECK(step_size > 0, "StepLR: step_size must be positive, got {}", step_size);
  check_gamma(name_, gamma);
  initialize();
}

// η_t = η_{t−1}·γ when t is a positive multiple of step_size, else η_{t−1}
std::vector<double> StepLR::compute_lrs() const {
  std::vector<double> lrs = current_lrs(optimizer_);
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

// ---- ExponentialLR -----------------------------------------------------------------------------
ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma) : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  check_gamma(name_, gamma);
  initialize();
}

// η_t = η_{t−1}·γ
std::vector<double> ExponentialLR::compute_lrs() const {
  std::vector<double> lrs = current_lrs(optimizer_);
  if (last_epoch_ == 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

// ---- CosineAnnealingLR -------------------------------------------------------------------------
CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
  HG_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be positive, got {}", T_max);
  HG_CHECK(eta_min >= 0.0, "CosineAnnealingLR: eta_min must be >= 0, got {}", eta_min);
  initialize();
}

std::vector<double> CosineAnnealingLR::compute_lrs() const {
  std::vector<double> lrs = current_lrs(optimizer_);
  if (last_epoch_ == 0) return lrs;
  const double pi = std::numbers::pi, T = static_cast<double>(T_max_), t = static_cast<double>(last_epoch_);
  if ((last_epoch_ - 1 - T_max_) % (2 * T_max_) == 0) {
    // t − 1 is an odd multiple of T_max: the previous lr sat at η_min, where the ratio below is 0/0;
    // η_t = η_{t−1} + (η₀ − η_min)·(1 − cos(π/T))/2
    for (size_t g = 0; g < lrs.size(); ++g) lrs[g] += (base_lrs_[g] - eta_min_) * (1.0 - std::cos(pi / T)) / 2.0;
    return lrs;
  }
  // η_t = η_min + (η_{t−1} − η_min)·(1 + cos(πt/T)) / (1 + cos(π(t−1)/T))
  const double ratio = (1.0 + std::cos(pi * t / T)) / (1.0 + std::cos(pi * (t - 1.0) / T));
  for (double& lr : lrs) lr = ratio * (lr - eta_min_) + eta_min_;
  return lrs;
}

// ---- LinearWarmupCosine ------------------------------------------------------------------------
LinearWarmupCosine::LinearWarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr)
    : LRScheduler(optimizer, "LinearWarmupCosine"),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  HG_CHECK(warmup_steps >= 0 && total_steps >= warmup_steps,
           "LinearWarmupCosine: expected 0 <= warmup_steps <= total_steps, got warmup_steps {} and total_steps {}",
           warmup_steps, total_steps);
  HG_CHECK(min_lr >= 0.0, "LinearWarmupCosine: min_lr must be >= 0, got {}", min_lr);
  initialize();
}

std::vector<double> LinearWarmupCosine::compute_lrs() const {
  std::vector<double> lrs(base_lrs_.size());
  const double t = static_cast<double>(last_epoch_);
  for (size_t g = 0; g < lrs.size(); ++g) {
    if (last_epoch_ < warmup_steps_) {
      lrs[g] = base_lrs_[g] * t / static_cast<double>(warmup_steps_);  // η₀·t/warmup
      continue;
    }
    // p = min(1, (t − warmup)/max(1, total − warmup));  η = min_lr + (η₀ − min_lr)·(1 + cos(πp))/2
    const double progress = std::min(
        1.0, (t - static_cast<double>(warmup_steps_)) / static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_)));
    lrs[g] = min_lr_ + (base_lrs_[g] - min_lr_) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  }
  return lrs;
}

}  // namespace hg::optim
