// deeprc: one training step of DeepRC on 4 repertoires × 10 000 sequences × length 20 × 23 features:
// Conv1d(23→32, width 9) + SELU + max over positions; attention net Linear(32→32) + SELU + Linear(32→1);
// softmax over each repertoire's sequences; weighted sum of the embeddings; Linear(32→1); BCE-with-logits; Adam
// (../shared/docs/benchmarks.md workload 3). The model is hg::models::DeepRC with one hidden attention layer, a
// single output Linear and no sequence reduction (the definition trains on every sequence), DeepRC's SNN init.
// PyTorch twin: bench/torch/deeprc.py.
#include <memory>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/deeprc.h>

#include "workload.h"

int main(int argc, char** argv) {
  return hgbench::run_workload(
      argc, argv,
      {"deeprc", "DeepRC 4 × 10000 sequences × 20 × 23, Conv1d(23→32, 9)+SELU+max, attention pooling, BCE, Adam"},
      [](const hgbench::Setup& setup) -> hgbench::Step {
        constexpr int64_t kSequences = 10000, kLength = 20, kFeatures = 23;
        const int64_t bags = 4 * setup.batch_scale;
        constexpr int64_t kKernels = 32, kWidth = 9, kUnits = 32;
        hg::models::DeepRC model(hg::models::DeepRCOptions()
                                                              .in_features(kFeatures)
                                                              .kernels(kKernels)
                                                              .kernel_size(kWidth)
                                                              .attention_layers(1)
                                                              .attention_units(kUnits)
                                                              .output_layers(1)
                                                              .outputs(1)
                                                              .sequence_reduction(1.0));
        model->to(setup.device);
        // shared: the step is a copyable std::function, and every copy must drive the same optimizer state.
        auto optimizer = std::make_shared<hg::optim::Adam>(model->parameters(), hg::optim::AdamOptions(1e-3));
        hg::Tensor repertoires =
            hg::randn({bags, kSequences, kLength, kFeatures}, {}, &setup.gen).to(setup.device);
        hg::Tensor labels = hg::randint(0, 2, {bags, 1}, hg::kInt64, &setup.gen).to(hg::kFloat32).to(setup.device);
        auto step = [=] {
          optimizer->zero_grad();
          hg::binary_cross_entropy_with_logits(model(repertoires).logits, labels).backward();
          optimizer->step();
        };
        // Forward FLOPs (multiply-add = 2), n = 4·10 000 sequences, 12 = 20 − 9 + 1 output positions:
        //   conv        2·n·12·(23·9)·32
        //   attention   2·n·(32·32 + 32·1)
        //   pooling     2·n·32, output 2·4·32
        // Training: 3× the forward, except the convolution, whose input needs no gradient: 2× (weight gradient).
        const double all_sequences = bags * kSequences, positions = kLength - kWidth + 1;
        const double conv = 2.0 * all_sequences * positions * (kFeatures * kWidth) * kKernels;
        const double rest =
            2.0 * all_sequences * (kKernels * kUnits + kUnits) + 2.0 * all_sequences * kKernels + 2.0 * bags * kKernels;
        return {step, 2 * conv + 3 * rest};
      });
}
