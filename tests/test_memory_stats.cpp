// hg::memory_stats / reset_peak_memory_stats / empty_cache: exact byte counts of the host and CUDA caching
// allocators as tensors are created and freed, the peak and its reset, reserved (cached) blocks, and errors;
// and the host pool's policy (ops/cpu/memory.cpp): free pages serve requests of any size, and reserved bytes
// never exceed the peak of live ones. The statistics are process-wide, so every check compares with numbers
// read just before.
#include "testing.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include <hopgrad/ops/cpu/cpu_backend.h>
#ifdef HG_WITH_CUDA
#include <hopgrad/ops/cuda/cuda_backend.h>
#endif

using hg::Tensor;

namespace {

// The block the device's allocator hands out for a request of `nbytes`: what the statistics count.
size_t block(hg::Device device, size_t nbytes) {
#ifdef HG_WITH_CUDA
  if (device.is_cuda()) return hg::cuda::allocation_size(nbytes);
#endif
  return hg::cpu::allocation_size(nbytes);
}

// Whether a freed block of `nbytes` stays cached: the host pools blocks of 64 KiB and more (smaller ones go back
// to malloc's own bins), a GPU keeps every block.
bool cached_when_freed(hg::Device device, size_t nbytes) { return device.is_cuda() || block(device, nbytes) >= (64 << 10); }

Tensor floats(int64_t n, hg::Device device) { return hg::empty({n}, hg::TensorOptions(hg::kFloat32).device(device)); }

void check_allocated_freed_and_reserved(hg::Device device) {
  hg::empty_cache();
  const hg::MemoryStats start = hg::memory_stats(device);
  CHECK(start.reserved_bytes == start.allocated_bytes);  // nothing cached right after empty_cache
  CHECK(start.peak_allocated_bytes >= start.allocated_bytes);

  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{40000}, int64_t{262144}, int64_t{300001}}) {
    CAPTURE(n);
    const size_t bytes = block(device, static_cast<size_t>(n) * 4);
    const hg::MemoryStats before = hg::memory_stats(device);
    {
      Tensor t = floats(n, device);
      const hg::MemoryStats held = hg::memory_stats(device);
      CHECK(held.allocated_bytes == before.allocated_bytes + bytes);
      CHECK(held.peak_allocated_bytes >= held.allocated_bytes);
      // Served from the cache (reserved unchanged) or freshly from the system (reserved grows with it).
      CHECK((held.reserved_bytes == before.reserved_bytes || held.reserved_bytes == before.reserved_bytes + bytes));
    }
    const hg::MemoryStats freed = hg::memory_stats(device);
    CHECK(freed.allocated_bytes == before.allocated_bytes);
    const size_t cached = freed.reserved_bytes - freed.allocated_bytes;
    CHECK(cached == (cached_when_freed(device, static_cast<size_t>(n) * 4) ? bytes : 0));
    hg::empty_cache();
    const hg::MemoryStats emptied = hg::memory_stats(device);
    CHECK(emptied.reserved_bytes == emptied.allocated_bytes);
    CHECK(emptied.allocated_bytes == before.allocated_bytes);
  }

  // A cached block comes back for the next request of its size class: reserved does not grow.
  const size_t big = block(device, size_t{1} << 20);
  { Tensor t = floats(int64_t{1} << 18, device); }
  const hg::MemoryStats cached = hg::memory_stats(device);
  CHECK(cached.reserved_bytes == cached.allocated_bytes + big);
  {
    Tensor again = floats(int64_t{1} << 18, device);
    const hg::MemoryStats reused = hg::memory_stats(device);
    CHECK(reused.allocated_bytes == cached.allocated_bytes + big);
    CHECK(reused.reserved_bytes == cached.reserved_bytes);
  }
  hg::empty_cache();
}

