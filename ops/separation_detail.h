#pragma once
// Helpers shared by the separation-function ops (ops/nn_sparsemax.cpp, ops/nn_entmax.cpp, ops/nn_softmax1.cpp).
// Their forwards are compositions of hg ops (sort, cumsum, gather, elementwise) run under NoGradGuard, so they
// run unchanged on every backend; each op then records its own backward formula.
#include <limits>

#include <hopgrad/ops/ops.h>

namespace hg::detail {

inline constexpr double kSeparationInf = std::numeric_limits<double>::infinity();

/// Checks that x is a defined floating-point tensor and returns `dim` wrapped into [0, x.dim()).
inline int64_t separation_dim(const Tensor& x, int64_t dim, const char* op) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(is_floating(x.dtype()), "{}: expects a floating-point tensor, got {}; convert with .to(hg::kFloat32)", op,
           x.desc());
  return wrap_dim(dim, x.dim(), op);
}

/// max of x along dim (kept), or 0 for a row with no entry above −inf: subtracting it leaves −inf entries at −inf
/// and never forms −inf − (−inf).
inline Tensor row_shift(const Tensor& x, int64_t dim) {
  Tensor m = amax(x, {dim}, /*keepdim=*/true);
  return masked_fill(m, eq(m, -kSeparationInf), 0.0);
}

/// 1, 2, …, n laid along `dim` of a rank-`rank` tensor (size 1 elsewhere), in `like`'s dtype and device: the
/// prefix lengths k of the sort-based algorithms.
inline Tensor prefix_lengths(int64_t n, int64_t dim, int64_t rank, const Tensor& like) {
  Shape shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(dim)] = n;
  return arange(1.0, static_cast<double>(n) + 1.0, 1.0, TensorOptions(like.dtype()).device(like.device()))
      .reshape(shape);
}

/// Σ t along dim (kept), with 0 replaced by 1: the denominator of a mean over a support that may be empty (a
/// row that is entirely −inf, whose weights and gradients are then 0 instead of 0/0).
inline Tensor nonzero_sum(const Tensor& t, int64_t dim) {
  Tensor s = sum(t, {dim}, /*keepdim=*/true);
  return where(eq(s.detach(), 0.0), 1.0, s);
}

}  // namespace hg::detail
