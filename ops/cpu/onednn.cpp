#include <hopgrad/ops/cpu/onednn.h>

#include <hopgrad/core/storage.h>

namespace hg::cpu {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
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

void execute_with_host_scratchpad(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpad,
                                  std::unordered_map<int, dnnl::memory> args) {
  std::shared_ptr<Storage> block;  // held until the stream is done with it
  if (const size_t bytes = scratchpad.get_size(); bytes > 0) {
    block = allocate_storage(bytes, kCPU);
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, onednn_engine(), block->data));
  }
  HG_DNNL_CHECK(primitive.execute(onednn_stream(), args));
  HG_DNNL_CHECK(onednn_stream().wait());
}

}  // namespace hg::cpu
