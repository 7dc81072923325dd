#include <hopgrad/nn/train/csv_log.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <hopgrad/core/error.h>
#include <hopgrad/nn/serialize/atomic_file.h>

namespace hg::train {
namespace fs = std::filesystem;

namespace {

std::vector<std::string_view> split_commas(std::string_view line) {
  std::vector<std::string_view> fields;
  for (size_t begin = 0;;) {
    size_t end = line.find(',', begin);
    fields.push_back(line.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) return fields;
    begin = end + 1;
  }
}

// A field as written by write(): a number, "nan", "inf" or "-inf".
bool parse_number(std::string_view field, double& value) {
  if (field == "nan" || field == "-nan") return value = std::numeric_limits<double>::quiet_NaN(), true;
  if (field == "inf") return value = std::numeric_limits<double>::infinity(), true;
  if (field == "-inf") return value = -std::numeric_limits<double>::infinity(), true;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  return ec == std::errc() && end == field.data() + field.size() && !field.empty();
}

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::trunc(v) && std::abs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);  // shortest round-trip representation
}

std::string format_row(std::span<const double> row) {
  std::string text;
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) text += ',';
    text += format_number(row[i]);
  }
  return text;
}

}  // namespace

CsvLog::CsvLog(fs::path path, std::vector<std::string> columns, bool append)
    : path_(std::move(path)), columns_(std::move(columns)) {
  HG_CHECK(!columns_.empty(), "CsvLog {}: no columns; expected at least one metric name", path_.string());
  std::set<std::string_view> seen;
  for (const std::string& name : columns_) {
    HG_CHECK(!name.empty() && name.find_first_of(",\"\r\n") == std::string::npos,
             "CsvLog {}: column name '{}' is empty or holds a comma, quote or line break", path_.string(), name);
    HG_CHECK(seen.insert(name).second, "CsvLog {}: column '{}' appears twice", path_.string(), name);
  }
  std::error_code ec;
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path(), ec);
  // An empty file (a run stopped before its header reached the disk) is started afresh.
  const bool resume = append && fs::exists(path_, ec) && fs::file_size(path_, ec) > 0;
  if (resume) read_existing();
  file_.open(path_, resume ? std::ios::app : std::ios::trunc);
  HG_CHECK(file_.is_open(), "CsvLog: cannot open {} for writing", path_.string());
  if (!resume) {
    file_ << fmt::format("{}\n", fmt::join(columns_, ","));
    file_.flush();
    HG_CHECK(file_.good(), "CsvLog: writing the header of {} failed", path_.string());
  }
}

void CsvLog::read_existing() {
  std::ifstream in(path_);
  HG_CHECK(in.is_open(), "CsvLog: cannot read {} to append to it", path_.string());
  std::string line;
  const std::string expected = fmt::format("{}", fmt::join(columns_, ","));
  HG_CHECK(std::getline(in, line) && line == expected,
           "CsvLog {}: line 1 is the header '{}'; expected '{}' to append to it (a log of another run?)",
           path_.string(), line, expected);
  for (size_t line_number = 2; std::getline(in, line); ++line_number) {
    HG_CHECK(!in.eof(), "CsvLog {}: line {} has no line end (a row cut short?): '{}'", path_.string(), line_number,
             line);
    std::vector<std::string_view> fields = split_commas(line);
    HG_CHECK(fields.size() == columns_.size(), "CsvLog {}: line {} has {} fields; expected {} ({})", path_.string(),
             line_number, fields.size(), columns_.size(), expected);
    std::vector<double> row(fields.size());
    for (size_t i = 0; i < fields.size(); ++i)
      HG_CHECK(parse_number(fields[i], row[i]), "CsvLog {}: line {}, column '{}': '{}' is not a number",
               path_.string(), line_number, columns_[i], fields[i]);
    rows_.push_back(std::move(row));
  }
}

void CsvLog::write(std::span<const double> row) {
  HG_CHECK(row.size() == columns_.size(), "CsvLog {}: a row of {} values; expected {}, one per column ({})",
           path_.string(), row.size(), columns_.size(), fmt::join(columns_, ","));
  const std::string text = format_row(row);
  file_ << text << '\n';
  file_.flush();
  HG_CHECK(file_.good(), "CsvLog: writing a row to {} failed", path_.string());
  rows_.emplace_back(row.begin(), row.end());
}

void CsvLog::drop_last(size_t n) {
  HG_CHECK(n <= rows_.size(), "CsvLog {}: cannot drop the last {} rows of {}", path_.string(), n, rows_.size());
  if (n == 0) return;
  rows_.resize(rows_.size() - n);
  file_.close();
  std::string text = fmt::format("{}\n", fmt::join(columns_, ","));
  for (const auto& row : rows_) text += format_row(row) + '\n';
  serialize::AtomicFile out(path_);  // killed halfway, the file still holds every row it had
  out.write(text.data(), text.size());
  out.commit();
  file_.open(path_, std::ios::app);
  HG_CHECK(file_.is_open(), "CsvLog: cannot open {} for writing", path_.string());
}

std::vector<double> CsvLog::column(std::string_view name) const {
  auto it = std::find(columns_.begin(), columns_.end(), name);
  HG_CHECK(it != columns_.end(), "CsvLog {}: no column '{}'; the columns are {}", path_.string(), name,
           fmt::join(columns_, ","));
  size_t index = static_cast<size_t>(it - columns_.begin());
  std::vector<double> values;
  values.reserve(rows_.size());
  for (const auto& row : rows_) values.push_back(row[index]);
  return values;
}

size_t rows_ahead_of_checkpoint(const CsvLog& log, const std::vector<size_t>& run_rows, size_t checkpoint_epoch,
                                const std::filesystem::path& checkpoint, std::string_view program) {
  if (run_rows.size() <= checkpoint_epoch) return 0;
  const size_t ahead = run_rows.size() - checkpoint_epoch;
  for (size_t j = 0; j < ahead; ++j)
    HG_CHECK(run_rows[checkpoint_epoch + j] == log.rows() - ahead + j,
             "{}: --resume: {} has {} epochs of this run but its checkpoint {} {}, and the rows after it are not the "
             "log's last (the checkpoint of a finished part of the run is missing?)",
             program, log.path().string(), run_rows.size(), checkpoint.string(),
             checkpoint_epoch > 0 ? fmt::format("is at epoch {}", checkpoint_epoch) : std::string("does not exist"));
  return ahead;
}

}  // namespace hg::train
