#pragma once
// U-Hop's Stage II: kernelised retrieval x ← Ξ sep(β sim(Ξ, x)) (spec D.1–D.2), with the similarity measures of
// the reference's memory-retrieval experiments, and any separation that forms weights.
//
//   auto x = hg::nn::kernel_retrieve(memories, queries, hg::nn::KernelRetrievalOptions(), phi);   // after Stage I
//   auto mhn = hg::nn::kernel_retrieve(memories, queries,
//       hg::nn::KernelRetrievalOptions().similarity(hg::nn::Similarity::Dot));                     // plain MHN
//   auto dam = hg::nn::kernel_retrieve(memories, queries, hg::nn::KernelRetrievalOptions()
//       .similarity(hg::nn::Similarity::Dot)
//       .separation(hg::nn::SeparationOptions(hg::nn::SeparationKind::Polynomial)));               // poly-10 DAM
//
// Patterns are rows: memories Ξ [..., M, d], queries x [..., L, d] (batched queries; leading dims broadcast).
#include <cstdint>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/kernel_map.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

enum class Similarity {
  Dot,                ///< ⟨ξ_μ, x⟩                          (modern Hopfield network)
  NegativeL2,         ///< −‖ξ_μ − x‖₂
  NegativeManhattan,  ///< −‖ξ_μ − x‖₁
  Kernel,             ///< K(ξ_μ, x) = ⟨Φξ_μ, Φx⟩            (U-Hop)
};

struct KernelRetrievalOptions {
  HG_ARG(Similarity, similarity) = Similarity::Kernel;
  /// β > 0.
  HG_ARG(double, beta) = 1.0;
  /// T, the number of updates (the experiments use one).
  HG_ARG(int64_t, steps) = 1;
  /// Any separation that forms weights; Dot and Kernel without compat also take the ones that do not
  /// (linear attention, random features). The reference's poly-10 baseline is SeparationKind::Polynomial.
  HG_ARG(SeparationOptions, separation);
  /// The reference code's two quirks: the distances enter with a positive sign (the farthest memory gets the
  /// most weight), and β multiplies the separation's output instead of its input (a no-op at β = 1).
  HG_ARG(bool, compat) = false;
};

/// sim(Ξ, x) for every (query, memory) pair: memories [..., M, d], queries [..., L, d] → [..., L, M]. `map` is
/// needed by Similarity::Kernel only. With compat the distances are positive.
Tensor similarity(const Tensor& memories, const Tensor& queries, Similarity kind, const KernelMap& map = nullptr,
                  bool compat = false);

/// `steps` updates x ← Ξ sep(β sim(Ξ, x)) of the queries [..., L, d] → [..., L, d]. Deterministic (the
/// separation runs in eval mode; a random mask draws from `gen`). Differentiable in memories, queries and Φ.
Tensor kernel_retrieve(const Tensor& memories, const Tensor& queries, const KernelRetrievalOptions& options = {},
                       const KernelMap& map = nullptr, Generator* gen = nullptr);

}  // namespace hg::nn
