// MAT-file level 5 reader (see matlab.h). Format: MathWorks, "MAT-File Format" (matfile_format.pdf), ch. 1.
// A file is a 128-byte header then data elements; an element is a tag (uint32 type, uint32 nbytes) and its data
// padded to 8 bytes, or a "small" element whose tag packs nbytes (≤ 4) into the type word's high half and
// whose data fills the tag's second word. miMATRIX elements nest: flags, dims, name, then the array's data.
#include <hopgrad/nn/data/matlab.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include <hopgrad/nn/data/bytes.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

using detail::ByteCursor;
using detail::ByteSpan;

// Data element types (miINT8 …).
enum : uint32_t {
  miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9,
  miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15, miUTF8 = 16, miUTF16 = 17, miUTF32 = 18,
};

constexpr uint32_t kFlagComplex = 0x800;
constexpr uint32_t kFlagLogical = 0x200;
// A dense array this large could not be backed by any file it came from; the bound keeps products of dims
// from overflowing.
constexpr int64_t kMaxElements = int64_t{1} << 48;

std::string type_name(uint32_t type) {
  switch (type) {
    case miINT8: return "miINT8";
    case miUINT8: return "miUINT8";
    case miINT16: return "miINT16";
    case miUINT16: return "miUINT16";
    case miINT32: return "miINT32";
    case miUINT32: return "miUINT32";
    case miSINGLE: return "miSINGLE";
    case miDOUBLE: return "miDOUBLE";
    case miINT64: return "miINT64";
    case miUINT64: return "miUINT64";
    case miMATRIX: return "miMATRIX";
    case miCOMPRESSED: return "miCOMPRESSED";
    case miUTF8: return "miUTF8";
    case miUTF16: return "miUTF16";
    case miUTF32: return "miUTF32";
    default: return fmt::format("type {}", type);
  }
}

// Bytes per value of a numeric element type; 0 for the others.
size_t numeric_size(uint32_t type) {
  switch (type) {
    case miINT8: case miUINT8: return 1;
    case miINT16: case miUINT16: return 2;
    case miINT32: case miUINT32: case miSINGLE: return 4;
    case miDOUBLE: case miINT64: case miUINT64: return 8;
    default: return 0;
  }
}

struct Element {
  uint32_t type = 0;
  ByteSpan data;
  uint64_t offset = 0;  // offset of the tag within its cursor
};

// Reads the element at the cursor and moves past it and its padding. The padding of the last element of a
// file or of an enclosing miMATRIX may be missing; nothing else may be.
Element next_element(ByteCursor& in, std::string_view what) {
  Element e;
  e.offset = in.offset();
  const uint32_t word = in.le32(fmt::format("the tag of {}", what));
  if (word >> 16) {  // small data element: nbytes in the high half, data in the next 4 bytes
    e.type = word & 0xffff;
    const uint32_t nbytes = word >> 16;
    HG_CHECK(nbytes <= 4, "{}: small data element tag of {} says {} bytes, expected at most 4", in.where(e.offset),
             what, nbytes);
    e.data = in.take(4, fmt::format("the data of {}", what)).first(nbytes);
    return e;
  }
  e.type = word;
  const uint32_t nbytes = in.le32(fmt::format("the size of {}", what));
  e.data = in.take(nbytes, fmt::format("the data of {} ({})", what, type_name(e.type)));
  const uint64_t padding = (8 - nbytes % 8) % 8;
  if (e.type != miCOMPRESSED) in.skip(std::min(padding, in.remaining()), "element padding");
  return e;
}

Element expect_element(ByteCursor& in, std::string_view what, std::initializer_list<uint32_t> types) {
  HG_CHECK(!in.at_end(), "{}: truncated: the array ends before {}", in.where(), what);
  Element e = next_element(in, what);
  HG_CHECK(std::find(types.begin(), types.end(), e.type) != types.end(),
           "{}: {} has element type {}, expected one of {}", in.where(e.offset), what, type_name(e.type),
           fmt::join([&] {
             std::vector<std::string> names;
             for (uint32_t t : types) names.push_back(type_name(t));
             return names;
           }(), ", "));
  return e;
}