void check_peak_and_reset(hg::Device device) {
  const size_t small = block(device, 4096), large = block(device, size_t{3} << 20);
  hg::reset_peak_memory_stats(device);
  const hg::MemoryStats base = hg::memory_stats(device);
  CHECK(base.peak_allocated_bytes == base.allocated_bytes);
  {
    Tensor a = floats(1024, device);
    Tensor b = floats(3 << 18, device);
    a = Tensor();  // freed: the peak keeps a + b
    Tensor c = floats(1024, device);
    const hg::MemoryStats now = hg::memory_stats(device);
    CHECK(now.allocated_bytes == base.allocated_bytes + large + small);
    CHECK(now.peak_allocated_bytes == base.allocated_bytes + large + small);
    Tensor d = floats(1024, device);
    CHECK(hg::memory_stats(device).peak_allocated_bytes == base.allocated_bytes + large + 2 * small);
  }
  const hg::MemoryStats after = hg::memory_stats(device);
  CHECK(after.allocated_bytes == base.allocated_bytes);
  CHECK(after.peak_allocated_bytes == base.allocated_bytes + large + 2 * small);
  hg::reset_peak_memory_stats(device);
  CHECK(hg::memory_stats(device).peak_allocated_bytes == base.allocated_bytes);
}

// An op's output and an autograd step are counted like any other tensor: exp(x) on [256, 256] holds one more
// block of 256 KiB while alive; forward + backward of Σ (x·x) leaves only x's gradient behind.
void check_ops_and_autograd(hg::Device device) {
  const size_t plane = block(device, 256 * 256 * 4);
  Tensor x = hg::randn({256, 256}).to(device).requires_grad_();
  hg::reset_peak_memory_stats(device);
  const hg::MemoryStats base = hg::memory_stats(device);
  {
    Tensor y = hg::exp(x.detach());
    CHECK(hg::memory_stats(device).allocated_bytes == base.allocated_bytes + plane);
  }
  CHECK(hg::memory_stats(device).allocated_bytes == base.allocated_bytes);
  CHECK(hg::memory_stats(device).peak_allocated_bytes == base.allocated_bytes + plane);

  (x * x).sum().backward();
  const hg::MemoryStats trained = hg::memory_stats(device);
  CHECK(trained.allocated_bytes == base.allocated_bytes + plane);  // x.grad
  // At least x·x and its gradient (or x's) were alive together during backward.
  CHECK(trained.peak_allocated_bytes >= base.allocated_bytes + 2 * plane);
}

}  // namespace

TEST_CASE("memory_stats [cpu]: allocated bytes follow tensors exactly; freed large blocks stay reserved") {
  CHECK(hg::cpu::allocation_size(0) == 64);
  CHECK(hg::cpu::allocation_size(1) == 64);
  CHECK(hg::cpu::allocation_size(4000) == 4032);                                // malloc'ed: 64-byte multiples
  CHECK(hg::cpu::allocation_size((64 << 10) - 10) == (64 << 10));
  CHECK(hg::cpu::allocation_size((64 << 10) + 1) == (64 << 10) + 4096);          // pooled: whole pages
  CHECK(hg::cpu::allocation_size(size_t{1} << 20) == size_t{1} << 20);
  CHECK(hg::cpu::allocation_size((size_t{1} << 20) + 1) == (size_t{1} << 20) + 4096);
  check_allocated_freed_and_reserved(hg::kCPU);
}

namespace {

constexpr int64_t kMiB = 1 << 20;

// A float32 tensor of `bytes` bytes on the host, and its data as raw bytes.
Tensor host_bytes(int64_t bytes) { return hg::empty({bytes / 4}, hg::kFloat32); }
uint8_t* raw(const Tensor& t) { return static_cast<uint8_t*>(t.data_ptr()); }

}  // namespace

TEST_CASE("host pool [cpu]: a freed block serves the next request of its size, or a smaller one, in place") {
  hg::empty_cache();
  const hg::MemoryStats start = hg::memory_stats();
  void* address = nullptr;
  { address = host_bytes(3 * kMiB).data_ptr(); }
  {
    Tensor same = host_bytes(3 * kMiB);
    CHECK(same.data_ptr() == address);
    CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes + 3 * kMiB);
  }
  {
    // 1 MiB is cut from the front of the free 3 MiB; the next 2 MiB from the rest: no new memory.
    Tensor first = host_bytes(kMiB), second = host_bytes(2 * kMiB);
    CHECK(first.data_ptr() == address);
    CHECK(raw(second) == static_cast<uint8_t*>(address) + kMiB);
    const hg::MemoryStats both = hg::memory_stats();
    CHECK(both.reserved_bytes == start.reserved_bytes + 3 * kMiB);
    CHECK(both.allocated_bytes == start.allocated_bytes + 3 * kMiB);
  }
  // Freed again, the two pieces merge back: 3 MiB in one piece.
  CHECK(host_bytes(3 * kMiB).data_ptr() == address);
  hg::empty_cache();
  CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes);
}

