// The CPU's float32 matrix products against a float64 reference, across the paths ops/cpu/matmul.cpp chooses between:
// a cached dnnl::matmul primitive reading the operands as they are (up to 2048 rows and depth 1024), dnnl_sgemm
// (deeper or taller products), the primitive for single products from 2^28 multiply-adds with a wide b (b
// row-major: reordered into the primitive's blocked layout; b transposed: read as it is), and the batched
// primitive; at 1 and 2 threads (primitives are cached per thread count), with row-major, transposed and
// column-sliced operands. Also: the primitive's scratchpad and reordered b go back to the host pool,
// and repeated large products leave glibc's heap where it was.
#include <doctest/doctest.h>

#include <cstdint>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <hopgrad/ops/cpu/onednn.h>

#include "testing.h"

namespace {

enum class Layout { RowMajor, Transposed, ColumnSlice };

// A [rows, cols] view on `device` in `layout`, holding the same values whatever the layout.
hg::Tensor matrix(int64_t rows, int64_t cols, Layout layout, uint64_t seed, hg::Device device) {
  hg::Tensor values = hgtest::uniform({rows, cols}, -1, 1, seed).to(device, hg::kFloat32);
  switch (layout) {
    case Layout::Transposed: return values.t().contiguous().t();
    case Layout::ColumnSlice: return hg::cat({values, hg::zeros({rows, 5}).to(device)}, 1).slice(1, 0, cols);
    default: return values;
  }
}

struct Product {
  int64_t M, N, K;
  Layout a, b;
};

}  // namespace

// Both backends within 1e-4 of the float64 product: between themselves, float32 sums of ~500 terms in another order
// differ by about 1e-5 (cuBLAS against oneDNN), so the comparison takes the same 1e-4.
HG_BACKEND_TEST_TOL(matmul_float32_paths_match_float64, 1e-4, 1e-4) {
  hg::Tensors results;
  const int threads_before = hg::get_num_threads();
  // 3·4·5 and 40·50·60 MACs run on one thread; 67·81·59 on all of them; then dnnl_sgemm's deep and tall products;
  // the rest, ≥ 2^28 MACs with b at least 1024 columns wide, in odd sizes so that no dim is a multiple of the
  // kernels' blocks.
  const Product products[] = {
      {3, 4, 5, Layout::RowMajor, Layout::RowMajor},
      {40, 50, 60, Layout::Transposed, Layout::ColumnSlice},
      {67, 81, 59, Layout::RowMajor, Layout::Transposed},
      {67, 81, 59, Layout::ColumnSlice, Layout::RowMajor},
      {67, 81, 1100, Layout::Transposed, Layout::RowMajor},  // dnnl_sgemm: K > 1024 (a weight gradient's shape)
      {2100, 30, 41, Layout::RowMajor, Layout::Transposed},  // dnnl_sgemm: M > 2048
      {513, 1031, 509, Layout::RowMajor, Layout::RowMajor},        // primitive, b reordered
      {513, 1031, 509, Layout::ColumnSlice, Layout::ColumnSlice},  // primitive, b reordered from a strided view
      {513, 1031, 509, Layout::RowMajor, Layout::Transposed},      // primitive, b read as wᵀ
      {513, 1031, 509, Layout::Transposed, Layout::RowMajor},      // a transposed: the primitive, read as it is
  };
  uint64_t seed = 40;
  for (const Product& p : products) {
    CAPTURE(p.M);
    CAPTURE(p.N);
    CAPTURE(p.K);
    CAPTURE(static_cast<int>(p.a));
    CAPTURE(static_cast<int>(p.b));
    const hg::Tensor a = matrix(p.M, p.K, p.a, ++seed, device), b = matrix(p.K, p.N, p.b, ++seed, device);
    const hg::Tensor expected = hg::matmul(a.to(hg::kFloat64), b.to(hg::kFloat64));
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      hg::set_num_threads(threads);
      const hg::Tensor got = hg::matmul(a, b);
      CHECK(got.dtype() == hg::kFloat32);
      CHECK(got.is_contiguous());
      // |a b| ≤ K for entries in [-1, 1]; float32 sums of K ≈ 500 products stay within ~1e-4 of the exact value.
      hgtest::check_close(got.to(hg::kFloat64), expected, 1e-4, 1e-4);
      CHECK(hg::allclose(hg::matmul(a, b), got, 0, 0));  // the cached primitive, run again: the same bits
      results.push_back(got);
    }
  }
  hg::set_num_threads(threads_before);
  return results;
}

