// libFuzzer target: DeepRC repertoire TSV parsing and the 23-feature encoding.
#include <hopgrad/nn/data/deeprc.h>

#include <string_view>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const hg::data::Repertoire rep = hg::data::parse_repertoire(text, "fuzz input");
    hg::data::encode_repertoire(rep, hg::data::RepertoireEncodingOptions().counts(hg::data::SequenceCountScaling::Log));
    hg::data::parse_tsv(text, "fuzz input");
  } catch (const hg::Error&) {
  }
  return 0;
}
