#pragma once
// Timing for benchmarks on a shared, noisy machine: warm up, then time each candidate in turn, repeat by
// repeat, so a slow drift of the machine (another job starting) hits every candidate alike. Report the
// median (the typical cost) and the minimum (the cost with the least interference).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

namespace hgbench {

/// Seconds per call: median and minimum over the timed repeats.
struct Stats {
  double median = 0;
  double min = 0;
  int repeats = 0;
};

struct TimingPlan {
  int calls_per_repeat = 1;  ///< calls inside one timed repeat (many for µs-scale ops, so the clock is exact)
  int warmup_repeats = 2;    ///< untimed repeats first (allocator, primitive caches, thread pool start-up)
  int min_repeats = 10;
  int max_repeats = 200;
  double target_seconds = 0.3;  ///< more repeats than min_repeats while a candidate is this cheap
};

/// Times `candidates` (each runs `calls_per_repeat` calls) interleaved; returns per-call stats for each.
inline std::vector<Stats> time_interleaved(const std::vector<std::function<void()>>& candidates,
                                           const TimingPlan& plan) {
  using clock = std::chrono::steady_clock;
  auto seconds_of = [](const std::function<void()>& body) {
    auto start = clock::now();
    body();
    return std::chrono::duration<double>(clock::now() - start).count();
  };
  // The warm-up also estimates one round's cost, which sets the number of repeats.
  double round = 0;
  for (int w = 0; w < plan.warmup_repeats; ++w) {
    round = 0;
    for (const auto& body : candidates) round += seconds_of(body);
  }
  int repeats = plan.min_repeats;
  if (round > 0) {
    repeats = static_cast<int>(std::ceil(plan.target_seconds * candidates.size() / round));
    repeats = std::clamp(repeats, plan.min_repeats, plan.max_repeats);
  }
  std::vector<std::vector<double>> samples(candidates.size());
  for (int r = 0; r < repeats; ++r)
    for (size_t c = 0; c < candidates.size(); ++c) samples[c].push_back(seconds_of(candidates[c]));
  std::vector<Stats> stats;
  for (auto& s : samples) {
    std::sort(s.begin(), s.end());
    size_t n = s.size();
    double median = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    stats.push_back({median / plan.calls_per_repeat, s.front() / plan.calls_per_repeat, repeats});
  }
  return stats;
}

/// "[ 3/16] matmul n=1024, 2 threads" on stderr: rewritten in place on a terminal, one line each otherwise.
class Progress {
 public:
  explicit Progress(int total) : total_(total), tty_(isatty(fileno(stderr))) {}
  void step(const std::string& what) {
    ++done_;
    std::fprintf(stderr, tty_ ? "\r\033[K[%2d/%d] %s" : "[%2d/%d] %s\n", done_, total_, what.c_str());
    std::fflush(stderr);
  }
  void finish() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  int total_;
  int done_ = 0;
  bool tty_;
};

}  // namespace hgbench
