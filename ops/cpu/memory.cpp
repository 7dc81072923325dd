// CPU memory: allocation, strided copies with dtype conversion, fills.
#include <cstdlib>
#include <cstring>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg {

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

namespace cpu {

std::shared_ptr<Storage> CpuBackend::allocate(size_t nbytes, Device device) {
  // 64-byte alignment suits AVX-512 loads and oneDNN; aligned_alloc needs a multiple of the alignment.
  size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  HG_CHECK(p != nullptr, "out of host memory allocating {} bytes", nbytes);
  return std::make_shared<Storage>(p, nbytes, device, [](void* q) { std::free(q); });
}

void CpuBackend::copy(const Tensor& src, Tensor& out) {
  HG_CHECK(src.device().is_cpu() && out.device().is_cpu(), "cpu copy: both tensors must be on the host");
  if (src.dtype() == out.dtype() && src.is_contiguous() && out.is_contiguous() && src.sizes() == out.sizes()) {
    size_t bytes = static_cast<size_t>(out.numel()) * out.element_size();
    if (bytes > 0 && src.data_ptr() != out.data_ptr()) std::memcpy(out.data_ptr(), src.data_ptr(), bytes);
    return;
  }
  HG_DISPATCH_ALL(out.dtype(), "copy", [&] {
    using out_t = scalar_t;
    HG_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using in_t = scalar_t;
      cpu_kernel<out_t, in_t>(out, {&src}, [](in_t v) {
        if constexpr (std::is_same_v<out_t, uint8_t>)
          return static_cast<uint8_t>(v != in_t(0));  // bool: nonzero → 1
        else
          return static_cast<out_t>(v);
      });
    });
  });
}

void CpuBackend::fill(Tensor& out, double value) {
  HG_DISPATCH_ALL(out.dtype(), "fill", [&] {
    scalar_t v = std::is_same_v<scalar_t, uint8_t> ? static_cast<scalar_t>(value != 0.0) : static_cast<scalar_t>(value);
    cpu_kernel<scalar_t>(out, {}, [v]() { return v; });
  });
}

void CpuBackend::arange(Tensor& out, double start, double step) {
  HG_DISPATCH_NUMERIC(out.dtype(), "arange", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step);
  });
}

}  // namespace cpu
}  // namespace hg
