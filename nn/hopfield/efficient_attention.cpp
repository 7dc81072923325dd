// Association in sub-quadratic memory: sliding window, kernel (linear) and random-feature attention (see
// efficient_attention.h). Everything is composed from hg ops, so it runs on every backend and its gradients,
// and their gradients, come from the ops' own backward formulas.
#include <hopgrad/nn/hopfield/efficient_attention.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <hopgrad/ops/ops.h>

namespace hg::nn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string describe(const Tensor& t) { return t.defined() ? t.desc() : "undefined"; }

Shape leading_dims(const Tensor& t) {
  Shape s = t.sizes();
  s.resize(s.size() - 2);
  return s;
}

// The checks every association here shares: q [..., L, d], k [..., S, d], v [..., S, dv], floating, one dtype,
// one device, broadcastable leading dims. `q_name`/`k_name` are what the message calls q and k (phi_q, phi_k).
void check_association_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const char* q_name,
                              const char* k_name) {
  HG_CHECK(q.defined() && k.defined() && v.defined(), "{}: {}, {} and v must be defined, got {}, {}, {}", op, q_name,
           k_name, describe(q), describe(k), describe(v));
  HG_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2 && q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2),
           "{}: expected {} [..., L, d], {} [..., S, d], v [..., S, dv], got {} {}, {} {}, v {}", op, q_name, k_name,
           q_name, q.sizes(), k_name, k.sizes(), v.sizes());
  HG_CHECK(is_floating(q.dtype()) && q.dtype() == k.dtype() && q.dtype() == v.dtype(),
           "{}: {}, {} and v must share one floating dtype, got {}, {}, {}", op, q_name, k_name, q.desc(), k.desc(),
           v.desc());
  HG_CHECK(q.device() == k.device() && q.device() == v.device(),
           "{}: {}, {} and v are on different devices ({}, {}, {})", op, q_name, k_name, q.desc(), k.desc(), v.desc());
  broadcast_shapes(broadcast_shapes(leading_dims(q), leading_dims(k), op), leading_dims(v), op);
}

// A key padding mask is bool [S] or [..., 1, S] (true = padded key) on the keys' device.
void check_key_padding_mask(const char* op, const Tensor& mask, int64_t S, const Tensor& keys) {
  if (!mask.defined()) return;
  HG_CHECK(mask.dtype() == kBool, "{}: key_padding_mask must be bool (true = padded key), got {}", op, mask.desc());
  HG_CHECK(mask.device() == keys.device(), "{}: key_padding_mask ({}) and the keys ({}) are on different devices", op,
           mask.desc(), keys.desc());
  HG_CHECK(mask.dim() == 0 || ((mask.size(-1) == S || mask.size(-1) == 1) && (mask.dim() == 1 || mask.size(-2) == 1)),
           "{}: key_padding_mask must be [S] or [..., 1, S] with S = {} keys (true = padded key), got {}; a [B, S] "
           "mask for [B, H, L, d] inputs is passed as mask.view({{B, 1, 1, S}})",
           op, S, mask.sizes());
}

// The key padding mask as a column [..., S, 1], one entry per key (the form the key rows are indexed by).
Tensor mask_column(const Tensor& mask, int64_t S) {
  Tensor row = mask.dim() <= 1 ? mask.reshape({1, -1}) : mask;  // [..., 1, S or 1]
  Shape sizes = row.sizes();
  sizes[sizes.size() - 1] = S;
  return row.expand(sizes).transpose(-2, -1);
}

// Keys in overlapping chunks: the rows of x [..., S, c] seen by N chunks of `chunk` consecutive queries through
// a window of half-width w, a view [..., N, chunk + 2w, c] whose entry (n, b) is x[n·chunk + b − w], or `fill`
// where that row falls outside [0, S). It is x padded by w rows before (and enough after) seen with a chunk
// stride of chunk·c; its gradient is summed back onto the rows by as_strided's backward.
Tensor key_chunks(const Tensor& x, int64_t N, int64_t chunk, int64_t w, double fill) {
  const int64_t S = x.size(-2), c = x.size(-1), span = chunk + 2 * w;
  // The last chunk reads padded rows up to N·chunk + 2w − 1.
  Tensor padded = pad(x, {0, 0, w, std::max<int64_t>(0, N * chunk + w - S)}, fill).contiguous();
  Shape sizes = leading_dims(padded), strides = padded.strides();
  strides.resize(strides.size() - 2);
  for (int64_t s : {N, span, c}) sizes.push_back(s);
  for (int64_t s : {chunk * c, c, int64_t{1}}) strides.push_back(s);
  return padded.as_strided(sizes, strides, padded.offset());
}

