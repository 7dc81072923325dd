#pragma once
// What the attention kernels of every backend (ops/cpu/attention.cpp, ops/cuda/attention.cu) read their operands
// through: the problem sizes and the mask as a plain strided view, trivially copyable so a CUDA kernel takes them
// as arguments. Internal to ops/; not part of the public API.
#include <cstdint>

#include <hopgrad/core/tensor.h>

namespace hg::detail {

/// q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev].
struct AttentionSizes {
  int64_t B, H, L, S, E, Ev;
};

inline AttentionSizes attention_sizes(const Tensor& q, const Tensor& k, const Tensor& v) {
  return {q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), v.size(3)};
}

/// The mask as a [B, H, L, S] view: bool (true = the pair takes part) or the scores' dtype (added to them).
/// data null = no mask.
struct MaskView {
  const void* data = nullptr;
  bool is_bool = false;
  int64_t sb = 0, sh = 0, si = 0, sj = 0;
};

inline MaskView mask_view(const Tensor* mask) {
  MaskView m;
  if (!mask) return m;
  m.data = mask->data_ptr();
  m.is_bool = mask->dtype() == kBool;
  m.sb = mask->stride(0), m.sh = mask->stride(1), m.si = mask->stride(2), m.sj = mask->stride(3);
  return m;
}

}  // namespace hg::detail
