// CPU layer norm over the trailing N = `normalized_numel` elements of a contiguous tensor viewed as [rows, N],
// forward and backward.
//  - Forward: float32 runs oneDNN's layer_normalization_forward (training mode, so it also writes the mean and
//    variance kept for the backward); float64 (gradient checks) the loop below. The same loop in float32 was
//    measured slower than oneDNN's JIT kernel at 1 thread: [4160, 192] 230 µs vs 208 µs, [3200, 128] 136 µs vs
//    107 µs (medians, vit_tiny's and mil_pool's shapes).
//  - Backward: OpenMP loops parallel over blocks of rows, each row read from memory once and revisited in L1
//    (N = 192 floats is 768 bytes), inner loops vectorised with `omp simd`. (oneDNN 2.6's backward primitive takes
//    the variance, which this op does not keep — 1/rstd² − eps would lose digits — and has no float64.)
#include <algorithm>
#include <cmath>
#include <limits>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/onednn.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cpu {

namespace {

// mean = Σx / N;  var = Σ(x − mean)² / N (biased; two passes, the second over the row in L1, for accuracy);
// rstd = 1 / √(var + eps);  y = (x − mean)·rstd·w + b.
//   x, y: [rows, N];  w, b: [N] or null;  mean, rstd: [rows]
template <typename T>
void layer_norm_rows(const T* x, const T* w, const T* b, int64_t rows, int64_t N, T eps, T* y, T* mean, T* rstd) {
  const T inv_n = T(1) / static_cast<T>(N);
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * N;
      T* yr = y + r * N;
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < N; ++i) sum += xr[i];
      const T mu = sum * inv_n;
      T sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < N; ++i) sq += (xr[i] - mu) * (xr[i] - mu);
      const T rs = T(1) / std::sqrt(sq * inv_n + eps);
      mean[r] = mu;
      rstd[r] = rs;
      if (w && b) {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
      } else if (w) {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) yr[i] = (xr[i] - mu) * rs * w[i];
      } else if (b) {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) yr[i] = (xr[i] - mu) * rs + b[i];
      } else {
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) yr[i] = (xr[i] - mu) * rs;
      }
    }
  });
}

void layer_norm_f32(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t rows, int64_t N, double eps,
                    Tensor& out, Tensor& mean, Tensor& rstd) {
  using namespace dnnl;
  memory::desc data_md({rows, N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc stat_md({rows}, memory::data_type::f32, memory::format_tag::a);
  memory::desc param_md({N}, memory::data_type::f32, memory::format_tag::a);
  normalization_flags flags = normalization_flags::none;
  if (weight) flags |= normalization_flags::use_scale;
  if (bias) flags |= normalization_flags::use_shift;
  // The thread count is in the key, as in every cached primitive's: its work split is fixed when it is made.
  std::string key = fmt::format("layer_norm:{}:{}:{}:{}:t{}", rows, N, static_cast<unsigned>(flags), eps,
                                omp_get_max_threads());
  static PrimitiveCache<ScratchpadPrimitive> cache;
  const std::shared_ptr<const ScratchpadPrimitive> prim = cache.get(key, [&] {
    ScratchpadPrimitive result;
    HG_DNNL_CHECK(result = ScratchpadPrimitive::make<layer_normalization_forward>(
                      layer_normalization_forward::primitive_desc(
                          layer_normalization_forward::desc(prop_kind::forward_training, data_md, stat_md,
                                                            static_cast<float>(eps), flags),
                          user_scratchpad_attr(), onednn_engine())));
    return result;
  });
  const engine& eng = onednn_engine();
  // oneDNN writes the variance into rstd's buffer; it becomes rstd just below.
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(data_md, eng, x.data_ptr())},
                                       {DNNL_ARG_DST, memory(data_md, eng, out.data_ptr())},
                                       {DNNL_ARG_MEAN, memory(stat_md, eng, mean.data_ptr())},
                                       {DNNL_ARG_VARIANCE, memory(stat_md, eng, rstd.data_ptr())}};
  if (weight) args.emplace(DNNL_ARG_SCALE, memory(param_md, eng, weight->data_ptr()));
  if (bias) args.emplace(DNNL_ARG_SHIFT, memory(param_md, eng, bias->data_ptr()));
  prim->execute(std::move(args));
  float* r = rstd.data_ptr<float>();
  const float e = static_cast<float>(eps);
#pragma omp simd
  for (int64_t i = 0; i < rows; ++i) r[i] = 1.0f / std::sqrt(r[i] + e);
}

