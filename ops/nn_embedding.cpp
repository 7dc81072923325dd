// Embedding lookup: rows of a weight table picked by integer indices of any shape.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/index_check.h>
#include <hopgrad/ops/ops.h>

namespace hg {

// y[i…, :] = weight[indices[i…], :] ;  ∂L/∂weight = index_add(0, 0, indices, g) — rows picked several times
// accumulate all their gradients
Tensor embedding(const Tensor& weight, const Tensor& indices) {
  HG_CHECK(weight.defined() && indices.defined(), "embedding: got an undefined tensor");
  HG_CHECK(weight.dim() == 2, "embedding: weight must be 2-D [num_embeddings, embedding_dim], got {}", weight.desc());
  check_index("embedding", indices, weight, 0, "weight");
  const int64_t num = weight.sizes()[0], width = weight.sizes()[1];
  Tensor flat = indices.detach().reshape({indices.numel()});
  Shape out_sizes = indices.sizes();
  out_sizes.push_back(width);
  Tensor out = empty(out_sizes, weight.dtype(), weight.device());
  if (out.numel() > 0) {
    Tensor rows = out.view({flat.numel(), width});
    backend_for(weight.device()).index_select(weight.detach(), 0, flat, rows);
  }
  if (any_requires_grad(weight)) {
    record_op("embedding", {weight}, out,
              [num, width, sf = SavedTensor(flat)](const Tensors& g, const BackwardContext& c) {
                Tensor idx = sf.unpack(c);
                Tensor table = zeros({num, width}, TensorOptions(g[0].dtype()).device(g[0].device()));
                return Tensors{index_add(table, 0, idx, g[0].reshape({idx.numel(), width}))};
              });
  }
  return out;
}

}  // namespace hg