TEST_CASE("host pool [cpu]: a request larger than every free block takes their pages while the pool is over budget") {
  // The pool may hold kSlack = 4 MiB (ops/cpu/memory.cpp) beyond the peak of live pooled bytes since the last
  // empty_cache; a fresh block that would take it past that is filled with free pages first, largest first.
  constexpr int64_t kSlack = 4 * kMiB;
  hg::empty_cache();
  const hg::MemoryStats start = hg::memory_stats();
  {
    // Two free blocks, 4 MiB of 0xA1 and 8 MiB of 0xB2, with a live block between them so they cannot merge:
    // cut from one free 13 MiB range, so where the kernel puts mappings does not matter.
    { Tensor whole = host_bytes(13 * kMiB); }
    Tensor a = host_bytes(4 * kMiB), separator = host_bytes(kMiB), b = host_bytes(8 * kMiB);
    REQUIRE(raw(b) == raw(a) + 5 * kMiB);
    std::fill_n(raw(a), 4 * kMiB, uint8_t{0xA1});
    std::fill_n(raw(b), 8 * kMiB, uint8_t{0xB2});
    a = Tensor();
    b = Tensor();
    CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes + 13 * kMiB);

    // 20 MiB: the live peak becomes 21 MiB, the budget 25 MiB; 1 + 12 + 20 = 33 MiB would be 8 MiB over, so
    // the free 8 MiB block is moved in (its bytes come along: its pages were not faulted anew) and 12 MiB are
    // fresh zero pages. The 4 MiB block stays free, within the slack.
    Tensor c = host_bytes(20 * kMiB);
    const hg::MemoryStats now = hg::memory_stats();
    CHECK(now.allocated_bytes == start.allocated_bytes + 21 * kMiB);
    CHECK(now.reserved_bytes == now.allocated_bytes + kSlack);
    const uint8_t* bytes = raw(c);
    CHECK(std::count(bytes, bytes + 8 * kMiB, uint8_t{0xB2}) == 8 * kMiB);
    CHECK(std::count(bytes + 8 * kMiB, bytes + 20 * kMiB, uint8_t{0}) == 12 * kMiB);
    std::fill_n(raw(c), 20 * kMiB, uint8_t{0xC3});  // every page of it is writable
  }
  hg::empty_cache();
  CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes);
  {
    // Within the budget, a request no free block holds gets fresh pages and leaves the free block alone:
    // 2 MiB free, 3 MiB requested, 5 MiB reserved against a budget of 3 + 4.
    void* freed = host_bytes(2 * kMiB).data_ptr();
    Tensor fresh = host_bytes(3 * kMiB);
    CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes + 5 * kMiB);
    CHECK(host_bytes(2 * kMiB).data_ptr() == freed);
  }
  hg::empty_cache();
}

TEST_CASE("host pool [cpu]: free bytes beyond 1 GiB go back to the system; below it, they stay for reuse") {
  // A 1.5 GiB block is mapped but never touched here, so it costs address space, not memory. The free 2 MiB lie
  // between two live blocks (all three cut from one range), so they cannot merge with the huge block wherever
  // the kernel maps it; and 2 MiB is within the pool's 4 MiB of slack, so the huge block does not take them in.
  hg::empty_cache();
  const hg::MemoryStats start = hg::memory_stats();
  {
    { Tensor whole = host_bytes(4 * kMiB); }
    Tensor below = host_bytes(kMiB), small = host_bytes(2 * kMiB), above = host_bytes(kMiB);
    REQUIRE(raw(above) == raw(below) + 3 * kMiB);
    small = Tensor();
    CHECK(hg::memory_stats().reserved_bytes == start.reserved_bytes + 4 * kMiB);  // the free 2 MiB is kept
    {
      Tensor huge = host_bytes(1536 * kMiB);
      CHECK(hg::memory_stats().allocated_bytes == start.allocated_bytes + 1538 * kMiB);
    }
    // 1538 MiB free is over the cap: the largest range (the huge block) is unmapped, the 2 MiB one stays.
    const hg::MemoryStats after = hg::memory_stats();
    CHECK(after.allocated_bytes == start.allocated_bytes + 2 * kMiB);
    CHECK(after.reserved_bytes == start.reserved_bytes + 4 * kMiB);
  }
  hg::empty_cache();
}

