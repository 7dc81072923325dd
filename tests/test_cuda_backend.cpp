// CUDA-specific behaviour: host↔device copies, the caching allocator, Philox numbers equal to the CPU's, large
// problems that take the kernels' multi-block paths (split reductions, multi-tile scans, device-wide sorts, chunked
// convolutions), and errors. Every case needing a GPU is skipped (visibly) when there is none; the per-op CPU-vs-CUDA
// comparisons are the HG_BACKEND_TEST cases of the op test files.
#include "testing.h"

#ifdef HG_WITH_CUDA

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include <hopgrad/ops/cuda/cuda_backend.h>

using hg::Tensor;

namespace {

const hg::Device kCuda = hg::Device::cuda(0);

bool no_gpu() { return !hgtest::has_cuda(); }

// The message of the hg::Error thrown by f ("" when none is thrown).
template <typename F> std::string error_message(F f) {
  try {
    f();
  } catch (const hg::Error& e) {
    return e.what();
  }
  return "";
}

// Element-by-element bit equality of two tensors of one dtype (NaN payloads and signed zeros included).
void check_bitwise_equal(const Tensor& got, const Tensor& expected, const std::string& what) {
  REQUIRE(got.sizes() == expected.sizes());
  REQUIRE(got.dtype() == expected.dtype());
  Tensor g = got.cpu().contiguous(), e = expected.cpu().contiguous();
  size_t bytes = static_cast<size_t>(g.numel()) * g.element_size();
  CHECK_MESSAGE(std::memcmp(g.data_ptr(), e.data_ptr(), bytes) == 0, what << ": CUDA and CPU bits differ");
}

// f on a CPU input and on the same input moved to the GPU, outputs compared.
template <typename F>
void check_same_on_cuda(const std::string& what, const Tensor& input, F f, double rtol = 1e-5, double atol = 1e-6) {
  Tensor expected = f(input);
  Tensor got = f(input.to(kCuda));
  CHECK(got.device() == kCuda);
  hgtest::check_close(got, expected, rtol, atol, what);
}

}  // namespace

TEST_CASE("cuda: allocator size classes round up by at most a quarter") {
  // A pure function: runs in every CUDA build, GPU or not.
  CHECK(hg::cuda::allocation_size(1) == 512);
  CHECK(hg::cuda::allocation_size(512) == 512);
  CHECK(hg::cuda::allocation_size(513) == 1024);
  CHECK(hg::cuda::allocation_size(size_t{1} << 20) == size_t{1} << 20);
  CHECK(hg::cuda::allocation_size((size_t{1} << 20) + 1) == (size_t{5} << 18));  // 1.25 MiB
  CHECK(hg::cuda::allocation_size(size_t{3} << 30) == size_t{3} << 30);
  for (size_t n : {size_t{1} << 21, size_t{5000000}, size_t{123456789}}) {
    size_t rounded = hg::cuda::allocation_size(n);
    CHECK(rounded >= n);
    CHECK(rounded <= n + n / 4);
  }
}

TEST_CASE("cuda: no GPU means zero devices, not an error") {
  // cuda_device_count() treats a missing driver or GPU as 0 devices; CUDA tensors then fail with a clear message.
  if (hg::cuda_device_count() > 0) return;
  CHECK_FALSE(hg::cuda_is_available());
  CHECK_THROWS_WITH_AS(hg::zeros({2}, hg::TensorOptions().device(kCuda)), doctest::Contains("no CUDA device cuda:0"),
                       hg::Error);
}

