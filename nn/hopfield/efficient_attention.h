#pragma once
// Association in sub-quadratic memory (Hu et al., nonparametric modern Hopfield models): attention restricted
// to a sliding window, linear attention, and random-feature attention. None of them forms the [L, S] weight
// matrix; each runs on any backend (written with hg ops) and is differentiable (twice).
//
//   auto out  = hg::nn::window_attention(q, k, v, /*window=*/4, beta);                    // O(L·w)
//   auto lin  = hg::nn::kernel_attention(hg::nn::elu_feature_map(q), hg::nn::elu_feature_map(k), v);
//   hg::Generator gen(0);
//   auto w    = hg::nn::orthogonal_random_features(/*m=*/64, /*d=*/q.size(-1), gen);
//   auto favor = hg::nn::kernel_attention(hg::nn::positive_random_features(q, w, true),
//                                         hg::nn::positive_random_features(k, w, false), v);  // ≈ softmax(q kᵀ) v
//
// Shapes: q [..., L, d], k [..., S, d], v [..., S, dv] with broadcastable leading dims; key_padding_mask bool
// [S] or [..., 1, S] (true = padded key, excluded; a [B, S] mask is passed as mask.view({B, 1, 1, S}) for
// [B, H, L, d] inputs). A query whose every key is excluded gets a zero output, never NaN.
#include <cstdint>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>

namespace hg::nn {

/// Sliding-window (Longformer-like) association: query i sees the keys j with |i − j| ≤ w,
///   out_i = Σ_{|i−j|≤w} softmax_j(β q_i·k_j) v_j
/// in O(L·w·d) memory (the band, never the [L, S] matrix). Meant for self-association (L = S) but defined for
/// any L and S (keys past the end are simply absent; no divisibility requirement). `beta` is a scalar tensor
/// or broadcastable to [..., 1, 1] (per head). `band_weights`, when not null, receives the band weights
/// [..., L, 2w′+1] with w′ = min(w, max(L, S) − 1) (wider bands hold nothing more): entry (i, w′ + o) is the
/// weight of key i + o, 0 when that key is excluded or outside [0, S).
Tensor window_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, const Tensor& beta,
                        const Tensor& key_padding_mask = {}, Tensor* band_weights = nullptr);

/// The band as a dense bool exclusion mask [L, S] (true where |i − j| > w), for the O(L·S) path a separation
/// takes when the weights themselves are wanted (inspection, iterated Hopfield updates).
Tensor window_mask(int64_t L, int64_t S, int64_t window, Device device);

/// Kernelised association with feature maps already applied (LinearHopfieldCore):
///   out_s = φ(q_s)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_s)·Σ_j φ(k_j) + eps)   in O((L + S)·m·dv) time and
/// O((L + S)·m + m·dv) memory; φ(q) [..., L, m], φ(k) [..., S, m], features ≥ 0.
/// Padded keys have their φ(k) zeroed (the reference zeroes the valid ones instead, a bug not reproduced).
/// The reference adds eps to every component of Σ_j φ(k_j), i.e. eps·Σ_m φ(q_s)_m to the denominator; here
/// it is added once, so a query with no allowed key gets 0 / eps = 0 whatever its features (a difference of
/// order eps, below float32 resolution).
Tensor kernel_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, const Tensor& key_padding_mask = {},
                        double eps = 1e-6);

/// φ(x) = elu(x) + 1 (Katharopoulos et al.): linear attention is kernel_attention(φ(q), φ(k), v).
Tensor elu_feature_map(const Tensor& x);

/// m × d projection of stacked orthogonal blocks (Choromanski et al., FAVOR+): each block is the Q of the QR
/// decomposition of a d × d N(0, 1) matrix (its columns become the block's rows; signs fixed so that
/// diag(R) > 0, which makes Q exactly Haar-distributed), each row rescaled by the norm of an independent
/// N(0, I_d) vector, so every row is marginally N(0, I_d). When d does not divide m, the last block gives its
/// first m mod d rows. The blocks are drawn first, then the norms, all on the CPU from `gen` in float64;
/// returned as float32 on `device`.
Tensor orthogonal_random_features(int64_t m, int64_t d, Generator& gen, Device device = Device::cpu());

/// Positive random features for the softmax kernel exp(x·y) (FAVOR+): with ω_r the rows of `projection` [m, d],
///   φ(x)_r = exp(ω_r·x − ‖x‖²/2 − c) / √m,   E_ω[φ(x)·φ(y)] = exp(x·y − c_x − c_y)   (ω ~ N(0, I_d)).
/// The stabiliser c is the largest exponent ω_r·x − ‖x‖²/2 of each row for queries (is_query) and the largest
/// over all rows and features of the slice [n, m] for keys: a per-query constant and a per-key-set constant
/// cancel between numerator and denominator of kernel_attention, so the association is unchanged, the largest
/// feature is exactly 1/√m and nothing overflows. (The Performer code subtracts the max of ω_r·x alone and adds
/// 1e-4 to every feature; that epsilon biases the estimate and is not kept.) c is part of φ, so its gradient is
/// exact; in the association it contributes nothing. x [..., n, d] → [..., n, m], same dtype as `projection`.
/// For keys, `key_padding_mask` (true = excluded, broadcastable to [..., 1, n]) leaves the excluded keys out of c:
/// a zero-padded key, whose exponent is 0, would otherwise set c for keys of large norm and underflow their
/// features to 0 (and the association with them).
Tensor positive_random_features(const Tensor& x, const Tensor& projection, bool is_query,
                                const Tensor& key_padding_mask = Tensor());

/// ReLU random features of the nonparametric reference (its 'favor' mode): φ(x) = relu(d^{-1/4} x ωᵀ) + 1e-3,
/// `projection` [m, d]; x [..., n, d] → [..., n, m]. A kernel of its own, not an estimate of exp(x·y).
Tensor relu_random_features(const Tensor& x, const Tensor& projection);

}  // namespace hg::nn
