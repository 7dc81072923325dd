#pragma once
// How much memory the tensors on a device hold, as PyTorch's torch.cuda.memory_allocated /
// max_memory_allocated / memory_reserved, for the host as well as for each GPU. Every storage hopgrad allocates
// goes through its device's caching allocator (ops/cpu/memory.cpp, ops/cuda/allocator.cpp), which counts it.
//
//   hg::reset_peak_memory_stats(hg::kCPU);
//   auto loss = model->forward(x).sum();
//   loss.backward();
//   fmt::print("peak {} MiB\n", hg::memory_stats(hg::kCPU).peak_allocated_bytes >> 20);
//
// Bytes are the allocator's block sizes (requests rounded up: to whole 4 KiB pages from 64 KiB on, to 64 bytes
// below, on the host; to size classes, ≤ 25 % more, on a GPU). Not counted: memory a tensor borrows (from_blob) and a library's own internal buffers
// (oneDNN's scratchpads and cuBLAS workspaces).
#include <cstddef>

#include <hopgrad/core/device.h>

namespace hg {

struct MemoryStats {
  size_t allocated_bytes = 0;       ///< held by live storages now
  size_t peak_allocated_bytes = 0;  ///< highest allocated_bytes since start or the last reset_peak_memory_stats
  size_t reserved_bytes = 0;        ///< allocated + the free blocks cached for reuse: what the allocator holds
};

/// The allocator statistics of `device` (throws hg::Error for a CUDA device this build or machine lacks).
MemoryStats memory_stats(Device device = kCPU);
/// Sets `device`'s peak_allocated_bytes to its current allocated_bytes, to measure the peak of what follows.
void reset_peak_memory_stats(Device device = kCPU);
/// Gives every cached free block back to the system (host) and to the driver (each GPU); blocks in use stay.
/// reserved_bytes drops to allocated_bytes. Like torch.cuda.empty_cache, only useful to release memory to
/// other processes or to measure reserved memory from a clean start: later allocations are slower until the
/// cache refills.
void empty_cache();

}  // namespace hg
