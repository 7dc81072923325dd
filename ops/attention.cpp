// Fused scaled-dot-product attention: checks, the broadcasting of batch dims into the backend's [B, H, rows, cols]
// views, the fused forward and backward kernels (ops/cpu/attention.cpp, ops/cuda/attention.cu), the composite
// (matmul, softmax, matmul as ops) where hg::AttentionImpl or the backend chooses it, and a composite backward
// written with ops for when a gradient must itself be differentiable.
#include <atomic>
#include <cmath>
#include <limits>

#include <hopgrad/autograd/function.h>
#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

/// `t` [..., rows, cols] broadcast to batch + [rows, cols] and viewed as the backend's [B, H, rows, cols]: batch
/// dims beyond two are merged into B (a copy when their strides do not allow a view), and a last dim that is not
/// unit-strided is made so.
Tensor as_4d(const Tensor& t, const Shape& batch, int64_t rows, int64_t cols) {
  Shape full = batch;
  full.push_back(rows);
  full.push_back(cols);
  Tensor x = t.expand(full);
  if (batch.size() > 2) {
    int64_t merged = 1;
    for (size_t d = 0; d + 1 < batch.size(); ++d) merged *= batch[d];
    x = x.reshape({merged, batch[batch.size() - 1], rows, cols});
  }
  while (x.dim() < 4) x = x.unsqueeze(0);
  if (cols > 1 && x.stride(3) != 1) x = x.contiguous();
  return x;
}

/// A [B, H, rows, cols] result back in the op's shape batch + [rows, cols].
Tensor from_4d(const Tensor& t, const Shape& batch) {
  Shape full = batch;
  full.push_back(t.size(2));
  full.push_back(t.size(3));
  return t.reshape(full);
}

/// The op's operands, checked, as the backend's 4-D views.
struct Operands {
  Shape batch;            ///< the broadcast batch dims of query, key, value and mask
  Tensor q, k, v, mask;   ///< [B, H, L, E], [B, H, S, E], [B, H, S, Ev], [B, H, L, S] or undefined
};

/// `detach`: views of the detached tensors (for the kernels); otherwise of the tensors themselves, differentiable.
Operands operands(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                  bool detach = true) {
  const int64_t L = query.size(-2), S = key.size(-2), E = query.size(-1), Ev = value.size(-1);
  auto leading = [](const Tensor& t) { return Shape(IntArrayRef(t.sizes().begin(), static_cast<size_t>(t.dim() - 2))); };
  auto input = [detach](const Tensor& t) { return detach ? t.detach() : t; };
  Operands ops;
  ops.batch = broadcast_shapes(broadcast_shapes(leading(query), leading(key), kOp), leading(value), kOp);
  if (attn_mask.defined() && attn_mask.dim() > 2) ops.batch = broadcast_shapes(ops.batch, leading(attn_mask), kOp);
  ops.q = as_4d(input(query), ops.batch, L, E);
  ops.k = as_4d(input(key), ops.batch, S, E);
  ops.v = as_4d(input(value), ops.batch, S, Ev);
  if (attn_mask.defined()) ops.mask = as_4d(input(attn_mask), ops.batch, L, S);
  return ops;
}

std::atomic<AttentionImpl> g_attention_impl{AttentionImpl::Auto};

/// Whether a call takes the composite (matmul, softmax, matmul as ops): as set (hg::set_attention_impl), or under
/// Auto as the backend finds faster for batch_heads × [L, S] weights.
bool takes_composite(bool records, Device device, int64_t batch_heads, int64_t L, int64_t S, DType dtype) {
  switch (attention_impl()) {
    case AttentionImpl::Fused: return false;
    case AttentionImpl::Composite: return true;
    case AttentionImpl::Auto: break;
  }
  return backend_for(device).attention_prefers_composite(records, batch_heads, L, S, dtype);
}

/// The [B, H, L, S] weights the fused forward keeps for the backward when a graph is recorded and the backend
/// finds that it pays (Backend::attention_keeps_weights); otherwise undefined, and the backward recomputes them.
Tensor weights_to_keep(const Backend& backend, bool records, int64_t B, int64_t H, int64_t L, int64_t S,
                       const Tensor& like) {
  if (!records || !backend.attention_keeps_weights(B * H, L, S, like.dtype())) return Tensor();
  return empty({B, H, L, S}, like.dtype(), like.device());
}

