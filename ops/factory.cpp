// Factories: new tensors from sizes, values, ranges and random numbers.
#include <cmath>

#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/kernel_checks.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad_) t.requires_grad_(true);
  return t;
}
Generator& pick(Generator* gen, Device d) { return gen ? *gen : default_generator(d); }
}  // namespace

Tensor empty(IntArrayRef sizes, TensorOptions o) { return finish(empty(sizes, o.dtype_, o.device_), o); }

Tensor full(IntArrayRef sizes, double value, TensorOptions o) {
  detail::check_fill_value("full", o.dtype_, value);
  Tensor t = empty(sizes, o.dtype_, o.device_);
  backend_for(o.device_).fill(t, value);
  return finish(t, o);
}
Tensor zeros(IntArrayRef sizes, TensorOptions o) { return full(sizes, 0.0, o); }
Tensor ones(IntArrayRef sizes, TensorOptions o) { return full(sizes, 1.0, o); }

Tensor arange(double end, TensorOptions o) { return arange(0.0, end, 1.0, o); }
Tensor arange(double start, double end, double step, TensorOptions o) {
  HG_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
           "arange: unsupported range {} -> {} with step {} (start, end and step must be finite)", start, end, step);
  if (o.dtype_ == kInt64) {
    // As torch: an int64 range takes start, end and step truncated to integers (arange(-0.5, 2, 1) is [0, 1], and
    // a step of 0.5 is a step of 0), and its elements are start + i·step in int64 arithmetic (exact beyond 2^53).
    for (double v : {start, end, step})
      HG_CHECK(std::abs(v) < 0x1p63, "arange: {} does not fit an int64 range ({} -> {} with step {})", v, start, end,
               step);
    start = std::trunc(start);
    end = std::trunc(end);
    step = std::trunc(step);
    HG_CHECK(step != 0.0, "arange: step must be nonzero (an int64 range truncates its step to an integer)");
  }
  HG_CHECK(step != 0.0, "arange: step must be nonzero");
  HG_CHECK((end - start) / step >= 0 || start == end,
           "arange: step {} moves away from end (start {}, end {})", step, start, end);
  const double count = std::ceil((end - start) / step);
  HG_CHECK(count < 0x1p62, "arange: range {} -> {} with step {} has {} elements, too many for a tensor", start, end,
           step, count);
  auto n = static_cast<int64_t>(count);
  Tensor t = empty({std::max<int64_t>(n, 0)}, o.dtype_, o.device_);
  if (n > 0) backend_for(o.device_).arange(t, start, step);
  return finish(t, o);
}

Tensor eye(int64_t n, TensorOptions o) { return eye(n, n, o); }
Tensor eye(int64_t n, int64_t m, TensorOptions o) {
  HG_CHECK(n >= 0 && m >= 0, "eye: sizes must be non-negative, got {} x {}", n, m);
  Tensor t = zeros({n, m}, TensorOptions(o.dtype_).device(o.device_));
  // The diagonal is a strided view with stride m + 1.
  Tensor diag = make_tensor(t.storage(), Shape{std::min(n, m)}, Shape{m + 1}, 0, t.dtype());
  backend_for(o.device_).fill(diag, 1.0);
  return finish(t, o);
}

Tensor rand(IntArrayRef sizes, TensorOptions o, Generator* gen) {
  Tensor t = empty(sizes, o.dtype_, o.device_);
  auto [seed, offset] = pick(gen, o.device_).reserve(static_cast<uint64_t>(t.numel()));
  backend_for(o.device_).uniform(t, 0.0, 1.0, seed, offset);
  return finish(t, o);
}

Tensor randn(IntArrayRef sizes, TensorOptions o, Generator* gen) {
  Tensor t = empty(sizes, o.dtype_, o.device_);
  auto [seed, offset] = pick(gen, o.device_).reserve(static_cast<uint64_t>(t.numel()));
  backend_for(o.device_).normal(t, 0.0, 1.0, seed, offset);
  return finish(t, o);
}

Tensor randint(int64_t low, int64_t high, IntArrayRef sizes, TensorOptions o, Generator* gen) {
  HG_CHECK(high > low, "randint: empty range [{}, {})", low, high);
  Tensor t = empty(sizes, o.dtype_, o.device_);
  auto [seed, offset] = pick(gen, o.device_).reserve(static_cast<uint64_t>(t.numel()));
  backend_for(o.device_).randint(t, low, high, seed, offset);
  return finish(t, o);
}

template <typename T> Tensor from_vector(const std::vector<T>& values, IntArrayRef sizes, TensorOptions o) {
  Shape shape(sizes);
  HG_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
           "from_vector: {} values do not fill shape {} ({} elements)", values.size(), shape, shape.numel());
  Tensor host = empty(sizes, dtype_of_v<T>, kCPU);
  if constexpr (std::is_same_v<T, bool>) {
    auto* p = host.data_ptr<uint8_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i] ? 1 : 0;
  } else {
    std::copy(values.begin(), values.end(), host.data_ptr<T>());
  }
  return finish(host.to(o.device_, o.dtype_), o);
}
template Tensor from_vector<float>(const std::vector<float>&, IntArrayRef, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, IntArrayRef, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, IntArrayRef, TensorOptions);
template Tensor from_vector<bool>(const std::vector<bool>&, IntArrayRef, TensorOptions);

Tensor from_blob(void* data, IntArrayRef sizes, DType dtype, std::function<void(void*)> deleter, Device device) {
  Shape shape(sizes);
  auto storage = std::make_shared<Storage>(data, static_cast<size_t>(shape.numel()) * element_size(dtype), device,
                                           std::move(deleter));
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor scalar_tensor(double value, TensorOptions o) { return full({}, value, o); }

Tensor empty_like(const Tensor& t) { return empty(t.sizes(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), TensorOptions(t.dtype()).device(t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), TensorOptions(t.dtype()).device(t.device())); }
Tensor full_like(const Tensor& t, double v) { return full(t.sizes(), v, TensorOptions(t.dtype()).device(t.device())); }
Tensor rand_like(const Tensor& t, Generator* g) { return rand(t.sizes(), TensorOptions(t.dtype()).device(t.device()), g); }
Tensor randn_like(const Tensor& t, Generator* g) {
  return randn(t.sizes(), TensorOptions(t.dtype()).device(t.device()), g);
}

}  // namespace hg
