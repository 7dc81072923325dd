// CUDA layer norm over the trailing N elements of a contiguous tensor viewed as [rows, N], and its backward. CPU
// reference: ops/cpu/layer_norm.cpp.
//   forward:  mean = Σx / N;  var = Σ(x − mean)² / N (biased; two passes over the row, which stays in L1/L2);
//             rstd = 1 / √(var + eps);  y = (x − mean)·rstd·w + b.
//   backward: with x̂ = (x − mean)·rstd and ĝ = g ⊙ w,  grad_x = rstd·(ĝ − Σĝ/N − x̂·Σ(ĝ ⊙ x̂)/N),
//             grad_w = Σ_rows g ⊙ x̂,  grad_b = Σ_rows g.
// One block per row for the forward and grad_x; a column reduction (32 columns per block) for grad_w and grad_b.
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
// row); its kRowLanes lanes stride over the rows, then add their partial sums in a fixed order (deterministic).
constexpr int kColumns = 32, kRowLanes = 16;

//   g, x: [rows, N];  mean, rstd: [rows];  grad_weight, grad_bias: [N] or null
template <typename T>
__global__ void __launch_bounds__(kColumns * kRowLanes) layer_norm_backward_params_kernel(
    const T* g, const T* x, const T* mean, const T* rstd, int64_t rows, int64_t N, T* grad_weight, T* grad_bias) {
  // Each lane adds rows / kRowLanes terms in sequence (65 k for a million tokens): in double, as the CPU's column
  // sums, or a float32 sum of same-signed terms drifts by ~1e-3 relative.
  using Acc = double;
  __shared__ Acc partial_weight[kRowLanes][kColumns], partial_bias[kRowLanes][kColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  Acc sum_w = 0, sum_b = 0;
  if (j < N) {
    for (int64_t r = threadIdx.y; r < rows; r += kRowLanes) {
      const Acc gv = g[r * N + j];
      sum_w += gv * static_cast<Acc>((x[r * N + j] - mean[r]) * rstd[r]);
      sum_b += gv;
    }
  }
  partial_weight[threadIdx.y][threadIdx.x] = sum_w;
  partial_bias[threadIdx.y][threadIdx.x] = sum_b;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      sum_w += partial_weight[lane][threadIdx.x];
      sum_b += partial_bias[lane][threadIdx.x];
    }
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
      unsigned blocks = static_cast<unsigned>((N + kColumns - 1) / kColumns);
      layer_norm_backward_params_kernel<T><<<blocks, dim3(kColumns, kRowLanes)>>>(
          grad_out.data_ptr<T>(), x.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, N,
          grad_weight ? grad_weight->data_ptr<T>() : nullptr, grad_bias ? grad_bias->data_ptr<T>() : nullptr);
      HG_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace hg::cuda
