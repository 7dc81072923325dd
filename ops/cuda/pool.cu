// CUDA 2-D max-pooling: values with int64 argmax indices (flat h·W + w within each plane), and the backward
// scatter through them. CPU reference: ops/cpu/pool.cpp — the same window scan (rows, then columns), so the
// first maximum wins ties and a NaN wins over any number (the last NaN, as torch's `val > max || isnan(val)`).
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// planes = N·C input planes of H×W, pooled to OH×OW.
struct PoolGeometry {
  int64_t planes, H, W, OH, OW;
  PoolParams p;
};

// y[plane, oh, ow] = max of x[plane] over the window rows oh·sh − ph + kh·dh (kh < KH) inside [0, H), and likewise
// for columns; one thread per output.   x: [planes, H, W];  out, indices: [planes, OH, OW]
template <typename T> __global__ void max_pool_kernel(const T* x, PoolGeometry g, T* out, int64_t* indices) {
  const int64_t dh = g.p.dilation[0], dw = g.p.dilation[1];
  HG_GRID_STRIDE_LOOP(i, g.planes * g.OH * g.OW) {
    int64_t ow = i % g.OW, oh = (i / g.OW) % g.OH, plane = i / (g.OW * g.OH);
    const T* xp = x + plane * g.H * g.W;
    int64_t h0 = oh * g.p.stride[0] - g.p.padding[0], w0 = ow * g.p.stride[1] - g.p.padding[1];
    // the first tap inside the input along each dim (the frontend guarantees one), and one past the last
    int64_t h_begin = h0 < 0 ? h0 + (-h0 + dh - 1) / dh * dh : h0, h_end = min(h0 + (g.p.kernel[0] - 1) * dh + 1, g.H);
    int64_t w_begin = w0 < 0 ? w0 + (-w0 + dw - 1) / dw * dw : w0, w_end = min(w0 + (g.p.kernel[1] - 1) * dw + 1, g.W);
    T best = -std::numeric_limits<T>::infinity();
    int64_t best_index = h_begin * g.W + w_begin;
    for (int64_t h = h_begin; h < h_end; h += dh) {
      for (int64_t w = w_begin; w < w_end; w += dw) {
        T v = xp[h * g.W + w];
        if (v > best || isnan(v)) {
          best = v;
          best_index = h * g.W + w;
        }
      }
    }
    out[i] = best;
    indices[i] = best_index;
  }
}

// grad_x[plane, indices[plane, o]] += grad_out[plane, o]; windows overlap when stride < kernel, hence atomics.
//   grad_out, indices: [planes, OH·OW];  grad_x: [planes, H·W]
template <typename T>
__global__ void max_pool_backward_kernel(const T* grad_out, const int64_t* indices, PoolGeometry g, T* grad_x) {
  const int64_t outputs = g.OH * g.OW;
  HG_GRID_STRIDE_LOOP(i, g.planes * outputs) {
    int64_t plane = i / outputs;
    atomicAdd(grad_x + plane * g.H * g.W + indices[i], grad_out[i]);
  }
}

}  // namespace

void CudaBackend::max_pool2d(const Tensor& x_in, const PoolParams& p, Tensor& out, Tensor& indices) {
  check_on_device("max_pool2d", x_in.device(), {&x_in, &out, &indices});
  HG_CHECK(x_in.dtype() == out.dtype() && indices.dtype() == kInt64 && out.is_contiguous() && indices.is_contiguous(),
           "max_pool2d (cuda): expected contiguous out of the input's dtype {} and int64 indices, got {} and {}",
           x_in.dtype(), out.desc(), indices.desc());
  if (out.numel() == 0) return;
  DeviceGuard guard(x_in.device());
  Tensor x = as_contiguous(x_in);
  PoolGeometry g{x.size(0) * x.size(1), x.size(2), x.size(3), out.size(2), out.size(3), p};
  HG_CUDA_DISPATCH_FLOATING(x.dtype(), "max_pool2d", [&] {
    max_pool_kernel<scalar_t><<<grid_for(out.numel(), x.device().index), kBlockSize>>>(
        x.data_ptr<scalar_t>(), g, out.data_ptr<scalar_t>(), indices.data_ptr<int64_t>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::max_pool2d_backward(const Tensor& grad_out_in, const Tensor& indices_in, const PoolParams& p,
                                      Tensor& grad_x) {
  check_on_device("max_pool2d_backward", grad_x.device(), {&grad_out_in, &indices_in, &grad_x});
  HG_CHECK(grad_out_in.dtype() == grad_x.dtype() && indices_in.dtype() == kInt64 && grad_x.is_contiguous(),
           "max_pool2d_backward (cuda): expected grad_out of grad_x's dtype {}, int64 indices and a contiguous grad_x, "
           "got {}, {} and {}",
           grad_x.dtype(), grad_out_in.desc(), indices_in.desc(), grad_x.desc());
  if (grad_out_in.numel() == 0) return;
  DeviceGuard guard(grad_x.device());
  Tensor grad_out = as_contiguous(grad_out_in), indices = as_contiguous(indices_in);
  PoolGeometry g{
      grad_x.size(0) * grad_x.size(1), grad_x.size(2), grad_x.size(3), grad_out.size(2), grad_out.size(3), p};
  HG_CUDA_DISPATCH_FLOATING(grad_x.dtype(), "max_pool2d_backward", [&] {
    max_pool_backward_kernel<scalar_t><<<grid_for(grad_out.numel(), grad_x.device().index), kBlockSize>>>(
        grad_out.data_ptr<scalar_t>(), indices.data_ptr<int64_t>(), g, grad_x.data_ptr<scalar_t>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace hg::cuda
