// Backend dispatch, storage allocation and the default generators.
#include <hopgrad/ops/backend.h>

#include <hopgrad/core/generator.h>

namespace hg {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
#ifdef HG_WITH_CUDA
  HG_CHECK(device.index < cuda_device_count(), "no CUDA device {} (this machine has {} CUDA devices)", device,
           cuda_device_count());
  return cuda_backend();
#else
  HG_FAIL("tensor on {}: this build of hopgrad has no CUDA backend (configure with -DHOPGRAD_CUDA=ON)", device);
#endif
}

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device) {
  return backend_for(device).allocate(nbytes, device);
}

#ifndef HG_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

Generator& default_generator(Device device) {
  // One generator per device (up to 16 CUDA devices), created on first use and never destroyed early.
  static Generator cpu;
  static Generator cuda[16];
  if (device.is_cpu()) return cpu;
  HG_CHECK(device.index >= 0 && device.index < 16, "default_generator: CUDA device index {} out of range",
           device.index);
  return cuda[device.index];
}

void manual_seed(uint64_t seed) {
  default_generator(kCPU).manual_seed(seed);
  for (int i = 0; i < 16; ++i) default_generator(Device::cuda(i)).manual_seed(seed);
}

}  // namespace hg
