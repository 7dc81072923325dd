// mil_pool: one training step of a multiple-instance model — 32 bags × 100 instances × 230 features;
// Linear(230→128) + ReLU per instance; Hopfield pooling with one learned query, 1 head, width 128 (hflayers'
// defaults: LayerNorms on stored, state and projected patterns, in/out projections, β = 1/√128; hopgrad folds the
// key and value projections into the one query, see below);
// Linear(128→1); BCE-with-logits; Adam (../shared/docs/benchmarks.md workload 4). Small GEMMs, so per-op
// framework overhead shows. PyTorch twin: bench/torch/mil_pool.py.
#include <memory>

#include <hopgrad/hopgrad.h>

#include "workload.h"

namespace nn = hg::nn;

int main(int argc, char** argv) {
  return hgbench::run_workload(
      argc, argv, {"mil_pool", "32 bags × 100 × 230, Linear+ReLU, HopfieldPooling (1 query, width 128), BCE, Adam"},
      [](const hgbench::Setup& setup) -> hgbench::Step {
        constexpr int64_t kInstances = 100, kFeatures = 230, kWidth = 128;
        const int64_t num_bags = 32 * setup.batch_scale;
        nn::Sequential model(nn::Linear(kFeatures, kWidth), nn::ReLU(),
                             nn::HopfieldPooling(nn::HopfieldPoolingOptions(nn::HopfieldOptions(kWidth))),
                             nn::Linear(kWidth, 1));
        model->to(setup.device);
        // shared: the step is a copyable std::function, and every copy must drive the same optimizer state.
        auto optimizer = std::make_shared<hg::optim::Adam>(model->parameters(), hg::optim::AdamOptions(1e-3));
        hg::Tensor bags = hg::randn({num_bags, kInstances, kFeatures}, {}, &setup.gen).to(setup.device);  // [B, N, 230]
        hg::Tensor labels =
            hg::randint(0, 2, {num_bags, 1}, hg::kInt64, &setup.gen).to(hg::kFloat32).to(setup.device);  // [B, 1]
        auto step = [=] {
          optimizer->zero_grad();
          hg::binary_cross_entropy_with_logits(model->forward(bags), labels).backward();
          optimizer->step();
        };
        // GEMMs only, as hopgrad runs them. Forward: embedding 2·B·N·230·128; the query, expanded to the B bags,
        // projected by W_Q (2·B·128·128); with one query the pooling folds W_K into it and applies W_V after the
        // weighted sum (nn/hopfield/hopfield.cpp), 2 · 2·B·128·128 instead of the twin's K and V projections of
        // every instance, 2 · 2·B·N·128·128; scores and weighted sum 2 · 2·B·N·128; out-projection and
        // classifier 2·B·128·(128 + 1). Backward: the embedding's weight gradient only (the bags need none),
        // twice the forward for the rest.
        const double instances = num_bags * kInstances;
        const double embedding = 2 * instances * kFeatures * kWidth;
        const double pooling = 3 * (2.0 * num_bags * kWidth * kWidth) + 2 * (2 * instances * kWidth) +
                               2.0 * num_bags * kWidth * (kWidth + 1);
        return {step, 2 * embedding + 3 * pooling};
      });
}
