// libFuzzer target: MAT-file level 5 parsing, then densifying every numeric or sparse variable.
#include <hopgrad/nn/data/matlab.h>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const hg::data::MatFile mat = hg::data::parse_mat({data, size}, "fuzz input");
    for (const hg::data::MatArray& a : mat.arrays) {
      // A sparse array's dense size is unrelated to the input's size; stay within the fuzzer's memory limit.
      if (a.unsupported.empty() && (a.is_numeric() || a.is_sparse()) && a.dims.size() == 2 &&
          a.rows() * a.cols() <= (1 << 20)) {
        a.to_dense();
      }
    }
  } catch (const hg::Error&) {
  }
  return 0;
}
