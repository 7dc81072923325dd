// DeepRC repertoire datasets (see deeprc.h).
#include <hopgrad/nn/data/deeprc.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <hopgrad/nn/data/bytes.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

// A TSV, or a gzipped one (repertoires are often shipped as .tsv.gz): line numbers in errors are then lines of
// the decompressed text.
std::string read_text_file(const std::filesystem::path& path) {
  const detail::Bytes bytes = detail::read_maybe_gzipped_file(path);
  return std::string(bytes.begin(), bytes.end());
}

// Amino-acid letter → one-hot channel, −1 for every other byte.
constexpr std::array<int8_t, 256> kAminoAcidIndex = [] {
  std::array<int8_t, 256> table{};
  table.fill(-1);
  for (size_t i = 0; i < kAminoAcids.size(); ++i) table[static_cast<uint8_t>(kAminoAcids[i])] = static_cast<int8_t>(i);
  return table;
}();

bool in_alphabet(std::string_view sequence) {
  return !sequence.empty() && std::all_of(sequence.begin(), sequence.end(), [](char c) {
    return kAminoAcidIndex[static_cast<uint8_t>(c)] >= 0;
  });
}

}  // namespace

// ---- TSV ---------------------------------------------------------------------------------------

int64_t TsvTable::column_index(std::string_view name) const {
  const auto it = std::find(columns.begin(), columns.end(), name);
  HG_CHECK(it != columns.end(), "{}: line 1: no column '{}' in the header (columns: {})", source, name,
           fmt::join(columns, ", "));
  return it - columns.begin();
}

std::vector<std::string> TsvTable::column(std::string_view name) const {
  const int64_t c = column_index(name);
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& row : rows) out.push_back(row[c]);
  return out;
}

TsvTable parse_tsv(std::string_view text, std::string_view source) {
  TsvTable table;
  table.source = source;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte-order mark
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<std::string> fields;
    for (size_t start = 0;;) {
      const size_t tab = line.find('\t', start);
      fields.emplace_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (table.columns.empty()) {
      std::set<std::string> seen;
      for (const auto& name : fields) {
        HG_CHECK(seen.insert(name).second, "{}: line {}: the header names column '{}' twice", source, line_number,
                 name);
      }
      table.columns = std::move(fields);
      continue;
    }
    HG_CHECK(fields.size() == table.columns.size(), "{}: line {}: {} tab-separated fields, expected {} (the header's {})",
             source, line_number, fields.size(), table.columns.size(), fmt::join(table.columns, ", "));
    table.rows.push_back(std::move(fields));
    table.row_lines.push_back(line_number);
  }
  HG_CHECK(!table.columns.empty(), "{}: line 1: empty file, expected a header row of tab-separated column names",
           source);
  return table;
}

TsvTable read_tsv(const std::filesystem::path& path) { return parse_tsv(read_text_file(path), path.string()); }

// ---- repertoires -------------------------------------------------------------------------------

int64_t Repertoire::max_length() const {
  size_t longest = 0;
  for (const auto& s : sequences) longest = std::max(longest, s.size());
  return static_cast<int64_t>(longest);
}

Repertoire parse_repertoire(std::string_view text, std::string_view source, const DeepRCOptions& options) {
  const TsvTable table = parse_tsv(text, source);
  const int64_t seq_col = table.column_index(options.sequence_column_);
  const int64_t count_col = options.count_column_.empty() ? -1 : table.column_index(options.count_column_);
  Repertoire rep;
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const std::string& sequence = table.rows[r][seq_col];
    if (!in_alphabet(sequence)) {
      ++rep.filtered;
      continue;
    }
    int64_t count = 1;
    if (count_col >= 0) {
      const std::string& field = table.rows[r][count_col];
      const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), count);
      HG_CHECK(ec == std::errc() && end == field.data() + field.size() && count >= 0,
               "{}: line {}: column '{}' is '{}', expected a non-negative integer count", source, table.row_lines[r],
               options.count_column_, field);
    }
    rep.sequences.push_back(sequence);
    rep.counts.push_back(count);
  }
  return rep;
}

Repertoire read_repertoire(const std::filesystem::path& path, const DeepRCOptions& options) {
  Repertoire rep = parse_repertoire(read_text_file(path), path.string(), options);
  rep.id = path.filename().string();
  return rep;
}

// ---- dataset -----------------------------------------------------------------------------------

int64_t DeepRCDataset::num_sequences() const {
  return std::accumulate(repertoires.begin(), repertoires.end(), int64_t{0},
                         [](int64_t n, const Repertoire& r) { return n + r.size(); });
}

Tensor DeepRCDataset::binary_targets(std::string_view column, std::string_view positive) const {
  std::vector<float> y;
  for (const auto& v : metadata.column(column)) y.push_back(v == positive ? 1.0f : 0.0f);
  return hg::from_vector(y, {static_cast<int64_t>(y.size())});
}

Tensor DeepRCDataset::regression_targets(std::string_view column) const {
  const std::vector<std::string> values = metadata.column(column);
  std::vector<float> y;
  for (size_t r = 0; r < values.size(); ++r) {
    double v = 0;
    const std::string& s = values[r];
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    HG_CHECK(ec == std::errc() && end == s.data() + s.size(), "{}: line {}: column '{}' is '{}', expected a number",
             metadata.source, metadata.row_lines[r], column, s);
    y.push_back(static_cast<float>(v));
  }
  return hg::from_vector(y, {static_cast<int64_t>(y.size())});
}

