// CPU matmul and linear. float32: a single matrix product goes to a cached dnnl::matmul primitive when it is
// small (reading its operands as they are) or large with a wide b (reordering b into its blocked layout), and to
// dnnl_sgemm (oneDNN's GEMM) between, where that is fastest (single_product; gemm_by_plain_primitive and
// gemm_by_primitive say which and why); batched products go to a cached dnnl::matmul primitive, which
// parallelises across the batch; linear (x·Wᵀ + b) goes to a cached dnnl::matmul primitive with the bias fused
// into its output pass, or with a narrow output (1–15 columns) as the transposed product (linear_narrow_f32).
// Every primitive takes its scratchpad from the host pool (ScratchpadPrimitive).
// float64 (used by gradient checks) has a plain blocked loop: oneDNN 2.6 has no f64 GEMM.
#include <hopgrad/core/storage.h>
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
  // A dim of size 1 is never stepped along, so its stride does not matter (a 1×1 slice of a strided tensor has
  // neither stride 1, and was refused with ld = 0).
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= std::max<int64_t>(cols, 1)))
    return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : row_stride};
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= std::max<int64_t>(rows, 1)))
    return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return {};
}
// The same memory seen as the transpose of the matrix: [cols, rows].
MatrixLayout transpose_of(MatrixLayout l) { return {l.ok, !l.transposed, l.ld}; }

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

// A created dnnl::matmul primitive and the layout it reads its weights in: the caller's own, or one of oneDNN's
// blocked layouts that the weights are reordered into on each call (to_weights).
struct MatmulPrimitive {
  ScratchpadPrimitive primitive;
  dnnl::memory::desc weights;
  ScratchpadPrimitive to_weights;  // empty when the primitive reads the caller's weights as they are
};

// The primitive under `key`, created from `desc` on first use; `weights` is the layout the caller's weights are
// in (desc() may ask for format_tag::any). oneDNN fixes a primitive's thread count when it creates it, so every
// key ends with the count.
std::shared_ptr<const MatmulPrimitive> cached_matmul(const std::string& key, const dnnl::memory::desc& weights,
                               const std::function<dnnl::matmul::desc()>& desc) {
  static PrimitiveCache<MatmulPrimitive> cache;
  return cache.get(key, [&] {
    MatmulPrimitive result;
    HG_DNNL_CHECK({
      dnnl::matmul::primitive_desc pd(desc(), user_scratchpad_attr(), onednn_engine());
      result.primitive = ScratchpadPrimitive::make<dnnl::matmul>(pd);
      result.weights = pd.weights_desc();
      if (result.weights != weights) result.to_weights = make_reorder(weights, result.weights);
    });
    return result;
  });
}

// Runs `prim` on `args` (the weights in the caller's layout), then waits. Reordered weights and the scratchpad
// are blocks of the host pool, held for the call.
void run_matmul(const MatmulPrimitive& prim, std::unordered_map<int, dnnl::memory> args) {
  std::shared_ptr<Storage> weights_block;
  if (prim.to_weights) {
    weights_block = allocate_storage(prim.weights.get_size(), kCPU);
    dnnl::memory reordered(prim.weights, onednn_engine(), weights_block->data);
    prim.to_weights.execute({{DNNL_ARG_FROM, args.at(DNNL_ARG_WEIGHTS)}, {DNNL_ARG_TO, reordered}});
    args.insert_or_assign(DNNL_ARG_WEIGHTS, reordered);
  }
  prim.primitive.execute(std::move(args));
}

// Strides as oneDNN wants them for a [rows, cols] matrix in `layout`.
dnnl::memory::dims onednn_strides(MatrixLayout layout) {
  return layout.transposed ? dnnl::memory::dims{1, layout.ld} : dnnl::memory::dims{layout.ld, 1};
}

