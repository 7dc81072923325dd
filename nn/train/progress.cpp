#include <hopgrad/nn/train/progress.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <unistd.h>

#include <fmt/format.h>

#include <hopgrad/core/error.h>

namespace hg::train {
namespace {

constexpr int kBarWidth = 24;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
// Back to the start of the line and erase it (ANSI "erase in line"), so a shorter redraw leaves no tail.
constexpr std::string_view kClearLine = "\r\x1b[K";

}  // namespace

bool stdout_is_terminal() { return ::isatty(::fileno(stdout)) == 1; }

std::string format_duration(double seconds) {
  if (!(seconds >= 0 && seconds < 1e15)) return "?";  // NaN, negative, or beyond int64 once rounded
  auto total = static_cast<int64_t>(std::llround(seconds));
  int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  return h > 0 ? fmt::format("{}:{:02}:{:02}", h, m, s) : fmt::format("{}:{:02}", m, s);
}

std::string render_progress(std::string_view label, int64_t done, int64_t total, double mean_loss,
                            int64_t loss_count, double elapsed) {
  const double fraction =
      total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 1.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kBarWidth) bar += '>';
  bar.resize(kBarWidth, ' ');
  const int digits = static_cast<int>(fmt::formatted_size("{}", total));
  std::string text = fmt::format("{} [{}] {:>{}}/{}", label, bar, done, digits, total);
  if (loss_count > 0) text += fmt::format("  loss {:.4f}", mean_loss);
  if (done > 0 && elapsed > 0) {
    text += fmt::format("  {:.1f} it/s", static_cast<double>(done) / elapsed);
    double remaining = elapsed / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(total - done, 0));
    text += "  ETA " + format_duration(remaining);
  } else {
    text += "  ETA ?";
  }
  return text;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, std::FILE* out)
    : label_(std::move(label)), total_(total), enabled_(enabled), out_(out),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  HG_CHECK(total >= 0, "ProgressBar: total of {} steps; expected ≥ 0", total);
  HG_CHECK(out != nullptr, "ProgressBar: no output stream");
  draw(true);
}

ProgressBar::~ProgressBar() {
  if (drawn_ && !finished_) {  // left without finish() (an exception): keep the last state on its own line
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

void ProgressBar::update(double loss, int64_t samples) {
  HG_CHECK(samples >= 0, "ProgressBar::update: {} samples; expected ≥ 0", samples);
  loss_sum_ += loss * static_cast<double>(samples);
  loss_count_ += samples;
  advance();
}

void ProgressBar::advance() {
  ++done_;
  draw(done_ == total_);
}

double ProgressBar::mean_loss() const {
  return loss_count_ > 0 ? loss_sum_ / static_cast<double>(loss_count_) : std::numeric_limits<double>::quiet_NaN();
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::draw(bool force) {
  if (!enabled_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  std::string line = render_progress(label_, done_, total_, mean_loss(), loss_count_, elapsed_seconds());
  fmt::print(out_, "{}{}", kClearLine, line);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish(std::string_view summary) {
  if (finished_) return;
  finished_ = true;
  if (drawn_) fmt::print(out_, "{}", kClearLine);
  fmt::print(out_, "{}\n", summary);
  std::fflush(out_);
}

}  // namespace hg::train
