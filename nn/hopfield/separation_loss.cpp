// U-Hop's separation losses (see separation_loss.h).
#include <hopgrad/nn/hopfield/separation_loss.h>

#include <cmath>
#include <limits>

#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

const char* loss_name(SeparationLossKind kind) {
  return kind == SeparationLossKind::Average ? "separation_loss(Average)" : "separation_loss(Max)";
}

void check_features(const char* op, const Tensor& features, double temperature, int64_t min_dim) {
  HG_CHECK(features.defined() && features.dim() >= min_dim,
           "{}: expected features [..., M, D] with at least {} dims, got {}", op, min_dim,
           features.defined() ? features.desc() : std::string("an undefined tensor"));
  HG_CHECK(is_floating(features.dtype()), "{}: expected floating features, got {}", op, features.desc());
  HG_CHECK(features.size(-2) >= 2, "{}: needs at least two patterns (pairs) along dim -2, got {}", op,
           features.desc());
  HG_CHECK(std::isfinite(temperature) && temperature > 0.0, "{}: temperature t must be positive and finite, got {}",
           op, temperature);
}

}  // namespace

// L_avg = log mean_{μ<ν} exp(−t‖φ̂_μ − φ̂_ν‖²),  L_max = max_{μ<ν} −t‖φ̂_μ − φ̂_ν‖²,  φ̂ = φ / max(‖φ‖, ε)
Tensor separation_loss(const Tensor& features, SeparationLossKind kind, double temperature) {
  const char* op = loss_name(kind);
  check_features(op, features, temperature, 2);
  const int64_t m = features.size(-2);
  // φ / max(‖φ‖, ε) as F.normalize, written with rsqrt of a clamped square so both derivatives stay finite.
  const Tensor unit = features * rsqrt(clamp_min(sum(square(features), {-1}, /*keepdim=*/true), 1e-24));
  // ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b: O(M²) memory instead of O(M²·D); rounding can take it below 0.
  const Tensor sq = sum(square(unit), {-1});                                       // [..., M]
  const Tensor gram = matmul(unit, unit.transpose(-2, -1));                        // [..., M, M]
  const Tensor dist2 = clamp_min(sq.unsqueeze(-1) + sq.unsqueeze(-2) - gram * 2.0, 0.0);
  // Only the unordered pairs μ < ν count: the rest (diagonal, lower triangle) is −∞ for both reductions.
  const TensorOptions index = TensorOptions(kInt64).device(features.device());
  const Tensor pair = lt(arange(static_cast<double>(m), index).unsqueeze(1), arange(static_cast<double>(m), index));
  const Tensor scores = masked_fill(dist2 * -temperature, logical_not(pair), -std::numeric_limits<double>::infinity())
                            .flatten(-2, -1);                                     // [..., M·M]
  if (kind == SeparationLossKind::Max) return amax(scores, {-1});
  const double pairs = 0.5 * static_cast<double>(m) * static_cast<double>(m - 1);
  return logsumexp(scores, {-1}) - std::log(pairs);
}

// L_deep = mean_b L(φ(tokens_b))
Tensor deep_separation_loss(const Tensor& features, SeparationLossKind kind, double temperature) {
  check_features("deep_separation_loss", features, temperature, 3);
  return mean(separation_loss(features, kind, temperature));
}

}  // namespace hg::nn