// Whether a single product goes to a cached dnnl::matmul primitive rather than to dnnl_sgemm: when a is row-major,
// b has at least 1024 columns and the product at least 2^28 multiply-adds (1024³ and 2048³ do).
//
// Why: dnnl_sgemm mallocs its packing buffers on every call and frees them. Buffers above glibc's initial mmap
// threshold (128 KiB) are mapped at first; the first free raises the threshold, later ones come from the heap,
// and a freed buffer cannot serve the next aligned request (which asks for a little more), so the heap grows by
// about a buffer per call until glibc trims it: bench_matmul held 16 MiB of [heap] at n = 1024 and up to 28 at
// 2048. Those buffers are large when b is wide (1024³: 2.2 MB, 2048³: 3.8 MB, [128, 512]·[512, 1024]: 1.2 MB)
// and 74 KB for the products of vit_tiny and mlp_small (b at most 768 columns), where there is nothing to save.
// The primitive's scratchpad (≤ 0.8 MB) and its reordered b come from the host pool, whose pages tensors reuse:
// peak RSS 39 → 26 MiB at n = 1024, 87 → 74 at 2048 (1 thread; the reordered b is 16 MiB there).
// Why not always: dnnl_sgemm is as fast or faster elsewhere and needs no primitive per shape (creating one costs
// 0.1–0.3 ms). CPU time per call, primitive / sgemm, 1 thread, alternated: 512³ 1.02–1.05, 1024³ 0.98–1.00,
// 2048³ 0.99 (with the reorder of b; 1.11 without), a read transposed 1.02–1.10 (1024³, 2048³) and 1.07–1.25
// for the weight gradients Gᵀ·x (vit_tiny's 576×192×4160); vit_tiny's input gradients G·W (N = 192) 0.99–1.07,
// and its step +2 % CPU time when they took the primitive.
// Alternatives measured: malloc_trim(0) after each large call releases the heap but re-faults the next call's
// buffer (1024³: +8 % CPU time per call); a pinned mmap threshold would change malloc for the whole process.
constexpr int64_t kPrimitiveMacs = int64_t{1} << 28;
constexpr int64_t kPrimitiveMinColumns = 1024;
bool gemm_by_primitive(MatrixLayout la, int64_t M, int64_t N, int64_t K) {
  return !la.transposed && N >= kPrimitiveMinColumns && M * N * K >= kPrimitiveMacs;
}

// Whether a product of at most kPlainPrimitiveMaxRows rows of a and kPlainPrimitiveMaxDepth of K goes to a
// cached dnnl::matmul primitive reading both operands as they are (no reorder), rather than to dnnl_sgemm.
//
// Why: on its first call dnnl_sgemm JIT-compiles all sixteen of its kernels (every transposition, β and bias
// variant: 3.4 MB of code, +7.5 MiB resident with the library code it touches), whatever the shape; a process
// whose products all fit here never calls it (mlp_small: 21 → 16 MiB). And the primitive is as fast on these
// shapes. Minima of 400 alternated calls, primitive / sgemm, 1 and 2 threads: mlp_small's weight gradient Gᵀ·x
// [256, 128]·[128, 784] 1.00 / 0.96, its 10-wide products 0.93–1.16 (6–9 µs), memory_retrieval's ξXᵀ
// [256, 784]·[784, 1000] 0.88 / 0.93 and softmax·X 1.02 / 0.97, 256³ 0.99 / 0.88, 512³ 1.00 / 0.90.
// Beyond these bounds sgemm is faster: deep products (weight gradients over thousands of rows, K = 2048–4160:
// 1.05–1.27) and tall ones (vit_tiny's G·W, M = 4160: 1.05–1.13 at 1 thread).
constexpr int64_t kPlainPrimitiveMaxRows = 2048;
constexpr int64_t kPlainPrimitiveMaxDepth = 1024;
bool gemm_by_plain_primitive(int64_t M, int64_t K) {
  return M <= kPlainPrimitiveMaxRows && K <= kPlainPrimitiveMaxDepth;
}

// c [M, N] = a [M, K] · b [K, N] through a cached dnnl::matmul primitive (see gemm_by_primitive and
// gemm_by_plain_primitive for when). With reorder_b, a row-major b is reordered into the primitive's blocked
// weights layout on each call: for large products the primitive otherwise copies b's blocks again for every block
// of rows of a (2048³ at 1 thread: 11 % more CPU time than dnnl_sgemm; with the reorder: the same); small ones do
// not repay the reorder. A transposed b (b = wᵀ, w row-major) is the layout it reads directly.
void gemm_primitive(const float* a, MatrixLayout la, const float* b, MatrixLayout lb, float* c, int64_t M, int64_t N,
                    int64_t K, bool reorder_b) {
  using namespace dnnl;
  const memory::dims a_strides = onednn_strides(la), b_strides = onednn_strides(lb);
  memory::desc a_md({M, K}, memory::data_type::f32, a_strides);
  memory::desc b_md({K, N}, memory::data_type::f32, b_strides);
  memory::desc c_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  reorder_b = reorder_b && !lb.transposed;
  const std::string key = fmt::format("gemm:{}:{}:{}:{}:{}:{}:{}:{}:t{}", M, N, K, a_strides[0], a_strides[1],
                                      b_strides[0], b_strides[1], reorder_b, omp_get_max_threads());
  const std::shared_ptr<const MatmulPrimitive> prim = cached_matmul(key, b_md, [&] {
    const memory::desc any_layout({K, N}, memory::data_type::f32, memory::format_tag::any);
    return matmul::desc(a_md, reorder_b ? any_layout : b_md, c_md);
  });
  run_matmul(*prim, {{DNNL_ARG_SRC, memory(a_md, onednn_engine(), const_cast<float*>(a))},
                    {DNNL_ARG_WEIGHTS, memory(b_md, onednn_engine(), const_cast<float*>(b))},
                    {DNNL_ARG_DST, memory(c_md, onednn_engine(), c)}});
}

