// Copies and conversions: to(device/dtype), clone, copy_, fill_, item, to_vector.
#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {
// The backend that performs a copy: a device's backend handles its own host↔device transfers.
Backend& copy_backend(const Tensor& src, const Tensor& dst) {
  return backend_for(dst.device().is_cuda() ? dst.device() : src.device());
}
}  // namespace

Tensor Tensor::to(Device device, DType dtype) const {
  if (device == this->device() && dtype == this->dtype()) return *this;
  Tensor out = hg::empty(sizes(), dtype, device);
  copy_backend(*this, out).copy(*this, out);
  if (any_requires_grad(*this)) {
    HG_CHECK(is_floating(dtype), "to: cannot convert {} that requires grad to {}", desc(), dtype);
    Device from_device = this->device();
    DType from_dtype = this->dtype();
    record_op("to", {*this}, out, [from_device, from_dtype](const Tensors& g, const BackwardContext&) {
      return Tensors{g[0].to(from_device, from_dtype)};
    });
  }
  return out;
}
Tensor Tensor::to(Device device) const { return to(device, dtype()); }
Tensor Tensor::to(DType dtype) const { return to(device(), dtype); }

Tensor Tensor::clone() const {
  Tensor out = hg::empty(sizes(), dtype(), device());
  backend_for(device()).copy(*this, out);
  if (any_requires_grad(*this))
    record_op("clone", {*this}, out, [](const Tensors& g, const BackwardContext&) { return Tensors{g[0]}; });
  return out;
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  HG_CHECK(src.defined(), "copy_: source is undefined");
  Shape target = broadcast_shapes(sizes(), src.sizes(), "copy_");
  HG_CHECK(target == sizes(), "copy_: source of shape {} cannot be broadcast to the destination's shape {}",
           src.sizes(), sizes());
  check_inplace(*this, "copy_");
  Tensor s = src.sizes() == sizes() ? src.detach() : src.detach().expand(sizes());
  Tensor dst = *this;
  copy_backend(src, *this).copy(s, dst);
  bump_version();
  if (any_requires_grad(*this, src)) {
    // The old contents are overwritten: gradient flows only to src (converted back to its device/dtype).
    Device d = src.device();
    DType t = src.dtype();
    record_op("copy_", {src}, *this,
              [d, t](const Tensors& g, const BackwardContext&) { return Tensors{g[0].to(d, t)}; });
  }
  return *this;
}

const Tensor& Tensor::fill_(double value) const {
  check_inplace(*this, "fill_");
  Tensor dst = *this;
  backend_for(device()).fill(dst, value);
  bump_version();
  if (any_requires_grad(*this))  // the new value depends on nothing: cut the history
    record_op("fill_", {}, *this, [](const Tensors&, const BackwardContext&) { return Tensors{}; });
  return *this;
}
const Tensor& Tensor::zero_() const { return fill_(0.0); }
const Tensor& fill_(const Tensor& self, double value) { return self.fill_(value); }
const Tensor& zero_(const Tensor& self) { return self.zero_(); }

template <typename T> std::vector<T> Tensor::to_vector() const {
  Tensor host = detach().to(kCPU, dtype_of_v<T>).contiguous();
  std::vector<T> out(static_cast<size_t>(numel()));
  if constexpr (std::is_same_v<T, bool>) {
    const auto* p = static_cast<const uint8_t*>(host.data_ptr());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i] != 0;
  } else {
    const T* p = static_cast<const T*>(host.data_ptr());
    std::copy(p, p + out.size(), out.begin());
  }
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

template <typename T> T Tensor::item() const {
  HG_CHECK(numel() == 1, "item: the tensor must have exactly one element, got shape {}", sizes());
  return to_vector<T>()[0];
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template bool Tensor::item<bool>() const;

}  // namespace hg
