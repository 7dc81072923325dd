#pragma once
// Embedding: a lookup table of learnable vectors.
//
//   hg::nn::Embedding tokens(hg::nn::EmbeddingOptions(vocabulary, 64).padding_idx(0));
//   hg::Tensor e = tokens(ids);   // int64 ids [...] → [..., 64]
#include <cstdint>
#include <optional>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct EmbeddingOptions {
  EmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  HG_ARG(int64_t, num_embeddings);
  HG_ARG(int64_t, embedding_dim);
  /// This row starts as zeros and receives no gradient (negative values count from the end).
  HG_ARG(std::optional<int64_t>, padding_idx);
};

/// y[...] = W[ids[...]], W [num_embeddings, embedding_dim].
class EmbeddingImpl : public Module {
 public:
  explicit EmbeddingImpl(const EmbeddingOptions& options);
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim)
      : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim)) {}

  Tensor forward(const Tensor& indices);
  /// PyTorch's default: W ~ N(0, 1), the padding row zero.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  EmbeddingOptions options;
  Tensor weight;  ///< [num_embeddings, embedding_dim]
};
HG_MODULE(Embedding);

}  // namespace hg::nn
