// CUDA reductions: reduce (sum, mean, max, min, prod over any set of dims) and arg_reduce (max/min along one dim
// with the index of the first extremum). CPU reference: ops/cpu/reduce.cpp — same identities, NaN propagation
// through max/min, mean = sum · (1/count) with NaN for an empty set, max/min of an empty set an error.
//
// x is seen as [outputs, count]: the kept dims (in order, matching the contiguous output) and the reduced dims,
// each walked by an OffsetCalculator over x's own strides, so no copy is needed when
//   rows:    the reduced elements of one output are contiguous → one block per output (block reduction);
//   columns: neighbouring outputs are neighbours in memory (reducing leading dims: bias gradients, sum_to), or
//            count is tiny → one thread per output, a sequential loop, loads coalesced across the warp.
// Any other pattern is permuted to [kept..., reduced...], copied once, and reduced as rows. When there are too
// few outputs to fill the GPU, the reduced range is split across blocks and the partial results are reduced by
// a second launch (deterministic: no atomics).
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// ---- combine functors (identity, combine) --------------------------------------------------------------------

// A sum adds in A, which is double for float32 (AccOf): a thread's sequential loop over its share of the reduced
// range (a column's every row, when the outputs fill the GPU) would otherwise drift with its length, as the CPU's
// cascaded sums do not (ops/cpu/reduce.cpp, SumAcc).
template <typename T> struct SumOp {
  __device__ static T identity() { return T(0); }
  template <typename A> __device__ A operator()(A a, A b) const { return a + b; }
};
template <typename T> struct ProdOp {
  __device__ static T identity() { return T(1); }
  __device__ T operator()(T a, T b) const { return a * b; }
};
// max(a, b) with NaN sticking, as the CPU's take_max(acc, v) = (v > acc || v != v) ? v : acc.
template <typename T> struct MaxOp {
  __device__ static T identity() { return lowest_value<T>(); }
  __device__ T operator()(T a, T b) const { return (b > a || is_nan(b)) ? b : a; }
};
template <typename T> struct MinOp {
  __device__ static T identity() { return highest_value<T>(); }
  __device__ T operator()(T a, T b) const { return (b < a || is_nan(b)) ? b : a; }
};

// What a thread accumulates in: double for float32 sums and means, T otherwise.
template <typename T, typename Op> struct AccOf {
  using type = T;
};
template <> struct AccOf<float, SumOp<float>> {
  using type = double;
};
template <typename T, typename Op> using acc_t = typename AccOf<T, Op>::type;

// Elements per thread below which a split would not pay for its second launch.
constexpr int64_t kMinElementsPerThread = 16;
// Reductions this short run one thread per output whatever the layout.
constexpr int64_t kShortReduction = 16;
// Most threads of a block that reduces rows (also the kernels' launch bound).
constexpr int kMaxRowThreads = 512;

// ---- kernels ---------------------------------------------------------------------------------------------------

// Rows: task = (output o, split s) of outputs·splits tasks, one block each.
//   x:   element at byte offset outer(o) + r·sizeof(T), r ∈ [0, count)
//   out: [outputs, splits] partial results (splits = 1: the final [outputs]), times `scale` when apply_scale
template <typename T, typename Op>
__global__ void __launch_bounds__(kMaxRowThreads)
    reduce_rows_kernel(const char* x, OffsetCalculator<1> outer, int64_t outputs, int64_t count, int64_t splits,
                       int64_t chunk, Op op, T scale, bool apply_scale, T* out) {
  for (int64_t task = blockIdx.x; task < outputs * splits; task += gridDim.x) {
    int64_t o = task / splits, split = task % splits;
    int64_t base[1];
    outer.get(o, base);
    const T* row = reinterpret_cast<const T*>(x + base[0]);
    int64_t begin = split * chunk, end = min(count, begin + chunk);
    using Acc = acc_t<T, Op>;
    Acc thread_acc = Op::identity();
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) thread_acc = op(thread_acc, Acc(row[r]));
    T acc = block_allreduce(static_cast<T>(thread_acc), op, Op::identity());
    if (threadIdx.x == 0) out[task] = apply_scale ? acc * scale : acc;
  }
}

