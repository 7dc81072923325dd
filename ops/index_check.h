#pragma once
// Index validation shared by the indexing ops (ops/index.cpp) and embedding (ops/nn_embedding.cpp).
#include <hopgrad/core/tensor.h>

namespace hg {

/// Throws hg::Error naming `op` unless `index` is an int64 tensor on `self`'s device whose values all lie in
/// [0, self.size(dim)). `self_name` is what the message calls `self` ("input", "self", "weight"). Costs one min
/// and one max reduction on the index's device and a single 2-element copy to the host.
void check_index(const char* op, const Tensor& index, const Tensor& self, int64_t dim, const char* self_name);

}  // namespace hg