// Rows per block of the backward: the unit of parallel work and of the partial sums of grad_weight and
// grad_bias. It depends on N only, never on the thread count, and the blocks' partial sums are added in block
// order, so the gradients are the same bits for any number of threads.
constexpr int64_t kBackwardBlockElements = 8192;

// One block of rows of the backward. With x̂ = (x − mean)·rstd and ĝ = g ⊙ w, for each row:
//   grad_x = rstd·(ĝ − Σĝ/N − x̂·Σ(ĝ ⊙ x̂)/N)                      (needs the row's two sums first: 2 passes in L1)
//   partial_weight += g ⊙ x̂,  partial_bias += g                   (this block's share of the column sums)
//   g, x, grad_x: [rows, N];  w: [N] or null;  mean, rstd: [rows];  partial_weight, partial_bias: [N] or null
template <typename T, bool kHasWeight>
void layer_norm_backward_block(const T* g, const T* x, const T* w, const T* mean, const T* rstd, int64_t r0, int64_t r1,
                               int64_t N, T* grad_x, T* partial_weight, T* partial_bias) {
  const T inv_n = T(1) / static_cast<T>(N);
  auto g_hat = [&](const T* gr, int64_t i) { return kHasWeight ? gr[i] * w[i] : gr[i]; };
  for (int64_t r = r0; r < r1; ++r) {
    const T* gr = g + r * N;
    const T* xr = x + r * N;
    const T mu = mean[r], rs = rstd[r];
    if (partial_weight) {
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) {
        partial_weight[i] += gr[i] * ((xr[i] - mu) * rs);
        partial_bias[i] += gr[i];
      }
    }
    if (!grad_x) continue;
    T sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t i = 0; i < N; ++i) {
      const T gh = g_hat(gr, i);
      sum_g += gh;
      sum_gx += gh * ((xr[i] - mu) * rs);
    }
    const T mean_g = sum_g * inv_n, mean_gx = sum_gx * inv_n;
    T* dxr = grad_x + r * N;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) dxr[i] = rs * (g_hat(gr, i) - mean_g - (xr[i] - mu) * rs * mean_gx);
  }
}

