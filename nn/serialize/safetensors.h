#pragma once
// safetensors: the tensor file format of Hugging Face's `safetensors` library, readable from Python with
// `safetensors.torch.load_file(path)` and written byte for byte as that library writes it.
//
//   hg::serialize::save_safetensors("weights.safetensors", {{"fc.weight", w}, {"fc.bias", b}},
//                                   {{"framework", "hopgrad"}});
//   hg::serialize::SafetensorsFile file = hg::serialize::load_safetensors("weights.safetensors");
//   hg::Tensor w2 = file.tensors.at("fc.weight");      // float32[...] cpu
//
// File layout (all integers little-endian):
//   bytes [0, 8)        N: the header length, u64
//   bytes [8, 8 + N)    JSON header, padded with spaces to a multiple of 8 bytes:
//                         {"__metadata__": {"key": "value", ...},
//                          "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   bytes [8 + N, end)  the data: each tensor's elements in row-major order at [begin, end) of this section;
//                       the tensors cover it exactly, without gaps or overlaps.
// dtypes: F32, F64, I64 and BOOL (one byte, 0 or 1). Tensors are written in the reference's order — larger
// element types first (I64, F64, F32, BOOL), then by name — so each starts aligned to its element size.
//
// Loading checks everything before trusting it and throws hg::Error naming the file, the byte offset or
// tensor, and what was expected: a header length over 100 MB (the reference's limit) or past the end of the
// file, invalid JSON (or UTF-8), duplicate names, an unknown dtype, a shape whose byte size differs from its
// data_offsets, offsets out of bounds, gaps, overlaps and trailing bytes. Saving writes atomically (see
// atomic_file.h) and copies CUDA tensors to the host.
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::serialize {

/// Tensors by name, in name order.
using TensorMap = std::map<std::string, Tensor>;
/// The header's "__metadata__": free-form string pairs.
using Metadata = std::map<std::string, std::string>;

/// What a safetensors file holds: contiguous CPU tensors (not requiring grad) and the metadata.
struct SafetensorsFile {
  TensorMap tensors;
  Metadata metadata;
};

/// Writes `tensors` (any device, dtype, strides) and `metadata` to `path`, atomically. Empty metadata
/// writes no "__metadata__" entry. Throws for undefined tensors, the reserved name "__metadata__", names
/// or metadata that are not UTF-8, and I/O errors.
void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors, const Metadata& metadata = {});

/// Reads a safetensors file into CPU tensors; throws hg::Error for anything malformed (see above).
SafetensorsFile load_safetensors(const std::filesystem::path& path);

/// The bytes save_safetensors writes (the reference's `safetensors.serialize`).
std::vector<uint8_t> serialize_safetensors(const TensorMap& tensors, const Metadata& metadata = {});

/// Parses the bytes of a safetensors file; `source` names it in errors.
SafetensorsFile deserialize_safetensors(std::span<const uint8_t> bytes, std::string_view source = "<bytes>");

}  // namespace hg::serialize
