// CUDA scaled-dot-product attention: straightforward, correct kernels with one thread per query row (forward and
// dq) or per key row (dk, dv), recomputing the scores from q and k instead of storing the [L, S] weights. CPU
// reference: ops/cpu/attention.cpp (same formulas, same all-masked-row and NaN rules); HG_BACKEND_TEST cases in
// tests/test_fused_attention.cpp compare the two. Under hg::AttentionImpl::Auto they run only where the [B, H, L, S]
// weights would exceed 256 MiB (attention_prefers_composite, below): up to that, matmul, softmax and matmul as
// ops (cuBLAS) are the faster route. A tiled kernel is the next step for speed.
//
// Forward per row i, in two passes over the keys (no running rescale):
//   s_j = scale·q_i·k_j + mask_ij,  m = max_j s_j (0 when every s_j = −inf),  l = Σ_j e^{s_j − m},
//   out_i = Σ_j e^{s_j − m} v_j / l (0 when l = 0),  lse_i = m + log l (−inf when l = 0).
// Backward with p_ij = e^{s_ij − lse_i}, D_i = do_i·out_i, ds_ij = p_ij (do_i·v_j − D_i):
//   dq_i = scale Σ_j ds_ij k_j,   dk_j = scale Σ_i ds_ij q_i,   dv_j = Σ_i p_ij do_i.

#include <hopgrad/ops/cuda/common.cuh>
#include <hopgrad/ops/attention_kernel.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cuda {

namespace {

using hg::detail::attention_sizes;
using hg::detail::mask_view;
using hg::detail::MaskView;
using Sizes = hg::detail::AttentionSizes;

// Rows of a [B, H, rows, cols] view with unit column stride (T const for inputs; outputs are views too).
template <typename T> struct Rows4d {
  T* data;
  int64_t sb, sh, sr;
  __device__ T* at(int64_t b, int64_t h, int64_t row) const { return data + b * sb + h * sh + row * sr; }
};
template <typename T> Rows4d<T> rows_of(const Tensor& t) {
  return {static_cast<T*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2)};
}

// scale·q_i·k_j + mask_ij
template <typename T>
__device__ T score(const Sizes& z, const T* qi, const T* kj, const MaskView& mask, int64_t b, int64_t h, int64_t i,
                   int64_t j, T scale) {
  T dot = 0;
  for (int64_t e = 0; e < z.E; ++e) dot += qi[e] * kj[e];
  T s = scale * dot;
  if (mask.data) {
    const int64_t offset = b * mask.sb + h * mask.sh + i * mask.si + j * mask.sj;
    if (mask.is_bool)
      s = static_cast<const uint8_t*>(mask.data)[offset] ? s : -std::numeric_limits<T>::infinity();
    else
      s += static_cast<const T*>(mask.data)[offset];
  }
  return s;
}

//   out [B, H, L, Ev] (a view), lse [B, H, L] contiguous; one thread per query row
template <typename T>
__global__ void attention_forward_kernel(Sizes z, Rows4d<const T> q, Rows4d<const T> k, Rows4d<const T> v,
                                         MaskView mask, T scale, Rows4d<T> out, T* lse) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  HG_GRID_STRIDE_LOOP(row, z.B * z.H * z.L) {
    const int64_t i = row % z.L, bh = row / z.L, b = bh / z.H, h = bh % z.H;
    const T* qi = q.at(b, h, i);
    T m = neg_inf;
    for (int64_t j = 0; j < z.S; ++j) {
      const T s = score(z, qi, k.at(b, h, j), mask, b, h, i, j, scale);
      m = s > m ? s : m;  // a NaN never becomes the max (it poisons the sum instead), as the CPU
    }
    const T shift = m == neg_inf ? T(0) : m;
    T l = 0;
    for (int64_t j = 0; j < z.S; ++j) l += math::exp(score(z, qi, k.at(b, h, j), mask, b, h, i, j, scale) - shift);
    T* yi = out.at(b, h, i);
    for (int64_t e = 0; e < z.Ev; ++e) yi[e] = 0;
    const T inv = l == T(0) ? T(0) : T(1) / l;
    for (int64_t j = 0; j < z.S; ++j) {
      const T p = math::exp(score(z, qi, k.at(b, h, j), mask, b, h, i, j, scale) - shift) * inv;
      const T* vj = v.at(b, h, j);
      for (int64_t e = 0; e < z.Ev; ++e) yi[e] += p * vj[e];
    }
    lse[row] = l == T(0) ? neg_inf : shift + math::log(l);
  }
}

