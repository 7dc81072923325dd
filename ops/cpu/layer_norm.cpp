// CPU layer norm over the trailing `normalized_numel` elements of a contiguous tensor viewed as [rows, N].
// float32 runs oneDNN's layer_normalization_forward (training mode, so it also writes the mean and variance we
// keep for backward); float64 (gradient checks) runs the two-pass loop below.
#include <cmath>
#include <limits>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/onednn.h>

namespace hg::cpu {

namespace {

// mean = Σx / N;  var = Σ(x - mean)² / N (biased, two passes for accuracy);  rstd = 1 / √(var + eps);
// y = (x - mean)·rstd·w + b.
void layer_norm_f64(const double* x, const double* w, const double* b, int64_t rows, int64_t N, double eps,
                    double* y, double* mean, double* rstd) {
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const double* xr = x + r * N;
      double* yr = y + r * N;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < N; ++i) sum += xr[i];
      double mu = sum / static_cast<double>(N);
      double sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < N; ++i) sq += (xr[i] - mu) * (xr[i] - mu);
      double rs = 1.0 / std::sqrt(sq / static_cast<double>(N) + eps);
      mean[r] = mu;
      rstd[r] = rs;
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) yr[i] = (xr[i] - mu) * rs * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
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
  std::string key = fmt::format("layer_norm:{}:{}:{}:{}", rows, N, static_cast<unsigned>(flags), eps);
  static PrimitiveCache<layer_normalization_forward> cache;
  layer_normalization_forward& prim = cache.get(key, [&] {
    layer_normalization_forward result;
    HG_DNNL_CHECK(result = layer_normalization_forward(layer_normalization_forward::primitive_desc(
                      layer_normalization_forward::desc(prop_kind::forward_training, data_md, stat_md,
                                                        static_cast<float>(eps), flags),
                      onednn_engine())));
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
  HG_DNNL_CHECK(prim.execute(onednn_stream(), args));
  onednn_stream().wait();
  float* r = rstd.data_ptr<float>();
  const float e = static_cast<float>(eps);
#pragma omp simd
  for (int64_t i = 0; i < rows; ++i) r[i] = 1.0f / std::sqrt(r[i] + e);
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
  layer_norm_f64(x.data_ptr<double>(), weight ? weight->data_ptr<double>() : nullptr,
                 bias ? bias->data_ptr<double>() : nullptr, rows, N, eps, out.data_ptr<double>(),
                 mean.data_ptr<double>(), rstd.data_ptr<double>());
}

}  // namespace hg::cpu