// c [M, N] = a [M, K] · b [K, N], row-major c, on whichever of the three routes is fastest for the shape.
void single_product(const float* a, MatrixLayout la, const float* b, MatrixLayout lb, float* c, int64_t M,
                    int64_t N, int64_t K) {
  if (gemm_by_primitive(la, M, N, K)) return gemm_primitive(a, la, b, lb, c, M, N, K, true);
  if (!gemm_by_plain_primitive(M, K)) return sgemm_one(a, la, b, lb, c, M, N, K);
  SmallProductThreads threads(M, N, K);
  gemm_primitive(a, la, b, lb, c, M, N, K, false);
}

// out [M, N] = x [M, K] · w [N, K]ᵀ + bias [N] through a cached dnnl::matmul primitive (bias null: none). The
// primitive's bias is applied by the kernel that writes each output block, while the block is in cache; the
// separate pass it replaces re-read and re-wrote the whole output (vit_tiny: 7 M elements per block forward).
// It also beats dnnl_sgemm on these [rows, in]·[in, out]ᵀ products at 2 threads (mlp_small's 128×784 → 256:
// 242 vs 265 µs, minima of interleaved runs); the backward's products go to single_product.
// x and w must each have a unit stride along one of their two dims (gemm_layout); the bias has unit stride.
//
// With many rows (M ≥ kBlockedWeightsMinRows) the primitive reads the weights in the blocked layout it prefers,
// reordered on each call (a pass over K·N elements), instead of reading wᵀ through strides. Minima of 40 calls at
// 2 threads, strided / blocked with the reorder (in % of the 2-thread FMA peak): vit_tiny's fc1 4160×192 → 768
// 78.5 / 84.3, qkv → 576 76.3 / 83.3, fc2 4160×768 → 192 86.1 / 89.5, mil_pool's 3200×230 → 128 92.3 / 94.6,
// hopfield_attention's 2048×128 → 128 87.1 / 92.3. With few rows the reorder is not paid back: mlp_small's
// 128×784 → 256 90.1 / 79.0.
constexpr int64_t kBlockedWeightsMinRows = 1024;
void linear_f32(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  using namespace dnnl;
  const int64_t M = out.size(0), N = out.size(1), K = x.size(1);
  const MatrixLayout lx = gemm_layout(M, K, x.stride(0), x.stride(1));
  const MatrixLayout lw = gemm_layout(N, K, w.stride(0), w.stride(1));
  // x as [M, K], the weights as wᵀ [K, N] (so w's layout flips).
  const memory::dims x_strides = onednn_strides(lx);
  const memory::dims w_strides = onednn_strides(transpose_of(lw));
  memory::desc x_md({M, K}, memory::data_type::f32, x_strides);
  memory::desc w_md({K, N}, memory::data_type::f32, w_strides);
  memory::desc bias_md({1, N}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc out_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  SmallProductThreads small(M, N, K);
  const std::string key = fmt::format("linear:{}:{}:{}:{}:{}:{}:{}:{}:t{}", M, N, K, x_strides[0], x_strides[1],
                                      w_strides[0], w_strides[1], bias != nullptr, omp_get_max_threads());
  const std::shared_ptr<const MatmulPrimitive> prim = cached_matmul(key, w_md, [&] {
    const memory::desc weights_md = M >= kBlockedWeightsMinRows
                                        ? memory::desc({K, N}, memory::data_type::f32, memory::format_tag::any)
                                        : w_md;
    return bias ? matmul::desc(x_md, weights_md, bias_md, out_md) : matmul::desc(x_md, weights_md, out_md);
  });
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(x_md, onednn_engine(), x.data_ptr())},
                                       {DNNL_ARG_WEIGHTS, memory(w_md, onednn_engine(), w.data_ptr())},
                                       {DNNL_ARG_DST, memory(out_md, onednn_engine(), out.data_ptr())}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bias_md, onednn_engine(), bias->data_ptr()));
  run_matmul(*prim, std::move(args));
}

