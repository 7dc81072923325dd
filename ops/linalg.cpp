// Matrix products: bmm is the differentiable primitive; matmul and linear are built on it.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {
void check_matmul_inputs(const char* op, const Tensor& a, const Tensor& b) {
  HG_CHECK(a.defined() && b.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(a.device() == b.device(), "{}: tensors are on different devices ({} and {})", op, a.desc(), b.desc());
  HG_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ ({} and {}); convert one with .to()", op, a.desc(), b.desc());
  HG_CHECK(is_floating(a.dtype()), "{}: expects float32 or float64 tensors, got {}", op, a.desc());
}
}  // namespace

// C[b] = A[b] · B[b] ;  ∂L/∂A = G Bᵀ, ∂L/∂B = Aᵀ G   (batch stride 0 = broadcast)
Tensor bmm(const Tensor& a, const Tensor& b) {
  check_matmul_inputs("bmm", a, b);
  HG_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expects 3-D tensors [B, M, K] and [B, K, N], got {} and {}",
           a.sizes(), b.sizes());
  HG_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1),
           "bmm: shapes {} and {} do not chain (expected [B, M, K] and [B, K, N])", a.sizes(), b.sizes());
  Tensor out = empty({a.size(0), a.size(1), b.size(2)}, a.dtype(), a.device());
  backend_for(a.device()).matmul(a.detach(), b.detach(), out);
  if (any_requires_grad(a, b)) {
    record_op("bmm", {a, b}, out, [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensors& g, const BackwardContext& c) {
      Tensors r(2);
      if (c.needs_input_grad(0)) r[0] = bmm(g[0], sb.unpack(c).transpose(1, 2));
      if (c.needs_input_grad(1)) r[1] = bmm(sa.unpack(c).transpose(1, 2), g[0]);
      return r;
    });
  }
  return out;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_matmul_inputs("matmul", a, b);
  HG_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dimension, got {} and {}",
           a.sizes(), b.sizes());
  if (a.dim() == 1 && b.dim() == 1) {
    HG_CHECK(a.size(0) == b.size(0), "matmul: vectors of different lengths ({} and {})", a.size(0), b.size(0));
    return bmm(a.view({1, 1, -1}), b.view({1, -1, 1})).view({});
  }
  if (b.dim() == 1) {  // [..., M, K] · [K] → [..., M]
    HG_CHECK(a.size(-1) == b.size(0), "matmul: shapes {} and {} cannot be multiplied (a's last dim {} against the "
             "vector's length {})", a.sizes(), b.sizes(), a.size(-1), b.size(0));
    return matmul(a, b.unsqueeze(1)).squeeze(-1);
  }
  if (a.dim() == 1) {  // [K] · [..., K, N] → [..., N]
    HG_CHECK(a.size(0) == b.size(-2), "matmul: shapes {} and {} cannot be multiplied (the vector's length {} "
             "against b's second-to-last dim {})", a.sizes(), b.sizes(), a.size(0), b.size(-2));
    return matmul(a.unsqueeze(0), b).squeeze(-2);
  }
  int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  HG_CHECK(K == K2, "matmul: shapes {} and {} cannot be multiplied ({}x{} and {}x{})", a.sizes(), b.sizes(), M, K, K2,
           N);
  // Batch dims broadcast; each side is expanded (a view) and flattened to one batch dim.
  Shape batch_a(a.sizes()), batch_b(b.sizes());
  batch_a.resize(a.sizes().size() - 2);
  batch_b.resize(b.sizes().size() - 2);
  HG_CHECK(broadcastable(batch_a, batch_b),
           "matmul: the batch dims {} of a {} and {} of b {} do not broadcast (aligned from the right, sizes must "
           "match or one must be 1)",
           batch_a, a.sizes(), batch_b, b.sizes());
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  int64_t B = batch.numel();
  if (a.dim() == 2 && b.dim() == 2) return bmm(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0);
  // [..., M, K] · [K, N] with a contiguous-able a: fold the batch into M (one large GEMM instead of B small).
  if (b.dim() == 2 && batch_a == batch) {
    Tensor a2 = a.reshape({1, B * M, K});
    Shape out_shape = batch;
    out_shape.push_back(M);
    out_shape.push_back(N);
    return bmm(a2, b.unsqueeze(0)).view(out_shape);
  }
  Shape ea = batch, eb = batch;
  ea.push_back(M), ea.push_back(K);
  eb.push_back(K), eb.push_back(N);
  Tensor a3 = a.expand(ea).reshape({B, M, K});
  Tensor b3 = b.expand(eb).reshape({B, K, N});
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  return bmm(a3, b3).view(out_shape);
}

