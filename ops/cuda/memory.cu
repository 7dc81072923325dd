// CUDA memory: copies within a device, between devices and to/from the host (strided, broadcast, with dtype
// conversion), fills and ranges. CPU reference: ops/cpu/memory.cpp.
//
// Host↔device transfers move one contiguous buffer with cudaMemcpy; any reordering or conversion happens on
// whichever side makes the transfer smallest:
//   H2D: host side made contiguous on the host (in the source dtype), converted and scattered on the device;
//   D2H: device side made contiguous and converted to the destination dtype on the device, scattered on the host.
// A broadcast source (0 strides) is transferred once in its compact form and expanded on the far side.
#include <cmath>

#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// Value conversion of copy(), the same as the CPU backend's (ops/cpu/memory.cpp): to bool means nonzero → 1;
// a float that is NaN, infinite or outside int64's range becomes INT64_MIN (what x86's conversion gives; a plain
// cast is undefined there, and the GPU's conversion saturates instead).
template <typename Out, typename In> __device__ __forceinline__ Out convert(In v) {
  if constexpr (std::is_same_v<Out, uint8_t>) {
    return static_cast<uint8_t>(v != In(0));
  } else if constexpr (std::is_same_v<Out, int64_t> && std::is_floating_point_v<In>) {
    constexpr double kTwo63 = 9223372036854775808.0;
    const double d = static_cast<double>(v);
    return d >= -kTwo63 && d < kTwo63 ? static_cast<int64_t>(d) : INT64_MIN;
  } else {
    return static_cast<Out>(v);
  }
}

size_t nbytes_of(const Tensor& t) { return static_cast<size_t>(t.numel()) * t.element_size(); }

// t with size 1 along its broadcast (stride-0) dims: the distinct elements only.
Tensor compact_view(const Tensor& t) {
  Shape sizes = t.sizes();
  for (size_t d = 0; d < sizes.size(); ++d)
    if (t.strides()[d] == 0) sizes[d] = std::min<int64_t>(sizes[d], 1);
  return make_tensor(t.storage(), sizes, t.strides(), t.offset(), t.dtype());
}

// A contiguous compact tensor seen at the full shape `sizes` again (stride 0 where it was collapsed).
Tensor expand_view(const Tensor& compact, const Shape& sizes) {
  Shape strides = contiguous_strides(compact.sizes());
  for (size_t d = 0; d < sizes.size(); ++d)
    if (compact.sizes()[d] != sizes[d]) strides[d] = 0;
  return make_tensor(compact.storage(), sizes, strides, compact.offset(), compact.dtype());
}

Tensor host_contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = empty(t.sizes(), t.dtype(), kCPU);
  cpu_backend().copy(t, c);
  return c;
}

// t contiguous and of `dtype`, on t's device (current).
Tensor device_contiguous(const Tensor& t, DType dtype) {
  if (t.is_contiguous() && t.dtype() == dtype) return t;
  Tensor c = empty(t.sizes(), dtype, t.device());
  device_copy(t, c);
  return c;
}

void host_to_device(const Tensor& src, Tensor& out) {
  Tensor host = host_contiguous(compact_view(src));
  DeviceGuard guard(out.device());
  // cudaMemcpy from pageable memory returns once the host buffer has been read, so `host` may die right after.
  if (host.sizes() == out.sizes() && host.dtype() == out.dtype() && out.is_contiguous()) {
    HG_CUDA_CHECK(cudaMemcpy(out.data_ptr(), host.data_ptr(), nbytes_of(host), cudaMemcpyHostToDevice));
    return;
  }
  Tensor staged = empty(host.sizes(), host.dtype(), out.device());
  HG_CUDA_CHECK(cudaMemcpy(staged.data_ptr(), host.data_ptr(), nbytes_of(host), cudaMemcpyHostToDevice));
  device_copy(expand_view(staged, out.sizes()), out);
}

void device_to_host(const Tensor& src, Tensor& out) {
  DeviceGuard guard(src.device());
  Tensor staged = device_contiguous(compact_view(src), out.dtype());
  bool direct = staged.sizes() == out.sizes() && out.is_contiguous();
  Tensor host = direct ? out : empty(staged.sizes(), out.dtype(), kCPU);
  // Synchronous: waits for the kernels that produce src.
  HG_CUDA_CHECK(cudaMemcpy(host.data_ptr(), staged.data_ptr(), nbytes_of(staged), cudaMemcpyDeviceToHost));
  if (!direct) cpu_backend().copy(expand_view(host, out.sizes()), out);
}

