// HopfieldPooling (see hopfield_pooling.h).
#include <hopgrad/nn/hopfield/hopfield_pooling.h>

#include <ostream>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

HopfieldPoolingImpl::HopfieldPoolingImpl(const HopfieldPoolingOptions& options_)
    : Module("HopfieldPooling"), options(options_) {
  const HopfieldOptions& h = options.hopfield();
  HG_CHECK(options.quantity() > 0, "HopfieldPooling: quantity must be positive, got {}", options.quantity());
  hopfield = register_module("hopfield", Hopfield(h));
  const int64_t width = h.state_pattern_as_static() ? hopfield->head_dim() : h.input_size().value_or(0);
  HG_CHECK(width > 0, "HopfieldPooling: the pooling weights need input_size (or hidden_size with static state "
                      "patterns)");
  Shape shape = h.batch_first() ? Shape{1, options.quantity(), width} : Shape{options.quantity(), 1, width};
  pooling_weights = register_parameter("pooling_weights", empty(shape, kFloat32), options.trainable());
  reset_parameters();
}

void HopfieldPoolingImpl::reset_parameters() {
  hopfield->reset_parameters();
  NoGradGuard no_grad;
  init::normal_(pooling_weights, 0.0, 0.02);
}

HopfieldResult HopfieldPoolingImpl::associate(const Tensor& stored, const Tensor& projection,
                                              const AssociateOptions& request) {
  HG_CHECK(stored.defined() && stored.dim() == 3,
           "HopfieldPooling: expected stored patterns [B, S, features] ([S, B, features] without batch_first), got "
           "{}",
           stored.defined() ? stored.desc() : "undefined");
  const bool batch_first = options.hopfield().batch_first();
  const int64_t batch = stored.size(batch_first ? 0 : 1), width = pooling_weights.size(2);
  // The learned state patterns, the same for every sample: R expanded (no copy) to the batch.
  Tensor state = pooling_weights.to(stored.dtype())
                     .expand(batch_first ? Shape{batch, options.quantity(), width}
                                         : Shape{options.quantity(), batch, width});
  return hopfield->associate(stored, state, projection, request);
}

// z = flatten(Hopfield(Y, R, P))
Tensor HopfieldPoolingImpl::forward(const Tensor& stored, const Tensor& projection,
                                    const Tensor& stored_pattern_padding_mask, const Tensor& association_mask) {
  Tensor pooled = associate(stored, projection,
                            AssociateOptions()
                                .stored_pattern_padding_mask(stored_pattern_padding_mask)
                                .association_mask(association_mask))
                      .output;
  // [B, quantity, O] → [B, quantity · O]. Without batch_first the output is [quantity, B, O]; hflayers would
  // flatten that to [quantity, B · O], mixing samples, so it is brought batch-first first.
  if (!options.hopfield().batch_first()) pooled = pooled.transpose(0, 1);
  return pooled.flatten(1);
}

Tensor HopfieldPoolingImpl::forward(const Tensor& input, const Tensor& stored_pattern_padding_mask,
                                    const Tensor& association_mask) {
  return forward(input, input, stored_pattern_padding_mask, association_mask);
}

void HopfieldPoolingImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("HopfieldPooling(quantity={}, trainable={})", options.quantity(), options.trainable());
}

}  // namespace hg::nn