// y = x Wᵀ + b ;  ∂L/∂x = G W,  ∂L/∂W = Gᵀ x,  ∂L/∂b = Σ_rows G   (x viewed as [rows, in], G as [rows, out])
// One node instead of the views, bmm and broadcast add it would take as a composite: the backward gets the
// weight gradient as Gᵀ·x straight into W's [out, in] layout (the composite produced it transposed, and the
// gradient accumulator then had to copy it), and the backend adds the bias as it writes the product.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  HG_CHECK(x.defined() && weight.defined(), "linear: got an undefined input or weight");
  check_matmul_inputs("linear", x, weight);
  HG_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out_features, in_features], got {}", weight.sizes());
  HG_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
           "linear: input's last dimension must equal in_features {}; got input {} and weight {}", weight.size(1),
           x.sizes(), weight.sizes());
  const int64_t in = weight.size(1), out_features = weight.size(0);
  Tensor bias_row = bias;  // the bias as [out_features]
  if (bias.defined()) {
    check_matmul_inputs("linear", x, bias);
    // As PyTorch's addmm, a bias that broadcasts to one row is taken: a scalar, [1], [out] or [1, …, 1, out]; the
    // expand is part of the graph, so its gradient is summed back to the bias's own shape.
    bool one_row = bias.dim() == 0 || bias.size(-1) == 1 || bias.size(-1) == out_features;
    for (int64_t d = 0; d + 1 < bias.dim(); ++d) one_row = one_row && bias.size(d) == 1;
    HG_CHECK(one_row, "linear: bias must broadcast to [{}] (a scalar, [1], [{}] or [1, ..., 1, {}]), got {}",
             out_features, out_features, out_features, bias.sizes());
    if (bias.dim() != 1 || bias.size(0) != out_features) bias_row = bias.reshape({-1}).expand({out_features});
  }
  Shape out_shape = x.sizes();
  out_shape[out_shape.size() - 1] = out_features;
  int64_t rows = 1;  // the leading dims, flattened (explicit: a -1 in reshape is ambiguous when in = 0)
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  Tensor x2 = x.detach().reshape({rows, in});  // a view when x is contiguous
  Tensor out = empty({rows, out_features}, x.dtype(), x.device());
  Tensor b = bias.defined() ? bias_row.detach().contiguous() : Tensor();
  backend_for(x.device()).linear(x2, weight.detach(), bias.defined() ? &b : nullptr, out);
  out = out.view(out_shape);
  if (any_requires_grad(x, weight, bias_row)) {
    record_op("linear", {x, weight, bias_row}, out,
              [sx = SavedTensor(x), sw = SavedTensor(weight), rows, in](const Tensors& g, const BackwardContext& c) {
                Tensors r(3);
                Tensor g2 = g[0].reshape({rows, g[0].size(-1)});
                if (c.needs_input_grad(0)) r[0] = matmul(g[0], sw.unpack(c));
                if (c.needs_input_grad(1)) r[1] = matmul(g2.t(), sx.unpack(c).reshape({rows, in}));
                if (c.needs_input_grad(2)) r[2] = sum(g2, {0});
                return r;
              });
  }
  return out;
}

Tensor Tensor::matmul(const Tensor& other) const { return hg::matmul(*this, other); }

}  // namespace hg
