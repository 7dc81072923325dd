#include <hopgrad/nn/train/flags.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <thread>

#include <omp.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/core/error.h>
#include <hopgrad/core/generator.h>
#include <hopgrad/nn/train/progress.h>

namespace hg::train {
namespace fs = std::filesystem;

namespace {

// A device spec hg::Device accepts ("cpu", "cuda", "cuda:1"); whether the device exists is checked on use.
const CLI::Validator kDevice(
    [](std::string& value) -> std::string {
      try {
        (void)Device(value);
        return "";
      } catch (const Error& e) {
        return e.what();
      }
    },
    "");

// An empty HOPGRAD_DATA_DIR (`export HOPGRAD_DATA_DIR=`) counts as unset, in default_data_dir and
// may_skip_missing_data alike: it names no folder.
const char* data_dir_from_env() {
  const char* env = std::getenv("HOPGRAD_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : nullptr;
}

}  // namespace

int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

// Bounds print as written ({:g}): CLI::Range's "%f" showed a lower bound of 1e-7 as 0.000000, so that "0 is not
// in range 0.000000 to 1.000000" read as a contradiction.
CLI::Validator in_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& value) -> std::string {
        double v = 0;
        return CLI::detail::lexical_cast(value, v) && v >= lo && v <= hi
                   ? ""
                   : fmt::format("must be a number in [{:g}, {:g}], got {}", lo, hi, value);
      },
      "");
}

CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double v = 0;
        return CLI::detail::lexical_cast(value, v) && v > 0 ? "" : "must be a number > 0, got " + value;
      },
      "");
}

std::vector<std::string> split_names(const std::string& text, std::string_view flag) {
  std::vector<std::string> names;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    if (end > begin) names.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  HG_CHECK(!names.empty(), "{}: expects at least one name, got '{}'", flag, text);
  return names;
}

bool may_skip_missing_data(const CLI::App& app, bool result_asked_for) {
  return app.count("--data-dir") == 0 && data_dir_from_env() == nullptr && !result_asked_for;
}

bool CommonFlags::show_progress() const { return progress && stdout_is_terminal(); }

fs::path default_data_dir(const fs::path& source_dir) {
  if (const char* env = data_dir_from_env()) return env;
  std::error_code ec;
  if (!source_dir.empty()) {
    fs::path candidate = source_dir / ".." / "shared" / "data";
    if (fs::is_directory(candidate, ec)) return candidate.lexically_normal();
  }
  return fs::path("..") / "shared" / "data";  // relative to the working directory, existing or not
}

void add_common_flags(CLI::App& app, CommonFlags& flags) {
  app.option_defaults()->always_capture_default();
  app.get_formatter()->column_width(34);
  if (flags.data_dir.empty()) flags.data_dir = default_data_dir();
  app.add_option("--epochs", flags.epochs, "passes over the training set (≥ 1)")
      ->type_name("N")
      ->check(in_range(1, 1e6));
  app.add_option("--batch-size", flags.batch_size, "samples per optimizer step (≥ 1)")
      ->type_name("N")
      ->check(in_range(1, 1 << 30));
  app.add_option("--lr", flags.lr, "learning rate (> 0)")->type_name("X")->check(positive());
  app.add_option("--seed", flags.seed, "seed for initialisation, data order and dropout")->type_name("N");
  app.add_option("--device", flags.device, "cpu, cuda or cuda:N")->type_name("DEVICE")->check(kDevice);
  app.add_option("--threads", flags.threads, "CPU threads (OpenMP)")->type_name("N")->check(in_range(1, 1024));
  app.add_option("--data-dir", flags.data_dir, "dataset folder ($HOPGRAD_DATA_DIR, else ../shared/data)")
      ->type_name("DIR");
  app.add_option("--out-dir", flags.out_dir, "folder for the CSV log, the SVG plot and checkpoints")
      ->type_name("DIR");
  app.add_flag_callback("--no-progress", [&flags] { flags.progress = false; },
                        "one line per epoch instead of a progress bar (also when stdout is not a terminal)");
}

Device apply_common_flags(const CommonFlags& flags) {
  omp_set_num_threads(flags.threads);
  manual_seed(flags.seed);
  std::error_code ec;
  fs::create_directories(flags.out_dir, ec);
  HG_CHECK(!ec && fs::is_directory(flags.out_dir), "--out-dir: cannot create the folder {}: {}",
           flags.out_dir.string(), ec ? ec.message() : "a file of that name exists");
  return Device(flags.device);
}

std::string error_line(std::string_view program, const std::exception& error) {
  const std::string_view message = error.what();
  const bool named = message.size() >= program.size() + 2 && message.substr(0, program.size()) == program &&
                     message.substr(program.size(), 2) == ": ";
  return named ? std::string(message) : fmt::format("{}: {}", program, message);
}

void print_error(std::string_view program, const std::exception& error) {
  fmt::print(stderr, "{}\n", error_line(program, error));
}

}  // namespace hg::train
