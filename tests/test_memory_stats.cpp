// hg::memory_stats / reset_peak_memory_stats / empty_cache: exact byte counts of the host and CUDA caching
// allocators as tensors are created and freed, the peak and its reset, reserved (cached) blocks, and errors.
// The statistics are process-wide, so every check compares with numbers read just before.
#include "testing.h"

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

// Whether a freed block of `nbytes` stays cached: the host keeps blocks of 64 KiB and more (smaller ones go back
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
  CHECK(hg::cpu::allocation_size(4000) == 4096);
  CHECK(hg::cpu::allocation_size(size_t{1} << 20) == size_t{1} << 20);
  CHECK(hg::cpu::allocation_size((size_t{1} << 20) + 1) == (size_t{9} << 17));  // 1.125 MiB: ≤ 12.5 % more
  check_allocated_freed_and_reserved(hg::kCPU);
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
