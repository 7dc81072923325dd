// libFuzzer target: CIFAR-10 binary batches.
#include <hopgrad/nn/data/cifar10.h>

#include <hopgrad/core/error.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hg::data::parse_cifar10_batch({data, size}, "fuzz input");
  } catch (const hg::Error&) {
  }
  return 0;
}
