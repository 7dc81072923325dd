#pragma once
// Association in sub-quadratic memory (Hu et al., nonparametric modern Hopfield models): attention restricted
// to a sliding window, linear attention, and random-feature attention. None of them forms the [L, S] weight
// matrix; each runs on any backend (written with hg ops) and is differentiable.
//
// Shapes: q [..., L, d], k [..., S, d], v [..., S, dv] with the same (broadcastable) leading dims;
// key_padding_mask bool, broadcastable to [..., 1, S], true = padded key (excluded). A query whose every key is
// excluded gets a zero output, never NaN.
#include <cstdint>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>

namespace hg::nn {

/// Sliding-window (Longformer-like) association for self-association (L = S):
///   out_i = Σ_{|i−j|≤w} softmax_j(β q_i·k_j) v_j
/// in O(L·w) memory (the band, never the full [L, S] matrix). `beta` is a scalar tensor or broadcastable to
/// [..., 1, 1] (per head). `band_weights`, when not null, receives the band weights [..., L, 2w+1] (entry
/// (i, w + o) is the weight of key i + o; outside [0, S) it is 0).
Tensor window_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window, const Tensor& beta,
                        const Tensor& key_padding_mask = {}, Tensor* band_weights = nullptr);

/// The band as a dense bool exclusion mask [L, S] (true where |i − j| > w), for the O(L·S) path a separation
/// takes when the weights themselves are wanted (inspection, iterated Hopfield updates).
Tensor window_mask(int64_t L, int64_t S, int64_t window, Device device);

/// Kernelised association with feature maps already applied (LinearHopfieldCore):
///   out_s = φ(q_s)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_s)·Σ_j φ(k_j) + eps)   in O(L·m·dv) time and O((L + S)·m) memory.
/// Padded keys have their φ(k) zeroed (the reference zeroes the valid ones instead; that quirk is not kept).
Tensor kernel_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                        const Tensor& key_padding_mask = {}, double eps = 1e-6);

/// φ(x) = elu(x) + 1 (Katharopoulos et al.): linear attention is kernel_attention(φ(β^½ q), φ(β^½ k), v).
Tensor elu_feature_map(const Tensor& x);

/// m × d projection of stacked orthogonal blocks (Choromanski et al., FAVOR+): each block is the Q of the QR
/// decomposition of a d × d N(0, 1) matrix, each row rescaled by the norm of an independent N(0, I_d) vector.
/// Drawn on the CPU from `gen` in float64, returned as float32 on `device`.
Tensor orthogonal_random_features(int64_t m, int64_t d, Generator& gen, Device device = Device::cpu());

/// Positive random features for the softmax kernel exp(x·y):
///   φ(x) = exp(ω x − ‖x‖²/2 − max) / √m   (the max is subtracted per row for stability, as FAVOR+).
/// `projection` [m, d]; x [..., n, d] → [..., n, m].
Tensor positive_random_features(const Tensor& x, const Tensor& projection, bool is_query);

/// ReLU random features of the nonparametric reference (its 'favor' mode): φ(x) = relu(d^{-1/4} x ωᵀ) + 1e-3.
Tensor relu_random_features(const Tensor& x, const Tensor& projection);

}  // namespace hg::nn
