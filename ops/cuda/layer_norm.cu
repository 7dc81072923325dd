// CUDA layer norm over the trailing N elements of a contiguous tensor viewed as [rows, N]. CPU reference:
// ops/cpu/layer_norm.cpp (its float64 loop):
//   mean = Σx / N;  var = Σ(x − mean)² / N (biased; two passes over the row, which stays in L1/L2);
//   rstd = 1 / √(var + eps);  y = (x − mean)·rstd·w + b.
// One block per row; mean and rstd (x's dtype, [rows]) are kept for the backward formula.
#include <hopgrad/ops/cuda/common.cuh>

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

}  // namespace hg::cuda
