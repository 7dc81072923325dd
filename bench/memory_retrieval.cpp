// memory_retrieval: dense modern-Hopfield retrieval, no grad — 1000 stored patterns X of width 784 (rows),
// 256 state patterns (queries) ξ, β = 1, three updates ξ ← softmax(β ξ Xᵀ) X (Ramsauer et al. 2021, eq. 3,
// patterns as rows) through hopgrad's retrieval API, nn::kernel_retrieve with the dot-product similarity
// (../shared/docs/benchmarks.md workload 5). GEMM-bound. PyTorch twin: bench/torch/memory_retrieval.py.
#include <hopgrad/hopgrad.h>

#include "workload.h"

namespace nn = hg::nn;

int main(int argc, char** argv) {
  return hgbench::run_workload(
      argc, argv, {"memory_retrieval", "1000 stored patterns × 784, 256 queries, β = 1, 3 updates, no grad"},
      [](const hgbench::Setup& setup) -> hgbench::Step {
        constexpr int64_t kStored = 1000, kWidth = 784, kUpdates = 3;
        const int64_t num_queries = 256 * setup.batch_scale;
        hg::Tensor stored = hg::randn({kStored, kWidth}, {}, &setup.gen).to(setup.device);       // X [M, d]
        hg::Tensor queries = hg::randn({num_queries, kWidth}, {}, &setup.gen).to(setup.device);  // ξ [L, d]
        const auto options =
            nn::KernelRetrievalOptions().similarity(nn::Similarity::Dot).beta(1.0).steps(kUpdates);
        auto step = [=] {
          hg::NoGradGuard no_grad;
          nn::kernel_retrieve(stored, queries, options);
        };
        // Per update: scores ξ Xᵀ and the weighted sum, 2·L·M·d each.
        return {step, kUpdates * 2 * (2.0 * num_queries * kStored * kWidth)};
      });
}
