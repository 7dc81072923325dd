#pragma once
// Elementwise loops for the CPU backend: one strided iteration scheme shared by every elementwise kernel.
//
// A kernel is a lambda over element values, e.g. `[](float a, float b) { return a + b; }`. cpu_kernel()
// coalesces the operands' dimensions, splits the flattened index range across OpenMP threads for large
// tensors, and runs the innermost dimension as a plain loop: unit strides (the common case) compile to
// vectorised code; 0 strides (broadcast scalars) and other strides take the general path.
#include <array>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include <omp.h>

#include <hopgrad/core/tensor.h>

namespace hg::cpu {

/// Elements below which a loop stays on one thread (thread start-up costs more than it saves).
inline constexpr int64_t kParallelGrain = 32768;

/// Dimensions of N operands after merging dims that are contiguous in every operand. Strides in bytes.
template <int N>
struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];  // bytes

  StridedLayout(const Shape& shape, const std::array<const Tensor*, N>& ops) {
    // Innermost first.
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (shape[d] == 1) continue;
      bool merged = false;
      if (ndim > 0) {
        merged = true;
        for (int k = 0; k < N; ++k) {
          int64_t s = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->element_size());
          if (s != strides[k][ndim - 1] * sizes[ndim - 1]) merged = false;
        }
      }
      if (merged) {
        sizes[ndim - 1] *= shape[d];
      } else {
        sizes[ndim] = shape[d];
        for (int k = 0; k < N; ++k)
          strides[k][ndim] = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->element_size());
        ++ndim;
      }
    }
    if (ndim == 0) {  // a single element
      sizes[0] = 1;
      for (int k = 0; k < N; ++k) strides[k][0] = 0;
      ndim = 1;
    }
  }
};

/// Calls `inner(ptrs, inner_strides, n)` for runs of the innermost dim covering linear indices [begin, end).
template <int N, typename Inner>
void for_each_run(const StridedLayout<N>& L, std::array<char*, N> base, int64_t begin, int64_t end, Inner&& inner) {
  int64_t counter[kMaxDims] = {};
  int64_t rest = begin;
  for (int d = 0; d < L.ndim; ++d) {
    counter[d] = rest % L.sizes[d];
    rest /= L.sizes[d];
  }
  std::array<char*, N> ptrs;
  for (int k = 0; k < N; ++k) {
    ptrs[k] = base[k];
    for (int d = 0; d < L.ndim; ++d) ptrs[k] += counter[d] * L.strides[k][d];
  }
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = L.strides[k][0];
  int64_t i = begin;
  while (i < end) {
    int64_t n = std::min(L.sizes[0] - counter[0], end - i);
    inner(ptrs, inner_strides, n);
    i += n;
    if (i >= end) break;
    // The run ended at the end of the innermost dim: step to the start of the next row, carrying outwards.
    for (int k = 0; k < N; ++k) ptrs[k] += n * L.strides[k][0];
    counter[0] += n;
    for (int d = 0; d + 1 < L.ndim && counter[d] == L.sizes[d]; ++d) {
      for (int k = 0; k < N; ++k) ptrs[k] += L.strides[k][d + 1] - L.sizes[d] * L.strides[k][d];
      counter[d] = 0;
      counter[d + 1]++;
    }
  }
}

/// Splits [0, numel) into per-thread ranges when large enough; `body(begin, end)`.
template <typename Body>
void parallel_for(int64_t numel, int64_t grain, Body&& body) {
  if (numel < grain || omp_get_max_threads() == 1 || omp_in_parallel()) {
    body(int64_t{0}, numel);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (numel + nt - 1) / nt;
    int64_t b = t * chunk, e = std::min(numel, b + chunk);
    if (b < e) body(b, e);
  }
}

namespace detail {
template <typename Out, typename... In, typename F, size_t... I>
inline void run_inner(F& f, std::array<char*, 1 + sizeof...(In)>& p, const std::array<int64_t, 1 + sizeof...(In)>& s,
                      int64_t n, std::index_sequence<I...>) {
  Out* out = reinterpret_cast<Out*>(p[0]);
  [[maybe_unused]] auto in = std::make_tuple(reinterpret_cast<const In*>(p[I + 1])...);
  bool contiguous = s[0] == sizeof(Out) && ((s[I + 1] == static_cast<int64_t>(sizeof(In))) && ...);
  if (contiguous) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(std::get<I>(in)[i]...);
    return;
  }
  bool broadcast_inputs = s[0] == sizeof(Out) && ((s[I + 1] == 0 || s[I + 1] == static_cast<int64_t>(sizeof(In))) && ...);
  if (broadcast_inputs) {
    // Unit or zero input strides: index with a 0/1 multiplier so the loop still vectorises.
    [[maybe_unused]] std::array<int64_t, sizeof...(In)> m{(s[I + 1] == 0 ? 0 : 1)...};
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(std::get<I>(in)[i * m[I]]...);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[I + 1] + i * s[I + 1])...);
  }
}
}  // namespace detail

/// out[i] = f(inputs[i]...) over out's shape. Inputs must already have out's shape (broadcast views are fine)
/// and element types In...; out may be strided.
template <typename Out, typename... In, typename F>
void cpu_kernel(Tensor& out, const std::array<const Tensor*, sizeof...(In)>& inputs, F f) {
  if (out.numel() == 0) return;  // nothing to do, and a size-0 dim would divide by zero in for_each_run
  constexpr int N = 1 + sizeof...(In);
  std::array<const Tensor*, N> ops;
  ops[0] = &out;
  for (size_t k = 0; k < sizeof...(In); ++k) ops[k + 1] = inputs[k];
  StridedLayout<N> layout(out.sizes(), ops);
  std::array<char*, N> base;
  for (int k = 0; k < N; ++k) base[k] = static_cast<char*>(ops[k]->data_ptr());
  parallel_for(out.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
    for_each_run<N>(layout, base, b, e, [&](std::array<char*, N>& p, const std::array<int64_t, N>& s, int64_t n) {
      detail::run_inner<Out, In...>(f, p, s, n, std::index_sequence_for<In...>{});
    });
  });
}

}  // namespace hg::cpu
