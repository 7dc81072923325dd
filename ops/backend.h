#pragma once
// The backend interface: one virtual per primitive kernel. A backend computes into outputs that the op
// frontend (ops/*.cpp) has already checked and allocated; it never sees autograd. Each backend implements
// these in one file per op family (ops/cpu/<family>.cpp, ops/cuda/<family>.cu).
//
// Conventions for every method:
//  - all tensors are on this backend's device (copy() is the exception: one side may be on the host);
//  - inputs may have any strides, including 0 (broadcast), unless a comment says "contiguous";
//  - outputs are freshly allocated contiguous tensors unless a comment says otherwise;
//  - dtypes: the frontend converts inputs to the computing dtype first; a backend throws hg::Error naming the
//    kernel for a dtype it does not support.
#include <cstdint>
#include <memory>

#include <hopgrad/core/tensor.h>

namespace hg {

enum class UnaryOp : uint8_t {
  Neg, Abs, Sign, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tanh, Sigmoid, Erf, Square,
  Relu, Gelu, GeluTanh, Selu, Elu, Softplus, Clamp, LogicalNot,
  GeluDerivative,  ///< d gelu(x)/dx = Φ(x) + x·φ(x), in gelu's differentiable (create_graph) backward
};
/// The op's name for error messages ("gelu(tanh)", "logical_not", ...).
const char* unary_name(UnaryOp op);

/// How gelu approximates Φ (PyTorch's `approximate`): exactly, Φ(x) = (1 + erf(x/√2))/2, or with tanh.
enum class GeluApproximation : uint8_t { None, Tanh };

/// Extra parameters of some unary ops: Elu (a = alpha), Softplus (a = beta, b = threshold),
/// Clamp (a = min, b = max; ±inf for a missing bound).
struct UnaryParams {
  double a = 0.0, b = 0.0;
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, Heaviside, LogicalAnd, LogicalOr,
};
constexpr bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge || op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr;
}

enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, Prod };

/// 2-D convolution geometry (1-D convolutions run as 2-D with H = 1).
struct ConvParams {
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
};

/// 2-D max-pooling geometry (padding counts as -inf): window (oh, ow) reads rows oh·stride − padding +
/// kh·dilation for kh < kernel (likewise columns), clipped to the input. The frontend guarantees every window
/// keeps at least one input element.
struct PoolParams {
  int64_t kernel[2] = {1, 1};
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
};

