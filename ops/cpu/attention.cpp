// CPU fused scaled-dot-product attention, FlashAttention-2 style (Dao 2023): the scores of one block of query rows
// against one block of keys live in a scratch tile, are turned into probabilities with a running (online) max and
// sum, and are multiplied into the output at once; the log-sum-exp of each row is kept for backward, which
// recomputes the probabilities tile by tile from it — or, with one key block and a graph to record, the forward
// also writes the probabilities out and the backward reads them (attention_keeps_weights), which saves the
// backward a third of its work for a [B, H, L, S] tensor held until it runs.
//
// Why not the composite softmax(q kᵀ·scale + mask) v: at attention's usual sizes (L, S ≈ 64, head dim 32–64)
// each of its ops is a few microseconds of work behind a full pass over an [B, H, L, S] temporary (scores,
// probabilities, their gradients), freshly allocated and page-faulted every step; here each tile stays in L1/L2.
//
// Why a GEMM of our own instead of dnnl_sgemm: the tiles are tiny (≤ 128 × 256 × head dim) and every one is
// computed inside an OpenMP loop over (batch, head). oneDNN 2.6's sgemm called from inside a parallel region
// takes ~38 ms (not µs) for a 65 × 65 × 64 product on this machine, and even outside one it spends ~2 µs of
// set-up per call; the register-tiled loop below runs the same tile in a few µs with no set-up.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/simd_exp.h>
#include <hopgrad/ops/attention_kernel.h>
#include <hopgrad/ops/kernel_checks.h>

