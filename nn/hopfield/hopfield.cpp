// Hopfield: the association of spec A.3 on top of a Separation (see hopfield.h).
//
// Differences from hflayers that change behaviour, each deliberate:
//   - a per-head β gives head h exactly β_h (hflayers tiles the vector over the features: `compat`);
//   - concat_bias_pattern appends the learned patterns (a no-op in hflayers, A.5.1);
//   - static patterns are repeated along the head axis; hflayers repeats them along the batch axis, which pairs
//     the queries of one batch entry with the keys of another when static and projected patterns are mixed with
//     B > 1 and H > 1;
//   - in_proj_bias has no block for a static pattern projection (hflayers allocates one it never uses);
//   - pattern_projection_as_connected with static stored patterns is an error (hflayers silently drops the
//     connection);
//   - masks work for every update, gradients are exact for every update (no masked_select, spec A.5.6).
#include <hopgrad/nn/hopfield/hopfield.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>

#include <fmt/ranges.h>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

constexpr std::string_view kActivations[] = {"relu", "gelu", "selu", "elu", "tanh", "sigmoid", "softplus", "exp", "abs"};

std::string size_text(const std::optional<int64_t>& size) { return size ? std::to_string(*size) : "None"; }

std::string scaling_text(const Scaling& scaling) {
  if (scaling.is_default()) return "default";
  if (!scaling.is_per_head()) return fmt::format("{}", scaling.values[0]);
  return fmt::format("[{}]", fmt::join(scaling.values, ", "));
}

bool is_feature_kind(SeparationKind kind) {
  return kind == SeparationKind::Linear || kind == SeparationKind::RandomFeatures ||
         kind == SeparationKind::ReluFeatures;
}

/// Rows [start, start + length) of a stacked projection weight or bias (undefined stays undefined).
Tensor block(const Tensor& t, int64_t start, int64_t length) { return t.defined() ? t.narrow(0, start, length) : Tensor(); }

/// Whether folding the key and value projections into the queries saves at least half the multiply-adds of one
/// association of L queries over S stored patterns (per batch entry; H heads of widths d_k, d_v; raw stored and
/// projection widths E_k, E_v). Projected: S·H·(E_k·d_k + E_v·d_v) for K and V, L·S·H·(d_k + d_v) for the scores
/// and the weighted sum. Folded: L·H·(d_k·E_k + d_v·E_v) for q̃_h = W_K,hᵀ q_h and for W_V,h after the sum,
/// L·S·H·(E_k + E_v) for scores and weighted sum in the raw widths. With few queries against many patterns
/// (HopfieldPooling: L = 1) the projections are nearly all of the first and absent from the second.
bool folding_pays(int64_t L, int64_t S, int64_t H, int64_t d_k, int64_t d_v, int64_t E_k, int64_t E_v) {
  const auto l = static_cast<double>(L), s = static_cast<double>(S), h = static_cast<double>(H);
  const double projected =
      s * h * static_cast<double>(E_k * d_k + E_v * d_v) + l * s * h * static_cast<double>(d_k + d_v);
  const double folded =
      l * h * static_cast<double>(d_k * E_k + d_v * E_v) + l * s * h * static_cast<double>(E_k + E_v);
  return 2 * folded <= projected;
}

/// x [B, H, L, a] times one matrix per head w [H, a, b] → [B, H, L, b]: per head, one GEMM of its B·L rows.
Tensor per_head_product(const Tensor& x, const Tensor& w) {
  const int64_t B = x.size(0), H = x.size(1), L = x.size(2);
  if (H == 1) return matmul(x, w.squeeze(0));
  return matmul(x.transpose(0, 1).reshape({H, B * L, x.size(3)}), w).reshape({H, B, L, w.size(2)}).transpose(0, 1);
}

}  // namespace

Tensor apply_association_activation(const std::string& name, const Tensor& x) {
  if (name.empty()) return x;
  if (name == "relu") return relu(x);
  if (name == "gelu") return gelu(x);
  if (name == "selu") return selu(x);
  if (name == "elu") return elu(x);
  if (name == "tanh") return tanh(x);
  if (name == "sigmoid") return sigmoid(x);
  if (name == "softplus") return softplus(x);
  if (name == "exp") return exp(x);
  if (name == "abs") return abs(x);
  HG_FAIL("Hopfield: unknown association_activation '{}'; expected \"\" (none) or one of {}", name,
          fmt::join(kActivations, ", "));
}

void HopfieldCoreImpl::pretty_print(std::ostream& stream) const { stream << "HopfieldCore()"; }

