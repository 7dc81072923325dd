#pragma once
// Backward rules shared by the reductions that select elements of their input (ops/reduce.cpp: max, min, amax,
// amin, ±∞ norms; ops/sort.cpp: sort, topk, kthvalue, median). Internal to ops/; not part of the public API.
#include <vector>

#include <hopgrad/ops/ops.h>

namespace hg::detail {

/// Gradient of an op that picked x's elements at `indices` along `dim` (max/min(dim), sort, topk, kthvalue,
/// median(dim)): g lands on the picked positions, zeros elsewhere. g and indices have the same shape (x's
/// shape with some size along dim); x has `input_sizes`. Written with hg ops: runs on any backend and can be
/// differentiated again.
inline Tensor scatter_to_input(const Tensor& g, const Tensor& indices, int64_t dim, const Shape& input_sizes) {
  Tensor zero = zeros(input_sizes, TensorOptions(g.dtype()).device(g.device()));
  return scatter_add(zero, dim, indices, g);
}

/// Gradient of an extremum (or median) y over `dims` ({} = all) when several elements may attain it: each
/// output's gradient is split evenly among the elements equal to it (a NaN result among the NaNs), as torch's
/// max()/amax/median(). g and y have x's rank with size 1 along the reduced dims.
///   dx = g / count · [x attains y],   count = Σ_dims [x attains y]
/// One fused backend kernel when no graph is being recorded (two passes over x, no temporaries of its size);
/// under create_graph the same formula with hg ops, so that it can be differentiated again.
Tensor split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, const std::vector<int64_t>& dims);

}  // namespace hg::detail