void device_to_device(const Tensor& src, Tensor& out) {
  Tensor staged;
  {
    DeviceGuard guard(src.device());
    staged = device_contiguous(compact_view(src), out.dtype());
  }
  DeviceGuard guard(out.device());
  bool direct = staged.sizes() == out.sizes() && out.is_contiguous();
  Tensor dst = direct ? out : empty(staged.sizes(), out.dtype(), out.device());
  // cudaMemcpyPeer is ordered with all work on both devices, so `staged` can go back to its cache afterwards.
  HG_CUDA_CHECK(
      cudaMemcpyPeer(dst.data_ptr(), out.device().index, staged.data_ptr(), src.device().index, nbytes_of(staged)));
  if (!direct) device_copy(expand_view(dst, out.sizes()), out);
}

}  // namespace

void device_copy(const Tensor& src, Tensor& out) {
  HG_CHECK(src.sizes() == out.sizes(), "copy (cuda): source shape {} differs from destination shape {}", src.sizes(),
           out.sizes());
  if (out.numel() == 0) return;
  if (src.dtype() == out.dtype() && src.is_contiguous() && out.is_contiguous()) {
    if (src.data_ptr() != out.data_ptr())
      HG_CUDA_CHECK(cudaMemcpyAsync(out.data_ptr(), src.data_ptr(), nbytes_of(out), cudaMemcpyDeviceToDevice, nullptr));
    return;
  }
  HG_CUDA_DISPATCH_ALL(out.dtype(), "copy", [&] {
    using out_t = scalar_t;
    HG_CUDA_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using in_t = scalar_t;
      gpu_kernel<out_t, in_t>(out, {&src}, [] __device__(in_t v) { return convert<out_t>(v); });
    });
  });
}

Tensor as_contiguous(const Tensor& t) { return device_contiguous(t, t.dtype()); }

void CudaBackend::copy(const Tensor& src, Tensor& out) {
  HG_CHECK(src.sizes() == out.sizes(), "copy (cuda): source shape {} differs from destination shape {}", src.sizes(),
           out.sizes());
  HG_CHECK(src.is_cuda() || out.is_cuda(), "copy (cuda): neither {} nor {} is on a CUDA device", src.desc(),
           out.desc());
  if (out.numel() == 0) return;
  if (!src.is_cuda()) return host_to_device(src, out);
  if (!out.is_cuda()) return device_to_host(src, out);
  if (src.device() != out.device()) return device_to_device(src, out);
  DeviceGuard guard(out.device());
  device_copy(src, out);
}

void CudaBackend::fill(Tensor& out, double value) {
  check_on_device("fill", out.device(), {&out});
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  if (value == 0.0 && !std::signbit(value) && out.is_contiguous()) {  // all-zero bytes in every dtype
    HG_CUDA_CHECK(cudaMemsetAsync(out.data_ptr(), 0, nbytes_of(out), nullptr));
    return;
  }
  HG_CUDA_DISPATCH_ALL(out.dtype(), "fill", [&] {
    scalar_t v = std::is_same_v<scalar_t, uint8_t> ? static_cast<scalar_t>(value != 0.0) : static_cast<scalar_t>(value);
    gpu_kernel<scalar_t>(out, {}, [v] __device__() { return v; });
  });
}

// out[i] = start + i·step, computed in double as the CPU backend does, then converted (int64: in int64).
void CudaBackend::arange(Tensor& out, double start, double step) {
  check_on_device("arange", out.device(), {&out});
  HG_CHECK(out.dim() == 1 && out.is_contiguous(), "arange (cuda): expects a contiguous 1-D output, got {}", out.desc());
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_NUMERIC(out.dtype(), "arange", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    if constexpr (std::is_same_v<scalar_t, int64_t>) {
      const auto s = static_cast<uint64_t>(static_cast<int64_t>(start));
      const auto d = static_cast<uint64_t>(static_cast<int64_t>(step));
      for_each_index(out.numel(), out.device().index,
                     [=] __device__(int64_t i) { p[i] = static_cast<int64_t>(s + static_cast<uint64_t>(i) * d); });
    } else {
      for_each_index(out.numel(), out.device().index,
                     [=] __device__(int64_t i) { p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step); });
    }
  });
}

}  // namespace hg::cuda
