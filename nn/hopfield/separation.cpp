// Separation functions behind one interface (see separation.h).
//
// Reference quirks reproduced under options.compat (spec C.2, D.2):
//   TopK        the scores outside the top K are set to 0 (they keep softmax mass e^0) instead of excluded;
//   RandomMask  dropout on the scores: dropped scores become 0 (not excluded) and survivors are scaled by
//               1/(1 − p);
//   Window      β is not applied.
#include <hopgrad/nn/hopfield/separation.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/hopfield/efficient_attention.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct KindName {
  SeparationKind kind;
  std::string_view name;
};
constexpr KindName kKindNames[] = {
    {SeparationKind::Softmax, "softmax"},     {SeparationKind::Softmax1, "softmax1"},
    {SeparationKind::Sparsemax, "sparsemax"}, {SeparationKind::Entmax15, "entmax15"},
    {SeparationKind::AlphaEntmax, "entmax"},  {SeparationKind::TopK, "topk"},
    {SeparationKind::RandomMask, "random"},   {SeparationKind::Window, "window"},
    {SeparationKind::Linear, "linear"},       {SeparationKind::RandomFeatures, "favor"},
    {SeparationKind::ReluFeatures, "relu_features"}, {SeparationKind::Polynomial, "poly"},
};

bool is_feature_kind(SeparationKind kind) {
  return kind == SeparationKind::Linear || kind == SeparationKind::RandomFeatures ||
         kind == SeparationKind::ReluFeatures;
}

/// Keys kept per query by top-K: k, or ⌊fraction · S⌋, at least 1 and at most S.
int64_t top_k_count(const SeparationOptions& o, int64_t S) {
  int64_t k = o.top_k() > 0 ? o.top_k() : static_cast<int64_t>(std::floor(o.top_fraction() * static_cast<double>(S)));
  return std::min(std::max<int64_t>(k, 1), S);
}

/// A learnable α is kept above 1 where it is used, as the entmax package's AlphaChooser clamps it (at 1.01): an
/// optimiser step may push the parameter to or below 1, where α-entmax is undefined (1/(α − 1) diverges).
constexpr double kMinLearnedAlpha = 1.01;

/// True when `mask` only excludes keys, i.e. it broadcasts as [..., 1, S] (what the sub-quadratic paths take).
bool is_key_padding_mask(const Tensor& mask) { return !mask.defined() || mask.dim() < 2 || mask.size(-2) == 1; }

Tensor or_mask(const Tensor& a, const Tensor& b) { return a.defined() ? logical_or(a, b) : b; }

}  // namespace

std::string_view to_string(SeparationKind kind) {
  for (const auto& entry : kKindNames)
    if (entry.kind == kind) return entry.name;
  return "unknown";
}

SeparationKind separation_kind_from_string(std::string_view name) {
  std::string names;
  for (const auto& entry : kKindNames) {
    if (entry.name == name) return entry.kind;
    names += fmt::format("{}{}", names.empty() ? "" : ", ", entry.name);
  }
  HG_FAIL("separation: unknown kind '{}'; expected one of {}", name, names);
}

