#pragma once
// A one-line progress bar for an epoch, with the running (mean) loss and an ETA, redrawn in place on a terminal;
// elsewhere (a pipe, a log file, --no-progress) nothing is drawn and only the summary line is printed.
//
//   hg::train::ProgressBar bar(fmt::format("epoch {}/{}", epoch, epochs), num_batches, flags.show_progress());
//   for (...) { ...; bar.update(loss.item<float>(), batch_size); }
//   bar.finish(fmt::format("epoch {}: loss {:.4f}  val accuracy {:.2f}%", epoch, bar.mean_loss(), 100 * acc));
//
//   epoch 3/10 [==========>          ]  120/235  loss 0.2345  41.2 it/s  ETA 0:03
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace hg::train {

/// True when stdout is a terminal (isatty), i.e. when a bar redrawn with '\r' is readable.
bool stdout_is_terminal();

/// "0:07", "12:34", "1:02:03" (h:mm:ss once past an hour); "?" for a negative, non-finite or absurd time.
std::string format_duration(double seconds);

/// The bar's text for `done` of `total` steps after `elapsed` seconds (ETA from the mean step time so far),
/// with the mean loss when loss_count > 0 (pure, for tests).
std::string render_progress(std::string_view label, int64_t done, int64_t total, double mean_loss,
                            int64_t loss_count, double elapsed);

class ProgressBar {
 public:
  /// `total` steps under `label`; drawn on `out` only when `enabled` (pass flags.show_progress()).
  ProgressBar(std::string label, int64_t total, bool enabled, std::FILE* out = stdout);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// One step done with this batch's mean `loss` over `samples` samples (the running loss is their weighted
  /// mean, the epoch loss in the usual sense). Redraws at most ten times a second, and at the last step.
  void update(double loss, int64_t samples = 1);
  /// One step done without a loss (evaluation passes).
  void advance();

  /// Mean loss over the samples so far (NaN before any).
  double mean_loss() const;
  int64_t steps() const { return done_; }
  double elapsed_seconds() const;

  /// Erases the bar (when drawn) and prints `summary` on a line of its own. Called once; later calls and the
  /// destructor do nothing more.
  void finish(std::string_view summary);

 private:
  void draw(bool force);

  std::string label_;
  int64_t total_;
  bool enabled_;
  std::FILE* out_;
  int64_t done_ = 0;
  double loss_sum_ = 0;  // Σ loss·samples
  int64_t loss_count_ = 0;
  bool drawn_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace hg::train
