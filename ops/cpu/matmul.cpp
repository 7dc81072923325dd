// CPU matmul and linear. float32: a single matrix product goes to dnnl_sgemm (oneDNN's GEMM, the fastest path
// for one product); batched products go to a cached dnnl::matmul primitive, which parallelises across the batch;
// linear (x·Wᵀ + b) goes to a cached dnnl::matmul primitive with the bias fused into its output pass.
// float64 (used by gradient checks) has a plain blocked loop: oneDNN 2.6 has no f64 GEMM.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/onednn.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cpu {

namespace {

// How a [rows, cols] matrix view can be handed to a row-major GEMM: directly, or as the transpose of a
// row-major matrix.
struct MatrixLayout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 0;
};
MatrixLayout gemm_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if (col_stride == 1 && (row_stride >= std::max<int64_t>(cols, 1) || rows == 1)) return {true, false, std::max(row_stride, cols)};
  if (row_stride == 1 && (col_stride >= std::max<int64_t>(rows, 1) || cols == 1)) return {true, true, std::max(col_stride, rows)};
  return {};
}

// Below this many multiply-adds a GEMM runs on the calling thread: waking the OpenMP team costs more than the
// product (a [32, 2]·[2, 64] layer in an MLP otherwise spends its time in barrier spin-waits).
constexpr int64_t kSingleThreadMacs = 64 * 64 * 64;

// Runs a small product on the calling thread (see kSingleThreadMacs) and restores the thread count after.
class SmallProductThreads {
 public:
  SmallProductThreads(int64_t M, int64_t N, int64_t K)
      : threads_(omp_get_max_threads()), small_(M * N * K < kSingleThreadMacs) {
    if (small_) omp_set_num_threads(1);
  }
  ~SmallProductThreads() {
    if (small_) omp_set_num_threads(threads_);
  }
  SmallProductThreads(const SmallProductThreads&) = delete;
  SmallProductThreads& operator=(const SmallProductThreads&) = delete;

 private:
  int threads_;
  bool small_;
};

void sgemm_one(const float* a, MatrixLayout la, const float* b, MatrixLayout lb, float* c, int64_t M, int64_t N,
               int64_t K) {
  dnnl_status_t st;
  {
    SmallProductThreads threads(M, N, K);
    st = dnnl_sgemm(la.transposed ? 'T' : 'N', lb.transposed ? 'T' : 'N', M, N, K, 1.0f, a, la.ld, b, lb.ld, 0.0f, c,
                    N);
  }
  HG_CHECK(st == dnnl_success, "matmul: dnnl_sgemm failed with status {} for M={} N={} K={}", static_cast<int>(st), M,
           N, K);
}

// out [M, N] = x [M, K] · w [N, K]ᵀ + bias [N] through a cached dnnl::matmul primitive (bias null: none). The
// primitive's bias is applied by the kernel that writes each output block, while the block is in cache; the
// separate pass it replaces re-read and re-wrote the whole output (vit_tiny: 7 M elements per block forward).
// It also beats dnnl_sgemm on these [rows, in]·[in, out]ᵀ products at 2 threads (mlp_small's 128×784 → 256:
// 242 vs 265 µs, minima of interleaved runs), while dnnl_sgemm stays faster for the backward's Gᵀ·x.
// x and w must each have a unit stride along one of their two dims (gemm_layout); the bias has unit stride.
void linear_f32(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  using namespace dnnl;
  const int64_t M = out.size(0), N = out.size(1), K = x.size(1);
  const MatrixLayout lx = gemm_layout(M, K, x.stride(0), x.stride(1));
  const MatrixLayout lw = gemm_layout(N, K, w.stride(0), w.stride(1));
  // Strides as oneDNN wants them: x as [M, K], weights as wᵀ [K, N].
  const memory::dims x_strides = lx.transposed ? memory::dims{1, lx.ld} : memory::dims{lx.ld, 1};
  const memory::dims w_strides = lw.transposed ? memory::dims{lw.ld, 1} : memory::dims{1, lw.ld};
  memory::desc x_md({M, K}, memory::data_type::f32, x_strides);
  memory::desc w_md({K, N}, memory::data_type::f32, w_strides);
  memory::desc bias_md({1, N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc out_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  SmallProductThreads small(M, N, K);
  // oneDNN fixes a primitive's thread count when it creates it, so the count is part of the key.
  const std::string key = fmt::format("linear:{}:{}:{}:{}:{}:{}:{}:{}:t{}", M, N, K, x_strides[0], x_strides[1],
                                      w_strides[0], w_strides[1], bias != nullptr, omp_get_max_threads());
  static PrimitiveCache<dnnl::matmul> cache;
  dnnl::matmul& prim = cache.get(key, [&] {
    dnnl::matmul result;
    HG_DNNL_CHECK(result = dnnl::matmul(dnnl::matmul::primitive_desc(
                      bias ? dnnl::matmul::desc(x_md, w_md, bias_md, out_md) : dnnl::matmul::desc(x_md, w_md, out_md),
                      onednn_engine())));
    return result;
  });
  memory xm(x_md, onednn_engine(), x.data_ptr()), wm(w_md, onednn_engine(), w.data_ptr()),
      om(out_md, onednn_engine(), out.data_ptr());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, om}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bias_md, onednn_engine(), bias->data_ptr()));
  HG_DNNL_CHECK(prim.execute(onednn_stream(), args));
  onednn_stream().wait();
}

