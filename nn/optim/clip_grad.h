#pragma once
// Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_, PyTorch 1.13). Call between
// backward() and optimizer.step(); parameters without a gradient are ignored.
//
//   loss.backward();
//   hg::Tensor total_norm = hg::optim::clip_grad_norm_(model->parameters(), /*max_norm=*/1.0);
//   opt.step();
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::optim {

/// Scales all gradients in place by min(1, max_norm / (‖g‖ + 1e-6)), where ‖g‖ is the norm_type-norm of all
/// gradients together (the norm of the per-parameter norms; norm_type = INFINITY for the largest |g|).
/// Returns ‖g‖ before clipping as a 0-dim tensor on the gradients' device (a float32 zero when no parameter
/// has a gradient). With error_if_nonfinite, a NaN or infinite ‖g‖ throws instead of scaling the gradients
/// by it. The scale stays on the device: no host synchronisation unless error_if_nonfinite is set.
Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element to [−clip_value, clip_value] in place.
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace hg::optim
