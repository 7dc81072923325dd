// libFuzzer target: safetensors parsing (header length, JSON header, entries, layout checks, BOOL values).
#include <hopgrad/nn/serialize/safetensors.h>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // Allocations are bounded by the input: every tensor's bytes must lie inside it.
    const hg::serialize::SafetensorsFile file = hg::serialize::deserialize_safetensors({data, size}, "fuzz input");
    // What was read must write back and read again to the same tensors.
    const std::vector<uint8_t> bytes = hg::serialize::serialize_safetensors(file.tensors, file.metadata);
    const hg::serialize::SafetensorsFile again = hg::serialize::deserialize_safetensors(bytes, "round trip");
    if (again.tensors.size() != file.tensors.size() || again.metadata != file.metadata) __builtin_trap();
  } catch (const hg::Error&) {
  }
  return 0;
}