HopfieldImpl::HopfieldImpl(const HopfieldOptions& options_) : Module("Hopfield"), options(options_) {
  const HopfieldOptions& o = options;
  const int64_t H = o.num_heads();
  const bool static_execution = o.static_execution();
  HG_CHECK(H > 0, "Hopfield: num_heads must be positive, got {}", H);
  HG_CHECK(static_execution || (o.input_size() && *o.input_size() > 0),
           "Hopfield: input_size must be a positive width unless everything is static (stored, state and pattern "
           "projection static, no Hopfield-space normalisation, out-projection disabled); got input_size={}",
           size_text(o.input_size()));
  for (auto [name, size] : {std::pair{"hidden_size", o.hidden_size()}, std::pair{"output_size", o.output_size()},
                            std::pair{"pattern_size", o.pattern_size()},
                            std::pair{"stored_pattern_size", o.stored_pattern_size()},
                            std::pair{"pattern_projection_size", o.pattern_projection_size()}})
    HG_CHECK(!size || *size > 0, "Hopfield: {} must be positive, got {}", name, *size);
  HG_CHECK(o.dropout() >= 0.0 && o.dropout() < 1.0, "Hopfield: dropout must be in [0, 1), got {}", o.dropout());
  HG_CHECK(o.update_steps_eps() > 0.0, "Hopfield: update_steps_eps must be positive, got {}", o.update_steps_eps());
  HG_CHECK(!o.update_steps_max() || *o.update_steps_max() >= 0,
           "Hopfield: update_steps_max must be >= 0 (or nullopt: until converged), got {}", *o.update_steps_max());
  HG_CHECK(o.update_steps_cap() > 0, "Hopfield: update_steps_cap must be positive, got {}", o.update_steps_cap());
  HG_CHECK(o.scaling().values.size() <= 1 || static_cast<int64_t>(o.scaling().values.size()) == H,
           "Hopfield: scaling needs one value or one per head ({}), got {}", H, o.scaling().values.size());
  for (double beta : o.scaling().values)
    HG_CHECK(std::isfinite(beta), "Hopfield: scaling must be finite, got {}", scaling_text(o.scaling()));
  HG_CHECK(o.association_activation().empty() ||
               std::find(std::begin(kActivations), std::end(kActivations), o.association_activation()) !=
                   std::end(kActivations),
           "Hopfield: unknown association_activation '{}'; expected \"\" (none) or one of {}",
           o.association_activation(), fmt::join(kActivations, ", "));
  HG_CHECK(o.dropout() == 0.0 || !is_feature_kind(o.separation().kind()),
           "Hopfield: dropout acts on the association weights, which separation '{}' never forms",
           to_string(o.separation().kind()));
  for (auto [affine, normalize, name] :
       {std::tuple{o.normalize_stored_pattern_affine(), o.normalize_stored_pattern(), "stored_pattern"},
        std::tuple{o.normalize_state_pattern_affine(), o.normalize_state_pattern(), "state_pattern"},
        std::tuple{o.normalize_pattern_projection_affine(), o.normalize_pattern_projection(), "pattern_projection"},
        std::tuple{o.normalize_hopfield_space_affine(), o.normalize_hopfield_space(), "hopfield_space"}})
    HG_CHECK(!affine || normalize, "Hopfield: normalize_{}_affine is set but normalize_{} is not", name, name);

  const bool q_static = o.state_pattern_as_static(), k_static = o.stored_pattern_as_static(),
             v_static = o.pattern_projection_as_static(), connected = o.pattern_projection_as_connected();
  const int64_t E = o.input_size().value_or(0);
  stored_dim_ = o.stored_pattern_size().value_or(E);
  projection_dim_ = o.pattern_projection_size().value_or(E);
  if (static_execution) {
    head_dim_ = o.hidden_size().value_or(0);  // 0: the width of the inputs
    pattern_dim_ = o.pattern_size().value_or(0);
  } else {
    HG_CHECK(o.hidden_size() || E % H == 0,
             "Hopfield: input_size ({}) must be divisible by num_heads ({}) unless hidden_size is given", E, H);
    head_dim_ = o.hidden_size().value_or(E / H);
    pattern_dim_ = o.pattern_size().value_or(head_dim_);
  }
  HG_CHECK(!connected || !k_static,
           "Hopfield: pattern_projection_as_connected projects the pattern projection with the stored-pattern "
           "weights, which stored_pattern_as_static removes");
  HG_CHECK(!connected || stored_dim_ == projection_dim_,
           "Hopfield: pattern_projection_as_connected needs stored_pattern_size == pattern_projection_size, got {} "
           "and {}",
           stored_dim_, projection_dim_);
  HG_CHECK(!(connected && v_static) || pattern_dim_ == head_dim_,
           "Hopfield: a connected static pattern projection is the stored-pattern projection, so pattern_size must "
           "equal hidden_size ({}), got {}",
           head_dim_, pattern_dim_);
  // A static pattern is used as it comes, d_k (d_v for the projection) wide, so a LayerNorm on it must be that wide:
  // the norms take their widths from input_size and the *_size options, and would fail on every forward instead.
  for (auto [is_static, normalize, norm_width, norm_option, static_width, static_option, pattern] :
       {std::tuple{q_static, o.normalize_state_pattern(), E, "input_size", head_dim_, "hidden_size", "state_pattern"},
        std::tuple{k_static, o.normalize_stored_pattern(), stored_dim_, "stored_pattern_size", head_dim_,
                   "hidden_size", "stored_pattern"},
        std::tuple{v_static && !connected, o.normalize_pattern_projection(), projection_dim_,
                   "pattern_projection_size", pattern_dim_, "pattern_size", "pattern_projection"}})
    HG_CHECK(!is_static || !normalize || static_width == 0 || norm_width == static_width,
             "Hopfield: {}_as_static uses those patterns as they are, {} = {} features wide, but normalize_{} "
             "normalises {} = {} features; set normalize_{}(false) or make the two widths equal",
             pattern, static_option, static_width, pattern, norm_option, norm_width, pattern);
  HG_CHECK(!o.concat_bias_pattern() || (!k_static && !v_static),
           "Hopfield: concat_bias_pattern appends a learned projected stored pattern and pattern projection; it "
           "needs both projected (stored_pattern_as_static={}, pattern_projection_as_static={})",
           k_static, v_static);
  HG_CHECK(head_dim_ > 0 || !(o.normalize_hopfield_space_affine() || is_feature_kind(o.separation().kind())),
           "Hopfield: static execution with a Hopfield-space affine or a feature separation needs hidden_size");
  output_dim_ = o.disable_out_projection() ? H * pattern_dim_ : o.output_size().value_or(E);

  const int64_t hopfield_dim = H * head_dim_, virtual_pattern_dim = H * pattern_dim_;
  const bool fused = !static_execution && stored_dim_ == E && projection_dim_ == E && !o.pattern_size() && !connected;
  association_core = register_module("association_core", HopfieldCore());
  HopfieldCoreImpl& core = *association_core;
  // Registration order follows hflayers' HopfieldCore, so named_parameters() lists what its state_dict does.
  if (o.normalize_hopfield_space_affine()) {
    core.p_norm_weight = core.register_parameter("p_norm_weight", empty({head_dim_}, kFloat32));
    core.p_norm_bias = core.register_parameter("p_norm_bias", empty({head_dim_}, kFloat32));
  }
  const int64_t in_rows = (!q_static) * hopfield_dim + (!k_static) * hopfield_dim + (!v_static) * virtual_pattern_dim;
  if (fused) {
    if (in_rows > 0) core.in_proj_weight = core.register_parameter("in_proj_weight", empty({in_rows, E}, kFloat32));
  } else if (!static_execution) {
    if (!q_static) core.q_proj_weight = core.register_parameter("q_proj_weight", empty({hopfield_dim, E}, kFloat32));
    if (!k_static)
      core.k_proj_weight = core.register_parameter("k_proj_weight", empty({hopfield_dim, stored_dim_}, kFloat32));
    if (!v_static)
      core.v_proj_weight = core.register_parameter(
          "v_proj_weight", empty({virtual_pattern_dim, connected ? hopfield_dim : projection_dim_}, kFloat32));
  }
  if (o.input_bias() && in_rows > 0) core.in_proj_bias = core.register_parameter("in_proj_bias", empty({in_rows}, kFloat32));
  if (!o.disable_out_projection()) {
    HG_CHECK(output_dim_ > 0, "Hopfield: output_size must be positive, got {}", output_dim_);
    core.out_proj = core.register_module(
        "out_proj", Linear(LinearOptions(virtual_pattern_dim, output_dim_).bias(o.input_bias())));
  }
  if (o.concat_bias_pattern()) {
    core.bias_k = core.register_parameter("bias_k", empty({1, 1, hopfield_dim}, kFloat32));
    core.bias_v = core.register_parameter("bias_v", empty({1, 1, virtual_pattern_dim}, kFloat32));
  }

  auto make_norm = [&](bool normalize, bool affine, double eps, int64_t width, const char* name) {
    if (!normalize) return LayerNorm(nullptr);
    HG_CHECK(width > 0, "Hopfield: normalize_{} needs its width (input_size or the matching *_size option)", name);
    return register_module(std::string("norm_") + name,
                           LayerNorm(LayerNormOptions({width}).eps(eps).elementwise_affine(affine)));
  };
  norm_stored_pattern = make_norm(o.normalize_stored_pattern(), o.normalize_stored_pattern_affine(),
                                  o.normalize_stored_pattern_eps(), stored_dim_, "stored_pattern");
  norm_state_pattern = make_norm(o.normalize_state_pattern(), o.normalize_state_pattern_affine(),
                                 o.normalize_state_pattern_eps(), E, "state_pattern");
  norm_pattern_projection = make_norm(o.normalize_pattern_projection(), o.normalize_pattern_projection_affine(),
                                      o.normalize_pattern_projection_eps(), projection_dim_, "pattern_projection");

  SeparationOptions separation_options = o.separation();
  if (is_feature_kind(separation_options.kind()) && separation_options.feature_dim() == 0)
    separation_options.feature_dim(head_dim_);
  separation = register_module("separation", Separation(separation_options));
  reset_parameters();
}

