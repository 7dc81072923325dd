// U-Hop's feature map Φ and Stage I (see kernel_map.h).
#include <hopgrad/nn/hopfield/kernel_map.h>

#include <cmath>
#include <ostream>

#include <hopgrad/autograd/engine.h>
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {

KernelMapImpl::KernelMapImpl(const KernelMapOptions& options_) : Module("KernelMap"), options(options_) {
  const int64_t d = options.dim(), features = options.feature_dim() == 0 ? d : options.feature_dim();
  HG_CHECK(d > 0, "KernelMap: dim must be positive, got {}", d);
  HG_CHECK(features >= d, "KernelMap(dim={}): feature_dim D_Φ must be >= dim (a full-rank map), got {}", d, features);
  HG_CHECK(!options.compat() || features == d,
           "KernelMap(dim={}): compat reproduces the reference's d × d map, so feature_dim must be 0 or {}, got {}", d,
           d, features);
  weight = register_parameter("weight", empty({features, d}, kFloat32));
  reset_parameters();
}

void KernelMapImpl::reset_parameters(Generator* gen) { init::normal_(weight, 0.0, 1.0, gen); }

// Φ(u) = W u
Tensor KernelMapImpl::forward(const Tensor& u) {
  HG_CHECK(u.defined() && u.dim() >= 1 && u.size(-1) == dim(),
           "KernelMap(dim={}, feature_dim={}): expected patterns [..., {}], got {}", dim(), feature_dim(), dim(),
           u.defined() ? u.desc() : std::string("an undefined tensor"));
  return linear(u, weight);
}

// K(u, v) = ⟨Φu, Φv⟩
Tensor KernelMapImpl::kernel(const Tensor& u, const Tensor& v) {
  HG_CHECK(u.defined() && v.defined() && u.dim() >= 2 && v.dim() >= 2,
           "KernelMap::kernel: expected u [..., L, d] and v [..., S, d], got {} and {}",
           u.defined() ? u.desc() : "undefined", v.defined() ? v.desc() : "undefined");
  return matmul(forward(u), forward(v).transpose(-2, -1));
}

// W_i ← W_i / ‖W_i‖
void KernelMapImpl::normalize_rows() {
  NoGradGuard no_grad;
  weight.copy_(weight * rsqrt(clamp_min(sum(square(weight), {-1}, /*keepdim=*/true), 1e-24)));
}

void KernelMapImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("KernelMap(dim={}, feature_dim={}{})", options.dim(), weight.size(0),
                        options.compat() ? ", compat=true" : "");
}

StepSchedule reference_schedule(SeparationLossKind loss) {
  if (loss == SeparationLossKind::Max) return [](int64_t) { return 10.0; };
  // lr_i = 1/√(i!): lr starts at 1 and is divided by √(i + 1) after step i (the reference's train_kernel).
  return [](int64_t step) { return std::exp(-0.5 * std::lgamma(static_cast<double>(step) + 1.0)); };
}

// W ← W − γ_i ∇_W L_Φ(Ξ)  (N steps), then W_i ← W_i / ‖W_i‖
StageIResult train_kernel(KernelMap& map, const Tensor& memories, const StageIOptions& options) {
  HG_CHECK(map, "train_kernel: the KernelMap is empty");
  const Tensor& w = map->weight;
  HG_CHECK(memories.defined() && memories.dim() == 2 && memories.size(1) == map->dim() && memories.size(0) >= 2,
           "train_kernel: expected memories [M, {}] with M >= 2 for {}, got {}", map->dim(),
           fmt::format("KernelMap(dim={}, feature_dim={})", map->dim(), map->feature_dim()),
           memories.defined() ? memories.desc() : std::string("an undefined tensor"));
  HG_CHECK(memories.dtype() == w.dtype() && memories.device() == w.device(),
           "train_kernel: memories {} must have the KernelMap's dtype and device (weight {})", memories.desc(),
           w.desc());
  HG_CHECK(options.steps() >= 0, "train_kernel: steps must be >= 0, got {}", options.steps());
  const StepSchedule schedule = options.schedule() ? options.schedule() : reference_schedule(options.loss());
  const Tensor stored = memories.detach();
  auto loss_at_w = [&] { return separation_loss(map->forward(stored), options.loss(), options.temperature()); };

  StageIResult result;
  result.losses.reserve(static_cast<size_t>(options.steps()));
  for (int64_t step = 0; step < options.steps(); ++step) {
    const Tensor loss = loss_at_w();
    result.losses.push_back(loss.item<double>());
    const Tensor gradient = grad({loss}, {w})[0];
    const double lr = schedule(step);
    HG_CHECK(std::isfinite(lr), "train_kernel: the schedule gave a non-finite step size {} at step {}", lr, step);
    NoGradGuard no_grad;
    w.copy_(w - gradient * lr);
  }
  if (!map->options.compat()) map->normalize_rows();
  {
    NoGradGuard no_grad;
    result.final_loss = loss_at_w().item<double>();
  }
  return result;
}

}  // namespace hg::nn
