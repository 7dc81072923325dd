// safetensors reading and writing (see safetensors.h). The writer follows the reference implementation
// (huggingface/safetensors, src/tensor.rs): compact JSON with "__metadata__" first, then the tensors in data
// order, each as {"dtype", "shape", "data_offsets"}, padded with spaces to 8 bytes. The reader checks the
// same invariants the reference's validate() does, and reports each with the file and byte offset.
#include <hopgrad/nn/serialize/safetensors.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/serialize/atomic_file.h>

namespace hg::serialize {

// Tensor bytes are copied as they are in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

// The reference refuses headers over 100 MB (MAX_HEADER_SIZE): a hostile length cannot make us allocate more.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

std::string_view safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (DType dtype : {kFloat32, kFloat64, kInt64, kBool})
    if (safetensors_dtype(dtype) == name) return dtype;
  return std::nullopt;
}

// Position of the dtype in the reference's Dtype enum (BOOL < … < F32 < F64 < I64), which is ordered by
// alignment: the reference writes the highest first, so every tensor starts aligned to its element size.
int reference_rank(DType dtype) {
  switch (dtype) {
    case DType::Bool: return 0;
    case DType::Float32: return 1;
    case DType::Float64: return 2;
    case DType::Int64: return 3;
  }
  return 0;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), which JSON strings require.
bool is_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t lead = byte(i);
    size_t length = 1;
    uint8_t lo = 0x80, hi = 0xBF;  // the range allowed for the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) lo = 0xA0;  // overlong
      if (lead == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) lo = 0x90;  // overlong
      if (lead == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else if (lead >= 0x80) {
      return false;
    }
    if (s.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const uint8_t b = byte(i + k);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
    }
    i += length;
  }
  return true;
}

// ---- writing ------------------------------------------------------------------------------------------

struct WritePlan {
  std::string header;  ///< JSON padded with spaces to a multiple of 8 bytes
  std::vector<std::pair<const std::string*, const Tensor*>> data_order;
};

WritePlan plan_file(const TensorMap& tensors, const Metadata& metadata, std::string_view where) {
  WritePlan plan;
  for (const auto& [name, tensor] : tensors) {
    HG_CHECK(name != kMetadataKey, "save_safetensors: {}: '{}' is reserved for the metadata, not a tensor name",
             where, name);
    HG_CHECK(is_utf8(name), "save_safetensors: {}: tensor name '{}' is not valid UTF-8", where, name);
    HG_CHECK(tensor.defined(), "save_safetensors: {}: tensor '{}' is undefined", where, name);
    plan.data_order.emplace_back(&name, &tensor);
  }
  for (const auto& [key, value] : metadata)
    HG_CHECK(is_utf8(key) && is_utf8(value), "save_safetensors: {}: metadata '{}' is not valid UTF-8", where, key);
  std::stable_sort(plan.data_order.begin(), plan.data_order.end(), [](const auto& a, const auto& b) {
    return reference_rank(a.second->dtype()) > reference_rank(b.second->dtype());
  });  // stable: names stay in order within a dtype

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : plan.data_order) {
    const uint64_t nbytes = static_cast<uint64_t>(tensor->numel()) * tensor->element_size();
    nlohmann::ordered_json& entry = header[*name];
    entry["dtype"] = safetensors_dtype(tensor->dtype());
    entry["shape"] = tensor->sizes().vec();
    entry["data_offsets"] = {offset, offset + nbytes};
    offset += nbytes;
  }
  plan.header = header.dump();
  plan.header.resize((plan.header.size() + 7) / 8 * 8, ' ');
  HG_CHECK(plan.header.size() <= kMaxHeaderBytes,
           "save_safetensors: {}: the header would be {} bytes, over the format's limit of {} (too many tensors or "
           "too much metadata)",
           where, plan.header.size(), kMaxHeaderBytes);
  return plan;
}