// Calls f(double) for each value of a numeric element, in order.
template <typename F> void for_each_number(const Element& e, const ByteCursor& in, std::string_view what, F&& f) {
  const size_t size = numeric_size(e.type);
  HG_CHECK(size != 0, "{}: {} has element type {}, expected a numeric type", in.where(e.offset), what,
           type_name(e.type));
  HG_CHECK(e.data.size() % size == 0, "{}: {} holds {} bytes, not a whole number of {}-byte {} values",
           in.where(e.offset), what, e.data.size(), size, type_name(e.type));
  const uint8_t* p = e.data.data();
  const size_t n = e.data.size() / size;
  auto load = [&]<typename T>(T) {
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));  // little-endian host, checked in parse_mat
      f(v);
    }
  };
  switch (e.type) {
    case miINT8: load(int8_t{}); break;
    case miUINT8: load(uint8_t{}); break;
    case miINT16: load(int16_t{}); break;
    case miUINT16: load(uint16_t{}); break;
    case miINT32: load(int32_t{}); break;
    case miUINT32: load(uint32_t{}); break;
    case miSINGLE: load(float{}); break;
    case miDOUBLE: load(double{}); break;
    case miINT64: load(int64_t{}); break;
    case miUINT64: load(uint64_t{}); break;
  }
}

std::vector<double> read_values(const Element& e, const ByteCursor& in, std::string_view what) {
  std::vector<double> out;
  out.reserve(e.data.size() / std::max<size_t>(numeric_size(e.type), 1));
  for_each_number(e, in, what, [&](auto v) { out.push_back(static_cast<double>(v)); });
  return out;
}

// Indices (ir, jc) must be integers; any integer element type is accepted.
std::vector<int64_t> read_indices(const Element& e, const ByteCursor& in, std::string_view what) {
  HG_CHECK(e.type != miSINGLE && e.type != miDOUBLE, "{}: {} has element type {}, expected an integer type",
           in.where(e.offset), what, type_name(e.type));
  std::vector<int64_t> out;
  out.reserve(e.data.size() / std::max<size_t>(numeric_size(e.type), 1));
  for_each_number(e, in, what, [&](auto v) {
    HG_CHECK(static_cast<double>(v) <= static_cast<double>(INT64_MAX), "{}: {} holds the index {}, too large",
             in.where(e.offset), what, v);
    out.push_back(static_cast<int64_t>(v));
  });
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;  // invalid → replacement character
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Char data: MATLAB writes UTF-16 code units (miUINT16 or miUTF16); other writers use miUTF8/miUINT8/miINT8.
std::string read_text(const Element& e, const ByteCursor& in, int64_t numel, const std::string& name) {
  std::string out;
  if (e.type == miUTF8 || e.type == miUINT8 || e.type == miINT8) {
    out.assign(e.data.begin(), e.data.end());
    return out;
  }
  if (e.type == miUTF32) {
    HG_CHECK(e.data.size() % 4 == 0, "{}: char array '{}': miUTF32 data of {} bytes", in.where(e.offset), name,
             e.data.size());
    for (size_t i = 0; i < e.data.size(); i += 4) {
      uint32_t cp;
      std::memcpy(&cp, e.data.data() + i, 4);
      append_utf8(out, cp);
    }
    return out;
  }
  HG_CHECK(e.type == miUINT16 || e.type == miUTF16,
           "{}: char array '{}' has data of type {}, expected miUINT16, miUTF16, miUTF8 or miUINT8",
           in.where(e.offset), name, type_name(e.type));
  HG_CHECK(e.data.size() == static_cast<uint64_t>(numel) * 2,
           "{}: char array '{}' has {} elements but {} bytes of UTF-16 data (expected {})", in.where(e.offset),
           name, numel, e.data.size(), numel * 2);
  for (size_t i = 0; i < e.data.size(); i += 2) {
    uint32_t unit = e.data[i] | (e.data[i + 1] << 8);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 3 < e.data.size()) {  // surrogate pair
      const uint32_t low = e.data[i + 2] | (e.data[i + 3] << 8);
      if (low >= 0xdc00 && low <= 0xdfff) {
        unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
        i += 2;
      }
    }
    append_utf8(out, unit);
  }
  return out;
}

