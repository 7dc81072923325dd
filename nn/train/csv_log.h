#pragma once
// Per-epoch CSV logs: a header from the metric names, one row per epoch, flushed as soon as it is written (a
// killed run keeps every finished epoch), and appended to when a run resumes. The rows stay readable in memory
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

}  // namespace hg::train
