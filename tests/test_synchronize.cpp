// hg::synchronize: a no-op on the CPU; on a GPU it returns only once queued kernels have finished, so a result
// read through a raw host view afterwards is complete; a CUDA device that this build or machine lacks is an
// error naming it.
#include "testing.h"

#include <string>

TEST_CASE("synchronize [cpu]: returns at once, the CPU's ops being finished when they return") {
  hg::Tensor a = hg::ones({64, 64});
  hg::Tensor c = hg::matmul(a, a);
  hg::synchronize(hg::kCPU);
  CHECK(hg::max(hg::abs(c - 64.0)).item<float>() == 0.0f);
}

TEST_CASE("synchronize [cuda]: waits for queued kernels" * doctest::skip(!hgtest::has_cuda())) {
  // A chain of GEMMs long enough to still be running when the host reaches synchronize; then every element must
  // already be there, with no further copy or wait in between that could hide a missing one.
  const hg::Device device = hg::Device::cuda(0);
  hg::Tensor a = hg::full({1024, 1024}, 1.0 / 1024).to(device);
  hg::Tensor x = hg::ones({1024, 1024}).to(device);
  for (int i = 0; i < 20; ++i) x = hg::matmul(a, x);
  hg::synchronize(device);
  hg::Tensor host = x.cpu();
  CHECK(hg::max(hg::abs(host - 1.0)).item<float>() < 1e-4f);
}

TEST_CASE("synchronize: a CUDA device this build or machine lacks is an error naming it") {
  const hg::Device missing = hg::Device::cuda(hg::cuda_device_count());
  const std::string name = missing.str();  // "cuda:N"
  CHECK_THROWS_WITH_AS(hg::synchronize(missing), doctest::Contains(name.c_str()), hg::Error);
}