TEST_CASE("host pool [cpu]: reserved bytes stay within the budget, and live blocks never overlap") {
  // Random sizes from 64 KiB to 6 MiB, allocated and freed in random order, so blocks are cut, merged and
  // gathered from pieces of other blocks (whose moves cross the seams between mappings). Each live block holds
  // its own byte; a block that another one overlapped would show a foreign byte when it is freed.
  constexpr size_t kSlack = 4 * kMiB;  // ops/cpu/memory.cpp
  hg::empty_cache();
  hg::reset_peak_memory_stats();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> size(16, 1536);  // pages: 64 KiB to 6 MiB
  struct Live {
    Tensor tensor;
    uint8_t mark;
  };
  std::vector<Live> live;
  for (int step = 0; step < 400; ++step) {
    CAPTURE(step);
    if (live.size() < 16 && (live.empty() || rng() % 3 != 0)) {
      Tensor t = host_bytes(size(rng) * 4096);
      const uint8_t mark = static_cast<uint8_t>(step % 251 + 1);
      std::fill_n(raw(t), t.numel() * 4, mark);
      live.push_back({t, mark});
    } else {
      const size_t victim = rng() % live.size();
      const Tensor& t = live[victim].tensor;
      CHECK(std::count(raw(t), raw(t) + t.numel() * 4, live[victim].mark) == t.numel() * 4);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
    }
    const hg::MemoryStats now = hg::memory_stats();
    CHECK(now.reserved_bytes <= now.peak_allocated_bytes + kSlack);
  }
  live.clear();
  hg::empty_cache();
  CHECK(hg::memory_stats().reserved_bytes == hg::memory_stats().allocated_bytes);
}

TEST_CASE("memory_stats [cpu]: the peak, and reset_peak_memory_stats") { check_peak_and_reset(hg::kCPU); }

TEST_CASE("memory_stats [cpu]: op outputs and autograd buffers are counted") { check_ops_and_autograd(hg::kCPU); }

TEST_CASE("memory_stats [cpu]: concurrent allocations from several threads balance exactly") {
  constexpr int kThreads = 4, kRounds = 2000;
  const size_t small = block(hg::kCPU, 4096), large = block(hg::kCPU, 128 << 10);
  hg::reset_peak_memory_stats(hg::kCPU);
  const hg::MemoryStats base = hg::memory_stats(hg::kCPU);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      for (int r = 0; r < kRounds; ++r) Tensor x = floats((r + t) % 2 ? 1024 : 32768, hg::kCPU);
    });
  for (auto& thread : threads) thread.join();
  const hg::MemoryStats after = hg::memory_stats(hg::kCPU);
  CHECK(after.allocated_bytes == base.allocated_bytes);
  CHECK(after.peak_allocated_bytes >= base.allocated_bytes + small);
  CHECK(after.peak_allocated_bytes <= base.allocated_bytes + kThreads * large);
}

TEST_CASE("memory_stats: a CUDA device this build or machine lacks is an error") {
  const hg::Device missing = hg::Device::cuda(hg::cuda_device_count() + 3);
  CHECK_THROWS_WITH_AS(hg::memory_stats(missing), doctest::Contains("memory_stats"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::memory_stats(missing), doctest::Contains(missing.str().c_str()), hg::Error);
  CHECK_THROWS_WITH_AS(hg::reset_peak_memory_stats(missing), doctest::Contains("reset_peak_memory_stats"), hg::Error);
  hg::empty_cache();  // fine on any build: it empties whatever caches exist
}

TEST_CASE("memory_stats [cuda]: allocated, peak, reserved and reset on a GPU" * doctest::skip(!hgtest::has_cuda())) {
  const hg::Device gpu = hg::Device::cuda(0);
  check_allocated_freed_and_reserved(gpu);
  check_peak_and_reset(gpu);
  check_ops_and_autograd(gpu);
}

TEST_CASE("host allocator: a request beyond the machine's memory and swap is an error, not an OOM kill later") {
  // 4 TiB of float32: mmap may promise it under overcommit, but writing it (every tensor is written) would end in
  // the OOM killer.
  CHECK_THROWS_WITH_AS(hg::zeros({int64_t{1} << 40}), doctest::Contains("more than the machine's memory and swap"),
                       hg::Error);
  CHECK(hg::zeros({1 << 20}).numel() == 1 << 20);
}