/// Scalars of one fused Adam/AdamW update (ops/optim.cpp computes the bias corrections for step t).
struct AdamParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double bias_correction1 = 1.0;       ///< 1 − β₁ᵗ
  double bias_correction2_sqrt = 1.0;  ///< √(1 − β₂ᵗ)
  bool amsgrad = false;
  bool decoupled_weight_decay = false;  ///< AdamW: p ← p·(1 − η·λ) instead of g ← g + λ·p
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  virtual const char* name() const = 0;

  // ---- memory and data movement ---------------------------------------------------------------
  virtual std::shared_ptr<Storage> allocate(size_t nbytes, Device device) = 0;
  /// out = src elementwise: same shape (src may broadcast with 0 strides), any dtypes (converted), out may be
  /// strided. One of src/out may live on the host (host↔device copies go through the device's backend).
  virtual void copy(const Tensor& src, Tensor& out) = 0;
  /// Every element of out (any strides) = value.
  virtual void fill(Tensor& out, double value) = 0;
  /// out[i] = start + i·step for contiguous 1-D out (an int64 out: start and step are integers, and the sum is
  /// formed in int64).
  virtual void arange(Tensor& out, double start, double step) = 0;
  /// Random fills of contiguous out; element i uses Philox counter `offset + i` with key `seed`.
  virtual void uniform(Tensor& out, double low, double high, uint64_t seed, uint64_t offset) = 0;
  virtual void normal(Tensor& out, double mean, double std, uint64_t seed, uint64_t offset) = 0;
  virtual void randint(Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) = 0;
  /// Waits until all queued work on the device is done (no-op on the CPU).
  virtual void synchronize() {}

  // ---- elementwise ----------------------------------------------------------------------------
  /// out = op(x); x has out's shape and dtype (LogicalNot: out is bool). out may be strided (in-place).
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams params) = 0;
  /// GELU's backward in one pass (PyTorch's gelu_backward): grad_x = grad_out ⊙ gelu′(x), with
  ///   None: gelu′(x) = Φ(x) + x·φ(x);
  ///   Tanh: gelu′(x) = (1 + tanh u)/2 + x/2·(1 − tanh²u)·√(2/π)·(1 + 3κx²),  u = √(2/π)·(x + κx³), κ = 0.044715.
  /// grad_out and x have grad_x's shape (any strides, 0 = broadcast: a gradient can be an expanded scalar) and one
  /// floating dtype; grad_x may be strided.
  virtual void gelu_backward(const Tensor& grad_out, const Tensor& x, GeluApproximation approximate,
                             Tensor& grad_x) = 0;
  /// ReLU's backward in one pass (PyTorch's threshold_backward at 0): grad_x = y <= 0 ? 0 : grad_out, y = relu(x)
  /// (so a NaN y passes the gradient on, as torch; the composite is where(!(y <= 0), g, 0)). Shapes and dtypes as
  /// gelu_backward's.
  virtual void relu_backward(const Tensor& grad_out, const Tensor& y, Tensor& grad_x) = 0;
  /// ELU's and SELU's backward in one pass, from the input: grad_x = grad_out ⊙ (x > 0 ? scale : scale·α·e^x)
  /// (ELU: scale 1; SELU: λ, α), e^x evaluated at min(x, 0) (a NaN x gives NaN). Shapes and dtypes as
  /// gelu_backward's.
  virtual void elu_backward(const Tensor& grad_out, const Tensor& x, double scale, double alpha, Tensor& grad_x) = 0;
  /// out = a op b; a and b are broadcast views of out's shape with one common dtype; comparisons and logical
  /// ops write bool. out may be strided and may alias a (in-place).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  /// out = a op s (or s op a when scalar_first).
  virtual void binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, Tensor& out) = 0;
  /// out = cond ? a : b; cond bool, all broadcast views of out's shape; a, b, out one dtype.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // ---- reductions and scans -------------------------------------------------------------------
  /// out has x's rank; out.size(d) is x.size(d) (kept) or 1 (reduced). Mean of an empty set is NaN; Max/Min
  /// of an empty set throw. NaNs propagate through Max/Min.
  virtual void reduce(ReduceOp op, const Tensor& x, Tensor& out) = 0;
  /// Max (or min) along dim with the index of the first extremum: values/indices have x's shape with size 1
  /// at dim; indices are int64.
  virtual void arg_reduce(bool is_max, const Tensor& x, int64_t dim, Tensor& values, Tensor& indices) = 0;
  /// The gradient of an extremum (or median) y of x, split evenly among the elements that attain it — x = y, or
  /// both NaN — over each group of elements reduced into one output (the dims where y has size 1 and x does not):
  ///   dx = (g / count) · [x attains y],   count = Σ_group [x attains y]
  /// (the product keeps g's NaN/±inf and the sign of zero as the composite with ops). g and y have x's rank and
  /// size 1 along the reduced dims; g, x, y any strides, one floating dtype; dx has x's shape.
  virtual void split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) = 0;
  /// out = inclusive prefix sum of x along dim (out has x's shape).
  virtual void cumsum(const Tensor& x, int64_t dim, Tensor& out) = 0;
  /// Stable sort along dim (NaN sorts as larger than everything): values and int64 indices with x's shape.
  virtual void sort(const Tensor& x, int64_t dim, bool descending, Tensor& values, Tensor& indices) = 0;
  /// The k largest (or smallest) along dim, sorted, ties resolved by lower index first: values/indices have
  /// x's shape with size k at dim.
  virtual void topk(const Tensor& x, int64_t k, int64_t dim, bool largest, Tensor& values, Tensor& indices) = 0;

  // ---- linear algebra -------------------------------------------------------------------------
  /// out[b] = a[b] · b[b] for a [B, M, K], b [B, K, N] (either may have batch stride 0 or transposed inner
  /// strides), out contiguous [B, M, N]. float32/float64.
  virtual void matmul(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  /// out = x · weightᵀ + bias for x [M, K], weight [N, K] (either may be a strided view), bias [N] or null,
  /// out contiguous [M, N]: the bias is added as the product is written, not in a second pass. float32/float64.
  virtual void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out) = 0;

  // ---- neural-net kernels ---------------------------------------------------------------------
  /// softmax (or log_softmax) of contiguous x along dim; all -inf rows give 0.
  virtual void softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) = 0;
  /// Layer norm of contiguous x over its trailing `normalized_numel` elements: out = (x - mean)·rstd·w + b.
  /// weight/bias may be null. mean and rstd are [rows] in x's dtype (rows = x.numel() / normalized_numel).
  virtual void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t normalized_numel,
                          double eps, Tensor& out, Tensor& mean, Tensor& rstd) = 0;
  /// The gradients of layer_norm() from grad_out and x [rows, N] (contiguous), weight [N] or null, and the mean
  /// and rstd [rows] it saved: with x̂ = (x − mean)·rstd and ĝ = grad_out ⊙ w,
  ///   grad_x = rstd·(ĝ − mean_N(ĝ) − x̂ ⊙ mean_N(ĝ ⊙ x̂)),
  ///   grad_weight = Σ_rows grad_out ⊙ x̂,   grad_bias = Σ_rows grad_out.
  /// A null output is not computed; the others are contiguous (grad_x [rows, N], grad_weight and grad_bias [N]) and
  /// overwritten. One floating dtype throughout; results do not depend on the number of threads.
  virtual void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor* weight, const Tensor& mean,
                                   const Tensor& rstd, int64_t normalized_numel, Tensor* grad_x, Tensor* grad_weight,
                                   Tensor* grad_bias) = 0;
  /// x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW], bias [Cout] or null → out [N, Cout, OH, OW]; all contiguous
  /// except x, which may be any strided view (channels-last, a transposed sequence batch): the backend copies or
  /// reorders it as its kernels need. The same holds for x in conv2d_backward_weight.
  virtual void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p, Tensor& out) = 0;
  /// grad_x [N, Cin, H, W] (overwritten) from grad_out and w.
  virtual void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const ConvParams& p,
                                     Tensor& grad_x) = 0;
  /// grad_w [Cout, Cin/groups, KH, KW] (overwritten) from x and grad_out.
  virtual void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const ConvParams& p,
                                      Tensor& grad_w) = 0;
  /// x [N, C, H, W] contiguous → out [N, C, OH, OW] and int64 indices (flat position h·W + w within the plane).
  virtual void max_pool2d(const Tensor& x, const PoolParams& p, Tensor& out, Tensor& indices) = 0;
  /// grad_x (zero-filled by the caller, [N, C, H, W]) += grad_out scattered through indices.
  virtual void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const PoolParams& p,
                                   Tensor& grad_x) = 0;

  // ---- fused attention (ops/cpu/attention.cpp, ops/cuda/attention.cu) ---------------------------
  /// Scaled-dot-product attention without forming the [L, S] weights (unless asked to keep them, below): for every
  /// (b, h) and query row i,
  ///   out[i] = Σ_j softmax_j(scale·q[i]·k[j] + mask[i, j]) v[j],   lse[i] = log Σ_j exp(scale·q[i]·k[j] + mask[i, j]).
  /// q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev] and mask (null, or a [B, H, L, S] view: bool, true = the pair
  /// takes part, or q's dtype, added to the scores) have unit stride along their last dim; their other strides
  /// are free (0 = broadcast). out [B, H, L, Ev] is a view with unit stride along its last dim (e.g. the heads
  /// merged, [B, L, H, Ev] in memory) and lse [B, H, L] is contiguous, both in q's dtype (float32/64).
  /// A row whose keys are all masked gets out = 0 and lse = −inf. weights, when given (only where
  /// attention_keeps_weights says so), is a contiguous [B, H, L, S] that also receives the softmax weights, for
  /// attention_backward to read instead of recomputing them.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale,
                         Tensor& out, Tensor& lse, Tensor* weights) = 0;
  /// The gradients of attention() from its out, lse and grad_out [B, H, L, Ev], recomputing the weights block by
  /// block, or reading them from `weights` (what attention() wrote there; not modified): grad_q [B, H, L, E],
  /// grad_k [B, H, S, E], grad_v [B, H, S, Ev], overwritten (full size even where q, k or v broadcast). out,
  /// grad_out and the gradients are views with unit stride along their last dim (e.g. the three gradients side
  /// by side in one packed [B, L, 3, H, E] tensor); lse is contiguous.
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                                  double scale, const Tensor& out, const Tensor& lse, const Tensor* weights,
                                  const Tensor& grad_out, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) = 0;
  /// Whether attention() can keep the [B, H, L, S] weights (`batch_heads` = B·H) for a backward that will follow.
  /// Keeping them trades their memory for the backward's recomputation of the scores and exponentials; a backend
  /// says where that pays. Default: never.
  virtual bool attention_keeps_weights(int64_t batch_heads, int64_t L, int64_t S, DType dtype) const {
    (void)batch_heads, (void)L, (void)S, (void)dtype;
    return false;
  }
  /// Whether matmul, softmax and matmul as ops (the composite, which forms the [B, H, L, S] weights) beat
  /// attention() for a call with `batch_heads` = B·H and [L, S] weights; `records`: a graph is recorded, so the
  /// composite also keeps what its backward reads. hg::AttentionImpl::Auto asks this. Default: never.
  virtual bool attention_prefers_composite(bool records, int64_t batch_heads, int64_t L, int64_t S,
                                           DType dtype) const {
    (void)records, (void)batch_heads, (void)L, (void)S, (void)dtype;
    return false;
  }

  // ---- loss kernels --------------------------------------------------------------------------
  /// Cross entropy of contiguous logits [outer, C, inner] (classes along the middle dim) against contiguous int64
  /// target [outer, inner] whose values the frontend checked to be in [0, C) or ignore_index; weight [C] or null.
  /// Per row, with shift m = max_c x_c (0 when no entry is above −inf), ℓ = log Σ_c exp(x_c − m) (so that
  /// log p_c = (x_c − m) − ℓ as log_softmax forms it), ε = label_smoothing and w ≡ 1 without weight, for each
  /// target t ≠ ignore_index:
  ///   loss = (1 − ε)·w_t·(ℓ − (x_t − m)) + (ε/C)·Σ_c w_c·(ℓ − (x_c − m)),  target_weight = w_t;
  /// ignored targets get loss 0 and target_weight 0. An all −inf row (ℓ = −inf) has loss 0, as log_softmax's
  /// zeros give. loss, log_sum (ℓ) and target_weight are [outer, inner] in the logits' dtype. ℓ is kept rather
  /// than m + ℓ, which rounds to the logits' ulp: the backward finds m again from the row.
  virtual void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                             double label_smoothing, Tensor& loss, Tensor& log_sum, Tensor& target_weight) = 0;
  /// grad_logits [outer, C, inner] = grad_loss · ∂loss/∂logits with s = exp((x − m) − ℓ), W = Σ_c w_c:
  ///   (1 − ε)·w_t·(s − onehot_t) + (ε/C)·(W·s − w);  zero for ignored targets and all −inf rows.
  /// log_sum is the forward's ℓ; grad_loss is [outer, inner]; everything contiguous.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight,
                                      int64_t ignore_index, double label_smoothing, const Tensor& log_sum,
                                      const Tensor& grad_loss, Tensor& grad_logits) = 0;

  // ---- optimizer kernels ----------------------------------------------------------------------
  /// One Adam/AdamW step in place, elementwise in one pass: param, grad, exp_avg, exp_avg_sq and
  /// max_exp_avg_sq (null unless amsgrad) are contiguous, of one shape and one floating dtype.
  virtual void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                         Tensor* max_exp_avg_sq, const AdamParams& p) = 0;

  // ---- indexing (int64 indices, checked in range by the frontend) -------------------------------
  /// out = x.index_select(dim, index) for 1-D index; out contiguous.
  virtual void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) = 0;
  /// out.index_add_(dim, index, src): out (contiguous) accumulates src's slices at index along dim.
  virtual void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;
  /// out[..i..] = x[..index[..i..]..] along dim; index and out have the same shape.
  virtual void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) = 0;
  /// out (contiguous) [..index[..i..]..] += src[..i..] along dim; index and src have the same shape.
  virtual void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;
};

/// The backend that runs tensors on `device`; throws hg::Error when that backend is not built or has no device.
Backend& backend_for(Device device);
Backend& cpu_backend();
#ifdef HG_WITH_CUDA
Backend& cuda_backend();
#endif

}  // namespace hg
