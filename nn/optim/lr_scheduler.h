#pragma once
// Learning-rate schedulers (torch.optim.lr_scheduler, PyTorch 1.13): each keeps its own step count and sets
// the learning rate of every parameter group of an optimizer. Construction applies step 0; call step() once
// per epoch (or per iteration, for schedules counted in iterations) after optimizer.step().
//
//   hg::optim::SGD opt(params, hg::optim::SGDOptions(0.1).momentum(0.9));
//   hg::optim::CosineAnnealingLR schedule(opt, /*T_max=*/epochs);
//   for (int epoch = 0; epoch < epochs; ++epoch) { train_one_epoch(opt); schedule.step(); }
//
// StepLR, ExponentialLR and CosineAnnealingLR use PyTorch's recursive ("chainable") form: each step updates
// the group's current lr, so a change made to the lr between steps carries on. LinearWarmupCosine is a closed
// form of the step count. A scheduler keeps a reference to its optimizer, which must outlive it. To resume,
// restore the optimizer's state_dict (it holds the current lrs) and the scheduler's state().
#include <map>
#include <string>
#include <vector>

#include <hopgrad/nn/optim/optimizer.h>

namespace hg::optim {

/// What a scheduler needs to continue where it stopped.
struct SchedulerState {
  int64_t last_epoch = 0;         ///< steps taken (0 right after construction)
  std::vector<double> base_lrs;   ///< each group's lr when the scheduler was made
  std::vector<double> last_lrs;   ///< the lrs the scheduler set last

  /// Flat keys for checkpoint metadata: last_epoch, base_lrs.<g>, last_lrs.<g>.
  std::map<std::string, double> to_map() const;
  /// The inverse of to_map(); throws naming the first missing, malformed or unexpected key.
  static SchedulerState from_map(const std::map<std::string, double>& map);
};

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one step and sets every group's lr.
  void step();
  /// Steps taken since construction.
  int64_t last_epoch() const { return last_epoch_; }
  /// The lr of each group as this scheduler last set it (torch's get_last_lr()).
  const std::vector<double>& get_last_lr() const { return last_lrs_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  SchedulerState state() const { return {last_epoch_, base_lrs_, last_lrs_}; }
  /// Restores a state taken from a scheduler over an optimizer with as many groups, and sets each group's lr to
  /// the state's last lr (so the order of restoring the optimizer and the scheduler does not matter).
  void load_state(const SchedulerState& state);

 protected:
  LRScheduler(Optimizer& optimizer, const char* name);
  /// Sets the lrs for step 0; each scheduler's constructor calls it last, once its own fields are set.
  void initialize();
  /// The lr of each group at step last_epoch_ (torch's get_lr()); may read the groups' current lrs.
  virtual std::vector<double> compute_lrs() const = 0;

  Optimizer& optimizer_;
  const char* name_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lrs_;
  int64_t last_epoch_ = -1;

 private:
  void apply();
};

/// Multiplies the lr by gamma every step_size steps: η_t = η₀ · γ^⌊t / step_size⌋.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 private:
  std::vector<double> compute_lrs() const override;
  int64_t step_size_;
  double gamma_;
};

/// Multiplies the lr by gamma every step: η_t = η₀ · γᵗ.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 private:
  std::vector<double> compute_lrs() const override;
  double gamma_;
};

/// Cosine annealing from the base lr to eta_min over T_max steps (SGDR without restarts):
///   η_t = η_min + (η₀ − η_min) · (1 + cos(π t / T_max)) / 2,
/// computed recursively as PyTorch does, η_t = η_min + (η_{t−1} − η_min)·(1 + cos(πt/T))/(1 + cos(π(t−1)/T)),
/// so past T_max the lr rises again along the same cosine (period 2·T_max), exactly as in PyTorch.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);

 private:
  std::vector<double> compute_lrs() const override;
  int64_t T_max_;
  double eta_min_;
};

/// Linear warm-up, then cosine decay to min_lr, counted in steps t (the convention of Hugging Face's
/// get_cosine_schedule_with_warmup, with a floor):
///   t < warmup_steps:  η_t = η₀ · t / warmup_steps                               (starts at 0)
///   otherwise:         η_t = min_lr + (η₀ − min_lr) · (1 + cos(π · p)) / 2,
///                      p = min(1, (t − warmup_steps) / max(1, total_steps − warmup_steps))
/// so the lr reaches η₀ at t = warmup_steps, min_lr at t = total_steps, and stays there afterwards.
class LinearWarmupCosine : public LRScheduler {
 public:
  LinearWarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps, double min_lr = 0.0);

 private:
  std::vector<double> compute_lrs() const override;
  int64_t warmup_steps_;
  int64_t total_steps_;
  double min_lr_;
};

}  // namespace hg::optim