// [rows, cols], true where key column j (shifted left by `shift`) is over w from query row i: |j − shift − i| > w.
Tensor outside_band(int64_t rows, int64_t cols, int64_t shift, int64_t w, Device device) {
  // Positions are exact in float64 far beyond any size that fits in memory.
  const TensorOptions options = TensorOptions(kFloat64).device(device);
  Tensor i = arange(static_cast<double>(rows), options).unsqueeze(1);
  Tensor j = arange(static_cast<double>(cols), options).unsqueeze(0);
  return abs(j - static_cast<double>(shift) - i) > static_cast<double>(w);
}

void check_projection(const char* op, const Tensor& x, const Tensor& projection) {
  HG_CHECK(x.defined() && projection.defined(), "{}: x and projection must be defined, got {} and {}", op, describe(x),
           describe(projection));
  HG_CHECK(x.dim() >= 2 && projection.dim() == 2 && projection.size(1) == x.size(-1),
           "{}: expected x [..., n, d] and projection [m, d], got x {} and projection {}", op, x.sizes(),
           projection.sizes());
  HG_CHECK(is_floating(x.dtype()) && x.dtype() == projection.dtype(),
           "{}: x and projection must share one floating dtype, got {} and {}; convert the projection with .to()", op,
           x.desc(), projection.desc());
  HG_CHECK(x.device() == projection.device(), "{}: x ({}) and projection ({}) are on different devices", op, x.desc(),
           projection.desc());
}

// Q of A = QR for a square row-major n × n matrix, by Householder reflections, with column k of Q negated where
// R_kk < 0 so that diag(R) > 0: for A with i.i.d. N(0, 1) entries this Q is exactly Haar-distributed
// (Mezzadri 2007), i.e. each of its columns is a uniformly random direction.
std::vector<double> orthogonal_factor(std::vector<double> a, int64_t n) {
  auto at = [n](int64_t i, int64_t j) { return static_cast<size_t>(i * n + j); };
  std::vector<double> q(static_cast<size_t>(n * n), 0.0), v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) q[at(i, i)] = 1.0;
  for (int64_t k = 0; k < n; ++k) {
    double norm = 0.0;
    for (int64_t i = k; i < n; ++i) norm += a[at(i, k)] * a[at(i, k)];
    norm = std::sqrt(norm);
    if (norm == 0.0) continue;  // column already zero below the diagonal (probability 0 for a Gaussian matrix)
    // H = I − 2 v vᵀ / vᵀv with v = x − α e_k maps x = A[k:, k] to α e_k; α = −sign(x_k)‖x‖ avoids cancellation.
    const double alpha = a[at(k, k)] > 0.0 ? -norm : norm;
    double v_norm2 = 0.0;
    for (int64_t i = k; i < n; ++i) {
      v[static_cast<size_t>(i)] = a[at(i, k)] - (i == k ? alpha : 0.0);
      v_norm2 += v[static_cast<size_t>(i)] * v[static_cast<size_t>(i)];
    }
    for (int64_t j = k; j < n; ++j) {  // A ← H A (rows k.. only; the rows above are untouched)
      double dot = 0.0;
      for (int64_t i = k; i < n; ++i) dot += v[static_cast<size_t>(i)] * a[at(i, j)];
      const double f = 2.0 * dot / v_norm2;
      for (int64_t i = k; i < n; ++i) a[at(i, j)] -= f * v[static_cast<size_t>(i)];
    }
    for (int64_t r = 0; r < n; ++r) {  // Q ← Q H
      double dot = 0.0;
      for (int64_t i = k; i < n; ++i) dot += q[at(r, i)] * v[static_cast<size_t>(i)];
      const double f = 2.0 * dot / v_norm2;
      for (int64_t i = k; i < n; ++i) q[at(r, i)] -= f * v[static_cast<size_t>(i)];
    }
  }
  for (int64_t k = 0; k < n; ++k)  // A now holds R
    if (a[at(k, k)] < 0.0)
      for (int64_t r = 0; r < n; ++r) q[at(r, k)] = -q[at(r, k)];
  return q;
}

}  // namespace

