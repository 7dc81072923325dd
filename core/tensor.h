#pragma once
// Tensor: a cheap-to-copy shared handle to a strided view of a Storage, with optional autograd state.
//
//   hg::Tensor x = hg::randn({2, 3}).requires_grad_();
//   hg::Tensor y = (x * x).sum();
//   y.backward();              // x.grad() == 2 * x
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <hopgrad/core/device.h>
#include <hopgrad/core/dtype.h>
#include <hopgrad/core/error.h>
#include <hopgrad/core/shape.h>
#include <hopgrad/core/storage.h>

namespace hg {

class Tensor;
class Node;
struct AutogradMeta;  // defined in autograd/meta.h
using Tensors = std::vector<Tensor>;

/// The state behind a Tensor handle.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;      ///< in elements
  int64_t offset = 0;  ///< in elements, from storage->data
  DType dtype = DType::Float32;
  std::unique_ptr<AutogradMeta> autograd;  ///< null until autograd state is needed
  /// Set on a tensor made by a view op (view, select, narrow, transpose, …): the tensor it is ultimately a view
  /// of, never itself a view. An in-place write through the view is recorded in that base's history, and a view
  /// whose storage was written to after its history was recorded takes a fresh one from the base's
  /// (autograd/view_history.cpp).
  std::shared_ptr<TensorImpl> view_base;
  uint64_t view_version = 0;   ///< the storage version at which this view's history was last current
  bool view_writing = false;   ///< an in-place op on this view is between its checks and its commit
  bool view_made_without_grad = false;  ///< taken under NoGradGuard

  TensorImpl(std::shared_ptr<Storage> s, Shape sz, Shape st, int64_t off, DType dt);
  ~TensorImpl();
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata -------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& sizes() const { return impl().sizes; }
  const Shape& shape() const { return impl().sizes; }
  const Shape& strides() const { return impl().strides; }
  /// Size of `dim`; negative dims count from the end.
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().sizes.size()); }
  int64_t numel() const { return impl().sizes.numel(); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_cuda() const { return device().is_cuda(); }
  size_t element_size() const { return hg::element_size(dtype()); }
  bool is_contiguous() const;
  /// Pointer to the first element (host memory for CPU tensors, device memory for CUDA tensors).
  void* data_ptr() const;
  template <typename T> T* data_ptr() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  /// True when both handles share the same TensorImpl.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  /// One-line description "float32[2, 3] cpu" for error messages.
  std::string desc() const;

  // ---- views (no copy; differentiable) --------------------------------------------------------
  Tensor view(IntArrayRef shape) const;     ///< one size may be -1; needs compatible strides
  Tensor reshape(IntArrayRef shape) const;  ///< a view when possible, a copy otherwise
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  ///< transpose of a 2-D tensor
  Tensor permute(IntArrayRef dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  ///< Python-like bounds
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(IntArrayRef shape) const;  ///< -1 keeps a size; new leading dims allowed
  Tensor expand_as(const Tensor& other) const { return expand(other.sizes()); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, IntArrayRef sizes) const;
  /// A view with explicit sizes/strides/offset (in elements) over the same storage. Not checked for bounds
  /// beyond the storage size; differentiable.
  Tensor as_strided(IntArrayRef sizes, IntArrayRef strides, int64_t offset) const;
  /// This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;

  // ---- copies and conversions -----------------------------------------------------------------
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device, DType dtype) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda(int index = 0) const { return to(Device::cuda(index)); }
  Tensor clone() const;
  /// Copies `src` (broadcast to this shape, converted to this dtype, from any device) into this tensor.
  const Tensor& copy_(const Tensor& src) const;
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const;
  /// The single element as T (the tensor must have exactly one element; copies from the device).
  template <typename T> T item() const;
  /// All elements, in row-major order, as a host vector of T.
  template <typename T> std::vector<T> to_vector() const;

  // ---- autograd -------------------------------------------------------------------------------
  bool requires_grad() const;
  /// Marks a leaf as requiring gradient; returns *this. Throws for non-leaf tensors.
  const Tensor& requires_grad_(bool value = true) const;
  const Tensor& set_requires_grad(bool value) const { return requires_grad_(value); }
  /// The accumulated gradient (undefined until a backward reaches this leaf).
  const Tensor& grad() const;
  /// Replaces (or with an undefined tensor, clears) the stored gradient.
  void set_grad(const Tensor& g) const;
  /// Runs reverse-mode autodiff from this tensor. `gradient` may be omitted only for one-element tensors; a
  /// floating-point one of another dtype is cast to this tensor's. create_graph records the backward itself and
  /// implies retain_graph.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false, bool create_graph = false) const;
  /// A tensor sharing storage (and version counter) but cut from the graph.
  Tensor detach() const;
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  uint32_t output_nr() const;
  /// Calls `hook(grad)` when this tensor's gradient is computed, by backward() or hg::autograd::grad (for a leaf
  /// too); a defined return value replaces it and must have its shape, dtype and device. A hook registered by a
  /// running hook first runs on the next backward.
  void register_hook(std::function<Tensor(const Tensor&)> hook) const;
  /// For a non-leaf: keep its gradient in grad() after backward (differentiable under create_graph).
  void retain_grad() const;
  /// In-place write counter shared with every view of the same storage.
  uint64_t version() const { return impl().storage->version.load(std::memory_order_relaxed); }
  void bump_version() const { impl().storage->version.fetch_add(1, std::memory_order_relaxed); }

  // ---- math sugar (defined in ops/; see ops/ops.h for the full list) ---------------------------
  Tensor operator-() const;
  Tensor sum() const;
  Tensor sum(IntArrayRef dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(IntArrayRef dims, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor square() const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor pow(double exponent) const;
  Tensor matmul(const Tensor& other) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor max() const;
  Tensor min() const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  const Tensor& add_(const Tensor& other, double alpha = 1.0) const;
  const Tensor& add_(double value) const;
  const Tensor& sub_(const Tensor& other) const { return add_(other, -1.0); }
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& mul_(double value) const;
  const Tensor& div_(double value) const;

 private:
  const TensorImpl& impl() const {
    if (!impl_) [[unlikely]] throw_undefined();
    return *impl_;
  }
  [[noreturn]] static void throw_undefined();
  std::shared_ptr<TensorImpl> impl_;
};

/// Normalises a possibly negative dim against `ndim`; throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

/// Makes a new tensor over `storage` (no copy).
Tensor make_tensor(std::shared_ptr<Storage> storage, const Shape& sizes, const Shape& strides, int64_t offset,
                   DType dtype);
/// A new uninitialised contiguous tensor.
Tensor empty(IntArrayRef sizes, DType dtype = kFloat32, Device device = kCPU);

template <typename T> T* Tensor::data_ptr() const {
  HG_CHECK(dtype_of_v<T> == dtype(),
           "data_ptr: tensor has dtype {}, requested a different element type", dtype());
  return static_cast<T*>(data_ptr());
}

}  // namespace hg