// out [M, N] = x [M, K] · w [N, K]ᵀ + bias for narrow outputs, N < kNarrowMaxColumns (a classifier's 10 or 2
// classes, a single logit), as the transposed product outᵀ [N, M] = w · xᵀ (single_product), written back
// transposed with the bias added. oneDNN's kernels for x·wᵀ put N across the vector lanes, mostly empty there;
// the transposed product puts the M rows across them. hg::linear with bias, minima, x·wᵀ primitive → this on
// dnnl_sgemm (1 thread): 128×256 → 10 12.1 → 7.5 µs, 4160×192 → 10 230 → 205 µs, 1024×256 → 2 78 → 14 µs,
// 32×128 → 2 3.9 → 0.8 µs, 1024×256 → 1 78 → 15 µs; the plain primitive that takes the transposed product now
// when K ≤ 1024 (gemm_by_plain_primitive): 8.7 µs for 128×256 → 10. From 16 columns on x·wᵀ is as fast
// (128×256 → 16: 12.2 µs either way).
constexpr int64_t kNarrowMaxColumns = 16;
void linear_narrow_f32(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int64_t M = out.size(0), N = out.size(1), K = x.size(1);
  const MatrixLayout lx = gemm_layout(M, K, x.stride(0), x.stride(1));
  const MatrixLayout lw = gemm_layout(N, K, w.stride(0), w.stride(1));
  std::shared_ptr<Storage> block = allocate_storage(static_cast<size_t>(N * M) * sizeof(float), kCPU);
  float* transposed = static_cast<float*>(block->data);
  single_product(w.data_ptr<float>(), lw, x.data_ptr<float>(), transpose_of(lx), transposed, N, M, K);
  float* o = out.data_ptr<float>();
  const float* b = bias ? bias->data_ptr<float>() : nullptr;
  const int64_t bias_stride = bias ? bias->stride(0) : 0;
  parallel_for(M, std::max<int64_t>(1, kParallelGrain / N), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m)
      for (int64_t n = 0; n < N; ++n) o[m * N + n] = transposed[n * M + m] + (b ? b[n * bias_stride] : 0.0f);
  });
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
  const std::string key =
      fmt::format("mm:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:t{}", B, M, N, K, a_md.dims()[0], a.stride(0), a.stride(1),
                  a.stride(2), b_md.dims()[0], b.stride(0), b.stride(1), b.stride(2), omp_get_max_threads());
  const std::shared_ptr<const MatmulPrimitive> prim =
      cached_matmul(key, b_md, [&] { return matmul::desc(a_md, b_md, c_md); });
  run_matmul(*prim, {{DNNL_ARG_SRC, memory(a_md, onednn_engine(), a.data_ptr())},
                    {DNNL_ARG_WEIGHTS, memory(b_md, onednn_engine(), b.data_ptr())},
                    {DNNL_ARG_DST, memory(c_md, onednn_engine(), out.data_ptr())}});
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
  // Both operands broadcast along the batch (stride 0): every batch is the same product, so it is formed once
  // and copied (oneDNN refuses a batch-1 source and weights with a batch-B destination).
  const bool one_product = B == 1 || (a.stride(0) == 0 && b.stride(0) == 0);
  if (one_product) {
    const MatrixLayout la = gemm_layout(M, K, a.stride(1), a.stride(2));
    const MatrixLayout lb = gemm_layout(K, N, b.stride(1), b.stride(2));
    float* c = out.data_ptr<float>();
    single_product(a.data_ptr<float>(), la, b.data_ptr<float>(), lb, c, M, N, K);
    const int64_t mn = M * N;
    parallel_for(B - 1, std::max<int64_t>(1, kParallelGrain / mn),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t i = lo; i < hi; ++i) std::copy(c, c + mn, c + (i + 1) * mn);
                 });
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
  if (N < kNarrowMaxColumns) return linear_narrow_f32(x, w, bias, out);
  if (!bias || bias->stride(0) == 1) return linear_f32(x, w, bias, out);
  Tensor dense_bias = bias->contiguous();
  linear_f32(x, w, &dense_bias, out);
}

}  // namespace hg::cpu
