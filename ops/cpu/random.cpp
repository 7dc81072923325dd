// CPU random fills with Philox (core/philox.h): element i uses counter offset + i, so results do not depend on
// the number of threads and match the CUDA backend bit for bit.
#include <hopgrad/core/philox.h>
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {
template <typename Fn>
void fill_random(Tensor& out, Fn fn) {
  HG_CHECK(out.is_contiguous(), "random fill: output must be contiguous");
  parallel_for(out.numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(i);
  });
}
}  // namespace

void CpuBackend::uniform(Tensor& out, double low, double high, uint64_t seed, uint64_t offset) {
  HG_DISPATCH_FLOATING(out.dtype(), "uniform", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    fill_random(out, [&](int64_t i) {
      auto r = philox::philox4x32(seed, offset + static_cast<uint64_t>(i));
      if constexpr (std::is_same_v<scalar_t, float>)
        p[i] = static_cast<float>(low + (high - low) * static_cast<double>(philox::uniform_float(r)));
      else
        p[i] = low + (high - low) * philox::uniform_double(r);
    });
  });
}

void CpuBackend::normal(Tensor& out, double mean, double std, uint64_t seed, uint64_t offset) {
  HG_DISPATCH_FLOATING(out.dtype(), "normal", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    fill_random(out, [&](int64_t i) {
      auto r = philox::philox4x32(seed, offset + static_cast<uint64_t>(i));
      p[i] = static_cast<scalar_t>(mean + std * philox::normal_double(r));
    });
  });
}

void CpuBackend::randint(Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) {
  HG_DISPATCH_NUMERIC(out.dtype(), "randint", [&] {
    scalar_t* p = out.data_ptr<scalar_t>();
    // In uint64: high − low and low + index may exceed int64 for ranges wider than INT64_MAX (signed overflow).
    const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    fill_random(out, [&](int64_t i) {
      auto r = philox::philox4x32(seed, offset + static_cast<uint64_t>(i));
      p[i] = static_cast<scalar_t>(static_cast<int64_t>(static_cast<uint64_t>(low) + philox::uniform_index(r, range)));
    });
  });
}

}  // namespace hg::cpu
