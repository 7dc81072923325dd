// CPU memory: allocation, strided copies with dtype conversion, fills.
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <utility>

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

// The host caching allocator: a pool of resident pages that holds at most kSlack (4 MiB) more than the peak of
// live bytes.
//
// Why cache at all: a fresh page costs a fault on first touch, and on this VM that is ~1.3 ms per MiB (64 MiB
// mmap'ed and written: 80–100 ms, against 3–11 ms to write it again); DeepRC's step allocates ~380 MiB of
// activations, so it would spend more time faulting than computing (perf measured 21 % of a step in page
// faults while oneDNN still allocated its own staging buffers).
//
// Why not cache blocks by size class, as this allocator did before: a freed block then serves only requests of
// its own class, so every class keeps its own high-water mark. DeepRC's step needs blocks of 97.7, 58.6, 14.6
// and 4.9 MiB at different moments: the classes together held 558 MiB for a peak of 387 MiB live, and the
// process's peak RSS was 562 MiB (PyTorch, which returns freed blocks to malloc: 431 MiB without its runtime).
// A cap on the cached bytes trades that for page faults: replaying the step's trace, a cap at 1.1× the peak of
// live bytes faults 250–300 MiB per step in the steady state, about as long as the step itself.
//
// So the pool works in pages, not blocks. Blocks of at least kMinPooled bytes are whole pages of anonymous
// memory (mmap); a freed block becomes a free range, merged with free neighbours. A request takes
//   1. the smallest free range that holds it, cut to its size (the rest stays free): no system call;
//   2. failing that, a fresh mapping. While the pool (live + free) would exceed its budget — the peak of live
//      pooled bytes since the start or the last empty_cache, plus kSlack — free ranges are moved into it,
//      largest first, with mremap: it moves page-table entries, not bytes (58 MiB in ~25 µs, where faulting
//      them in costs ~80 ms). The rest of the mapping is faulted in as it is touched.
// So reserved bytes never exceed that budget, and a step that needs fewer pages than the last one faults none.
// Measured (strace, perf, /proc/self/status): DeepRC's pool holds 378 MiB for 378 MiB peak live, with no page
// fault and 0–1 mremap per step after the first (peak RSS 562 → 398 MiB, same CPU time per step).
//
// Free ranges beyond kMaxCached (1 GiB) are unmapped, largest first, when a block is freed: a program whose early
// peak was much larger than its steady state (a dataset loaded and converted, say) gets that memory back.
//
// Why the slack: without it, a step whose small blocks peak before its large ones must rebuild the large ones
// from the small ones' pages every time. mlp_small (blocks of 128 and 784 KiB) then made 44 mremap calls per
// 1.2 ms step, on pieces that multiply as blocks are cut; with 4 MiB to spare it makes none.
//
// mremap moves one kernel mapping (VMA) at a time on Linux before 6.17, and a free range may span several:
// neighbouring mmaps, or the pieces a block was gathered from. `seams_` records where one of our mappings may
// end and another begin, and a move is split there.
//
// Blocks below kMinPooled go to malloc (its bins are fast, and a page each would waste most of it).
//
// It also keeps hg::memory_stats(kCPU): every block counts in allocated_bytes while a storage holds it. The
// counters are relaxed atomics, so the small-block path stays lock-free (one add, one load, and a
// compare-exchange only when a new peak is set); a snapshot taken while other threads allocate may mix moments,
// as PyTorch's does.
class HostAllocator {
 public:
  static constexpr size_t kMinPooled = 64 << 10;
  static constexpr size_t kPage = 4096;
  static constexpr size_t kSlack = 4 << 20;  // what the pool may hold beyond the peak of live pooled bytes
  static constexpr size_t kMaxCached = size_t{1} << 30;  // free bytes kept at most, after a transient peak

  // Pooled blocks are whole pages; smaller ones a multiple of the 64-byte alignment.
  static size_t round(size_t n) {
    if (n >= kMinPooled) return (n + kPage - 1) / kPage * kPage;
    return std::max<size_t>((n + 63) / 64 * 64, 64);
  }

  // A block of `rounded` bytes (from round()), 64-byte aligned; nullptr when the system has no memory.
  void* take(size_t rounded) {
    void* p = rounded >= kMinPooled ? take_pooled(rounded) : std::aligned_alloc(64, rounded);
    if (p != nullptr) note_allocated(rounded);
    return p;
  }

