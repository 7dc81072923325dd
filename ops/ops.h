#pragma once
// The op list: every differentiable operation a user can call, in one header.
// Each op checks its inputs (naming itself, the shapes/dtypes/devices it got and what it expected), runs the
// forward on the inputs' backend, and records a backward formula written with these same ops, so gradients
// run on any backend and can themselves be differentiated (create_graph=true).
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>

namespace hg {

// ---- factories (ops/factory.cpp) ---------------------------------------------------------------
/// Options for factories: `hg::zeros({2, 3}, hg::TensorOptions().dtype(hg::kFloat64).requires_grad(true))`.
struct TensorOptions {
  DType dtype_ = kFloat32;
  Device device_ = kCPU;
  bool requires_grad_ = false;
  TensorOptions() = default;
  TensorOptions(DType d) : dtype_(d) {}
  TensorOptions(Device d) : device_(d) {}
  TensorOptions& dtype(DType d) { dtype_ = d; return *this; }
  TensorOptions& device(Device d) { device_ = d; return *this; }
  TensorOptions& requires_grad(bool r = true) { requires_grad_ = r; return *this; }
};

Tensor empty(IntArrayRef sizes, TensorOptions options);
Tensor zeros(IntArrayRef sizes, TensorOptions options = {});
Tensor ones(IntArrayRef sizes, TensorOptions options = {});
Tensor full(IntArrayRef sizes, double value, TensorOptions options = {});
/// Values start, start+step, ... below end (float32 unless options give another dtype, e.g. kInt64).
Tensor arange(double end, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor eye(int64_t n, TensorOptions options = {});
Tensor eye(int64_t n, int64_t m, TensorOptions options);
/// Uniform in [0, 1), from `gen` or the device's default generator.
Tensor rand(IntArrayRef sizes, TensorOptions options = {}, Generator* gen = nullptr);
/// Standard normal.
Tensor randn(IntArrayRef sizes, TensorOptions options = {}, Generator* gen = nullptr);
/// Integers uniform in [low, high); int64 unless options say otherwise.
Tensor randint(int64_t low, int64_t high, IntArrayRef sizes, TensorOptions options = TensorOptions(kInt64),
               Generator* gen = nullptr);
/// Copies host values into a new tensor of `sizes` (numel must match).
/// The dtype defaults to T's (float → float32, double → float64, int64_t → int64, bool → bool).
template <typename T>
Tensor from_vector(const std::vector<T>& values, IntArrayRef sizes, TensorOptions options = TensorOptions(dtype_of_v<T>));
/// Wraps existing host memory without copying; `deleter` (may be empty) runs when the last view dies.
Tensor from_blob(void* data, IntArrayRef sizes, DType dtype, std::function<void(void*)> deleter = {},
                 Device device = kCPU);
/// A 0-dim tensor holding `value`.
Tensor scalar_tensor(double value, TensorOptions options = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);

// ---- elementwise binary with NumPy broadcasting (ops/binary.cpp) -------------------------------
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);  ///< a + alpha * b
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);  ///< a - alpha * b
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(double base, const Tensor& exponent);
Tensor rsub(const Tensor& a, double b);  ///< b - a
Tensor rdiv(const Tensor& a, double b);  ///< b / a
// comparisons give bool tensors and are not differentiable
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);
/// heaviside(x, values): 0 for x < 0, values for x == 0, 1 for x > 0 (gradient zero, as in PyTorch).
Tensor heaviside(const Tensor& x, const Tensor& values);
/// cond ? a : b, broadcasting all three.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);
/// Replaces elements where `mask` is true by `value` (mask broadcasts to x).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor clamp_min(const Tensor& x, double min);
Tensor clamp_max(const Tensor& x, double max);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
Tensor operator&&(const Tensor& a, const Tensor& b);
Tensor operator||(const Tensor& a, const Tensor& b);
Tensor operator!(const Tensor& a);

