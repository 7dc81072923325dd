// Fused optimizer kernels (ops/optim.cpp) against the update written with ops, the formula they replace.
#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "testing.h"

namespace {

// The Adam/AdamW update as composed ops (what hg::optim::Adam ran before the fused kernel): the reference.
void composite_adam(const hg::Tensor& param, const hg::Tensor& grad, hg::Tensor& m, hg::Tensor& v, hg::Tensor& v_max,
                    const hg::AdamUpdate& u) {
  hg::NoGradGuard no_grad;
  hg::Tensor g = grad;
  if (u.weight_decay != 0.0) {
    if (u.decoupled_weight_decay)
      param.mul_(1.0 - u.lr * u.weight_decay);
    else
      g = hg::add(grad, param, u.weight_decay);
  }
  m.mul_(u.beta1).add_(g, 1.0 - u.beta1);
  hg::addcmul_(v.mul_(u.beta2), g, g, 1.0 - u.beta2);
  const double t = static_cast<double>(u.step);
  const double bias_correction1 = 1.0 - std::pow(u.beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(u.beta2, t));
  hg::Tensor second_moment = v;
  if (u.amsgrad) {
    v_max.copy_(hg::maximum(v_max, v));
    second_moment = v_max;
  }
  hg::Tensor denominator = hg::sqrt(second_moment);
  denominator.div_(bias_correction2_sqrt).add_(u.eps);
  hg::addcdiv_(param, m, denominator, -u.lr / bias_correction1);
}

struct AdamCase {
  const char* name;
  double weight_decay;
  bool decoupled;
  bool amsgrad;
};
constexpr AdamCase kAdamCases[] = {
    {"adam", 0.0, false, false},         {"adam weight_decay", 0.1, false, false},
    {"adamw", 0.05, true, false},        {"adam amsgrad", 0.0, false, true},
    {"adamw amsgrad", 0.05, true, true}, {"adam weight_decay amsgrad", 0.1, false, true},
};

// Runs five steps of fused and composite updates side by side from one start, with a new gradient each step
// (its scale changes so AMSGrad's maximum both holds and moves); returns the fused parameter and state.
hg::Tensors run_adam_case(const AdamCase& c, hg::DType dtype, hg::Device device) {
  hg::Tensor start = hgtest::uniform({7, 5}, -1.0, 1.0, 11).to(device, dtype);
  hg::Tensor fused = start.clone(), reference = start.clone();
  auto zeros = [&] { return hg::zeros({7, 5}, hg::TensorOptions(dtype).device(device)); };
  hg::Tensor m = zeros(), v = zeros(), v_max = c.amsgrad ? zeros() : hg::Tensor();
  hg::Tensor rm = zeros(), rv = zeros(), rv_max = c.amsgrad ? zeros() : hg::Tensor();
  hg::AdamUpdate u;
  u.lr = 0.01, u.beta1 = 0.8, u.beta2 = 0.95, u.eps = 1e-6;
  u.weight_decay = c.weight_decay, u.decoupled_weight_decay = c.decoupled, u.amsgrad = c.amsgrad;
  for (int step = 1; step <= 5; ++step) {
    const double scale = step % 2 ? 1.0 : 0.1;
    hg::Tensor grad = hgtest::uniform({7, 5}, -scale, scale, 100 + step).to(device, dtype);
    u.step = step;
    {
      hg::NoGradGuard no_grad;
      hg::adam_update_(fused, grad, m, v, v_max, u);
    }
    composite_adam(reference, grad, rm, rv, rv_max, u);
  }
  const double rtol = dtype == hg::kFloat32 ? 2e-6 : 1e-13, atol = dtype == hg::kFloat32 ? 1e-7 : 1e-15;
  hgtest::check_close(fused, reference, rtol, atol);
  hgtest::check_close(m, rm, rtol, atol);
  hgtest::check_close(v, rv, rtol, atol);
  if (c.amsgrad) hgtest::check_close(v_max, rv_max, rtol, atol);
  CHECK_FALSE(hg::allclose(fused.cpu(), start.cpu()));  // the parameter did move
  hg::Tensors out{fused, m, v};
  if (c.amsgrad) out.push_back(v_max);
  return out;
}

}  // namespace

HG_BACKEND_TEST(adam_update_fused_matches_composite) {
  hg::Tensors results;
  for (const AdamCase& c : kAdamCases) {
    for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
      CAPTURE(c.name);
      CAPTURE(dtype);
      for (hg::Tensor& t : run_adam_case(c, dtype, device)) results.push_back(t);
    }
  }
  return results;
}

