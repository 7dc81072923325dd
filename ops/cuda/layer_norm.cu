// CUDA layer norm over the trailing N elements of a contiguous tensor viewed as [rows, N], and its backward. CPU
// reference: ops/cpu/layer_norm.cpp.
//   forward:  mean = Σx / N;  var = Σ(x − mean)² / N (biased; two passes over the row, which stays in L1/L2);
//             rstd = 1 / √(var + eps);  y = (x − mean)·rstd·w + b.
//   backward: with x̂ = (x − mean)·rstd and ĝ = g ⊙ w,  grad_x = rstd·(ĝ − Σĝ/N − x̂·Σ(ĝ ⊙ x̂)/N),
//             grad_w = Σ_rows g ⊙ x̂,  grad_b = Σ_rows g.
// One block per row for the forward and grad_x; a column reduction (32 columns per block, the rows split over
// blocks) for grad_w and grad_b.
#include <hopgrad/ops/cuda/common.cuh>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cuda {

namespace {

//   x, y: [rows, N] contiguous;  weight, bias: [N] or null;  mean, rstd: [rows]
template <typename T>
__global__ void __launch_bounds__(1024) layer_norm_kernel(const T* x, const T* weight, const T* bias, int64_t rows,
                                                          int64_t N, T eps, T* y, T* mean, T* rstd) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * N;
    T* yr = y + r * N;
    T sum = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) sum += xr[i];
    const T mu = block_allreduce(sum, Plus<T>{}, T(0)) / static_cast<T>(N);
    T sq = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) sq += (xr[i] - mu) * (xr[i] - mu);
    const T rs = T(1) / math::sqrt(block_allreduce(sq, Plus<T>{}, T(0)) / static_cast<T>(N) + eps);
    if (threadIdx.x == 0) mean[r] = mu, rstd[r] = rs;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
      yr[i] = (xr[i] - mu) * rs * (weight ? weight[i] : T(1)) + (bias ? bias[i] : T(0));
  }
}

//   g, x, grad_x: [rows, N];  weight: [N] or null;  mean, rstd: [rows]
template <typename T>
__global__ void __launch_bounds__(1024) layer_norm_backward_input_kernel(const T* g, const T* x, const T* weight,
                                                                         const T* mean, const T* rstd, int64_t rows,
                                                                         int64_t N, T* grad_x) {
  const T inv_n = T(1) / static_cast<T>(N);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * N;
    const T* xr = x + r * N;
    T* dxr = grad_x + r * N;
    const T mu = mean[r], rs = rstd[r];
    T sum_g = 0, sum_gx = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      const T gh = weight ? gr[i] * weight[i] : gr[i];
      sum_g += gh;
      sum_gx += gh * ((xr[i] - mu) * rs);
    }
    const T mean_g = block_allreduce(sum_g, Plus<T>{}, T(0)) * inv_n;
    const T mean_gx = block_allreduce(sum_gx, Plus<T>{}, T(0)) * inv_n;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      const T gh = weight ? gr[i] * weight[i] : gr[i];
      dxr[i] = rs * (gh - mean_g - (xr[i] - mu) * rs * mean_gx);
    }
  }
}

// Column sums over the rows: block (kColumns, kRowLanes) owns kColumns adjacent columns (coalesced reads along a
// row) and one split of the rows (blockIdx.y; splits enough that the grid fills the device: 6 column blocks for
// N = 192 kept 6 SMs busy, 0.7 ms for 33 k rows); its kRowLanes lanes stride over that split, loading kUnroll rows
// before adding them, then add their partial sums in a fixed order. With several splits, a second kernel adds
// each column's split partials in order: deterministic either way.
constexpr int kColumns = 32, kRowLanes = 16, kUnroll = 4;

