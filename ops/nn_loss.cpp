// Losses as PyTorch defines them: nll_loss and cross_entropy (class weights, ignore_index, label smoothing; Mean
// over the weights of the non-ignored targets), binary_cross_entropy_with_logits (the stable formula,
// pos_weight), mse_loss, l1_loss.
// Most are composed of ops, so gradients and second derivatives come from the ops' backward formulas;
// cross_entropy runs fused kernels (log-sum-exp and both loss terms in one pass; softmax − one-hot in one more)
// and binary_cross_entropy_with_logits records its own closed-form gradient (see there).
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

Tensor reduce_loss(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return loss;
    case Reduction::Mean: return mean(loss);
    case Reduction::Sum: return sum(loss);
  }
  HG_FAIL("loss: unknown reduction {}", static_cast<int>(reduction));
}

// Mean over the targets that count: Σ loss / Σ weight of them (their number without class weights); NaN when
// that is zero (no counted targets, or all their weights zero), as PyTorch.
Tensor reduce_loss(const Tensor& loss, const Tensor& counted_weight, Reduction reduction) {
  if (reduction != Reduction::Mean) return reduce_loss(loss, reduction);
  return div(sum(loss), sum(counted_weight).to(loss.dtype()));
}

// input and target: both defined floating-point tensors of one shape, dtype and device.
void check_pointwise_loss(const char* op, const Tensor& input, const Tensor& target) {
  HG_CHECK(input.defined() && target.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(is_floating(input.dtype()) && input.dtype() == target.dtype(),
           "{}: input and target must be floating-point tensors of one dtype, got input {} and target {}", op,
           input.desc(), target.desc());
  HG_CHECK(input.device() == target.device(), "{}: input {} and target {} are on different devices", op,
           input.desc(), target.desc());
  HG_CHECK(input.sizes() == target.sizes(),
           "{}: target shape {} must equal input shape {} (no broadcasting: a mismatch such as [N, 1] vs [N] is "
           "almost always a bug)",
           op, target.sizes(), input.sizes());
}

// Checks input [N, C, d...] (or [C]) against int64 class targets [N, d...] (or []) whose values are class
// indices in [0, C) or ignore_index. Returns the class dim.
int64_t check_class_targets(const char* op, const Tensor& input, const Tensor& target, int64_t ignore_index) {
  HG_CHECK(input.defined() && target.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(is_floating(input.dtype()) && input.dim() >= 1,
           "{}: input must be a floating-point tensor [N, C, d...] or [C], got {}", op, input.desc());
  HG_CHECK(target.dtype() == kInt64, "{}: target must hold int64 class indices, got {}", op, target.desc());
  HG_CHECK(input.device() == target.device(), "{}: input {} and target {} are on different devices", op,
           input.desc(), target.desc());
  const int64_t class_dim = input.dim() == 1 ? 0 : 1;
  Shape expected = input.sizes();
  expected.erase(static_cast<size_t>(class_dim));
  HG_CHECK(target.sizes() == expected,
           "{}: input of shape {} (class dim {} of size {}) needs a target of shape {}, got {}", op, input.sizes(),
           class_dim, input.size(class_dim), expected, target.sizes());
  // On the host: an out-of-range index must be an error naming it, never a silent wrong loss.
  const int64_t classes = input.size(class_dim);
  const std::vector<int64_t> values = target.to_vector<int64_t>();
  for (size_t i = 0; i < values.size(); ++i) {
    int64_t v = values[i];
    HG_CHECK(v == ignore_index || (v >= 0 && v < classes),
             "{}: target value {} (at flat index {}) is out of range for {} classes; expected 0 <= target < {} or "
             "ignore_index ({})",
             op, v, i, classes, classes, ignore_index);
  }
  return class_dim;
}

// weight: undefined, or [C] of the input's dtype and device.
void check_class_weight(const char* op, const Tensor& input, const Tensor& weight, int64_t class_dim) {
  if (!weight.defined()) return;
  HG_CHECK(weight.dtype() == input.dtype() && weight.device() == input.device(),
           "{}: weight {} must have the input's dtype and device ({})", op, weight.desc(), input.desc());
  HG_CHECK(weight.dim() == 1 && weight.size(0) == input.size(class_dim),
           "{}: expected weight [{}] (one per class of input {}), got {}", op, input.size(class_dim), input.sizes(),
           weight.sizes());
}

// The targets that count (t_i ≠ ignore_index), and each target's term of the Mean's denominator.
struct CountedTargets {
  Tensor counted;  ///< bool, target's shape
  Tensor index;    ///< target with ignored entries replaced by class 0 (ignore_index may lie outside [0, C))
  Tensor weight;   ///< weight[t_i] where counted, 0 elsewhere; without class weights `counted` itself (1 or 0)
};

CountedTargets counted_targets(const Tensor& target, const Tensor& weight, int64_t classes, int64_t ignore_index) {
  CountedTargets c;
  c.counted = ne(target, static_cast<double>(ignore_index));
  c.index = where(c.counted, target, 0.0);
  if (!weight.defined()) {
    c.weight = c.counted;
  } else if (classes == 0) {  // every target was checked to be ignored; index_select would read class 0
    c.weight = zeros(target.sizes(), TensorOptions(weight.dtype()).device(weight.device()));
  } else {
    c.weight = where(c.counted, index_select(weight, 0, c.index.flatten()).reshape(target.sizes()), 0.0);
  }
  return c;
}

// ℓ_i = −w_{t_i}·input[i, t_i] (i = n, d...) for the counted targets, 0 for ignored ones. The gather reads class
// 0 for an ignored target; where() then drops that value and its gradient.
Tensor nll_elements(const Tensor& input, const CountedTargets& t, const Tensor& weight, int64_t class_dim) {
  // No classes: every target was checked to be ignored; the empty sum gives their zeros, still in the graph.
  if (input.size(class_dim) == 0) return sum(input, {class_dim});
  Tensor picked = neg(gather(input, class_dim, t.index.unsqueeze(class_dim)).squeeze(class_dim));
  return where(t.counted, weight.defined() ? mul(picked, t.weight) : picked, 0.0);
}

}  // namespace

// ℓ_i = −w_{t_i}·log_probs[i, t_i] for t_i ≠ ignore_index (w ≡ 1 without weight);
// Mean = Σ ℓ_i / Σ_{i : t_i ≠ ignore_index} w_{t_i}
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options) {
  int64_t class_dim = check_class_targets("nll_loss", log_probs, target, options.ignore_index_);
  check_class_weight("nll_loss", log_probs, options.weight_, class_dim);
  CountedTargets t = counted_targets(target, options.weight_, log_probs.size(class_dim), options.ignore_index_);
  return reduce_loss(nll_elements(log_probs, t, options.weight_, class_dim), t.weight, options.reduction_);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction, int64_t ignore_index) {
  return nll_loss(log_probs, target, NLLLossOptions().reduction(reduction).ignore_index(ignore_index));
}