namespace hg::cpu {

namespace {

using hg::detail::attention_sizes;
using hg::detail::mask_view;
using hg::detail::MaskView;
using Sizes = hg::detail::AttentionSizes;

template <typename T> constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// ---- the tile GEMM -------------------------------------------------------------------------------------------
// C[M, N] = alpha · A[M, K] · B[K, N] (+ C when accumulating). B and C have unit column stride (row strides ldb,
// ldc). A is only ever read one element at a time (broadcast against a row of B), so it takes any strides
// (a_rows, a_cols): a transposed A costs nothing. A register tile of Rows rows × Cols columns (one or two SIMD
// vectors) keeps its accumulators in registers while the k loop streams rows of B from L1; 6 × 2 vectors gives
// 12 independent FMA chains, enough to cover the FMA latency on both ports.
constexpr int64_t kTileRows = 6;
template <typename T> constexpr int64_t kVector = 64 / static_cast<int64_t>(sizeof(T));  // one AVX-512 register

template <typename T, int64_t Rows, int64_t Cols, bool Accumulate>
inline void gemm_tile(int64_t n, int64_t K, const T* a, int64_t a_rows, int64_t a_cols, const T* b, int64_t ldb,
                      T* c, int64_t ldc, T alpha) {
  // The first k initialises the accumulators: `acc = {}` compiled to a memset call per tile (5 % of a ViT
  // block's attention backward), and K ≥ 1 here (gemm returns early for K = 0).
  T acc[Rows][Cols];
#pragma GCC unroll 8
  for (int64_t r = 0; r < Rows; ++r) {
    const T ar = a[r * a_rows];
#pragma omp simd
    for (int64_t w = 0; w < Cols; ++w) acc[r][w] = ar * b[w];
  }
  for (int64_t k = 1; k < K; ++k) {
    const T* bk = b + k * ldb;
#pragma GCC unroll 8
    for (int64_t r = 0; r < Rows; ++r) {
      const T ar = a[r * a_rows + k * a_cols];
#pragma omp simd
      for (int64_t w = 0; w < Cols; ++w) acc[r][w] += ar * bk[w];
    }
  }
  // n < Cols only for the last, padded column tile: store its first n columns.
  for (int64_t r = 0; r < Rows; ++r) {
    T* cr = c + r * ldc;
    if (Accumulate) {
#pragma omp simd
      for (int64_t w = 0; w < n; ++w) cr[w] += alpha * acc[r][w];
    } else {
#pragma omp simd
      for (int64_t w = 0; w < n; ++w) cr[w] = alpha * acc[r][w];
    }
  }
}

// All row tiles of one column tile of Cols columns.
template <typename T, int64_t Cols, bool Accumulate>
void gemm_columns(int64_t M, int64_t n, int64_t K, T alpha, const T* a, int64_t a_rows, int64_t a_cols, const T* b,
                  int64_t ldb, T* c, int64_t ldc) {
  int64_t i = 0;
  for (; i + kTileRows <= M; i += kTileRows)
    gemm_tile<T, kTileRows, Cols, Accumulate>(n, K, a + i * a_rows, a_rows, a_cols, b, ldb, c + i * ldc, ldc, alpha);
  const T* ai = a + i * a_rows;
  T* ci = c + i * ldc;
  switch (M - i) {  // the remaining rows, as one smaller tile
    case 5: gemm_tile<T, 5, Cols, Accumulate>(n, K, ai, a_rows, a_cols, b, ldb, ci, ldc, alpha); break;
    case 4: gemm_tile<T, 4, Cols, Accumulate>(n, K, ai, a_rows, a_cols, b, ldb, ci, ldc, alpha); break;
    case 3: gemm_tile<T, 3, Cols, Accumulate>(n, K, ai, a_rows, a_cols, b, ldb, ci, ldc, alpha); break;
    case 2: gemm_tile<T, 2, Cols, Accumulate>(n, K, ai, a_rows, a_cols, b, ldb, ci, ldc, alpha); break;
    case 1: gemm_tile<T, 1, Cols, Accumulate>(n, K, ai, a_rows, a_cols, b, ldb, ci, ldc, alpha); break;
    default: break;
  }
}

// The last few columns (n of them, n small) as dot products along k, when A's rows are contiguous: each B column
// is copied into `tail` first, then C[i, j] = Σ_k A[i, k]·B[k, j] runs with the vector lanes along k. A padded
// vector tile would spend a whole FMA lane-row per row and k on one or two useful columns (L = 65 leaves one).
template <bool Accumulate, typename T>
void gemm_dot_columns(int64_t M, int64_t n, int64_t K, T alpha, const T* a, int64_t a_rows, const T* b, int64_t ldb,
                      T* c, int64_t ldc, T* tail) {
  for (int64_t w = 0; w < n; ++w)
    for (int64_t k = 0; k < K; ++k) tail[w * K + k] = b[k * ldb + w];
  for (int64_t i = 0; i < M; ++i) {
    const T* ai = a + i * a_rows;
    for (int64_t w = 0; w < n; ++w) {
      const T* bw = tail + w * K;
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t k = 0; k < K; ++k) dot += ai[k] * bw[k];
      T& out = c[i * ldc + w];
      out = Accumulate ? out + alpha * dot : alpha * dot;
    }
  }
}

// Columns in tiles of two vectors, then one vector; then the last partial vector of columns, either as dot
// products (a few columns, A's rows contiguous) or copied into a zero-padded [K, width] scratch, so that every
// tile runs on full registers. That scratch is half a vector wide when the columns fit: a 256-bit FMA costs half
// of a 512-bit one on cores that split 512-bit work into two halves (Zen 4). `tail` has room for K vectors.
template <bool Accumulate, typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t a_rows, int64_t a_cols, const T* b,
          int64_t ldb, T* c, int64_t ldc, T* tail) {
  constexpr int64_t V = kVector<T>;
  if (K == 0) {  // an empty sum, still scaled: alpha · 0 (NaN for alpha = inf, as the composite's scale · (q kᵀ))
    const T zero = alpha * T(0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = Accumulate ? c[i * ldc + j] + zero : zero;
    return;
  }
  int64_t j = 0;
  for (; j + 2 * V <= N; j += 2 * V)
    gemm_columns<T, 2 * V, Accumulate>(M, 2 * V, K, alpha, a, a_rows, a_cols, b + j, ldb, c + j, ldc);
  if (j + V <= N) {
    gemm_columns<T, V, Accumulate>(M, V, K, alpha, a, a_rows, a_cols, b + j, ldb, c + j, ldc);
    j += V;
  }
  if (j == N) return;
  const int64_t n = N - j;
  if (a_cols == 1 && n <= V / 8) {
    gemm_dot_columns<Accumulate>(M, n, K, alpha, a, a_rows, b + j, ldb, c + j, ldc, tail);
    return;
  }
  const int64_t width = n <= V / 2 ? V / 2 : V;
  for (int64_t k = 0; k < K; ++k) {
    const T* bk = b + k * ldb + j;
    T* tk = tail + k * width;
#pragma omp simd
    for (int64_t w = 0; w < width; ++w) tk[w] = w < n ? bk[w] : T(0);
  }
  if (width == V)
    gemm_columns<T, V, Accumulate>(M, n, K, alpha, a, a_rows, a_cols, tail, V, c + j, ldc);
  else
    gemm_columns<T, V / 2, Accumulate>(M, n, K, alpha, a, a_rows, a_cols, tail, V / 2, c + j, ldc);
}

/// gemm with the accumulate choice made at run time (the first block of a sum overwrites, the others add).
template <typename T>
void gemm_into(bool accumulate, int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t a_rows, int64_t a_cols,
               const T* b, int64_t ldb, T* c, int64_t ldc, T* tail) {
  if (accumulate)
    gemm<true>(M, N, K, alpha, a, a_rows, a_cols, b, ldb, c, ldc, tail);
  else
    gemm<false>(M, N, K, alpha, a, a_rows, a_cols, b, ldb, c, ldc, tail);
}

// ---- geometry ------------------------------------------------------------------------------------------------
// Block sizes: at most kQueryBlock query rows × kKeyBlock keys per tile (≤ 128 KiB of float scores, within L2),
// split evenly so that L = 65 is one block of 65 rather than 64 + a 1-row tail.
constexpr int64_t kQueryBlock = 128, kKeyBlock = 256;
int64_t even_block(int64_t n, int64_t max_block) {
  const int64_t blocks = std::max<int64_t>(1, (n + max_block - 1) / max_block);
  return std::max<int64_t>(1, (n + blocks - 1) / blocks);
}

// Row (b, h, row) of a [B, H, rows, cols] view with unit column stride; T is const for inputs. Outputs are views
// too, so that a caller can have the kernel write q/k/v gradients straight into a packed [N, L, 3, H, d] buffer or
// the output with its heads already merged ([N, L, H, d]).
template <typename T> struct Rows4d {
  T* data;
  int64_t sb, sh, sr;
  Rows4d(const Tensor& t)
      : data(static_cast<T*>(t.data_ptr())), sb(t.stride(0)), sh(t.stride(1)), sr(t.stride(2)) {}
  T* at(int64_t b, int64_t h, int64_t row) const { return data + b * sb + h * sh + row * sr; }
};

// The attention mask, read into a score tile: s[i, j] += mask (float) or s[i, j] = −inf where the pair is not
// allowed (bool, true = takes part).
template <typename T>
void apply_mask(const MaskView& m, int64_t b, int64_t h, int64_t i0, int64_t ni, int64_t j0, int64_t nj, T* s,
                int64_t lds) {
  if (!m.data) return;
  for (int64_t i = 0; i < ni; ++i) {
    const int64_t base = b * m.sb + h * m.sh + (i0 + i) * m.si + j0 * m.sj;
    T* si = s + i * lds;
    if (m.is_bool) {
      const uint8_t* allowed = static_cast<const uint8_t*>(m.data) + base;
#pragma omp simd
      for (int64_t j = 0; j < nj; ++j) si[j] = allowed[j * m.sj] ? si[j] : kNegInf<T>;
    } else {
      const T* add = static_cast<const T*>(m.data) + base;
#pragma omp simd
      for (int64_t j = 0; j < nj; ++j) si[j] += add[j * m.sj];
    }
  }
}

#if defined(__AVX512F__)
// dst[c · dst_stride + r] = src[r · src_stride + c] for a 16 × 16 block of floats, in registers: 16 row loads,
// three rounds of shuffles (32-bit interleave within 128-bit lanes, 64-bit interleave, then two 128-bit lane
// shuffles) and 16 row stores, where an element-wise copy makes a strided access per element. The zero-masking
// forms with every lane selected compile to the plain instructions; the plain intrinsics pass GCC 12 an undefined
// vector that it reports as used uninitialised (-Wuninitialized).
constexpr __mmask16 kAll16 = 0xFFFF;
constexpr __mmask8 kAll8 = 0xFF;
inline void transpose_16x16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 16; i += 2) {  // t[i] = r[i][0] r[i+1][0] r[i][1] r[i+1][1] | … per 128-bit lane
    t[i] = _mm512_maskz_unpacklo_ps(kAll16, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll16, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // each 128-bit lane now holds one column of four rows
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, b, d));
  }
  for (int i = 0; i < 16; i += 8)  // gather the lanes of four-row groups 0–1 and 2–3
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_maskz_shuffle_f32x4(kAll16, r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_maskz_shuffle_f32x4(kAll16, r[i + j], r[i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {  // and of the two halves: r[c] is column c of all 16 rows
    r[j] = _mm512_maskz_shuffle_f32x4(kAll16, t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_maskz_shuffle_f32x4(kAll16, t[j], t[j + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * dst_stride, r[i]);
}
#endif

// kt[e, j] = k[j0 + j, e]: a block of keys (or values) transposed, so that products against it run along rows.
// float on AVX-512 moves whole 16 × 16 blocks in registers (a third of the forward's non-GEMM time went to the
// element-wise copy at L = 65, head dim 64); the rest, element by element: the inner loop runs along the keys
// (contiguous writes, gathered reads), which vectorises.
template <typename T>
void pack_transposed(const T* rows, int64_t row_stride, int64_t n, int64_t width, T* packed) {
  int64_t n_blocked = 0, width_blocked = 0;  // rows [0, n_blocked) × columns [0, width_blocked) done in blocks
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    n_blocked = n / 16 * 16;
    width_blocked = width / 16 * 16;
    for (int64_t j = 0; j < n_blocked; j += 16)
      for (int64_t e = 0; e < width_blocked; e += 16)
        transpose_16x16(rows + j * row_stride + e, row_stride, packed + e * n + j, n);
  }
#endif
  for (int64_t e = 0; e < width; ++e) {
    T* out = packed + e * n;
#pragma omp simd
    for (int64_t j = e < width_blocked ? n_blocked : 0; j < n; ++j) out[j] = rows[j * row_stride + e];
  }
}

// ---- forward -------------------------------------------------------------------------------------------------
// One row of n scores turned in place into p = exp(s − max) / Σ exp(s − max); returns lse = max + log Σ. A row
// with no finite score gets p = 0 and lse = −inf; a NaN score makes the sum NaN and so the whole row.
template <typename T> T softmax_row(T* s, int64_t n) {
  T row_max = kNegInf<T>;
#pragma omp simd reduction(max : row_max)
  for (int64_t j = 0; j < n; ++j) row_max = s[j] > row_max ? s[j] : row_max;
  const T shift = row_max == kNegInf<T> ? T(0) : row_max;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    s[j] = exp_of(s[j] - shift);
    sum += s[j];
  }
  const T inv = sum == T(0) ? T(0) : T(1) / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
  return sum == T(0) ? kNegInf<T> : row_max + std::log(sum);
}

// Probabilities of one block of query rows against all S keys when they fit in one key block (S ≤ kKeyBlock,
// the usual case): each row's max is known before its exponentials, so p = exp(s − max) / Σ exp(s − max) is
// exact in one pass and out = p v is written straight into the output, with no running rescale, no
// unnormalised accumulator and no final division pass. lse = max + log Σ exp(s − max). A row with no finite
// score (all masked) gets p = 0 (out = 0, lse = −inf); a NaN score makes the row's sum NaN and so the whole row.
template <typename T>
void single_block_forward(const Sizes& z, const Rows4d<const T>& q, const Rows4d<const T>& k,
                          const Rows4d<const T>& v, const MaskView& mask, T scale, int64_t b, int64_t h, int64_t i0,
                          int64_t ni, T* kt, T* s, T* tail, const Rows4d<T>& out, T* lse_rows) {
  const int64_t nj = z.S;
  pack_transposed(k.at(b, h, 0), k.sr, nj, z.E, kt);
  gemm<false>(ni, nj, z.E, scale, q.at(b, h, i0), q.sr, int64_t{1}, kt, nj, s, nj, tail);
  apply_mask(mask, b, h, i0, ni, 0, nj, s, nj);
  for (int64_t i = 0; i < ni; ++i) lse_rows[i] = softmax_row(s + i * nj, nj);
  gemm<false>(ni, z.Ev, nj, T(1), s, nj, int64_t{1}, v.at(b, h, 0), v.sr, out.at(b, h, i0), out.sr, tail);
}

// ---- one query row ---------------------------------------------------------------------------------------
// A single query (pooling with one learned query: HopfieldPooling, the MIL models) makes every product a
// matrix–vector one: s = scale·K q, out = Vᵀ p, and in the backward dp = V do, dq = scale·Kᵀ ds, dk = scale·ds qᵀ,
// dv = p doᵀ. They run along the rows of K and V as they lie in memory (dot products and row updates), with no
// transposed copy of K and V, which at one query row costs as much as the products themselves (mil_pool: 32 bags
// × 100 stored patterns × 128), and with the exact softmax in one pass for any number of keys.
template <typename T> T dot(const T* a, const T* b, int64_t n) {
  T d = 0;
#pragma omp simd reduction(+ : d)
  for (int64_t e = 0; e < n; ++e) d += a[e] * b[e];
  return d;
}

// y += alpha · x over n elements
template <typename T> void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) y[e] += alpha * x[e];
}

// The scores of query row 0 of (b, h) against all S keys, scaled and masked, into s[S].
template <typename T>
void single_query_scores(const Sizes& z, const Rows4d<const T>& q, const Rows4d<const T>& k, const MaskView& mask,
                         T scale, int64_t b, int64_t h, T* s) {
  const T* qi = q.at(b, h, 0);
  for (int64_t j = 0; j < z.S; ++j) s[j] = scale * dot(qi, k.at(b, h, j), z.E);
  apply_mask(mask, b, h, 0, 1, 0, z.S, s, z.S);
}

// As single_block_forward, for L = 1: p = exp(s − max) / Σ exp(s − max) (left in s[S]), out = Σ_j p_j v_j,
// lse = max + log Σ.
template <typename T>
void single_query_forward(const Sizes& z, const Rows4d<const T>& q, const Rows4d<const T>& k,
                          const Rows4d<const T>& v, const MaskView& mask, T scale, int64_t b, int64_t h, T* s,
                          const Rows4d<T>& out, T* lse_row) {
  single_query_scores(z, q, k, mask, scale, b, h, s);
  *lse_row = softmax_row(s, z.S);
  T* y = out.at(b, h, 0);
  std::fill_n(y, z.Ev, T(0));
  for (int64_t j = 0; j < z.S; ++j) axpy(s[j], v.at(b, h, j), y, z.Ev);
}

// Per (b, h, block of query rows), over blocks of keys, with running row max m and sum l (Milakov & Gimelshein):
//   s = scale·q kᵀ + mask;  m′ = max(m, max_j s);  p = exp(s − m′);  l = l·e^{m − m′} + Σ_j p;  o = o·e^{m − m′} + p v
// and at the end out = o / l, lse = m + log l. A row with no finite score yet shifts by 0 instead of m′ = −inf, so
// its masked scores give p = e^{−inf} = 0, its sum stays 0 and the row ends as out = 0, lse = −inf; a NaN score
// gives NaN in l and so in the whole row (as the composite softmax).
template <typename T>
void attention_forward(const Sizes& z, const Tensor& q_t, const Tensor& k_t, const Tensor& v_t, const MaskView& mask,
                       T scale, const Tensor& out_t, T* lse, T* weights) {
  const Rows4d<const T> q(q_t), k(k_t), v(v_t);
  const Rows4d<T> out(out_t);
  const int64_t Br = even_block(z.L, kQueryBlock), Bc = even_block(z.S, kKeyBlock);
  const int64_t query_blocks = (z.L + Br - 1) / Br, tasks = z.B * z.H * query_blocks;
  // Spread tasks one by one: each is a whole tile's worth of GEMMs.
  parallel_for(tasks, 2, [&](int64_t lo, int64_t hi) {
    std::vector<T> kt(static_cast<size_t>(z.E * Bc));      // [E, Bc]  keys of the block, transposed
    std::vector<T> s(static_cast<size_t>(std::max(Br * Bc, z.L == 1 ? z.S : 0)));  // [Br, Bc] scores, then p
    std::vector<T> o(static_cast<size_t>(Br * z.Ev));      // [Br, Ev] unnormalised output
    std::vector<T> m(static_cast<size_t>(Br)), l(static_cast<size_t>(Br));
    std::vector<T> tail(static_cast<size_t>(std::max({z.E, Bc, Br}) * kVector<T>));  // gemm's padded columns
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t bh = task / query_blocks, b = bh / z.H, h = bh % z.H;
      const int64_t i0 = (task % query_blocks) * Br, ni = std::min(Br, z.L - i0);
      // The probabilities' tile: the kept weights' rows when asked for (only with one key block), else scratch.
      T* p_tile = weights ? weights + (bh * z.L + i0) * z.S : s.data();
      if (z.L == 1 && z.S > 0) {
        single_query_forward(z, q, k, v, mask, scale, b, h, p_tile, out, lse + bh);
        continue;
      }
      if (z.S > 0 && z.S <= Bc) {
        single_block_forward(z, q, k, v, mask, scale, b, h, i0, ni, kt.data(), p_tile, tail.data(), out,
                             lse + bh * z.L + i0);
        continue;
      }
      std::fill(o.begin(), o.end(), T(0));
      std::fill(m.begin(), m.end(), kNegInf<T>);
      std::fill(l.begin(), l.end(), T(0));
      for (int64_t j0 = 0; j0 < z.S; j0 += Bc) {
        const int64_t nj = std::min(Bc, z.S - j0);
        pack_transposed(k.at(b, h, j0), k.sr, nj, z.E, kt.data());
        gemm<false>(ni, nj, z.E, scale, q.at(b, h, i0), q.sr, int64_t{1}, kt.data(), nj, s.data(), nj, tail.data());
        apply_mask(mask, b, h, i0, ni, j0, nj, s.data(), nj);
        for (int64_t i = 0; i < ni; ++i) {
          T* si = s.data() + i * nj;
          T block_max = kNegInf<T>;
#pragma omp simd reduction(max : block_max)
          for (int64_t j = 0; j < nj; ++j) block_max = si[j] > block_max ? si[j] : block_max;
          const T m_new = std::max(m[i], block_max);
          const T shift = m_new == kNegInf<T> ? T(0) : m_new;
          const T correction = std::exp(m[i] - shift);  // e^{−inf} = 0 on the first live block
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < nj; ++j) {
            si[j] = exp_of(si[j] - shift);
            sum += si[j];
          }
          l[i] = l[i] * correction + sum;
          m[i] = m_new;
          if (correction != T(1)) {
            T* oi = o.data() + i * z.Ev;
#pragma omp simd
            for (int64_t e = 0; e < z.Ev; ++e) oi[e] *= correction;
          }
        }
        gemm<true>(ni, z.Ev, nj, T(1), s.data(), nj, int64_t{1}, v.at(b, h, j0), v.sr, o.data(), z.Ev, tail.data());
      }
      T* lse_rows = lse + bh * z.L + i0;
      for (int64_t i = 0; i < ni; ++i) {
        const T inv = l[i] == T(0) ? T(0) : T(1) / l[i];
        const T* oi = o.data() + i * z.Ev;
        T* yi = out.at(b, h, i0 + i);
#pragma omp simd
        for (int64_t e = 0; e < z.Ev; ++e) yi[e] = oi[e] * inv;
        lse_rows[i] = l[i] == T(0) ? kNegInf<T> : m[i] + std::log(l[i]);
      }
    }
  });
}

