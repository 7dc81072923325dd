#pragma once
// Files an example program keeps beside its logs so that a run can be continued and its results read back:
// the settings a resumed run must share with the run it continues, and the printed result table as CSV
// (scripts/make_results.py reads it).
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hg::train {

/// A fresh run (`resume` false) records `config` (the settings, e.g. as JSON) in `path`; a resumed run must find
/// the same text there, so that the logs and checkpoints it continues belong to the same experiment. Throws
/// hg::Error naming `program`, the file, and both settings when they differ, or when a resume finds no file.
void check_resume_config(std::string_view program, const std::filesystem::path& path, const std::string& config,
                         bool resume);

/// Writes `rows` (the first one the header) as CSV (RFC 4180 quoting) to `path` atomically: a reader sees the
/// old file or the whole new one. Throws hg::Error naming `program` and the file on an I/O error.
void write_results_csv(std::string_view program, const std::filesystem::path& path,
                       const std::vector<std::vector<std::string>>& rows);

}  // namespace hg::train
