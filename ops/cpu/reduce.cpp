// CPU reductions. A contiguous input is reduced as [outer, inner, tail] — each output reduces the middle dim —
// with two fast layouts: reduced dims trailing (tail = 1: each output reduces one contiguous run: softmax-like
// rows, losses) and kept dims trailing (each output is a column: bias gradients, sum_to). Reduced dims on both
// sides of a kept one (a convolution's bias gradient, a sum over {0, 2, 3} of [N, C, H, W]) are reduced one
// block at a time, the largest first, each step into a temporary that is smaller by that block's size; a
// strided input is permuted to "trailing" and copied once. arg_reduce (max/min with the index of the first
// extremum) uses the same two layouts for its one reduced dim.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {

// float32 sums are cascaded, as PyTorch's cascade_sum: float32 across the SIMD lanes within a block of a run (or
// kRowBlock rows of columns), so the loop stays at memory speed, and the blocks' sums added in double. A single
// float32 accumulator per lane drifts with the length: 1e8 values of 0.1 summed to 9.9e6, and the mean of 1e7
// values near 1e4 came out 0.7 % high, which var and std, centred on it, turned into a variance 6000× too large.
template <typename T> using SumAcc = std::conditional_t<std::is_same_v<T, float>, double, T>;

template <typename T> struct Reducer {
  ReduceOp op;
  T identity() const {
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Mean: return T(0);
      case ReduceOp::Prod: return T(1);
      case ReduceOp::Max:
        return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                    : std::numeric_limits<T>::lowest();
      case ReduceOp::Min:
        return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                    : std::numeric_limits<T>::max();
    }
    return T(0);
  }
};

template <typename T> inline T take_max(T acc, T v) { return (v > acc || v != v) ? v : acc; }  // NaN sticks
template <typename T> inline T take_min(T acc, T v) { return (v < acc || v != v) ? v : acc; }

// Max/min of one run. A single accumulator would chain every compare-and-select on the previous one; a cache
// line of independent lanes lets the loop vectorise, and the lanes are folded at the end (NaN sticks in any
// lane, so it still propagates). Runs shorter than two rounds of lanes (DeepRC's max over 12 positions, for
// each of 1.3 M rows) take the plain loop: filling and folding the lanes would cost more than the run itself.
template <typename T, typename Take> T extremum_run(const T* p, int64_t n, T init, Take take) {
  constexpr int64_t kLanes = 128 / sizeof(T);
  if (n < 2 * kLanes) {
    T acc = init;
    for (int64_t i = 0; i < n; ++i) acc = take(acc, p[i]);
    return acc;
  }
  T lane[kLanes];
  std::fill(lane, lane + kLanes, init);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = take(lane[l], p[i + l]);
  }
  T acc = init;
  for (int64_t l = 0; l < kLanes; ++l) acc = take(acc, lane[l]);
  for (; i < n; ++i) acc = take(acc, p[i]);
  return acc;
}

// The sum of one contiguous run: blocks of kSumBlock values in T across the vector lanes, the blocks' sums in
// SumAcc (double for float32).
constexpr int64_t kSumBlock = 1024;
template <typename T> T sum_run(const T* p, int64_t n, T init) {
  SumAcc<T> total = init;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = std::min(n, b + kSumBlock);
    T block = 0;
#pragma omp simd reduction(+ : block)
    for (int64_t i = b; i < e; ++i) block += p[i];
    total += block;
  }
  return static_cast<T>(total);
}

// One contiguous run of n values.
template <typename T> T reduce_run(ReduceOp op, const T* p, int64_t n, T init) {
  T acc = init;
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: return sum_run(p, n, init);
    case ReduceOp::Prod:
      for (int64_t i = 0; i < n; ++i) acc *= p[i];
      return acc;
    case ReduceOp::Max: return extremum_run(p, n, init, take_max<T>);
    case ReduceOp::Min: return extremum_run(p, n, init, take_min<T>);
  }
  return acc;
}

template <typename T> void combine_row(ReduceOp op, T* acc, const T* p, int64_t n) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] += p[i];
      return;
    case ReduceOp::Prod:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] *= p[i];
      return;
    case ReduceOp::Max:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] = take_max(acc[i], p[i]);
      return;
    case ReduceOp::Min:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] = take_min(acc[i], p[i]);
      return;
  }
}

// Runs shorter than this are reduced many at a time (reduce_short_runs).
constexpr int64_t kShortRun = 32;