//   g, x: [rows, N];  mean, rstd: [rows];  partial_weight, partial_bias: [splits, N] (double) or, with one split,
//   grad_weight, grad_bias: [N] (T), either may be null
template <typename T>
__global__ void __launch_bounds__(kColumns * kRowLanes) layer_norm_backward_params_kernel(
    const T* g, const T* x, const T* mean, const T* rstd, int64_t rows, int64_t N, int64_t chunk, T* grad_weight,
    T* grad_bias, double* partial_weight, double* partial_bias) {
  // Each lane adds chunk / kRowLanes terms in sequence: in double, as the CPU's column sums, or a float32 sum of
  // same-signed terms drifts by ~1e-3 relative.
  using Acc = double;
  __shared__ Acc lane_weight[kRowLanes][kColumns], lane_bias[kRowLanes][kColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk, end = min(rows, begin + chunk);
  Acc sum_w = 0, sum_b = 0;
  if (j < N) {
    int64_t r = begin + threadIdx.y;
    for (; r + (kUnroll - 1) * kRowLanes < end; r += kUnroll * kRowLanes) {
      T gv[kUnroll], xv[kUnroll], mv[kUnroll], sv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t row = r + u * kRowLanes;
        gv[u] = g[row * N + j], xv[u] = x[row * N + j], mv[u] = mean[row], sv[u] = rstd[row];
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        sum_w += static_cast<Acc>(gv[u]) * static_cast<Acc>((xv[u] - mv[u]) * sv[u]);
        sum_b += static_cast<Acc>(gv[u]);
      }
    }
    for (; r < end; r += kRowLanes) {
      const Acc gv = g[r * N + j];
      sum_w += gv * static_cast<Acc>((x[r * N + j] - mean[r]) * rstd[r]);
      sum_b += gv;
    }
  }
  lane_weight[threadIdx.y][threadIdx.x] = sum_w;
  lane_bias[threadIdx.y][threadIdx.x] = sum_b;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      sum_w += lane_weight[lane][threadIdx.x];
      sum_b += lane_bias[lane][threadIdx.x];
    }
    if (partial_weight) {
      partial_weight[blockIdx.y * N + j] = sum_w;
      partial_bias[blockIdx.y * N + j] = sum_b;
    } else {
      if (grad_weight) grad_weight[j] = static_cast<T>(sum_w);
      if (grad_bias) grad_bias[j] = static_cast<T>(sum_b);
    }
  }
}

// grad_weight[j], grad_bias[j] = the sums of column j's `splits` partials, in split order.
template <typename T>
__global__ void layer_norm_params_partials_kernel(const double* partial_weight, const double* partial_bias,
                                                  int64_t splits, int64_t N, T* grad_weight, T* grad_bias) {
  HG_GRID_STRIDE_LOOP(j, N) {
    double sum_w = 0, sum_b = 0;
    int64_t s = 0;
    for (; s + kUnroll <= splits; s += kUnroll) {  // kUnroll loads of each in flight, added in order
      double w[kUnroll], b[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) w[u] = partial_weight[(s + u) * N + j], b[u] = partial_bias[(s + u) * N + j];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) sum_w += w[u], sum_b += b[u];
    }
    for (; s < splits; ++s) sum_w += partial_weight[s * N + j], sum_b += partial_bias[s * N + j];
    if (grad_weight) grad_weight[j] = static_cast<T>(sum_w);
    if (grad_bias) grad_bias[j] = static_cast<T>(sum_b);
  }
}

}  // namespace

