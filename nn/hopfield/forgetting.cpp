// LwPF partial forgetting units (spec B.2), written with hg ops so they run on every backend and are
// differentiable twice.
//
// Both units are one rule with a threshold t and a bias b:
//   D(x) = x where x > t, b elsewhere;   D′(x) = 1[x > t] (strict, detached)
// ReLU is t = 0, b = 0, no noise. PFU takes t = a(x) + ε (a a constant or a lower median, ε = N(0, 1)·σ² in
// training, one per row with a per-row median) and b = t (the reference's bias='mu', so D(x) = max(x, t)) or a constant.
//
// Masked scores (−∞) are absent memories by default: they stay −∞ and are left out of the median. The
// reference treats them as ordinary scores; ForgettingOptions::compat reproduces that (see forgetting.h).
#include <hopgrad/nn/hopfield/forgetting.h>

#include <cmath>
#include <limits>

#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// a = the lower median of the finite entries of x, of all of them (a 0-dim tensor) or of each row (the last
/// dim, [..., 1]). Differentiable: the gradient reaches the one median element, as torch.median(x, dim).
/// No host synchronisation: −∞ entries sort first, so with m of them among n the lower median of the n − m
/// finite ones is sorted element m + ⌊(n − m − 1)/2⌋ = ⌊(n + m − 1)/2⌋, computed on the device.
Tensor finite_lower_median(const Tensor& x, bool per_row) {
  Tensor values = per_row ? x : x.reshape({-1});
  const int64_t n = values.size(-1);
  Tensor order = argsort(values.detach(), -1);                  // [..., n] int64
  Tensor masked = sum(values.detach() == -kInf, {-1}, true);    // [..., 1] int64: m
  // ⌊(n + m − 1)/2⌋ in float64 (exact for any count) truncated to int64 (a floor: the value is ≥ 0).
  Tensor position = ((masked.to(kFloat64) + static_cast<double>(n - 1)) * 0.5).to(kInt64);
  Tensor a = gather(values, -1, gather(order, -1, position));  // [..., 1]
  return per_row ? a : a.reshape({});
}

/// The threshold a(x) before noise: a 0-dim tensor, or [..., 1] per row.
Tensor base_threshold(const Tensor& x, const ForgettingOptions& o) {
  const TensorOptions like = TensorOptions(x.dtype()).device(x.device());
  if (o.kind() == ForgettingKind::ReLU) return scalar_tensor(0.0, like);
  switch (o.threshold()) {
    case ForgettingThreshold::Constant: return scalar_tensor(o.threshold_value(), like);
    case ForgettingThreshold::GlobalMedian:
      // compat: torch's x.median() over every element, −∞ included ('dmedian').
      return o.compat() ? median(x) : finite_lower_median(x, /*per_row=*/false);
    case ForgettingThreshold::RowMedian:
      return o.compat() ? std::get<0>(median(x, -1, /*keepdim=*/true)) : finite_lower_median(x, /*per_row=*/true);
  }
  HG_FAIL("forget: unknown threshold rule {}", static_cast<int>(o.threshold()));
}

const char* kind_name(ForgettingKind kind) { return kind == ForgettingKind::ReLU ? "ReLU" : "PFU"; }

}  // namespace

// D(x) = x ⊙ 1[x > t] + b ⊙ 1[x ≤ t],  D′ = 1[x > t] ;  ∂D/∂x = 1[x > t], ∂D/∂t = 1[x ≤ t] when b = t
Forgetting forget(const Tensor& x, const ForgettingOptions& o, bool training, Generator* gen) {
  const char* kind = kind_name(o.kind());
  HG_CHECK(x.defined() && is_floating(x.dtype()), "forget({}): expected floating scores, got {}", kind,
           x.defined() ? x.desc() : "an undefined tensor");
  const bool pfu = o.kind() == ForgettingKind::PFU;
  if (pfu) {
    HG_CHECK(std::isfinite(o.sigma()), "forget(PFU): sigma must be finite, got {}", o.sigma());
    HG_CHECK(std::isfinite(o.threshold_value()), "forget(PFU): threshold_value must be finite, got {}",
             o.threshold_value());
    HG_CHECK(std::isfinite(o.bias()), "forget(PFU): bias must be finite, got {}", o.bias());
    HG_CHECK(o.threshold() != ForgettingThreshold::RowMedian || x.dim() >= 1,
             "forget(PFU): a per-row median needs scores [..., S], got a 0-dim tensor");
  }
  if (x.numel() == 0) return {x, zeros_like(x)};

  Tensor t = base_threshold(x, o);
  if (pfu && training && o.sigma() != 0.0) {
    // ε = N(0, 1)·σ², no gradient (σ squared, as the reference's square_sigma): one per call, as the reference's
    // unit draws it — and with a per-row threshold one per row, each row standing for one call (DeepRC applies
    // the unit bag by bag, and each bag drew its own ε).
    t = t + randn(t.sizes(), TensorOptions(x.dtype()).device(x.device()), gen) * (o.sigma() * o.sigma());
  }

  // x ≤ t rather than ¬(x > t): a NaN score is neither forgotten nor kept, so it propagates instead of being
  // silently replaced by b.
  Tensor forgotten = x <= t;
  Tensor value = pfu && o.bias_is_threshold() ? where(forgotten, t, x) : where(forgotten, pfu ? o.bias() : 0.0, x);
  if (!o.compat()) value = masked_fill(value, x == -kInf, -kInf);  // absent memories stay absent
  return {value, (x > t).to(x.dtype())};
}

std::string describe(const ForgettingOptions& o) {
  const char* compat = o.compat() ? ", compat" : "";
  if (o.kind() == ForgettingKind::ReLU) return fmt::format("ReLU({})", o.compat() ? "compat" : "");
  std::string threshold = o.threshold() == ForgettingThreshold::GlobalMedian ? "global median"
                          : o.threshold() == ForgettingThreshold::RowMedian  ? "row median"
                                                                             : fmt::format("{}", o.threshold_value());
  std::string bias = o.bias_is_threshold() ? "threshold" : fmt::format("{}", o.bias());
  return fmt::format("PFU(threshold={}, bias={}, sigma={}{})", threshold, bias, o.sigma(), compat);
}

}  // namespace hg::nn