// ---- in-place (bump the version counter; see ops/inplace.cpp) ----------------------------------
// A source that overlaps the destination in memory other than element for element (x.copy_(x.t()), a shifted
// slice of the same storage) is read through a copy first, so the result is what it would be for separate
// tensors (PyTorch refuses these). The same view (x.add_(x)) needs no copy.
/// Whether a and b share memory other than as the same view (the same storage, intersecting bytes, and not the
/// same offset, sizes, strides and dtype): writing one can change what the other reads.
bool partially_overlaps(const Tensor& a, const Tensor& b);
const Tensor& add_(const Tensor& self, const Tensor& other, double alpha = 1.0);
const Tensor& add_(const Tensor& self, double value);
const Tensor& mul_(const Tensor& self, const Tensor& other);
const Tensor& mul_(const Tensor& self, double value);
/// self ← self / value (true division: self must be floating).
const Tensor& div_(const Tensor& self, double value);
const Tensor& fill_(const Tensor& self, double value);
const Tensor& zero_(const Tensor& self);
/// self = self + alpha * (a * b); self = self + alpha * (a / b) — optimizer helpers (no autograd).
const Tensor& addcmul_(const Tensor& self, const Tensor& a, const Tensor& b, double alpha = 1.0);
const Tensor& addcdiv_(const Tensor& self, const Tensor& a, const Tensor& b, double alpha = 1.0);

// ---- fused optimizer updates (ops/optim.cpp) ---------------------------------------------------
/// Hyperparameters of one Adam/AdamW update at step `step` (1 for the first update), as torch.optim.Adam.
struct AdamUpdate {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool amsgrad = false;
  bool decoupled_weight_decay = false;  ///< AdamW: p ← p·(1 − η·λ) instead of g ← g + λ·p
  int64_t step = 1;
};
/// One Adam/AdamW update of `param` in place, in a single pass over the parameter and its state:
///   g ← g + λ·p (Adam) or p ← p·(1 − η·λ) (AdamW);  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
///   v̂ ← max(v̂, v) (amsgrad, then used for v);  p ← p − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
/// exp_avg, exp_avg_sq (and max_exp_avg_sq, defined only with amsgrad) have the parameter's shape, dtype and
/// device and are updated in place. Not differentiable: optimizers call it under NoGradGuard.
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdate& update);

// ---- elementwise unary (ops/unary.cpp) ---------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
/// GELU; `approximate` = "none" (exact, x·Φ(x)) or "tanh".
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor selu(const Tensor& x);
Tensor elu(const Tensor& x, double alpha = 1.0);
/// softplus(x) = log(1 + exp(beta x)) / beta, linear above `threshold` (as PyTorch).
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

// ---- reductions (ops/reduce.cpp, ops/sort.cpp) -------------------------------------------------
// `dims` empty = all dims. Negative dims count from the end.
Tensor sum(const Tensor& x, IntArrayRef dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, IntArrayRef dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, IntArrayRef dims = {}, bool keepdim = false);
/// Variance; unbiased = divide by N-1 (Bessel), as torch.var's default.
Tensor var(const Tensor& x, IntArrayRef dims = {}, bool unbiased = true, bool keepdim = false);
Tensor std(const Tensor& x, IntArrayRef dims = {}, bool unbiased = true, bool keepdim = false);
/// Max / min over all elements.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
/// Max / min along `dim`: (values, indices).
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// Max / min over several dims (values only).
Tensor amax(const Tensor& x, IntArrayRef dims, bool keepdim = false);
Tensor amin(const Tensor& x, IntArrayRef dims, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
/// log(sum(exp(x))) computed stably (max-shifted).
Tensor logsumexp(const Tensor& x, IntArrayRef dims, bool keepdim = false);
/// p-norm over dims (p = 2 by default; p = inf for max-abs).
Tensor norm(const Tensor& x, double p = 2.0, IntArrayRef dims = {}, bool keepdim = false);
/// k largest (or smallest) along dim, sorted: (values, indices).
std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true,
                                bool sorted = true);
