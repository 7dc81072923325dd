#pragma once
// Shared machinery of the CUDA kernels (ops/cuda/*.cu):
//  - from ops/cuda/runtime.h (host-only, so that the .cpp files can use it too): HG_CUDA_CHECK / HG_CUBLAS_CHECK,
//    DeviceGuard, the per-device SM count and cuBLAS handle;
//  - launch helpers: grid-stride loops sized to the device;
//  - OffsetCalculator: byte offsets of N strided / broadcast operands (up to kMaxDims) at a linear index;
//  - gpu_kernel: the elementwise loop every unary/binary/copy kernel is written with (the CUDA twin of
//    ops/cpu/loops.h's cpu_kernel);
//  - HG_CUDA_DISPATCH_*: dtype dispatch (float, double, int64_t, and uint8_t for bool);
//  - warp and block reductions.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/ops/cuda/cuda_backend.h>
#include <hopgrad/ops/cuda/runtime.h>

// ---- dtype dispatch ------------------------------------------------------------------------------------
#define HG_CUDA_DISPATCH_CASE(DT, T, ...) \
  case DT: {                              \
    using scalar_t = T;                   \
    return __VA_ARGS__();                 \
  }

/// float32, float64.
#define HG_CUDA_DISPATCH_FLOATING(DTYPE, NAME, ...)                                                        \
  [&] {                                                                                                    \
    switch (DTYPE) {                                                                                       \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)                                      \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__)                                     \
      default: HG_FAIL("{} (cuda): dtype {} is not supported (expected float32 or float64)", NAME, DTYPE); \
    }                                                                                                      \
  }()

/// float32, float64, int64.
#define HG_CUDA_DISPATCH_NUMERIC(DTYPE, NAME, ...)                                                                \
  [&] {                                                                                                           \
    switch (DTYPE) {                                                                                              \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)                                             \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__)                                            \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Int64, int64_t, __VA_ARGS__)                                             \
      default: HG_FAIL("{} (cuda): dtype {} is not supported (expected float32, float64 or int64)", NAME, DTYPE); \
    }                                                                                                             \
  }()

/// float32, float64, int64, bool (as uint8_t).
#define HG_CUDA_DISPATCH_ALL(DTYPE, NAME, ...)                         \
  [&] {                                                                \
    switch (DTYPE) {                                                   \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float32, float, __VA_ARGS__)  \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Float64, double, __VA_ARGS__) \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Int64, int64_t, __VA_ARGS__)  \
      HG_CUDA_DISPATCH_CASE(::hg::DType::Bool, uint8_t, __VA_ARGS__)   \
    }                                                                  \
    HG_FAIL("{} (cuda): unknown dtype", NAME);                         \
  }()

namespace hg::cuda {

// ---- launch helpers ----------------------------------------------------------------------------------------

inline constexpr int kBlockSize = 256;

/// Blocks for a grid-stride loop over n items: enough to fill the device a few times over, never more than n needs.
inline unsigned grid_for(int64_t n, int device, int block = kBlockSize) {
  int64_t needed = (n + block - 1) / block;
  int64_t cap = static_cast<int64_t>(sm_count(device)) * (2048 / block) * 4;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(needed, cap)));
}

/// Threads per block for a kernel that gives each row one block: a power of two in [32, 1024], about n / 4.
inline int block_for_row(int64_t n) {
  int threads = 32;
  while (threads < 1024 && threads * 4 < n) threads *= 2;
  return threads;
}

#define HG_GRID_STRIDE_LOOP(i, n)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

/// q = a / b, r = a % b for non-negative a and positive b; 32-bit division when both fit (much cheaper).
__device__ __forceinline__ void divmod(int64_t a, int64_t b, int64_t& q, int64_t& r) {
  if (((a | b) >> 32) == 0) {
    uint32_t q32 = static_cast<uint32_t>(a) / static_cast<uint32_t>(b);
    q = q32;
    r = static_cast<int64_t>(static_cast<uint32_t>(a) - q32 * static_cast<uint32_t>(b));
  } else {
    q = a / b;
    r = a - q * b;
  }
}

// ---- strided operands --------------------------------------------------------------------------------------