void HopfieldImpl::reset_parameters() {
  NoGradGuard no_grad;
  HopfieldCoreImpl& core = *association_core;
  if (core.p_norm_weight.defined()) {
    init::ones_(core.p_norm_weight);
    init::zeros_(core.p_norm_bias);
  }
  for (const Tensor& w : {core.in_proj_weight, core.q_proj_weight, core.k_proj_weight, core.v_proj_weight,
                          core.bias_k, core.bias_v})
    if (w.defined()) init::normal_(w, 0.0, 0.02);
  if (core.in_proj_bias.defined()) init::zeros_(core.in_proj_bias);
  if (core.out_proj) {
    init::normal_(core.out_proj->weight, 0.0, 0.02);
    if (core.out_proj->bias.defined()) init::zeros_(core.out_proj->bias);
  }
  for (const LayerNorm& norm : {norm_stored_pattern, norm_state_pattern, norm_pattern_projection})
    if (norm) norm->reset_parameters();
}

std::string HopfieldImpl::describe() const {
  return fmt::format("Hopfield(input_size={}, num_heads={})", size_text(options.input_size()), options.num_heads());
}

Tensor HopfieldImpl::forward(const Tensor& input) { return forward(input, input, input); }

Tensor HopfieldImpl::forward(const Tensor& stored, const Tensor& state, const Tensor& projection,
                             const Tensor& stored_pattern_padding_mask, const Tensor& association_mask) {
  return associate(stored, state, projection,
                   AssociateOptions()
                       .stored_pattern_padding_mask(stored_pattern_padding_mask)
                       .association_mask(association_mask))
      .output;
}