TEST_CASE("cuda: copies round-trip between host and device" * doctest::skip(no_gpu())) {
  Tensor host = hgtest::uniform({5, 7}, -2, 2, 11);  // float64
  // contiguous both ways
  check_bitwise_equal(host.to(kCuda).cpu(), host, "contiguous round trip");
  // strided host source → device, strided device source → host
  Tensor transposed = host.transpose(0, 1);
  check_bitwise_equal(transposed.to(kCuda).cpu(), transposed.contiguous(), "strided host → device");
  Tensor on_device = host.to(kCuda);
  check_bitwise_equal(on_device.transpose(0, 1).cpu(), transposed.contiguous(), "strided device → host");
  check_bitwise_equal(on_device.slice(1, 1, 7, 3).cpu(), host.slice(1, 1, 7, 3).contiguous(), "sliced device → host");
  // dtype conversion on the way in and out
  check_bitwise_equal(host.to(kCuda, hg::kFloat32).cpu(), host.to(hg::kFloat32), "float64 → float32 on upload");
  check_bitwise_equal(on_device.to(hg::kCPU, hg::kFloat32), host.to(hg::kFloat32), "float64 → float32 on download");
  Tensor ints = hg::from_vector<int64_t>({-3, 0, 2, 7}, {4}, hg::kInt64);
  check_bitwise_equal(ints.to(kCuda, hg::kFloat32).cpu(), ints.to(hg::kFloat32), "int64 → float32");
  check_bitwise_equal(ints.to(kCuda, hg::kBool).cpu(), ints.to(hg::kBool), "int64 → bool (nonzero)");
  check_bitwise_equal(ints.to(kCuda).to(hg::kFloat64).cpu(), ints.to(hg::kFloat64), "int64 → float64 on device");
  // into a strided destination: a broadcast source, a host source into a device column, a device column to host
  Tensor dst = hg::zeros({3, 4}, hg::TensorOptions(hg::kFloat64).device(kCuda));
  dst.copy_(hg::from_vector<double>({1, 2, 3, 4}, {4}, hg::kFloat64));  // broadcast over rows
  check_bitwise_equal(dst.cpu(), hg::from_vector<double>({1, 2, 3, 4}, {4}, hg::kFloat64).expand({3, 4}).contiguous(),
                      "broadcast host → device");
  dst.select(1, 2).copy_(hg::from_vector<float>({7, 8, 9}, {3}));  // strided column, float32 → float64
  CHECK(dst.cpu().to_vector<double>() == std::vector<double>{1, 2, 7, 4, 1, 2, 8, 4, 1, 2, 9, 4});
  Tensor host_dst = hg::zeros({4, 3}, hg::kFloat32);
  host_dst.select(0, 1).copy_(dst.select(1, 2));  // device column → host row
  CHECK(host_dst.to_vector<float>() == std::vector<float>{0, 0, 0, 7, 8, 9, 0, 0, 0, 0, 0, 0});
  // on the device: clone of a transposed view, item
  check_bitwise_equal(on_device.transpose(0, 1).clone().cpu(), transposed.contiguous(), "device → device strided");
  CHECK(on_device.select(0, 2).select(0, 3).item<double>() == host.select(0, 2).select(0, 3).item<double>());
  // empty tensors
  CHECK(hg::zeros({0, 3}, hg::TensorOptions().device(kCuda)).cpu().numel() == 0);
  if (hg::cuda_device_count() > 1) {
    hg::Device second = hg::Device::cuda(1);
    check_bitwise_equal(on_device.to(second).cpu(), host, "cuda:0 → cuda:1");
    check_bitwise_equal(on_device.transpose(0, 1).to(second, hg::kFloat32).cpu(), transposed.to(hg::kFloat32),
                        "strided cuda:0 → cuda:1 with conversion");
  }
}