/// Byte offsets of N operands that share one shape, at a linear (row-major) index of that shape. Dims are
/// coalesced on the host as in ops/cpu/loops.h (size-1 dims dropped, dims that are contiguous in every operand
/// merged), innermost first, so a contiguous or broadcast-scalar operand costs one multiply and no division.
template <int N> struct OffsetCalculator {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims][N];  // bytes; [dim innermost first][operand]

  OffsetCalculator() = default;
  /// `strides[k]` are operand k's strides in elements (0 = broadcast), `element_sizes[k]` its bytes per element.
  OffsetCalculator(const Shape& shape, const std::array<Shape, N>& element_strides,
                   const std::array<int64_t, N>& element_sizes) {
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (shape[d] == 1) continue;
      bool merge = ndim > 0;
      for (int k = 0; k < N && merge; ++k)
        merge = element_strides[k][d] * element_sizes[k] == strides[ndim - 1][k] * sizes[ndim - 1];
      if (merge) {
        sizes[ndim - 1] *= shape[d];
      } else {
        sizes[ndim] = shape[d];
        for (int k = 0; k < N; ++k) strides[ndim][k] = element_strides[k][d] * element_sizes[k];
        ++ndim;
      }
    }
    if (ndim == 0) {  // one element
      ndim = 1;
      sizes[0] = 1;
      for (int k = 0; k < N; ++k) strides[0][k] = 0;
    }
  }
  /// Operands given as tensors that all have `shape` (broadcast views included).
  OffsetCalculator(const Shape& shape, const std::array<const Tensor*, N>& tensors)
      : OffsetCalculator(shape, strides_of(tensors), element_sizes_of(tensors)) {}

  __device__ __forceinline__ void get(int64_t linear, int64_t (&offsets)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) offsets[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim) break;
      int64_t index = linear;
      if (d + 1 < ndim) divmod(linear, sizes[d], linear, index);
#pragma unroll
      for (int k = 0; k < N; ++k) offsets[k] += index * strides[d][k];
    }
  }

 private:
  static std::array<Shape, N> strides_of(const std::array<const Tensor*, N>& t) {
    std::array<Shape, N> s;
    for (int k = 0; k < N; ++k) s[k] = t[k]->strides();
    return s;
  }
  static std::array<int64_t, N> element_sizes_of(const std::array<const Tensor*, N>& t) {
    std::array<int64_t, N> s;
    for (int k = 0; k < N; ++k) s[k] = static_cast<int64_t>(t[k]->element_size());
    return s;
  }
};

template <int N, typename Body>
__global__ void strided_loop_kernel(int64_t numel, OffsetCalculator<N> calc, Body body) {
  HG_GRID_STRIDE_LOOP(i, numel) {
    int64_t offsets[N];
    calc.get(i, offsets);
    body(offsets);
  }
}

/// out = f(in...) at one position: out and inputs at their byte offsets.
template <typename Out, typename F, typename... In> struct ElementwiseBody {
  char* out;
  const char* in[sizeof...(In) + 1];  // +1: no zero-length array for fills
  F f;

  __device__ __forceinline__ void operator()(const int64_t (&offsets)[sizeof...(In) + 1]) const {
    apply(offsets, std::index_sequence_for<In...>{});
  }
  template <size_t... I>
  __device__ __forceinline__ void apply(const int64_t (&offsets)[sizeof...(In) + 1], std::index_sequence<I...>) const {
    *reinterpret_cast<Out*>(out + offsets[0]) = f(*reinterpret_cast<const In*>(in[I] + offsets[I + 1])...);
  }
};

/// out[i] = f(inputs[i]...) over out's shape on out's device. Inputs have out's shape (broadcast views are
/// fine) and element types In...; out may be strided. `f` is a __device__ lambda; the element types are spelled
/// out because a device lambda's return type cannot be inspected on the host.
template <typename Out, typename... In, typename F>
void gpu_kernel(Tensor& out, const std::array<const Tensor*, sizeof...(In)>& inputs, F f) {
  constexpr int N = 1 + sizeof...(In);
  int64_t numel = out.numel();
  if (numel == 0) return;
  std::array<const Tensor*, N> operands;
  operands[0] = &out;
  for (int k = 0; k + 1 < N; ++k) operands[k + 1] = inputs[k];
  OffsetCalculator<N> calc(out.sizes(), operands);
  ElementwiseBody<Out, F, In...> body{static_cast<char*>(out.data_ptr()), {}, f};
  for (int k = 0; k + 1 < N; ++k) body.in[k] = static_cast<const char*>(inputs[k]->data_ptr());
  int device = out.device().index;
  strided_loop_kernel<N><<<grid_for(numel, device), kBlockSize>>>(numel, calc, body);
  HG_CUDA_CHECK_LAUNCH();
}