Tensor DeepRCDataset::class_targets(std::string_view column, std::vector<std::string>* classes) const {
  const std::vector<std::string> values = metadata.column(column);
  const std::set<std::string> distinct(values.begin(), values.end());
  const std::vector<std::string> sorted(distinct.begin(), distinct.end());
  std::vector<int64_t> y;
  for (const auto& v : values) y.push_back(std::lower_bound(sorted.begin(), sorted.end(), v) - sorted.begin());
  if (classes) *classes = sorted;
  return hg::from_vector(y, {static_cast<int64_t>(y.size())});
}

DeepRCDataset load_deeprc(const std::filesystem::path& root, const DeepRCOptions& options) {
  DeepRCDataset data;
  data.metadata = read_tsv(root / options.metadata_file_);
  const std::filesystem::path dir = root / options.repertoire_dir_;
  HG_CHECK(std::filesystem::is_directory(dir), "load_deeprc: {} is not a directory (expected the repertoire files there)",
           dir.string());
  // Every file below dir by name; a name found twice is only an error if the metadata asks for it.
  std::map<std::string, std::vector<std::filesystem::path>, std::less<>> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files[entry.path().filename().string()].push_back(entry.path());
  }
  const std::vector<std::string> ids = data.metadata.column(options.id_column_);
  std::set<std::string> seen;
  for (size_t r = 0; r < ids.size(); ++r) {
    const std::string& id = ids[r];
    const int64_t line = data.metadata.row_lines[r];
    HG_CHECK(seen.insert(id).second, "{}: line {}: repertoire ID '{}' appears twice", data.metadata.source, line, id);
    // The ID names the file, with or without ".tsv", and the file may be gzipped: "r", "r.tsv", "r.tsv.gz".
    auto it = files.find(id);
    if (it == files.end() && std::filesystem::path(id).extension().empty()) it = files.find(id + ".tsv");
    if (it == files.end()) it = files.find(id + ".gz");
    if (it == files.end() && std::filesystem::path(id).extension().empty()) it = files.find(id + ".tsv.gz");
    HG_CHECK(it != files.end(), "{}: line {}: no repertoire file '{}' below {}", data.metadata.source, line, id,
             dir.string());
    HG_CHECK(it->second.size() == 1, "{}: line {}: repertoire '{}' matches {} files below {} ({} and {})",
             data.metadata.source, line, id, it->second.size(), dir.string(), it->second[0].string(),
             it->second[1].string());
    Repertoire rep = read_repertoire(it->second[0], options);
    rep.id = id;
    data.repertoires.push_back(std::move(rep));
  }
  return data;
}

// ---- encoding (spec E.2) -----------------------------------------------------------------------

Tensor encode_repertoire(const Repertoire& repertoire, const RepertoireEncodingOptions& options) {
  const int64_t n = repertoire.size();
  const int64_t longest = repertoire.max_length();
  HG_CHECK(options.max_length_ == 0 || options.max_length_ >= longest,
           "encode_repertoire: max_length {} is shorter than the repertoire's longest sequence ({})",
           options.max_length_, longest);
  HG_CHECK(static_cast<int64_t>(repertoire.counts.size()) == n,
           "encode_repertoire: repertoire '{}' has {} sequences but {} counts", repertoire.id, n,
           repertoire.counts.size());
  const int64_t L = options.max_length_ > 0 ? options.max_length_ : longest;
  Tensor x = hg::zeros({n, L, kDeepRCFeatures}, kFloat32);
  float* out = x.data_ptr<float>();  // [n, L, 23]
  for (int64_t s = 0; s < n; ++s) {
    const std::string& sequence = repertoire.sequences[s];
    const auto len = static_cast<int64_t>(sequence.size());
    const float scale = options.counts_ == SequenceCountScaling::Log
                            ? static_cast<float>(std::log(static_cast<double>(std::max<int64_t>(repertoire.counts[s], 1))))
                            : 1.0f;
    const int64_t half = (len + 1) / 2;  // ⌈ℓ/2⌉
    for (int64_t i = 0; i < len; ++i) {
      float* f = out + (s * L + i) * kDeepRCFeatures;
      const int8_t aa = kAminoAcidIndex[static_cast<uint8_t>(sequence[i])];
      HG_CHECK(aa >= 0, "encode_repertoire: repertoire '{}' sequence {} has '{}' at position {}, outside {}",
               repertoire.id, s, sequence[i], i, kAminoAcids);
      f[aa] = scale;
      // lin = linspace(1, 0, ℓ): lin_i = 1 − i/(ℓ − 1), and lin = [1] when ℓ = 1.
      const double lin = len == 1 ? 1.0 : 1.0 - static_cast<double>(i) / static_cast<double>(len - 1);
      const auto p = static_cast<float>(std::abs(0.5 - lin) * 2.0);
      f[i < half ? 20 : 21] = p;
      f[22] = 1.0f - p;
    }
  }
  if (options.normalize_) divide_by_std(x);
  return x;
}

void divide_by_std(Tensor& x) {
  HG_CHECK(x.dtype() == kFloat32 && x.device().is_cpu() && x.is_contiguous(),
           "divide_by_std: expects a contiguous float32 CPU tensor, got {}", x.desc());
  const int64_t numel = x.numel();
  if (numel <= 1) return;
  float* out = x.data_ptr<float>();
  // Unbiased std over every element, padding included (torch.Tensor.std()), accumulated in double.
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t i = 0; i < numel; ++i) sum += out[i];
  const double mean = sum / static_cast<double>(numel);
  for (int64_t i = 0; i < numel; ++i) sum_sq += (out[i] - mean) * (out[i] - mean);
  const double std = std::sqrt(sum_sq / static_cast<double>(numel - 1));
  if (std > 0.0) {
    const auto inv = static_cast<float>(1.0 / std);
    for (int64_t i = 0; i < numel; ++i) out[i] *= inv;
  }
  x.bump_version();
}

}  // namespace hg::data
