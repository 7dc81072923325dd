// CUDA scans and sorting along one dim: cumsum, sort (stable), topk. CPU reference: ops/cpu/sort.cpp.
//
// A "row" is the 1-D slice of a tensor along dim at one position of the other dims (rows counted in row-major
// order over those dims), exactly as the CPU's Rows.
//  - cumsum: float32 accumulates in double, as the CPU. Rows contiguous in the output are scanned one block per
//    row (CUB BlockScan, carrying the running total from tile to tile); otherwise one thread scans each row,
//    neighbouring threads on neighbouring columns.
//  - sort/topk: values become order-preserving unsigned keys (NaN above +inf, all NaNs equal, -0 equal to +0: the
//    CPU's value_less), sorted stably with their positions by CUB's radix sorts (device-wide for one row,
//    segmented for many); stability gives the CPU's tie order (lower index first, descending too). Values are then
//    gathered from x by the sorted positions, so NaN payloads and -0 come back untouched. topk keeps the first k
//    of the same order.
#include <cub/cub.cuh>

#include <hopgrad/ops/cuda/common.cuh>

namespace hg::cuda {

namespace {

// Byte offsets of the starts of t's rows along dim.
OffsetCalculator<1> row_starts(const Tensor& t, int64_t dim) {
  Shape sizes = t.sizes(), strides = t.strides();
  sizes.erase(static_cast<size_t>(dim));
  strides.erase(static_cast<size_t>(dim));
  return OffsetCalculator<1>(sizes, std::array<Shape, 1>{strides},
                             std::array<int64_t, 1>{static_cast<int64_t>(t.element_size())});
}

// ---- cumsum ----------------------------------------------------------------------------------------------------

template <typename T> using scan_acc_t = std::conditional_t<std::is_floating_point_v<T>, double, T>;

// One thread per row: y[r, i] = Σ_{i' ≤ i} x[r, i'].
//   x: row r at byte offset x_rows(r), element i at + i·x_step (bytes); y likewise with y_rows, y_step
template <typename T>
__global__ void cumsum_lines_kernel(const char* x, OffsetCalculator<1> x_rows, int64_t x_step, char* y,
                                    OffsetCalculator<1> y_rows, int64_t y_step, int64_t rows, int64_t n) {
  using Acc = scan_acc_t<T>;
  HG_GRID_STRIDE_LOOP(r, rows) {
    int64_t xo[1], yo[1];
    x_rows.get(r, xo);
    y_rows.get(r, yo);
    Acc acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      acc += static_cast<Acc>(*reinterpret_cast<const T*>(x + xo[0] + i * x_step));
      *reinterpret_cast<T*>(y + yo[0] + i * y_step) = static_cast<T>(acc);
    }
  }
}

constexpr int kScanThreads = 256;
constexpr int kScanItems = 4;

// One block per row, tiles of kScanThreads·kScanItems elements: each tile is scanned by the block and offset by the
// running total of the tiles before it.
//   x: row r at byte offset x_rows(r), element i at + i·x_step (bytes);  y: [rows, n] contiguous
template <typename T>
__global__ void __launch_bounds__(kScanThreads)
    cumsum_rows_kernel(const char* x, OffsetCalculator<1> x_rows, int64_t x_step, T* y, int64_t rows, int64_t n) {
  using Acc = scan_acc_t<T>;
  using BlockScan = cub::BlockScan<Acc, kScanThreads>;
  __shared__ typename BlockScan::TempStorage scan_storage;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t xo[1];
    x_rows.get(r, xo);
    const char* row = x + xo[0];
    T* out = y + r * n;
    Acc carry = 0;
    for (int64_t tile = 0; tile < n; tile += kScanThreads * kScanItems) {
      Acc items[kScanItems];
#pragma unroll
      for (int k = 0; k < kScanItems; ++k) {
        int64_t i = tile + threadIdx.x * kScanItems + k;
        items[k] = i < n ? static_cast<Acc>(*reinterpret_cast<const T*>(row + i * x_step)) : Acc(0);
      }
      Acc tile_total;
      BlockScan(scan_storage).InclusiveSum(items, items, tile_total);
#pragma unroll
      for (int k = 0; k < kScanItems; ++k) {
        int64_t i = tile + threadIdx.x * kScanItems + k;
        if (i < n) out[i] = static_cast<T>(carry + items[k]);
      }
      carry += tile_total;
      __syncthreads();  // scan_storage is reused by the next tile
    }
  }
}

// Rows of x along dim scanned into a contiguous [rows, n] buffer `y`.
template <typename T> void cumsum_block_rows(const Tensor& x, int64_t dim, T* y, int64_t rows, int64_t n) {
  unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 30));
  cumsum_rows_kernel<T><<<blocks, kScanThreads>>>(static_cast<const char*>(x.data_ptr()), row_starts(x, dim),
                                                  x.strides()[dim] * static_cast<int64_t>(sizeof(T)), y, rows, n);
  HG_CUDA_CHECK_LAUNCH();
}

