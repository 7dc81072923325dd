// Fused optimizer updates: each reads and writes a parameter and its state once, instead of the dozen
// elementwise passes (and temporaries) the same update takes when written with ops.
#include <cmath>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

// p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε), with m, v (and v̂) updated first (see ops.h)
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdate& u) {
  const char* op = "adam_update_";
  HG_CHECK(param.defined() && grad.defined() && exp_avg.defined() && exp_avg_sq.defined(),
           "{}: got an undefined parameter, gradient or state tensor", op);
  HG_CHECK(max_exp_avg_sq.defined() == u.amsgrad,
           "{}: max_exp_avg_sq must be given exactly when amsgrad is on (amsgrad = {}, max_exp_avg_sq {})", op,
           u.amsgrad, max_exp_avg_sq.defined() ? "given" : "undefined");
  HG_CHECK(is_floating(param.dtype()), "{}: expects a floating-point parameter, got {}", op, param.desc());
  HG_CHECK(!any_requires_grad({&param, &grad, &exp_avg, &exp_avg_sq, &max_exp_avg_sq}),
           "{}: not differentiable; call it under hg::NoGradGuard (as optimizers do)", op);
  HG_CHECK(u.step >= 1, "{}: step must be >= 1 (the number of this update), got {}", op, u.step);
  HG_CHECK(u.beta1 >= 0.0 && u.beta1 < 1.0 && u.beta2 >= 0.0 && u.beta2 < 1.0,
           "{}: betas must lie in [0, 1), got ({}, {})", op, u.beta1, u.beta2);
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq, &max_exp_avg_sq}) {
    if (!t->defined()) continue;
    HG_CHECK(t->sizes() == param.sizes() && t->dtype() == param.dtype() && t->device() == param.device(),
             "{}: gradient and state must match the parameter {}, got {}", op, param.desc(), t->desc());
  }

  const double t = static_cast<double>(u.step);
  AdamParams p;
  p.lr = u.lr, p.beta1 = u.beta1, p.beta2 = u.beta2, p.eps = u.eps, p.weight_decay = u.weight_decay;
  p.bias_correction1 = 1.0 - std::pow(u.beta1, t);
  p.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(u.beta2, t));
  p.amsgrad = u.amsgrad;
  p.decoupled_weight_decay = u.decoupled_weight_decay;

  // The kernel wants contiguous operands; a strided parameter or state (rare: parameters are made contiguous)
  // is updated through a contiguous copy that is written back.
  Tensor param_c = param.contiguous(), m = exp_avg.contiguous(), v = exp_avg_sq.contiguous();
  Tensor v_max = max_exp_avg_sq.defined() ? max_exp_avg_sq.contiguous() : Tensor();
  backend_for(param.device()).adam_step(param_c, grad.contiguous(), m, v, v_max.defined() ? &v_max : nullptr, p);
  for (auto [dst, src] : {std::pair{&param, &param_c}, {&exp_avg, &m}, {&exp_avg_sq, &v}, {&max_exp_avg_sq, &v_max}}) {
    if (!dst->defined()) continue;
    if (src->storage() != dst->storage()) dst->copy_(*src);
    else dst->bump_version();
  }
}

}  // namespace hg
