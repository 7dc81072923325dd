// CPU memory: allocation, strided copies with dtype conversion, fills.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg {

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

namespace cpu {

namespace {

// A small caching allocator for host buffers. Freshly malloc'ed large blocks come from mmap (or a trimmed heap),
// so every op output would pay page faults on first touch and glibc would give the pages back on free; reusing
// blocks of the same rounded size keeps them mapped. Blocks below 64 KiB go straight to malloc (its bins are
// already fast), and at most kMaxCached bytes are kept.
//
// It also keeps hg::memory_stats(kCPU): every block, cached or not, counts in allocated_bytes while a storage
// holds it. The counters are relaxed atomics, so the small-block path stays lock-free (one add, one load, and
// a compare-exchange only when a new peak is set); a snapshot taken while other threads allocate may mix
// moments, as PyTorch's does.
class HostBlockCache {
 public:
  static constexpr size_t kMinCached = 64 << 10;
  static constexpr size_t kMaxCached = size_t{1} << 30;

  // Sizes round up to a multiple of 1/8 of their power of two: at most 12.5 % waste, few distinct classes.
  static size_t round(size_t n) {
    n = std::max<size_t>(n, 64);
    size_t p = size_t{1} << (63 - __builtin_clzll(n));
    size_t step = std::max<size_t>(p / 8, 64);
    return (n + step - 1) / step * step;
  }

  void* take(size_t rounded) {
    void* p = nullptr;
    if (rounded >= kMinCached) {
      std::lock_guard lock(mutex_);
      auto it = free_.find(rounded);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= rounded;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(64, rounded);
    if (p != nullptr) note_allocated(rounded);
    return p;
  }

  void give_back(void* p, size_t rounded) {
    allocated_bytes_.fetch_sub(rounded, std::memory_order_relaxed);
    if (rounded >= kMinCached) {
      std::lock_guard lock(mutex_);
      if (cached_bytes_ + rounded <= kMaxCached) {
        free_[rounded].push_back(p);
        cached_bytes_ += rounded;
        return;
      }
    }
    std::free(p);
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);  // cached_bytes_ changes under the lock only
    const size_t allocated = allocated_bytes_.load(std::memory_order_relaxed);
    return {allocated, peak_allocated_bytes_.load(std::memory_order_relaxed), allocated + cached_bytes_};
  }

  void reset_peak() {
    peak_allocated_bytes_.store(allocated_bytes_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }

  ~HostBlockCache() { release_cached(); }

 private:
  void note_allocated(size_t rounded) {
    const size_t now = allocated_bytes_.fetch_add(rounded, std::memory_order_relaxed) + rounded;
    size_t peak = peak_allocated_bytes_.load(std::memory_order_relaxed);
    while (now > peak && !peak_allocated_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  std::atomic<size_t> allocated_bytes_{0};
  std::atomic<size_t> peak_allocated_bytes_{0};
};

HostBlockCache& host_cache() {
  // Leaked on purpose: storages freed during static destruction must still find the cache.
  static auto* cache = new HostBlockCache();
  return *cache;
}

}  // namespace

std::shared_ptr<Storage> CpuBackend::allocate(size_t nbytes, Device device) {
  // 64-byte alignment suits AVX-512 loads and oneDNN.
  size_t rounded = HostBlockCache::round(nbytes);
  void* p = host_cache().take(rounded);
  HG_CHECK(p != nullptr, "out of host memory allocating {} bytes", nbytes);
  return std::make_shared<Storage>(p, nbytes, device, [rounded](void* q) { host_cache().give_back(q, rounded); });
}

size_t allocation_size(size_t nbytes) { return HostBlockCache::round(nbytes); }
MemoryStats memory_stats() { return host_cache().stats(); }
void reset_peak_memory_stats() { host_cache().reset_peak(); }
void empty_cache() { host_cache().release_cached(); }

void CpuBackend::copy(const Tensor& src, Tensor& out) {
  HG_CHECK(src.device().is_cpu() && out.device().is_cpu(), "cpu copy: both tensors must be on the host");
  if (src.dtype() == out.dtype() && src.is_contiguous() && out.is_contiguous() && src.sizes() == out.sizes()) {
    size_t bytes = static_cast<size_t>(out.numel()) * out.element_size();
    if (bytes > 0 && src.data_ptr() != out.data_ptr()) std::memcpy(out.data_ptr(), src.data_ptr(), bytes);
    return;
  }
  HG_DISPATCH_ALL(out.dtype(), "copy", [&] {
    using out_t = scalar_t;
    HG_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using in_t = scalar_t;
      cpu_kernel<out_t, in_t>(out, {&src}, [](in_t v) {
        if constexpr (std::is_same_v<out_t, uint8_t>)
          return static_cast<uint8_t>(v != in_t(0));  // bool: nonzero → 1
        else
          return static_cast<out_t>(v);
      });
    });
  });
}

void CpuBackend::fill(Tensor& out, double value) {
  HG_DISPATCH_ALL(out.dtype(), "fill", [&] {
    scalar_t v = std::is_same_v<scalar_t, uint8_t> ? static_cast<scalar_t>(value != 0.0) : static_cast<scalar_t>(value);
    cpu_kernel<scalar_t>(out, {}, [v]() { return v; });
  });
}

void CpuBackend::arange(Tensor& out, double start, double step) {
  HG_DISPATCH_NUMERIC(out.dtype(), "arange", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step);
  });
}

}  // namespace cpu
}  // namespace hg