// ---- sort keys ---------------------------------------------------------------------------------------------------

// Unsigned keys whose ascending order is the CPU's value order.
template <typename T> struct SortKey;
template <> struct SortKey<float> {
  using type = uint32_t;
  __device__ static uint32_t of(float v) {
    if (isnan(v)) return 0xFFFFFFFFu;                       // above +inf (0xFF800000)
    uint32_t bits = __float_as_uint(v == 0.0f ? 0.0f : v);  // -0 → +0
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }
};
template <> struct SortKey<double> {
  using type = uint64_t;
  __device__ static uint64_t of(double v) {
    if (isnan(v)) return 0xFFFFFFFFFFFFFFFFull;
    uint64_t bits = static_cast<uint64_t>(__double_as_longlong(v == 0.0 ? 0.0 : v));
    return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
  }
};
template <> struct SortKey<int64_t> {
  using type = uint64_t;
  __device__ static uint64_t of(int64_t v) { return static_cast<uint64_t>(v) ^ 0x8000000000000000ull; }
};

// Sorts every row of x along dim; the first `keep` entries of each row's order go to values/indices (contiguous,
// x's shape with `keep` at dim).
template <typename T>
void sort_rows(const Tensor& x, int64_t dim, bool descending, int64_t keep, Tensor& values, Tensor& indices) {
  using Key = typename SortKey<T>::type;
  const Device device = x.device();
  const int64_t n = x.sizes()[dim], rows = x.numel() / n, total = rows * n;
  // keys, positions: [rows, n] row-major (before and after sorting)
  Tensor keys_in = scratch_bytes(total * sizeof(Key), device), keys_out = scratch_bytes(total * sizeof(Key), device);
  Tensor pos_in = empty({total}, kInt64, device), pos_out = empty({total}, kInt64, device);
  Key* kin = static_cast<Key*>(keys_in.data_ptr());
  Key* kout = static_cast<Key*>(keys_out.data_ptr());
  int64_t* pin = pos_in.data_ptr<int64_t>();
  int64_t* pout = pos_out.data_ptr<int64_t>();

  const char* px = static_cast<const char*>(x.data_ptr());
  OffsetCalculator<1> x_rows = row_starts(x, dim);
  const int64_t x_step = x.strides()[dim] * static_cast<int64_t>(sizeof(T));
  for_each_index(total, device.index, [=] __device__(int64_t i) {
    int64_t r = i / n, j = i - r * n;
    int64_t start[1];
    x_rows.get(r, start);
    kin[i] = SortKey<T>::of(*reinterpret_cast<const T*>(px + start[0] + j * x_step));
    pin[i] = j;
  });

  size_t temp_bytes = 0;
  if (rows == 1) {
    auto run = [&](void* temp) {
      if (descending)
        HG_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(temp, temp_bytes, kin, kout, pin, pout, total));
      else
        HG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, kin, kout, pin, pout, total));
    };
    run(nullptr);
    Tensor temp = scratch_bytes(std::max<size_t>(temp_bytes, 1), device);  // a null pointer would mean "query"
    run(temp.data_ptr());
  } else {
    // segment offsets [rows + 1]: row r is [r·n, (r+1)·n)
    Tensor offsets = empty({rows + 1}, kInt64, device);
    int64_t* po = offsets.data_ptr<int64_t>();
    for_each_index(rows + 1, device.index, [=] __device__(int64_t r) { po[r] = r * n; });
    auto run = [&](void* temp) {
      if (descending)
        HG_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairsDescending(temp, temp_bytes, kin, kout, pin, pout, total,
                                                                          rows, po, po + 1));
      else
        HG_CUDA_CHECK(
            cub::DeviceSegmentedSort::StableSortPairs(temp, temp_bytes, kin, kout, pin, pout, total, rows, po, po + 1));
    };
    run(nullptr);
    Tensor temp = scratch_bytes(std::max<size_t>(temp_bytes, 1), device);  // a null pointer would mean "query"
    run(temp.data_ptr());
  }
  HG_CUDA_CHECK_LAUNCH();

  // values[row, j] = x[row, pos[row, j]], indices[row, j] = pos[row, j] for j < keep
  T* pv = values.data_ptr<T>();
  int64_t* pi = indices.data_ptr<int64_t>();
  OffsetCalculator<1> out_rows = row_starts(values, dim);  // values and indices share shape and strides
  const int64_t out_step = values.strides()[dim];
  for_each_index(rows * keep, device.index, [=] __device__(int64_t i) {
    int64_t r = i / keep, j = i - r * keep;
    int64_t x_start[1], out_start[1];
    x_rows.get(r, x_start);
    out_rows.get(r, out_start);
    int64_t position = pout[r * n + j];
    int64_t at = out_start[0] / static_cast<int64_t>(sizeof(T)) + j * out_step;
    pv[at] = *reinterpret_cast<const T*>(px + x_start[0] + position * x_step);
    pi[at] = position;
  });
}

