// hopfield_attention: multi-head softmax attention as a Hopfield layer with one update — batch 32, 64 state
// and 64 stored patterns (self-association: the input is state, stored patterns and pattern projections),
// width 128, 4 heads, with in/out projections and no pattern LayerNorms, so it is exactly PyTorch's
// MultiheadAttention; forward + backward of Σ out, the input requiring grad (../shared/docs/benchmarks.md
// workload 1). Per-op framework overhead is a large share of it. PyTorch twin: bench/torch/hopfield_attention.py.
#include <hopgrad/hopgrad.h>

#include "workload.h"

namespace nn = hg::nn;

int main(int argc, char** argv) {
  return hgbench::run_workload(
      argc, argv, {"hopfield_attention", "Hopfield layer = 4-head attention, batch 32, 64 patterns, width 128, fwd+bwd"},
      [](const hgbench::Setup& setup) -> hgbench::Step {
        constexpr int64_t kPatterns = 64, kWidth = 128, kHeads = 4;
        const int64_t batch = 32 * setup.batch_scale;
        // β = 1/√(width/heads), one update: ξ_new = softmax(β Q Kᵀ) V per head, then W_O.
        nn::Hopfield hopfield(nn::HopfieldOptions(kWidth)
                                  .num_heads(kHeads)
                                  .normalize_stored_pattern(false)
                                  .normalize_stored_pattern_affine(false)
                                  .normalize_state_pattern(false)
                                  .normalize_state_pattern_affine(false)
                                  .normalize_pattern_projection(false)
                                  .normalize_pattern_projection_affine(false));
        hopfield->to(setup.device);
        // [B, L = S, E]
        hg::Tensor x = hg::randn({batch, kPatterns, kWidth}, {}, &setup.gen).to(setup.device).requires_grad_();
        auto step = [=] {
          hopfield->zero_grad();  // gradients set to none, as the twin
          x.set_grad({});
          hg::sum(hopfield->forward(x)).backward();
        };
        // Forward: Q, K, V projections 2·B·L·E·3E, scores and weighted sum 2 · 2·B·L·S·E (over all heads),
        // out-projection 2·B·L·E·E; backward twice the forward (input and weight gradients of every GEMM).
        const double tokens = batch * kPatterns;
        const double forward = 2 * tokens * kWidth * 3 * kWidth + 2 * (2 * tokens * kPatterns * kWidth) +
                               2 * tokens * kWidth * kWidth;
        return {step, 3 * forward};
      });
}
