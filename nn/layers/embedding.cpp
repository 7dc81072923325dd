// Embedding.
#include <hopgrad/nn/layers/embedding.h>

#include <ostream>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

EmbeddingImpl::EmbeddingImpl(const EmbeddingOptions& options_) : Module("Embedding"), options(options_) {
  int64_t rows = options.num_embeddings();
  HG_CHECK(rows >= 0 && options.embedding_dim() >= 0,
           "Embedding: num_embeddings and embedding_dim must be non-negative, got {} and {}", rows,
           options.embedding_dim());
  if (auto pad = options.padding_idx()) {
    HG_CHECK(*pad >= -rows && *pad < rows, "Embedding: padding_idx {} is out of range for {} embeddings", *pad, rows);
    options.padding_idx(*pad < 0 ? *pad + rows : *pad);
  }
  weight = register_parameter("weight", empty({rows, options.embedding_dim()}, kFloat32));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters() {
  init::normal_(weight);
  if (auto pad = options.padding_idx()) {
    NoGradGuard no_grad;
    weight.select(0, *pad).zero_();
  }
}

// y = W[indices]; the padding row's lookups are cut from the graph so that row gets no gradient (as PyTorch)
Tensor EmbeddingImpl::forward(const Tensor& indices) {
  HG_CHECK(indices.dtype() == kInt64, "Embedding({}, {}): expected int64 indices, got {}", options.num_embeddings(),
           options.embedding_dim(), indices.desc());
  Tensor out = embedding(weight, indices);
  if (auto pad = options.padding_idx(); pad && out.requires_grad())
    out = where(unsqueeze(eq(indices, static_cast<double>(*pad)), -1), out.detach(), out);
  return out;
}

void EmbeddingImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("Embedding({}, {}", options.num_embeddings(), options.embedding_dim());
  if (auto pad = options.padding_idx()) stream << fmt::format(", padding_idx={}", *pad);
  stream << ")";
}

}  // namespace hg::nn
