#pragma once
// Shape: a small inline vector of sizes or strides (no heap allocation; at most kMaxDims entries),
// and IntArrayRef: a non-owning view of int64 lists used by op signatures.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace hg {

inline constexpr int kMaxDims = 8;

namespace detail {
[[noreturn]] void throw_too_many_dims(size_t n);
}

/// A non-owning view of a list of int64 (sizes, dims). Built from `{2, 3}`, a std::vector or a Shape.
class IntArrayRef {
 public:
  constexpr IntArrayRef() = default;
  constexpr IntArrayRef(const int64_t* data, size_t size) : data_(data), size_(size) {}
  // Viewing a braced list is safe for the duration of the call it is passed to, which is how op signatures use
  // IntArrayRef (as c10::ArrayRef does); g++ warns about the pattern in general.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
  constexpr IntArrayRef(std::initializer_list<int64_t> list) : data_(list.begin()), size_(list.size()) {}
#pragma GCC diagnostic pop
  IntArrayRef(const std::vector<int64_t>& v) : data_(v.data()), size_(v.size()) {}
  constexpr IntArrayRef(const int64_t& single) : data_(&single), size_(1) {}

  constexpr const int64_t* begin() const { return data_; }
  constexpr const int64_t* end() const { return data_ + size_; }
  constexpr size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr int64_t operator[](size_t i) const { return data_[i]; }
  std::vector<int64_t> vec() const { return {begin(), end()}; }

 private:
  const int64_t* data_ = nullptr;
  size_t size_ = 0;
};

/// Sizes or strides of a tensor, stored inline.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> list) { assign(list.begin(), list.size()); }
  Shape(IntArrayRef ref) { assign(ref.begin(), ref.size()); }
  Shape(const std::vector<int64_t>& v) { assign(v.data(), v.size()); }
  explicit Shape(size_t n, int64_t value = 0) {
    if (n > kMaxDims) detail::throw_too_many_dims(n);
    n_ = static_cast<uint8_t>(n);
    std::fill(d_, d_ + n, value);
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  int64_t* data() { return d_; }
  const int64_t* data() const { return d_; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t back() const { return d_[n_ - 1]; }
  operator IntArrayRef() const { return IntArrayRef(d_, n_); }
  std::vector<int64_t> vec() const { return {begin(), end()}; }

  void push_back(int64_t v) {
    if (n_ >= kMaxDims) detail::throw_too_many_dims(n_ + 1u);
    d_[n_++] = v;
  }
  void insert(size_t pos, int64_t v) {
    if (n_ >= kMaxDims) detail::throw_too_many_dims(n_ + 1u);
    std::copy_backward(d_ + pos, d_ + n_, d_ + n_ + 1);
    d_[pos] = v;
    ++n_;
  }
  void erase(size_t pos) {
    std::copy(d_ + pos + 1, d_ + n_, d_ + pos);
    --n_;
  }
  void resize(size_t n, int64_t value = 0) {
    if (n > kMaxDims) detail::throw_too_many_dims(n);
    for (size_t i = n_; i < n; ++i) d_[i] = value;
    n_ = static_cast<uint8_t>(n);
  }

  /// Product of all entries (1 for an empty shape).
  int64_t numel() const {
    int64_t p = 1;
    for (size_t i = 0; i < n_; ++i) p *= d_[i];
    return p;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.n_ == b.n_ && std::equal(a.d_, a.d_ + a.n_, b.d_);
  }
  std::string str() const { return fmt::format("[{}]", fmt::join(begin(), end(), ", ")); }

 private:
  void assign(const int64_t* p, size_t n) {
    if (n > kMaxDims) detail::throw_too_many_dims(n);
    std::copy(p, p + n, d_);
    n_ = static_cast<uint8_t>(n);
  }
  int64_t d_[kMaxDims] = {};
  uint8_t n_ = 0;
};

/// Row-major (C-contiguous) strides for a shape. The running product saturates at INT64_MAX: only an empty
/// tensor's sizes can get there (empty() refuses larger nonempty shapes), and its strides address nothing.
inline Shape contiguous_strides(const Shape& sizes) {
  Shape s(sizes.size(), 1);
  int64_t acc = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    s[i] = acc;
    if (__builtin_mul_overflow(acc, std::max<int64_t>(sizes[i], 1), &acc)) acc = INT64_MAX;
  }
  return s;
}

}  // namespace hg

template <> struct fmt::formatter<hg::Shape> : fmt::formatter<std::string> {
  auto format(const hg::Shape& s, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(s.str(), ctx);
  }
};
template <> struct fmt::formatter<hg::IntArrayRef> : fmt::formatter<std::string> {
  auto format(const hg::IntArrayRef& s, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(fmt::format("[{}]", fmt::join(s.begin(), s.end(), ", ")), ctx);
  }
};