/// softmax(q kᵀ·scale + mask) over the keys, with ops (differentiable; all-masked rows give zeros).
Tensor composite_weights(const Tensor& q, const Tensor& k, const Tensor& mask, double scale) {
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), scale);
  if (mask.defined())
    scores = mask.dtype() == kBool ? masked_fill(scores, logical_not(mask), -std::numeric_limits<double>::infinity())
                                   : add(scores, mask);
  return softmax(scores, -1);
}

/// The backward as a composite of ops, which recomputes the [L, S] weights P and can be differentiated again:
///   dP = G vᵀ,  dS = P ⊙ (dP − Σ_s dP ⊙ P),  ∂L/∂q = dS k·scale,  ∂L/∂k = dSᵀ q·scale,  ∂L/∂v = Pᵀ G,
/// and dS itself is the gradient of a float mask added to the scores. Returns {∂q, ∂k, ∂v, dS}.
Tensors composite_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& g,
                           double scale) {
  const Tensor p = composite_weights(q, k, mask, scale);
  const Tensor dp = matmul(g, v.transpose(-2, -1));
  const Tensor ds = mul(p, sub(dp, sum(mul(dp, p), {-1}, /*keepdim=*/true)));
  return {mul(matmul(ds, k), scale), mul(matmul(ds.transpose(-2, -1), q), scale), matmul(p.transpose(-2, -1), g),
          ds};
}

}  // namespace