template <typename T>
void layer_norm_backward_rows(const T* g, const T* x, const T* w, const T* mean, const T* rstd, int64_t rows,
                              int64_t N, T* grad_x, T* grad_weight, T* grad_bias) {
  const int64_t block_rows = std::max<int64_t>(1, kBackwardBlockElements / N);
  const int64_t blocks = (rows + block_rows - 1) / block_rows;
  const bool columns = grad_weight || grad_bias;
  // [blocks, 2, N]: each block's Σ g ⊙ x̂, then its Σ g. Both are formed when either is asked for: the second
  // costs one add per element in a pass that is bound by reading g and x.
  Tensor partials = columns ? empty({blocks, 2, N}, dtype_of_v<T>, kCPU) : Tensor();
  T* part = columns ? partials.data_ptr<T>() : nullptr;
  parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / (block_rows * N)), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      T* pw = columns ? part + blk * 2 * N : nullptr;
      if (pw) std::fill(pw, pw + 2 * N, T(0));
      const int64_t r0 = blk * block_rows, r1 = std::min(rows, r0 + block_rows);
      if (w)
        layer_norm_backward_block<T, true>(g, x, w, mean, rstd, r0, r1, N, grad_x, pw, pw ? pw + N : nullptr);
      else
        layer_norm_backward_block<T, false>(g, x, w, mean, rstd, r0, r1, N, grad_x, pw, pw ? pw + N : nullptr);
    }
  });
  if (!columns) return;
  // The blocks' partial sums, column by column in block order (in double: there may be thousands of blocks).
  parallel_for(N, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, 2 * blocks)), [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double sum_w = 0, sum_b = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        sum_w += static_cast<double>(part[blk * 2 * N + j]);
        sum_b += static_cast<double>(part[blk * 2 * N + N + j]);
      }
      if (grad_weight) grad_weight[j] = static_cast<T>(sum_w);
      if (grad_bias) grad_bias[j] = static_cast<T>(sum_b);
    }
  });
}

}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t normalized_numel,
                            double eps, Tensor& out, Tensor& mean, Tensor& rstd) {
  HG_CHECK(x.is_contiguous() && out.is_contiguous() && x.sizes() == out.sizes(),
           "layer_norm kernel: expects contiguous input and output of one shape, got {} and {}", x.desc(),
           out.desc());
  for (const Tensor* p : {weight, bias}) {
    HG_CHECK(!p || (p->is_contiguous() && p->numel() == normalized_numel && p->dtype() == x.dtype()),
             "layer_norm kernel: weight/bias must be contiguous {} with {} elements, got {}", x.dtype(),
             normalized_numel, p->desc());
  }
  // rows comes from the statistics, not from x.numel() / N, which is undefined when N = 0.
  const int64_t N = normalized_numel, rows = mean.numel();
  HG_CHECK(rows * N == x.numel() && rstd.numel() == rows && mean.is_contiguous() && rstd.is_contiguous(),
           "layer_norm kernel: mean/rstd must be contiguous with one element per row of {} elements of {}, got {} "
           "and {}",
           N, x.desc(), mean.desc(), rstd.desc());
  if (rows == 0) return;
  if (N == 0) {  // statistics of an empty set: NaN, as torch.mean
    fill(mean, std::numeric_limits<double>::quiet_NaN());
    fill(rstd, std::numeric_limits<double>::quiet_NaN());
    return;
  }
  if (x.dtype() == kFloat32) return layer_norm_f32(x, weight, bias, rows, N, eps, out, mean, rstd);
  HG_CHECK(x.dtype() == kFloat64, "layer_norm: dtype {} is not supported (expected float32 or float64)", x.dtype());
  layer_norm_rows<double>(x.data_ptr<double>(), weight ? weight->data_ptr<double>() : nullptr,
                          bias ? bias->data_ptr<double>() : nullptr, rows, N, eps, out.data_ptr<double>(),
                          mean.data_ptr<double>(), rstd.data_ptr<double>());
}

void CpuBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor* weight,
                                     const Tensor& mean, const Tensor& rstd, int64_t normalized_numel, Tensor* grad_x,
                                     Tensor* grad_weight, Tensor* grad_bias) {
  const int64_t N = normalized_numel, rows = mean.numel();
  hg::detail::check_layer_norm_backward_kernel(grad_out, x, weight, mean, rstd, N, grad_x, grad_weight, grad_bias);
  if (N == 0) return;  // every output is empty
  HG_DISPATCH_FLOATING(x.dtype(), "layer_norm_backward", [&] {
    using T = scalar_t;
    auto data = [](Tensor* t) { return t ? t->data_ptr<T>() : nullptr; };
    layer_norm_backward_rows<T>(grad_out.data_ptr<T>(), x.data_ptr<T>(), weight ? weight->data_ptr<T>() : nullptr,
                                mean.data_ptr<T>(), rstd.data_ptr<T>(), rows, N, data(grad_x), data(grad_weight),
                                data(grad_bias));
  });
}

}  // namespace hg::cpu