  void give_back(void* p, size_t rounded) {
    allocated_bytes_.fetch_sub(rounded, std::memory_order_relaxed);
    if (rounded < kMinPooled) return std::free(p);
    std::lock_guard lock(mutex_);
    pooled_bytes_ -= rounded;
    add_free(reinterpret_cast<uintptr_t>(p), rounded);
    while (cached_bytes_ > kMaxCached) {  // the largest free ranges go back to the system
      const auto largest = free_by_address_.find(free_by_size_.rbegin()->second);
      munmap(reinterpret_cast<void*>(largest->first), largest->second);
      forget_seams(largest->first, largest->second);
      erase_free(largest);
    }
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto [address, length] : free_by_address_) {
      munmap(reinterpret_cast<void*>(address), length);
      forget_seams(address, length);
    }
    free_by_address_.clear();
    free_by_size_.clear();
    cached_bytes_ = 0;
    pooled_high_water_ = pooled_bytes_;  // the budget starts again from what is live
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);  // cached_bytes_ changes under the lock only
    const size_t allocated = allocated_bytes_.load(std::memory_order_relaxed);
    return {allocated, peak_allocated_bytes_.load(std::memory_order_relaxed), allocated + cached_bytes_};
  }

  void reset_peak() {
    peak_allocated_bytes_.store(allocated_bytes_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }

 private:
  void* take_pooled(size_t length) {
    std::lock_guard lock(mutex_);
    pooled_bytes_ += length;
    pooled_high_water_ = std::max(pooled_high_water_, pooled_bytes_);
    // 1. Best fit: the smallest free range that holds the request, cut to size.
    if (auto fit = free_by_size_.lower_bound({length, 0}); fit != free_by_size_.end()) {
      const uintptr_t address = fit->second;
      take_prefix(address, length);
      return reinterpret_cast<void*>(address);
    }
    // 2. A fresh mapping. Its pages are faulted in as they are touched, except those moved in from the free
    // ranges (largest first; each is smaller than the request): as many as keep the pool within its budget.
    void* fresh = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED) {
      pooled_bytes_ -= length;
      return nullptr;
    }
    const uintptr_t block = reinterpret_cast<uintptr_t>(fresh);
    seams_.insert(block);
    seams_.insert(block + length);
    const size_t budget = pooled_high_water_ + kSlack;
    size_t filled = 0;
    // Over the budget, cached_bytes_ > budget − pooled_bytes_ ≥ 0: there is a free range to move.
    while (filled < length && pooled_bytes_ + cached_bytes_ > budget) {
      const auto [size, source] = *free_by_size_.rbegin();
      const size_t moved = std::min(size, length - filled);
      take_prefix(source, moved);
      move_pages(source, moved, block + filled);
      filled += moved;
    }
    return fresh;
  }

  // Takes [address, address + length) out of the free range that starts at `address`; the rest stays free.
  void take_prefix(uintptr_t address, size_t length) {
    const auto range = free_by_address_.find(address);
    const size_t size = range->second;
    free_by_size_.erase({size, address});
    free_by_address_.erase(range);
    cached_bytes_ -= size;
    if (size > length) insert_free(address + length, size - length);
  }

  // Moves the resident pages of [source, source + length) to [destination, …), one mapping at a time.
  void move_pages(uintptr_t source, size_t length, uintptr_t destination) {
    const uintptr_t end = source + length;
    for (uintptr_t piece = source; piece < end;) {
      const auto seam = seams_.upper_bound(piece);
      const uintptr_t piece_end = seam == seams_.end() ? end : std::min(*seam, end);
      const uintptr_t to = destination + (piece - source);
      void* moved = mremap(reinterpret_cast<void*>(piece), piece_end - piece, piece_end - piece,
                           MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(to));
      // Cannot fail for a range inside one of our mappings moved onto another; should it, the destination keeps
      // its fresh pages and the source is released, so no memory is lost or shared.
      if (moved == MAP_FAILED) munmap(reinterpret_cast<void*>(piece), piece_end - piece);
      seams_.insert(to);
      piece = piece_end;
    }
    forget_seams(source, length);
    seams_.insert(destination + length);
  }

  // The range [address, address + length) is no longer ours: its seams go (a later mapping adds its own).
  void forget_seams(uintptr_t address, size_t length) {
    seams_.erase(seams_.lower_bound(address), seams_.upper_bound(address + length));
  }

  // A freed block joins the free ranges, merged with the free ranges right before and after it.
  void add_free(uintptr_t address, size_t length) {
    if (auto next = free_by_address_.find(address + length); next != free_by_address_.end()) {
      length += next->second;
      erase_free(next);
    }
    if (auto next = free_by_address_.lower_bound(address); next != free_by_address_.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second == address) {
        address = previous->first;
        length += previous->second;
        erase_free(previous);
      }
    }
    insert_free(address, length);
  }

  void insert_free(uintptr_t address, size_t length) {
    free_by_address_.emplace(address, length);
    free_by_size_.emplace(length, address);
    cached_bytes_ += length;
  }

  void erase_free(std::map<uintptr_t, size_t>::iterator range) {
    free_by_size_.erase({range->second, range->first});
    cached_bytes_ -= range->second;
    free_by_address_.erase(range);
  }

  void note_allocated(size_t rounded) {
    const size_t now = allocated_bytes_.fetch_add(rounded, std::memory_order_relaxed) + rounded;
    size_t peak = peak_allocated_bytes_.load(std::memory_order_relaxed);
    while (now > peak && !peak_allocated_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  std::mutex mutex_;
  std::map<uintptr_t, size_t> free_by_address_;         // free range: start → length
  std::set<std::pair<size_t, uintptr_t>> free_by_size_;  // the same ranges as (length, start), for best fit
  std::set<uintptr_t> seams_;                             // where one of our mappings may end and the next begin
  size_t cached_bytes_ = 0;                               // Σ free range lengths
  size_t pooled_bytes_ = 0;                               // Σ live pooled blocks
  size_t pooled_high_water_ = 0;                          // max pooled_bytes_ since the start or empty_cache
  std::atomic<size_t> allocated_bytes_{0};
  std::atomic<size_t> peak_allocated_bytes_{0};
};

HostAllocator& host_allocator() {
  // Leaked on purpose: storages freed during static destruction must still find it (and the process's exit
  // returns its pages anyway).
  static auto* allocator = new HostAllocator();
  return *allocator;
}

}  // namespace