HG_BACKEND_TEST_TOL(matmul_large_products_in_mm_linear_and_their_gradients, 1e-4, 1e-3) {
  // linear's backward runs G·W (row-major: the primitive from 2^28 MACs) and Gᵀ·x (a transposed); both
  // against the float64 composite. x [513, 1031], W [509, 1031]: G·W is 513·1031·509 MACs with b 1031 columns wide.
  hg::Tensor x = hgtest::uniform({513, 1031}, -1, 1, 50).to(device, hg::kFloat32).requires_grad_();
  hg::Tensor w = hgtest::uniform({509, 1031}, -1, 1, 51).to(device, hg::kFloat32).requires_grad_();
  hg::Tensor x64 = x.detach().to(hg::kFloat64).requires_grad_(), w64 = w.detach().to(hg::kFloat64).requires_grad_();
  hg::Tensor upstream = hgtest::uniform({513, 509}, -1, 1, 52).to(device, hg::kFloat32);
  hg::Tensor y = hg::linear(x, w);
  hg::sum(hg::mul(y, upstream)).backward();
  hg::Tensor y64 = hg::matmul(x64, w64.t());
  hg::sum(hg::mul(y64, upstream.to(hg::kFloat64))).backward();
  hgtest::check_close(y.to(hg::kFloat64), y64, 1e-4, 1e-4);
  hgtest::check_close(x.grad().to(hg::kFloat64), x64.grad(), 1e-4, 1e-4);
  hgtest::check_close(w.grad().to(hg::kFloat64), w64.grad(), 1e-4, 1e-3);  // sums over 513 rows
  return {y.detach(), x.grad(), w.grad()};
}

TEST_CASE("matmul: a large product's reordered operand and scratchpad come from the host pool and go back") {
  hg::Tensor a = hgtest::uniform({1024, 512}, -1, 1, 60).to(hg::kFloat32);
  hg::Tensor b = hgtest::uniform({512, 1024}, -1, 1, 61).to(hg::kFloat32);
  hg::matmul(a, b);  // creates and caches the primitive
  const size_t before = hg::memory_stats(hg::kCPU).allocated_bytes;
  hg::reset_peak_memory_stats(hg::kCPU);
  hg::Tensor c = hg::matmul(a, b);
  const size_t c_bytes = c.numel() * sizeof(float), b_bytes = b.numel() * sizeof(float);
  // The peak held c and b in the primitive's blocked layout (dnnl_sgemm's buffers would not show here).
  CHECK(hg::memory_stats(hg::kCPU).peak_allocated_bytes >= before + c_bytes + b_bytes);
  c = hg::Tensor();
  CHECK(hg::memory_stats(hg::kCPU).allocated_bytes == before);
}

#if defined(__GLIBC__)
TEST_CASE("matmul: repeated large products leave glibc's heap where it was") {
  // dnnl_sgemm's packing buffers made the heap grow by ~2 MB per 1024³ call; the primitive takes its buffers from the
  // host pool.
  hg::Tensor a = hgtest::uniform({1024, 1024}, -1, 1, 70).to(hg::kFloat32);
  hg::Tensor b = hgtest::uniform({1024, 1024}, -1, 1, 71).to(hg::kFloat32);
  hg::matmul(a, b);  // the primitive is created (oneDNN mallocs its kernels and descriptors once)
  const struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 6; ++i) hg::matmul(a, b);
  const struct mallinfo2 after = mallinfo2();
  CHECK(after.arena <= before.arena + (size_t{256} << 10));    // main heap + thread arenas
  CHECK(after.hblkhd <= before.hblkhd + (size_t{256} << 10));  // mmap'ed blocks
}
#endif

// A 1×1 matrix cut from a strided tensor has neither inner stride 1 (here 15 and 3); its strides are never
// stepped along, so it is a valid GEMM operand (it was handed on with a leading dimension of 0, which
// dnnl_sgemm and cuBLAS refuse). Each product is checked against its float64 value.
HG_BACKEND_TEST(matmul_one_by_one_operands_with_no_unit_stride) {
  hg::Tensors out;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    const hg::TensorOptions o = hg::TensorOptions(dtype).device(device);
    hg::Tensor z = hg::arange(60, o).reshape({4, 5, 3});
    hg::Tensor y = z.select(2, 0).narrow(0, 1, 1).narrow(1, 2, 1);  // [[21]], strides (15, 3)
    REQUIRE(y.strides() == hg::Shape{15, 3});
    hg::Tensor x = hg::arange(3, o).reshape({3, 1});
    hg::Tensor mm = hg::matmul(x, y), lin = hg::linear(x, y), lin_t = hg::linear(y.expand({1, 1}), x.t().narrow(1, 0, 1));
    CHECK(mm.to(hg::kFloat64).to_vector<double>() == std::vector<double>{0, 21, 42});
    CHECK(lin.to(hg::kFloat64).to_vector<double>() == std::vector<double>{0, 21, 42});
    CHECK(lin_t.to(hg::kFloat64).to_vector<double>() == std::vector<double>{0});
    hg::Tensor batched = z.permute({2, 0, 1}).narrow(1, 0, 1).narrow(2, 1, 1);  // [3, 1, 1], strides (1, 15, 3)
    CHECK(hg::matmul(batched, batched).to(hg::kFloat64).to_vector<double>() == std::vector<double>{9, 16, 25});
    out.insert(out.end(), {mm, lin, lin_t});
  }
  return out;
}

