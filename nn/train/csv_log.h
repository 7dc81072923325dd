#pragma once
// Per-epoch CSV logs: a header from the metric names, one row per epoch, flushed as soon as it is written (a
// killed run keeps every finished epoch), and appended to when a run resumes (rows logged after the checkpoint
// the run resumes from are dropped first: drop_last). The rows stay readable in memory
// (column("val_loss")), so the plot of a resumed run shows every epoch.
//
//   hg::train::CsvLog log(out_dir / "log.csv", {"epoch", "train_loss", "val_loss", "val_accuracy"}, resume);
//   log.write({epoch, train_loss, val_loss, val_accuracy});
//
//   epoch,train_loss,val_loss,val_accuracy
//   1,0.4123,0.2511,0.9275
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hg::train {

class CsvLog {
 public:
  /// Starts `path` afresh with the header `columns` (replacing any file there), or, with append = true and an
  /// existing non-empty file, reads its rows and continues it; its header must then be `columns` exactly.
  /// Creates the parent folder. Column names must be non-empty, unique, and free of commas, quotes and line
  /// breaks.
  CsvLog(std::filesystem::path path, std::vector<std::string> columns, bool append = false);

  /// Appends one row (one value per column, in order) and flushes it to disk. Whole numbers print without a
  /// decimal point ("12"), others with the shortest text that reads back exactly; NaN as "nan".
  void write(std::span<const double> row);
  void write(std::initializer_list<double> row) { write(std::span<const double>(row.begin(), row.size())); }

  /// Drops the last n rows, in memory and on disk (the file is rewritten atomically). A run killed after logging
  /// an epoch but before saving that epoch's checkpoint has a log one row ahead of its checkpoint; on resume those
  /// rows go, and the epochs run again.
  void drop_last(size_t n);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }
  /// Rows written so far, including those read back from an appended file.
  size_t rows() const { return rows_.size(); }
  /// Every value of column `name`, oldest first (an hg::Error names an unknown column).
  std::vector<double> column(std::string_view name) const;

 private:
  void read_existing();

  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<double>> rows_;
  std::ofstream file_;
};

/// For a log that holds several runs one after another: how many of one run's rows (`run_rows`, its row indices,
/// oldest first) come after its checkpoint's epoch `checkpoint_epoch` — rows to drop_last() before resuming it.
/// Throws (naming `program` and `checkpoint`) when those rows are not the log's last ones: only the run in progress
/// can be ahead of its checkpoint.
size_t rows_ahead_of_checkpoint(const CsvLog& log, const std::vector<size_t>& run_rows, size_t checkpoint_epoch,
                                const std::filesystem::path& checkpoint, std::string_view program);

}  // namespace hg::train
