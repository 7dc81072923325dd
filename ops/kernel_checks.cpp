// Backend-kernel argument contracts shared by the CPU and CUDA backends (see ops/kernel_checks.h).
#include <cmath>
#include <limits>

#include <hopgrad/core/error.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::detail {

void check_fill_value(const char* op, DType dtype, double value) {
  HG_CHECK(dtype != kInt64 || (value >= -0x1p63 && value < 0x1p63),
           "{}: value {} cannot be converted to int64 without overflow", op, value);
  // As torch: a finite value beyond float32's range is an error, not inf (±inf and NaN are kept).
  HG_CHECK(dtype != kFloat32 || !std::isfinite(value) || std::abs(value) <= std::numeric_limits<float>::max(),
           "{}: value {} cannot be converted to float32 without overflow", op, value);
}

namespace {

// "attention kernel" on the CPU, "attention kernel (cuda)" elsewhere: the message says which backend refused.
std::string kernel_name(const char* kernel, const Tensor& t) {
  return t.device().is_cpu() ? fmt::format("{} kernel", kernel)
                                               : fmt::format("{} kernel ({})", kernel, t.device());
}

// An empty view has nothing to read, whatever its strides (sum's gradient of an empty output is expanded, stride 0).
bool rows_view(const Tensor& t) { return t.dim() == 4 && (t.numel() == 0 || t.size(3) <= 1 || t.stride(3) == 1); }

}  // namespace

void check_attention_kernel(const char* kernel, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor* mask, std::initializer_list<const Tensor*> rows, const Tensor& lse) {
  const std::string name = kernel_name(kernel, q);
  for (const Tensor* t : {&q, &k, &v})
    HG_CHECK(rows_view(*t), "{}: expects 4-D q, k, v with unit stride along the last dim, got {}", name, t->desc());
  for (const Tensor* t : rows)
    HG_CHECK(rows_view(*t),
             "{}: expects out, grad_out and the gradients as 4-D views with unit stride along the last dim, got {}",
             name, t->desc());
  HG_CHECK(!mask || mask->dim() == 4, "{}: expects a 4-D mask view, got {}", name, mask->desc());
  HG_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype() &&
               (!mask || mask->dtype() == kBool || mask->dtype() == q.dtype()),
           "{}: dtypes differ (q {}, k {}, v {}, mask {})", name, q.dtype(), k.dtype(), v.dtype(),
           mask ? fmt::format("{}", mask->dtype()) : "none");
  HG_CHECK(lse.is_contiguous(), "{}: lse must be contiguous, got {}", name, lse.desc());
}

void check_linear_kernel(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& out) {
  const std::string name = out.device().is_cpu() ? std::string("linear")
                                                                   : fmt::format("linear ({})", out.device());
  HG_CHECK(x.dtype() == weight.dtype() && x.dtype() == out.dtype() && (!bias || bias->dtype() == out.dtype()),
           "{}: dtypes differ (input {}, weight {}, bias {}, out {})", name, x.dtype(), weight.dtype(),
           bias ? bias->desc() : std::string("none"), out.dtype());
  HG_CHECK(x.dim() == 2 && weight.dim() == 2 && out.dim() == 2 && out.is_contiguous() &&
               x.size(1) == weight.size(1) && out.size(0) == x.size(0) && out.size(1) == weight.size(0) &&
               (!bias || (bias->dim() == 1 && bias->size(0) == out.size(1))),
           "{}: expects x [M, K], weight [N, K], bias [N] and a contiguous out [M, N], got {}, {}, {} and {}", name,
           x.desc(), weight.desc(), bias ? bias->desc() : std::string("no bias"), out.desc());
}

void check_layer_norm_backward_kernel(const Tensor& grad_out, const Tensor& x, const Tensor* weight,
                                      const Tensor& mean, const Tensor& rstd, int64_t N, const Tensor* grad_x,
                                      const Tensor* grad_weight, const Tensor* grad_bias) {
  const std::string name = kernel_name("layer_norm_backward", x);
  const int64_t rows = mean.numel();
  HG_CHECK(x.is_contiguous() && grad_out.is_contiguous() && x.sizes() == grad_out.sizes() &&
               x.dtype() == grad_out.dtype() && rows * N == x.numel(),
           "{}: expects contiguous grad_out and input of one shape and dtype, [rows = {}] × {} elements, got {} and "
           "{}",
           name, rows, N, grad_out.desc(), x.desc());
  HG_CHECK(mean.is_contiguous() && rstd.is_contiguous() && rstd.numel() == rows && mean.dtype() == x.dtype() &&
               rstd.dtype() == x.dtype(),
           "{}: mean/rstd must be contiguous {} with {} elements, got {} and {}", name, x.dtype(), rows, mean.desc(),
           rstd.desc());
  HG_CHECK(!weight || (weight->is_contiguous() && weight->numel() == N && weight->dtype() == x.dtype()),
           "{}: weight must be contiguous {} with {} elements, got {}", name, x.dtype(), N, weight->desc());
  HG_CHECK(!grad_x || (grad_x->is_contiguous() && grad_x->sizes() == x.sizes() && grad_x->dtype() == x.dtype()),
           "{}: grad_x must be contiguous like the input {}, got {}", name, x.desc(), grad_x->desc());
  for (const Tensor* p : {grad_weight, grad_bias})
    HG_CHECK(!p || (p->is_contiguous() && p->numel() == N && p->dtype() == x.dtype()),
             "{}: grad_weight/grad_bias must be contiguous {} with {} elements, got {}", name, x.dtype(), N,
             p->desc());
}

void check_activation_backward_kernel(const char* op, const char* saved, const Tensor& grad_out, const Tensor& x,
                                      const Tensor& grad_x) {
  const std::string name = kernel_name(op, x);
  HG_CHECK(grad_out.sizes() == grad_x.sizes() && x.sizes() == grad_x.sizes(),
           "{}: expects grad_out, {} and grad_x of one shape, got {}, {} and {}", name, saved, grad_out.sizes(),
           x.sizes(), grad_x.sizes());
  HG_CHECK(grad_out.dtype() == x.dtype() && grad_x.dtype() == x.dtype() && is_floating(x.dtype()),
           "{}: expects grad_out, {} and grad_x of one floating dtype, got {}, {} and {}", name, saved,
           grad_out.dtype(), x.dtype(), grad_x.dtype());
}

}  // namespace hg::detail
