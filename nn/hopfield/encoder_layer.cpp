// HopfieldEncoderLayer (see encoder_layer.h).
#include <hopgrad/nn/hopfield/encoder_layer.h>

#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

HopfieldEncoderLayerImpl::HopfieldEncoderLayerImpl(const HopfieldEncoderLayerOptions& options_)
    : Module("HopfieldEncoderLayer"), options(options_) {
  const HopfieldOptions& h = options.hopfield();
  HG_CHECK(options.dim_feedforward() > 0, "HopfieldEncoderLayer: dim_feedforward must be positive, got {}",
           options.dim_feedforward());
  HG_CHECK(options.dropout() >= 0.0 && options.dropout() <= 1.0, "HopfieldEncoderLayer: dropout must be in [0, 1], got {}",
           options.dropout());
  // Checks the activation name once, here, instead of at the first forward.
  apply_association_activation(options.activation(), zeros({1}));
  hopfield_association = register_module("hopfield_association", Hopfield(h));
  const int64_t width = h.input_size().value_or(0);
  HG_CHECK(width > 0 && hopfield_association->output_dim() == width,
           "HopfieldEncoderLayer: the Hopfield association must map input_size to the same output_size (the "
           "residual adds them), got input_size={}, output width {}",
           width, hopfield_association->output_dim());
  // Registration order follows hflayers' HopfieldEncoderLayer.
  linear_residual = register_module("linear_residual", Linear(width, options.dim_feedforward()));
  dropout_residual = register_module("dropout_residual", Dropout(options.dropout()));
  linear_output = register_module("linear_output", Linear(options.dim_feedforward(), width));
  norm_residual = register_module("norm_residual", LayerNorm(LayerNormOptions({width})));
  norm_output = register_module("norm_output", LayerNorm(LayerNormOptions({width})));
  dropout_hopfield_association = register_module("dropout_hopfield_association", Dropout(options.dropout()));
  dropout_output = register_module("dropout_output", Dropout(options.dropout()));
}

void HopfieldEncoderLayerImpl::reset_parameters() {
  hopfield_association->reset_parameters();
  linear_residual->reset_parameters();
  linear_output->reset_parameters();
  norm_residual->reset_parameters();
  norm_output->reset_parameters();
}

// x ← norm(x + drop(Hopfield(x)));  x ← norm(x + drop(W₂ drop(act(W₁ x))))
Tensor HopfieldEncoderLayerImpl::forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask) {
  Tensor x = src + dropout_hopfield_association(hopfield_association(src, src, src, src_key_padding_mask, src_mask));
  x = norm_residual(x);
  Tensor inner = apply_association_activation(options.activation(), linear_residual(x));
  x = x + dropout_output(linear_output(dropout_residual(inner)));
  return norm_output(x);
}

void HopfieldEncoderLayerImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("HopfieldEncoderLayer(dim_feedforward={}, dropout={}, activation={})",
                        options.dim_feedforward(), options.dropout(), options.activation());
}

}  // namespace hg::nn