SeparationImpl::SeparationImpl(const SeparationOptions& options_) : Module("Separation"), options(options_) {
  const SeparationOptions& o = options;
  const std::string_view kind = to_string(o.kind());
  HG_CHECK(o.top_k() >= 0, "Separation({}): top_k must be >= 0, got {}", kind, o.top_k());
  HG_CHECK(o.top_fraction() > 0.0 && o.top_fraction() <= 1.0, "Separation({}): top_fraction must be in (0, 1], got {}",
           kind, o.top_fraction());
  HG_CHECK(o.mask_prob() >= 0.0 && o.mask_prob() < 1.0, "Separation({}): mask_prob must be in [0, 1), got {}", kind,
           o.mask_prob());
  HG_CHECK(o.window() >= 0, "Separation({}): window must be >= 0, got {}", kind, o.window());
  HG_CHECK(o.alpha() > 1.0, "Separation({}): alpha must be > 1 (alpha = 1 is softmax), got {}", kind, o.alpha());
  HG_CHECK(o.bisect_iters() > 0, "Separation({}): bisect_iters must be positive, got {}", kind, o.bisect_iters());
  HG_CHECK(o.degree() >= 1, "Separation({}): degree must be >= 1, got {}", kind, o.degree());
  HG_CHECK(!(o.forgetting() && is_feature_kind(o.kind())),
           "Separation({}): a forgetting unit acts on scores, which this kind never forms", kind);
  HG_CHECK(!(o.forgetting() && o.kind() == SeparationKind::Polynomial),
           "Separation({}): a forgetting unit reshapes a normalised memory Lagrangian (log Σ exp); the polynomial "
           "memory has no normaliser for forgotten patterns to stay in",
           kind);
  if (o.kind() == SeparationKind::AlphaEntmax && o.learnable_alpha())
    alpha = register_parameter("alpha", scalar_tensor(o.alpha(), kFloat32));
  if (o.kind() == SeparationKind::RandomFeatures || o.kind() == SeparationKind::ReluFeatures) {
    int64_t d = o.feature_dim();
    HG_CHECK(d > 0, "Separation({}): feature_dim (the width of the projected patterns) must be set, got {}", kind, d);
    // m = ⌊d ln d⌋ as the reference's FastAttention (d = 64 → 266), at least 1.
    int64_t m = o.num_features() > 0 ? o.num_features()
                                     : std::max<int64_t>(1, static_cast<int64_t>(std::floor(d * std::log(d))));
    Generator gen(o.seed());
    projection = register_buffer("projection", orthogonal_random_features(m, d, gen));
  }
}

bool SeparationImpl::forms_weights() const { return !is_feature_kind(options.kind()); }

Association SeparationImpl::weights(const Tensor& scores_in, const Tensor& mask, Generator* gen) {
  const SeparationOptions& o = options;
  const std::string_view kind = to_string(o.kind());
  HG_CHECK(forms_weights(), "Separation({}).weights: this kind never forms the weight matrix; use attend()", kind);
  HG_CHECK(scores_in.defined() && scores_in.dim() >= 1 && is_floating(scores_in.dtype()),
           "Separation({}).weights: scores must be a floating tensor [..., S], got {}", kind,
           scores_in.defined() ? fmt::format("{} {}", scores_in.dtype(), scores_in.shape()) : "undefined");
  HG_CHECK(!mask.defined() || mask.dtype() == kBool, "Separation({}).weights: mask must be bool (true = excluded), got {}",
           kind, mask.dtype());
  HG_CHECK(!mask.defined() || broadcasts_to(mask.sizes(), scores_in.sizes()),
           "Separation({}).weights: mask of shape {} does not broadcast to the scores' shape {}", kind, mask.shape(),
           scores_in.shape());
  Tensor scores = scores_in;
  Tensor excluded = mask;
  const int64_t S = scores.size(-1);
  switch (o.kind()) {
    case SeparationKind::TopK: {
      // The K largest scores of each row among the allowed ones (exactly K: ties are broken by index).
      int64_t k = top_k_count(o, S);
      Tensor candidates = excluded.defined() ? masked_fill(scores.detach(), excluded, -kInf) : scores.detach();
      Tensor index = std::get<1>(topk(candidates, k, -1));
      Tensor chosen = scatter_add(zeros_like(candidates), -1, index, ones(index.shape(), TensorOptions(candidates.dtype()).device(candidates.device()))) > 0.0;
      if (o.compat())
        scores = where(chosen, scores, 0.0);
      else
        excluded = or_mask(excluded, logical_not(chosen));
      break;
    }
    case SeparationKind::RandomMask: {
      if (o.mask_prob() > 0.0) {
        Tensor dropped = rand(scores.shape(), TensorOptions(scores.dtype()).device(scores.device()), gen) < o.mask_prob();
        if (o.compat())
          scores = where(dropped, 0.0, scores * (1.0 / (1.0 - o.mask_prob())));
        else
          excluded = or_mask(excluded, dropped);
      }
      break;
    }
    case SeparationKind::Window: {
      HG_CHECK(scores.dim() >= 2, "Separation(window).weights: scores must be [..., L, S], got {}", scores.shape());
      excluded = or_mask(excluded, window_mask(scores.size(-2), S, o.window(), scores.device()));
      break;
    }
    default: break;
  }

  if (o.kind() == SeparationKind::Polynomial) {
    // ξ_i = s_i^n, unnormalised. Excluded entries (masked, or −inf from an additive mask) are set to 0 before the
    // power, so their weight and gradient are 0 (0^n), not ∞ or NaN.
    excluded = or_mask(excluded, eq(scores.detach(), -kInf));
    return {pow(masked_fill(scores, excluded, 0.0), static_cast<double>(o.degree())), Tensor()};
  }

  if (excluded.defined()) scores = masked_fill(scores, excluded, -kInf);
  Tensor keep;
  if (o.forgetting()) {
    Forgetting f = forget(scores, *o.forgetting(), is_training(), gen);
    scores = f.value;
    keep = f.keep;
  }
  Tensor w;
  switch (o.kind()) {
    case SeparationKind::Softmax1: w = softmax1(scores, -1); break;
    case SeparationKind::Sparsemax: w = sparsemax(scores, -1); break;
    case SeparationKind::Entmax15: w = entmax15(scores, -1); break;
    case SeparationKind::AlphaEntmax:
      w = entmax_bisect(scores,
                        alpha.defined() ? clamp_min(alpha, kMinLearnedAlpha)
                                        : scalar_tensor(o.alpha(), TensorOptions(scores.dtype()).device(scores.device())),
                        -1, o.bisect_iters());
      break;
    default: w = softmax(scores, -1); break;  // Softmax, TopK, RandomMask, Window
  }
  return {w, keep};
}

