// Copies and conversions: to(device/dtype), clone, copy_, fill_, item, to_vector; the overlap test of in-place ops.
#include <utility>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/kernel_checks.h>
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
  // To an integer or bool dtype the result needs no gradient (as torch: x.to(int64) of an x requiring grad is a
  // plain tensor; no gradient flows back through it).
  if (any_requires_grad(*this) && is_floating(dtype)) {
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

namespace {
// The bytes [first, last] a view can touch (numel > 0).
std::pair<int64_t, int64_t> byte_span(const Tensor& t) {
  int64_t first = t.offset(), last = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t extent = (t.size(d) - 1) * t.stride(d);
    (extent > 0 ? last : first) += extent;
  }
  const auto element = static_cast<int64_t>(t.element_size());
  return {first * element, last * element + element - 1};
}
}  // namespace

bool partially_overlaps(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0 || a.storage() != b.storage()) return false;
  if (a.offset() == b.offset() && a.sizes() == b.sizes() && a.strides() == b.strides() && a.dtype() == b.dtype())
    return false;  // the same elements in the same places: an elementwise write reads each before writing it
  const auto [a_first, a_last] = byte_span(a);
  const auto [b_first, b_last] = byte_span(b);
  return a_first <= b_last && b_first <= a_last;
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  HG_CHECK(src.defined(), "copy_: source is undefined");
  Shape target = broadcast_shapes(sizes(), src.sizes(), "copy_");
  HG_CHECK(target == sizes(), "copy_: source of shape {} cannot be broadcast to the destination's shape {}",
           src.sizes(), sizes());
  InplaceWrite write(*this, "copy_", {&src});
  // Read through a copy where src overlaps the destination (see partially_overlaps).
  const Tensor source = partially_overlaps(src, *this) ? src.detach().clone() : src.detach();
  Tensor s = source.sizes() == sizes() ? source : source.expand(sizes());
  Tensor dst = *this;
  copy_backend(src, *this).copy(s, dst);
  if (write.tracked()) {
    // The old contents are overwritten: gradient flows only to src (converted back to its device/dtype).
    Device d = src.device();
    DType t = src.dtype();
    record_op("copy_", {src}, *this,
              [d, t](const Tensors& g, const BackwardContext&) { return Tensors{g[0].to(d, t)}; });
  }
  write.commit();
  return *this;
}

const Tensor& Tensor::fill_(double value) const {
  detail::check_fill_value("fill_", dtype(), value);
  InplaceWrite write(*this, "fill_", {}, InplaceWrite::SelfOverlap::Allowed);  // one value: aliases agree
  Tensor dst = *this;
  backend_for(device()).fill(dst, value);
  if (write.tracked())  // the new value depends on nothing: cut the history
    record_op("fill_", {}, *this, [](const Tensors&, const BackwardContext&) { return Tensors{}; });
  write.commit();
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