// ---- backward ------------------------------------------------------------------------------------------------
// One row of n scores turned in place into the weights the forward formed, p = exp(s − lse): 0 in a row whose
// keys were all masked (lse = −inf).
template <typename T> void weights_from_lse(T* s, int64_t n, T lse) {
  if (lse == kNegInf<T>) {
    std::fill_n(s, n, T(0));
    return;
  }
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) s[j] = exp_of(s[j] - lse);
}

// The backward of single_query_forward for (b, h): p kept by the forward, or from the scores and lse as in the
// general backward, then dp_j = do·v_j, D = Σ_j p_j dp_j, ds_j = p_j (dp_j − D), dq = scale·Σ_j ds_j k_j,
// dk_j = scale·ds_j q, dv_j = p_j do. scratch and dp are [S].
template <typename T>
void single_query_backward(const Sizes& z, const Rows4d<const T>& q, const Rows4d<const T>& k,
                           const Rows4d<const T>& v, const MaskView& mask, T scale, T lse,
                           const Rows4d<const T>& grad_out, const Rows4d<T>& grad_q, const Rows4d<T>& grad_k,
                           const Rows4d<T>& grad_v, int64_t b, int64_t h, const T* kept, T* scratch, T* dp) {
  const T* p = kept;
  if (!kept) {  // recompute the weights
    single_query_scores(z, q, k, mask, scale, b, h, scratch);
    weights_from_lse(scratch, z.S, lse);
    p = scratch;
  }
  const T* do_i = grad_out.at(b, h, 0);
  T D = 0;
  for (int64_t j = 0; j < z.S; ++j) {
    dp[j] = dot(do_i, v.at(b, h, j), z.Ev);
    D += p[j] * dp[j];
  }
  const T* qi = q.at(b, h, 0);
  T* dq = grad_q.at(b, h, 0);
  std::fill_n(dq, z.E, T(0));
  for (int64_t j = 0; j < z.S; ++j) {
    const T ds = p[j] * (dp[j] - D);
    axpy(scale * ds, k.at(b, h, j), dq, z.E);
    T* dk = grad_k.at(b, h, j);
    T* dv = grad_v.at(b, h, j);
    const T dk_scale = scale * ds, pj = p[j];
#pragma omp simd
    for (int64_t e = 0; e < z.E; ++e) dk[e] = dk_scale * qi[e];
#pragma omp simd
    for (int64_t e = 0; e < z.Ev; ++e) dv[e] = pj * do_i[e];
  }
}