// y = softmax(q kᵀ·scale + mask) v   (per batch entry; the [L, S] weights are stored only where the backend keeps
// them for the backward: short key rows on the CPU)
// with P the weights, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dP = g vᵀ:
// ∂L/∂q = dS k·scale,  ∂L/∂k = dSᵀ q·scale,  ∂L/∂v = Pᵀ g,  ∂L/∂mask = dS (float mask)
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask, std::optional<double> scale) {
  HG_CHECK(query.defined() && key.defined() && value.defined(), "{}: query, key and value must be defined", kOp);
  HG_CHECK(is_floating(query.dtype()) && key.dtype() == query.dtype() && value.dtype() == query.dtype(),
           "{}: query, key and value must share one floating dtype, got query {}, key {}, value {}", kOp,
           query.desc(), key.desc(), value.desc());
  HG_CHECK(key.device() == query.device() && value.device() == query.device() &&
               (!attn_mask.defined() || attn_mask.device() == query.device()),
           "{}: all inputs must be on one device, got query {}, key {}, value {}{}", kOp, query.desc(), key.desc(),
           value.desc(), attn_mask.defined() ? fmt::format(", attn_mask {}", attn_mask.desc()) : "");
  HG_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2 && key.size(-1) == query.size(-1) &&
               value.size(-2) == key.size(-2),
           "{}: expected query [..., L, E], key [..., S, E] and value [..., S, Ev], got query {}, key {}, value {}",
           kOp, query.desc(), key.desc(), value.desc());
  const int64_t L = query.size(-2), S = key.size(-2), E = query.size(-1);
  if (attn_mask.defined()) {
    HG_CHECK(attn_mask.dtype() == kBool || attn_mask.dtype() == query.dtype(),
             "{}: attn_mask must be bool (true = the pair takes part) or the query's dtype {} (added to the "
             "scores), got {}",
             kOp, query.dtype(), attn_mask.desc());
    HG_CHECK(attn_mask.dim() >= 1 && (attn_mask.size(-1) == S || attn_mask.size(-1) == 1) &&
                 (attn_mask.dim() < 2 || attn_mask.size(-2) == L || attn_mask.size(-2) == 1),
             "{}: attn_mask must broadcast to the scores [..., L = {}, S = {}], got {}", kOp, L, S, attn_mask.desc());
  }
  const double scale_value = scale.value_or(1.0 / std::sqrt(static_cast<double>(E)));
  // A 1-D mask is a row over the keys.
  const Tensor mask = attn_mask.defined() && attn_mask.dim() == 1 ? attn_mask.unsqueeze(0) : attn_mask;
  const Operands ops = operands(query, key, value, mask);

  const Tensor float_mask = mask.defined() && mask.dtype() != kBool ? mask : Tensor();
  const bool records = any_requires_grad({&query, &key, &value, &float_mask});
  if (takes_composite(records, query.device(), ops.q.size(0) * ops.q.size(1), L, S, query.dtype())) {
    // With a graph to record, on the operands themselves (not detached), so that autograd sees the ops.
    const Operands o = records ? operands(query, key, value, mask, /*detach=*/false) : ops;
    return from_4d(matmul(composite_weights(o.q, o.k, o.mask, scale_value), o.v), ops.batch);
  }

  Backend& backend = backend_for(query.device());
  Tensor out = empty({ops.q.size(0), ops.q.size(1), L, ops.v.size(3)}, query.dtype(), query.device());
  Tensor lse = empty({ops.q.size(0), ops.q.size(1), L}, query.dtype(), query.device());
  Tensor weights = weights_to_keep(backend, records, ops.q.size(0), ops.q.size(1), L, S, query);
  backend.attention(ops.q, ops.k, ops.v, ops.mask.defined() ? &ops.mask : nullptr, scale_value, out, lse,
                    weights.defined() ? &weights : nullptr);
  Tensor result = from_4d(out, ops.batch);

  if (records) {
    record_op(kOp, {query, key, value, float_mask}, result,
              [sq = SavedTensor(query), sk = SavedTensor(key), sv = SavedTensor(value), smask = SavedTensor(mask),
               sout = SavedTensor(result, true), lse, weights, scale_value](const Tensors& g,
                                                                            const BackwardContext& ctx) {
                const Tensor q = sq.unpack(ctx), k = sk.unpack(ctx), v = sv.unpack(ctx);
                const Tensor m = smask.defined() ? smask.unpack(ctx) : Tensor();
                if (!GradMode::is_enabled() && !ctx.needs_input_grad(3)) {
                  // The fused backward: the weights kept by the forward, or recomputed tile by tile from the saved
                  // log-sum-exp.
                  const Operands o = operands(q, k, v, m);
                  const Tensor out4 = sout.unpack(ctx).detach().reshape(
                      {o.q.size(0), o.q.size(1), o.q.size(2), o.v.size(3)});
                  const Tensor grad4 = as_4d(g[0], o.batch, o.q.size(2), o.v.size(3));  // read through strides
                  Tensor gq = empty(o.q.sizes(), q.dtype(), q.device());
                  Tensor gk = empty(o.k.sizes(), q.dtype(), q.device());
                  Tensor gv = empty(o.v.sizes(), q.dtype(), q.device());
                  backend_for(q.device()).attention_backward(o.q, o.k, o.v, o.mask.defined() ? &o.mask : nullptr,
                                                             scale_value, out4, lse,
                                                             weights.defined() ? &weights : nullptr, grad4, gq, gk,
                                                             gv);
                  return Tensors{from_4d(gq, o.batch), from_4d(gk, o.batch), from_4d(gv, o.batch), Tensor()};
                }
                // Differentiable (create_graph) or a float mask that needs its gradient: the composite formula.
                Tensors grads = composite_backward(q, k, v, m, g[0], scale_value);
                if (!m.defined() || m.dtype() == kBool) grads[3] = Tensor();
                return grads;
              });
  }
  return result;
}

namespace {

constexpr const char* kPackedOp = "scaled_dot_product_attention_qkvpacked";

/// t's sizes without its last `drop` dims.
Shape leading_sizes(const Tensor& t, int64_t drop) {
  return Shape(IntArrayRef(t.sizes().begin(), static_cast<size_t>(t.dim() - drop)));
}

/// Part `part` of a packed [B, L, parts·H·d] tensor (unit stride along its last dim) as the backend's [B, H, L, d]
/// view: no copy, so the kernel reads and writes the packed memory itself.
Tensor heads_of(const Tensor& packed, int64_t part, int64_t heads, int64_t d) {
  return packed.narrow(2, part * heads * d, heads * d)
      .view({packed.size(0), packed.size(1), heads, d})
      .permute({0, 2, 1, 3});
}

/// The same split with ops on the op's own shape [..., L, 3·H·d] (differentiable): part as [..., H, L, d].
Tensor split_heads(const Tensor& qkv, int64_t part, int64_t heads, int64_t d) {
  Shape shape = leading_sizes(qkv, 1);
  shape.push_back(heads);
  shape.push_back(d);
  return qkv.narrow(-1, part * heads * d, heads * d).reshape(shape).transpose(-3, -2);
}

/// [..., H, L, d] → [..., L, H·d] (differentiable).
Tensor merge_heads(const Tensor& t) {
  Shape shape = leading_sizes(t, 3);
  shape.push_back(t.size(-2));
  shape.push_back(t.size(-3) * t.size(-1));
  return t.transpose(-3, -2).reshape(shape);
}

}  // namespace

