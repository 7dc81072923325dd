// U-Hop's LearnableHopfield layer (see learnable_hopfield.h).
#include <hopgrad/nn/hopfield/learnable_hopfield.h>

#include <cmath>
#include <ostream>

#include <hopgrad/ops/ops.h>

namespace hg::nn {

LearnableHopfieldImpl::LearnableHopfieldImpl(const LearnableHopfieldOptions& options_)
    : Module("LearnableHopfield"), options(options_) {
  const int64_t d = options.input_size(), heads = options.num_heads();
  const int64_t features = options.feature_dim() == 0 ? d : options.feature_dim();
  HG_CHECK(d > 0 && heads > 0 && d % heads == 0,
           "LearnableHopfield: input_size {} must be positive and divisible by num_heads {}", d, heads);
  HG_CHECK(features >= d, "LearnableHopfield(input_size={}): feature_dim D_Φ must be >= input_size, got {}", d,
           features);
  HG_CHECK(options.update_steps() >= 1, "LearnableHopfield: update_steps must be >= 1, got {}",
           options.update_steps());
  HG_CHECK(!options.scaling() || (std::isfinite(*options.scaling()) && *options.scaling() > 0.0),
           "LearnableHopfield: scaling β must be positive and finite, got {}", options.scaling().value_or(0.0));
  HG_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0, "LearnableHopfield: dropout must be in [0, 1), got {}",
           options.dropout());
  kernel = register_module("kernel", Linear(LinearOptions(d, features).bias(options.kernel_bias())));
  query_proj = register_module("query_proj", Linear(features, d));
  key_proj = register_module("key_proj", Linear(features, d));
  value_proj = register_module("value_proj", Linear(d, d));
  out_proj = register_module("out_proj", Linear(d, d));
  SeparationOptions separation_options = options.separation();
  if (separation_options.feature_dim() == 0) separation_options.feature_dim(head_dim());
  separation = register_module("separation", Separation(separation_options));
}

double LearnableHopfieldImpl::beta() const {
  return options.scaling().value_or(1.0 / std::sqrt(static_cast<double>(head_dim())));
}

Tensor LearnableHopfieldImpl::kernel_forward(const Tensor& tokens) { return kernel(tokens); }

// Q = W_q Φ(R), K = W_k Φ(Y), V = W_v Y;  Q ← sep(β Q Kᵀ) V;  out = W_out Q
Tensor LearnableHopfieldImpl::forward(const Tensor& state, const Tensor& stored, const Tensor& padding_mask,
                                      Generator* gen) {
  const int64_t d = options.input_size(), heads = options.num_heads(), dh = head_dim();
  HG_CHECK(state.defined() && stored.defined() && state.dim() == 3 && stored.dim() == 3 && state.size(-1) == d &&
               stored.size(-1) == d && state.size(0) == stored.size(0),
           "LearnableHopfield(input_size={}, num_heads={}): expected state [B, L, {}] and stored [B, S, {}], got {} "
           "and {}",
           d, heads, d, d, state.defined() ? state.desc() : "undefined",
           stored.defined() ? stored.desc() : "undefined");
  const int64_t batch = state.size(0), length = state.size(1), size = stored.size(1);
  Tensor mask;
  if (padding_mask.defined()) {
    HG_CHECK(padding_mask.dtype() == kBool && padding_mask.dim() == 2 && padding_mask.size(0) == batch &&
                 padding_mask.size(1) == size && padding_mask.device() == stored.device(),
             "LearnableHopfield: expected a bool stored_pattern_padding_mask [{}, {}] on {}, got {}", batch, size,
             stored.device().str(), padding_mask.desc());
    mask = padding_mask.view({batch, 1, 1, size});
  }
  auto split_heads = [&](const Tensor& x, int64_t n) { return x.view({batch, n, heads, dh}).transpose(1, 2); };
  Tensor query = split_heads(query_proj(kernel(state)), length);  // [B, H, L, d_head]
  const Tensor key = split_heads(key_proj(kernel(stored)), size);  // [B, H, S, d_head]
  const Tensor value = split_heads(value_proj(stored), size);      // [B, H, S, d_head]
  const Tensor beta_tensor = scalar_tensor(beta(), TensorOptions(state.dtype()).device(state.device()));
  const double dropout = is_training() ? options.dropout() : 0.0;
  for (int64_t step = 0; step < options.update_steps(); ++step)
    query = separation->attend(query, key, value, beta_tensor, mask, {}, dropout, nullptr, gen);
  return out_proj(query.transpose(1, 2).reshape({batch, length, d}));
}

void LearnableHopfieldImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("LearnableHopfield(input_size={}, num_heads={}, feature_dim={}, update_steps={}, beta={:g}, "
                        "separation={})",
                        options.input_size(), options.num_heads(), kernel->options.out_features(),
                        options.update_steps(), beta(), to_string(options.separation().kind()));
}

}  // namespace hg::nn