// Columns: one thread per output o, a sequential loop over its share of the reduced range (blockIdx.y = split).
//   x:   element at byte offset outer(o) + inner(r)
//   out: [splits, outputs] partial results (splits = gridDim.y = 1: the final [outputs])
// The loop loads kUnroll elements before adding them, in order: the same sum as one at a time, with kUnroll loads in
// flight per thread instead of one (a bias gradient, [33280, 576] summed over rows, ran at ~0.3 TB/s).
constexpr int kUnroll = 8;
template <typename T, typename Op>
__global__ void reduce_columns_kernel(const char* x, OffsetCalculator<1> outer, OffsetCalculator<1> inner,
                                      int64_t outputs, int64_t count, int64_t chunk, Op op, T scale, bool apply_scale,
                                      T* out) {
  int64_t begin = blockIdx.y * chunk, end = min(count, begin + chunk);
  T* dst = out + blockIdx.y * outputs;
  HG_GRID_STRIDE_LOOP(o, outputs) {
    int64_t base[1];
    outer.get(o, base);
    using Acc = acc_t<T, Op>;
    Acc sum = Op::identity();
    int64_t r = begin;
    for (; r + kUnroll <= end; r += kUnroll) {
      T v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        int64_t offset[1];
        inner.get(r + u, offset);
        v[u] = *reinterpret_cast<const T*>(x + base[0] + offset[0]);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) sum = op(sum, Acc(v[u]));
    }
    for (; r < end; ++r) {
      int64_t offset[1];
      inner.get(r, offset);
      sum = op(sum, Acc(*reinterpret_cast<const T*>(x + base[0] + offset[0])));
    }
    const T acc = static_cast<T>(sum);
    dst[o] = apply_scale ? acc * scale : acc;
  }
}

// ---- host side -------------------------------------------------------------------------------------------------

// The blocks that keep every SM busy.
int64_t target_blocks(int device) { return 4 * static_cast<int64_t>(sm_count(device)); }

OffsetCalculator<1> calculator(const Shape& sizes, const Shape& strides, int64_t element_size) {
  return OffsetCalculator<1>(sizes, std::array<Shape, 1>{strides}, std::array<int64_t, 1>{element_size});
}

// out[o] = op over r of x[outer(o) + r] (contiguous rows of `count`), split when the outputs are few.
template <typename T, typename Op>
void reduce_rows(const char* x, const OffsetCalculator<1>& outer, int64_t outputs, int64_t count, Op op, T scale,
                 bool apply_scale, T* out, Device device) {
  int threads = std::min(block_for_row(count), kMaxRowThreads);
  int64_t splits = 1;
  if (outputs < target_blocks(device.index))
    splits = std::clamp<int64_t>(count / (threads * kMinElementsPerThread), 1,
                                 (target_blocks(device.index) + outputs - 1) / outputs);
  int64_t chunk = (count + splits - 1) / splits;
  int64_t tasks = outputs * splits;
  unsigned blocks = static_cast<unsigned>(std::min<int64_t>(tasks, 1 << 30));
  if (splits == 1) {
    reduce_rows_kernel<T, Op><<<blocks, threads>>>(x, outer, outputs, count, 1, chunk, op, scale, apply_scale, out);
    HG_CUDA_CHECK_LAUNCH();
    return;
  }
  // Partials [outputs, splits], then a second pass over each output's `splits` partials.
  Tensor partial = empty({outputs, splits}, dtype_of_v<T>, device);
  reduce_rows_kernel<T, Op>
      <<<blocks, threads>>>(x, outer, outputs, count, splits, chunk, op, scale, false, partial.data_ptr<T>());
  HG_CUDA_CHECK_LAUNCH();
  OffsetCalculator<1> partial_rows = calculator(Shape{outputs}, Shape{splits}, sizeof(T));
  reduce_rows<T, Op>(static_cast<const char*>(partial.data_ptr()), partial_rows, outputs, splits, op, scale,
                     apply_scale, out, device);
}

