#pragma once
// The flags every training program shares, through CLI11: typed, validated, with their defaults in --help.
//
//   #include <CLI/CLI.hpp>
//   #include <hopgrad/hopgrad.h>
//   hg::train::CommonFlags flags;                 // change the defaults before adding the flags:
//   flags.epochs = 20;  flags.lr = 1e-3;  flags.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
//   CLI::App app{"Train an MLP on MNIST"};
//   hg::train::add_common_flags(app, flags);      // --epochs --batch-size --lr --seed --device --threads
//   app.add_option("--hidden", hidden, "...");    //   --data-dir --out-dir --no-progress, then your own
//   CLI11_PARSE(app, argc, argv);
//   hg::Device device = hg::train::apply_common_flags(flags);   // threads, seed, out-dir; returns the device
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/device.h>

// Declared, not included: <CLI/CLI.hpp> takes seconds to compile, and the umbrella header <hopgrad/hopgrad.h>
// brings this file into every program. A program that parses flags includes <CLI/CLI.hpp> itself.
namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace hg::train {

/// The machine's hardware threads (at least 1): the default of --threads, as PyTorch uses every core.
int default_threads();

/// A validator for numbers in [lo, hi] that keeps --help's type column short (say the range in the option's
/// description): `app.add_option("--hidden", hidden, "hidden units (≥ 1)")->check(hg::train::in_range(1, 1e6))`.
CLI::Validator in_range(double lo, double hi);
/// A validator for numbers > 0 (CLI11 2.1's PositiveNumber also accepts 0).
CLI::Validator positive();

/// The shared flags; the values when add_common_flags is called are the defaults --help shows.
struct CommonFlags {
  int epochs = 10;                         ///< --epochs: passes over the training set
  int64_t batch_size = 64;                 ///< --batch-size: samples per optimizer step
  double lr = 1e-3;                        ///< --lr: (peak) learning rate
  uint64_t seed = 0;                       ///< --seed: data order, initialisation, dropout
  std::string device = "cpu";              ///< --device: cpu, cuda or cuda:N
  int threads = default_threads();         ///< --threads: CPU (OpenMP) threads
  std::filesystem::path data_dir;          ///< --data-dir: where the datasets are (see default_data_dir)
  std::filesystem::path out_dir = "runs";  ///< --out-dir: CSV log, plot and checkpoints go here
  bool progress = true;                    ///< false with --no-progress

  /// True when a progress bar should be drawn: progress is on and stdout is a terminal.
  bool show_progress() const;
};

/// The datasets folder: $HOPGRAD_DATA_DIR when set and not empty, else the first existing of
/// <source_dir>/../shared/data (when source_dir is given) and ../shared/data relative to the working directory; else
/// "../shared/data".
std::filesystem::path default_data_dir(const std::filesystem::path& source_dir = {});

/// The comma-separated names of a list flag ("softmax,topk" → {"softmax", "topk"}; empty items are skipped);
/// an hg::Error names `flag` when no name is left ("," or "").
std::vector<std::string> split_names(const std::string& text, std::string_view flag);

/// Whether a program may skip (exit 0, with a message) when its dataset is missing, rather than fail: only when the
/// data folder is the default one — neither --data-dir nor a non-empty $HOPGRAD_DATA_DIR named it — and nothing
/// asked for a result that needs the data (`result_asked_for`: a threshold such as --min-auc). What the test suite
/// relies on where the data is absent.
bool may_skip_missing_data(const CLI::App& app, bool result_asked_for = false);

/// Adds the common flags to `app`, with the current values of `flags` as defaults (an empty data_dir becomes
/// default_data_dir()). Also makes every option added to `app` afterwards show its default in --help.
void add_common_flags(CLI::App& app, CommonFlags& flags);

/// Applies the parsed flags: sets the OpenMP thread count and hg::manual_seed(seed), creates out_dir, and
/// returns the device (an hg::Error names a malformed or unavailable device).
Device apply_common_flags(const CommonFlags& flags);

/// "<program>: <message>" for `error`, naming the program once: a message that already starts with "<program>: "
/// (the program's own checks) is returned as it is.
std::string error_line(std::string_view program, const std::exception& error);

/// Prints error_line(program, error) and a newline to stderr: what an example's main does with an error.
void print_error(std::string_view program, const std::exception& error);

}  // namespace hg::train