TEST_CASE("cuda: the caching allocator reuses freed blocks" * doctest::skip(no_gpu())) {
  hg::cuda::empty_cache();
  hg::cuda::MemoryStats before = hg::cuda::memory_stats(0);
  CHECK(before.cached_bytes == 0);
  void* first = nullptr;
  {
    Tensor t = hg::empty({1000}, hg::TensorOptions().device(kCuda));
    first = t.data_ptr();
    hg::cuda::MemoryStats held = hg::cuda::memory_stats(0);
    CHECK(held.allocated_bytes == before.allocated_bytes + hg::cuda::allocation_size(4000));
    CHECK(held.peak_allocated_bytes >= held.allocated_bytes);
  }
  hg::cuda::MemoryStats freed = hg::cuda::memory_stats(0);
  CHECK(freed.allocated_bytes == before.allocated_bytes);
  CHECK(freed.cached_bytes == hg::cuda::allocation_size(4000));
  // Same size class (3900 bytes rounds to the same 4096-byte block): the cached block comes back, no cudaMalloc.
  Tensor again = hg::empty({975}, hg::TensorOptions().device(kCuda));
  hg::cuda::MemoryStats reused = hg::cuda::memory_stats(0);
  CHECK(again.data_ptr() == first);
  CHECK(reused.cache_hits == freed.cache_hits + 1);
  CHECK(reused.device_mallocs == freed.device_mallocs);
  CHECK(reused.cached_bytes == 0);
  // A different size class needs a new block.
  Tensor other = hg::empty({100000}, hg::TensorOptions().device(kCuda));
  CHECK(other.data_ptr() != first);
  CHECK(hg::cuda::memory_stats(0).device_mallocs == reused.device_mallocs + 1);
  // empty_cache returns free blocks only
  { Tensor tmp = hg::empty({3000}, hg::TensorOptions().device(kCuda)); }
  CHECK(hg::cuda::memory_stats(0).cached_bytes > 0);
  hg::cuda::empty_cache();
  hg::cuda::MemoryStats emptied = hg::cuda::memory_stats(0);
  CHECK(emptied.cached_bytes == 0);
  CHECK(emptied.reserved_bytes == emptied.allocated_bytes);
  hgtest::check_close(again.fill_(3.0).sum(), hg::scalar_tensor(3.0 * 975), 1e-6, 0, "blocks still in use survive");
}

TEST_CASE("cuda: out of memory is an hg::Error after the cache is emptied" * doctest::skip(no_gpu())) {
  { Tensor warm = hg::empty({1 << 20}, hg::TensorOptions().device(kCuda)); }  // leaves a cached block
  std::string message = error_message([] { hg::empty({int64_t{1} << 48}, hg::TensorOptions().device(kCuda)); });
  CHECK(message.find("CUDA out of memory on cuda:0") != std::string::npos);
  CHECK(message.find("tried to allocate") != std::string::npos);
  CHECK(hg::cuda::memory_stats(0).cached_bytes == 0);  // the retry released the cache
  // the device still works afterwards
  CHECK(hg::ones({3}, hg::TensorOptions().device(kCuda)).sum().item<float>() == 3.0f);
}

TEST_CASE("cuda: same-seed rand, randn and randint equal the CPU's bit for bit" * doctest::skip(no_gpu())) {
  auto on = [](hg::Device device, hg::DType dtype, int which) {
    hg::Generator gen(20240601);
    hg::TensorOptions o = hg::TensorOptions(dtype).device(device);
    gen.reserve(3);  // start the fill at counter 3, as after an earlier 3-element fill
    if (which == 0) return hg::rand({1000, 37}, o, &gen);
    if (which == 1) return hg::randn({1000, 37}, o, &gen);
    return hg::randint(-5, 1000000007, {1000, 37}, o, &gen);
  };
  check_bitwise_equal(on(kCuda, hg::kFloat32, 0), on(hg::kCPU, hg::kFloat32, 0), "rand float32");
  check_bitwise_equal(on(kCuda, hg::kFloat64, 0), on(hg::kCPU, hg::kFloat64, 0), "rand float64");
  check_bitwise_equal(on(kCuda, hg::kFloat32, 1), on(hg::kCPU, hg::kFloat32, 1), "randn float32");
  check_bitwise_equal(on(kCuda, hg::kInt64, 2), on(hg::kCPU, hg::kInt64, 2), "randint int64");
  // float64 normals go through CUDA's log and cos, which may differ from glibc's in the last bit
  hgtest::check_close(on(kCuda, hg::kFloat64, 1), on(hg::kCPU, hg::kFloat64, 1), 1e-14, 1e-14, "randn float64");
  // the default generators advance alike
  hg::manual_seed(7);
  Tensor a = hg::randn({64}, hg::TensorOptions().device(kCuda));
  hg::manual_seed(7);
  check_bitwise_equal(a, hg::randn({64}), "manual_seed + randn");
}

