#include <hopgrad/nn/optim/clip_grad.h>

#include <cmath>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/ops.h>

namespace hg::optim {

namespace {
std::vector<Tensor> defined_grads(const std::vector<Tensor>& parameters, const char* op) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < parameters.size(); ++i) {
    HG_CHECK(parameters[i].defined(), "{}: parameter {} is an undefined tensor", op, i);
    const Tensor& grad = parameters[i].grad();
    if (grad.defined()) grads.push_back(grad.detach());
  }
  return grads;
}
}  // namespace

// ‖g‖ = ‖(‖g₁‖, …, ‖gₙ‖)‖_p;  g_i ← g_i · min(1, max_norm / (‖g‖ + 1e-6))
Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  HG_CHECK(max_norm >= 0.0, "clip_grad_norm_: max_norm must be >= 0, got {}", max_norm);
  HG_CHECK(!std::isnan(norm_type), "clip_grad_norm_: norm_type is NaN");
  NoGradGuard no_grad;
  std::vector<Tensor> grads = defined_grads(parameters, "clip_grad_norm_");
  if (grads.empty()) return scalar_tensor(0.0);
  const Device device = grads[0].device();
  DType dtype = grads[0].dtype();
  for (const Tensor& grad : grads) dtype = promote_types(dtype, grad.dtype());

  Tensors norms;
  norms.reserve(grads.size());
  for (const Tensor& grad : grads) norms.push_back(norm(grad, norm_type).to(device, dtype));
  // As torch: the largest of the maxima for p = ∞, otherwise the p-norm of the stacked norms (also for one).
  const bool max_norm_type = std::isinf(norm_type) && norm_type > 0;
  Tensor total = max_norm_type ? (norms.size() == 1 ? norms[0] : max(stack(norms))) : norm(stack(norms), norm_type);
  if (error_if_nonfinite) {
    double value = total.item<double>();
    HG_CHECK(std::isfinite(value),
             "clip_grad_norm_: the total norm of order {} of the gradients is {}, so they cannot be clipped; pass "
             "error_if_nonfinite = false to scale them by the non-finite norm anyway",
             norm_type, value);
  }
  Tensor scale = clamp_max(rdiv(add(total, 1e-6), max_norm), 1.0);  // min(1, max_norm / (‖g‖ + 1e-6))
  for (const Tensor& grad : grads) grad.mul_(grad.device() == device ? scale : scale.to(grad.device()));
  return total;
}

// g ← clamp(g, −c, c)
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  HG_CHECK(clip_value >= 0.0, "clip_grad_value_: clip_value must be >= 0, got {}", clip_value);
  NoGradGuard no_grad;
  for (const Tensor& grad : defined_grads(parameters, "clip_grad_value_"))
    grad.copy_(clamp(grad, -clip_value, clip_value));
}

}  // namespace hg::optim
