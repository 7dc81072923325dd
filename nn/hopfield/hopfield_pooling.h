#pragma once
// HopfieldPooling: attention pooling with learned state patterns (queries), as hflayers' HopfieldPooling —
// the pooling of DeepRC and of the multiple-instance models (Ramsauer et al. 2021, spec A.4).
//
//   hg::nn::HopfieldPooling pool(hg::nn::HopfieldPoolingOptions(hg::nn::HopfieldOptions(500).hidden_size(32)));
//   hg::Tensor z = pool(bag);   // bag [B, N, 500] → [B, quantity · 500]
#include <cstdint>

#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct HopfieldPoolingOptions {
  HopfieldPoolingOptions(HopfieldOptions hopfield) : hopfield_(std::move(hopfield)) {}
  HG_ARG(HopfieldOptions, hopfield);
  /// Number of learned state patterns (each gives one pooled vector).
  HG_ARG(int64_t, quantity) = 1;
  /// Whether the state patterns are trained.
  HG_ARG(bool, trainable) = true;
};

/// out = flatten(Hopfield(stored = Y, state = expand(R), projection = Y or P)), R the learned
/// pooling_weights [1, quantity, input_size] ([quantity, 1, ·] without batch_first; hidden_size wide when the
/// state patterns are static), N(0, 0.02²).
class HopfieldPoolingImpl : public Module {
 public:
  explicit HopfieldPoolingImpl(const HopfieldPoolingOptions& options);

  /// Y [B, S, stored_pattern_size] as stored patterns and pattern projections → [B, quantity · output_size].
  Tensor forward(const Tensor& input, const Tensor& stored_pattern_padding_mask = {},
                 const Tensor& association_mask = {});
  /// Separate stored patterns and pattern projections.
  Tensor forward(const Tensor& stored, const Tensor& projection, const Tensor& stored_pattern_padding_mask,
                 const Tensor& association_mask);
  /// The full association (output still [B, quantity, output_size], not flattened).
  HopfieldResult associate(const Tensor& stored, const Tensor& projection, const AssociateOptions& request = {});

  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  HopfieldPoolingOptions options;
  Hopfield hopfield{nullptr};
  Tensor pooling_weights;
};
HG_MODULE(HopfieldPooling);

}  // namespace hg::nn