void CudaBackend::layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t normalized_numel,
                             double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  check_on_device("layer_norm", x.device(), {&x, weight, bias, &out, &mean, &rstd});
  HG_CHECK(x.is_contiguous() && out.is_contiguous() && x.sizes() == out.sizes() && x.dtype() == out.dtype(),
           "layer_norm kernel (cuda): expects contiguous input and output of one shape and dtype, got {} and {}",
           x.desc(), out.desc());
  for (const Tensor* p : {weight, bias}) {
    HG_CHECK(!p || (p->is_contiguous() && p->numel() == normalized_numel && p->dtype() == x.dtype()),
             "layer_norm kernel (cuda): weight/bias must be contiguous {} with {} elements, got {}", x.dtype(),
             normalized_numel, p->desc());
  }
  // rows comes from the statistics, not from x.numel() / N, which is undefined when N = 0.
  const int64_t N = normalized_numel, rows = mean.numel();
  HG_CHECK(rows * N == x.numel() && rstd.numel() == rows && mean.is_contiguous() && rstd.is_contiguous() &&
               mean.dtype() == x.dtype() && rstd.dtype() == x.dtype(),
           "layer_norm kernel (cuda): mean/rstd must be contiguous {} with one element per row of {} elements of {}, "
           "got {} and {}",
           x.dtype(), N, x.desc(), mean.desc(), rstd.desc());
  if (rows == 0) return;
  if (N == 0) {  // statistics of an empty set: NaN, as torch.mean
    fill(mean, std::numeric_limits<double>::quiet_NaN());
    fill(rstd, std::numeric_limits<double>::quiet_NaN());
    return;
  }
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_FLOATING(x.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 30));
    layer_norm_kernel<T><<<blocks, block_for_row(N)>>>(
        x.data_ptr<T>(), weight ? weight->data_ptr<T>() : nullptr, bias ? bias->data_ptr<T>() : nullptr, rows, N,
        static_cast<T>(eps), out.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor* weight,
                                      const Tensor& mean, const Tensor& rstd, int64_t normalized_numel,
                                      Tensor* grad_x, Tensor* grad_weight, Tensor* grad_bias) {
  check_on_device("layer_norm_backward", x.device(), {&grad_out, &x, weight, &mean, &rstd, grad_x, grad_weight,
                                                      grad_bias});
  const int64_t N = normalized_numel, rows = mean.numel();
  hg::detail::check_layer_norm_backward_kernel(grad_out, x, weight, mean, rstd, N, grad_x, grad_weight, grad_bias);
  if (N == 0) return;  // every output is empty
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_FLOATING(x.dtype(), "layer_norm_backward", [&] {
    using T = scalar_t;
    if (grad_x && rows > 0) {
      unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 30));
      layer_norm_backward_input_kernel<T><<<blocks, block_for_row(N)>>>(
          grad_out.data_ptr<T>(), x.data_ptr<T>(), weight ? weight->data_ptr<T>() : nullptr, mean.data_ptr<T>(),
          rstd.data_ptr<T>(), rows, N, grad_x->data_ptr<T>());
      HG_CUDA_CHECK_LAUNCH();
    }
    if (grad_weight || grad_bias) {  // rows = 0 writes zeros, the sum of nothing
      const int64_t column_blocks = (N + kColumns - 1) / kColumns;
      // Row splits: enough blocks for 4 per SM, each lane keeping at least 32 rows (and at most 65535 splits).
      const int64_t wanted = (4 * static_cast<int64_t>(sm_count(x.device().index)) + column_blocks - 1) / column_blocks;
      const int64_t splits =
          std::clamp<int64_t>(std::min<int64_t>(wanted, rows / (32 * kRowLanes)), 1, 65535);
      const int64_t chunk = splits == 1 ? rows : (rows + splits - 1) / splits;
      T* gw = grad_weight ? grad_weight->data_ptr<T>() : nullptr;
      T* gb = grad_bias ? grad_bias->data_ptr<T>() : nullptr;
      Tensor partials = splits > 1 ? empty({2, splits, N}, kFloat64, x.device()) : Tensor();
      double* pw = splits > 1 ? partials.data_ptr<double>() : nullptr;
      double* pb = splits > 1 ? pw + splits * N : nullptr;
      dim3 grid(static_cast<unsigned>(column_blocks), static_cast<unsigned>(splits));
      layer_norm_backward_params_kernel<T><<<grid, dim3(kColumns, kRowLanes)>>>(
          grad_out.data_ptr<T>(), x.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, N, chunk, gw, gb,
          pw, pb);
      HG_CUDA_CHECK_LAUNCH();
      if (splits > 1) {
        layer_norm_params_partials_kernel<T><<<grid_for(N, x.device().index), kBlockSize>>>(pw, pb, splits, N, gw, gb);
        HG_CUDA_CHECK_LAUNCH();
      }
    }
  });
}

}  // namespace hg::cuda
