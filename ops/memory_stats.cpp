// hg::memory_stats and friends: each device's caching allocator keeps the numbers (ops/cpu/memory.cpp,
// ops/cuda/allocator.cpp); this only picks the allocator.
#include <hopgrad/ops/memory_stats.h>

#include <hopgrad/core/error.h>
#include <hopgrad/ops/cpu/cpu_backend.h>
#ifdef HG_WITH_CUDA
#include <hopgrad/ops/cuda/cuda_backend.h>
#endif

namespace hg {
namespace {

#ifdef HG_WITH_CUDA
// A CUDA device's index, checked against this machine.
int cuda_index(const char* op, Device device) {
  HG_CHECK(device.index >= 0 && device.index < cuda_device_count(), "{}: no CUDA device {} (this machine has {})", op,
           device, cuda_device_count());
  return device.index;
}
#else
[[noreturn]] void no_cuda(const char* op, Device device) {
  HG_FAIL("{}: {} requested, but this build of hopgrad has no CUDA backend (configure with -DHOPGRAD_CUDA=ON)", op,
          device);
}
#endif

}  // namespace

MemoryStats memory_stats(Device device) {
  if (device.is_cpu()) return cpu::memory_stats();
#ifdef HG_WITH_CUDA
  const cuda::MemoryStats s = cuda::memory_stats(cuda_index("memory_stats", device));
  return {s.allocated_bytes, s.peak_allocated_bytes, s.reserved_bytes};
#else
  no_cuda("memory_stats", device);
#endif
}

void reset_peak_memory_stats(Device device) {
  if (device.is_cpu()) return cpu::reset_peak_memory_stats();
#ifdef HG_WITH_CUDA
  cuda::reset_peak_memory_stats(cuda_index("reset_peak_memory_stats", device));
#else
  no_cuda("reset_peak_memory_stats", device);
#endif
}

void empty_cache() {
  cpu::empty_cache();
#ifdef HG_WITH_CUDA
  cuda::empty_cache();  // every device's cache (none without a GPU)
#endif
}

}  // namespace hg