/// Stable sort along dim: (values, indices).
std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// k-th smallest (1-based k) along dim: (values, indices).
std::tuple<Tensor, Tensor> kthvalue(const Tensor& x, int64_t k, int64_t dim = -1, bool keepdim = false);
/// Lower median along dim (element (n-1)/2 of the sorted values, as torch.median): (values, indices).
std::tuple<Tensor, Tensor> median(const Tensor& x, int64_t dim, bool keepdim = false);
/// Lower median of all elements.
Tensor median(const Tensor& x);
Tensor cumsum(const Tensor& x, int64_t dim);

// ---- linear algebra (ops/linalg.cpp) -----------------------------------------------------------
/// torch.matmul semantics: 1-D·1-D dot, matrix·matrix, and batched with broadcasting of batch dims; float32 or
/// float64 operands of one dtype (integer products, which torch computes on the CPU only, are refused).
Tensor matmul(const Tensor& a, const Tensor& b);
/// Batched matrix multiply of [B, M, K] and [B, K, N].
Tensor bmm(const Tensor& a, const Tensor& b);
/// y = x Wᵀ + b with W [out, in]; x [..., in]; b [out], or anything that broadcasts to one row of it (a scalar,
/// [1], [1, out]), as torch.nn.functional.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- separation functions (ops/nn_sparsemax.cpp, ops/nn_entmax.cpp, ops/nn_softmax1.cpp) -----------------
/// sparsemax along dim: the Euclidean projection of x onto the probability simplex (Martins & Astudillo
/// 2016). −inf entries get 0; a row that is entirely −inf gives zeros.
Tensor sparsemax(const Tensor& x, int64_t dim = -1);
/// 1.5-entmax along dim, exact (sort-based; Peters et al. 2019). −inf entries get 0; an all −inf row gives zeros.
Tensor entmax15(const Tensor& x, int64_t dim = -1);
/// α-entmax along dim by bisection, for alpha > 1: a scalar tensor, or one value per row (a shape that broadcasts
/// to x's with size 1 along dim, e.g. [H, 1, 1] per head). Differentiable in x and in alpha. −inf entries get 0;
/// an all −inf row gives zeros.
Tensor entmax_bisect(const Tensor& x, const Tensor& alpha, int64_t dim = -1, int64_t n_iter = 50);
/// softmax with an implicit zero logit: exp(x_i) / (1 + Σ_j exp(x_j)), stable for any x.
Tensor softmax1(const Tensor& x, int64_t dim = -1);