template <typename F> __global__ void for_each_index_kernel(int64_t n, F f) { HG_GRID_STRIDE_LOOP(i, n) f(i); }

/// f(i) for i in [0, n) on the current device; `f` is a __device__ lambda.
template <typename F> void for_each_index(int64_t n, int device, F f) {
  if (n <= 0) return;
  for_each_index_kernel<<<grid_for(n, device), kBlockSize>>>(n, f);
  HG_CUDA_CHECK_LAUNCH();
}

// ---- element helpers ---------------------------------------------------------------------------------------

// Device math overloaded on float/double, spelled out so that float never silently takes the double path.
namespace math {
__device__ __forceinline__ float exp(float x) { return ::expf(x); }
__device__ __forceinline__ float log(float x) { return ::logf(x); }
__device__ __forceinline__ float log1p(float x) { return ::log1pf(x); }
__device__ __forceinline__ float expm1(float x) { return ::expm1f(x); }
__device__ __forceinline__ float sqrt(float x) { return ::sqrtf(x); }
__device__ __forceinline__ float sin(float x) { return ::sinf(x); }
__device__ __forceinline__ float cos(float x) { return ::cosf(x); }
__device__ __forceinline__ float tanh(float x) { return ::tanhf(x); }
__device__ __forceinline__ float erf(float x) { return ::erff(x); }
__device__ __forceinline__ float fabs(float x) { return ::fabsf(x); }
__device__ __forceinline__ double exp(double x) { return ::exp(x); }
__device__ __forceinline__ double log(double x) { return ::log(x); }
__device__ __forceinline__ double log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ double expm1(double x) { return ::expm1(x); }
__device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ double sin(double x) { return ::sin(x); }
__device__ __forceinline__ double cos(double x) { return ::cos(x); }
__device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ double erf(double x) { return ::erf(x); }
__device__ __forceinline__ double fabs(double x) { return ::fabs(x); }
}  // namespace math

template <typename T> __device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return isnan(v);
  else
    return false;
}

/// Identity of Max (the lowest value) and Min (the highest), as the CPU Reducer.
template <typename T> __host__ __device__ constexpr T lowest_value() {
  if constexpr (std::numeric_limits<T>::has_infinity)
    return -std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::lowest();
}
template <typename T> __host__ __device__ constexpr T highest_value() {
  if constexpr (std::numeric_limits<T>::has_infinity)
    return std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::max();
}

// ---- warp and block reductions -----------------------------------------------------------------------------

template <typename T> struct Plus {
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

/// Reduces v across the 32 lanes of a warp with `combine`; the result is valid in lane 0.
template <typename T, typename Combine> __device__ __forceinline__ T warp_reduce(T v, Combine combine) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = combine(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}

/// Reduces v across the block (blockDim.x a multiple of 32, at most 1024) and returns the result to every thread.
/// Every thread of the block must call it.
template <typename T, typename Combine> __device__ T block_allreduce(T v, Combine combine, T identity) {
  __shared__ T warp_results[32];
  __shared__ T result;
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_reduce(v, combine);
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? warp_results[lane] : identity;
    v = warp_reduce(v, combine);
    if (lane == 0) result = v;
  }
  __syncthreads();
  T out = result;
  __syncthreads();  // the shared slots may be reused by the next call
  return out;
}

// ---- copies and scratch (memory.cu) --------------------------------------------------------------------------

/// out = src, both on out's device (the caller holds a DeviceGuard): any strides, src may broadcast, dtypes are
/// converted (to bool: nonzero → 1).
void device_copy(const Tensor& src, Tensor& out);
/// t itself when contiguous, else a contiguous copy on t's device.
Tensor as_contiguous(const Tensor& t);

/// Uninitialised device scratch of `nbytes` from the caching allocator (freed when the tensor dies).
inline Tensor scratch_bytes(size_t nbytes, Device device) {
  return empty({static_cast<int64_t>(nbytes)}, kBool, device);
}

/// A view of `t` whose dims are reordered as `order` (a permutation of t's dims); no copy.
inline Tensor permuted_view(const Tensor& t, const std::vector<int64_t>& order) {
  Shape sizes, strides;
  for (int64_t d : order) {
    sizes.push_back(t.sizes()[static_cast<size_t>(d)]);
    strides.push_back(t.strides()[static_cast<size_t>(d)]);
  }
  return make_tensor(t.storage(), sizes, strides, t.offset(), t.dtype());
}

}  // namespace hg::cuda
