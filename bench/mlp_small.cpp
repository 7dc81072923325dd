// mlp_small: one training step of a 784→256→10 MLP on a batch of 128, cross-entropy, Adam
// (../shared/docs/benchmarks.md workload 6). Small enough that per-op framework cost shows.
// PyTorch twin: bench/torch/mlp_small.py.
#include <memory>

#include <hopgrad/hopgrad.h>

#include "workload.h"

namespace nn = hg::nn;

int main(int argc, char** argv) {
  return hgbench::run_workload(argc, argv, {"mlp_small", "784→256→10 MLP, ReLU, batch 128, cross-entropy, Adam"},
                               [](const hgbench::Setup& setup) -> hgbench::Step {
    constexpr int64_t kIn = 784, kHidden = 256, kClasses = 10;
    const int64_t batch = 128 * setup.batch_scale;
    nn::Sequential model(nn::Linear(kIn, kHidden), nn::ReLU(), nn::Linear(kHidden, kClasses));
    model->to(setup.device);
    // shared: the step is a copyable std::function, and every copy must drive the same optimizer state.
    auto optimizer = std::make_shared<hg::optim::Adam>(model->parameters(), hg::optim::AdamOptions(1e-3));
    hg::Tensor x = hg::randn({batch, kIn}, {}, &setup.gen).to(setup.device);
    hg::Tensor y = hg::randint(0, kClasses, {batch}, hg::kInt64, &setup.gen).to(setup.device);
    auto step = [=] {
      optimizer->zero_grad();
      hg::cross_entropy(model->forward(x), y).backward();
      optimizer->step();
    };
    // Forward GEMMs 2·B·(784·256 + 256·10); backward: both layers' weight gradients, and the input gradient
    // of layer 2 only (x needs none): 2·B·(784·256 + 2·256·10). 104.7 MFLOP per step.
    const double flops = 2.0 * batch * (2 * kIn * kHidden + 3 * kHidden * kClasses);
    return {step, flops};
  });
}
