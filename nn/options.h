#pragma once
// Helpers for layer option structs with chained setters, as libtorch's TORCH_ARG and ExpandingArray:
//
//   struct LinearOptions {
//     LinearOptions(int64_t in, int64_t out) : in_features_(in), out_features_(out) {}
//     HG_ARG(int64_t, in_features);
//     HG_ARG(int64_t, out_features);
//     HG_ARG(bool, bias) = true;
//   };
//   auto options = LinearOptions(4, 2).bias(false);   options.bias() == false
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include <fmt/format.h>

#include <hopgrad/core/error.h>
#include <hopgrad/core/shape.h>

/// Declares option `name` of type T: a setter `name(value)` returning the options for chaining, a getter
/// `name()`, and the member `name##_` (which the declaration's `= default_value` initialises).
#define HG_ARG(T, name)                                  \
 public:                                                 \
  auto& name(const T& new_value) {                       \
    this->name##_ = new_value;                           \
    return *this;                                        \
  }                                                      \
  const T& name() const noexcept { return this->name##_; } \
                                                         \
 private:                                                \
  T name##_ /* NOLINT */

namespace hg::nn {

/// N integers given either as one value for every dim (`3` → {3, 3}) or one per dim (`{3, 5}`).
template <size_t N> class ExpandingArray {
 public:
  ExpandingArray(int64_t value) { values_.fill(value); }
  ExpandingArray(std::initializer_list<int64_t> list) {
    HG_CHECK(list.size() == N, "ExpandingArray: expected {} values, got {}", N, list.size());
    std::copy(list.begin(), list.end(), values_.begin());
  }
  ExpandingArray(const std::array<int64_t, N>& values) : values_(values) {}

  int64_t operator[](size_t i) const { return values_[i]; }
  IntArrayRef ref() const { return IntArrayRef(values_.data(), N); }
  operator IntArrayRef() const { return ref(); }
  bool operator==(const ExpandingArray&) const = default;

 private:
  std::array<int64_t, N> values_{};
};

}  // namespace hg::nn

template <size_t N> struct fmt::formatter<hg::nn::ExpandingArray<N>> : fmt::formatter<std::string_view> {
  auto format(const hg::nn::ExpandingArray<N>& a, fmt::format_context& ctx) const {
    std::string text = "(";
    for (size_t i = 0; i < N; ++i) text += fmt::format("{}{}", i ? ", " : "", a[i]);
    return fmt::formatter<std::string_view>::format(text + ")", ctx);
  }
};
