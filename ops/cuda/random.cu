// CUDA random fills with Philox (core/philox.h). Element i uses counter offset + i under key seed, exactly as
// ops/cpu/random.cpp, and every formula below is the CPU's expression, so a seed gives the CPU's numbers:
// bit for bit for rand, randint and float32 randn; float64 randn agrees to the last ulp or two, because CUDA's
// double log and cos are not glibc's.
#include <hopgrad/core/philox.h>
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// low + (high − low)·u with the CPU's u: 24 random bits for float32 (widened to double), 53 for float64.
template <typename T> __device__ __forceinline__ T uniform_value(const philox::Uint4& r, double low, double high) {
  if constexpr (std::is_same_v<T, float>)
    return static_cast<float>(low + (high - low) * static_cast<double>(philox::uniform_float(r)));
  else
    return low + (high - low) * philox::uniform_double(r);
}

void check_output(const char* op, const Tensor& out) {
  check_on_device(op, out.device(), {&out});
  HG_CHECK(out.is_contiguous(), "{} (cuda): output must be contiguous, got strides {}", op, out.strides());
}
}  // namespace

void CudaBackend::uniform(Tensor& out, double low, double high, uint64_t seed, uint64_t offset) {
  check_output("uniform", out);
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "uniform", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    for_each_index(out.numel(), out.device().index, [=] __device__(int64_t i) {
      p[i] = uniform_value<scalar_t>(philox::philox4x32(seed, offset + static_cast<uint64_t>(i)), low, high);
    });
  });
}

void CudaBackend::normal(Tensor& out, double mean, double std, uint64_t seed, uint64_t offset) {
  check_output("normal", out);
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "normal", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    for_each_index(out.numel(), out.device().index, [=] __device__(int64_t i) {
      philox::Uint4 r = philox::philox4x32(seed, offset + static_cast<uint64_t>(i));
      p[i] = static_cast<scalar_t>(mean + std * philox::normal_double(r));
    });
  });
}

void CudaBackend::randint(Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) {
  check_output("randint", out);
  HG_CHECK(high > low, "randint (cuda): empty range [{}, {})", low, high);
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_NUMERIC(out.dtype(), "randint", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    // In uint64: high − low and low + index may exceed int64 for ranges wider than INT64_MAX (signed overflow).
    const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    for_each_index(out.numel(), out.device().index, [=] __device__(int64_t i) {
      philox::Uint4 r = philox::philox4x32(seed, offset + static_cast<uint64_t>(i));
      p[i] = static_cast<scalar_t>(static_cast<int64_t>(static_cast<uint64_t>(low) + philox::uniform_index(r, range)));
    });
  });
}

}  // namespace hg::cuda