// FlashAttention-2's backward, per (b, h), for each block of keys j and each block of query rows i:
//   p = exp(scale·q kᵀ + mask − lse)     (0 in an all-masked row, whose lse is −inf)
//   dv_j += pᵀ do_i,   dp = do_i v_jᵀ,   ds = p ⊙ (dp − D_i)  with D = rowsum(do ⊙ out),
//   dq_i += scale · ds k_j,   dk_j += scale · dsᵀ q_i.
// One task owns a whole (b, h), so dq, dk and dv accumulate without races.
template <typename T>
void attention_backward_kernel(const Sizes& z, const Tensor& q_t, const Tensor& k_t, const Tensor& v_t,
                               const MaskView& mask, T scale, const Tensor& out_t, const T* lse, const T* weights,
                               const Tensor& grad_out_t, const Tensor& grad_q_t, const Tensor& grad_k_t,
                               const Tensor& grad_v_t) {
  const Rows4d<const T> q(q_t), k(k_t), v(v_t), out(out_t), grad_out(grad_out_t);
  const Rows4d<T> grad_q(grad_q_t), grad_k(grad_k_t), grad_v(grad_v_t);
  const int64_t Br = even_block(z.L, kQueryBlock), Bc = even_block(z.S, kKeyBlock);
  // With one key block, D comes from the tile itself, Σ_j p dp = Σ_e do (Σ_j p v) = rowsum(do ⊙ out), instead
  // of a pass over do and out (out was written by the forward long before and is read from memory).
  const bool single_key_block = z.S <= Bc;
  parallel_for(z.B * z.H, 2, [&](int64_t lo, int64_t hi) {
    std::vector<T> kt(static_cast<size_t>(z.E * Bc));   // [E, Bc]  keys of the block, transposed
    std::vector<T> vt(static_cast<size_t>(z.Ev * Bc));  // [Ev, Bc] values of the block, transposed
    const size_t tile = static_cast<size_t>(std::max(Br * Bc, z.L == 1 ? z.S : 0));
    std::vector<T> p(tile);   // [Br, Bc] probabilities, then ds
    std::vector<T> dp(tile);  // [Br, Bc]
    std::vector<T> D(static_cast<size_t>(z.L));
    std::vector<T> tail(static_cast<size_t>(std::max({z.E, z.Ev, Bc, Br}) * kVector<T>));  // gemm's padded columns
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / z.H, h = bh % z.H;
      const T* lse_bh = lse + bh * z.L;
      // dq, dk and dv are written by their first block and accumulated by the others; only a dq or dk with no
      // key or query block at all (S = 0 or L = 0) needs zeros.
      if (z.S == 0)
        for (int64_t i = 0; i < z.L; ++i) std::fill_n(grad_q.at(b, h, i), z.E, T(0));
      if (z.L == 0)
        for (int64_t j = 0; j < z.S; ++j) {
          std::fill_n(grad_k.at(b, h, j), z.E, T(0));
          std::fill_n(grad_v.at(b, h, j), z.Ev, T(0));
        }
      const T* kept_bh = weights ? weights + bh * z.L * z.S : nullptr;  // [L, S] when the forward kept them
      if (z.L == 1 && z.S > 0) {
        single_query_backward(z, q, k, v, mask, scale, lse_bh[0], grad_out, grad_q, grad_k, grad_v, b, h, kept_bh,
                              p.data(), dp.data());
        continue;
      }
      for (int64_t i = 0; i < z.L && !single_key_block; ++i) {
        const T* doi = grad_out.at(b, h, i);
        const T* oi = out.at(b, h, i);
        T d = 0;
#pragma omp simd reduction(+ : d)
        for (int64_t e = 0; e < z.Ev; ++e) d += doi[e] * oi[e];
        D[i] = d;
      }
      for (int64_t j0 = 0; j0 < z.S; j0 += Bc) {
        const int64_t nj = std::min(Bc, z.S - j0);
        if (!kept_bh) pack_transposed(k.at(b, h, j0), k.sr, nj, z.E, kt.data());
        pack_transposed(v.at(b, h, j0), v.sr, nj, z.Ev, vt.data());
        for (int64_t i0 = 0; i0 < z.L; i0 += Br) {
          const int64_t ni = std::min(Br, z.L - i0);
          // The tile's probabilities [ni, nj] (row stride nj): kept by the forward (one key block, so nj = S), or
          // recomputed into p. ds then goes where it does not overwrite kept weights (a retained graph reads them
          // again): into dp, which it replaces element by element.
          const T* pt = kept_bh ? kept_bh + i0 * z.S : p.data();
          if (!kept_bh) {
            gemm<false>(ni, nj, z.E, scale, q.at(b, h, i0), q.sr, int64_t{1}, kt.data(), nj, p.data(), nj,
                        tail.data());
            apply_mask(mask, b, h, i0, ni, j0, nj, p.data(), nj);
            for (int64_t i = 0; i < ni; ++i) weights_from_lse(p.data() + i * nj, nj, lse_bh[i0 + i]);
          }
          T* ds = kept_bh ? dp.data() : p.data();
          const T* do_i = grad_out.at(b, h, i0);
          // dv_j += pᵀ do_i: A = pᵀ, read with swapped strides.
          gemm_into(i0 > 0, nj, z.Ev, ni, T(1), pt, int64_t{1}, nj, do_i, grad_out.sr, grad_v.at(b, h, j0),
                    grad_v.sr, tail.data());
          gemm<false>(ni, nj, z.Ev, T(1), do_i, grad_out.sr, int64_t{1}, vt.data(), nj, dp.data(), nj, tail.data());
          for (int64_t i = 0; i < ni; ++i) {
            const T* pi = pt + i * nj;
            const T* dpi = dp.data() + i * nj;
            T* dsi = ds + i * nj;
            if (single_key_block) {  // the row's p and dp are all here: D = Σ_j p dp (= rowsum(do ⊙ out))
              T d = 0;
#pragma omp simd reduction(+ : d)
              for (int64_t j = 0; j < nj; ++j) d += pi[j] * dpi[j];
              D[i0 + i] = d;
            }
            const T Di = D[i0 + i];
#pragma omp simd
            for (int64_t j = 0; j < nj; ++j) dsi[j] = pi[j] * (dpi[j] - Di);
          }
          gemm_into(j0 > 0, ni, z.E, nj, scale, ds, nj, int64_t{1}, k.at(b, h, j0), k.sr, grad_q.at(b, h, i0),
                    grad_q.sr, tail.data());
          gemm_into(i0 > 0, nj, z.E, ni, scale, ds, int64_t{1}, nj, q.at(b, h, i0), q.sr, grad_k.at(b, h, j0),
                    grad_k.sr, tail.data());
        }
      }
    }
  });
}


}  // namespace

