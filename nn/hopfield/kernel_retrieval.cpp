// U-Hop's Stage II retrieval (see kernel_retrieval.h).
#include <hopgrad/nn/hopfield/kernel_retrieval.h>

#include <cmath>

#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

const char* similarity_name(Similarity kind) {
  switch (kind) {
    case Similarity::Dot: return "Dot";
    case Similarity::NegativeL2: return "NegativeL2";
    case Similarity::NegativeManhattan: return "NegativeManhattan";
    case Similarity::Kernel: return "Kernel";
  }
  return "?";
}

void check_patterns(const char* op, const Tensor& memories, const Tensor& queries) {
  HG_CHECK(memories.defined() && queries.defined(), "{}: memories and queries must be defined", op);
  HG_CHECK(memories.dim() >= 2 && queries.dim() >= 2 && memories.size(-1) == queries.size(-1),
           "{}: expected memories [..., M, d] and queries [..., L, d] of one width d, got memories {} and queries {}",
           op, memories.desc(), queries.desc());
  HG_CHECK(is_floating(memories.dtype()) && memories.dtype() == queries.dtype() &&
               memories.device() == queries.device(),
           "{}: expected floating patterns of one dtype on one device, got memories {} and queries {}", op,
           memories.desc(), queries.desc());
  HG_CHECK(memories.size(-2) > 0, "{}: needs at least one memory, got memories {}", op, memories.desc());
}

}  // namespace

// sim(ξ_μ, x) ∈ { ⟨ξ_μ, x⟩, −‖ξ_μ − x‖₂, −‖ξ_μ − x‖₁, ⟨Φξ_μ, Φx⟩ }
Tensor similarity(const Tensor& memories, const Tensor& queries, Similarity kind, const KernelMap& map, bool compat) {
  check_patterns("similarity", memories, queries);
  const double sign = compat ? 1.0 : -1.0;  // the reference feeds distances to the separation unnegated
  switch (kind) {
    case Similarity::Dot: return matmul(queries, memories.transpose(-2, -1));
    case Similarity::Kernel:
      HG_CHECK(map, "similarity(Kernel): needs a KernelMap, got none");
      return map->kernel(queries, memories);
    case Similarity::NegativeL2: {
      // ‖x − ξ‖² = ‖x‖² + ‖ξ‖² − 2⟨x, ξ⟩ keeps memory at O(L·M) (as torch.cdist's matmul path). Clamping at a
      // tiny positive value keeps √ differentiable at an exact match (its gradient there is taken as 0).
      const Tensor dist2 = sum(square(queries), {-1}).unsqueeze(-1) + sum(square(memories), {-1}).unsqueeze(-2) -
                           matmul(queries, memories.transpose(-2, -1)) * 2.0;
      return sqrt(clamp_min(dist2, 1e-30)) * sign;
    }
    case Similarity::NegativeManhattan:
      // Σ_i |x_i − ξ_μi| has no matmul form: [..., L, 1, d] − [..., 1, M, d] costs O(L·M·d) memory.
      return sum(abs(queries.unsqueeze(-2) - memories.unsqueeze(-3)), {-1}) * sign;
  }
  HG_CHECK(false, "similarity: unknown kind {}", static_cast<int>(kind));
  return {};
}

// x ← Ξ sep(β sim(Ξ, x))     (compat: x ← Ξ β sep(sim(Ξ, x)))
Tensor kernel_retrieve(const Tensor& memories, const Tensor& queries, const KernelRetrievalOptions& options,
                       const KernelMap& map, Generator* gen) {
  check_patterns("kernel_retrieve", memories, queries);
  HG_CHECK(std::isfinite(options.beta()) && options.beta() > 0.0, "kernel_retrieve: beta must be positive and "
           "finite, got {}", options.beta());
  HG_CHECK(options.steps() >= 0, "kernel_retrieve: steps must be >= 0, got {}", options.steps());
  const Similarity kind = options.similarity();
  HG_CHECK(kind != Similarity::Kernel || map,
           "kernel_retrieve: Similarity::Kernel needs a KernelMap (pass the one trained in Stage I), got none");
  HG_CHECK(kind != Similarity::Kernel || map->dim() == memories.size(-1),
           "kernel_retrieve: the KernelMap takes patterns of width {}, got memories {}", map->dim(), memories.desc());

  SeparationOptions separation = options.separation();
  const bool kernel_space = kind == Similarity::Kernel;
  if (separation.feature_dim() == 0) separation.feature_dim(kernel_space ? map->feature_dim() : memories.size(-1));
  Separation sep(separation);
  sep->eval();  // retrieval is deterministic: no forgetting noise
  sep->to(memories.device(), memories.dtype());
  const bool dot_like = kind == Similarity::Dot || kernel_space;
  HG_CHECK(sep->forms_weights() || (dot_like && !options.compat()),
           "kernel_retrieve: separation '{}' does not form weights, so it only works with the Dot or Kernel "
           "similarity (without compat), got similarity {}{}",
           to_string(separation.kind()), similarity_name(kind), options.compat() ? " with compat" : "");
  const Tensor beta = scalar_tensor(options.beta(), TensorOptions(memories.dtype()).device(memories.device()));
  // The keys of the inner product are fixed across updates: Φ(Ξ) once.
  const Tensor keys = kernel_space ? map->forward(memories) : memories;

  Tensor x = queries;
  for (int64_t step = 0; step < options.steps(); ++step) {
    if (dot_like && !options.compat()) {
      // ⟨Φξ, Φx⟩ scores through attend, which also takes the sub-quadratic paths (linear, random features).
      x = sep->attend(kernel_space ? map->forward(x) : x, keys, memories, beta, {}, {}, 0.0, nullptr, gen);
      continue;
    }
    const Tensor scores = kernel_space ? matmul(map->forward(x), keys.transpose(-2, -1))
                                       : similarity(memories, x, kind, map, options.compat());
    Association association = options.compat() ? sep->weights(scores, {}, gen) : sep->weights(scores * beta, {}, gen);
    Tensor weights = association.keep.defined() ? association.weights * association.keep : association.weights;
    if (options.compat()) weights = weights * beta;
    x = matmul(weights, memories);
  }
  return x;
}

}  // namespace hg::nn