void matmul_f32_batched(const Tensor& a, const Tensor& b, Tensor& out) {
  using namespace dnnl;
  int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  // oneDNN broadcasts a batch of 1; a 0 batch stride becomes batch 1.
  auto md = [](const Tensor& t, int64_t rows, int64_t cols) {
    int64_t batch = t.stride(0) == 0 ? 1 : t.size(0);
    memory::dims dims{batch, rows, cols};
    memory::dims strides{t.stride(0) == 0 ? rows * cols : t.stride(0), t.stride(1), t.stride(2)};
    return memory::desc(dims, memory::data_type::f32, strides);
  };
  memory::desc a_md = md(a, M, K), b_md = md(b, K, N);
  memory::desc c_md({B, M, N}, memory::data_type::f32, memory::format_tag::abc);
  std::string key = fmt::format("mm:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}", B, M, N, K, a_md.dims()[0], a.stride(0),
                                a.stride(1), a.stride(2), b_md.dims()[0], b.stride(1), b.stride(2));
  key += fmt::format(":{}", b.stride(0));
  static PrimitiveCache<dnnl::matmul> cache;
  dnnl::matmul& prim = cache.get(key, [&] {
    dnnl::matmul result;
    HG_DNNL_CHECK(result = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md),
                                                                     onednn_engine())));
    return result;
  });
  memory am(a_md, onednn_engine(), a.data_ptr()), bm(b_md, onednn_engine(), b.data_ptr()),
      cm(c_md, onednn_engine(), out.data_ptr());
  HG_DNNL_CHECK(prim.execute(onednn_stream(), {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}}));
  onednn_stream().wait();
}

// float64: c[b] = a[b] · b[b], row-major, parallel over (batch, row) pairs; the k loop is outside the j loop
// so the innermost loop streams through contiguous rows of b and c.
void matmul_f64(const Tensor& a, const Tensor& b, Tensor& out) {
  int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  double* pc = out.data_ptr<double>();
  int64_t as0 = a.stride(0), as1 = a.stride(1), as2 = a.stride(2);
  int64_t bs0 = b.stride(0), bs1 = b.stride(1), bs2 = b.stride(2);
  parallel_for(B * M, std::max<int64_t>(1, 4096 / std::max<int64_t>(N * K, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t bi = r / M, i = r % M;
      double* c = pc + r * N;
      std::fill(c, c + N, 0.0);
      for (int64_t k = 0; k < K; ++k) {
        double av = pa[bi * as0 + i * as1 + k * as2];
        const double* brow = pb + bi * bs0 + k * bs1;
        if (bs2 == 1) {
#pragma omp simd
          for (int64_t j = 0; j < N; ++j) c[j] += av * brow[j];
        } else {
          for (int64_t j = 0; j < N; ++j) c[j] += av * brow[j * bs2];
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::matmul(const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  HG_CHECK(a_in.dtype() == b_in.dtype() && a_in.dtype() == out.dtype(), "matmul: dtypes differ ({}, {}, {})",
           a_in.dtype(), b_in.dtype(), out.dtype());
  int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  if (out.numel() == 0) return;
  if (K == 0) {
    fill(out, 0.0);
    return;
  }
  if (out.dtype() == kFloat64) return matmul_f64(a_in, b_in, out);
  HG_CHECK(out.dtype() == kFloat32, "matmul: dtype {} is not supported (expected float32 or float64)", out.dtype());
  // Operands whose inner dims are not unit-strided in either direction are copied to row-major first.
  Tensor a = a_in, b = b_in;
  if (!gemm_layout(M, K, a.stride(1), a.stride(2)).ok) a = a.contiguous();
  if (!gemm_layout(K, N, b.stride(1), b.stride(2)).ok) b = b.contiguous();
  // oneDNN's memory descriptors reject batches that overlap in memory (an as_strided view with a batch stride
  // below one matrix's span): such an operand is copied so each batch owns its elements.
  auto overlapping_batches = [](const Tensor& t) {
    int64_t span = (t.size(1) - 1) * t.stride(1) + (t.size(2) - 1) * t.stride(2) + 1;
    return t.size(0) > 1 && t.stride(0) != 0 && t.stride(0) < span;
  };
  if (overlapping_batches(a)) a = a.contiguous();
  if (overlapping_batches(b)) b = b.contiguous();
  if (B == 1) {
    sgemm_one(a.data_ptr<float>(), gemm_layout(M, K, a.stride(1), a.stride(2)), b.data_ptr<float>(),
              gemm_layout(K, N, b.stride(1), b.stride(2)), out.data_ptr<float>(), M, N, K);
    return;
  }
  matmul_f32_batched(a, b, out);
}

void CpuBackend::linear(const Tensor& x_in, const Tensor& w_in, const Tensor* bias, Tensor& out) {
  hg::detail::check_linear_kernel(x_in, w_in, bias, out);
  const int64_t M = out.size(0), N = out.size(1), K = x_in.size(1);
  if (out.numel() == 0) return;
  if (K == 0 || out.dtype() == kFloat64) {  // the product, then the bias as a broadcast add
    Tensor out3 = out.unsqueeze(0);
    matmul(x_in.unsqueeze(0), w_in.t().unsqueeze(0), out3);
    if (bias) binary(BinaryOp::Add, out, bias->expand(out.sizes()), out);
    return;
  }
  HG_CHECK(out.dtype() == kFloat32, "linear: dtype {} is not supported (expected float32 or float64)", out.dtype());
  Tensor x = gemm_layout(M, K, x_in.stride(0), x_in.stride(1)).ok ? x_in : x_in.contiguous();
  Tensor w = gemm_layout(N, K, w_in.stride(0), w_in.stride(1)).ok ? w_in : w_in.contiguous();
  if (!bias || bias->stride(0) == 1 || N == 1) return linear_f32(x, w, bias, out);
  Tensor dense_bias = bias->contiguous();
  linear_f32(x, w, &dense_bias, out);
}

}  // namespace hg::cpu