// Keeping the weights pays where the backward would recompute them from one key block (S ≤ kKeyBlock: the
// scores' GEMM, the mask and the exponentials, about a third of the backward) and they are small enough to hold
// until it runs (≤ kKeptWeightsBytes, as the composite's weights in ops/attention.cpp). vit_tiny keeps 3.2 MB
// per block, hopfield_attention 2 MB.
constexpr int64_t kKeptWeightsBytes = int64_t{64} << 20;
bool CpuBackend::attention_keeps_weights(int64_t batch_heads, int64_t L, int64_t S, DType dtype) const {
  return S <= kKeyBlock && batch_heads * L * S * static_cast<int64_t>(element_size(dtype)) <= kKeptWeightsBytes;
}

// Without a graph to record, matmul, softmax and matmul (two dnnl_sgemm calls) beat the fused kernel, whose tile
// products run below GEMM speed — measured at 1 thread, 256 queries × 1000 keys of width 784: 7.5 ms against
// 10.7 ms per call — while the weights fit comfortably in memory (≤ 2^24 elements). With a graph the fused kernel
// stays: it keeps at most the weights, where the composite keeps scores and weights and makes more passes.
constexpr int64_t kCompositeMaxElements = int64_t{1} << 24;
bool CpuBackend::attention_prefers_composite(bool records, int64_t batch_heads, int64_t L, int64_t S,
                                             DType dtype) const {
  (void)dtype;
  return !records && batch_heads * L * S <= kCompositeMaxElements;
}

