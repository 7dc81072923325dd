#include <hopgrad/nn/train/run_files.h>

#include <fstream>
#include <iterator>

#include <hopgrad/core/error.h>
#include <hopgrad/nn/serialize/atomic_file.h>
#include <hopgrad/nn/train/csv_log.h>

namespace hg::train {

namespace fs = std::filesystem;

void check_resume_config(std::string_view program, const fs::path& path, const std::string& config, bool resume) {
  if (resume && fs::exists(path)) {
    std::ifstream in(path);
    const std::string recorded((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    HG_CHECK(recorded == config, "{}: --resume: {} was written by a run with other settings:\n  recorded: {}\n  "
             "this run: {}", program, path.string(), recorded, config);
    return;
  }
  HG_CHECK(!resume, "{}: --resume: there is no {} (no run to continue in this --out-dir)", program, path.string());
  fs::create_directories(path.parent_path());
  // Atomically: a run killed while writing it must leave no file (the next run starts afresh) rather than an
  // empty or partial one that every later --resume would refuse as other settings.
  try {
    serialize::AtomicFile file(path);
    file.write(config.data(), config.size());
    file.commit();
  } catch (const Error& e) {
    HG_FAIL("{}: could not write {}: {}", program, path.string(), e.what());
  }
}

void write_results_csv(std::string_view program, const fs::path& path,
                       const std::vector<std::vector<std::string>>& rows) {
  auto quoted = [](const std::string& cell) {
    if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
    std::string out = "\"";
    for (char c : cell) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::string text;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) text += ',';
      text += quoted(row[i]);
    }
    text += '\n';
  }
  try {
    serialize::AtomicFile file(path);
    file.write(text.data(), text.size());
    file.commit();
  } catch (const Error& e) {
    HG_CHECK(false, "{}: could not write {}: {}", program, path.string(), e.what());
  }
}

serialize::TrainingState resume_logged_run(std::string_view program, CsvLog& log, const std::vector<size_t>& logged,
                                           const std::filesystem::path& checkpoint, const std::string& config,
                                           nn::Module& module, optim::Optimizer* optimizer) {
  serialize::TrainingState state;
  const bool saved = std::filesystem::exists(checkpoint);
  if (saved) state = serialize::load(checkpoint, module, optimizer);
  HG_CHECK(!saved || (state.config == config && state.epoch >= 0 && static_cast<size_t>(state.epoch) <= logged.size()),
           "{}: --resume: {} (epoch {}) does not continue the log's {} epochs of this run with these settings",
           program, checkpoint.string(), state.epoch, logged.size());
  const size_t saved_epoch = saved ? static_cast<size_t>(state.epoch) : 0;
  if (!saved) state.epoch = 0;
  log.drop_last(rows_ahead_of_checkpoint(log, logged, saved_epoch, checkpoint, program));
  return state;
}

}  // namespace hg::train
