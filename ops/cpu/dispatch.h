#pragma once
// Dtype dispatch: runs a generic lambda with `scalar_t` bound to the C++ type of a runtime DType.
//
//   HG_DISPATCH_FLOATING(x.dtype(), "softmax", [&] { kernel<scalar_t>(x, out); });
#include <cstdint>

#include <hopgrad/core/dtype.h>
#include <hopgrad/core/error.h>

#define HG_DISPATCH_CASE(DT, T, ...) \
  case DT: {                         \
    using scalar_t = T;              \
    return __VA_ARGS__();            \
  }

/// float32, float64.
#define HG_DISPATCH_FLOATING(DTYPE, NAME, ...)                                                         \
  [&] {                                                                                                \
    switch (DTYPE) {                                                                                   \
      HG_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)                                       \
      HG_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__)                                      \
      default: HG_FAIL("{}: dtype {} is not supported (expected float32 or float64)", NAME, DTYPE);    \
    }                                                                                                  \
  }()

/// float32, float64, int64.
#define HG_DISPATCH_NUMERIC(DTYPE, NAME, ...)                                                          \
  [&] {                                                                                                \
    switch (DTYPE) {                                                                                   \
      HG_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)                                       \
      HG_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__)                                      \
      HG_DISPATCH_CASE(::hg::DType::Int64, int64_t, __VA_ARGS__)                                       \
      default: HG_FAIL("{}: dtype {} is not supported (expected float32, float64 or int64)", NAME, DTYPE); \
    }                                                                                                  \
  }()

/// float32, float64, int64, bool (as uint8_t).
#define HG_DISPATCH_ALL(DTYPE, NAME, ...)                                                              \
  [&] {                                                                                                \
    switch (DTYPE) {                                                                                   \
      HG_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)                                       \
      HG_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__)                                      \
      HG_DISPATCH_CASE(::hg::DType::Int64, int64_t, __VA_ARGS__)                                       \
      HG_DISPATCH_CASE(::hg::DType::Bool, uint8_t, __VA_ARGS__)                                        \
    }                                                                                                  \
    HG_FAIL("{}: unknown dtype", NAME);                                                                \
  }()
