// Losses as PyTorch defines them: nll_loss and cross_entropy (ignore_index, label smoothing, Mean over the
// non-ignored targets), binary_cross_entropy_with_logits (the stable formula, pos_weight), mse_loss, l1_loss.
// They are composed of ops, so gradients and second derivatives come from the ops' backward formulas; only
// binary_cross_entropy_with_logits records its own closed-form gradient (see there).
#include <hopgrad/autograd/function.h>
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

// Mean over the targets that count: Σ loss / (number of them); NaN when there are none, as PyTorch.
Tensor reduce_loss(const Tensor& loss, const Tensor& counted, Reduction reduction) {
  if (reduction != Reduction::Mean) return reduce_loss(loss, reduction);
  return div(sum(loss), sum(counted).to(loss.dtype()));
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

// ℓ_i = −input[i, t_i] (i = n, d...) for the counted targets, 0 for ignored ones. The gather reads class 0 for an
// ignored target (ignore_index may lie outside [0, C)); where() then drops that value and its gradient.
Tensor nll_elements(const Tensor& input, const Tensor& target, const Tensor& counted, int64_t class_dim) {
  // No classes: every target was checked to be ignored; the empty sum gives their zeros, still in the graph.
  if (input.size(class_dim) == 0) return sum(input, {class_dim});
  Tensor index = where(counted, target, 0.0).unsqueeze(class_dim);
  return where(counted, neg(gather(input, class_dim, index).squeeze(class_dim)), 0.0);
}

}  // namespace

// ℓ_i = −log_probs[i, t_i] for t_i ≠ ignore_index;  Mean = Σ ℓ_i / #{i : t_i ≠ ignore_index}
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction, int64_t ignore_index) {
  int64_t class_dim = check_class_targets("nll_loss", log_probs, target, ignore_index);
  Tensor counted = ne(target, static_cast<double>(ignore_index));
  return reduce_loss(nll_elements(log_probs, target, counted, class_dim), counted, reduction);
}

// With p = log_softmax(logits) over the C classes and smoothing ε:
// ℓ_i = (1 − ε)·(−p[i, t_i]) + (ε/C)·(−Σ_c p[i, c]) for t_i ≠ ignore_index (0 otherwise); Mean divides both
// terms by the number of non-ignored targets (as PyTorch).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction, int64_t ignore_index,
                     double label_smoothing) {
  int64_t class_dim = check_class_targets("cross_entropy", logits, target, ignore_index);
  HG_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
           "cross_entropy: label_smoothing must be in [0, 1], got {}", label_smoothing);
  Tensor log_probs = log_softmax(logits, class_dim);
  Tensor counted = ne(target, static_cast<double>(ignore_index));
  Tensor nll = reduce_loss(nll_elements(log_probs, target, counted, class_dim), counted, reduction);
  if (label_smoothing == 0.0) return nll;
  Tensor smooth = reduce_loss(where(counted, neg(sum(log_probs, {class_dim})), 0.0), counted, reduction);
  const double classes = static_cast<double>(logits.size(class_dim));
  return add(mul(nll, 1.0 - label_smoothing), mul(smooth, label_smoothing / classes));
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
    HG_CHECK(broadcast_shapes(pos_weight.sizes(), logits.sizes(), op) == logits.sizes(),
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
