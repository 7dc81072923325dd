#pragma once
// HopfieldLayer: a Hopfield lookup into learned stored patterns, as hflayers' HopfieldLayer (spec A.4). The
// input is the state pattern; the stored patterns (lookup_weights) and, optionally separate, their pattern
// projections (target_weights) are parameters — a learned associative memory, e.g. initialised with the
// unique training instances (copy them into lookup_weights).
//
//   hg::nn::HopfieldLayer lookup(hg::nn::HopfieldLayerOptions(hg::nn::HopfieldOptions(8)).quantity(64));
//   hg::Tensor z = lookup(x);   // x [B, L, 8] → [B, L, 8]
#include <cstdint>

#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct HopfieldLayerOptions {
  HopfieldLayerOptions(HopfieldOptions hopfield) : hopfield_(std::move(hopfield)) {}
  HG_ARG(HopfieldOptions, hopfield);
  /// Number of stored patterns.
  HG_ARG(int64_t, quantity) = 1;
  /// Whether the stored patterns are trained.
  HG_ARG(bool, trainable) = true;
  /// Separate pattern projections (target_weights) instead of the stored patterns themselves.
  HG_ARG(bool, lookup_weights_as_separated) = false;
  /// Whether the separate pattern projections are trained.
  HG_ARG(bool, lookup_targets_as_trainable) = true;
};

/// out = Hopfield(stored = expand(lookup_weights), state = x, projection = expand(target_weights or
/// lookup_weights)), lookup_weights [1, quantity, stored_pattern_size] (hidden_size when the stored patterns are
/// static; [quantity, 1, ·] without batch_first), target_weights [1, quantity, pattern_projection_size or the
/// lookup width]; both N(0, 0.02²).
class HopfieldLayerImpl : public Module {
 public:
  explicit HopfieldLayerImpl(const HopfieldLayerOptions& options);

  /// x [B, L, input_size] → [B, L, output_size].
  Tensor forward(const Tensor& input, const Tensor& stored_pattern_padding_mask = {},
                 const Tensor& association_mask = {});
  HopfieldResult associate(const Tensor& input, const AssociateOptions& request = {});

  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  HopfieldLayerOptions options;
  Hopfield hopfield{nullptr};
  Tensor lookup_weights;
  Tensor target_weights;  ///< undefined unless lookup_weights_as_separated
};
HG_MODULE(HopfieldLayer);

}  // namespace hg::nn
