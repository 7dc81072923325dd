#pragma once
// The CPU backend: oneDNN 2.6 primitives where oneDNN has one (matmul, softmax, layer norm, convolution,
// pooling, large eltwise), OpenMP loops (ops/cpu/loops.h) for the rest. Each op family is one file in ops/cpu/.
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/memory_stats.h>

namespace hg::cpu {

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }
  const char* name() const override { return "cpu"; }

  // memory.cpp
  std::shared_ptr<Storage> allocate(size_t nbytes, Device device) override;
  void copy(const Tensor& src, Tensor& out) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  // random.cpp
  void uniform(Tensor& out, double low, double high, uint64_t seed, uint64_t offset) override;
  void normal(Tensor& out, double mean, double std, uint64_t seed, uint64_t offset) override;
  void randint(Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) override;
  // unary.cpp
  void unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams params) override;
  void gelu_backward(const Tensor& grad_out, const Tensor& x, GeluApproximation approximate,
                     Tensor& grad_x) override;
  void relu_backward(const Tensor& grad_out, const Tensor& y, Tensor& grad_x) override;
  void elu_backward(const Tensor& grad_out, const Tensor& x, double scale, double alpha, Tensor& grad_x) override;
  // binary.cpp
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;
  // reduce.cpp
  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override;
  void arg_reduce(bool is_max, const Tensor& x, int64_t dim, Tensor& values, Tensor& indices) override;
  // selection_grad.cpp
  void split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) override;
  // sort.cpp
  void cumsum(const Tensor& x, int64_t dim, Tensor& out) override;
  void sort(const Tensor& x, int64_t dim, bool descending, Tensor& values, Tensor& indices) override;
  void topk(const Tensor& x, int64_t k, int64_t dim, bool largest, Tensor& values, Tensor& indices) override;
  // matmul.cpp
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out) override;
  // softmax.cpp, layer_norm.cpp
  void softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) override;
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t normalized_numel, double eps,
                  Tensor& out, Tensor& mean, Tensor& rstd) override;
  void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor* weight, const Tensor& mean,
                           const Tensor& rstd, int64_t normalized_numel, Tensor* grad_x, Tensor* grad_weight,
                           Tensor* grad_bias) override;
  // conv.cpp
  void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p, Tensor& out) override;
  void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const ConvParams& p, Tensor& grad_x) override;
  void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const ConvParams& p, Tensor& grad_w) override;
  // pool.cpp
  void max_pool2d(const Tensor& x, const PoolParams& p, Tensor& out, Tensor& indices) override;
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const PoolParams& p,
                           Tensor& grad_x) override;
  // attention.cpp
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale, Tensor& out,
                 Tensor& lse, Tensor* weights) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale,
                          const Tensor& out, const Tensor& lse, const Tensor* weights, const Tensor& grad_out,
                          Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override;
  bool attention_keeps_weights(int64_t batch_heads, int64_t L, int64_t S, DType dtype) const override;
  bool attention_prefers_composite(bool records, int64_t batch_heads, int64_t L, int64_t S,
                                   DType dtype) const override;
  // loss.cpp
  void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                     double label_smoothing, Tensor& loss, Tensor& log_sum, Tensor& target_weight) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                              double label_smoothing, const Tensor& log_sum, const Tensor& grad_loss,
                              Tensor& grad_logits) override;
  // optim.cpp
  void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* max_exp_avg_sq,
                 const AdamParams& p) override;
  // index.cpp
  void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) override;
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) override;
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
};

// The host caching allocator (memory.cpp), behind hg::memory_stats(kCPU) and friends (ops/memory_stats.h).
/// The block size the host allocator hands out for a request of `nbytes` (what the statistics count).
size_t allocation_size(size_t nbytes);
MemoryStats memory_stats();
void reset_peak_memory_stats();
void empty_cache();

}  // namespace hg::cpu