// Outputs [b, e) of x viewed as [outer, n] rows with n < kShortRun (DeepRC's max over 12 positions, for
// each of 1.3 M rows): one run is too short to fill the vector lanes, and reduced on its own it is a chain of
// dependent compare-and-selects. Here the lanes go across runs instead: kBlock outputs at a time, each lane
// walking its own run (strided loads), so every step is one vector operation. Each output still accumulates
// its run in order.
template <typename T>
void reduce_short_runs(ReduceOp op, const T* x, int64_t b, int64_t e, int64_t n, T init, T* out) {
  constexpr int64_t kBlock = 16;
  auto block = [&](auto take) {
    int64_t o = b;
    for (; o + kBlock <= e; o += kBlock) {
      T acc[kBlock];
      std::fill(acc, acc + kBlock, init);
      const T* rows = x + o * n;
      for (int64_t i = 0; i < n; ++i) {
#pragma omp simd
        for (int64_t l = 0; l < kBlock; ++l) acc[l] = take(acc[l], rows[l * n + i]);
      }
      std::copy(acc, acc + kBlock, out + o);
    }
    for (; o < e; ++o) {
      T acc = init;
      for (int64_t i = 0; i < n; ++i) acc = take(acc, x[o * n + i]);
      out[o] = acc;
    }
  };
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: return block([](T acc, T v) { return acc + v; });
    case ReduceOp::Max: return block(take_max<T>);
    case ReduceOp::Min: return block(take_min<T>);
    case ReduceOp::Prod: return block([](T acc, T v) { return acc * v; });
  }
}

// out[t] = op over r of x[r·stride + t] for t < width: `inner` rows of `width` neighbouring columns. Tiles of
// kTile columns keep the running results in L1; rows are folded kRowBlock at a time into a partial row that is
// then folded into the running result — for float32 sums a double one (SumAcc) — so a sum of n rows rounds like
// kRowBlock float32 additions, not n (DeepRC's bias gradient sums 40 000 rows).
template <typename T>
void reduce_columns(ReduceOp op, const T* x, int64_t inner, int64_t stride, int64_t width, T init, T* out) {
  constexpr int64_t kTile = 1024, kRowBlock = 128;
  T partial[kTile];
  SumAcc<T> total[kTile];
  const bool sums = op == ReduceOp::Sum || op == ReduceOp::Mean;
  for (int64_t c0 = 0; c0 < width; c0 += kTile) {
    const int64_t w = std::min(kTile, width - c0);
    T* acc = out + c0;
    if (sums)
      std::fill(total, total + w, SumAcc<T>(init));
    else
      std::fill(acc, acc + w, init);
    for (int64_t r0 = 0; r0 < inner; r0 += kRowBlock) {
      const int64_t r1 = std::min(inner, r0 + kRowBlock);
      std::copy(x + r0 * stride + c0, x + r0 * stride + c0 + w, partial);
      for (int64_t r = r0 + 1; r < r1; ++r) combine_row(op, partial, x + r * stride + c0, w);
      if (!sums) {
        combine_row(op, acc, partial, w);
        continue;
      }
#pragma omp simd
      for (int64_t t = 0; t < w; ++t) total[t] += partial[t];
    }
    if (sums)
      for (int64_t t = 0; t < w; ++t) acc[t] = static_cast<T>(total[t]);
  }
}

template <typename T> void reduce_contiguous(ReduceOp op, const T* x, int64_t outer, int64_t inner, int64_t tail,
                                             T* out) {
  // x viewed as [outer, inner, tail]; reduce the middle dim. tail == 1: rows; outer == 1: columns.
  const T init = Reducer<T>{op}.identity();
  if (tail == 1) {
    if (outer == 1 && inner >= kParallelGrain && omp_get_max_threads() > 1 && op != ReduceOp::Prod) {
      // One long run: per-thread partial results, combined in thread order (deterministic for a fixed count).
      int nt = omp_get_max_threads();
      std::vector<T> partial(static_cast<size_t>(nt), init);
#pragma omp parallel num_threads(nt)
      {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t chunk = (inner + n - 1) / n, b = t * chunk, e = std::min(inner, b + chunk);
        if (b < e) partial[static_cast<size_t>(t)] = reduce_run(op, x + b, e - b, init);
      }
      out[0] = reduce_run(op, partial.data(), nt, init);
      return;
    }
    parallel_for(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
      if (inner < kShortRun) {
        reduce_short_runs(op, x, b, e, inner, init, out);
        return;
      }
      for (int64_t o = b; o < e; ++o) out[o] = reduce_run(op, x + o * inner, inner, init);
    });
    return;
  }
  // Columns: split the kept (outer, tail) positions between threads so that no two write the same output (each
  // output's order of operations, hence its value, does not depend on the thread count).
  parallel_for(outer * tail, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)),
               [&](int64_t b, int64_t e) {
                 while (b < e) {
                   int64_t o = b / tail, t0 = b % tail, t1 = std::min(tail, t0 + (e - b));
                   reduce_columns(op, x + o * inner * tail + t0, inner, tail, t1 - t0, init, out + o * tail + t0);
                   b += t1 - t0;
                 }
               });
}

