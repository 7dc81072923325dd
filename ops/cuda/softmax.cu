// CUDA softmax / log_softmax along one dim of a contiguous tensor viewed as [outer, n, inner]. CPU reference:
// ops/cpu/softmax.cpp, the same formulas per row with max m:
//   softmax:      y = exp(x − m) / Σ exp(x − m)
//   log_softmax:  y = (x − m) − log Σ exp(x − m)
// A row with no finite max (all −inf) is shifted by 0 instead, so its exps are exp(−inf) = 0 and its sum is exactly
// 0, which marks it for zeros; a live row's sum is ≥ 1. NaN anywhere in a row makes the sum NaN and the whole row
// NaN, as in PyTorch; +inf gives exp(inf − inf) = NaN likewise.
// inner == 1: one block per row (block reductions for the max and the sum). inner > 1: one thread per column,
// neighbouring threads on neighbouring columns so every pass over the n rows is coalesced.
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// The CPU's running max `v > m ? v : m`: a NaN never becomes the max (it poisons the sum instead).
template <typename T> struct Max {
  __device__ T operator()(T m, T v) const { return v > m ? v : m; }
};

//   x, y: [rows, n] contiguous; one block per row
template <typename T>
__global__ void __launch_bounds__(1024) softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    T m = neg_inf;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = Max<T>{}(m, xr[i]);
    m = block_allreduce(m, Max<T>{}, neg_inf);
    if (m == neg_inf) m = 0;
    T sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += math::exp(xr[i] - m);
    sum = block_allreduce(sum, Plus<T>{}, T(0));
    if (log) {
      const T log_sum = math::log(sum);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = sum == T(0) ? T(0) : (xr[i] - m) - log_sum;
    } else {
      const T inv = sum == T(0) ? T(0) : T(1) / sum;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = math::exp(xr[i] - m) * inv;
    }
  }
}

//   x, y: [outer, n, inner] contiguous; one thread per column (o, c), columns = outer·inner
template <typename T>
__global__ void softmax_columns_kernel(const T* x, T* y, int64_t columns, int64_t n, int64_t inner, bool log) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  HG_GRID_STRIDE_LOOP(column, columns) {
    int64_t o = column / inner, c = column - o * inner;
    const T* xs = x + o * n * inner + c;
    T* ys = y + o * n * inner + c;
    T m = neg_inf;
    for (int64_t i = 0; i < n; ++i) m = Max<T>{}(m, xs[i * inner]);
    if (m == neg_inf) m = 0;
    T sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += math::exp(xs[i * inner] - m);
    if (log) {
      const T log_sum = math::log(sum);
      for (int64_t i = 0; i < n; ++i) ys[i * inner] = sum == T(0) ? T(0) : (xs[i * inner] - m) - log_sum;
    } else {
      const T inv = sum == T(0) ? T(0) : T(1) / sum;
      for (int64_t i = 0; i < n; ++i) ys[i * inner] = math::exp(xs[i * inner] - m) * inv;
    }
  }
}

}  // namespace

void CudaBackend::softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) {
  check_on_device(log ? "log_softmax" : "softmax", x.device(), {&x, &out});
  HG_CHECK(x.is_contiguous() && out.is_contiguous() && x.sizes() == out.sizes() && x.dtype() == out.dtype(),
           "softmax kernel (cuda): expects contiguous input and output of one shape and dtype, got {} and {}", x.desc(),
           out.desc());
  if (x.numel() == 0) return;
  int64_t outer = 1, n = 1, inner = 1;  // a 0-dim tensor is one row of length 1
  if (x.dim() > 0) {
    HG_CHECK(dim >= 0 && dim < x.dim(), "softmax kernel (cuda): dim {} out of range for shape {}", dim, x.sizes());
    for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
    n = x.size(dim);
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  }
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_FLOATING(x.dtype(), log ? "log_softmax" : "softmax", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    scalar_t* py = out.data_ptr<scalar_t>();
    if (inner == 1) {
      unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outer, 1 << 30));
      softmax_rows_kernel<scalar_t><<<blocks, block_for_row(n)>>>(px, py, outer, n, log);
    } else {
      softmax_columns_kernel<scalar_t>
          <<<grid_for(outer * inner, x.device().index), kBlockSize>>>(px, py, outer * inner, n, inner, log);
    }
    HG_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace hg::cuda
