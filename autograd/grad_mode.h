#pragma once
// Grad mode: whether ops record the graph. Thread-local, like torch::NoGradGuard.
//
//   { hg::NoGradGuard no_grad; auto y = model(x); }   // no graph is built inside the scope
namespace hg {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

/// Disables graph recording for its scope (restores the previous mode on exit).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Sets grad mode to `enabled` for its scope.
class AutoGradMode {
 public:
  explicit AutoGradMode(bool enabled) : previous_(GradMode::is_enabled()) { GradMode::set_enabled(enabled); }
  ~AutoGradMode() { GradMode::set_enabled(previous_); }
  AutoGradMode(const AutoGradMode&) = delete;
  AutoGradMode& operator=(const AutoGradMode&) = delete;

 private:
  bool previous_;
};

}  // namespace hg
