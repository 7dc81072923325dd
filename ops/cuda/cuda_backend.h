#pragma once
// The CUDA backend: cuBLAS for matrix products (and convolutions as im2col + GEMM), CUB for sorting, and one
// readable kernel file per op family in ops/cuda/. Every kernel mirrors the CPU reference in ops/cpu/ (same
// dtype rules, NaN handling and tie rules); HG_BACKEND_TEST cases compare the two.
//
// Execution model: all work of a device runs on that device's legacy default stream, so kernels run in the order
// they are queued, and a block returned to the caching allocator (ops/cuda/allocator.cpp) can be handed to the
// next allocation at once: anything that still reads it was queued earlier on the same stream.
//
// This header needs no CUDA headers, so host code (tests, tools) can include it.
#include <cstddef>
#include <cstdint>

#include <hopgrad/ops/backend.h>

namespace hg::cuda {

class CudaBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CUDA; }
  const char* name() const override { return "cuda"; }

  // allocator.cpp
  std::shared_ptr<Storage> allocate(size_t nbytes, Device device) override;
  // device.cpp
  void synchronize() override;
  // memory.cu
  void copy(const Tensor& src, Tensor& out) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  // random.cu
  void uniform(Tensor& out, double low, double high, uint64_t seed, uint64_t offset) override;
  void normal(Tensor& out, double mean, double std, uint64_t seed, uint64_t offset) override;
  void randint(Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) override;
  // unary.cu
  void unary(UnaryOp op, const Tensor& x, Tensor& out, UnaryParams params) override;
  void gelu_backward(const Tensor& grad_out, const Tensor& x, GeluApproximation approximate,
                     Tensor& grad_x) override;
  void relu_backward(const Tensor& grad_out, const Tensor& y, Tensor& grad_x) override;
  void elu_backward(const Tensor& grad_out, const Tensor& x, double scale, double alpha, Tensor& grad_x) override;
  // binary.cu
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;
  // reduce.cu
  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override;
  void arg_reduce(bool is_max, const Tensor& x, int64_t dim, Tensor& values, Tensor& indices) override;
  // selection_grad.cu
  void split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) override;
  // sort.cu
  void cumsum(const Tensor& x, int64_t dim, Tensor& out) override;
  void sort(const Tensor& x, int64_t dim, bool descending, Tensor& values, Tensor& indices) override;
  void topk(const Tensor& x, int64_t k, int64_t dim, bool largest, Tensor& values, Tensor& indices) override;
  // matmul.cu
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out) override;
  // softmax.cu, layer_norm.cu
  void softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) override;
  void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, int64_t normalized_numel, double eps,
                  Tensor& out, Tensor& mean, Tensor& rstd) override;
  void layer_norm_backward(const Tensor& grad_out, const Tensor& x, const Tensor* weight, const Tensor& mean,
                           const Tensor& rstd, int64_t normalized_numel, Tensor* grad_x, Tensor* grad_weight,
                           Tensor* grad_bias) override;
  // conv.cu
  void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p, Tensor& out) override;
  void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const ConvParams& p, Tensor& grad_x) override;
  void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const ConvParams& p, Tensor& grad_w) override;
  // pool.cu
  void max_pool2d(const Tensor& x, const PoolParams& p, Tensor& out, Tensor& indices) override;
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const PoolParams& p, Tensor& grad_x) override;
  // attention.cu
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale, Tensor& out,
                 Tensor& lse, Tensor* weights) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, double scale,
                          const Tensor& out, const Tensor& lse, const Tensor* weights, const Tensor& grad_out,
                          Tensor& grad_q, Tensor& grad_k, Tensor& grad_v) override;
  bool attention_prefers_composite(bool records, int64_t batch_heads, int64_t L, int64_t S,
                                   DType dtype) const override;
  // loss.cu
  void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                     double label_smoothing, Tensor& loss, Tensor& log_sum, Tensor& target_weight) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor* weight, int64_t ignore_index,
                              double label_smoothing, const Tensor& log_sum, const Tensor& grad_loss,
                              Tensor& grad_logits) override;
  // optim.cu
  void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, Tensor* max_exp_avg_sq,
                 const AdamParams& p) override;
  // index.cu
  void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) override;
  void index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
  void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) override;
  void scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;
};

/// Statistics of the caching allocator of one device (bytes are block sizes, i.e. rounded up).
///   auto s = hg::cuda::memory_stats(0);  fmt::print("{} MiB in tensors\n", s.allocated_bytes >> 20);
struct MemoryStats {
  size_t allocated_bytes = 0;       ///< held by live storages
  size_t peak_allocated_bytes = 0;  ///< highest allocated_bytes since start or reset_peak_memory_stats()
  size_t cached_bytes = 0;          ///< free blocks kept for reuse
  size_t reserved_bytes = 0;        ///< allocated + cached: what this allocator holds from cudaMalloc
  uint64_t allocations = 0;         ///< allocate() calls with a nonzero size
  uint64_t cache_hits = 0;          ///< allocations served from the cache
  uint64_t device_mallocs = 0;      ///< cudaMalloc calls
  uint64_t device_frees = 0;        ///< cudaFree calls (empty_cache, out-of-memory retries)
};

/// Statistics of the caching allocator of `device` (a CUDA device index).
MemoryStats memory_stats(int device = 0);
/// Resets peak_allocated_bytes to the current allocated_bytes.
void reset_peak_memory_stats(int device = 0);
/// Returns every cached (free) block of every device to the driver; blocks in use are untouched.
void empty_cache();
/// The block size the allocator hands out for a request of `nbytes` (requests of one size class share blocks).
size_t allocation_size(size_t nbytes);

}  // namespace hg::cuda
