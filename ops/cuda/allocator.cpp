// The caching device allocator. cudaMalloc and cudaFree are slow (cudaFree also synchronises the device), and a
// training step allocates the same sizes again and again, so a freed block goes into a per-device cache and the
// next request of its size class takes it back without a driver call.
//
//  - Size classes: requests round up to 512 bytes below 1 MiB, and above that to a quarter of the enclosing power
//    of two (1.25, 1.5, 1.75, 2, 2.5, ... MiB), so a block wastes at most 25% and a class is reused often.
//    A block serves only requests of its own class: no splitting, no fragmentation bookkeeping.
//  - Reuse without synchronisation: every kernel runs on the device's legacy default stream (cuda_backend.h), so
//    work queued on a block before it was freed finishes before any work queued by its next owner.
//  - Out of memory: cudaMalloc failing is retried once after returning every cached block of that device to
//    the driver; a second failure throws hg::Error with the numbers.
#include <bit>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <hopgrad/ops/cuda/cuda_backend.h>
#include <hopgrad/ops/cuda/runtime.h>

namespace hg::cuda {

namespace {

constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
constexpr size_t kSmallGranularity = 512;

std::string format_bytes(size_t bytes) {
  if (bytes >= (size_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
  if (bytes >= (size_t{1} << 20)) return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (size_t{1} << 10)) return fmt::format("{:.2f} KiB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{} bytes", bytes);
}

class DeviceCache {
 public:
  explicit DeviceCache(int device) : device_(device) {}

  void* allocate(size_t size) {
    std::lock_guard lock(mutex_);
    ++stats_.allocations;
    auto it = free_blocks_.find(size);
    if (it != free_blocks_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      ++stats_.cache_hits;
      stats_.cached_bytes -= size;
      note_allocated(size);
      return p;
    }
    DeviceGuard guard(Device::cuda(device_));
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&p, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      HG_FAIL(
          "CUDA out of memory on cuda:{}: tried to allocate {} ({} free of {}; hopgrad holds {} in tensors, "
          "the cache was emptied)",
          device_, format_bytes(size), format_bytes(free_bytes), format_bytes(total_bytes),
          format_bytes(stats_.allocated_bytes));
    }
    HG_CUDA_CHECK(status);
    ++stats_.device_mallocs;
    stats_.reserved_bytes += size;
    note_allocated(size);
    return p;
  }

  // Called from Storage's destructor: must not throw, and needs no CUDA call.
  void release(void* p, size_t size) noexcept {
    std::lock_guard lock(mutex_);
    free_blocks_[size].push_back(p);
    stats_.allocated_bytes -= size;
    stats_.cached_bytes += size;
  }

  void empty() {
    std::lock_guard lock(mutex_);
    if (stats_.cached_bytes == 0) return;
    DeviceGuard guard(Device::cuda(device_));
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  void note_allocated(size_t size) {
    stats_.allocated_bytes += size;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  }
  // cudaFree synchronises the device, so blocks still read by queued kernels are safe to free.
  void release_cached_locked() {
    for (auto& [size, blocks] : free_blocks_) {
      for (void* p : blocks) {
        HG_CUDA_CHECK(cudaFree(p));
        ++stats_.device_frees;
        stats_.cached_bytes -= size;
        stats_.reserved_bytes -= size;
      }
      blocks.clear();
    }
  }

  const int device_;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // block size → free blocks of that size
  MemoryStats stats_;
};

// One cache per device, never destroyed: storages may be freed during static destruction, after which a
// destroyed cache would be used; at exit the driver reclaims the memory anyway.
DeviceCache& cache(int device) {
  static auto* caches = [] {
    auto* v = new std::vector<std::unique_ptr<DeviceCache>>();
    for (int d = 0; d < cuda_device_count(); ++d) v->push_back(std::make_unique<DeviceCache>(d));
    return v;
  }();
  HG_CHECK(device >= 0 && device < static_cast<int>(caches->size()),
           "CUDA allocator: no CUDA device {} (this machine has {})", device, caches->size());
  return *(*caches)[static_cast<size_t>(device)];
}

}  // namespace

size_t allocation_size(size_t nbytes) {
  if (nbytes <= kSmallLimit)
    return (std::max<size_t>(nbytes, 1) + kSmallGranularity - 1) / kSmallGranularity * kSmallGranularity;
  size_t step = std::bit_floor(nbytes) / 4;
  return (nbytes + step - 1) / step * step;
}

std::shared_ptr<Storage> CudaBackend::allocate(size_t nbytes, Device device) {
  HG_CHECK(device.is_cuda(), "cuda allocate: {} is not a CUDA device", device);
  if (nbytes == 0) return std::make_shared<Storage>(nullptr, 0, device, nullptr);
  const size_t size = allocation_size(nbytes);
  DeviceCache& c = cache(device.index);
  void* p = c.allocate(size);
  return std::make_shared<Storage>(p, nbytes, device, [&c, size](void* q) { c.release(q, size); });
}

MemoryStats memory_stats(int device) { return cache(device).stats(); }

void reset_peak_memory_stats(int device) { cache(device).reset_peak(); }

void empty_cache() {
  for (int d = 0; d < cuda_device_count(); ++d) cache(d).empty();
}

}  // namespace hg::cuda
