// Whole-tensor comparisons for tests and user code: allclose and max_abs_diff. Built from ops, so they run
// on any backend; only the final one-element answer is copied to the host.
#include <cmath>
#include <limits>

#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// a and b as float64 (exact for float32, int64 up to 2⁵³ and bool), detached, after checking they can be
// compared. Comparing in float64 keeps |a − b| exact to within one rounding for float32 inputs.
std::pair<Tensor, Tensor> comparable(const Tensor& a, const Tensor& b, const char* op) {
  HG_CHECK(a.defined() && b.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(a.device() == b.device(), "{}: tensors are on different devices ({} and {}); move one with .to()", op,
           a.desc(), b.desc());
  broadcast_shapes(a.sizes(), b.sizes(), op);  // throws, naming op, when the shapes do not broadcast
  return {a.detach().to(kFloat64), b.detach().to(kFloat64)};
}

}  // namespace

// close = (a == b) ∨ (|a − b| finite ∧ |a − b| ≤ atol + rtol·|b|), everywhere; NaN is never close (as
// torch.allclose with equal_nan = false); equal infinities are.
bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  HG_CHECK(rtol >= 0 && atol >= 0, "allclose: rtol and atol must be non-negative, got rtol={} atol={}", rtol, atol);
  auto [x, y] = comparable(a, b, "allclose");
  Tensor error = abs(sub(x, y));
  Tensor allowed = add(mul(abs(y), rtol), atol);
  // The finiteness test keeps a finite a from being "close" to b = ±inf, whose allowance is infinite.
  Tensor close = logical_or(eq(x, y), logical_and(lt(error, std::numeric_limits<double>::infinity()),
                                                   le(error, allowed)));
  return sum(logical_not(close)).item<int64_t>() == 0;
}

// max |a − b| (NaN if any difference is NaN; 0 for empty tensors)
double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto [x, y] = comparable(a, b, "max_abs_diff");
  Tensor error = abs(sub(x, y));
  if (error.numel() == 0) return 0.0;
  // The backend's Max reduction (NaN-propagating) over the flattened differences: a comparison needs no graph.
  Tensor flat = error.contiguous().view({error.numel()});
  Tensor out = empty({1}, kFloat64, flat.device());
  backend_for(flat.device()).reduce(ReduceOp::Max, flat, out);
  return out.item<double>();
}

}  // namespace hg
