// CUDA indexing kernels. CPU reference: ops/cpu/index.cpp; the same two loops do all the work:
//  - gather:      out[p] = x[p with p_dim := index[p]]         (index_select: gather with a broadcast index)
//  - scatter_add: out[p with p_dim := index[p]] += src[p]      (index_add: scatter_add with a broadcast index)
// Positions p range over the index's shape. The 1-D index of index_select/index_add is broadcast by giving it
// stride 0 in every dim but `dim`. Repeated indices make scatter_add's writes collide, so it adds atomically
// (the order of float additions, hence the last bits, may vary from run to run).
//
// Indices were range-checked by the op frontends (ops/index.cpp); these kernels trust them.
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// `t`'s storage, offset and dtype seen with other sizes and strides (no copy).
Tensor restride(const Tensor& t, const Shape& sizes, const Shape& strides) {
  return make_tensor(t.storage(), sizes, strides, t.offset(), t.dtype());
}

// The 1-D `index` seen at every position of `shape`: its own stride along dim, 0 elsewhere.
Tensor broadcast_index(const Tensor& index, const Shape& shape, int64_t dim) {
  Shape strides(shape.size(), 0);
  strides[static_cast<size_t>(dim)] = index.strides()[0];
  return restride(index, shape, strides);
}

// x with stride 0 along dim, over `shape`: the position p of x with p_dim := 0.
Tensor along_dim_zero(const Tensor& x, const Shape& shape, int64_t dim) {
  Shape strides = x.strides();
  strides[static_cast<size_t>(dim)] = 0;
  return restride(x, shape, strides);
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // two's complement: adding the unsigned bit patterns is adding the signed values (mod 2^64)
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// out [index shape] = x at p with p_dim := index[p];  operands (out, index, x_at) walked over out's shape.
template <typename T> void gather_kernel(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  Tensor x_at = along_dim_zero(x, index.sizes(), dim);
  OffsetCalculator<3> calc(out.sizes(), {&out, &index, &x_at});
  char* po = static_cast<char*>(out.data_ptr());
  const char* pi = static_cast<const char*>(index.data_ptr());
  const char* px = static_cast<const char*>(x_at.data_ptr());
  const int64_t dim_step = x.strides()[dim] * static_cast<int64_t>(sizeof(T));  // bytes per index step
  strided_loop_kernel<3><<<grid_for(out.numel(), out.device().index), kBlockSize>>>(
      out.numel(), calc, [=] __device__(const int64_t(&offsets)[3]) {
        int64_t i = *reinterpret_cast<const int64_t*>(pi + offsets[1]);
        *reinterpret_cast<T*>(po + offsets[0]) = *reinterpret_cast<const T*>(px + offsets[2] + i * dim_step);
      });
  HG_CUDA_CHECK_LAUNCH();
}

// out at p with p_dim := index[p] += src[p];  operands (index, src, out_at) walked over index's shape.
template <typename T> void scatter_add_kernel(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out_at = along_dim_zero(out, index.sizes(), dim);
  OffsetCalculator<3> calc(index.sizes(), {&index, &src, &out_at});
  const char* pi = static_cast<const char*>(index.data_ptr());
  const char* ps = static_cast<const char*>(src.data_ptr());
  char* po = static_cast<char*>(out_at.data_ptr());
  const int64_t dim_step = out.strides()[dim] * static_cast<int64_t>(sizeof(T));
  strided_loop_kernel<3><<<grid_for(index.numel(), out.device().index), kBlockSize>>>(
      index.numel(), calc, [=] __device__(const int64_t(&offsets)[3]) {
        int64_t i = *reinterpret_cast<const int64_t*>(pi + offsets[0]);
        atomic_add(reinterpret_cast<T*>(po + offsets[2] + i * dim_step), *reinterpret_cast<const T*>(ps + offsets[1]));
      });
  HG_CUDA_CHECK_LAUNCH();
}

void check_index(const char* op, const Tensor& t, int64_t dim, const Tensor& index, bool one_dimensional) {
  HG_CHECK(dim >= 0 && dim < std::max<int64_t>(t.dim(), 1), "{} (cuda): dim {} out of range for {}", op, dim, t.desc());
  HG_CHECK(index.dtype() == kInt64 && (!one_dimensional || index.dim() == 1),
           "{} (cuda): index must be a {}int64 tensor, got {}", op, one_dimensional ? "1-D " : "", index.desc());
}

}  // namespace

void CudaBackend::gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  check_on_device("gather", out.device(), {&x, &index, &out});
  check_index("gather", x, dim, index, false);
  HG_CHECK(out.sizes() == index.sizes() && out.dtype() == x.dtype(),
           "gather (cuda): output {} must have the index's shape {} and the input's dtype {}", out.desc(),
           index.sizes(), x.dtype());
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_ALL(x.dtype(), "gather", [&] { gather_kernel<scalar_t>(x, dim, index, out); });
}

void CudaBackend::index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  check_on_device("index_select", out.device(), {&x, &index, &out});
  check_index("index_select", x, dim, index, true);
  if (out.numel() == 0) return;
  gather(x, dim, broadcast_index(index, out.sizes(), dim), out);
}

void CudaBackend::scatter_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  check_on_device("scatter_add", out.device(), {&out, &index, &src});
  check_index("scatter_add", out, dim, index, false);
  HG_CHECK(src.sizes() == index.sizes() && src.dtype() == out.dtype(),
           "scatter_add (cuda): source {} must have the index's shape {} and the output's dtype {}", src.desc(),
           index.sizes(), out.dtype());
  if (src.numel() == 0) return;
  DeviceGuard guard(out.device());
  HG_CUDA_DISPATCH_NUMERIC(out.dtype(), "scatter_add", [&] { scatter_add_kernel<scalar_t>(out, dim, index, src); });
}

void CudaBackend::index_add(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  check_on_device("index_add", out.device(), {&out, &index, &src});
  check_index("index_add", out, dim, index, true);
  if (src.numel() == 0) return;
  scatter_add(out, dim, broadcast_index(index, src.sizes(), dim), src);
}

}  // namespace hg::cuda
