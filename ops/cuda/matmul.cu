// CUDA matmul and linear on cuBLAS. CPU reference: ops/cpu/matmul.cpp.
//
// cuBLAS is column-major; hopgrad is row-major. A row-major matrix read column-major is its transpose, so
// C = A·B (row-major) is computed as Cᵀ = Bᵀ·Aᵀ (column-major): the operands are passed swapped, and each needs
// no copy as long as one of its inner strides is 1 — a transposed view (a.transpose(1, 2) in bmm's backward) just
// flips the cuBLAS operation. Batch stride 0 (a broadcast operand) is passed through as stride 0.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

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

namespace {

// ---- float32 product + bias in one cuBLASLt call (the bias epilogue) ------------------------------------------
//
// Column-major, as gemm(): Cᵀ [N, M] = op(B') [N, K] · op(A') [K, M] + bias, the bias indexed by Cᵀ's row, i.e.
// by out's column. Descriptors and the heuristic's algorithm are kept per (device, shape, layouts, alignments):
// a training step asks for the same few products every time.

constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

#define HG_CUBLASLT_TRY(expr) \
  if ((expr) != CUBLAS_STATUS_SUCCESS) return false

struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  bool usable = false;  // false: no algorithm for this case (the caller takes the two-pass path)
};

// The largest power of two (at most 16) that divides the address: what cuBLASLt may assume of it.
int alignment_of(const void* p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  int a = 16;
  while (a > 4 && v % static_cast<uintptr_t>(a) != 0) a /= 2;
  return a;
}

bool make_lt_plan(cublasLtHandle_t lt, int64_t M, int64_t N, int64_t K, const GemmOperand& a, const GemmOperand& b,
                  int64_t ldc, const std::array<int, 4>& alignments, LtPlan& plan) {
  const cublasOperation_t op_b = b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  HG_CUBLASLT_TRY(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  HG_CUBLASLT_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_b, sizeof(op_b)));
  HG_CUBLASLT_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_a, sizeof(op_a)));
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  HG_CUBLASLT_TRY(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  // B' read as [N, K] (or [K, N] when transposed), A' as [K, M] (or [M, K]), C as [N, M]
  HG_CUBLASLT_TRY(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_32F, b.transposed ? K : N, b.transposed ? N : K, b.ld));
  HG_CUBLASLT_TRY(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_32F, a.transposed ? M : K, a.transposed ? K : M, a.ld));
  HG_CUBLASLT_TRY(cublasLtMatrixLayoutCreate(&plan.c, CUDA_R_32F, N, M, ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  HG_CUBLASLT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  bool ok = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kLtWorkspaceBytes,
                                                 sizeof(kLtWorkspaceBytes)) == CUBLAS_STATUS_SUCCESS;
  // the operands' actual alignments (the default assumes 256 bytes: a view at an odd offset would fault)
  const cublasLtMatmulPreferenceAttributes_t attributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4 && ok; ++i) {
    const uint32_t bytes = static_cast<uint32_t>(alignments[static_cast<size_t>(i)]);
    ok = cublasLtMatmulPreferenceSetAttribute(pref, attributes[i], &bytes, sizeof(bytes)) == CUBLAS_STATUS_SUCCESS;
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  ok = ok && cublasLtMatmulAlgoGetHeuristic(lt, plan.op, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found) ==
                 CUBLAS_STATUS_SUCCESS;
  cublasLtMatmulPreferenceDestroy(pref);
  if (!ok || found == 0) return false;
  plan.algo = result.algo;
  plan.workspace = result.workspaceSize;
  plan.usable = true;
  return true;
}

// out = x·wᵀ + bias in one call; false when cuBLASLt has no algorithm for the case (nothing was enqueued).
bool linear_bias_lt(int device, int64_t M, int64_t N, int64_t K, const GemmOperand& a, const GemmOperand& b,
                    const float* bias, float* c, int64_t ldc) {
  using Key = std::tuple<int, int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t, int, int, int>;
  struct Cache {
    std::mutex mutex;
    std::map<int, cublasLtHandle_t> handles;  // per device, created on its first product
    std::map<Key, LtPlan> plans;
  };
  static auto* cache = new Cache();  // never destroyed, as the cuBLAS handles
  const std::array<int, 4> alignments = {alignment_of(b.ptr), alignment_of(a.ptr), alignment_of(c), alignment_of(c)};
  const Key key{device, M, N, K, a.transposed, b.transposed, a.ld, b.ld, ldc,
                alignments[0], alignments[1], alignments[2]};
  // Held while the call is enqueued: the plan's descriptor takes this call's bias pointer.
  std::lock_guard lock(cache->mutex);
  cublasLtHandle_t& lt = cache->handles[device];
  if (!lt && cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return false;
  auto [it, inserted] = cache->plans.try_emplace(key);
  LtPlan& plan = it->second;
  if (inserted) make_lt_plan(lt, M, N, K, a, b, ldc, alignments, plan);
  if (!plan.usable) return false;
  if (cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)) !=
      CUBLAS_STATUS_SUCCESS)
    return false;
  Tensor workspace = plan.workspace ? empty({static_cast<int64_t>((plan.workspace + 3) / 4)}, kFloat32,
                                            Device::cuda(device))
                                    : Tensor();
  const float alpha = 1, beta = 0;
  HG_CUBLAS_CHECK(cublasLtMatmul(lt, plan.op, &alpha, b.ptr, plan.a, a.ptr, plan.b, &beta, c, plan.c, c, plan.c,
                                 &plan.algo, plan.workspace ? workspace.data_ptr() : nullptr, plan.workspace,
                                 nullptr));
  return true;
}

}  // namespace

// out [M, N] = x [M, K] · weight [N, K]ᵀ + bias [N]. float32 with a unit-stride bias: one cuBLASLt call with the
// bias epilogue (no pass over out for the bias). Otherwise out is filled with the broadcast bias and the GEMM
// accumulates into it (beta = 1); without a bias, the GEMM writes out (beta = 0).
void CudaBackend::linear(const Tensor& x_in, const Tensor& w_in, const Tensor* bias, Tensor& out) {
  check_on_device("linear", out.device(), {&x_in, &w_in, &out, bias ? bias : &out});
  hg::detail::check_linear_kernel(x_in, w_in, bias, out);
  const int64_t M = out.size(0), N = out.size(1), K = x_in.size(1);
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  if (K == 0) {  // the bias alone (or 0)
    if (bias) return copy(bias->expand(out.sizes()), out);
    return fill(out, 0.0);
  }
  Tensor x = gemm_layout(M, K, x_in.stride(0), x_in.stride(1)).ok ? x_in : as_contiguous(x_in);
  Tensor wt = w_in.t();  // [K, N]
  if (!gemm_layout(K, N, wt.stride(0), wt.stride(1)).ok) wt = as_contiguous(wt);
  const int device = out.device().index;
  const GemmOperand a = operand(x.unsqueeze(0)), b = operand(wt.unsqueeze(0));
  if (bias && out.dtype() == kFloat32 && (bias->stride(0) == 1 || N == 1) &&
      linear_bias_lt(device, M, N, K, a, b, bias->data_ptr<float>(), out.data_ptr<float>(), N))
    return;
  if (bias) copy(bias->expand(out.sizes()), out);
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "linear", [&] {
    gemm<scalar_t>(device, 1, M, N, K, scalar_t(1), a, b, scalar_t(bias ? 1 : 0), out.data_ptr<scalar_t>(), N, M * N);
  });
}

}  // namespace hg::cuda