// ξ_0 = sep(β Q Kᵀ);  Q ← ξ K and ξ_{t+1} = sep(β Q Kᵀ) per active head;  out = W_O concat_h(dropout(ξ) V)
HopfieldResult HopfieldImpl::associate(const Tensor& stored_in, const Tensor& state_in, const Tensor& projection_in,
                                       const AssociateOptions& request) {
  const HopfieldOptions& o = options;
  const HopfieldCoreImpl& core = *association_core;
  const std::string name = describe();
  const int64_t H = o.num_heads();
  const bool q_static = o.state_pattern_as_static(), k_static = o.stored_pattern_as_static(),
             v_static = o.pattern_projection_as_static(), connected = o.pattern_projection_as_connected();

  // ---- 1. layouts: work batch-first [B, N, features] ------------------------------------------------
  HG_CHECK(stored_in.defined() && state_in.defined() && projection_in.defined(),
           "{}: stored patterns, state patterns and pattern projections must all be defined", name);
  const bool batched = state_in.dim() == 3;
  HG_CHECK((state_in.dim() == 3 || state_in.dim() == 2) && stored_in.dim() == state_in.dim() &&
               projection_in.dim() == state_in.dim(),
           "{}: expected stored, state and projection all 3-D (batched) or all 2-D (unbatched), got stored {}, state "
           "{}, projection {}",
           name, stored_in.desc(), state_in.desc(), projection_in.desc());
  HG_CHECK(is_floating(state_in.dtype()) && stored_in.dtype() == state_in.dtype() &&
               projection_in.dtype() == state_in.dtype(),
           "{}: expected floating patterns of one dtype, got stored {}, state {}, projection {}", name,
           stored_in.desc(), state_in.desc(), projection_in.desc());
  HG_CHECK(stored_in.device() == state_in.device() && projection_in.device() == state_in.device(),
           "{}: patterns on different devices: stored {}, state {}, projection {}", name, stored_in.desc(),
           state_in.desc(), projection_in.desc());
  auto to_batch_first = [&](const Tensor& t) {
    if (!batched) return t.unsqueeze(0);
    return o.batch_first() ? t : t.transpose(0, 1);
  };
  // One input given for several roles stays one tensor (so that self-association can take one projection GEMM
  // below whatever the layout).
  Tensor state = to_batch_first(state_in);
  Tensor stored = stored_in.is_same(state_in) ? state : to_batch_first(stored_in);
  Tensor projection = projection_in.is_same(state_in)    ? state
                      : projection_in.is_same(stored_in) ? stored
                                                         : to_batch_first(projection_in);
  const int64_t B = state.size(0), L = state.size(1), S = stored.size(1);
  const char* layout = !batched ? "[N, features]" : o.batch_first() ? "[B, N, features]" : "[N, B, features]";
  HG_CHECK(stored.size(0) == B && projection.size(0) == B && projection.size(1) == S,
           "{}: stored patterns and pattern projections must share the batch size of the state patterns and one "
           "sequence length ({}); got stored {}, state {}, projection {}",
           name, layout, stored_in.desc(), state_in.desc(), projection_in.desc());
  // Widths: static patterns are used as they are (d_k, or d_v for the projection), projected ones are raw.
  const int64_t d_k = head_dim_ > 0 ? head_dim_ : state.size(2);
  const int64_t d_v = pattern_dim_ > 0 ? pattern_dim_ : projection.size(2);
  const int64_t E = o.input_size().value_or(0);
  const int64_t want_state = q_static ? d_k : E, want_stored = k_static ? d_k : stored_dim_;
  const int64_t want_projection = !v_static ? projection_dim_ : connected ? stored_dim_ : d_v;
  HG_CHECK(state.size(2) == want_state && stored.size(2) == want_stored && projection.size(2) == want_projection,
           "{}: expected widths stored {}, state {}, projection {} ({}); got stored {}, state {}, projection {}", name,
           want_stored, want_state, want_projection, layout, stored_in.desc(), state_in.desc(), projection_in.desc());

  // One association (no update) of plain softmax, without dropout and without returning ξ: attention itself, run
  // by the fused kernel through Separation::attend in step 11, which never stores ξ. The update loop is skipped.
  SeparationImpl& sep = *separation;
  const bool dense = sep.forms_weights();
  const bool fused_attention = dense && sep.options.kind() == SeparationKind::Softmax && !sep.options.forgetting() &&
                               o.update_steps_max() == 0 && !(o.dropout() > 0.0 && is_training()) &&
                               !request.return_association();
  // Folded: few queries against many stored patterns, as in HopfieldPooling. Softmax is shift-invariant and its
  // weights sum to one, so with q_h = W_Q,h r + b_Q,h
  //   (β q_h)·(W_K,h y_s + b_K,h) = β (W_K,hᵀ q_h)·y_s + (a constant over s)  and
  //   Σ_s p_s (W_V,h y_s + b_V,h) = W_V,h (Σ_s p_s y_s) + b_V,h   (b_V,h only where some pattern is unmasked):
  // attention of q̃_h = W_K,hᵀ q_h over the raw (normalised) patterns, then W_V,h once per query instead of once per
  // stored pattern. Same function and gradients (b_K's is exactly zero instead of rounding noise); taken where it
  // saves half the multiply-adds or more (folding_pays).
  const Tensor& association_mask = request.association_mask();
  const bool folded = fused_attention && !q_static && !k_static && !v_static && !connected &&
                      !o.normalize_hopfield_space() && !o.concat_bias_pattern() && !o.add_zero_association() &&
                      !request.return_projected_patterns() && !(o.scaling().is_per_head() && o.compat()) &&
                      !(association_mask.defined() && association_mask.dtype() != kBool) &&
                      folding_pays(L, S, H, d_k, d_v, stored_dim_, projection_dim_);

  // ---- 2. LayerNorms of the raw patterns (three distinct modules, spec A.5.5) -----------------------
  if (norm_stored_pattern) stored = norm_stored_pattern(stored);
  if (norm_state_pattern) state = norm_state_pattern(state);
  if (norm_pattern_projection) projection = norm_pattern_projection(projection);

  // ---- 3. projections; the bias holds the blocks of the projected parts in the order q, k, v --------
  const int64_t hd = H * d_k, vpd = H * d_v;
  const int64_t k_offset = (!q_static) * hd, v_offset = k_offset + (!k_static) * hd;
  const bool fused = core.in_proj_weight.defined();
  auto weight = [&](const Tensor& separate, int64_t offset, int64_t rows) {
    return fused ? block(core.in_proj_weight, offset, rows) : separate;
  };
  Tensor q, k, v;
  Tensor qkv;  // [B, L, 3·H·d_k] when one GEMM projected all three (self-association)
  if (fused && !q_static && !k_static && !v_static && stored.is_same(state) && state.is_same(projection)) {
    qkv = linear(state, core.in_proj_weight, core.in_proj_bias);  // one GEMM
    Tensors parts = chunk(qkv, 3, -1);
    q = parts[0], k = parts[1], v = parts[2];
  } else {
    // Folded: the stored patterns and projections stay raw; W_K goes into q̃ (step 4), W_V after the sum (step 11).
    q = q_static ? state : linear(state, weight(core.q_proj_weight, 0, hd), block(core.in_proj_bias, 0, hd));
    k = k_static || folded
            ? stored
            : linear(stored, weight(core.k_proj_weight, k_offset, hd), block(core.in_proj_bias, k_offset, hd));
    // connected: V = (P W_Kᵀ + b_K) W_Vᵀ + b_V, the paper's Y W_K W_V.
    v = connected ? linear(projection, core.k_proj_weight, block(core.in_proj_bias, k_offset, hd)) : projection;
    if (!v_static && !folded)
      v = linear(v, weight(core.v_proj_weight, v_offset, vpd), block(core.in_proj_bias, v_offset, vpd));
  }

  // ---- 4. heads [B, H, N, width]: a static pattern is shared by every head -------------------------
  auto to_heads = [&](const Tensor& x, bool shared, int64_t width) {
    if (shared) return x.unsqueeze(1).expand({B, H, x.size(1), width});
    return x.reshape({B, x.size(1), H, width}).permute({0, 2, 1, 3});
  };
  const bool v_shared = v_static && !connected;
  Tensor qh, kh, vh;
  if (folded) {
    // q̃_h = q_h W_K,h [B, H, L, E_k]; every head reads the same raw patterns.
    qh = per_head_product(to_heads(q, false, d_k),
                          weight(core.k_proj_weight, k_offset, hd).reshape({H, d_k, stored_dim_}));
    kh = to_heads(k, true, stored_dim_);
    vh = to_heads(v, true, projection_dim_);
  } else {
    qh = to_heads(q, q_static, d_k), kh = to_heads(k, k_static, d_k), vh = to_heads(v, v_shared, d_v);
  }
  if (o.normalize_hopfield_space()) {
    // Once, before the first association: later states ξ K are not re-normalised (as hflayers).
    qh = layer_norm(qh, {d_k}, core.p_norm_weight, core.p_norm_bias, o.normalize_hopfield_space_eps());
    kh = layer_norm(kh, {d_k}, core.p_norm_weight, core.p_norm_bias, o.normalize_hopfield_space_eps());
  }
  int64_t extra_columns = 0;
  if (o.concat_bias_pattern()) {
    kh = cat({kh, to_heads(core.bias_k.to(kh.dtype()).expand({B, 1, hd}), false, d_k)}, 2);
    vh = cat({vh, to_heads(core.bias_v.to(vh.dtype()).expand({B, 1, vpd}), false, d_v)}, 2);
    ++extra_columns;
  }
  if (o.add_zero_association()) {
    kh = cat({kh, zeros({B, H, 1, d_k}, TensorOptions(kh.dtype()).device(kh.device()))}, 2);
    vh = cat({vh, zeros({B, H, 1, d_v}, TensorOptions(vh.dtype()).device(vh.device()))}, 2);
    ++extra_columns;
  }

  // ---- masks as [B or 1, H or 1, L or 1, S′]: bool = excluded, float = added to the scores ----------
  Tensor mask, score_bias;
  if (const Tensor& padding = request.stored_pattern_padding_mask(); padding.defined()) {
    Tensor p = batched ? padding : padding.unsqueeze(0);
    HG_CHECK(p.dtype() == kBool && p.dim() == 2 && p.size(0) == B && p.size(1) == S,
             "{}: expected a bool stored_pattern_padding_mask [{}{}] (true = padding), got {}", name,
             batched ? fmt::format("{}, ", B) : "", S, padding.desc());
    HG_CHECK(p.device() == qh.device(), "{}: stored_pattern_padding_mask is on {}, the patterns on {}", name,
             p.device(), qh.device());
    mask = p.reshape({B, 1, 1, S});
  }
  if (const Tensor& m = request.association_mask(); m.defined()) {
    HG_CHECK(m.dtype() == kBool || is_floating(m.dtype()),
             "{}: association_mask must be bool (true = forbidden) or floating (added to the scores), got {}", name,
             m.desc());
    HG_CHECK(m.device() == qh.device(), "{}: association_mask is on {}, the patterns on {}", name, m.device(),
             qh.device());
    Tensor shaped;
    if (m.dim() == 2) {
      HG_CHECK(m.size(0) == L && m.size(1) == S, "{}: expected a 2-D association_mask [{}, {}] (L, S), got {}", name,
               L, S, m.desc());
      shaped = m.reshape({1, 1, L, S});
    } else {
      HG_CHECK(m.dim() == 3 && m.size(0) == B * H && m.size(1) == L && m.size(2) == S,
               "{}: expected association_mask [{}, {}] or [{}, {}, {}] (B·num_heads, L, S), got {}", name, L, S, B * H,
               L, S, m.desc());
      shaped = m.reshape({B, H, L, S});  // row b·H + h is batch b, head h
    }
    if (m.dtype() == kBool)
      mask = mask.defined() ? logical_or(mask, shaped) : shaped;
    else
      score_bias = shaped.to(qh.dtype());
  }
  // The appended bias / zero patterns are never masked.
  if (extra_columns > 0) {
    if (mask.defined()) mask = pad(mask, {0, extra_columns}, 0.0);
    if (score_bias.defined()) score_bias = pad(score_bias, {0, extra_columns}, 0.0);
  }

  // ---- 5. β: a scalar, one per head [1, H, 1, 1], or hflayers' tiling [1, H, 1, d_k] (compat) -------
  const std::vector<double>& betas = o.scaling().values;
  double beta_scalar = betas.empty() ? (o.static_execution() ? 1.0 : 1.0 / std::sqrt(static_cast<double>(d_k)))
                                     : betas[0];
  Tensor beta;  // defined only per head
  const TensorOptions float_options = TensorOptions(qh.dtype()).device(qh.device());
  if (betas.size() > 1) {
    if (o.compat()) {
      std::vector<double> tiled(static_cast<size_t>(H * d_k));
      for (int64_t i = 0; i < H * d_k; ++i) tiled[static_cast<size_t>(i)] = betas[static_cast<size_t>(i % H)];
      beta = from_vector(tiled, {1, H, 1, d_k}).to(qh.device(), qh.dtype());
    } else {
      beta = from_vector(betas, {1, H, 1, 1}).to(qh.device(), qh.dtype());
    }
  }
  const Tensor beta_tensor = beta.defined() ? beta : scalar_tensor(beta_scalar, float_options);

  // ---- 6–10. association and the per-head update loop ----------------------------------------------
  Generator* gen = request.generator();
  std::vector<int64_t> active(static_cast<size_t>(H));  // indices of the heads still updating
  for (int64_t h = 0; h < H; ++h) active[static_cast<size_t>(h)] = h;
  std::vector<int64_t> update_steps(static_cast<size_t>(H), 0);

  Tensor state_h = qh;  // the current state patterns ξ in associative space, unscaled [B, H, L, d_k]
  Tensor xi, keep;      // association weights [B, H, L, S′] and LwPF's D′ (dense kinds)
  for (int64_t step = 0; !fused_attention; ++step) {
    const bool all_active = static_cast<int64_t>(active.size()) == H;
    Tensor index, head_is_active;
    if (!all_active) {
      index = from_vector(active, {static_cast<int64_t>(active.size())}).to(qh.device());
      std::vector<bool> flags(static_cast<size_t>(H), false);
      for (int64_t h : active) flags[static_cast<size_t>(h)] = true;
      head_is_active = from_vector(flags, {1, H, 1, 1}).to(qh.device());
    }
    // The active heads' part of a [·, H or 1, ·, ·] tensor, and a part written back into the full tensor.
    auto part = [&](const Tensor& x) {
      return all_active || !x.defined() || x.size(1) != H ? x : index_select(x, 1, index);
    };
    auto merge = [&](const Tensor& full, const Tensor& updated) {
      if (all_active) return updated;
      return where(head_is_active, index_add(zeros_like(full), 1, index, updated), full);
    };
    const Tensor beta_part = beta.defined() ? part(beta) : Tensor();
    auto scaled = [&](const Tensor& x) { return beta.defined() ? x * beta_part : x * beta_scalar; };

    Tensor change;  // what the stopping rule measures: ξ_t − ξ_{t−1} (dense) or the state change (features)
    const Tensor k_part = part(kh);
    if (step > 0) {
      // Step 10: the new state is the ξ-weighted average of the keys, ξ ← ξ K (then β applies again).
      Tensor previous = part(state_h);
      Tensor updated = dense ? matmul(part(xi), k_part)
                             : sep.attend(previous, k_part, k_part, beta.defined() ? beta_part : beta_tensor,
                                          part(mask), {}, 0.0, nullptr, gen);
      if (!dense) {
        NoGradGuard no_grad;
        change = updated - previous;
      }
      state_h = merge(state_h, updated);
    }
    if (dense) {
      // Steps 5, 7, 8: scores = (β ξ) Kᵀ + mask, ξ = sep(scores) over the stored patterns.
      Tensor scores = matmul(scaled(part(state_h)), k_part.transpose(-2, -1));
      if (score_bias.defined()) scores = scores + part(score_bias);
      Association a = sep.weights(scores, part(mask), gen);
      if (step > 0) {
        NoGradGuard no_grad;
        change = a.weights - part(xi);
      }
      xi = step == 0 ? a.weights : merge(xi, a.weights);
      if (a.keep.defined()) keep = step == 0 ? a.keep : merge(keep, a.keep);
    }

    // Step 9: a head continues while step < update_steps_max and (from step 1) max_b ‖ξ_t − ξ_{t−1}‖_F > eps.
    const bool below_max = !o.update_steps_max() || step < *o.update_steps_max();
    std::vector<int64_t> next;
    if (below_max) {
      if (step == 0) {
        next = active;
      } else {
        NoGradGuard no_grad;
        Tensor largest = amax(norm(change, 2.0, {-2, -1}), {0}).to(kCPU).to(kFloat64);  // [active heads]
        std::vector<double> values = largest.to_vector<double>();
        for (size_t i = 0; i < active.size(); ++i)
          if (values[i] > o.update_steps_eps()) next.push_back(active[i]);
      }
    }
    if (next.empty()) break;
    // `step` updates are done and the next iteration runs update step + 1: allowed up to the cap.
    HG_CHECK(o.update_steps_max() || step < o.update_steps_cap(),
             "{}: update_steps_max = None (until converged) but {} head(s) still change by more than "
             "update_steps_eps = {} after update_steps_cap = {} updates; raise update_steps_eps or update_steps_cap, "
             "or set update_steps_max",
             name, next.size(), o.update_steps_eps(), o.update_steps_cap());
    for (int64_t h : next) ++update_steps[static_cast<size_t>(h)];
    active = std::move(next);
  }

  // ---- 11. dropout once, LwPF's D′ after it (spec B.3), then the values and the out-projection ------
  HopfieldResult result;
  Tensor heads_out;  // [B, H, L, d_v]
  Tensor out;        // [B, L, H·d_v]
  // Self-association projected by one GEMM, with the heads as they came out of it and one scalar β: attention on
  // the packed projection, which reads q, k, v inside it, writes the heads merged and, backward, the projection's
  // gradient as one tensor (the chunks' backward made three zero-filled [B, L, 3·H·d_k] tensors and summed them).
  const bool packed = fused_attention && qkv.defined() && !o.normalize_hopfield_space() && extra_columns == 0 &&
                      d_k == d_v && !beta.defined();
  if (packed) {
    out = scaled_dot_product_attention_qkvpacked(qkv, H, fused_attention_mask(mask, score_bias, qh.dtype()),
                                                 beta_scalar);
  } else if (folded) {
    // Σ_s p_s y_s [B, H, L, E_v], then W_V,h per head and b_V,h where the query had a pattern to attend to.
    const Tensor pooled = sep.attend(qh, kh, vh, beta_tensor, mask, score_bias, 0.0, nullptr, gen);
    heads_out = per_head_product(
        pooled, weight(core.v_proj_weight, v_offset, vpd).reshape({H, d_v, projection_dim_}).transpose(1, 2));
    if (const Tensor b_v = block(core.in_proj_bias, v_offset, vpd); b_v.defined()) {
      Tensor bias = b_v.reshape({1, H, 1, d_v});
      // An all-masked row has zero weights (out = 0, as the projected form gives): no bias there.
      if (mask.defined()) bias = bias * (1.0 - amin(mask.to(bias.dtype()), {-1}, /*keepdim=*/true));
      heads_out = heads_out + bias;
    }
  } else if (fused_attention) {
    heads_out = sep.attend(qh, kh, vh, beta_tensor, mask, score_bias, 0.0, nullptr, gen);
  } else if (dense) {
    Tensor w = o.dropout() > 0.0 && is_training() ? dropout(xi, o.dropout(), true, gen) : xi;
    if (keep.defined()) w = w * keep;
    heads_out = matmul(w, vh);
    if (request.return_association()) result.association = keep.defined() ? xi * keep : xi;
  } else {
    heads_out = sep.attend(state_h, kh, vh, beta_tensor, mask, {}, 0.0,
                           request.return_association() ? &result.association : nullptr, gen);
  }
  if (!packed) out = heads_out.permute({0, 2, 1, 3}).reshape({B, L, H * d_v});
  if (core.out_proj) out = core.out_proj(out);

  // ---- 12. layout back, activation ------------------------------------------------------------------
  if (!batched)
    out = out.squeeze(0);
  else if (!o.batch_first())
    out = out.transpose(0, 1);
  result.output = apply_association_activation(o.association_activation(), out);
  if (request.return_projected_patterns()) result.projected_patterns = vh;
  result.update_steps = std::move(update_steps);
  return result;
}