// Calls sink(data, size) with the file's bytes in order: length, header, then each tensor's elements.
void write_file(const WritePlan& plan, const std::function<void(const void*, size_t)>& sink) {
  const uint64_t header_length = plan.header.size();
  sink(&header_length, sizeof header_length);
  sink(plan.header.data(), plan.header.size());
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : plan.data_order) {
    if (tensor->numel() == 0) continue;
    // One tensor at a time on the host: a CUDA model never needs a second full copy in host memory.
    Tensor host = tensor->detach();
    if (!host.device().is_cpu()) host = host.cpu();
    host = host.contiguous();
    sink(host.data_ptr(), static_cast<size_t>(host.numel()) * host.element_size());
  }
}

// ---- reading ------------------------------------------------------------------------------------------

/// Random access to the bytes of a file or of a buffer.
struct Input {
  std::string source;  ///< "load_safetensors: <file>", the prefix of every error
  uint64_t size = 0;
  std::function<void(uint64_t offset, void* out, size_t size)> read;  ///< [offset, offset + size) is in range
};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  ///< in the data section
};

// A JSON value for an error message, cut short: a hostile header may hold megabytes in one value.
std::string excerpt(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) {
    size_t cut = 72;
    while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    text = text.substr(0, cut) + "… (" + std::to_string(text.size()) + " bytes)";
  }
  return text;
}

uint64_t unsigned_number(const json& value, const std::string& what, const Input& in) {
  HG_CHECK(value.is_number_unsigned(), "{}: {} is {}, expected a non-negative integer", in.source, what,
           excerpt(value));
  return value.get<uint64_t>();
}

// Parses the header text; duplicate keys (which JSON parsers silently merge) are refused at any depth, and so is
// nesting deeper than kMaxDepth (a valid header nests 3 deep; a hostile one of millions of brackets would build
// a huge document and overflow the stack of anything that walks it, such as the dump() of an error message), and a
// NUL byte (the parser would take it for the end of the input and ignore what follows).
constexpr int kMaxDepth = 64;
json parse_json(const std::string& header, const Input& in) {
  const size_t nul = header.find('\0');
  HG_CHECK(nul == std::string::npos, "{}: byte offset {}: a NUL byte in the header, which is not valid JSON", in.source,
           8 + nul);
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each object being parsed
  auto refuse_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start)
      HG_CHECK(depth < kMaxDepth, "{}: the header nests deeper than {} levels; a safetensors header needs 3",
               in.source, kMaxDepth);
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end) keys.pop_back();
    if (event == json::parse_event_t::key)
      HG_CHECK(keys.back().insert(parsed.get<std::string>()).second, "{}: duplicate key '{}' in the header",
               in.source, parsed.get<std::string>());
    return true;
  };
  try {
    return json::parse(header, refuse_duplicates);
  } catch (const json::parse_error& e) {
    // e.byte counts from 1 at the header's first byte, which is the file's byte 8.
    HG_FAIL("{}: byte offset {}: the header is not valid JSON: {}", in.source, 8 + std::max<size_t>(e.byte, 1) - 1,
            e.what());
  } catch (const json::exception& e) {  // e.g. out_of_range: a number too large for a double
    HG_FAIL("{}: the header is not valid JSON: {}", in.source, e.what());
  }
}

