// HopfieldLayer (see hopfield_layer.h).
#include <hopgrad/nn/hopfield/hopfield_layer.h>

#include <ostream>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

HopfieldLayerImpl::HopfieldLayerImpl(const HopfieldLayerOptions& options_) : Module("HopfieldLayer"), options(options_) {
  const HopfieldOptions& h = options.hopfield();
  const int64_t quantity = options.quantity();
  HG_CHECK(quantity > 0, "HopfieldLayer: quantity must be positive, got {}", quantity);
  hopfield = register_module("hopfield", Hopfield(h));
  const int64_t lookup_width = h.stored_pattern_as_static() ? hopfield->head_dim() : hopfield->stored_pattern_dim();
  HG_CHECK(lookup_width > 0, "HopfieldLayer: the lookup weights need input_size or stored_pattern_size (hidden_size "
                             "with static stored patterns)");
  auto shape = [&](int64_t width) {
    return h.batch_first() ? Shape{1, quantity, width} : Shape{quantity, 1, width};
  };
  lookup_weights = register_parameter("lookup_weights", empty(shape(lookup_width), kFloat32), options.trainable());
  if (options.lookup_weights_as_separated()) {
    const int64_t target_width = h.pattern_projection_size().value_or(lookup_width);
    target_weights = register_parameter("target_weights", empty(shape(target_width), kFloat32),
                                        options.lookup_targets_as_trainable());
  }
  reset_parameters();
}

void HopfieldLayerImpl::reset_parameters() {
  hopfield->reset_parameters();
  NoGradGuard no_grad;
  init::normal_(lookup_weights, 0.0, 0.02);
  if (target_weights.defined()) init::normal_(target_weights, 0.0, 0.02);
}

HopfieldResult HopfieldLayerImpl::associate(const Tensor& input, const AssociateOptions& request) {
  HG_CHECK(input.defined() && input.dim() == 3,
           "HopfieldLayer: expected state patterns [B, L, features] ([L, B, features] without batch_first), got {}",
           input.defined() ? input.desc() : "undefined");
  const bool batch_first = options.hopfield().batch_first();
  const int64_t batch = input.size(batch_first ? 0 : 1), quantity = options.quantity();
  // The stored patterns are shared by every sample: expanded (no copy) to the batch.
  auto expanded = [&](const Tensor& weights) {
    Shape shape = batch_first ? Shape{batch, quantity, weights.size(2)} : Shape{quantity, batch, weights.size(2)};
    return weights.to(input.dtype()).expand(shape);
  };
  Tensor stored = expanded(lookup_weights);
  Tensor projection = target_weights.defined() ? expanded(target_weights) : stored;
  return hopfield->associate(stored, input, projection, request);
}

// z = Hopfield(Y_lookup, x, Y_target)
Tensor HopfieldLayerImpl::forward(const Tensor& input, const Tensor& stored_pattern_padding_mask,
                                  const Tensor& association_mask) {
  return associate(input, AssociateOptions()
                              .stored_pattern_padding_mask(stored_pattern_padding_mask)
                              .association_mask(association_mask))
      .output;
}

void HopfieldLayerImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("HopfieldLayer(quantity={}, trainable={}, lookup_weights_as_separated={}, "
                        "lookup_targets_as_trainable={})",
                        options.quantity(), options.trainable(), options.lookup_weights_as_separated(),
                        options.lookup_targets_as_trainable());
}

}  // namespace hg::nn