// p_ij = e^{s_ij − lse_i}, 0 in an all-masked row
template <typename T> __device__ T probability(T s, T row_lse) {
  return row_lse == -std::numeric_limits<T>::infinity() ? T(0) : math::exp(s - row_lse);
}

template <typename T> __device__ T dot(const T* a, const T* b, int64_t n) {
  T d = 0;
  for (int64_t e = 0; e < n; ++e) d += a[e] * b[e];
  return d;
}

//   D [B, H, L] (out: do_i·out_i), grad_q [B, H, L, E] (a view); one thread per query row
template <typename T>
__global__ void attention_backward_query_kernel(Sizes z, Rows4d<const T> q, Rows4d<const T> k, Rows4d<const T> v,
                                                MaskView mask, T scale, Rows4d<const T> out, const T* lse,
                                                Rows4d<const T> grad_out, T* D, Rows4d<T> grad_q) {
  HG_GRID_STRIDE_LOOP(row, z.B * z.H * z.L) {
    const int64_t i = row % z.L, bh = row / z.L, b = bh / z.H, h = bh % z.H;
    const T* qi = q.at(b, h, i);
    const T* doi = grad_out.at(b, h, i);
    const T Di = dot(doi, out.at(b, h, i), z.Ev);
    D[row] = Di;
    T* dqi = grad_q.at(b, h, i);
    for (int64_t e = 0; e < z.E; ++e) dqi[e] = 0;
    for (int64_t j = 0; j < z.S; ++j) {
      const T* kj = k.at(b, h, j);
      const T p = probability(score(z, qi, kj, mask, b, h, i, j, scale), lse[row]);
      const T ds = p * (dot(doi, v.at(b, h, j), z.Ev) - Di);
      for (int64_t e = 0; e < z.E; ++e) dqi[e] += scale * ds * kj[e];
    }
  }
}

//   grad_k [B, H, S, E], grad_v [B, H, S, Ev] (views); one thread per key row
template <typename T>
__global__ void attention_backward_key_kernel(Sizes z, Rows4d<const T> q, Rows4d<const T> k, Rows4d<const T> v,
                                              MaskView mask, T scale, const T* lse, Rows4d<const T> grad_out,
                                              const T* D, Rows4d<T> grad_k, Rows4d<T> grad_v) {
  HG_GRID_STRIDE_LOOP(row, z.B * z.H * z.S) {
    const int64_t j = row % z.S, bh = row / z.S, b = bh / z.H, h = bh % z.H;
    const T* kj = k.at(b, h, j);
    const T* vj = v.at(b, h, j);
    T* dkj = grad_k.at(b, h, j);
    T* dvj = grad_v.at(b, h, j);
    for (int64_t e = 0; e < z.E; ++e) dkj[e] = 0;
    for (int64_t e = 0; e < z.Ev; ++e) dvj[e] = 0;
    for (int64_t i = 0; i < z.L; ++i) {
      const T* qi = q.at(b, h, i);
      const T* doi = grad_out.at(b, h, i);
      const T p = probability(score(z, qi, kj, mask, b, h, i, j, scale), lse[bh * z.L + i]);
      const T ds = p * (dot(doi, vj, z.Ev) - D[bh * z.L + i]);
      for (int64_t e = 0; e < z.E; ++e) dkj[e] += scale * ds * qi[e];
      for (int64_t e = 0; e < z.Ev; ++e) dvj[e] += p * doi[e];
    }
  }
}


}  // namespace