TEST_CASE("cuda: large matmuls match the CPU" * doctest::skip(no_gpu())) {
  Tensor a = hgtest::uniform({257, 384}, -1, 1, 1).to(hg::kFloat32);
  Tensor b = hgtest::uniform({384, 129}, -1, 1, 2).to(hg::kFloat32);
  Tensor a_gpu = a.to(kCuda), b_gpu = b.to(kCuda);
  hgtest::check_close(hg::matmul(a_gpu, b_gpu), hg::matmul(a, b), 1e-4, 1e-4, "float32 [257,384]·[384,129]");
  // transposed operands (no copy: cuBLAS op T), batch broadcast (batch stride 0), float64
  hgtest::check_close(hg::matmul(b_gpu.t(), a_gpu.t()), hg::matmul(b.t(), a.t()), 1e-4, 1e-4, "transposed");
  Tensor batch = hgtest::uniform({6, 33, 257}, -1, 1, 3).to(hg::kFloat32);
  hgtest::check_close(hg::matmul(batch.to(kCuda), a_gpu), hg::matmul(batch, a), 1e-4, 1e-4, "batched · shared");
  Tensor x = hgtest::uniform({4, 1, 40, 50}, -1, 1, 4), y = hgtest::uniform({3, 50, 30}, -1, 1, 5);
  hgtest::check_close(hg::matmul(x.to(kCuda), y.to(kCuda)), hg::matmul(x, y), 1e-12, 1e-12, "float64 broadcast batch");
  // a non-unit-strided operand is copied first
  hgtest::check_close(hg::matmul(a_gpu.slice(1, 0, 384, 2), b_gpu.slice(0, 0, 192)),
                      hg::matmul(a.slice(1, 0, 384, 2), b.slice(0, 0, 192)), 1e-4, 1e-4, "strided columns");
  // gradients through bmm's backward (transposed views)
  Tensor w = hgtest::uniform({20, 30}, -1, 1, 6).requires_grad_();
  Tensor w_gpu = w.detach().to(kCuda).requires_grad_();
  Tensor in = hgtest::uniform({8, 20}, -1, 1, 7);
  hg::matmul(in, w).square().sum().backward();
  hg::matmul(in.to(kCuda), w_gpu).square().sum().backward();
  hgtest::check_close(w_gpu.grad(), w.grad(), 1e-12, 1e-12, "matmul gradient");
}