// out[o] = op over r of x[outer(o) + inner(r)], one thread per output, split when the outputs are few.
template <typename T, typename Op>
void reduce_columns(const char* x, const OffsetCalculator<1>& outer, const OffsetCalculator<1>& inner, int64_t outputs,
                    int64_t count, Op op, T scale, bool apply_scale, T* out, Device device) {
  int64_t blocks_x = grid_for(outputs, device.index);
  int64_t splits = 1;
  if (blocks_x < target_blocks(device.index) && count > 2 * kMinElementsPerThread)
    splits = std::clamp<int64_t>(count / kMinElementsPerThread, 1,
                                 std::min<int64_t>((target_blocks(device.index) + blocks_x - 1) / blocks_x, 65535));
  int64_t chunk = (count + splits - 1) / splits;
  dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(splits));
  if (splits == 1) {
    reduce_columns_kernel<T, Op>
        <<<grid, kBlockSize>>>(x, outer, inner, outputs, count, chunk, op, scale, apply_scale, out);
    HG_CUDA_CHECK_LAUNCH();
    return;
  }
  // Partials [splits, outputs]: reduced again as columns (neighbouring outputs are neighbours).
  Tensor partial = empty({splits, outputs}, dtype_of_v<T>, device);
  reduce_columns_kernel<T, Op>
      <<<grid, kBlockSize>>>(x, outer, inner, outputs, count, chunk, op, scale, false, partial.data_ptr<T>());
  HG_CUDA_CHECK_LAUNCH();
  OffsetCalculator<1> partial_outer = calculator(Shape{outputs}, Shape{1}, sizeof(T));
  OffsetCalculator<1> partial_inner = calculator(Shape{splits}, Shape{outputs}, sizeof(T));
  dim3 grid2(static_cast<unsigned>(blocks_x), 1);
  reduce_columns_kernel<T, Op><<<grid2, kBlockSize>>>(static_cast<const char*>(partial.data_ptr()), partial_outer,
                                                      partial_inner, outputs, splits, splits, op, scale, apply_scale,
                                                      out);
  HG_CUDA_CHECK_LAUNCH();
}

// The kept / reduced split of x's dims (a dim is reduced when out has size 1 there and x does not).
struct ReduceLayout {
  Shape kept_sizes, kept_strides, reduced_sizes, reduced_strides;
  std::vector<int64_t> order;  // kept dims, then reduced dims
  int64_t outputs = 1, count = 1;
};

ReduceLayout reduce_layout(const Tensor& x, const Tensor& out) {
  ReduceLayout L;
  std::vector<int64_t> reduced;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool is_reduced = out.sizes()[d] == 1 && x.sizes()[d] != 1;
    HG_CHECK(is_reduced || out.sizes()[d] == x.sizes()[d],
             "reduce (cuda): output shape {} does not match input shape {} (dim {} must be kept or reduced to 1)",
             out.sizes(), x.sizes(), d);
    if (is_reduced) {
      reduced.push_back(d);
      L.reduced_sizes.push_back(x.sizes()[d]);
      L.reduced_strides.push_back(x.strides()[d]);
      L.count *= x.sizes()[d];
    } else {
      L.order.push_back(d);
      L.kept_sizes.push_back(x.sizes()[d]);
      L.kept_strides.push_back(x.strides()[d]);
      L.outputs *= x.sizes()[d];
    }
  }
  L.order.insert(L.order.end(), reduced.begin(), reduced.end());
  return L;
}

