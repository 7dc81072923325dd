#pragma once
// Shared oneDNN 2.6 plumbing for the CPU backend: one engine and stream, a checked-call macro, and a
// primitive cache keyed by a string built from the shapes (creating a primitive costs far more than running a
// small one).
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include <hopgrad/core/error.h>

namespace hg::cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();

/// The attribute for a primitive that takes its scratchpad as an argument (scratchpad_mode::user), to be kept as
/// a ScratchpadPrimitive. oneDNN's own (library) scratchpad is a malloc'ed buffer per thread that lives as long
/// as any primitive needing it, and such a primitive may only run (and be destroyed) on the thread that made it;
/// a user scratchpad comes from hopgrad's host pool per call, so a cached primitive serves any thread, its pages
/// serve tensors too between calls, and memory_stats counts them while they are in use.
dnnl::primitive_attr user_scratchpad_attr();

/// A primitive created with user_scratchpad_attr() and the scratchpad it takes on each call (its
/// primitive_desc's scratchpad_desc()). Every primitive the CPU backend caches is one.
struct ScratchpadPrimitive {
  dnnl::primitive primitive;  // empty when default-made
  dnnl::memory::desc scratchpad;

  /// The `Primitive` (dnnl::matmul, dnnl::reorder, ...) made from `pd`, with pd's scratchpad.
  template <typename Primitive, typename PrimitiveDesc> static ScratchpadPrimitive make(const PrimitiveDesc& pd) {
    return {Primitive(pd), pd.scratchpad_desc()};
  }
  explicit operator bool() const { return static_cast<bool>(primitive); }
  /// Runs it on the stream with `args` and waits; the scratchpad is a block of the host pool held for the call.
  void execute(std::unordered_map<int, dnnl::memory> args) const;
};

/// The reorder from layout `from` to layout `to`, with a user scratchpad.
ScratchpadPrimitive make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);

/// How many primitives each PrimitiveCache keeps. A training step of the reference workloads needs a dozen at
/// most (vit_tiny: 8 matmul, 2 layer-norm and 2 convolution primitives), so theirs are never rebuilt; varying
/// shapes cost at most this many entries (~60 KB each) per cache.
inline constexpr size_t kDefaultPrimitiveCacheCapacity = 256;

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

/// Thread-safe cache of created primitives (and their descriptors) by key, holding at most `capacity` of them:
/// beyond it the least recently used one is dropped. Keys hold shapes, and a model fed data of varying sizes
/// (MIL bags, DeepRC's minibatches of repertoires) meets a new shape at nearly every step; unbounded, the cache
/// kept every primitive ever created (a linear layer over 4000 row counts: +230 MB of descriptors and JIT code).
/// A dropped primitive is rebuilt on its next use (0.1–0.3 ms); one still being run by a
/// caller lives until that caller's shared_ptr goes.
template <typename Value>
class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity = kDefaultPrimitiveCacheCapacity) : capacity_(capacity) {}

  std::shared_ptr<const Value> get(const std::string& key, const std::function<Value()>& create) {
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      entries_.splice(entries_.begin(), entries_, it->second);  // now the most recently used
      return it->second->second;
    }
    auto value = std::make_shared<const Value>(create());
    entries_.emplace_front(key, value);
    index_.emplace(key, entries_.begin());
    if (entries_.size() > capacity_) {
      index_.erase(entries_.back().first);
      entries_.pop_back();
    }
    return value;
  }

  size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const Value>>;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

}  // namespace hg::cpu