TEST_CASE("cuda: large reductions, scans and sorts match the CPU" * doctest::skip(no_gpu())) {
  Tensor big = hgtest::uniform({1 << 20}, -1, 1, 21).to(hg::kFloat32);  // one long row: split reduction
  check_same_on_cuda(
      "sum of 2^20", big, [](const Tensor& t) { return hg::sum(t); }, 1e-4, 1e-3);
  check_same_on_cuda(
      "mean of 2^20", big, [](const Tensor& t) { return hg::mean(t); }, 1e-4, 1e-6);
  check_same_on_cuda("max of 2^20", big, [](const Tensor& t) { return hg::max(t); });
  Tensor tall = hgtest::uniform({200000, 3}, -1, 1, 22);  // few long columns: split column reduction
  check_same_on_cuda(
      "column sum", tall, [](const Tensor& t) { return hg::sum(t, {0}); }, 1e-10, 1e-10);
  check_same_on_cuda("column amin", tall, [](const Tensor& t) { return hg::amin(t, {0}); });
  check_same_on_cuda(
      "argmax down columns", tall, [](const Tensor& t) { return hg::argmax(t, 0); }, 0, 0);
  Tensor cube = hgtest::uniform({30, 40, 50}, -1, 1, 23);  // middle and mixed dims: the permuted copy
  check_same_on_cuda(
      "sum over dims 0, 2", cube,
      [](const Tensor& t) {
        return hg::sum(t, {0, 2});
      },
      1e-10, 1e-10);
  check_same_on_cuda(
      "prod over dim 1", cube * 0.5 + 1.0, [](const Tensor& t) { return hg::prod(t, {1}); }, 1e-10, 0);
  check_same_on_cuda(
      "argmin of strided rows", cube, [](const Tensor& t) { return hg::argmin(t.transpose(0, 2), 2); }, 0, 0);
  // scans: one long row (multi-tile block scan), long columns, many short rows
  check_same_on_cuda(
      "cumsum long row", big, [](const Tensor& t) { return hg::cumsum(t, 0); }, 1e-4, 1e-3);
  check_same_on_cuda(
      "cumsum long columns", tall, [](const Tensor& t) { return hg::cumsum(t, 0); }, 1e-10, 1e-10);
  check_same_on_cuda(
      "cumsum rows", cube, [](const Tensor& t) { return hg::cumsum(t, 2); }, 1e-10, 1e-10);
  // sorts: one long row (device-wide radix sort) with ties, many rows (segmented), descending, topk
  Tensor ties = hg::randint(0, 50, {100000}, hg::kInt64).to(hg::kFloat32);
  auto sort_indices = [](bool descending) {
    return [descending](const Tensor& t) { return std::get<1>(hg::sort(t, -1, descending)); };
  };
  check_same_on_cuda("stable sort of a long row", ties, sort_indices(false), 0, 0);
  check_same_on_cuda("stable descending sort", ties, sort_indices(true), 0, 0);
  Tensor rows = hg::randint(0, 9, {300, 77}, hg::kInt64).to(hg::kFloat64);
  check_same_on_cuda("segmented sort", rows, sort_indices(false), 0, 0);
  check_same_on_cuda(
      "segmented descending sort along dim 0", rows, [](const Tensor& t) { return std::get<1>(hg::sort(t, 0, true)); },
      0, 0);
  check_same_on_cuda(
      "topk of rows with ties", rows, [](const Tensor& t) { return std::get<1>(hg::topk(t, 5, 1)); }, 0, 0);
  check_same_on_cuda(
      "smallest k", ties, [](const Tensor& t) { return std::get<1>(hg::topk(t, 9, 0, false)); }, 0, 0);
  // NaN sorts above +inf, -0 ties with +0 (stable)
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  Tensor special = hg::from_vector<double>({nan, 1, -inf, 0, -0.0, inf, nan, -1}, {8}, hg::kFloat64);
  auto [values, indices] = hg::sort(special.to(kCuda));
  CHECK(indices.to_vector<int64_t>() == std::vector<int64_t>{2, 7, 3, 4, 1, 5, 0, 6});
  CHECK(std::signbit(values.to_vector<double>()[3]));  // the -0 itself comes back
}

