// In-place arithmetic. Each bumps the storage's version counter; under grad mode the tensor's history is
// rebased onto a new node, and a view's write is recorded on its base too (InplaceWrite,
// autograd/view_history.h; leaves that require grad are refused).
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {
// An in-place op writes its result in self's dtype: refused where the out-of-place op's result would not cast
// back (as PyTorch: an int64 tensor's mul_(0.5) or add_(float tensor) truncated, or did nothing, silently).
void check_result_dtype(const Tensor& self, DType result, const char* op) {
  HG_CHECK(can_cast(result, self.dtype()),
           "{}: the result has dtype {}, which cannot be written into {} in place; use the out-of-place op", op,
           result, self.desc());
}

// other converted to self's dtype/device and broadcast to self's shape.
Tensor operand_for(const Tensor& self, const Tensor& other, const char* op) {
  HG_CHECK(self.defined() && other.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(self.device() == other.device(), "{}: tensors are on different devices ({} and {})", op, self.desc(),
           other.desc());
  Shape shape = broadcast_shapes(self.sizes(), other.sizes(), op);
  HG_CHECK(shape == self.sizes(), "{}: the operand of shape {} does not broadcast to the destination's shape {}", op,
           other.sizes(), self.sizes());
  Tensor o = other.detach().to(self.dtype());
  if (partially_overlaps(o, self)) o = o.clone();  // read through a copy (ops/ops.h)
  return o.sizes() == self.sizes() ? o : o.expand(self.sizes());
}
}  // namespace

// self ← self + alpha·other
const Tensor& add_(const Tensor& self, const Tensor& other, double alpha) {
  HG_CHECK(self.defined() && other.defined(), "add_: got an undefined tensor");
  const DType result = result_type(self, other);
  check_result_dtype(self, alpha == 1.0 ? result : promote_types(result, result_type(self, alpha)), "add_");
  InplaceWrite write(self, "add_", {&other});
  Tensor o = operand_for(self, other, "add_");
  Backend& be = backend_for(self.device());
  if (alpha != 1.0) {
    Tensor scaled = empty(self.sizes(), self.dtype(), self.device());
    be.binary_scalar(BinaryOp::Mul, o, alpha, false, scaled);
    o = scaled;
  }
  Tensor dst = self;
  be.binary(BinaryOp::Add, self, o, dst);
  if (write.tracked())
    record_op("add_", {self, other}, self, [alpha](const Tensors& g, const BackwardContext&) {
      return Tensors{g[0], alpha == 1.0 ? g[0] : mul(g[0], alpha)};
    });
  write.commit();
  return self;
}

const Tensor& add_(const Tensor& self, double value) {
  HG_CHECK(self.defined(), "add_: got an undefined tensor");
  check_result_dtype(self, result_type(self, value), "add_");
  InplaceWrite write(self, "add_");
  Tensor dst = self;
  backend_for(self.device()).binary_scalar(BinaryOp::Add, self, value, false, dst);
  if (write.tracked())
    record_op("add_", {self}, self, [](const Tensors& g, const BackwardContext&) { return Tensors{g[0]}; });
  write.commit();
  return self;
}

// self ← self·other ;  ∂/∂self_old = other, ∂/∂other = self_old
const Tensor& mul_(const Tensor& self, const Tensor& other) {
  HG_CHECK(self.defined() && other.defined(), "mul_: got an undefined tensor");
  check_result_dtype(self, result_type(self, other), "mul_");
  InplaceWrite write(self, "mul_", {&other});
  const bool track = write.tracked();
  // ∂/∂other needs self's value before the write: a clone that keeps self's history, so that a create_graph
  // backward differentiates through it too (a detached copy dropped self's part of the second derivative).
  Tensor old_self = track && any_requires_grad(other) ? self.clone() : Tensor();
  Tensor o = operand_for(self, other, "mul_");
  Tensor dst = self;
  backend_for(self.device()).binary(BinaryOp::Mul, self, o, dst);
  // Saved before commit() bumps the version: an `other` that shares self's memory (x.mul_(x)) was overwritten,
  // and its backward refuses to read it. When `other` is self itself, this node becomes its history: it is kept
  // as an output is (without that history), or tensor and node would own each other.
  const bool other_is_self = other.unsafe_impl() == self.unsafe_impl();
  if (track)
    record_op("mul_", {self, other}, self,
              [so = SavedTensor(other, /*is_output=*/other_is_self), old = SavedTensor(old_self)](
                  const Tensors& g, const BackwardContext& c) {
                Tensors r(2);
                if (c.needs_input_grad(0)) r[0] = mul(g[0], so.unpack(c));
                if (c.needs_input_grad(1)) r[1] = mul(g[0], old.unpack(c));
                return r;
              });
  write.commit();
  return self;
}

const Tensor& mul_(const Tensor& self, double value) {
  HG_CHECK(self.defined(), "mul_: got an undefined tensor");
  check_result_dtype(self, result_type(self, value), "mul_");
  InplaceWrite write(self, "mul_");
  Tensor dst = self;
  backend_for(self.device()).binary_scalar(BinaryOp::Mul, self, value, false, dst);
  if (write.tracked())
    record_op("mul_", {self}, self, [value](const Tensors& g, const BackwardContext&) {
      return Tensors{mul(g[0], value)};
    });
  write.commit();
  return self;
}

// self ← self / value: a division, not a product with 1/value, which rounds differently (x.div_(10) matches
// div(x, 10) bit for bit).
const Tensor& div_(const Tensor& self, double value) {
  HG_CHECK(self.defined(), "div_: got an undefined tensor");
  check_result_dtype(self, is_floating(self.dtype()) ? self.dtype() : kFloat32, "div_");
  InplaceWrite write(self, "div_");
  Tensor dst = self;
  backend_for(self.device()).binary_scalar(BinaryOp::Div, self, value, false, dst);
  if (write.tracked())
    record_op("div_", {self}, self, [value](const Tensors& g, const BackwardContext&) {
      return Tensors{div(g[0], value)};
    });
  write.commit();
  return self;
}

namespace {
// self ← self + alpha·(a op b), for optimizer updates; refuses to run where autograd would need to follow it.
const Tensor& add_product_(const Tensor& self, const Tensor& a, const Tensor& b, double alpha, BinaryOp op, const char* name) {
  HG_CHECK(!any_requires_grad({&self, &a, &b}),
           "{}: not differentiable; call it under hg::NoGradGuard (as optimizers do)", name);
  DType product = result_type(a, b);
  if (op == BinaryOp::Div && !is_floating(product)) product = kFloat32;  // true division
  check_result_dtype(self, promote_types(result_type(self, a), product), name);
  InplaceWrite write(self, name, {&a, &b});
  Tensor ao = operand_for(self, a, name), bo = operand_for(self, b, name);
  Backend& be = backend_for(self.device());
  Tensor t = empty(self.sizes(), self.dtype(), self.device());
  be.binary(op, ao, bo, t);
  if (alpha != 1.0) be.binary_scalar(BinaryOp::Mul, t, alpha, false, t);
  Tensor dst = self;
  be.binary(BinaryOp::Add, self, t, dst);
  write.commit();
  return self;
}
}  // namespace

const Tensor& addcmul_(const Tensor& self, const Tensor& a, const Tensor& b, double alpha) {
  return add_product_(self, a, b, alpha, BinaryOp::Mul, "addcmul_");
}
const Tensor& addcdiv_(const Tensor& self, const Tensor& a, const Tensor& b, double alpha) {
  return add_product_(self, a, b, alpha, BinaryOp::Div, "addcdiv_");
}

const Tensor& Tensor::add_(const Tensor& other, double alpha) const { return hg::add_(*this, other, alpha); }
const Tensor& Tensor::add_(double value) const { return hg::add_(*this, value); }
const Tensor& Tensor::mul_(const Tensor& other) const { return hg::mul_(*this, other); }
const Tensor& Tensor::mul_(double value) const { return hg::mul_(*this, value); }
const Tensor& Tensor::div_(double value) const { return hg::div_(*this, value); }

}  // namespace hg
