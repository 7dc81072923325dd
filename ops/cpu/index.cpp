// CPU indexing kernels. Two strided loops do all the work:
//  - gather:      out[p] = x[p with p_dim := index[p]]        (index_select is gather with a broadcast index)
//  - scatter_add: out[p with p_dim := index[p]] += src[p]     (index_add is scatter_add with a broadcast index)
// Positions p range over the index's shape. The 1-D index of index_select/index_add is "broadcast" by giving it
// stride 0 in every dim but `dim`, so a run along a non-indexed dim sees one index value and becomes a row copy
// (or row add) at memory speed: the embedding lookup and its backward.
//
// Indices were range-checked by the op frontends (ops/index.cpp); these loops trust them.
#include <algorithm>
#include <array>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {

// `t`'s storage, offset and dtype seen with other sizes and strides (no copy).
Tensor restride(const Tensor& t, const Shape& sizes, const Shape& strides) {
  return make_tensor(t.storage(), sizes, strides, t.offset(), t.dtype());
}

Shape without(const Shape& s, int64_t dim) {
  Shape r = s;
  r.erase(static_cast<size_t>(dim));
  return r;
}

// out [shape] (contiguous) = x at the positions of `index` [shape]. `x_at` walks x over `shape` with stride 0
// along dim: the position along dim is index[p], i.e. an element offset of index[p]·dim_stride.
template <typename T>
void gather_loop(const Tensor& x_at, int64_t dim_stride, const Tensor& index, Tensor& out) {
  StridedLayout<3> layout(out.sizes(), {&out, &index, &x_at});
  std::array<char*, 3> base{static_cast<char*>(out.data_ptr()), static_cast<char*>(index.data_ptr()),
                            static_cast<char*>(x_at.data_ptr())};
  parallel_for(out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
    for_each_run<3>(layout, base, begin, end, [&](std::array<char*, 3>& p, const std::array<int64_t, 3>& s, int64_t n) {
      T* o = reinterpret_cast<T*>(p[0]);  // contiguous: unit stride
      const int64_t* idx = reinterpret_cast<const int64_t*>(p[1]);
      const T* x = reinterpret_cast<const T*>(p[2]);
      const int64_t idx_stride = s[1] / static_cast<int64_t>(sizeof(int64_t));
      const int64_t x_stride = s[2] / static_cast<int64_t>(sizeof(T));
      if (idx_stride == 0) {  // one index for the whole run: copy a (strided) row
        const T* row = x + idx[0] * dim_stride;
        if (x_stride == 1) {
          std::copy_n(row, n, o);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i] = row[i * x_stride];
        }
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = x[i * x_stride + idx[i * idx_stride] * dim_stride];
      }
    });
  });
}

// out (contiguous) at the positions of `index` += src; index and src have one shape. Two positions that
// differ only along dim may hit the same element of out, two that differ elsewhere never do: so threads split
// the positions off dim, and each thread walks all of dim in order. No atomics, and the order of additions
// (hence the rounding) does not depend on the number of threads.
template <typename T>
void scatter_add_loop(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const Shape& shape = index.sizes();
  const int64_t len = shape[dim];
  const Shape rest = without(shape, dim);
  if (len == 0 || rest.numel() == 0) return;
  // The three operands over the positions off dim; out with its own strides (its sizes may be larger).
  Tensor out_at = restride(out, rest, without(out.strides(), dim));
  Tensor index_at = restride(index, rest, without(index.strides(), dim));
  Tensor src_at = restride(src, rest, without(src.strides(), dim));
  const int64_t out_step = out.strides()[dim], index_step = index.strides()[dim], src_step = src.strides()[dim];
  StridedLayout<3> layout(rest, {&out_at, &index_at, &src_at});
  std::array<char*, 3> base{static_cast<char*>(out_at.data_ptr()), static_cast<char*>(index_at.data_ptr()),
                            static_cast<char*>(src_at.data_ptr())};
  parallel_for(rest.numel(), std::max<int64_t>(1, kParallelGrain / len), [&](int64_t begin, int64_t end) {
    for_each_run<3>(layout, base, begin, end, [&](std::array<char*, 3>& p, const std::array<int64_t, 3>& s, int64_t n) {
      T* o = reinterpret_cast<T*>(p[0]);
      const int64_t* idx = reinterpret_cast<const int64_t*>(p[1]);
      const T* v = reinterpret_cast<const T*>(p[2]);
      const int64_t o_stride = s[0] / static_cast<int64_t>(sizeof(T));
      const int64_t idx_stride = s[1] / static_cast<int64_t>(sizeof(int64_t));
      const int64_t v_stride = s[2] / static_cast<int64_t>(sizeof(T));
      for (int64_t k = 0; k < len; ++k) {
        const int64_t* idx_k = idx + k * index_step;
        const T* v_k = v + k * src_step;
        if (idx_stride == 0) {  // one index for the whole run: add a row
          T* row = o + idx_k[0] * out_step;
          if (o_stride == 1 && v_stride == 1) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) row[i] += v_k[i];
          } else {
            for (int64_t i = 0; i < n; ++i) row[i * o_stride] += v_k[i * v_stride];
          }
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * o_stride + idx_k[i * idx_stride] * out_step] += v_k[i * v_stride];
        }
      }
    });
  });
}

// The 1-D `index` seen at every position of `shape`: its own stride along dim, 0 elsewhere.
Tensor broadcast_index(const Tensor& index, const Shape& shape, int64_t dim) {
  Shape strides(shape.size(), 0);
  strides[dim] = index.strides()[0];
  return restride(index, shape, strides);
}

}  // namespace

void CpuBackend::gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  if (out.numel() == 0) return;
  Shape x_strides = x.strides();
  x_strides[dim] = 0;
  Tensor x_at = restride(x, index.sizes(), x_strides);
  HG_DISPATCH_ALL(x.dtype(), "gather", [&] { gather_loop<scalar_t>(x_at, x.strides()[dim], index, out); });
}

void CpuBackend::index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  if (out.numel() == 0) return;
  gather(x, dim, broadcast_index(index, out.sizes(), dim), out);
}

void CpuBackend::scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (src.numel() == 0) return;
  HG_DISPATCH_NUMERIC(out.dtype(), "scatter_add", [&] { scatter_add_loop<scalar_t>(out, dim, index, src); });
}

void CpuBackend::index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (src.numel() == 0) return;
  HG_DISPATCH_NUMERIC(out.dtype(), "index_add",
                      [&] { scatter_add_loop<scalar_t>(out, dim, broadcast_index(index, src.sizes(), dim), src); });
}

}  // namespace hg::cpu
