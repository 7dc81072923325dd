// CPU matmul. float32: a single matrix product goes to dnnl_sgemm (oneDNN's GEMM, the fastest path for one
// product); batched products go to a cached dnnl::matmul primitive, which parallelises across the batch.
// float64 (used by gradient checks) has a plain blocked loop: oneDNN 2.6 has no f64 GEMM.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/onednn.h>

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

void sgemm_one(const float* a, MatrixLayout la, const float* b, MatrixLayout lb, float* c, int64_t M, int64_t N,
               int64_t K) {
  int threads = omp_get_max_threads();
  bool small = M * N * K < kSingleThreadMacs;
  if (small) omp_set_num_threads(1);
  dnnl_status_t st = dnnl_sgemm(la.transposed ? 'T' : 'N', lb.transposed ? 'T' : 'N', M, N, K, 1.0f, a, la.ld, b,
                                lb.ld, 0.0f, c, N);
  if (small) omp_set_num_threads(threads);
  HG_CHECK(st == dnnl_success, "matmul: dnnl_sgemm failed with status {} for M={} N={} K={}", static_cast<int>(st), M,
           N, K);
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

}  // namespace hg::cpu