// y = merge_h softmax(q_h k_hᵀ·scale + mask) v_h  with [q | k | v] = qkv split along its last dim
// ∂L/∂qkv = [merge_h ∂L/∂q_h | merge_h ∂L/∂k_h | merge_h ∂L/∂v_h] (the formulas of scaled_dot_product_attention),
// ∂L/∂mask = dS (float mask)
Tensor scaled_dot_product_attention_qkvpacked(const Tensor& qkv, int64_t num_heads, const Tensor& attn_mask,
                                              std::optional<double> scale) {
  HG_CHECK(qkv.defined() && is_floating(qkv.dtype()) && qkv.dim() >= 2,
           "{}: expected a floating qkv [..., L, 3·H·d], got {}", kPackedOp, qkv.defined() ? qkv.desc() : "undefined");
  HG_CHECK(num_heads > 0 && qkv.size(-1) > 0 && qkv.size(-1) % (3 * num_heads) == 0,
           "{}: the last dim of qkv {} must be 3 · num_heads · head dim with num_heads = {} (a positive multiple of "
           "{})",
           kPackedOp, qkv.desc(), num_heads, 3 * num_heads);
  const int64_t L = qkv.size(-2), d = qkv.size(-1) / (3 * num_heads), E = num_heads * d;
  const Shape leading = leading_sizes(qkv, 2);
  Shape batch = leading;  // the mask's batch dims: qkv's and the heads
  batch.push_back(num_heads);
  if (attn_mask.defined()) {
    HG_CHECK(attn_mask.device() == qkv.device(), "{}: attn_mask {} must be on qkv's device {}", kPackedOp,
             attn_mask.desc(), qkv.device());
    HG_CHECK(attn_mask.dtype() == kBool || attn_mask.dtype() == qkv.dtype(),
             "{}: attn_mask must be bool (true = the pair takes part) or qkv's dtype {} (added to the scores), got {}",
             kPackedOp, qkv.dtype(), attn_mask.desc());
    Shape scores = batch;
    scores.push_back(L);
    scores.push_back(L);
    bool broadcasts = attn_mask.dim() <= static_cast<int64_t>(scores.size());
    for (int64_t i = 1; broadcasts && i <= attn_mask.dim(); ++i)
      broadcasts = attn_mask.size(-i) == 1 || attn_mask.size(-i) == scores[scores.size() - static_cast<size_t>(i)];
    HG_CHECK(broadcasts,
             "{}: attn_mask {} must broadcast to the scores [..., H = {}, L = {}, L = {}] of qkv {}", kPackedOp,
             attn_mask.desc(), num_heads, L, L, qkv.desc());
  }
  const double scale_value = scale.value_or(1.0 / std::sqrt(static_cast<double>(d)));
  const Tensor float_mask = attn_mask.defined() && attn_mask.dtype() != kBool ? attn_mask : Tensor();
  const bool records = any_requires_grad({&qkv, &float_mask});

  int64_t B = 1;  // the batch dims merged into one
  for (int64_t n : leading) B *= n;
  if (takes_composite(records, qkv.device(), B * num_heads, L, L, qkv.dtype())) {
    // On qkv's own heads (differentiable views), so that autograd sees the ops when a graph is recorded.
    const Tensor q = split_heads(qkv, 0, num_heads, d), k = split_heads(qkv, 1, num_heads, d),
                 v = split_heads(qkv, 2, num_heads, d);
    return merge_heads(matmul(composite_weights(q, k, attn_mask, scale_value), v));
  }

  // The kernel's operands: qkv as [B, L, 3E] and the mask as [B, H, L, L] (views where the strides allow).
  const auto packed_operands = [B, L, E](const Tensor& t) {
    Tensor x = t.detach().reshape({B, L, 3 * E});
    return x.stride(2) == 1 || 3 * E == 1 ? x : x.contiguous();
  };
  const Tensor qkv3 = packed_operands(qkv);
  const Tensor mask4 = attn_mask.defined() ? as_4d(attn_mask.detach(), batch, L, L) : Tensor();
  const Tensor q4 = heads_of(qkv3, 0, num_heads, d), k4 = heads_of(qkv3, 1, num_heads, d),
               v4 = heads_of(qkv3, 2, num_heads, d);
  Shape out_shape = leading;
  out_shape.push_back(L);
  out_shape.push_back(E);

  Tensor out = empty(out_shape, qkv.dtype(), qkv.device());
  Tensor lse = empty({B, num_heads, L}, qkv.dtype(), qkv.device());
  Tensor out4 = heads_of(out.view({B, L, E}), 0, num_heads, d);  // the heads merged as the kernel writes them
  Backend& backend = backend_for(qkv.device());
  Tensor weights = weights_to_keep(backend, records, B, num_heads, L, L, qkv);
  backend.attention(q4, k4, v4, mask4.defined() ? &mask4 : nullptr, scale_value, out4, lse,
                    weights.defined() ? &weights : nullptr);

  if (records) {
    record_op(kPackedOp, {qkv, float_mask}, out,
              [sqkv = SavedTensor(qkv), smask = SavedTensor(attn_mask), sout = SavedTensor(out, true), lse, weights,
               num_heads, d, B, L, scale_value, packed_operands](const Tensors& g, const BackwardContext& ctx) {
                const Tensor packed = sqkv.unpack(ctx);
                const Tensor m = smask.defined() ? smask.unpack(ctx) : Tensor();
                const int64_t E = num_heads * d;
                if (!GradMode::is_enabled() && !ctx.needs_input_grad(1)) {
                  // The fused backward, writing q's, k's and v's gradients into their places in one [B, L, 3E].
                  Shape batch = leading_sizes(packed, 2);
                  batch.push_back(num_heads);
                  const Tensor qkv3 = packed_operands(packed);
                  const Tensor mask4 = m.defined() ? as_4d(m.detach(), batch, L, L) : Tensor();
                  Tensor grad_out = g[0].reshape({B, L, E});
                  if (E > 1 && grad_out.stride(2) != 1) grad_out = grad_out.contiguous();
                  Tensor grad = empty({B, L, 3 * E}, packed.dtype(), packed.device());
                  Tensor gq = heads_of(grad, 0, num_heads, d), gk = heads_of(grad, 1, num_heads, d),
                         gv = heads_of(grad, 2, num_heads, d);
                  backend_for(packed.device())
                      .attention_backward(heads_of(qkv3, 0, num_heads, d), heads_of(qkv3, 1, num_heads, d),
                                          heads_of(qkv3, 2, num_heads, d), mask4.defined() ? &mask4 : nullptr,
                                          scale_value,
                                          heads_of(sout.unpack(ctx).detach().view({B, L, E}), 0, num_heads, d),
                                          lse, weights.defined() ? &weights : nullptr,
                                          heads_of(grad_out, 0, num_heads, d), gq, gk, gv);
                  return Tensors{grad.reshape(packed.sizes()), Tensor()};
                }
                // Differentiable (create_graph) or a float mask that needs its gradient: the composite formulas of
                // scaled_dot_product_attention per head, then the three gradients side by side again.
                const Tensor q = split_heads(packed, 0, num_heads, d), k = split_heads(packed, 1, num_heads, d),
                             v = split_heads(packed, 2, num_heads, d);
                Shape heads_shape = leading_sizes(packed, 2);
                heads_shape.push_back(L);
                heads_shape.push_back(num_heads);
                heads_shape.push_back(d);
                const Tensor grad_heads = g[0].reshape(heads_shape).transpose(-3, -2);  // [..., H, L, d]
                const Tensors grads = composite_backward(q, k, v, m, grad_heads, scale_value);
                const Tensor grad = cat({merge_heads(grads[0]), merge_heads(grads[1]), merge_heads(grads[2])}, -1);
                return Tensors{grad, m.defined() && m.dtype() != kBool ? grads[3] : Tensor()};
              });
  }
  return out;
}

void set_attention_impl(AttentionImpl impl) {
  HG_CHECK(impl == AttentionImpl::Auto || impl == AttentionImpl::Fused || impl == AttentionImpl::Composite,
           "set_attention_impl: unknown AttentionImpl {}", static_cast<int>(impl));
  g_attention_impl.store(impl);
}

AttentionImpl attention_impl() { return g_attention_impl.load(); }

}  // namespace hg