namespace {

// cross_entropy composed of ops (log_softmax, gather, where, ...): the path for a class weight that itself
// requires grad, which the fused kernel does not differentiate. Formula as in cross_entropy below.
Tensor composite_cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options,
                               int64_t class_dim) {
  const Tensor& weight = options.weight_;
  const double epsilon = options.label_smoothing_;
  Tensor log_probs = log_softmax(logits, class_dim);
  CountedTargets t = counted_targets(target, weight, logits.size(class_dim), options.ignore_index_);
  Tensor nll = reduce_loss(nll_elements(log_probs, t, weight, class_dim), t.weight, options.reduction_);
  if (epsilon == 0.0) return nll;
  // w laid along the class dim: [C, 1, ..., 1] for [N, C, d...], [C] for unbatched [C].
  Shape weight_shape(static_cast<size_t>(logits.dim() - class_dim), 1);
  if (weight.defined()) weight_shape[0] = weight.size(0);
  Tensor weighted = weight.defined() ? mul(log_probs, weight.reshape(weight_shape)) : log_probs;
  Tensor smooth = reduce_loss(where(t.counted, neg(sum(weighted, {class_dim})), 0.0), t.weight, options.reduction_);
  const double classes = static_cast<double>(logits.size(class_dim));
  return add(mul(nll, 1.0 - epsilon), mul(smooth, epsilon / classes));
}

// What the fused kernels need to see logits [N, C, d...] (or [C]) as [outer, C, inner] and targets as [outer, inner].
struct ClassLayout {
  int64_t class_dim, outer, classes, inner;
  Tensor logits3(const Tensor& x) const { return x.contiguous().view({outer, classes, inner}); }
  Tensor per_target(const Tensor& t) const { return t.contiguous().view({outer, inner}); }
};