// Sparse (CSC) arrays: ir (row of each stored value), jc (column starts), pr (values). The number of stored
// values is jc[cols]; ir and pr may be longer (up to nzmax), and the excess is ignored.
void read_sparse(MatArray& a, ByteCursor& in) {
  HG_CHECK(a.dims.size() == 2, "{}: sparse array '{}' has {} dims, expected 2", in.where(), a.name, a.dims.size());
  const Element ir = expect_element(in, fmt::format("the row indices (ir) of '{}'", a.name),
                                    {miINT32, miUINT32, miINT64, miUINT64, miINT16, miUINT16, miINT8, miUINT8});
  const Element jc = expect_element(in, fmt::format("the column starts (jc) of '{}'", a.name),
                                    {miINT32, miUINT32, miINT64, miUINT64, miINT16, miUINT16, miINT8, miUINT8});
  a.row_indices = read_indices(ir, in, "ir");
  a.column_starts = read_indices(jc, in, "jc");
  const int64_t rows = a.dims[0], cols = a.dims[1];
  HG_CHECK(static_cast<int64_t>(a.column_starts.size()) == cols + 1,
           "{}: sparse array '{}' is {}×{}, so jc needs {} entries, got {}", in.where(jc.offset), a.name, rows, cols,
           cols + 1, a.column_starts.size());
  HG_CHECK(a.column_starts[0] == 0, "{}: sparse array '{}': jc[0] is {}, expected 0", in.where(jc.offset), a.name,
           a.column_starts[0]);
  for (int64_t c = 0; c < cols; ++c) {
    HG_CHECK(a.column_starts[c + 1] >= a.column_starts[c],
             "{}: sparse array '{}': jc decreases at column {} ({} then {}), expected non-decreasing column starts",
             in.where(jc.offset), a.name, c, a.column_starts[c], a.column_starts[c + 1]);
  }
  const int64_t nnz = a.column_starts[cols];
  HG_CHECK(nnz <= static_cast<int64_t>(a.row_indices.size()),
           "{}: sparse array '{}': jc[{}] = {} stored values, but ir has only {} entries", in.where(ir.offset),
           a.name, cols, nnz, a.row_indices.size());
  a.row_indices.resize(nnz);
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t k = a.column_starts[c]; k < a.column_starts[c + 1]; ++k) {
      const int64_t r = a.row_indices[k];
      HG_CHECK(r >= 0 && r < rows, "{}: sparse array '{}': ir[{}] = {} is outside rows 0..{}", in.where(ir.offset),
               a.name, k, r, rows - 1);
      HG_CHECK(k == a.column_starts[c] || r > a.row_indices[k - 1],
               "{}: sparse array '{}': row indices of column {} are not strictly increasing (ir[{}] = {} after {})",
               in.where(ir.offset), a.name, c, k, r, a.row_indices[k - 1]);
    }
  }
  if (in.at_end() && a.logical) {  // logical sparse arrays may omit pr: every stored value is true
    a.values.assign(nnz, 1.0);
    return;
  }
  const Element pr = expect_element(in, fmt::format("the values (pr) of '{}'", a.name),
                                    {miINT8, miUINT8, miINT16, miUINT16, miINT32, miUINT32, miSINGLE, miDOUBLE,
                                     miINT64, miUINT64});
  a.values = read_values(pr, in, "pr");
  HG_CHECK(static_cast<int64_t>(a.values.size()) >= nnz,
           "{}: sparse array '{}': jc[{}] = {} stored values, but pr has only {}", in.where(pr.offset), a.name, cols,
           nnz, a.values.size());
  a.values.resize(nnz);
}