// out_i = Σ_{|i−j|≤w} softmax_j(β q_i·k_j) v_j ;  gradients through the chunk views, softmax and the products
//
// Longformer's sliding chunks: the queries are cut into N chunks of `chunk` rows; chunk n needs the keys
// [n·chunk − w, n·chunk + chunk + w), a strided view of the padded keys. One batched product per chunk gives the
// scores [..., N, chunk, chunk + 2w], of which row a keeps the band b − a ∈ [0, 2w]. Memory O(L·(chunk + 2w)) for
// the scores and O(L·d) for the chunked keys and values: with chunk = max(w, 16), O(L·(w + d)), never O(L·S).
Tensor window_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, const Tensor& beta,
                        const Tensor& key_padding_mask, Tensor* band_weights) {
  constexpr const char* op = "window_attention";
  check_association_inputs(op, q, k, v, "q", "k");
  HG_CHECK(window >= 0, "{}: window (the half-width w of the band |i − j| <= w) must be >= 0, got {}", op, window);
  HG_CHECK(beta.defined() && is_floating(beta.dtype()) && beta.device() == q.device(),
           "{}: beta must be a floating tensor on the device of q ({}), got {}", op, q.desc(), describe(beta));
  HG_CHECK(beta.numel() == 1 || (beta.dim() >= 2 && beta.size(-1) == 1 && beta.size(-2) == 1),
           "{}: beta must be a scalar tensor or [..., 1, 1] (one β per head), got {}", op, beta.sizes());
  const int64_t L = q.size(-2), S = k.size(-2);
  check_key_padding_mask(op, key_padding_mask, S, k);
  // Offsets beyond ±(max(L, S) − 1) never reach a key: a wider band would only hold excluded entries.
  const int64_t w = std::min(window, std::max<int64_t>(std::max(L, S) - 1, 0));
  // Chunks of at least 16 queries keep the batched products from degenerating into tiny ones when w is small.
  const int64_t chunk = std::min(std::max<int64_t>(w, 16), std::max<int64_t>(L, 1));
  const int64_t N = (L + chunk - 1) / chunk, span = chunk + 2 * w;

  // β q, padded to N·chunk rows (the extra rows are dropped at the end) and cut into chunks   [..., N, chunk, d]
  Tensor queries = q * beta.to(q.dtype());
  Shape chunked = leading_dims(queries);
  for (int64_t s : {N, chunk, q.size(-1)}) chunked.push_back(s);
  queries = pad(queries, {0, 0, 0, N * chunk - L}).view(chunked);
  // The chunked keys and values are materialised, (1 + 2w/chunk)·L·d ≤ 3·L·d elements: the batched GEMMs take
  // no overlapping batches (oneDNN rejects such strides).
  Tensor keys = key_chunks(k, N, chunk, w, 0.0).contiguous(), values = key_chunks(v, N, chunk, w, 0.0).contiguous();
  // s_nab = β q_{n·chunk+a} · k_{n·chunk+b−w}   [..., N, chunk, span]
  Tensor scores = matmul(queries, keys.transpose(-2, -1));
  // Excluded: pairs off the band, keys outside [0, S) (the chunks' fill) and padded keys; −∞ before the softmax.
  Tensor padded = key_padding_mask.defined() ? mask_column(key_padding_mask, S)
                                             : zeros({S, 1}, TensorOptions(kBool).device(k.device()));
  Tensor excluded = logical_or(outside_band(chunk, span, w, w, q.device()),
                               key_chunks(padded, N, chunk, w, /*fill=*/1.0).transpose(-2, -1));
  Tensor weights = softmax(where(excluded, -kInf, scores), -1);  // a row with no allowed key gives zeros
  if (band_weights) {
    // Row a of a chunk holds its band at columns a .. a + 2w: a skewed view (row stride span + 1) reads it out.
    Tensor dense = weights.contiguous();
    Shape sizes = leading_dims(dense), strides = dense.strides();
    strides.resize(strides.size() - 2);
    for (int64_t s : {chunk, 2 * w + 1}) sizes.push_back(s);
    for (int64_t s : {span + 1, int64_t{1}}) strides.push_back(s);
    *band_weights = dense.as_strided(sizes, strides, dense.offset()).flatten(-3, -2).narrow(-2, 0, L);
  }
  // out_i = Σ_b w_ib v_{n·chunk+b−w}   [..., N·chunk, dv] → the first L rows
  return matmul(weights, values).flatten(-3, -2).narrow(-2, 0, L);
}

Tensor window_mask(int64_t L, int64_t S, int64_t window, Device device) {
  HG_CHECK(L >= 0 && S >= 0 && window >= 0,
           "window_mask: L, S and window must be >= 0, got L = {}, S = {}, window = {}", L, S, window);
  return outside_band(L, S, 0, window, device);
}