// ∂ℓ_i/∂x[i, :] = (1 − ε)·w_t·(softmax − onehot_t) + (ε/C)·(W·softmax − w), zero for ignored targets and all −inf
// rows: the kernel's gradient written with ops, for create_graph (so it can be differentiated again).
Tensor cross_entropy_gradient_ops(const Tensor& x, const Tensor& target, const Tensor& weight,
                                  const Tensor& target_weight, const Tensor& log_sum, const Tensor& grad_loss,
                                  const ClassLayout& L, int64_t ignore_index, double epsilon) {
  const int64_t d = L.class_dim;
  Shape along_classes(static_cast<size_t>(x.dim()), 1);
  along_classes[static_cast<size_t>(d)] = L.classes;
  Tensor probs = softmax(x, d);
  Tensor classes = arange(static_cast<double>(L.classes), TensorOptions(kInt64).device(x.device())).view(along_classes);
  Tensor one_hot = eq(classes, target.unsqueeze(d)).to(x.dtype());
  Tensor grad = mul(sub(probs, one_hot), mul(target_weight.unsqueeze(d), 1.0 - epsilon));
  if (epsilon != 0.0) {
    const double per_class = epsilon / static_cast<double>(L.classes);
    Tensor smooth = weight.defined() ? sub(mul(probs, sum(weight)), weight.view(along_classes))
                                     : sub(mul(probs, static_cast<double>(L.classes)), 1.0);
    grad = add(grad, mul(smooth, per_class));
  }
  Tensor live = logical_and(ne(target, static_cast<double>(ignore_index)),
                            ne(log_sum, -std::numeric_limits<double>::infinity()));
  return where(live.unsqueeze(d), mul(grad, grad_loss.unsqueeze(d)), 0.0);
}

}  // namespace

// With p = log_softmax(logits) over the C classes, smoothing ε and class weights w (≡ 1 when not given):
// ℓ_i = (1 − ε)·(−w_{t_i}·p[i, t_i]) + (ε/C)·(−Σ_c w_c·p[i, c]) for t_i ≠ ignore_index (0 otherwise);
// Mean divides both terms by Σ_{i : t_i ≠ ignore_index} w_{t_i} (as PyTorch: the smoothing term is normalised
// by the targets' weights, not by Σ_c w_c).
// ∂ℓ_i/∂x[i, c] = (1 − ε)·w_{t_i}·(softmax_c − [c = t_i]) + (ε/C)·(Σ_c' w_c'·softmax_c − w_c)
// One fused kernel gives every ℓ_i (and the shifted log-sum-exp, kept for backward); another gives the gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  const Tensor& weight = options.weight_;
  const double epsilon = options.label_smoothing_;
  const int64_t ignore_index = options.ignore_index_;
  int64_t class_dim = check_class_targets("cross_entropy", logits, target, ignore_index);
  check_class_weight("cross_entropy", logits, weight, class_dim);
  HG_CHECK(epsilon >= 0.0 && epsilon <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got {}", epsilon);
  if (any_requires_grad(weight)) return composite_cross_entropy(logits, target, options, class_dim);

  ClassLayout L{class_dim, class_dim == 0 ? 1 : logits.size(0), logits.size(class_dim), 1};
  for (int64_t d = class_dim + 1; d < logits.dim(); ++d) L.inner *= logits.size(d);
  const TensorOptions per_target_options = TensorOptions(logits.dtype()).device(logits.device());
  Tensor loss = empty(target.sizes(), per_target_options), log_sum = empty(target.sizes(), per_target_options);
  Tensor target_weight = empty(target.sizes(), per_target_options);
  Tensor weight_c = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor loss2 = L.per_target(loss), log_sum2 = L.per_target(log_sum), target_weight2 = L.per_target(target_weight);
  backend_for(logits.device())
      .cross_entropy(L.logits3(logits.detach()), L.per_target(target), weight_c.defined() ? &weight_c : nullptr,
                     ignore_index, epsilon, loss2, log_sum2, target_weight2);
  if (any_requires_grad(logits)) {
    record_op("cross_entropy", {logits}, loss,
              // The class weights are saved (versioned) like the inputs: weight_c aliases the caller's tensor, and
              // a write into it before backward would otherwise change the gradient silently.
              [sx = SavedTensor(logits), st = SavedTensor(target),
               sw = weight_c.defined() ? SavedTensor(weight_c) : SavedTensor(), target_weight, log_sum, L,
               ignore_index, epsilon](const Tensors& g, const BackwardContext& c) {
                Tensor x = sx.unpack(c), t = st.unpack(c), weight_c = sw.unpack(c);
                if (GradMode::is_enabled())  // create_graph: a gradient that can be differentiated again
                  return Tensors{cross_entropy_gradient_ops(x, t, weight_c, target_weight, log_sum, g[0], L,
                                                            ignore_index, epsilon)};
                Tensor grad = empty(x.sizes(), x.dtype(), x.device());
                Tensor grad3 = grad.view({L.outer, L.classes, L.inner});
                backend_for(x.device())
                    .cross_entropy_backward(L.logits3(x), L.per_target(t), weight_c.defined() ? &weight_c : nullptr,
                                            ignore_index, epsilon, L.per_target(log_sum),
                                            L.per_target(g[0]), grad3);
                return Tensors{grad};
              });
  }
  return reduce_loss(loss, target_weight, options.reduction_);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction, int64_t ignore_index,
                     double label_smoothing) {
  return cross_entropy(
      logits, target,
      CrossEntropyOptions().reduction(reduction).ignore_index(ignore_index).label_smoothing(label_smoothing));
}