MatArray parse_matrix(ByteSpan data, const ByteCursor& outer, uint64_t data_offset) {
  ByteCursor in(data, outer.source(), outer.file_offset() - outer.offset() + data_offset);
  MatArray a;
  const Element flags = expect_element(in, "the array flags", {miUINT32});
  HG_CHECK(flags.data.size() == 8, "{}: array flags hold {} bytes, expected 8", in.where(flags.offset),
           flags.data.size());
  uint32_t flag_word;
  std::memcpy(&flag_word, flags.data.data(), 4);
  a.mat_class = static_cast<MatClass>(flag_word & 0xff);
  a.logical = flag_word & kFlagLogical;
  const bool complex = flag_word & kFlagComplex;
  const uint64_t class_at = flags.offset + 8;

  const Element dims = expect_element(in, "the dimensions", {miINT32});
  HG_CHECK(dims.data.size() % 4 == 0 && dims.data.size() >= 8,
           "{}: the dimensions hold {} bytes, expected at least two int32", in.where(dims.offset), dims.data.size());
  // numel, and the product of the nonzero dims (extent): an empty array's other dims still size its loops and
  // strides ([0, 2^31, 2^31] would make 2^62 empty columns), so they are bounded too.
  int64_t numel = 1, extent = 1;
  for (size_t i = 0; i < dims.data.size(); i += 4) {
    int32_t d;
    std::memcpy(&d, dims.data.data() + i, 4);
    HG_CHECK(d >= 0, "{}: dimension {} is {}, expected ≥ 0", in.where(dims.offset), i / 4, d);
    a.dims.push_back(d);
    numel = (d != 0 && numel > kMaxElements / d) ? kMaxElements + 1 : numel * d;
    if (d != 0) extent = extent > kMaxElements / d ? kMaxElements + 1 : extent * d;
  }
  const Element name = expect_element(in, "the array name", {miINT8, miUINT8, miUTF8});
  a.name.assign(name.data.begin(), name.data.end());

  switch (a.mat_class) {
    case MatClass::Cell:
    case MatClass::Struct:
    case MatClass::Object:
      a.unsupported = fmt::format("{} arrays are not supported", mat_class_name(a.mat_class));
      return a;
    default:
      break;
  }
  const bool known = a.mat_class == MatClass::Char || a.mat_class == MatClass::Sparse || a.is_numeric();
  HG_CHECK(known, "{}: array '{}' has class id {}, expected 1..15", in.where(class_at), a.name,
           static_cast<int>(a.mat_class));
  if (complex) {
    a.unsupported = fmt::format("complex {} arrays are not supported", mat_class_name(a.mat_class));
    return a;
  }
  HG_CHECK(numel <= kMaxElements, "{}: array '{}' has dims {}, more than 2^48 elements", in.where(dims.offset),
           a.name, fmt::join(a.dims, "×"));
  HG_CHECK(extent <= kMaxElements, "{}: array '{}' has dims {}: its nonzero dims multiply to more than 2^48",
           in.where(dims.offset), a.name, fmt::join(a.dims, "×"));
  if (a.mat_class == MatClass::Sparse) {
    read_sparse(a, in);
  } else if (a.mat_class == MatClass::Char) {
    if (numel == 0 && in.at_end()) return a;
    const Element text = next_element(in, fmt::format("the characters of '{}'", a.name));
    a.text = read_text(text, in, numel, a.name);
  } else {
    if (numel == 0 && in.at_end()) return a;
    const Element pr = next_element(in, fmt::format("the values of '{}'", a.name));
    a.values = read_values(pr, in, fmt::format("the values of '{}'", a.name));
    HG_CHECK(static_cast<int64_t>(a.values.size()) == numel,
             "{}: array '{}' has dims {} ({} elements) but its data holds {} values", in.where(pr.offset), a.name,
             fmt::join(a.dims, "×"), numel, a.values.size());
  }
  return a;
}

// Reads the elements of `in` (the file body, or a decompressed miCOMPRESSED stream) into `file`.
void read_top_level(ByteCursor& in, MatFile& file, int depth) {
  while (!in.at_end()) {
    const Element e = next_element(in, "a top-level data element");
    if (e.type == miCOMPRESSED) {
      HG_CHECK(depth == 0, "{}: miCOMPRESSED element inside a compressed element", in.where(e.offset));
      const uint64_t data_at = in.file_offset() - e.data.size();
      const detail::Bytes inflated = detail::inflate_zlib(e.data, in.source(), data_at);
      ByteCursor inner(inflated,
                       fmt::format("{} (zlib stream at byte offset {}, decompressed)", in.source(), data_at));
      read_top_level(inner, file, depth + 1);
      continue;
    }
    HG_CHECK(e.type == miMATRIX, "{}: top-level data element of type {}, expected miMATRIX (14) or miCOMPRESSED (15)",
             in.where(e.offset), type_name(e.type));
    if (e.data.empty()) continue;  // an empty placeholder array
    file.arrays.push_back(parse_matrix(e.data, in, e.offset + 8));
  }
}

}  // namespace

std::string mat_class_name(MatClass c) {
  switch (c) {
    case MatClass::Cell: return "cell";
    case MatClass::Struct: return "struct";
    case MatClass::Object: return "object";
    case MatClass::Char: return "char";
    case MatClass::Sparse: return "sparse";
    case MatClass::Double: return "double";
    case MatClass::Single: return "single";
    case MatClass::Int8: return "int8";
    case MatClass::UInt8: return "uint8";
    case MatClass::Int16: return "int16";
    case MatClass::UInt16: return "uint16";
    case MatClass::Int32: return "int32";
    case MatClass::UInt32: return "uint32";
    case MatClass::Int64: return "int64";
    case MatClass::UInt64: return "uint64";
  }
  return fmt::format("class {}", static_cast<int>(c));
}

int64_t MatArray::cols() const {
  int64_t c = 1;
  for (size_t i = 1; i < dims.size(); ++i) c *= dims[i];
  return dims.empty() ? 0 : c;
}

int64_t MatArray::numel() const { return dims.empty() ? 0 : rows() * cols(); }