// ---- neural-net ops (ops/nn_*.cpp) -------------------------------------------------------------
/// softmax along dim; rows that are entirely -inf give zeros (not NaN).
Tensor softmax(const Tensor& x, int64_t dim);
/// log_softmax along dim; rows that are entirely -inf give zeros (not NaN).
Tensor log_softmax(const Tensor& x, int64_t dim);
/// Layer norm over the trailing dims `normalized_shape`; weight/bias optional.
Tensor layer_norm(const Tensor& x, IntArrayRef normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
/// Inverted dropout: zeroes with probability p and scales kept elements by 1/(1-p) when `train`.
Tensor dropout(const Tensor& x, double p, bool train, Generator* gen = nullptr);
/// Rows of `weight` [num, dim] picked by int64 `indices` of any shape: [..., dim].
Tensor embedding(const Tensor& weight, const Tensor& indices);
/// Scaled-dot-product attention, as torch.nn.functional.scaled_dot_product_attention (no dropout):
///   out = softmax(q kᵀ·scale + attn_mask) v,   q [..., L, E], k [..., S, E], v [..., S, Ev] → out [..., L, Ev],
/// batch dims broadcast. attn_mask (optional) broadcasts to [..., L, S]: bool (true = the pair TAKES PART, as in
/// PyTorch's function; nn::MultiheadAttention's masks mean the opposite) or q's dtype (added to the scores).
/// scale defaults to 1/√E. The fused kernel (FlashAttention-2 style on the CPU) forms the [L, S] weights tile by
/// tile and its backward recomputes them from the saved log-sum-exp per row (or reads them, where the backend keeps
/// them); AttentionImpl (below) says when the composite matmul–softmax–matmul runs instead. Unlike PyTorch, a query
/// whose keys are all masked gets zeros, not NaN.
///   auto out = hg::scaled_dot_product_attention(q, k, v, hg::logical_not(padding).reshape({N, 1, 1, S}));
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask = Tensor(), std::optional<double> scale = std::nullopt);
/// Multi-head self-attention on a packed projection (FlashAttention's "qkvpacked" form): qkv [..., L, 3·H·d] holds
/// q, k and v side by side along its last dim, each with its H heads of width d contiguous (the layout of
/// nn::MultiheadAttention's in_proj), and the result [..., L, H·d] has the heads merged, ready for an out
/// projection. Per head h: out_h = softmax(q_h k_hᵀ·scale + attn_mask) v_h, scale defaulting to 1/√d and attn_mask
/// broadcasting to [..., H, L, L] as in scaled_dot_product_attention. The same as splitting, permuting and merging
/// around scaled_dot_product_attention, minus the copies: the kernel reads q, k and v inside qkv, writes the merged
/// output, and writes qkv's gradient as one tensor (not three zero-padded slices summed).
///   auto y = hg::scaled_dot_product_attention_qkvpacked(linear(x, in_proj_weight), /*num_heads=*/3);
Tensor scaled_dot_product_attention_qkvpacked(const Tensor& qkv, int64_t num_heads, const Tensor& attn_mask = Tensor(),
                                              std::optional<double> scale = std::nullopt);
/// How scaled_dot_product_attention and scaled_dot_product_attention_qkvpacked compute (process-wide), as
/// PyTorch's torch.nn.attention.sdpa_kernel picks among its backends. All three give the same values and gradients.
///   Auto      — per call, as the backend finds faster (Backend::attention_prefers_composite): on the CPU the fused
///               kernel when a graph is recorded and the composite for calls that record none (up to 2^24 weight
///               elements); on CUDA the composite up to 256 MiB of weights and the fused kernel above;
///   Fused     — the fused kernel, which forms the [L, S] weights only tile by tile (keeping them for the backward
///               only where the backend finds that it pays);
///   Composite — softmax(q kᵀ·scale + mask) v as matmul, softmax and matmul ops (PyTorch's "math" backend),
///               which stores the [..., L, S] scores and weights.
enum class AttentionImpl { Auto, Fused, Composite };
void set_attention_impl(AttentionImpl impl);
AttentionImpl attention_impl();
/// The implementation set for a scope, the previous one restored at its end:
///   { hg::AttentionImplGuard fused(hg::AttentionImpl::Fused); y = hg::scaled_dot_product_attention(q, k, v); }
class AttentionImplGuard {
 public:
  explicit AttentionImplGuard(AttentionImpl impl) : previous_(attention_impl()) { set_attention_impl(impl); }
  ~AttentionImplGuard() { set_attention_impl(previous_); }
  AttentionImplGuard(const AttentionImplGuard&) = delete;
  AttentionImplGuard& operator=(const AttentionImplGuard&) = delete;

 private:
  AttentionImpl previous_;
};

/// x [N, Cin, L], w [Cout, Cin/groups, K], bias [Cout] or undefined.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
/// x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), IntArrayRef stride = {1, 1},
              IntArrayRef padding = {0, 0}, IntArrayRef dilation = {1, 1}, int64_t groups = 1);