// ℓ = (1 − y)·x + (1 + (pw − 1)·y)·sp,  sp = softplus(−x) = log1p(exp(−|x|)) + max(−x, 0)  (PyTorch's stable form)
// ∂ℓ/∂x = (1 + (pw − 1)·y)·σ(x) − pw·y;  ∂ℓ/∂y = (pw − 1)·sp − x;  ∂ℓ/∂pw = y·sp   (pw = 1 when not given)
// The x-gradient is the closed form rather than the derivative of the |x| and max above: those kinks at x = 0
// would give 1 − y instead of the true ½ − y at zero logits, a common starting point.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction,
                                        const Tensor& pos_weight) {
  const char* op = "binary_cross_entropy_with_logits";
  check_pointwise_loss(op, logits, target);
  if (pos_weight.defined()) {
    HG_CHECK(pos_weight.dtype() == logits.dtype() && pos_weight.device() == logits.device(),
             "{}: pos_weight {} must have the logits' dtype and device ({})", op, pos_weight.desc(), logits.desc());
    HG_CHECK(broadcasts_to(pos_weight.sizes(), logits.sizes()),
             "{}: pos_weight of shape {} must broadcast to the logits' shape {} (e.g. one weight per class, [C])", op,
             pos_weight.sizes(), logits.sizes());
  }
  Tensor x = logits.detach(), y = target.detach(), pw = pos_weight.defined() ? pos_weight.detach() : Tensor();
  Tensor sp = add(log1p(exp(neg(abs(x)))), clamp_min(neg(x), 0.0));
  Tensor positive_weight = pw.defined() ? add(mul(sub(pw, 1.0), y), 1.0) : Tensor();
  Tensor loss = add(mul(rsub(y, 1.0), x), pw.defined() ? mul(positive_weight, sp) : sp);
  if (any_requires_grad({&logits, &target, &pos_weight})) {
    record_op(op, {logits, target, pos_weight}, loss,
              [sx = SavedTensor(logits), sy = SavedTensor(target), spw = SavedTensor(pos_weight)](
                  const Tensors& g, const BackwardContext& c) {
                Tensor xs = sx.unpack(c), ys = sy.unpack(c), pws = spw.unpack(c);
                Tensors grads(3);
                if (c.needs_input_grad(0)) {
                  Tensor d = pws.defined() ? sub(mul(add(mul(sub(pws, 1.0), ys), 1.0), sigmoid(xs)), mul(pws, ys))
                                           : sub(sigmoid(xs), ys);
                  grads[0] = mul(g[0], d);
                }
                if (c.needs_input_grad(1) || c.needs_input_grad(2)) {
                  // softplus is smooth, so these gradients differentiate correctly at x = 0 as well.
                  Tensor soft = softplus(neg(xs));
                  if (c.needs_input_grad(1))
                    grads[1] = mul(g[0], pws.defined() ? sub(mul(sub(pws, 1.0), soft), xs) : neg(xs));
                  if (c.needs_input_grad(2)) grads[2] = mul(g[0], mul(ys, soft));  // summed to pw's shape
                }
                return grads;
              });
  }
  return reduce_loss(loss, reduction);
}

// ℓ = (x − y)²
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pointwise_loss("mse_loss", input, target);
  return reduce_loss(square(sub(input, target)), reduction);
}

// ℓ = |x − y|
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pointwise_loss("l1_loss", input, target);
  return reduce_loss(abs(sub(input, target)), reduction);
}

}  // namespace hg
