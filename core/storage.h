#pragma once
// Storage: one allocation on one device, shared by every tensor that views it. The version counter lives
// here so that all views of a buffer see in-place writes (autograd uses it to reject stale saved tensors).
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

#include <hopgrad/core/device.h>

namespace hg {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::function<void(void*)> deleter;  ///< frees `data`; empty for borrowed memory
  std::atomic<uint64_t> version{0};    ///< bumped by every in-place write to any view of this storage

  Storage(void* d, size_t n, Device dev, std::function<void(void*)> del)
      : data(d), nbytes(n), device(dev), deleter(std::move(del)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (deleter) deleter(data);
  }
};

/// Allocates `nbytes` on `device` through that device's backend allocator (64-byte aligned on the host).
std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device);

}  // namespace hg