namespace {
// RAM plus swap: a request beyond it cannot be backed whatever the kernel's overcommit policy lets mmap promise,
// and once written (every tensor is) it would end in the OOM killer rather than an error.
size_t memory_the_machine_has() {
  static const size_t total = [] {
    struct sysinfo info {};
    if (sysinfo(&info) != 0) return std::numeric_limits<size_t>::max();
    return (static_cast<size_t>(info.totalram) + static_cast<size_t>(info.totalswap)) * info.mem_unit;
  }();
  return total;
}
}  // namespace

std::shared_ptr<Storage> CpuBackend::allocate(size_t nbytes, Device device) {
  HG_CHECK(nbytes <= memory_the_machine_has(),
           "out of host memory allocating {} bytes ({:.1f} GiB): more than the machine's memory and swap ({:.1f} GiB)",
           nbytes, static_cast<double>(nbytes) / (1 << 30), static_cast<double>(memory_the_machine_has()) / (1 << 30));
  const size_t rounded = HostAllocator::round(nbytes);
  void* p = host_allocator().take(rounded);
  HG_CHECK(p != nullptr, "out of host memory allocating {} bytes", nbytes);
  return std::make_shared<Storage>(p, nbytes, device,
                                   [rounded](void* q) { host_allocator().give_back(q, rounded); });
}

size_t allocation_size(size_t nbytes) { return HostAllocator::round(nbytes); }
MemoryStats memory_stats() { return host_allocator().stats(); }
void reset_peak_memory_stats() { host_allocator().reset_peak(); }
void empty_cache() { host_allocator().release_cached(); }

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
        if constexpr (std::is_same_v<out_t, uint8_t>) {
          return static_cast<uint8_t>(v != in_t(0));  // bool: nonzero → 1
        } else if constexpr (std::is_same_v<out_t, int64_t> && std::is_floating_point_v<in_t>) {
          // NaN, ±inf and values outside int64's range → INT64_MIN, defined here (a plain cast is undefined
          // behaviour; x86 gives INT64_MIN, the CUDA backend does the same explicitly).
          constexpr double kTwo63 = 9223372036854775808.0;
          const double d = static_cast<double>(v);
          return d >= -kTwo63 && d < kTwo63 ? static_cast<int64_t>(d) : std::numeric_limits<int64_t>::min();
        } else {
          return static_cast<out_t>(v);
        }
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
    if constexpr (std::is_same_v<scalar_t, int64_t>) {  // exact beyond 2^53; i·step may exceed int64 alone
      const auto s = static_cast<uint64_t>(static_cast<int64_t>(start));
      const auto d = static_cast<uint64_t>(static_cast<int64_t>(step));
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(s + static_cast<uint64_t>(i) * d);
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step);
    }
  });
}

}  // namespace cpu
}  // namespace hg