/// Padding computed from the kernel, as torch's padding="valid" / "same". Valid: none. Same: the output has the
/// input's size (stride 1 only); the total dilation·(kernel − 1) is split evenly, an odd extra zero on the right.
enum class Padding { Valid, Same };
/// `hg::conv1d(x, w, b, 1, hg::Padding::Same)`
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, Padding padding,
              int64_t dilation = 1, int64_t groups = 1);
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, IntArrayRef stride, Padding padding,
              IntArrayRef dilation = {1, 1}, int64_t groups = 1);
/// x [N, C, L]; stride defaults to kernel_size (pass 0). Window taps are `dilation` apart; ceil_mode rounds the
/// output length up (as torch: the last window must start inside the input or the left padding).
Tensor max_pool1d(const Tensor& x, int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1,
                  bool ceil_mode = false);
/// x [N, C, H, W]; empty stride defaults to kernel_size.
Tensor max_pool2d(const Tensor& x, IntArrayRef kernel_size, IntArrayRef stride = {}, IntArrayRef padding = {0, 0},
                  IntArrayRef dilation = {1, 1}, bool ceil_mode = false);

enum class Reduction { None, Mean, Sum };
/// Cross entropy from logits [N, C] (or [N, C, d...]) and int64 class targets [N] (or [N, d...]).
/// Targets equal to `ignore_index` contribute nothing; Mean divides by the number of non-ignored targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean,
                     int64_t ignore_index = -100, double label_smoothing = 0.0);
/// Negative log-likelihood from log-probabilities [N, C].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::Mean,
                int64_t ignore_index = -100);
/// Options of nll_loss, as libtorch's F::NLLLossFuncOptions: `hg::NLLLossOptions().weight(w).ignore_index(0)`.
struct NLLLossOptions {
  Tensor weight_;  ///< [C] rescaling of each class's loss; undefined = all 1
  int64_t ignore_index_ = -100;
  Reduction reduction_ = Reduction::Mean;
  NLLLossOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  NLLLossOptions& ignore_index(int64_t i) { ignore_index_ = i; return *this; }
  NLLLossOptions& reduction(Reduction r) { reduction_ = r; return *this; }
};
/// ℓ_i = −weight[t_i]·log_probs[i, t_i]; Mean divides by Σ weight[t_i] over the non-ignored targets (as torch).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options);
/// Options of cross_entropy, as libtorch's F::CrossEntropyFuncOptions:
/// `hg::cross_entropy(logits, target, hg::CrossEntropyOptions().weight(w).label_smoothing(0.1))`.
struct CrossEntropyOptions {
  Tensor weight_;  ///< [C] rescaling of each class's loss; undefined = all 1
  int64_t ignore_index_ = -100;
  double label_smoothing_ = 0.0;  ///< in [0, 1]: the target becomes (1 − ε)·one_hot + ε/C
  Reduction reduction_ = Reduction::Mean;
  CrossEntropyOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  CrossEntropyOptions& ignore_index(int64_t i) { ignore_index_ = i; return *this; }
  CrossEntropyOptions& label_smoothing(double e) { label_smoothing_ = e; return *this; }
  CrossEntropyOptions& reduction(Reduction r) { reduction_ = r; return *this; }
};
/// Cross entropy with class weights: with p = log_softmax(logits), w_t = weight[t_i],
/// ℓ_i = (1 − ε)·(−w_t·p[i, t_i]) + (ε/C)·(−Σ_c weight[c]·p[i, c]); Mean divides by Σ_i w_t (non-ignored i).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options);
/// max(x,0) - x·y + log(1 + exp(-|x|)), with optional pos_weight (broadcast over the last dim).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::Mean, const Tensor& pos_weight = Tensor());
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