template <typename T, typename Op>
void reduce_with(const Tensor& x, const ReduceLayout& L, Op op, T scale, bool apply_scale, T* out) {
  const int64_t element = sizeof(T);
  OffsetCalculator<1> outer = calculator(L.kept_sizes, L.kept_strides, element);
  OffsetCalculator<1> inner = calculator(L.reduced_sizes, L.reduced_strides, element);
  const char* px = static_cast<const char*>(x.data_ptr());
  bool rows = inner.ndim == 1 && inner.strides[0][0] == element;
  bool columns_coalesced = outer.strides[0][0] == element;
  if (rows && L.count > kShortReduction)
    return reduce_rows<T, Op>(px, outer, L.outputs, L.count, op, scale, apply_scale, out, x.device());
  if (columns_coalesced || L.count <= kShortReduction)
    return reduce_columns<T, Op>(px, outer, inner, L.outputs, L.count, op, scale, apply_scale, out, x.device());
  // Neither: one copy into [kept..., reduced...] order makes every output's elements one contiguous row.
  Tensor permuted = permuted_view(x, L.order);
  Tensor rows_copy = empty(permuted.sizes(), x.dtype(), x.device());
  device_copy(permuted, rows_copy);
  OffsetCalculator<1> row_starts = calculator(Shape{L.outputs}, Shape{L.count}, element);
  reduce_rows<T, Op>(static_cast<const char*>(rows_copy.data_ptr()), row_starts, L.outputs, L.count, op, scale,
                     apply_scale, out, x.device());
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, Tensor& out) {
  check_on_device("reduce", out.device(), {&x, &out});
  HG_CHECK(out.dim() == x.dim(), "reduce (cuda): output rank {} differs from input rank {}", out.dim(), x.dim());
  HG_CHECK(out.dtype() == x.dtype(), "reduce (cuda): output dtype {} differs from input dtype {}", out.dtype(),
           x.dtype());
  ReduceLayout L = reduce_layout(x, out);
  if (L.count == 0) {
    HG_CHECK(op != ReduceOp::Max && op != ReduceOp::Min,
             "max/min: cannot reduce over an empty dimension (input shape {}); there is no identity", x.sizes());
  }
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_NUMERIC(x.dtype(), "reduce", [&] {
    using T = scalar_t;
    if (op == ReduceOp::Mean && !std::is_floating_point_v<T>)
      HG_FAIL("mean: integer input (dtype {}) is not supported; convert to float first", x.dtype());
    if (L.outputs == 0) return;
    if (L.count == 0) {  // the identity: 0 for sum, 1 for prod, NaN for mean
      double value = op == ReduceOp::Prod ? 1.0 : op == ReduceOp::Mean ? std::numeric_limits<double>::quiet_NaN() : 0.0;
      fill(out, value);
      return;
    }
    Tensor dst = out.is_contiguous() ? out : empty(out.sizes(), out.dtype(), out.device());
    T* po = dst.data_ptr<T>();
    // mean = sum · (1/count), the scale rounded to T first, as the CPU backend.
    T scale = T(1) / static_cast<T>(L.count);
    switch (op) {
      case ReduceOp::Sum: reduce_with<T>(x, L, SumOp<T>{}, T(1), false, po); break;
      case ReduceOp::Mean: reduce_with<T>(x, L, SumOp<T>{}, scale, true, po); break;
      case ReduceOp::Prod: reduce_with<T>(x, L, ProdOp<T>{}, T(1), false, po); break;
      case ReduceOp::Max: reduce_with<T>(x, L, MaxOp<T>{}, T(1), false, po); break;
      case ReduceOp::Min: reduce_with<T>(x, L, MinOp<T>{}, T(1), false, po); break;
    }
    if (!dst.is_same(out)) device_copy(dst, out);
  });
}

// ---- arg_reduce ------------------------------------------------------------------------------------------------

namespace {

// Does v (at a later index) replace the running extremum `best`? Strict comparison keeps the first of equal
// values; a NaN beats every number and the first NaN sticks (ops/cpu/reduce.cpp's `replaces`).
template <bool IsMax, typename T> __device__ __forceinline__ bool replaces(T v, T best) {
  if (is_nan(v)) return !is_nan(best);
  return IsMax ? v > best : v < best;
}

// The same order for candidates from anywhere in the row: (va, ia) beats (vb, ib).
template <bool IsMax, typename T> __device__ __forceinline__ bool beats(T va, int64_t ia, T vb, int64_t ib) {
  bool na = is_nan(va), nb = is_nan(vb);
  if (na || nb) return na && (!nb || ia < ib);
  if (va == vb) return ia < ib;
  return IsMax ? va > vb : va < vb;
}

// One block per output: each thread scans a strided share of the row, then the block keeps the best candidate.
//   x: row o starts at byte offset outer(o); element j at + j·sizeof(T) (contiguous rows of n)
template <bool IsMax, typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    arg_reduce_rows_kernel(const char* x, OffsetCalculator<1> outer, int64_t outputs, int64_t n, T* values,
                           int64_t* indices) {
  __shared__ T warp_values[32];
  __shared__ int64_t warp_indices[32];
  const T identity = IsMax ? lowest_value<T>() : highest_value<T>();
  const int64_t no_index = std::numeric_limits<int64_t>::max();
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    int64_t base[1];
    outer.get(o, base);
    const T* row = reinterpret_cast<const T*>(x + base[0]);
    T best = identity;
    int64_t at = no_index;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (at == no_index || replaces<IsMax>(row[j], best)) best = row[j], at = j;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      T v = __shfl_down_sync(0xffffffffu, best, offset);
      int64_t i = __shfl_down_sync(0xffffffffu, at, offset);
      if (i != no_index && (at == no_index || beats<IsMax>(v, i, best, at))) best = v, at = i;
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_values[warp] = best, warp_indices[warp] = at;
    __syncthreads();
    if (warp == 0) {
      bool has = lane < static_cast<int>(blockDim.x / 32);
      best = has ? warp_values[lane] : identity;
      at = has ? warp_indices[lane] : no_index;
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) {
        T v = __shfl_down_sync(0xffffffffu, best, offset);
        int64_t i = __shfl_down_sync(0xffffffffu, at, offset);
        if (i != no_index && (at == no_index || beats<IsMax>(v, i, best, at))) best = v, at = i;
      }
      if (lane == 0) values[o] = best, indices[o] = at;
    }
    __syncthreads();
  }
}