Entry parse_entry(const std::string& name, const json& info, const Input& in) {
  const std::string what = fmt::format("tensor '{}'", name);
  HG_CHECK(info.is_object(), "{}: {} is {}, expected an object with dtype, shape and data_offsets", in.source, what,
           excerpt(info));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    HG_CHECK(info.contains(field), "{}: {} has no \"{}\"", in.source, what, field);
  Entry entry{name, kFloat32, {}, 0, 0};

  const json& dtype = info["dtype"];
  HG_CHECK(dtype.is_string(), "{}: {}: dtype is {}, expected a string", in.source, what, excerpt(dtype));
  const std::optional<DType> parsed = dtype_from_safetensors(dtype.get<std::string>());
  HG_CHECK(parsed.has_value(), "{}: {}: unsupported dtype {} (hopgrad reads F32, F64, I64 and BOOL)", in.source, what,
           excerpt(dtype));
  entry.dtype = *parsed;

  const json& shape = info["shape"];
  HG_CHECK(shape.is_array(), "{}: {}: shape is {}, expected an array of sizes", in.source, what, excerpt(shape));
  HG_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "{}: {}: shape {} has {} dimensions, hopgrad tensors have "
           "at most {}", in.source, what, excerpt(shape), shape.size(), kMaxDims);
  // Byte size with overflow checks: a hostile shape must not wrap around to match small offsets.
  uint64_t nbytes = element_size(entry.dtype);
  uint64_t numel = 1;
  for (const json& size : shape) {
    const uint64_t n = unsigned_number(size, what + " shape entry", in);
    // Each size on its own too: after a 0 the product stays 0 whatever follows.
    HG_CHECK(n <= static_cast<uint64_t>(INT64_MAX), "{}: {}: shape {} has a size ({}) above what a tensor can hold",
             in.source, what, excerpt(shape), n);
    HG_CHECK(!__builtin_mul_overflow(numel, n, &numel) && numel <= static_cast<uint64_t>(INT64_MAX) &&
                 !__builtin_mul_overflow(nbytes, n, &nbytes),
             "{}: {}: shape {} has more elements than any file can hold", in.source, what, excerpt(shape));
    entry.shape.push_back(static_cast<int64_t>(n));
  }

  const json& offsets = info["data_offsets"];
  HG_CHECK(offsets.is_array() && offsets.size() == 2, "{}: {}: data_offsets is {}, expected [begin, end]", in.source,
           what, excerpt(offsets));
  entry.begin = unsigned_number(offsets[0], what + " data_offsets[0]", in);
  entry.end = unsigned_number(offsets[1], what + " data_offsets[1]", in);
  HG_CHECK(entry.begin <= entry.end, "{}: {}: data_offsets [{}, {}] end before they begin", in.source, what,
           entry.begin, entry.end);
  HG_CHECK(entry.end - entry.begin == nbytes,
           "{}: {}: shape {} of {} needs {} bytes, data_offsets [{}, {}] hold {}", in.source, what, excerpt(shape),
           dtype.get<std::string>(), nbytes, entry.begin, entry.end, entry.end - entry.begin);
  return entry;
}

// The tensors must cover the data section exactly: sorted by offset, each starts where the previous ended.
void check_layout(std::vector<Entry>& entries, uint64_t data_start, uint64_t data_size, const Input& in) {
  for (const Entry& e : entries)
    HG_CHECK(e.end <= data_size,
             "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data, which holds {} bytes (file byte "
             "offsets {} to {})",
             in.source, e.name, e.begin, e.end, data_size, data_start, data_start + data_size);
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    HG_CHECK(e.begin >= covered, "{}: byte offset {}: tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' "
             "(data_offsets [{}, {}])", in.source, data_start + e.begin, e.name, e.begin, e.end,
             previous ? previous->name : "", previous ? previous->begin : 0, covered);
    HG_CHECK(e.begin == covered, "{}: byte offset {}: a gap of {} bytes before tensor '{}' (data_offsets [{}, {}]); "
             "tensors must be packed without gaps", in.source, data_start + covered, e.begin - covered, e.name,
             e.begin, e.end);
    covered = e.end;
    previous = &e;
  }
  HG_CHECK(covered == data_size, "{}: byte offset {}: {} trailing bytes after the last tensor (expected the file to "
           "end there)", in.source, data_start + covered, data_size - covered);
}

