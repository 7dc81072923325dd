// libFuzzer target: MIL datasets from MAT-files (bag ids, labels, features consistency checks).
#include <hopgrad/nn/data/mil.h>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const hg::data::MatFile mat = hg::data::parse_mat({data, size}, "fuzz input");
    // Densifying is bounded by the fuzzer's memory limit, not by the input's size (see fuzz_matlab.cpp).
    if (mat.contains("features")) {
      const hg::data::MatArray& f = mat.at("features");
      if (f.dims.size() == 2 && f.rows() * f.cols() > (1 << 20)) return 0;
    }
    const hg::data::MilDataset mil = hg::data::mil_from_mat(mat);
    for (int64_t b = 0; b < mil.num_bags(); ++b) mil.bag(b);
  } catch (const hg::Error&) {
  }
  return 0;
}
