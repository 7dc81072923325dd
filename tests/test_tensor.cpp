// Tensor core: factories, views (no copies), conversions, printing, generators.
#include <cmath>
#include <limits>
#include <string>

#include "testing.h"

using hg::Tensor;

TEST_CASE("tensor: factories give the requested shape, dtype and values") {
  Tensor z = hg::zeros({2, 3});
  CHECK(z.sizes() == hg::Shape{2, 3});
  CHECK(z.dtype() == hg::kFloat32);
  CHECK(z.is_contiguous());
  CHECK(hg::ones({4}, hg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(hg::full({2}, 2.5, hg::kFloat64).to_vector<double>() == std::vector<double>{2.5, 2.5});
  CHECK(hg::arange(5, hg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(hg::arange(1, 2, 0.25, hg::kFloat64).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
  // int64 ranges truncate start, end and step to integers, as torch, and count in int64 (exact beyond 2^53).
  CHECK(hg::arange(-0.5, 2, 1, hg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(hg::arange(0.5, 3.7, 1, hg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2});
  CHECK(hg::arange(0x1p53, 0x1p53 + 4, 1, hg::kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{int64_t{1} << 53, (int64_t{1} << 53) + 1, (int64_t{1} << 53) + 2, (int64_t{1} << 53) + 3});
  CHECK(hg::arange(-0x1p62, 0x1p62, 0x1p62, hg::kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{-(int64_t{1} << 62), 0});
  CHECK_THROWS_WITH_AS(hg::arange(0, 2.5, 0.5, hg::kInt64), doctest::Contains("arange: step must be nonzero"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::arange(0, 1e19, 1, hg::kInt64), doctest::Contains("does not fit an int64 range"),
                       hg::Error);
  CHECK(hg::eye(3, hg::kFloat64).to_vector<double>() == std::vector<double>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(hg::eye(2, 3, hg::kFloat64).to_vector<double>() == std::vector<double>{1, 0, 0, 0, 1, 0});
  CHECK(hg::scalar_tensor(3.0).dim() == 0);
  CHECK(hg::scalar_tensor(3.0).item<float>() == 3.0f);
  Tensor b = hg::from_vector<bool>({true, false}, {2});
  CHECK(b.dtype() == hg::kBool);
  CHECK(b.to_vector<bool>() == std::vector<bool>{true, false});
  CHECK(hg::zeros_like(b).dtype() == hg::kBool);
}

TEST_CASE("tensor: empty refuses a shape whose element count overflows; an empty tensor's huge sizes are fine") {
  const int64_t big = int64_t{1} << 40;
  // 2^80 and 2^66 elements wrapped around to 0 and made a tensor of those sizes with no memory behind it.
  CHECK_THROWS_WITH_AS(hg::empty({big, big}), doctest::Contains("empty: shape [1099511627776, 1099511627776] of float32 "
                                                                  "has more elements than memory can address"),
                       hg::Error);
  CHECK_THROWS_AS(hg::zeros({int64_t{1} << 32, int64_t{1} << 32, 4}), hg::Error);
  CHECK_THROWS_AS(hg::empty({int64_t{1} << 61, 8}), hg::Error);  // the bytes overflow, not the count
  // With a zero size the tensor is empty whatever the others (as torch), and its strides do not overflow.
  const hg::Tensor e = hg::empty({0, big, big});
  CHECK(e.numel() == 0);
  CHECK(e.stride(2) == 1);
  CHECK(e.stride(1) == big);
}

TEST_CASE("tensor: from_blob wraps memory without copying and runs the deleter") {
  static int deleted = 0;
  float* data = new float[6]{1, 2, 3, 4, 5, 6};
  {
    Tensor t = hg::from_blob(data, {2, 3}, hg::kFloat32, [](void* p) {
      delete[] static_cast<float*>(p);
      ++deleted;
    });
    CHECK(t.data_ptr<float>() == data);
    Tensor v = t.select(1, 2);
    CHECK(v.to_vector<float>() == std::vector<float>{3, 6});
  }
  CHECK(deleted == 1);
}

TEST_CASE("tensor: views share storage and see writes") {
  Tensor x = hg::arange(12, hg::kFloat64).view({3, 4});
  Tensor t = x.t();
  CHECK(t.sizes() == hg::Shape{4, 3});
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.storage() == x.storage());
  Tensor row = x.select(0, 1);
  row.fill_(-1);
  CHECK(x.to_vector<double>() == std::vector<double>{0, 1, 2, 3, -1, -1, -1, -1, 8, 9, 10, 11});
  Tensor s = x.slice(1, 1, 4, 2);
  CHECK(s.sizes() == hg::Shape{3, 2});
  CHECK(s.to_vector<double>() == std::vector<double>{1, 3, -1, -1, 9, 11});
  Tensor e = hg::arange(3, hg::kFloat64).unsqueeze(0).expand({2, 3});
  CHECK(e.strides() == hg::Shape{0, 1});
  CHECK(e.contiguous().to_vector<double>() == std::vector<double>{0, 1, 2, 0, 1, 2});
  CHECK(x.permute({1, 0}).contiguous().view({-1}).to_vector<double>()[1] == -1.0);
  CHECK(x.unsqueeze(-1).sizes() == hg::Shape{3, 4, 1});
  CHECK(x.unsqueeze(-1).squeeze().sizes() == hg::Shape{3, 4});
  CHECK(x.flatten().sizes() == hg::Shape{12});
  CHECK(x.unflatten(1, {2, -1}).sizes() == hg::Shape{3, 2, 2});
  CHECK(x.narrow(0, 1, 2).offset() == 4);
  // reshape copies only when a view is impossible
  CHECK(x.reshape({4, 3}).storage() == x.storage());
  CHECK(t.reshape({12}).storage() != x.storage());
}

TEST_CASE("tensor: copy_ broadcasts and converts; to() converts dtype") {
  Tensor dst = hg::zeros({2, 3}, hg::kFloat64);
  dst.copy_(hg::from_vector<int64_t>({1, 2, 3}, {3}));
  CHECK(dst.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK(dst.to(hg::kInt64).dtype() == hg::kInt64);
  CHECK(hg::from_vector<double>({0.0, 2.0}, {2}).to(hg::kBool).to_vector<bool>() == std::vector<bool>{false, true});
  // From a tensor requiring grad to int64 or bool: a plain tensor, as torch (it threw).
  Tensor w = hg::from_vector<double>({-1.5, 2.5}, {2}).requires_grad_();
  Tensor wi = w.to(hg::kInt64), wb = w.to(hg::kBool);
  CHECK_FALSE(wi.requires_grad());
  CHECK_FALSE(wb.requires_grad());
  CHECK(wi.to_vector<int64_t>() == std::vector<int64_t>{-1, 2});
  CHECK(w.to(hg::kFloat32).requires_grad());
  uint64_t v0 = dst.version();
  dst.fill_(1);
  CHECK(dst.version() == v0 + 1);
  Tensor c = dst.clone();
  CHECK(c.storage() != dst.storage());
}

TEST_CASE("tensor: in-place ops read a source that overlaps the destination through a copy") {
  // Each result is what separate tensors give (PyTorch refuses these; a strided kernel writing while it reads got
  // the transpose wrong in 6 of 16 places).
  auto grid = [] { return hg::arange(20.0, hg::kFloat64).reshape({4, 5}); };
  auto values = [](const Tensor& t) { return t.contiguous().to_vector<double>(); };
  Tensor square = hg::arange(16.0, hg::kFloat64).reshape({4, 4});
  const std::vector<double> transposed = values(square.t());
  square.copy_(square.t());
  CHECK(values(square) == transposed);
  // Shifted by one column within the same rows, right and left (strided views of one storage).
  Tensor right = grid(), left = grid();
  const std::vector<double> right_expected = values(grid().narrow(1, 0, 4));
  const std::vector<double> left_expected = values(grid().narrow(1, 1, 4));
  right.narrow(1, 1, 4).copy_(right.narrow(1, 0, 4));
  left.narrow(1, 0, 4).copy_(left.narrow(1, 1, 4));
  CHECK(values(right.narrow(1, 1, 4)) == right_expected);
  CHECK(values(left.narrow(1, 0, 4)) == left_expected);
  // add_ and mul_ with the transpose; addcmul_ with overlapping factors.
  Tensor a = hg::arange(9.0, hg::kFloat64).reshape({3, 3}), b = a.clone();
  const std::vector<double> sum = values(a + a.t()), product = values(a * a.t());
  a.add_(a.t());
  b.mul_(b.t());
  CHECK(values(a) == sum);
  CHECK(values(b) == product);
  Tensor c = hg::arange(9.0, hg::kFloat64).reshape({3, 3});
  const std::vector<double> fused = values(c + 0.5 * c.t() * c);
  hg::addcmul_(c, c.t(), c, 0.5);
  CHECK(values(c) == fused);
  // What counts as overlapping: the same view does not (x.add_(x) reads each element before writing it).
  Tensor x = grid();
  CHECK_FALSE(hg::partially_overlaps(x, x));
  CHECK_FALSE(hg::partially_overlaps(x, x.view({20}).view({4, 5})));
  CHECK_FALSE(hg::partially_overlaps(x.narrow(0, 0, 2), x.narrow(0, 2, 2)));  // disjoint rows
  CHECK_FALSE(hg::partially_overlaps(x, grid()));                               // another storage
  CHECK(hg::partially_overlaps(x, x.t()));
  CHECK(hg::partially_overlaps(x.narrow(1, 0, 4), x.narrow(1, 1, 4)));
  x.add_(x);
  CHECK(values(x) == values(grid() * 2.0));
}

TEST_CASE("tensor: the same seed gives the same numbers; generators are independent") {
  hg::manual_seed(42);
  Tensor a = hg::randn({100});
  hg::manual_seed(42);
  Tensor b = hg::randn({100});
  CHECK(hg::max_abs_diff(a, b) == 0.0);
  hg::Generator g1(7), g2(7);
  CHECK(hg::rand({10}, {}, &g1).to_vector<float>() == hg::rand({10}, {}, &g2).to_vector<float>());
  Tensor u = hg::rand({20000}, hg::kFloat64);
  double mean = hg::mean(u).item<double>();
  CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
  Tensor n = hg::randn({20000}, hg::kFloat64);
  CHECK(hg::mean(n).item<double>() == doctest::Approx(0.0).epsilon(0.03));
  CHECK(hg::std(n).item<double>() == doctest::Approx(1.0).epsilon(0.03));
  Tensor r = hg::randint(3, 7, {1000});
  CHECK(hg::amin(r, {0}).item<int64_t>() == 3);
  CHECK(hg::amax(r, {0}).item<int64_t>() == 6);
  // A range wider than INT64_MAX (high − low formed in uint64: in int64 it overflowed).
  Tensor wide = hg::randint(INT64_MIN, INT64_MAX, {1000});
  CHECK(hg::amin(wide, {0}).item<int64_t>() < -(int64_t{1} << 60));
  CHECK(hg::amax(wide, {0}).item<int64_t>() > (int64_t{1} << 60));
}

TEST_CASE("tensor: printing shows values, shape, dtype and device like PyTorch") {
  Tensor t = hg::from_vector<float>({1, 2.5f, -3, 4}, {2, 2});
  std::string s = fmt::format("{}", t);
  CHECK(s == "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], shape=[2, 2], dtype=float32, device=cpu)");
  CHECK(fmt::format("{}", hg::arange(3, hg::kInt64)) == "tensor([0, 1, 2], shape=[3], dtype=int64, device=cpu)");
  CHECK(fmt::format("{}", hg::scalar_tensor(2)) == "tensor(2.0000, shape=[], dtype=float32, device=cpu)");
  std::string big = fmt::format("{}", hg::zeros({2000}));
  CHECK(big.find("...") != std::string::npos);
  // Summarised as torch: the first and last three along each long dimension; the hidden elements (here a 1e-6)
  // choose neither the notation nor the width.
  Tensor ones = hg::ones({2000}, hg::kFloat64);
  ones.narrow(0, 1000, 1).fill_(1e-6);
  CHECK(fmt::format("{}", ones) ==
        "tensor([1.0000, 1.0000, 1.0000, ..., 1.0000, 1.0000, 1.0000], shape=[2000], dtype=float64, device=cpu)");
  Tensor grid = hg::arange(40 * 50, hg::kInt64).view({40, 50});
  CHECK(fmt::format("{}", grid) == "tensor([[   0,    1,    2, ...,   47,   48,   49],\n"
                                   "        [  50,   51,   52, ...,   97,   98,   99],\n"
                                   "        [ 100,  101,  102, ...,  147,  148,  149],\n"
                                   "        ...,\n"
                                   "        [1850, 1851, 1852, ..., 1897, 1898, 1899],\n"
                                   "        [1900, 1901, 1902, ..., 1947, 1948, 1949],\n"
                                   "        [1950, 1951, 1952, ..., 1997, 1998, 1999]], shape=[40, 50], dtype=int64, "
                                   "device=cpu)");
  CHECK(fmt::format("{}", hg::zeros({3, 1000}).t()).find("shape=[1000, 3]") != std::string::npos);
  Tensor w = hg::ones({2}).requires_grad_();
  CHECK(fmt::format("{}", w * 2.0).find("grad_fn=<mul>") != std::string::npos);
}

TEST_CASE("tensor: devices parse and print") {
  CHECK(hg::Device("cpu") == hg::kCPU);
  CHECK(hg::Device("cuda:1") == hg::Device::cuda(1));
  CHECK(hg::Device("cuda").str() == "cuda:0");
  CHECK_THROWS_WITH_AS(hg::Device("gpu"), doctest::Contains("cannot parse 'gpu'"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::Device("cuda:x"), doctest::Contains("cannot parse"), hg::Error);
}

TEST_CASE("empty tensors are contiguous and can be filled with random numbers") {
  hg::Tensor e = hg::randn({3, 0});
  CHECK(e.is_contiguous());
  CHECK(e.numel() == 0);
  CHECK(hg::rand({0, 5}).size(1) == 5);
}

// float → int64 of what int64 cannot hold is defined, and the same on every backend: NaN, ±inf and values
// outside int64's range become INT64_MIN (x86's answer; a plain C++ cast is undefined, and a GPU's saturates).
HG_BACKEND_TEST(tensor_float_to_int64_of_unrepresentable_values) {
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  hg::Tensors out;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    const double inf = std::numeric_limits<double>::infinity();
    hg::Tensor x = hg::from_vector<double>({std::nan(""), inf, -inf, 1e19, -1e19, 2.7, -2.7, 0.0}, {8},
                                           hg::TensorOptions(hg::kFloat64).device(device))
                       .to(dtype);
    hg::Tensor i = x.to(hg::kInt64);
    CHECK(i.to_vector<int64_t>() ==
          std::vector<int64_t>{lowest, lowest, lowest, lowest, lowest, 2, -2, 0});
    out.push_back(i.to(hg::kFloat64));
  }
  return out;
}

TEST_CASE("tensor: a 0-dim tensor has no size, stride, slice, narrow or unflatten; transposed, it is a view") {
  Tensor a = hg::arange(5.0).select(0, 2);  // 0-dim, holding 2, at offset 2 of a 5-element storage
  CHECK_THROWS_WITH_AS(a.size(0), doctest::Contains("0-dim tensor, which has none"), hg::Error);
  CHECK_THROWS_WITH_AS(a.stride(-1), doctest::Contains("0-dim tensor, which has none"), hg::Error);
  CHECK_THROWS_WITH_AS(a.narrow(0, 1, 1), doctest::Contains("narrow: cannot narrow a 0-dim tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(a.slice(0, 3, 5), doctest::Contains("slice: cannot slice a 0-dim tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(a.unflatten(0, {1}), doctest::Contains("unflatten"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scalar_tensor(2.0).size(0), doctest::Contains("0-dim"), hg::Error);
  Tensor t = a.transpose(0, -1);
  CHECK(t.dim() == 0);
  CHECK(t.item<float>() == 2.0f);
  Tensor x = hg::scalar_tensor(3.0, hg::kFloat64).requires_grad_();
  x.t().backward();
  CHECK(x.grad().item<double>() == 1.0);
}

TEST_CASE("tensor: integer tensors against scalars that int64 cannot hold compare and compute in floating point") {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor i = hg::from_vector<int64_t>({1, 2, 3}, {3});
  Tensor b = hg::from_vector<bool>({true, false}, {2});
  CHECK(hg::lt(i, inf).to_vector<bool>() == std::vector<bool>{true, true, true});  // inf was cast to INT64_MIN
  CHECK(hg::le(i, 1e19).to_vector<bool>() == std::vector<bool>{true, true, true});
  CHECK(hg::gt(i, -1e19).to_vector<bool>() == std::vector<bool>{true, true, true});
  CHECK(hg::eq(i, 1e19).to_vector<bool>() == std::vector<bool>{false, false, false});
  CHECK(hg::lt(b, inf).to_vector<bool>() == std::vector<bool>{true, true});
  CHECK(hg::lt(i, 2.5).to_vector<bool>() == std::vector<bool>{true, true, false});
  Tensor m = hg::mul(i, 1e30);
  CHECK(m.dtype() == hg::kFloat32);
  CHECK(m.to_vector<float>()[2] == doctest::Approx(3e30));
  CHECK(hg::add(i, 1e19).dtype() == hg::kFloat32);
  CHECK(hg::add(i, 4.0).dtype() == hg::kInt64);
  CHECK_THROWS_WITH_AS(hg::pow(i, -1.0), doctest::Contains("negative integer powers"), hg::Error);
  CHECK(hg::pow(i, 2.0).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 9});
}

TEST_CASE("tensor: result_type: a 0-dim tensor takes part only with a higher category, as torch.result_type") {
  Tensor f32 = hg::ones({3}), f64 = hg::ones({3}, hg::kFloat64), i64 = hg::ones({3}, hg::kInt64);
  Tensor s64 = hg::scalar_tensor(2.0, hg::kFloat64), s32 = hg::scalar_tensor(2.0), si = hg::scalar_tensor(2, hg::kInt64);
  CHECK(hg::mul(f32, s64).dtype() == hg::kFloat32);
  CHECK(hg::add(s64, f32).dtype() == hg::kFloat32);
  CHECK(hg::mul(i64, s64).dtype() == hg::kFloat64);
  CHECK(hg::mul(i64, s32).dtype() == hg::kFloat32);
  CHECK(hg::mul(f32, si).dtype() == hg::kFloat32);
  CHECK(hg::add(hg::ones({2}, hg::kBool), si).dtype() == hg::kInt64);
  CHECK(hg::mul(s32, s64).dtype() == hg::kFloat64);  // both 0-dim: ordinary promotion
  CHECK(hg::mul(f32, f64).dtype() == hg::kFloat64);
  CHECK(hg::where(hg::ones({3}, hg::kBool), f32, s64).dtype() == hg::kFloat32);
  CHECK(hg::lt(f32, s64).dtype() == hg::kBool);
  CHECK(hg::result_type(i64, 0.5) == hg::kFloat32);
  CHECK(hg::result_type(i64, 1e19) == hg::kFloat32);
  CHECK(hg::result_type(i64, -3.0) == hg::kInt64);
}

TEST_CASE("tensor: in-place ops refuse results their destination's dtype cannot hold; div_ divides") {
  Tensor i = hg::from_vector<int64_t>({4, 6, 9}, {3});
  CHECK_THROWS_WITH_AS(i.div_(2.0), doctest::Contains("div_: the result has dtype float32"), hg::Error);
  CHECK_THROWS_WITH_AS(i.mul_(0.5), doctest::Contains("mul_"), hg::Error);
  CHECK_THROWS_WITH_AS(i.add_(0.7), doctest::Contains("add_"), hg::Error);
  CHECK_THROWS_WITH_AS(i.add_(hg::ones({3})), doctest::Contains("cannot be written into"), hg::Error);
  CHECK_THROWS_WITH_AS(i.add_(i, 0.5), doctest::Contains("add_"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::ones({2}, hg::kBool).mul_(hg::ones({2}, hg::kInt64)), doctest::Contains("mul_"), hg::Error);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{4, 6, 9});  // nothing written
  i.mul_(2.0).add_(hg::ones({3}, hg::kInt64)).sub_(hg::ones({3}, hg::kBool));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{8, 12, 18});
  // x / 10 and x · 0.1 round differently for some x: div_ matches div bit for bit.
  Tensor x = hg::arange(1.0, 1000.0);
  Tensor y = x.clone();
  y.div_(10.0);
  CHECK(hg::allclose(y, hg::div(x, 10.0), 0, 0));
  Tensor w = hg::ones({2}, hg::kFloat64).requires_grad_();
  Tensor v = w * 3.0;
  v.div_(4.0);
  v.sum().backward();
  hgtest::check_close(w.grad(), hg::full({2}, 0.75, hg::kFloat64));
}

TEST_CASE("tensor: full and fill_ refuse a value int64 or float32 cannot hold; arange refuses infinite and enormous ranges") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(hg::full({2}, std::nan(""), hg::kInt64), doctest::Contains("full: value nan"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::zeros({2}, hg::kInt64).fill_(1e19), doctest::Contains("without overflow"), hg::Error);
  CHECK(hg::full({1}, 2.7, hg::kInt64).item<int64_t>() == 2);  // truncated, as torch
  CHECK(hg::full({1}, -0x1p63, hg::kInt64).item<int64_t>() == std::numeric_limits<int64_t>::min());
  // float32: a finite value beyond its range is an error (it silently became inf); inf and NaN are kept.
  CHECK_THROWS_WITH_AS(hg::full({1}, 1e300), doctest::Contains("full: value 1e+300 cannot be converted to float32"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::zeros({2}).fill_(-1e39), doctest::Contains("fill_: value -1e+39"), hg::Error);
  CHECK(std::isinf(hg::full({1}, inf).item<float>()));
  CHECK(hg::full({1}, 1e300, hg::kFloat64).item<double>() == 1e300);
  CHECK_THROWS_WITH_AS(hg::arange(0.0, inf, 1.0), doctest::Contains("must be finite"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::arange(0.0, 1e20, 1e-10), doctest::Contains("too many"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::arange(std::nan(""), 1.0, 1.0), doctest::Contains("arange"), hg::Error);
}

TEST_CASE("tensor: printing keeps every digit of int64; scientific notation when magnitudes span decades") {
  Tensor i = hg::from_vector<int64_t>({std::numeric_limits<int64_t>::max(), (int64_t{1} << 53) + 1}, {2});
  const std::string s = hg::to_string(i);
  CHECK(s.find("9223372036854775807") != std::string::npos);
  CHECK(s.find("9007199254740993") != std::string::npos);
  CHECK(hg::to_string(hg::from_vector<double>({1e-10, 1.0}, {2})).find("1.0000e-10") != std::string::npos);
  CHECK(hg::to_string(hg::from_vector<double>({0.5, 100.0}, {2})).find("100.0000") != std::string::npos);
  CHECK(hg::to_string(hg::from_vector<double>({0.0, 1.0}, {2})).find("0.0000") != std::string::npos);
}

TEST_CASE("tensor: errors of binary ops name the op") {
  CHECK_THROWS_WITH_AS(hg::add(Tensor(), hg::ones({2})), doctest::Contains("add: got an undefined tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::masked_fill(hg::ones({2, 3}), hg::ones({4}, hg::kBool), 0.0),
                       doctest::Contains("masked_fill: mask of shape [4]"), hg::Error);
}
