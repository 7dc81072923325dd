#pragma once
// DeepRC immune-repertoire datasets (Widrich et al., NeurIPS 2020) in their text form: `metadata.tsv` (an ID
// column naming each repertoire's file, plus target columns) and one TSV per repertoire with the columns
// `amino_acid` (CDR3 sequence) and `templates` (count). Rows whose sequence has a letter outside the 20 amino
// acids ACDEFGHIKLMNPQRSTVWY are dropped, as DeepRC does. `encode_repertoire` builds the 20 one-hot + 3
// position-feature input of DeepRC's sequence CNN.
//
//   auto data = hg::data::load_deeprc(data_dir / "deeprc_example");
//   hg::Tensor y = data.binary_targets("binary_target_1", "+");   // float32 [100]
//   hg::Tensor x = hg::data::encode_repertoire(data.repertoires[0]);  // float32 [n_seq, L_max, 23]
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::data {

/// DeepRC's amino-acid alphabet; a letter's index is its one-hot channel.
inline constexpr std::string_view kAminoAcids = "ACDEFGHIKLMNPQRSTVWY";
/// Input features per sequence position: 20 one-hot + 3 position features.
inline constexpr int64_t kDeepRCFeatures = 23;

/// A tab-separated table with a header row. Lines may end in LF or CRLF, the last newline is optional, blank
/// lines are skipped (as pandas does); fields are not quoted.
struct TsvTable {
  std::string source;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> row_lines;  ///< 1-based line number of each row, for errors

  /// Index of the column called `name`; throws naming the file and its columns when missing.
  int64_t column_index(std::string_view name) const;
  /// All values of one column.
  std::vector<std::string> column(std::string_view name) const;
};

/// Parses TSV text; errors name `source` and the line. Every row must have as many fields as the header.
TsvTable parse_tsv(std::string_view text, std::string_view source);
TsvTable read_tsv(const std::filesystem::path& path);

/// One repertoire (bag): its sequences over kAminoAcids and their counts.
struct Repertoire {
  std::string id;
  std::vector<std::string> sequences;
  std::vector<int64_t> counts;  ///< `templates`; 1 when the dataset has no count column
  int64_t filtered = 0;         ///< rows dropped: empty or with a letter outside kAminoAcids

  int64_t size() const { return static_cast<int64_t>(sequences.size()); }
  int64_t max_length() const;
};

struct DeepRCOptions {
  std::string metadata_file_ = "metadata.tsv";
  std::string repertoire_dir_ = "repertoires";  ///< searched recursively for each ID's file
  std::string id_column_ = "ID";                ///< "Subject ID" in the paper's datasets
  std::string sequence_column_ = "amino_acid";
  std::string count_column_ = "templates";      ///< empty: no count column, every count is 1
  DeepRCOptions& metadata_file(std::string v) { metadata_file_ = std::move(v); return *this; }
  DeepRCOptions& repertoire_dir(std::string v) { repertoire_dir_ = std::move(v); return *this; }
  DeepRCOptions& id_column(std::string v) { id_column_ = std::move(v); return *this; }
  DeepRCOptions& sequence_column(std::string v) { sequence_column_ = std::move(v); return *this; }
  DeepRCOptions& count_column(std::string v) { count_column_ = std::move(v); return *this; }
};

/// Parses one repertoire TSV; errors name `source` and the line.
Repertoire parse_repertoire(std::string_view text, std::string_view source, const DeepRCOptions& options = {});
Repertoire read_repertoire(const std::filesystem::path& path, const DeepRCOptions& options = {});

struct DeepRCDataset {
  TsvTable metadata;
  std::vector<Repertoire> repertoires;  ///< in metadata row order

  int64_t size() const { return static_cast<int64_t>(repertoires.size()); }
  int64_t num_sequences() const;  ///< after filtering
  /// float32 [R]: 1 where the metadata column equals `positive` (e.g. "+" or "True"), else 0.
  Tensor binary_targets(std::string_view column, std::string_view positive) const;
  /// float32 [R]: the column parsed as numbers (every value must parse).
  Tensor regression_targets(std::string_view column) const;
  /// int64 [R]: index of each value among the column's distinct values sorted ascending (returned in `classes`
  /// when given).
  Tensor class_targets(std::string_view column, std::vector<std::string>* classes = nullptr) const;
};

/// Reads `root`/metadata.tsv and every repertoire it lists (an ID is a file name, found anywhere below
/// `root`/repertoires; "<ID>.tsv" is tried when the ID has no extension, then "<ID>.gz" and "<ID>.tsv.gz" for
/// gzipped files). IDs must be unique.
DeepRCDataset load_deeprc(const std::filesystem::path& root, const DeepRCOptions& options = {});

/// How sequence counts enter the encoding (spec E.2): ignored, or the one-hot part scaled by log(max(count, 1))
/// as DeepRC does for CMV (so a count of 1 zeroes the amino-acid channels).
enum class SequenceCountScaling { None, Log };

struct RepertoireEncodingOptions {
  SequenceCountScaling counts_ = SequenceCountScaling::None;
  int64_t max_length_ = 0;  ///< padded length; 0 = the repertoire's longest (collate_repertoires pads a minibatch)
  bool normalize_ = true;   ///< divide the whole tensor by its standard deviation (unbiased, padding included)
  RepertoireEncodingOptions& counts(SequenceCountScaling v) { counts_ = v; return *this; }
  RepertoireEncodingOptions& max_length(int64_t v) { max_length_ = v; return *this; }
  RepertoireEncodingOptions& normalize(bool v) { normalize_ = v; return *this; }
};

/// DeepRC's input (spec E.2), float32 [n_seq, L, 23]. For a sequence of length ℓ, position i:
/// channels 0..19 one-hot of the amino acid; with lin = linspace(1, 0, ℓ) and p_i = |0.5 − lin_i|·2,
/// channel 20 = p_i for i < ⌈ℓ/2⌉, channel 21 = p_i for i ≥ ⌈ℓ/2⌉, channel 22 = 1 − p_i; zeros beyond ℓ.
Tensor encode_repertoire(const Repertoire& repertoire, const RepertoireEncodingOptions& options = {});

/// Divides x (float32, on the CPU) in place by its unbiased standard deviation over every element (when not 0),
/// accumulated in double: the normalisation of encode_repertoire.
void divide_by_std(Tensor& x);

}  // namespace hg::data
