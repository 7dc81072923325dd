#pragma once
// Files an example program keeps beside its logs so that a run can be continued and its results read back:
// the settings a resumed run must share with the run it continues, and the printed result table as CSV
// (scripts/make_results.py reads it).
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/nn/serialize/checkpoint.h>

namespace hg::train {

class CsvLog;

/// A fresh run (`resume` false) records `config` (the settings, e.g. as JSON) in `path`; a resumed run must find
/// the same text there, so that the logs and checkpoints it continues belong to the same experiment. Throws
/// hg::Error naming `program`, the file, and both settings when they differ, or when a resume finds no file.
void check_resume_config(std::string_view program, const std::filesystem::path& path, const std::string& config,
                         bool resume);

/// Writes `rows` (the first one the header) as CSV (RFC 4180 quoting) to `path` atomically: a reader sees the
/// old file or the whole new one. Throws hg::Error naming `program` and the file on an I/O error.
void write_results_csv(std::string_view program, const std::filesystem::path& path,
                       const std::vector<std::vector<std::string>>& rows);

/// Resumes one run of a log that holds several runs one after another (their rows told apart by columns such as
/// the configuration and seed): `logged` are the row indices of this run's epochs. Its checkpoint, when it exists,
/// is loaded into `module` and `optimizer`, and must carry `config` and an epoch no later than the log's. Rows
/// logged after the checkpoint's epoch — a run killed between an epoch's log row and its checkpoint; they must be
/// the log's last — are dropped from the log. Returns the checkpoint's state; its epoch (0 without a checkpoint)
/// is where the run continues. Errors name `program` and the files.
serialize::TrainingState resume_logged_run(std::string_view program, CsvLog& log, const std::vector<size_t>& logged,
                                           const std::filesystem::path& checkpoint, const std::string& config,
                                           nn::Module& module, optim::Optimizer* optimizer);

}  // namespace hg::train