namespace {

// Row-major [rows, cols] copy of a 2-D numeric or sparse array, in T.
template <typename T> void fill_dense(const MatArray& a, T* out) {
  const int64_t r = a.rows(), c = a.cols();
  if (a.is_sparse()) {
    for (int64_t j = 0; j < c; ++j) {
      for (int64_t k = a.column_starts[j]; k < a.column_starts[j + 1]; ++k) {
        out[a.row_indices[k] * c + j] = static_cast<T>(a.values[k]);
      }
    }
  } else {
    for (int64_t j = 0; j < c; ++j) {  // column-major → row-major
      for (int64_t i = 0; i < r; ++i) out[i * c + j] = static_cast<T>(a.values[j * r + i]);
    }
  }
}

}  // namespace

Tensor MatArray::to_dense(DType dtype) const {
  const std::string who = source.empty() ? std::string("MatArray::to_dense") : source;
  HG_CHECK(unsupported.empty(), "{}: variable '{}': {}", who, name, unsupported);
  HG_CHECK(is_numeric() || is_sparse(), "{}: variable '{}' is a {} array, expected numeric or sparse", who, name,
           mat_class_name(mat_class));
  HG_CHECK(is_floating(dtype), "MatArray::to_dense: dtype must be float32 or float64, got {}", dtype);
  const int64_t r = rows(), c = cols();
  // A dense array's values are already in memory; a sparse one's dense size is bounded here, before allocating.
  HG_CHECK(!is_sparse() || c == 0 || r <= max_dense_elements / c,
           "{}: variable '{}' is a sparse {}×{} array with {} stored values: densifying it would make {}×{} "
           "elements, more than the {} allowed (max(2^24, 256 × the file's size in bytes))",
           who, name, r, c, nnz(), r, c, max_dense_elements);
  Tensor dense = hg::zeros({r, c}, dtype);  // row-major [rows, cols]
  if (dense.numel() == 0) return dense;      // nothing to copy (and no empty columns to walk)
  if (dtype == kFloat64) {
    fill_dense(*this, dense.data_ptr<double>());
  } else {
    fill_dense(*this, dense.data_ptr<float>());
  }
  return dense;
}

bool MatFile::contains(std::string_view name) const {
  return std::any_of(arrays.begin(), arrays.end(), [&](const MatArray& a) { return a.name == name; });
}

const MatArray& MatFile::at(std::string_view name) const {
  for (const MatArray& a : arrays) {
    if (a.name != name) continue;
    HG_CHECK(a.unsupported.empty(), "{}: variable '{}' could not be read: {}", source, name, a.unsupported);
    return a;
  }
  std::vector<std::string> names;
  for (const MatArray& a : arrays) names.push_back(a.name);
  HG_FAIL("{}: no variable '{}' (the file has: {})", source, name, fmt::join(names, ", "));
}

MatFile parse_mat(std::span<const uint8_t> bytes, std::string_view source) {
  static_assert(std::endian::native == std::endian::little, "the MAT reader assumes a little-endian host");
  ByteCursor in(bytes, std::string(source));
  in.require(128, "the 128-byte MAT-file header");
  MatFile file;
  file.source = source;
  const ByteSpan text = in.take(116, "header text");
  file.header_text.assign(text.begin(), text.end());
  file.header_text.erase(file.header_text.find_last_not_of(std::string_view(" \0", 2)) + 1);
  in.skip(8, "subsystem data offset");
  const uint64_t version_at = in.offset();
  const uint16_t version = in.le16("version");
  const uint8_t e0 = in.u8("endian indicator"), e1 = in.u8("endian indicator");
  HG_CHECK(!(e0 == 'M' && e1 == 'I'), "{}: big-endian MAT-files (endian indicator 'MI') are not supported",
           in.where(126));
  HG_CHECK(e0 == 'I' && e1 == 'M',
           "{}: not a MAT-file level 5: expected the endian indicator 'IM' at byte 126, got bytes {:02x} {:02x} "
           "(level-4 MAT-files have no such header)",
           in.where(126), e0, e1);
  HG_CHECK(version != 0x0200,
           "{}: this is a MAT-file v7.3 (HDF5 container), which this reader does not support; save with -v7",
           in.where(version_at));
  HG_CHECK(version == 0x0100, "{}: MAT-file version 0x{:04x}, expected 0x0100", in.where(version_at), version);
  read_top_level(in, file, 0);
  const int64_t file_bytes = static_cast<int64_t>(std::min<uint64_t>(bytes.size(), uint64_t{1} << 48));
  for (MatArray& a : file.arrays) {
    a.source = file.source;
    a.max_dense_elements = std::max(MatArray::kMinDenseLimit, MatArray::kDenseElementsPerFileByte * file_bytes);
  }
  return file;
}

MatFile read_mat(const std::filesystem::path& path) {
  const detail::Bytes bytes = detail::read_file(path);
  return parse_mat(bytes, path.string());
}

}  // namespace hg::data