// One thread per output, a sequential scan exactly as the CPU loop.
//   x: output o's elements at byte offsets outer(o) + j·step_bytes, j ∈ [0, n)
template <bool IsMax, typename T>
__global__ void arg_reduce_columns_kernel(const char* x, OffsetCalculator<1> outer, int64_t outputs, int64_t n,
                                          int64_t step_bytes, T* values, int64_t* indices) {
  HG_GRID_STRIDE_LOOP(o, outputs) {
    int64_t base[1];
    outer.get(o, base);
    const char* p = x + base[0];
    T best = *reinterpret_cast<const T*>(p);
    int64_t at = 0;
    for (int64_t j = 1; j < n; ++j) {
      T v = *reinterpret_cast<const T*>(p + j * step_bytes);
      if (replaces<IsMax>(v, best)) best = v, at = j;
    }
    values[o] = best;
    indices[o] = at;
  }
}

template <bool IsMax, typename T> void arg_reduce_impl(const Tensor& x, int64_t dim, T* values, int64_t* indices) {
  const int64_t n = x.sizes()[dim], outputs = x.numel() / n, element = sizeof(T);
  Shape kept_sizes = x.sizes(), kept_strides = x.strides();
  kept_sizes.erase(static_cast<size_t>(dim));
  kept_strides.erase(static_cast<size_t>(dim));
  OffsetCalculator<1> outer = calculator(kept_sizes, kept_strides, element);
  const int device = x.device().index;
  bool rows = x.strides()[dim] == 1;
  bool columns_coalesced = outer.strides[0][0] == element;
  if (rows && n > kShortReduction) {
    unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outputs, 1 << 30));
    arg_reduce_rows_kernel<IsMax, T><<<blocks, std::min(block_for_row(n), kMaxRowThreads)>>>(
        static_cast<const char*>(x.data_ptr()), outer, outputs, n, values, indices);
    HG_CUDA_CHECK_LAUNCH();
    return;
  }
  // One thread per output needs enough outputs (or short enough scans) to be worth it.
  if (n <= kShortReduction || (columns_coalesced && outputs >= 16 * kBlockSize)) {
    arg_reduce_columns_kernel<IsMax, T><<<grid_for(outputs, device), kBlockSize>>>(
        static_cast<const char*>(x.data_ptr()), outer, outputs, n, x.strides()[dim] * element, values, indices);
    HG_CUDA_CHECK_LAUNCH();
    return;
  }
  // Otherwise move dim last (one copy) and reduce contiguous rows.
  std::vector<int64_t> order;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != dim) order.push_back(d);
  order.push_back(dim);
  Tensor permuted = permuted_view(x, order);
  Tensor rows_copy = empty(permuted.sizes(), x.dtype(), x.device());
  device_copy(permuted, rows_copy);
  arg_reduce_impl<IsMax, T>(rows_copy, rows_copy.dim() - 1, values, indices);
}

}  // namespace

void CudaBackend::arg_reduce(bool is_max, const Tensor& x, int64_t dim, Tensor& values, Tensor& indices) {
  check_on_device("arg_reduce", x.device(), {&x, &values, &indices});
  HG_CHECK(dim >= 0 && dim < x.dim(), "arg_reduce (cuda): dimension {} out of range for input shape {}", dim,
           x.sizes());
  const int64_t n = x.sizes()[dim];
  HG_CHECK(n > 0, "max/min: cannot reduce over dimension {} of size 0 (input shape {}); there is no identity", dim,
           x.sizes());
  HG_CHECK(
      values.is_contiguous() && indices.is_contiguous() && indices.dtype() == kInt64 && values.dtype() == x.dtype() &&
          values.numel() * n == x.numel() && indices.numel() == values.numel(),
      "arg_reduce (cuda): expects contiguous outputs of dtype {} and int64 with one element per row, got {} and {}",
      x.dtype(), values.desc(), indices.desc());
  if (values.numel() == 0) return;
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_NUMERIC(x.dtype(), "arg_reduce", [&] {
    if (is_max)
      arg_reduce_impl<true, scalar_t>(x, dim, values.data_ptr<scalar_t>(), indices.data_ptr<int64_t>());
    else
      arg_reduce_impl<false, scalar_t>(x, dim, values.data_ptr<scalar_t>(), indices.data_ptr<int64_t>());
  });
}

}  // namespace hg::cuda