// Does v replace the running extremum `best`? Strict comparison keeps the first of equal values; a NaN
// beats every number and the first NaN sticks (torch.max/argmax propagate NaN).
template <bool IsMax, typename T> inline bool replaces(T v, T best) {
  bool better = IsMax ? v > best : v < best;
  if constexpr (std::is_floating_point_v<T>) better = better | ((v != v) & (best == best));  // branch-free: vectorises
  return better;
}

// The first extremum of one contiguous run of n ≥ 1 values and its index. As in extremum_run, independent lanes
// (each keeping the first extremum of its own elements) let the scan vectorise; folding them prefers the better
// value and, between equal values (or NaNs), the lower index.
template <bool IsMax, typename T> void arg_extremum_run(const T* row, int64_t n, T& value, int64_t& index) {
  constexpr int64_t kLanes = 64 / sizeof(T);
  T best = row[0];
  int64_t at = 0, i = 1;
  if (n >= 2 * kLanes) {
    T lane[kLanes];
    int64_t lane_at[kLanes];
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = row[l], lane_at[l] = l;
    for (i = kLanes; i + kLanes <= n; i += kLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) {
        bool take = replaces<IsMax>(row[i + l], lane[l]);
        lane[l] = take ? row[i + l] : lane[l];
        lane_at[l] = take ? i + l : lane_at[l];
      }
    }
    best = lane[0], at = lane_at[0];
    for (int64_t l = 1; l < kLanes; ++l) {
      bool tie = !replaces<IsMax>(best, lane[l]);
      if (replaces<IsMax>(lane[l], best) || (tie && lane_at[l] < at)) best = lane[l], at = lane_at[l];
    }
  }
  for (; i < n; ++i) {
    if (replaces<IsMax>(row[i], best)) best = row[i], at = i;
  }
  value = best;
  index = at;
}

// x viewed as contiguous [outer, n, inner] (n ≥ 1); values/indices as contiguous [outer, inner].
template <bool IsMax, typename T>
void arg_reduce_contiguous(const T* x, int64_t outer, int64_t n, int64_t inner, T* values, int64_t* indices) {
  int64_t grain = std::max<int64_t>(1, kParallelGrain / n);
  if (inner == 1) {
    parallel_for(outer, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) arg_extremum_run<IsMax>(x + o * n, n, values[o], indices[o]);
    });
    return;
  }
  // Columns: walk the n rows of each [n, inner] slab in memory order, updating a run of inner outputs.
  parallel_for(outer * inner, grain, [&](int64_t b, int64_t e) {
    while (b < e) {
      int64_t o = b / inner, t0 = b % inner, t1 = std::min(inner, t0 + (e - b));
      T* best = values + o * inner;
      int64_t* at = indices + o * inner;
      const T* slab = x + o * n * inner;
      for (int64_t t = t0; t < t1; ++t) best[t] = slab[t], at[t] = 0;
      for (int64_t i = 1; i < n; ++i) {
        const T* row = slab + i * inner;
        for (int64_t t = t0; t < t1; ++t) {
          if (replaces<IsMax>(row[t], best[t])) best[t] = row[t], at[t] = i;
        }
      }
      b += t1 - t0;
    }
  });
}

}  // namespace