void HopfieldImpl::pretty_print(std::ostream& stream) const {
  const HopfieldOptions& o = options;
  stream << fmt::format("Hopfield(input_size={}, hidden_size={}, output_size={}, pattern_size={}, num_heads={}, "
                        "scaling={}, update_steps_max={}, update_steps_eps={}",
                        size_text(o.input_size()), head_dim_, output_dim_, pattern_dim_, o.num_heads(),
                        scaling_text(o.scaling()), o.update_steps_max() ? std::to_string(*o.update_steps_max()) : "None",
                        o.update_steps_eps());
  if (o.stored_pattern_size()) stream << ", stored_pattern_size=" << *o.stored_pattern_size();
  if (o.pattern_projection_size()) stream << ", pattern_projection_size=" << *o.pattern_projection_size();
  if (o.stored_pattern_as_static()) stream << ", stored_pattern_as_static";
  if (o.state_pattern_as_static()) stream << ", state_pattern_as_static";
  if (o.pattern_projection_as_static()) stream << ", pattern_projection_as_static";
  if (o.pattern_projection_as_connected()) stream << ", pattern_projection_as_connected";
  if (o.normalize_hopfield_space()) stream << ", normalize_hopfield_space";
  if (!o.batch_first()) stream << ", batch_first=false";
  if (!o.association_activation().empty()) stream << ", association_activation=" << o.association_activation();
  if (o.dropout() > 0.0) stream << ", dropout=" << o.dropout();
  if (!o.input_bias()) stream << ", input_bias=false";
  if (o.concat_bias_pattern()) stream << ", concat_bias_pattern";
  if (o.add_zero_association()) stream << ", add_zero_association";
  if (o.disable_out_projection()) stream << ", disable_out_projection";
  if (o.compat()) stream << ", compat";
  stream << ")";
}

}  // namespace hg::nn
