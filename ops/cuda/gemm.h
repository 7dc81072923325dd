#pragma once
// Row-major batched GEMM on cuBLAS (defined in ops/cuda/matmul.cu), shared by matmul and the convolutions.
#include <cstdint>

namespace hg::cuda {

/// One operand of a batched row-major GEMM, seen as a [rows, cols] matrix per batch entry: element (i, j) of batch
/// b lives at ptr[b·batch_stride + i·ld + j], or at ptr[b·batch_stride + j·ld + i] when `transposed` (then the
/// buffer holds the [cols, rows] matrix row-major). batch_stride 0 shares one matrix across the batch.
struct GemmOperand {
  const void* ptr = nullptr;
  int64_t ld = 0;
  bool transposed = false;
  int64_t batch_stride = 0;
};

/// C[b] = alpha·A[b]·B[b] + beta·C[b] for b < batch: A [M, K], B [K, N], C [M, N] row-major with leading dim
/// ldc and batch stride c_batch_stride. T is float or double; runs on `device` (which the caller made current).
/// float32 uses full-precision FMA (no TF32), as the CPU backend.
template <typename T>
void gemm(int device, int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const GemmOperand& a,
          const GemmOperand& b, T beta, T* c, int64_t ldc, int64_t c_batch_stride);

}  // namespace hg::cuda