void CpuBackend::arg_reduce(bool is_max, const Tensor& x, int64_t dim, Tensor& values, Tensor& indices) {
  HG_CHECK(dim >= 0 && dim < x.dim(), "arg_reduce: dimension {} out of range for input shape {}", dim, x.sizes());
  const int64_t n = x.sizes()[dim];
  HG_CHECK(n > 0, "max/min: cannot reduce over dimension {} of size 0 (input shape {}); there is no identity", dim,
           x.sizes());
  HG_CHECK(values.is_contiguous() && indices.is_contiguous() && indices.dtype() == kInt64 &&
               values.dtype() == x.dtype(),
           "arg_reduce: expects contiguous outputs of dtype {} and int64, got {} and {}", x.dtype(), values.desc(),
           indices.desc());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.sizes()[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.sizes()[d];
  if (outer * inner == 0) return;
  Tensor src = x;
  if (!x.is_contiguous()) {
    src = empty(x.sizes(), x.dtype(), kCPU);
    copy(x, src);
  }
  HG_DISPATCH_NUMERIC(x.dtype(), "arg_reduce", [&] {
    using T = scalar_t;
    if (is_max)
      arg_reduce_contiguous<true, T>(src.data_ptr<T>(), outer, n, inner, values.data_ptr<T>(),
                                     indices.data_ptr<int64_t>());
    else
      arg_reduce_contiguous<false, T>(src.data_ptr<T>(), outer, n, inner, values.data_ptr<T>(),
                                      indices.data_ptr<int64_t>());
  });
}

void CpuBackend::reduce(ReduceOp op, const Tensor& x, Tensor& out) {
  HG_CHECK(out.dim() == x.dim(), "reduce: output rank {} differs from input rank {}", out.dim(), x.dim());
  std::vector<int> reduced, kept;
  for (int d = 0; d < x.dim(); ++d) (out.sizes()[d] == 1 && x.sizes()[d] != 1 ? reduced : kept).push_back(d);
  int64_t count = 1;
  for (int d : reduced) count *= x.sizes()[d];
  if (count == 0) {
    HG_CHECK(op != ReduceOp::Max && op != ReduceOp::Min,
             "max/min: cannot reduce over an empty dimension (input shape {}); there is no identity", x.sizes());
  }
  HG_DISPATCH_NUMERIC(x.dtype(), "reduce", [&] {
    using T = scalar_t;
    Tensor src = x;
    int64_t outer = 1, inner = count, tail = 1;
    if (x.is_contiguous() && x.numel() > 0) {
      // x as alternating blocks of kept and reduced dims (size-1 dims dropped). While more than one block is
      // reduced, reduce the largest as the middle of [outer, inner, tail] into a temporary: no permuting copy,
      // and each step reads a tensor smaller than the last by the block just reduced.
      std::vector<std::pair<int64_t, bool>> blocks;  // (size, reduced)
      for (int d = 0; d < x.dim(); ++d) {
        const int64_t n = x.sizes()[d];
        const bool is_reduced = out.sizes()[d] == 1;
        if (n == 1) continue;
        if (!blocks.empty() && blocks.back().second == is_reduced)
          blocks.back().first *= n;
        else
          blocks.emplace_back(n, is_reduced);
      }
      auto split_at = [&](size_t i) {  // outer, inner, tail around block i
        outer = 1, inner = blocks[i].first, tail = 1;
        for (size_t j = 0; j < i; ++j) outer *= blocks[j].first;
        for (size_t j = i + 1; j < blocks.size(); ++j) tail *= blocks[j].first;
      };
      for (;;) {
        std::vector<size_t> reduced_blocks;
        for (size_t i = 0; i < blocks.size(); ++i)
          if (blocks[i].second) reduced_blocks.push_back(i);
        if (reduced_blocks.size() <= 1) {
          if (reduced_blocks.empty()) outer = src.numel(), inner = 1, tail = 1;  // nothing reduced: a copy
          else split_at(reduced_blocks.front());
          break;
        }
        const size_t i = *std::max_element(reduced_blocks.begin(), reduced_blocks.end(),
                                           [&](size_t a, size_t b) { return blocks[a].first < blocks[b].first; });
        split_at(i);
        Tensor step = empty({outer * tail}, x.dtype(), kCPU);
        reduce_contiguous<T>(op, src.data_ptr<T>(), outer, inner, tail, step.data_ptr<T>());
        src = step;
        // Block i is gone; its kept neighbours (reduced blocks never touch) become one block.
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
        if (i > 0 && i < blocks.size()) {
          blocks[i - 1].first *= blocks[i].first;
          blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    } else {
      // Strided (or empty): permute kept dims first, reduced dims last, and copy once.
      Shape sizes, strides;
      for (int d : kept) sizes.push_back(x.sizes()[d]), strides.push_back(x.strides()[d]);
      for (int d : reduced) sizes.push_back(x.sizes()[d]), strides.push_back(x.strides()[d]);
      Tensor view = make_tensor(x.storage(), sizes, strides, x.offset(), x.dtype());
      src = empty(sizes, x.dtype(), kCPU);
      copy(view, src);
      outer = out.numel();  // the kept positions (count may be 0: then every output is the identity)
      tail = 1;
    }
    Tensor dst = out.is_contiguous() ? out : empty(out.sizes(), out.dtype(), kCPU);
    reduce_contiguous<T>(op, src.data_ptr<T>(), outer, inner, tail, dst.data_ptr<T>());
    if (op == ReduceOp::Mean) {
      if constexpr (std::is_floating_point_v<T>) {
        T* p = dst.data_ptr<T>();
        T scale = count == 0 ? std::numeric_limits<T>::quiet_NaN() : T(1) / static_cast<T>(count);
        for (int64_t i = 0; i < dst.numel(); ++i) p[i] = count == 0 ? scale : p[i] * scale;
      } else {
        HG_FAIL("mean: integer input (dtype {}) is not supported; convert to float first", x.dtype());
      }
    }
    if (!dst.is_same(out)) copy(dst, out);
  });
}

}  // namespace hg::cpu
