#include <hopgrad/ops/cpu/onednn.h>

#include <cstdlib>

#include <hopgrad/core/storage.h>

namespace hg::cpu {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine = [] {
    // oneDNN keeps its own cache of 1024 primitives behind hopgrad's PrimitiveCaches; it only serves a primitive
    // that one of those dropped, so beyond their size it holds JIT code no one asks for (a linear layer over
    // 4000 row counts: 90 MB resident with 1024, 33 MB with 256). A user's ONEDNN_PRIMITIVE_CACHE_CAPACITY wins.
    if (!std::getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY") && !std::getenv("DNNL_PRIMITIVE_CACHE_CAPACITY"))
      dnnl::set_primitive_cache_capacity(static_cast<int>(kDefaultPrimitiveCacheCapacity));
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

dnnl::stream& onednn_stream() {
  static dnnl::stream stream(onednn_engine());
  return stream;
}

dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void ScratchpadPrimitive::execute(std::unordered_map<int, dnnl::memory> args) const {
  std::shared_ptr<Storage> block;  // held until the stream is done with it
  if (const size_t bytes = scratchpad.get_size(); bytes > 0) {
    block = allocate_storage(bytes, kCPU);
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, onednn_engine(), block->data));
  }
  HG_DNNL_CHECK(primitive.execute(onednn_stream(), args));
  HG_DNNL_CHECK(onednn_stream().wait());
}

ScratchpadPrimitive make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  ScratchpadPrimitive result;
  HG_DNNL_CHECK(result = ScratchpadPrimitive::make<dnnl::reorder>(
                    dnnl::reorder::primitive_desc(onednn_engine(), from, onednn_engine(), to, user_scratchpad_attr())));
  return result;
}

}  // namespace hg::cpu
