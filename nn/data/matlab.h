#pragma once
// A reader for MATLAB level-5 MAT-files (the format `save -v6/-v7` writes), for the subset that numeric datasets
// use: numeric arrays of every class (converted to double), sparse double/logical arrays (CSC), char arrays, and
// miCOMPRESSED (zlib) elements. Cell, struct, object and complex variables are listed with the reason they
// were not read; v7.3 files (HDF5) and big-endian files are rejected with a clear error.
//
//   auto mat = hg::data::read_mat("elephant_100x100_matlab.mat");
//   hg::Tensor features = mat.at("features").to_dense();  // float64 [1391, 230], row-major
//
// Why a custom reader rather than Debian's libmatio-dev (1.5.23): libmatio pulls in libhdf5-dev for v7.3
// support nobody here needs; its errors cannot say which byte of which file was wrong (a requirement for every
// reader in hopgrad); and it would put a C library with a long history of fuzzer-found memory-safety bugs in
// the path of untrusted input, where this reader is ~400 lines of bounds-checked C++ that our own libFuzzer
// target (tests/fuzz/fuzz_matlab.cpp) exercises. The MIL benchmarks need only the subset above.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::data {

/// MATLAB array classes (mxClassID) as stored in the array-flags subelement.
enum class MatClass : uint8_t {
  Cell = 1, Struct = 2, Object = 3, Char = 4, Sparse = 5, Double = 6, Single = 7,
  Int8 = 8, UInt8 = 9, Int16 = 10, UInt16 = 11, Int32 = 12, UInt32 = 13, Int64 = 14, UInt64 = 15,
};

/// "double", "sparse", "cell", …, or "class N" for an unknown id.
std::string mat_class_name(MatClass c);

/// One variable of a MAT-file. MATLAB arrays are column-major; `dims` are MATLAB's (rows first).
struct MatArray {
  std::string name;
  MatClass mat_class = MatClass::Double;
  std::vector<int64_t> dims;
  bool logical = false;
  /// Dense numeric arrays: all values in column-major order, converted to double whatever the storage type
  /// (MAT-files may store a double array as, e.g., miUINT8). Sparse arrays: the nnz nonzero values.
  std::vector<double> values;
  /// Sparse arrays (CSC): row index of each nonzero (nnz entries) and column starts (cols + 1 entries).
  std::vector<int64_t> row_indices;
  std::vector<int64_t> column_starts;
  /// Char arrays, as UTF-8 (column-major order, as MATLAB stores it).
  std::string text;
  /// Non-empty when the variable's data was not read (cell, struct, object, complex): says why.
  std::string unsupported;
  /// The file it was read from (parse_mat's `source`), named in to_dense's errors; empty for a hand-made array.
  std::string source;
  static constexpr int64_t kMinDenseLimit = int64_t{1} << 24;  ///< 16 Mi elements: 128 MiB as float64
  static constexpr int64_t kDenseElementsPerFileByte = 256;
  /// The most elements to_dense makes of a sparse array. A sparse array's dense size is unrelated to its file's
  /// size (a 400-byte file can declare 2^31 × 2^31), so parse_mat sets max(kMinDenseLimit, 256 × the file's bytes):
  /// real sparse data stays far below 256 entries per stored byte.
  int64_t max_dense_elements = kMinDenseLimit;

  bool is_sparse() const { return mat_class == MatClass::Sparse; }
  bool is_char() const { return mat_class == MatClass::Char; }
  /// Dense numeric (double, single or an integer class).
  bool is_numeric() const { return mat_class >= MatClass::Double && mat_class <= MatClass::UInt64; }
  int64_t rows() const { return dims.empty() ? 0 : dims[0]; }
  int64_t cols() const;  ///< product of the dims after the first
  int64_t numel() const;
  /// Number of stored nonzeros of a sparse array: column_starts[cols], which may be below the header's nzmax.
  int64_t nnz() const { return column_starts.empty() ? 0 : column_starts.back(); }
  /// A 2-D numeric or sparse array as a row-major [rows, cols] tensor (float64 or float32). A sparse array of more
  /// than max_dense_elements entries throws naming the file, the variable and its dims.
  Tensor to_dense(DType dtype = kFloat64) const;
};

struct MatFile {
  std::string source;       ///< the path or name used in errors
  std::string header_text;  ///< the header's descriptive text, trailing spaces trimmed
  std::vector<MatArray> arrays;

  bool contains(std::string_view name) const;
  /// The variable called `name`; throws naming the file and the variables it has when missing or unsupported.
  const MatArray& at(std::string_view name) const;
};

/// Parses a level-5 MAT-file held in memory; `source` names it in errors, which give the byte offset (inside a
/// compressed element: the element's file offset and the offset in its decompressed stream).
MatFile parse_mat(std::span<const uint8_t> bytes, std::string_view source);
/// Reads a level-5 MAT-file from disk.
MatFile read_mat(const std::filesystem::path& path);

}  // namespace hg::data
