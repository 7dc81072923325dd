// libFuzzer target: idx parsing (raw and gzip) and the MNIST image/label conversions.
#include <hopgrad/nn/data/mnist.h>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const hg::data::IdxArray idx = hg::data::parse_idx({data, size}, "fuzz input");
    if (idx.dims.size() == 3) hg::data::mnist_images(idx, hg::data::MnistOptions().mean(0.1307).std(0.3081));
    if (idx.dims.size() == 1) hg::data::mnist_labels(idx);
  } catch (const hg::Error&) {
  }
  return 0;
}
