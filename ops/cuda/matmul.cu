// CUDA matmul and linear on cuBLAS. CPU reference: ops/cpu/matmul.cpp.
//
// cuBLAS is column-major; hopgrad is row-major. A row-major matrix read column-major is its transpose, so
// C = A·B (row-major) is computed as Cᵀ = Bᵀ·Aᵀ (column-major): the operands are passed swapped, and each needs
// no copy as long as one of its inner strides is 1 — a transposed view (a.transpose(1, 2) in bmm's backward) just
// flips the cuBLAS operation. Batch stride 0 (a broadcast operand) is passed through as stride 0.
#include <hopgrad/ops/cuda/common.cuh>
#include <hopgrad/ops/cuda/gemm.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cuda {

namespace {

cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                                    int64_t k, const float* alpha, const float* A, int64_t lda, long long sa,
                                    const float* B, int64_t ldb, long long sb, const float* beta, float* C, int64_t ldc,
                                    long long sc, int64_t batch) {
  return cublasSgemmStridedBatched_64(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}
cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                                    int64_t k, const double* alpha, const double* A, int64_t lda, long long sa,
                                    const double* B, int64_t ldb, long long sb, const double* beta, double* C,
                                    int64_t ldc, long long sc, int64_t batch) {
  return cublasDgemmStridedBatched_64(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

// How a [rows, cols] view with the given strides can be a GemmOperand without a copy (ok = false: it cannot).
struct MatrixLayout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 0;
};
MatrixLayout gemm_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // A dim of size 1 is never stepped along, so its stride does not matter (a 1×1 slice of a strided tensor has
  // neither stride 1, and was refused with ld = 0).
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= std::max<int64_t>(cols, 1)))
    return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : row_stride};
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= std::max<int64_t>(rows, 1)))
    return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return {};
}

// t [B, rows, cols] as a GemmOperand; t must satisfy gemm_layout.
GemmOperand operand(const Tensor& t) {
  MatrixLayout l = gemm_layout(t.size(1), t.size(2), t.stride(1), t.stride(2));
  return {t.data_ptr(), l.ld, l.transposed, t.size(0) == 1 ? 0 : t.stride(0)};
}

}  // namespace

template <typename T>
void gemm(int device, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const GemmOperand& a,
          const GemmOperand& b, T beta, T* c, int64_t ldc, int64_t c_batch_stride) {
  if (batch == 0 || M == 0 || N == 0) return;
  // Cᵀ [N, M] = op(B')·op(A') column-major, with B' = b's buffer and A' = a's buffer:
  //  b not transposed: its buffer read column-major is Bᵀ [N, K] → no op; transposed: it is B [K, N] → op T.
  //  a not transposed: its buffer read column-major is Aᵀ [K, M] → no op; transposed: it is A [M, K] → op T.
  cublasOperation_t op_b = b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_a = a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  CublasLease blas = cublas_handle(device);
  HG_CUBLAS_CHECK(gemm_strided_batched(blas.handle, op_b, op_a, N, M, K, &alpha, static_cast<const T*>(b.ptr), b.ld,
                                       b.batch_stride, static_cast<const T*>(a.ptr), a.ld, a.batch_stride, &beta, c,
                                       ldc, c_batch_stride, batch));
}

template void gemm<float>(int, int64_t, int64_t, int64_t, int64_t, float, const GemmOperand&, const GemmOperand&, float,
                          float*, int64_t, int64_t);
template void gemm<double>(int, int64_t, int64_t, int64_t, int64_t, double, const GemmOperand&, const GemmOperand&,
                           double, double*, int64_t, int64_t);

// out[b] = a[b]·b[b];  a [B, M, K], b [B, K, N] (batch stride 0 = broadcast), out [B, M, N] contiguous.
void CudaBackend::matmul(const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  check_on_device("matmul", out.device(), {&a_in, &b_in, &out});
  HG_CHECK(a_in.dtype() == b_in.dtype() && a_in.dtype() == out.dtype(), "matmul (cuda): dtypes differ ({}, {}, {})",
           a_in.dtype(), b_in.dtype(), out.dtype());
  HG_CHECK(a_in.dim() == 3 && b_in.dim() == 3 && out.dim() == 3 && out.is_contiguous() && a_in.size(0) == out.size(0) &&
               b_in.size(0) == out.size(0) && a_in.size(1) == out.size(1) && b_in.size(2) == out.size(2) &&
               a_in.size(2) == b_in.size(1),
           "matmul (cuda): expects a [B, M, K], b [B, K, N] and a contiguous out [B, M, N], got {}, {} and {}",
           a_in.desc(), b_in.desc(), out.desc());
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  if (K == 0) return fill(out, 0.0);
  // Operands whose inner dims are not unit-strided in either direction are copied to row-major first.
  Tensor a = gemm_layout(M, K, a_in.stride(1), a_in.stride(2)).ok ? a_in : as_contiguous(a_in);
  Tensor b = gemm_layout(K, N, b_in.stride(1), b_in.stride(2)).ok ? b_in : as_contiguous(b_in);
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "matmul", [&] {
    gemm<scalar_t>(out.device().index, B, M, N, K, scalar_t(1), operand(a), operand(b), scalar_t(0),
                   out.data_ptr<scalar_t>(), N, M * N);
  });
}

// out [M, N] = x [M, K] · weight [N, K]ᵀ + bias [N]: out is filled with the broadcast bias, then the GEMM
// accumulates into it (beta = 1), so the bias costs one write of out and no second read-modify-write pass.
void CudaBackend::linear(const Tensor& x_in, const Tensor& w_in, const Tensor* bias, Tensor& out) {
  check_on_device("linear", out.device(), {&x_in, &w_in, &out, bias ? bias : &out});
  hg::detail::check_linear_kernel(x_in, w_in, bias, out);
  const int64_t M = out.size(0), N = out.size(1), K = x_in.size(1);
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  if (bias) {
    copy(bias->expand(out.sizes()), out);
  } else {
    fill(out, 0.0);
  }
  if (K == 0) return;
  Tensor x = gemm_layout(M, K, x_in.stride(0), x_in.stride(1)).ok ? x_in : as_contiguous(x_in);
  Tensor wt = w_in.t();  // [K, N]
  if (!gemm_layout(K, N, wt.stride(0), wt.stride(1)).ok) wt = as_contiguous(wt);
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "linear", [&] {
    gemm<scalar_t>(out.device().index, 1, M, N, K, scalar_t(1), operand(x.unsqueeze(0)), operand(wt.unsqueeze(0)),
                   scalar_t(1), out.data_ptr<scalar_t>(), N, M * N);
  });
}

}  // namespace hg::cuda
