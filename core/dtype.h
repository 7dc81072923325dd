#pragma once
// Element types. Bool masks are stored one byte per element.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace hg {

enum class DType : uint8_t { Float32, Float64, Int64, Bool };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kBool = DType::Bool;

/// Bytes per element.
constexpr size_t element_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

/// Result type of a binary op between two dtypes, as in PyTorch's type promotion for these four types:
/// bool < int64 < float32 < float64.
constexpr DType promote_types(DType a, DType b) {
  auto rank = [](DType t) {
    switch (t) {
      case DType::Bool: return 0;
      case DType::Int64: return 1;
      case DType::Float32: return 2;
      case DType::Float64: return 3;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

/// C++ type → DType.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::Bool; };  // bool storage
template <typename T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

}  // namespace hg

template <> struct fmt::formatter<hg::DType> : fmt::formatter<std::string_view> {
  auto format(hg::DType t, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(hg::dtype_name(t), ctx);
  }
};