// The kernels above run one thread per row, each looping over every key and feature: simple and exact, far from
// cuBLAS's batched GEMMs at attention's usual sizes (a row of 65 keys × 64 features is ~12 k dependent
// multiply-adds per thread, with few warps per SM). Up to 256 MiB of [B, H, L, S] weights, matmul, softmax and
// matmul as ops (cuBLAS and the softmax kernel) take their place, graph or not; above that the kernels, which
// never store the weights.
constexpr int64_t kCompositeMaxBytes = int64_t{256} << 20;
bool CudaBackend::attention_prefers_composite(bool records, int64_t batch_heads, int64_t L, int64_t S,
                                              DType dtype) const {
  (void)records;
  return batch_heads * L * S * static_cast<int64_t>(element_size(dtype)) <= kCompositeMaxBytes;
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale,
                            Tensor& out, Tensor& lse, Tensor* weights) {
  // attention_keeps_weights is false here: the backward recomputes the weights.
  HG_CHECK(weights == nullptr, "attention kernel (cuda): does not keep the weights (attention_keeps_weights)");
  check_on_device("attention", q.device(), {&q, &k, &v, &out, &lse});
  if (mask) check_on_device("attention", q.device(), {mask});
  hg::detail::check_attention_kernel("attention", q, k, v, mask, {&out}, lse);
  const Sizes z = attention_sizes(q, k, v);
  if (z.B * z.H * z.L == 0) return;
  DeviceGuard guard(q.device());
  HG_CUDA_DISPATCH_FLOATING(q.dtype(), "attention", [&] {
    attention_forward_kernel<scalar_t><<<grid_for(z.B * z.H * z.L, q.device().index), kBlockSize>>>(
        z, rows_of<const scalar_t>(q), rows_of<const scalar_t>(k), rows_of<const scalar_t>(v), mask_view(mask),
        static_cast<scalar_t>(scale), rows_of<scalar_t>(out), lse.data_ptr<scalar_t>());
    HG_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                                     double scale, const Tensor& out, const Tensor& lse, const Tensor* weights,
                                     const Tensor& grad_out, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) {
  HG_CHECK(weights == nullptr,
           "attention_backward kernel (cuda): does not read kept weights (attention_keeps_weights)");
  check_on_device("attention_backward", q.device(), {&q, &k, &v, &out, &lse, &grad_out, &grad_q, &grad_k, &grad_v});
  if (mask) check_on_device("attention_backward", q.device(), {mask});
  hg::detail::check_attention_kernel("attention_backward", q, k, v, mask,
                                     {&out, &grad_out, &grad_q, &grad_k, &grad_v}, lse);
  const Sizes z = attention_sizes(q, k, v);
  DeviceGuard guard(q.device());
  Tensor D = empty({z.B, z.H, z.L}, q.dtype(), q.device());  // do_i·out_i per query row
  HG_CUDA_DISPATCH_FLOATING(q.dtype(), "attention_backward", [&] {
    const auto qr = rows_of<const scalar_t>(q), kr = rows_of<const scalar_t>(k), vr = rows_of<const scalar_t>(v);
    const auto out_rows = rows_of<const scalar_t>(out), grad_out_rows = rows_of<const scalar_t>(grad_out);
    const auto s = static_cast<scalar_t>(scale);
    if (z.B * z.H * z.L > 0) {
      attention_backward_query_kernel<scalar_t><<<grid_for(z.B * z.H * z.L, q.device().index), kBlockSize>>>(
          z, qr, kr, vr, mask_view(mask), s, out_rows, lse.data_ptr<scalar_t>(), grad_out_rows,
          D.data_ptr<scalar_t>(), rows_of<scalar_t>(grad_q));
      HG_CUDA_CHECK_LAUNCH();
    }
    if (z.B * z.H * z.S > 0) {
      attention_backward_key_kernel<scalar_t><<<grid_for(z.B * z.H * z.S, q.device().index), kBlockSize>>>(
          z, qr, kr, vr, mask_view(mask), s, lse.data_ptr<scalar_t>(), grad_out_rows, D.data_ptr<scalar_t>(),
          rows_of<scalar_t>(grad_k), rows_of<scalar_t>(grad_v));
      HG_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace hg::cuda