// ---- shape ops (ops/shape.cpp, ops/index.cpp) --------------------------------------------------
Tensor cat(const Tensors& tensors, int64_t dim = 0);
Tensor stack(const Tensors& tensors, int64_t dim = 0);
/// Pieces of `split_size` along dim (the last may be smaller).
Tensors split(const Tensor& x, int64_t split_size, int64_t dim = 0);
Tensors split_with_sizes(const Tensor& x, IntArrayRef sizes, int64_t dim = 0);
Tensors chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
Tensors unbind(const Tensor& x, int64_t dim = 0);
/// Rows of x along dim picked by a 1-D int64 index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// out[i][j] = x[i][index[i][j]] (dim = 1), as torch.gather.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// Copy of `self` with `src` added at `index` along dim, as torch.scatter_add.
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
/// Copy of `self` with `src` rows added at `index` along dim, as torch.index_add.
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
/// Constant padding; `pad` lists (before, after) pairs starting from the LAST dim, as torch.nn.functional.pad.
Tensor pad(const Tensor& x, IntArrayRef pad, double value = 0.0);
/// Tiles x `repeats` times along each dim (torch.Tensor.repeat).
Tensor repeat(const Tensor& x, IntArrayRef repeats);
/// x with the order of its elements reversed along each of `dims`, as torch.flip (a copy).
Tensor flip(const Tensor& x, IntArrayRef dims);
/// x shifted by shifts[i] positions along dims[i], elements leaving one end entering at the other, as torch.roll;
/// with no dims, the flattened x is rolled by the single shift and the shape restored.
Tensor roll(const Tensor& x, IntArrayRef shifts, IntArrayRef dims = {});
/// The lower (tril) or upper (triu) triangle of the last two dims, the rest set to 0, as torch.tril/triu:
/// tril keeps x[..., i, j] with j − i ≤ diagonal, triu keeps j − i ≥ diagonal. A causal attention mask is
/// tril(ones({L, L}, kBool)).
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
/// int64 one-hot encoding of int64 class indices: shape index.sizes() + [num_classes], as
/// torch.nn.functional.one_hot (num_classes = -1: the largest index + 1).
Tensor one_hot(const Tensor& index, int64_t num_classes = -1);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor reshape(const Tensor& x, IntArrayRef shape);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, IntArrayRef dims);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
/// Broadcast x to `shape` (-1 keeps a size): a view with stride 0 along broadcast dims, as torch.broadcast_to;
/// the inverse of sum_to. Call .contiguous() for a materialised copy.
Tensor broadcast_to(const Tensor& x, IntArrayRef shape);
/// Sums x down to `shape` (the reduction that undoes broadcasting; used by backward formulas).
Tensor sum_to(const Tensor& x, IntArrayRef shape);
/// Result shape of broadcasting a and b; throws naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
/// Whether a tensor of shape `from` broadcasts to exactly `to` (NumPy rules, as expand allows; never throws).
bool broadcasts_to(const Shape& from, const Shape& to);
/// Whether shapes a and b broadcast together (broadcast_shapes would succeed; never throws).
bool broadcastable(const Shape& a, const Shape& b);
/// dtype of a binary op's result between a and b, as torch.result_type: a 0-dim tensor beside a tensor with
/// dims takes part only when its category (bool < integer < floating) is higher (float32 [n] · float64 0-dim
/// stays float32; int64 [n] · float64 0-dim is float64). Arithmetic then makes bool results int64.
DType result_type(const Tensor& a, const Tensor& b);
/// dtype of tensor ⊕ scalar: the tensor's when floating; int64 for an integral scalar within int64's range;
/// float32 for a fractional, non-finite or out-of-range one (1e19 would not fit an int64).
DType result_type(const Tensor& a, double scalar);
/// Whether a value of dtype `from` may be written into a tensor of dtype `to` by an in-place op, as
/// torch.can_cast: not floating into integer or bool, not integer into bool.
bool can_cast(DType from, DType to);

// ---- comparisons of whole tensors (ops/compare.cpp) --------------------------------------------
/// |a - b| <= atol + rtol·|b| everywhere (same shapes after broadcasting); NaNs compare unequal.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);
/// Largest |a - b|, as a double.
double max_abs_diff(const Tensor& a, const Tensor& b);

}  // namespace hg