// The CPU backend's primitive caches hold at most kDefaultPrimitiveCacheCapacity primitives each, dropping the least
// recently used: a model fed varying shapes (MIL bags, DeepRC minibatches) kept one per shape seen, for ever.
TEST_CASE("PrimitiveCache: keeps the most recently used entries up to its capacity") {
  hg::cpu::PrimitiveCache<int> cache(2);
  int created = 0;
  auto make = [&](int v) { return [&created, v] { ++created; return v; }; };
  CHECK(*cache.get("a", make(1)) == 1);
  CHECK(*cache.get("b", make(2)) == 2);
  CHECK(*cache.get("a", make(-1)) == 1);  // a hit: not created again, and now the most recently used
  CHECK(created == 2);
  std::shared_ptr<const int> held = cache.get("b", make(-2));
  CHECK(*cache.get("c", make(3)) == 3);  // drops "a", the least recently used
  CHECK(cache.size() == 2);
  CHECK(*cache.get("b", make(-2)) == 2);
  CHECK(created == 3);
  CHECK(*cache.get("a", make(10)) == 10);  // rebuilt; drops "c"
  CHECK(*cache.get("c", make(30)) == 30);  // rebuilt; drops "b"
  CHECK(created == 5);
  CHECK(*held == 2);  // an entry a caller still holds outlives its eviction
  CHECK(*cache.get("b", make(20)) == 20);
}

TEST_CASE("linear and matmul: more shapes than the primitive cache holds, then the first ones again") {
  const int64_t shapes = static_cast<int64_t>(hg::cpu::kDefaultPrimitiveCacheCapacity) + 40;
  hg::Tensor w = hgtest::uniform({24, 16}, -1, 1, 80).to(hg::kFloat32);
  hg::Tensor bias = hgtest::uniform({24}, -1, 1, 81).to(hg::kFloat32);
  hg::Tensor x_all = hgtest::uniform({shapes, 16}, -1, 1, 82).to(hg::kFloat32);
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t rows = 1; rows <= shapes; rows += pass == 0 ? 1 : 37) {  // the second pass: dropped primitives
      CAPTURE(rows);
      hg::Tensor x = x_all.narrow(0, 0, rows);
      hg::Tensor expected = hg::matmul(x.to(hg::kFloat64), w.to(hg::kFloat64).t()) + bias.to(hg::kFloat64);
      hgtest::check_close(hg::linear(x, w, bias).to(hg::kFloat64), expected, 1e-5, 1e-5);
      if (pass == 1)
        hgtest::check_close(hg::matmul(x.unsqueeze(0).expand({2, rows, 16}), w.t()).select(0, 1).to(hg::kFloat64),
                            expected - bias.to(hg::kFloat64), 1e-5, 1e-5);
    }
  }
}

TEST_CASE("matmul: both operands broadcast along the batch (stride 0), float32 and float64, with gradients") {
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    hg::Tensor a0 = hgtest::uniform({3, 4}, -1, 1, 1).to(dtype), b0 = hgtest::uniform({4, 5}, -1, 1, 2).to(dtype);
    hg::Tensor a = a0.detach().requires_grad_(), b = b0.detach().requires_grad_();
    hg::Tensor expected = hg::matmul(a0, b0);
    hg::Tensor y = hg::matmul(a.unsqueeze(0).expand({2, 3, 4}), b.unsqueeze(0).expand({2, 4, 5}));
    REQUIRE(y.sizes() == hg::Shape{2, 3, 5});
    for (int64_t i = 0; i < 2; ++i) hgtest::check_close(y.select(0, i), expected, 1e-6, 1e-6);
    y.sum().backward();
    // Each batch adds its gradient into the one shared matrix: twice that of a single product.
    hg::Tensor ga = hg::matmul(hg::ones({3, 5}, dtype), b0.t()), gb = hg::matmul(a0.t(), hg::ones({3, 5}, dtype));
    hgtest::check_close(a.grad(), hg::mul(ga, 2.0), 1e-5, 1e-5);
    hgtest::check_close(b.grad(), hg::mul(gb, 2.0), 1e-5, 1e-5);
    // 4-D batches broadcast from two sides, and bmm.
    hg::Tensor y4 = hg::matmul(a0.expand({2, 3, 3, 4}), b0.expand({2, 3, 4, 5}));
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) hgtest::check_close(y4.select(0, i).select(0, j), expected, 1e-6, 1e-6);
    hgtest::check_close(hg::bmm(a0.expand({4, 3, 4}), b0.expand({4, 4, 5})).select(0, 3), expected, 1e-6, 1e-6);
  }
}