Tensor fused_attention_mask(const Tensor& mask, const Tensor& bias, DType dtype) {
  if (mask.defined()) return bias.defined() ? where(mask, -kInf, bias.to(dtype)) : logical_not(mask);
  return bias.defined() ? bias.to(dtype) : Tensor();
}

Tensor SeparationImpl::attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& mask,
                              const Tensor& bias, double dropout_p, Tensor* weights_out, Generator* gen) {
  const SeparationOptions& o = options;
  const std::string_view kind = to_string(o.kind());
  HG_CHECK(q.defined() && k.defined() && v.defined() && beta.defined(),
           "Separation({}).attend: q, k, v and beta must all be defined", kind);
  HG_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2 && q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2),
           "Separation({}).attend: expected q [..., L, d], k [..., S, d], v [..., S, dv], got q {}, k {}, v {}", kind,
           q.shape(), k.shape(), v.shape());
  HG_CHECK(!mask.defined() || mask.dtype() == kBool, "Separation({}).attend: mask must be bool (true = excluded), got {}",
           kind, mask.dtype());
  HG_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, "Separation({}).attend: dropout must be in [0, 1], got {}", kind,
           dropout_p);
  const bool dropout_active = dropout_p > 0.0 && is_training();

  if (is_feature_kind(o.kind())) {
    HG_CHECK(is_key_padding_mask(mask) && !bias.defined(),
             "Separation({}).attend: this kind takes only a key padding mask (broadcastable to [..., 1, S]), got "
             "mask {}{}",
             kind, mask.defined() ? fmt::format("{}", mask.shape()) : "none", bias.defined() ? " and a bias" : "");
    Tensor pq, pk;
    if (o.kind() == SeparationKind::Linear) {
      // φ = elu + 1 is a kernel of its own, not an approximation of exp(β q·k): β does not enter (as the reference).
      pq = elu_feature_map(q);
      pk = elu_feature_map(k);
    } else if (o.kind() == SeparationKind::RandomFeatures) {
      // E[φ(x)·φ(y)] = exp(x·y): with x = β^½ q, y = β^½ k this approximates exp(β q·k).
      Tensor root_beta = sqrt(beta);
      pq = positive_random_features(q * root_beta, projection, /*is_query=*/true);
      pk = positive_random_features(k * root_beta, projection, /*is_query=*/false, mask);
    } else {
      pq = relu_random_features(q, projection);
      pk = relu_random_features(k, projection);
    }
    if (weights_out) {
      // The dense equivalent, O(L·S), on request only.
      Tensor w = matmul(pq, pk.transpose(-2, -1));
      if (mask.defined()) w = masked_fill(w, mask, 0.0);
      *weights_out = w / (sum(w, {-1}, true) + 1e-6);
    }
    return kernel_attention(pq, pk, v, mask);
  }

  const Tensor effective_beta =
      o.kind() == SeparationKind::Window && o.compat() ? scalar_tensor(1.0, TensorOptions(q.dtype()).device(q.device())) : beta;
  if (o.kind() == SeparationKind::Window && !weights_out && !bias.defined() && !dropout_active && !o.forgetting() &&
      is_key_padding_mask(mask))
    return window_attention(q, k, v, o.window(), effective_beta, mask);

  // Plain softmax whose weights nobody asks for: the fused kernel (hg::scaled_dot_product_attention), which never
  // stores the [..., L, S] weights. Same formula as the dense path below: β scales the query, the bool mask
  // (here true = excluded; the fused op's is true = takes part) and the bias act on the scores.
  if (o.kind() == SeparationKind::Softmax && !o.forgetting() && !dropout_active && !weights_out) {
    const Tensor scores_mask = fused_attention_mask(mask, bias, q.dtype());
    // A constant scalar β on the CPU becomes the kernel's scale (no pass over q, no node for q·β); elsewhere (per-head
    // or learned β, or a device where reading β would synchronise) q is scaled first, as in the dense path.
    if (effective_beta.numel() == 1 && !effective_beta.requires_grad() && effective_beta.device().is_cpu())
      return scaled_dot_product_attention(q, k, v, scores_mask, effective_beta.item<double>());
    return scaled_dot_product_attention(q * effective_beta, k, v, scores_mask, 1.0);
  }

  // Dense path: scores = β q kᵀ (+ bias), β applied to the query as hflayers does.
  Tensor scores = matmul(q * effective_beta, k.transpose(-2, -1));
  if (bias.defined()) scores = scores + bias;
  Association a = weights(scores, mask, gen);
  Tensor w = dropout_active ? dropout(a.weights, dropout_p, true, gen) : a.weights;
  if (a.keep.defined()) w = w * a.keep;  // LwPF: the indicator D′ after dropout (spec B.3)
  if (weights_out) *weights_out = w;
  return matmul(w, v);
}

void SeparationImpl::pretty_print(std::ostream& stream) const {
  const SeparationOptions& o = options;
  stream << "Separation(" << to_string(o.kind());
  switch (o.kind()) {
    case SeparationKind::TopK:
      if (o.top_k() > 0)
        stream << ", k=" << o.top_k();
      else
        stream << ", fraction=" << o.top_fraction();
      break;
    case SeparationKind::RandomMask: stream << ", p=" << o.mask_prob(); break;
    case SeparationKind::Window: stream << ", window=" << o.window(); break;
    case SeparationKind::AlphaEntmax: stream << ", alpha=" << o.alpha() << (o.learnable_alpha() ? " (learnable)" : ""); break;
    case SeparationKind::RandomFeatures:
    case SeparationKind::ReluFeatures:
      stream << ", features=" << (projection.defined() ? projection.size(0) : 0) << ", dim=" << o.feature_dim();
      break;
    case SeparationKind::Polynomial: stream << ", degree=" << o.degree(); break;
    default: break;
  }
  if (o.compat()) stream << ", compat";
  if (o.forgetting()) stream << ", forgetting=" << describe(*o.forgetting());
  stream << ")";
}

}  // namespace hg::nn