TEST_CASE("cuda: large neural-net kernels match the CPU" * doctest::skip(no_gpu())) {
  Tensor wide = hgtest::uniform({4, 5000}, -5, 5, 31);  // long rows: multi-pass block softmax
  check_same_on_cuda(
      "softmax of wide rows", wide, [](const Tensor& t) { return hg::softmax(t, 1); }, 1e-10, 1e-12);
  check_same_on_cuda(
      "log_softmax down columns", wide, [](const Tensor& t) { return hg::log_softmax(t, 0); }, 1e-10, 1e-12);
  Tensor w = hgtest::uniform({5000}, 0.5, 1.5, 32), b = hgtest::uniform({5000}, -1, 1, 33);
  check_same_on_cuda(
      "layer_norm of wide rows", wide,
      [&](const Tensor& t) { return hg::layer_norm(t, {5000}, w.to(t.device()), b.to(t.device())); }, 1e-10, 1e-10);
  // Large enough for several image chunks (im2col columns of ~38 MB per image against a 256 MB budget), with
  // groups, padding and dilation; the GEMMs batch over images (groups < images per chunk).
  Tensor x = hgtest::uniform({8, 16, 256, 256}, -1, 1, 34).to(hg::kFloat32);
  Tensor k = hgtest::uniform({12, 8, 3, 3}, -1, 1, 35).to(hg::kFloat32);
  Tensor bias = hgtest::uniform({12}, -1, 1, 36).to(hg::kFloat32);
  auto conv = [&](const Tensor& t) {
    return hg::conv2d(t, k.to(t.device()), bias.to(t.device()), {1, 1}, {1, 2}, {1, 2}, 2);
  };
  check_same_on_cuda("chunked grouped conv2d", x, conv, 1e-4, 1e-4);
  // Gradients with more groups than images (the GEMMs batch over groups), stride and dilation.
  Tensor kd = hgtest::uniform({12, 2, 3, 3}, -1, 1, 39).requires_grad_();
  Tensor kd_gpu = kd.detach().to(kCuda).requires_grad_();
  Tensor xd = hgtest::uniform({3, 8, 9, 11}, -1, 1, 37).requires_grad_();
  Tensor xd_gpu = xd.detach().to(kCuda).requires_grad_();
  hg::conv2d(xd, kd, Tensor(), {2, 2}, {1, 0}, {2, 1}, 4).square().sum().backward();
  hg::conv2d(xd_gpu, kd_gpu, Tensor(), {2, 2}, {1, 0}, {2, 1}, 4).square().sum().backward();
  hgtest::check_close(xd_gpu.grad(), xd.grad(), 1e-10, 1e-10, "conv2d input gradient");
  hgtest::check_close(kd_gpu.grad(), kd.grad(), 1e-10, 1e-10, "conv2d weight gradient");
  check_same_on_cuda("max_pool2d with overlap", x, [](const Tensor& t) {
    return hg::max_pool2d(t, {3, 3}, {2, 2}, {1, 1});
  });
  // embedding-style index_add with many repeated indices (atomics)
  Tensor index = hg::randint(0, 7, {5000}, hg::kInt64);
  Tensor src = hgtest::uniform({5000, 16}, -1, 1, 38);
  check_same_on_cuda(
      "index_add with repeats", hg::zeros({7, 16}, hg::kFloat64),
      [&](const Tensor& t) { return hg::index_add(t, 0, index.to(t.device()), src.to(t.device())); }, 1e-10, 1e-10);
}

TEST_CASE("cuda: mixed-device and bad-device errors name the devices" * doctest::skip(no_gpu())) {
  Tensor host = hg::ones({2, 2}), device = hg::ones({2, 2}, hg::TensorOptions().device(kCuda));
  for (std::string message :
       {error_message([&] { hg::add(host, device); }), error_message([&] { hg::matmul(device, host); }),
        error_message([&] { hg::where(host > 0.0, host, device); })}) {
    CAPTURE(message);
    CHECK(message.find("cpu") != std::string::npos);
    CHECK(message.find("cuda:0") != std::string::npos);
  }
  int missing = hg::cuda_device_count();
  std::string message = error_message([&] { hg::zeros({2}, hg::TensorOptions().device(hg::Device::cuda(missing))); });
  CHECK(message.find(fmt::format("no CUDA device cuda:{}", missing)) != std::string::npos);
}

#else

TEST_CASE("cuda: backend tests (this build has no CUDA backend)" * doctest::skip()) {}

#endif