SafetensorsFile read_file(const Input& in) {
  HG_CHECK(in.size >= 8, "{}: the file is {} bytes, too short for the 8-byte header length", in.source, in.size);
  uint64_t header_length = 0;
  in.read(0, &header_length, sizeof header_length);
  HG_CHECK(header_length <= kMaxHeaderBytes, "{}: byte offset 0: header length {} exceeds the limit of {} bytes",
           in.source, header_length, kMaxHeaderBytes);
  HG_CHECK(header_length <= in.size - 8, "{}: byte offset 0: header length {} runs past the end of the file ({} "
           "bytes follow the length)", in.source, header_length, in.size - 8);
  std::string text(header_length, '\0');
  in.read(8, text.data(), text.size());
  const json header = parse_json(text, in);
  HG_CHECK(header.is_object(), "{}: byte offset 8: the header is {}, expected a JSON object", in.source,
           header.type_name());

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name != kMetadataKey) {
      entries.push_back(parse_entry(name, value, in));
      continue;
    }
    HG_CHECK(value.is_object(), "{}: \"__metadata__\" is {}, expected an object of strings", in.source, excerpt(value));
    for (const auto& [key, text_value] : value.items()) {
      HG_CHECK(text_value.is_string(), "{}: \"__metadata__\" entry '{}' is {}, expected a string", in.source, key,
               excerpt(text_value));
      file.metadata[key] = text_value.get<std::string>();
    }
  }
  const uint64_t data_start = 8 + header_length;
  check_layout(entries, data_start, in.size - data_start, in);

  // Everything is known to fit in the file now, so allocations are bounded by its size.
  for (const Entry& e : entries) {
    Tensor tensor = empty(e.shape, e.dtype);
    if (e.end > e.begin) in.read(data_start + e.begin, tensor.data_ptr(), e.end - e.begin);
    if (e.dtype == kBool) {
      const uint8_t* bytes = static_cast<const uint8_t*>(tensor.data_ptr());
      const uint64_t n = e.end - e.begin;
      const uint64_t bad = static_cast<uint64_t>(std::find_if(bytes, bytes + n, [](uint8_t b) { return b > 1; }) - bytes);
      HG_CHECK(bad == n, "{}: byte offset {}: tensor '{}' holds BOOL value {}, expected 0 or 1", in.source,
               data_start + e.begin + bad, e.name, bad < n ? bytes[bad] : 0);
    }
    file.tensors.emplace(e.name, std::move(tensor));
  }
  return file;
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const TensorMap& tensors, const Metadata& metadata) {
  std::vector<uint8_t> bytes;
  write_file(plan_file(tensors, metadata, "<bytes>"), [&](const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + size);
  });
  return bytes;
}

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors, const Metadata& metadata) {
  const WritePlan plan = plan_file(tensors, metadata, path.string());
  AtomicFile file(path);
  write_file(plan, [&](const void* data, size_t size) { file.write(data, size); });
  file.commit();
}

SafetensorsFile deserialize_safetensors(std::span<const uint8_t> bytes, std::string_view source) {
  Input in{fmt::format("load_safetensors: {}", source), bytes.size(),
           [&](uint64_t offset, void* out, size_t size) { std::memcpy(out, bytes.data() + offset, size); }};
  return read_file(in);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  std::error_code error;
  HG_CHECK(!std::filesystem::is_directory(path, error),
           "load_safetensors: {}: is a directory, expected a checkpoint file", path.string());
  std::ifstream stream(path, std::ios::binary | std::ios::ate);
  HG_CHECK(stream.is_open(), "load_safetensors: {}: cannot open the file (does it exist and is it readable?)",
           path.string());
  const std::streamoff size = stream.tellg();
  HG_CHECK(size >= 0, "load_safetensors: {}: cannot determine the file size", path.string());
  Input in{fmt::format("load_safetensors: {}", path.string()), static_cast<uint64_t>(size),
           [&](uint64_t offset, void* out, size_t count) {
             stream.seekg(static_cast<std::streamoff>(offset));
             stream.read(static_cast<char*>(out), static_cast<std::streamsize>(count));
             HG_CHECK(stream.gcount() == static_cast<std::streamsize>(count),
                      "load_safetensors: {}: byte offset {}: read {} of {} bytes (was the file changed while it "
                      "was read?)", path.string(), offset, stream.gcount(), count);
           }};
  return read_file(in);
}

}  // namespace hg::serialize