HG_BACKEND_TEST(adam_update_first_step_is_lr_times_sign) {
  // After one step from zero state, m̂ = g and v̂ = g², so p moves by −η·g/(|g| + ε): η·sign(g) for |g| ≫ ε.
  hg::Tensor param = hg::from_vector<float>({1.0f, -2.0f, 3.0f, 0.5f}, {4}).to(device);
  hg::Tensor grad = hg::from_vector<float>({0.5f, -4.0f, 0.0f, 1e-3f}, {4}).to(device);
  hg::Tensor m = hg::zeros_like(param), v = hg::zeros_like(param);
  hg::AdamUpdate u;
  u.lr = 0.1;
  {
    hg::NoGradGuard no_grad;
    hg::adam_update_(param, grad, m, v, hg::Tensor(), u);
  }
  hgtest::check_close(param.cpu(), hg::from_vector<double>({0.9, -1.9, 3.0, 0.5 - 0.1 * 1e-3 / (1e-3 + 1e-8)}, {4}).to(hg::kFloat32),
                      1e-6, 1e-7);
  hgtest::check_close(m.cpu(), hg::from_vector<double>({0.05, -0.4, 0.0, 1e-4}, {4}).to(hg::kFloat32), 1e-6, 1e-9);
  return {param, m, v};
}

TEST_CASE("adam_update_: a strided parameter and state are updated through contiguous copies") {
  hg::Tensor base = hgtest::uniform({4, 6}, -1.0, 1.0, 3);
  hg::Tensor param = base.clone().transpose(0, 1), reference = param.contiguous().clone();
  hg::Tensor grad = hgtest::uniform({6, 4}, -1.0, 1.0, 4);
  hg::Tensor m = hg::zeros({4, 6}, hg::kFloat64).transpose(0, 1), v = hg::zeros({6, 4}, hg::kFloat64);
  hg::Tensor rm = hg::zeros({6, 4}, hg::kFloat64), rv = hg::zeros({6, 4}, hg::kFloat64), none;
  hg::AdamUpdate u;
  u.weight_decay = 0.01;
  const uint64_t version = param.version();
  for (int step = 1; step <= 3; ++step) {
    u.step = step;
    hg::NoGradGuard no_grad;
    hg::adam_update_(param, grad.transpose(0, 1).contiguous().transpose(0, 1), m, v, hg::Tensor(), u);
  }
  for (int step = 1; step <= 3; ++step) {
    u.step = step;
    composite_adam(reference, grad, rm, rv, none, u);
  }
  CHECK_FALSE(param.is_contiguous());
  CHECK(param.version() > version);
  hgtest::check_close(param, reference, 1e-13, 1e-15);
  hgtest::check_close(m, rm, 1e-13, 1e-15);
}

TEST_CASE("adam_update_: bad arguments name the op and what was wrong") {
  hg::Tensor p = hg::zeros({3}), g = hg::ones({3}), m = hg::zeros({3}), v = hg::zeros({3});
  hg::AdamUpdate u;
  hg::NoGradGuard no_grad;
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, hg::ones({4}), m, v, hg::Tensor(), u),
                       doctest::Contains("adam_update_: gradient and state must match the parameter"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g.to(hg::kFloat64), m, v, hg::Tensor(), u),
                       doctest::Contains("must match the parameter"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g, m, v, hg::zeros({3}), u),
                       doctest::Contains("max_exp_avg_sq must be given exactly when amsgrad is on"), hg::Error);
  u.amsgrad = true;
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g, m, v, hg::Tensor(), u),
                       doctest::Contains("max_exp_avg_sq must be given exactly when amsgrad is on"), hg::Error);
  u.amsgrad = false;
  u.step = 0;
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g, m, v, hg::Tensor(), u), doctest::Contains("step must be >= 1"),
                       hg::Error);
  u.step = 1;
  u.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g, m, v, hg::Tensor(), u), doctest::Contains("betas must lie in [0, 1)"),
                       hg::Error);
  u.beta1 = 0.9;
  CHECK_THROWS_WITH_AS(hg::adam_update_(hg::zeros({3}, hg::kInt64), hg::zeros({3}, hg::kInt64), m, v, hg::Tensor(), u),
                       doctest::Contains("expects a floating-point parameter"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, hg::Tensor(), m, v, hg::Tensor(), u), doctest::Contains("undefined"),
                       hg::Error);
}

TEST_CASE("adam_update_ refuses to run where autograd would have to follow it") {
  hg::Tensor p = hg::zeros({3}).requires_grad_(), g = hg::ones({3}), m = hg::zeros({3}), v = hg::zeros({3});
  CHECK_THROWS_WITH_AS(hg::adam_update_(p, g, m, v, hg::Tensor(), hg::AdamUpdate{}),
                       doctest::Contains("adam_update_: not differentiable"), hg::Error);
}