void check_sort_outputs(const char* kernel, const Tensor& x, const Tensor& values, const Tensor& indices) {
  check_on_device(kernel, x.device(), {&x, &values, &indices});
  HG_CHECK(
      values.is_contiguous() && indices.is_contiguous() && values.dtype() == x.dtype() && indices.dtype() == kInt64,
      "{} (cuda): expects contiguous outputs of dtype {} and int64, got {} and {}", kernel, x.dtype(), values.desc(),
      indices.desc());
}

}  // namespace

void CudaBackend::cumsum(const Tensor& x, int64_t dim, Tensor& out) {
  check_on_device("cumsum", x.device(), {&x, &out});
  HG_CHECK(dim >= 0 && dim < x.dim() && out.sizes() == x.sizes() && out.dtype() == x.dtype() && out.is_contiguous(),
           "cumsum (cuda): bad arguments (input {}, dim {}, output {})", x.desc(), dim, out.desc());
  if (x.numel() == 0) return;
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_NUMERIC(x.dtype(), "cumsum", [&] {
    using T = scalar_t;
    const int64_t n = x.sizes()[dim], rows = x.numel() / n, element = sizeof(T);
    const bool rows_contiguous_in_out = out.strides()[dim] == 1;
    if (rows_contiguous_in_out && n > 64) return cumsum_block_rows<T>(x, dim, out.data_ptr<T>(), rows, n);
    if (!rows_contiguous_in_out && rows < 4096 && n > 4096) {
      // Few long columns: one thread each would crawl. Scan them as contiguous rows (dim moved last), then put the
      // result back in place.
      std::vector<int64_t> order, inverse(static_cast<size_t>(x.dim()));
      for (int64_t d = 0; d < x.dim(); ++d)
        if (d != dim) order.push_back(d);
      order.push_back(dim);
      for (size_t k = 0; k < order.size(); ++k) inverse[static_cast<size_t>(order[k])] = static_cast<int64_t>(k);
      Tensor scanned = empty(permuted_view(x, order).sizes(), x.dtype(), x.device());
      cumsum_block_rows<T>(x, dim, scanned.data_ptr<T>(), rows, n);
      device_copy(permuted_view(scanned, inverse), out);
      return;
    }
    cumsum_lines_kernel<T><<<grid_for(rows, x.device().index), kBlockSize>>>(
        static_cast<const char*>(x.data_ptr()), row_starts(x, dim), x.strides()[dim] * element,
        static_cast<char*>(out.data_ptr()), row_starts(out, dim), out.strides()[dim] * element, rows, n);
    HG_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::sort(const Tensor& x, int64_t dim, bool descending, Tensor& values, Tensor& indices) {
  check_sort_outputs("sort", x, values, indices);
  HG_CHECK(dim >= 0 && dim < x.dim() && values.sizes() == x.sizes() && indices.sizes() == x.sizes(),
           "sort (cuda): bad arguments (input {}, dim {}, outputs {} and {})", x.desc(), dim, values.desc(),
           indices.desc());
  if (x.numel() == 0) return;
  DeviceGuard guard(x.device());
  HG_CUDA_DISPATCH_NUMERIC(x.dtype(), "sort",
                           [&] { sort_rows<scalar_t>(x, dim, descending, x.sizes()[dim], values, indices); });
}

void CudaBackend::topk(const Tensor& x, int64_t k, int64_t dim, bool largest, Tensor& values, Tensor& indices) {
  check_sort_outputs("topk", x, values, indices);
  HG_CHECK(dim >= 0 && dim < x.dim() && k >= 0 && k <= x.sizes()[dim],
           "topk (cuda): bad arguments (input {}, k {}, dim {})", x.desc(), k, dim);
  Shape expected = x.sizes();
  expected[static_cast<size_t>(dim)] = k;
  HG_CHECK(values.sizes() == expected && indices.sizes() == expected,
           "topk (cuda): outputs {} and {} do not have shape {}", values.desc(), indices.desc(), expected);
  if (values.numel() == 0) return;
  DeviceGuard guard(x.device());
  // The k largest are the first k of the stable descending order (ties: lower index first), the k smallest the
  // first k of the ascending order.
  HG_CUDA_DISPATCH_NUMERIC(x.dtype(), "topk", [&] { sort_rows<scalar_t>(x, dim, largest, k, values, indices); });
}

}  // namespace hg::cuda
