// CUDA kernel of Backend::split_among_ties, the backward of max()/amax/amin/median()/∞-norm (CPU reference:
// ops/cpu/selection_grad.cpp): each output's gradient g is split evenly among the elements of its group that
// attain y (x = y, or both NaN),
//   dx = (g / count) · [x attains y],   count = Σ_group [x attains y].
// Two launches: the counts, written as scale = g / count per output (one thread per output walking its group,
// or one block per output for long groups, whose elements are read through x's own strides); then one thread
// per element of dx, reading y and scale through stride-0 views.
#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// Groups longer than this get a block each.
constexpr int64_t kShortGroup = 32;
constexpr int kMaxGroupThreads = 512;

template <typename T> __device__ __forceinline__ bool attains(T v, T y) { return v == y || (is_nan(v) && is_nan(y)); }

// One thread per output o.
//   outputs: byte offsets of o's group in x, of g[o] and of y[o] (the kept dims)
//   group:   byte offset of element r within a group of x (the reduced dims)
//   scale:   [num_outputs] = g / count
template <typename T>
__global__ void count_short_groups_kernel(const char* x, const char* g, const char* y, OffsetCalculator<3> outputs,
                                          OffsetCalculator<1> group, int64_t num_outputs, int64_t group_size,
                                          T* scale) {
  HG_GRID_STRIDE_LOOP(o, num_outputs) {
    int64_t at[3];
    outputs.get(o, at);
    const T yo = *reinterpret_cast<const T*>(y + at[2]);
    int64_t count = 0;
    for (int64_t r = 0; r < group_size; ++r) {
      int64_t e[1];
      group.get(r, e);
      count += attains(*reinterpret_cast<const T*>(x + at[0] + e[0]), yo) ? 1 : 0;
    }
    scale[o] = *reinterpret_cast<const T*>(g + at[1]) / static_cast<T>(count);
  }
}

// One block per output, the counts of its threads added by a block reduction. Same operands as above.
template <typename T>
__global__ void __launch_bounds__(kMaxGroupThreads)
    count_long_groups_kernel(const char* x, const char* g, const char* y, OffsetCalculator<3> outputs,
                             OffsetCalculator<1> group, int64_t num_outputs, int64_t group_size, T* scale) {
  for (int64_t o = blockIdx.x; o < num_outputs; o += gridDim.x) {
    int64_t at[3];
    outputs.get(o, at);
    const T yo = *reinterpret_cast<const T*>(y + at[2]);
    int64_t count = 0;
    for (int64_t r = threadIdx.x; r < group_size; r += blockDim.x) {
      int64_t e[1];
      group.get(r, e);
      count += attains(*reinterpret_cast<const T*>(x + at[0] + e[0]), yo) ? 1 : 0;
    }
    count = block_allreduce(count, Plus<int64_t>{}, int64_t{0});
    if (threadIdx.x == 0) scale[o] = *reinterpret_cast<const T*>(g + at[1]) / static_cast<T>(count);
  }
}

// t (x's rank, size 1 along the reduced dims) seen with x's sizes: stride 0 along the reduced dims.
Tensor spread_to(const Tensor& t, const Shape& sizes) {
  Shape strides = t.strides();
  for (size_t d = 0; d < sizes.size(); ++d)
    if (t.sizes()[d] != sizes[d]) strides[d] = 0;
  return make_tensor(t.storage(), sizes, strides, t.offset(), t.dtype());
}

template <typename T> void split_among_ties_impl(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) {
  Shape kept_sizes, reduced_sizes, reduced_strides;
  std::array<Shape, 3> kept_strides;  // x, g, y
  int64_t num_outputs = 1, group_size = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (y.sizes()[d] == 1 && x.sizes()[d] != 1) {
      reduced_sizes.push_back(x.sizes()[d]);
      reduced_strides.push_back(x.strides()[d]);
      group_size *= x.sizes()[d];
    } else {
      kept_sizes.push_back(x.sizes()[d]);
      kept_strides[0].push_back(x.strides()[d]);
      kept_strides[1].push_back(g.strides()[d]);
      kept_strides[2].push_back(y.strides()[d]);
      num_outputs *= x.sizes()[d];
    }
  }
  const int64_t element = sizeof(T);
  OffsetCalculator<3> outputs(kept_sizes, kept_strides, {element, element, element});
  OffsetCalculator<1> group(reduced_sizes, std::array<Shape, 1>{reduced_strides}, std::array<int64_t, 1>{element});
  // scale has y's shape, contiguous.
  Tensor scale = empty(y.sizes(), x.dtype(), x.device());
  const char *px = static_cast<const char*>(x.data_ptr()), *pg = static_cast<const char*>(g.data_ptr()),
             *py = static_cast<const char*>(y.data_ptr());
  const int device = x.device().index;
  if (group_size <= kShortGroup) {
    count_short_groups_kernel<T><<<grid_for(num_outputs, device), kBlockSize>>>(
        px, pg, py, outputs, group, num_outputs, group_size, scale.data_ptr<T>());
  } else {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(num_outputs, 1 << 30));
    count_long_groups_kernel<T><<<blocks, std::min(block_for_row(group_size), kMaxGroupThreads)>>>(
        px, pg, py, outputs, group, num_outputs, group_size, scale.data_ptr<T>());
  }
  HG_CUDA_CHECK_LAUNCH();
  // dx = scale · [x attains y]: a product rather than a select, so that g's NaN/±inf and −0 come out as the
  // composite's.
  const Tensor y_spread = spread_to(y, x.sizes()), scale_spread = spread_to(scale, x.sizes());
  gpu_kernel<T, T, T, T>(dx, {&x, &y_spread, &scale_spread},
                         [] __device__(T v, T yv, T s) { return s * (attains(v, yv) ? T(1) : T(0)); });
}

}  // namespace

void CudaBackend::split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) {
  check_on_device("split_among_ties", dx.device(), {&g, &x, &y, &dx});
  HG_CHECK(is_floating(x.dtype()) && g.dtype() == x.dtype() && y.dtype() == x.dtype() && dx.dtype() == x.dtype(),
           "split_among_ties (cuda): expects one floating dtype, got g {}, x {}, y {}, dx {}", g.desc(), x.desc(),
           y.desc(), dx.desc());
  HG_CHECK(g.dim() == x.dim() && y.sizes() == g.sizes() && dx.sizes() == x.sizes() && dx.is_contiguous(),
           "split_among_ties (cuda): expects g and y of x's rank with one shape, and a contiguous dx of x's shape; "
           "got g {}, x {}, y {}, dx {}",
           g.desc(), x.desc(), y.desc(), dx.desc());
  for (int64_t d = 0; d < x.dim(); ++d)
    HG_CHECK(y.sizes()[d] == x.sizes()[d] || y.sizes()[d] == 1,
             "split_among_ties (cuda): y {} is not x {} reduced over some dims (dim {})", y.desc(), x.desc(), d);
  if (x.numel() == 0) return;
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_FLOATING(x.dtype(), "split_among_ties", [&] { split_among_ties_impl<scalar_t>(g, x, y, dx); });
}

}  // namespace hg::cuda
