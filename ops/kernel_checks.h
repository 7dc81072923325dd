#pragma once
// Argument contracts of backend kernels that more than one backend implements the same way (ops/backend.h states
// each contract). The frontends already give users errors in the op's terms; these checks guard the kernels
// themselves — a direct backend call, or a frontend bug — and name the kernel and, off the CPU, the backend
// ("attention kernel (cuda): …"). Internal to ops/; not part of the public API.
#include <initializer_list>

#include <hopgrad/core/tensor.h>

namespace hg::detail {

/// attention / attention_backward: q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev] and the `rows` (out, grad_out
/// and the gradients) 4-D views with unit stride along the last dim; mask null or a 4-D bool/q-dtype view;
/// lse contiguous.
void check_attention_kernel(const char* kernel, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor* mask, std::initializer_list<const Tensor*> rows, const Tensor& lse);

/// fill (full, fill_): as torch, an int64 tensor takes a fractional value truncated, but not NaN, ±inf or a
/// value beyond its range, which the conversion would turn into INT64_MIN.
void check_fill_value(const char* op, DType dtype, double value);

/// linear: x [M, K], weight [N, K], bias null or [N], a contiguous out [M, N], all of one dtype.
void check_linear_kernel(const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor& out);

/// layer_norm_backward: contiguous grad_out and x of one shape and dtype, [rows = mean.numel()] × N elements;
/// contiguous mean/rstd with `rows` elements, weight/grad_weight/grad_bias with N, grad_x like x; one dtype.
void check_layer_norm_backward_kernel(const Tensor& grad_out, const Tensor& x, const Tensor* weight,
                                      const Tensor& mean, const Tensor& rstd, int64_t N, const Tensor* grad_x,
                                      const Tensor* grad_weight, const Tensor* grad_bias);

/// An elementwise activation's fused backward (gelu_backward: saved "x", relu_backward: saved "y"): grad_out, the
/// saved tensor and grad_x of one shape and one floating dtype (any strides).
void check_activation_backward_kernel(const char* op, const char* saved, const Tensor& grad_out, const Tensor& x,
                                      const Tensor& grad_x);

}  // namespace hg::detail
