#pragma once
// Shared oneDNN 2.6 plumbing for the CPU backend: one engine and stream, a checked-call macro, and a
// primitive cache keyed by a string built from the shapes (creating a primitive costs far more than running a
// small one).
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include <hopgrad/core/error.h>

namespace hg::cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();

/// The attribute for a primitive that takes its scratchpad as an argument (scratchpad_mode::user), to be run
/// with execute_with_host_scratchpad(). oneDNN's own (library) scratchpad is a malloc'ed buffer per thread that
/// lives as long as any primitive needing it; a user scratchpad comes from hopgrad's host pool per call, so its
/// pages serve tensors too between calls, and memory_stats counts them while they are in use.
dnnl::primitive_attr user_scratchpad_attr();

/// Runs `primitive` (created with user_scratchpad_attr()) on the stream with `args` and waits for it; its
/// scratchpad, of the size `scratchpad` (the primitive_desc's scratchpad_desc()) says, is a block of the host
/// allocator held for the call.
void execute_with_host_scratchpad(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpad,
                                  std::unordered_map<int, dnnl::memory> args);

/// Runs a oneDNN C++ call, turning dnnl::error into hg::Error with the call site.
#define HG_DNNL_CHECK(expr)                                                                           \
  do {                                                                                                \
    try {                                                                                             \
      expr;                                                                                           \
    } catch (const dnnl::error& e) {                                                                  \
      ::hg::detail::throw_error(__FILE__, __LINE__,                                                   \
                                ::fmt::format("oneDNN call failed: {} (status {})", e.what(),         \
                                              static_cast<int>(e.status)));                           \
    }                                                                                                 \
  } while (0)

/// Thread-safe cache of created primitives (and their descriptors) by key.
template <typename Value>
class PrimitiveCache {
 public:
  Value& get(const std::string& key, const std::function<Value()>& create) {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, create()).first;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, Value> cache_;
};

}  // namespace hg::cpu