namespace {
void check_kept_weights(const char* kernel, const Tensor* weights, const Sizes& z, const Tensor& q) {
  if (!weights) return;
  HG_CHECK(weights->is_contiguous() && weights->dtype() == q.dtype() &&
               weights->sizes() == Shape({z.B, z.H, z.L, z.S}) && z.S <= kKeyBlock,
           "{} kernel: the kept weights must be contiguous [B, H, L, S] = [{}, {}, {}, {}] {} with S ≤ {}, got {}",
           kernel, z.B, z.H, z.L, z.S, q.dtype(), kKeyBlock, weights->desc());
}
}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale,
                           Tensor& out, Tensor& lse, Tensor* weights) {
  hg::detail::check_attention_kernel("attention", q, k, v, mask, {&out}, lse);
  const Sizes z = attention_sizes(q, k, v);
  check_kept_weights("attention", weights, z, q);
  // Not out.numel(): with a value head dim of 0 the output is empty but lse and the kept weights are not, and
  // the backward reads them.
  if (lse.numel() == 0) return;
  HG_DISPATCH_FLOATING(q.dtype(), "attention", [&] {
    attention_forward<scalar_t>(z, q, k, v, mask_view(mask), static_cast<scalar_t>(scale), out,
                                lse.data_ptr<scalar_t>(), weights ? weights->data_ptr<scalar_t>() : nullptr);
  });
}

void CpuBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                                    double scale, const Tensor& out, const Tensor& lse, const Tensor* weights,
                                    const Tensor& grad_out, Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) {
  hg::detail::check_attention_kernel("attention_backward", q, k, v, mask,
                                     {&out, &grad_out, &grad_q, &grad_k, &grad_v}, lse);
  const Sizes z = attention_sizes(q, k, v);
  check_kept_weights("attention_backward", weights, z, q);
  HG_DISPATCH_FLOATING(q.dtype(), "attention_backward", [&] {
    attention_backward_kernel<scalar_t>(z, q, k, v, mask_view(mask), static_cast<scalar_t>(scale), out,
                                        lse.data_ptr<scalar_t>(),
                                        weights ? weights->data_ptr<scalar_t>() : nullptr, grad_out, grad_q,
                                        grad_k, grad_v);
  });
}

}  // namespace hg::cpu