// out_s = φ(q_s)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_s)·Σ_j φ(k_j) + eps)
Tensor kernel_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const Tensor& key_padding_mask,
                        double eps) {
  constexpr const char* op = "kernel_attention";
  check_association_inputs(op, phi_q, phi_k, v, "phi_q", "phi_k");
  HG_CHECK(eps >= 0.0, "{}: eps must be >= 0, got {}", op, eps);
  const int64_t S = phi_k.size(-2);
  check_key_padding_mask(op, key_padding_mask, S, phi_k);
  // Padded keys add nothing to either sum.
  Tensor keys = key_padding_mask.defined() ? where(mask_column(key_padding_mask, S), 0.0, phi_k) : phi_k;
  Tensor memory = matmul(keys.transpose(-2, -1), v);            // Σ_j φ(k_j) v_jᵀ   [..., m, dv]
  Tensor normaliser = sum(keys, {-2}, true).transpose(-2, -1);  // Σ_j φ(k_j)        [..., m, 1]
  return matmul(phi_q, memory) / (matmul(phi_q, normaliser) + eps);
}

// φ(x) = elu(x) + 1
Tensor elu_feature_map(const Tensor& x) {
  HG_CHECK(x.defined() && is_floating(x.dtype()), "elu_feature_map: x must be a floating tensor, got {}", describe(x));
  return elu(x) + 1.0;
}

Tensor orthogonal_random_features(int64_t m, int64_t d, Generator& gen, Device device) {
  HG_CHECK(m >= 0 && d >= 1, "orthogonal_random_features: need m >= 0 features of dimension d >= 1, got m = {}, d = {}",
           m, d);
  const TensorOptions host = TensorOptions(kFloat64);
  std::vector<double> rows(static_cast<size_t>(m * d));
  // Block b holds rows [b·d, min((b+1)·d, m)): the first of them are the columns of one Haar-random Q.
  for (int64_t first = 0; first < m; first += d) {
    std::vector<double> q = orthogonal_factor(randn({d, d}, host, &gen).to_vector<double>(), d);
    for (int64_t r = 0; r < std::min(d, m - first); ++r)
      for (int64_t c = 0; c < d; ++c)
        rows[static_cast<size_t>((first + r) * d + c)] = q[static_cast<size_t>(c * d + r)];
  }
  // Row r rescaled to the norm of an independent N(0, I_d) vector: marginally ω_r ~ N(0, I_d), as the estimator needs.
  std::vector<double> gaussian = randn({m, d}, host, &gen).to_vector<double>();
  for (int64_t r = 0; r < m; ++r) {
    double norm2 = 0.0;
    for (int64_t c = 0; c < d; ++c)
      norm2 += gaussian[static_cast<size_t>(r * d + c)] * gaussian[static_cast<size_t>(r * d + c)];
    const double norm = std::sqrt(norm2);
    for (int64_t c = 0; c < d; ++c) rows[static_cast<size_t>(r * d + c)] *= norm;
  }
  return from_vector<double>(rows, {m, d}, host).to(device, kFloat32);
}

// φ(x)_r = exp(ω_r·x − ‖x‖²/2 − c) / √m
Tensor positive_random_features(const Tensor& x, const Tensor& projection, bool is_query,
                                const Tensor& key_padding_mask) {
  check_projection("positive_random_features", x, projection);
  const int64_t m = projection.size(0);
  Tensor exponent = matmul(x, projection.t()) - 0.5 * sum(square(x), {-1}, true);  // [..., n, m]
  if (exponent.numel() == 0) return exponent;
  // c: per query row, or one per slice of keys (the same for every key a query attends to), over the keys that
  // take part.
  Tensor c;
  if (is_query) {
    c = amax(exponent, {-1}, true);
  } else if (key_padding_mask.defined()) {
    const Tensor excluded = key_padding_mask.dim() >= 2 ? key_padding_mask.transpose(-2, -1)  // [..., n, 1]
                                                        : key_padding_mask.unsqueeze(-1);
    c = amax(masked_fill(exponent, excluded, -INFINITY), {-2, -1}, true);
    c = where(eq(c, -INFINITY), 0.0, c);  // every key excluded: any c will do
  } else {
    c = amax(exponent, {-2, -1}, true);
  }
  return exp(exponent - c) * (1.0 / std::sqrt(static_cast<double>(m)));
}

// φ(x) = relu(d^{-1/4} x ωᵀ) + 1e-3
Tensor relu_random_features(const Tensor& x, const Tensor& projection) {
  check_projection("relu_random_features", x, projection);
  const double data_normaliser = std::pow(static_cast<double>(x.size(-1)), -0.25);
  return relu(matmul(x * data_normaliser, projection.t())) + 1e-3;
}

}  // namespace hg::nn
