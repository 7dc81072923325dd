// CPU kernel of Backend::split_among_ties, the backward of max()/amax/amin/median()/∞-norm: each output's gradient
// g is split evenly among the elements of its group that attain y (x = y, or both NaN),
//   dx = (g / count) · [x attains y],   count = Σ_group [x attains y].
// Two passes over each group — count, then write — and no temporary of x's size. Three layouts:
//  - short rows (contiguous x, reduced dims trailing, fewer than 32 elements each: DeepRC's max over 12
//    positions, 1.3 M groups): 16 rows at a time, counted across rows and written flat while they are in L1;
//  - columns (contiguous x as [outer, n, tail], tail > 1: reducing leading or middle dims, as a max over the
//    instances of [bags, instances, features]): a group's elements are `tail` apart, so the counts of `tail`
//    neighbouring outputs accumulate row by row, vectorised along the row, then the rows are written;
//  - groups (any strides, the general case): the kept dims index the outputs, the reduced dims the elements of
//    each group, both walked through x's own strides; each group is counted and written in one visit, or, when
//    there are fewer outputs than threads, split between the threads.
#include <algorithm>
#include <vector>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/dispatch.h>
#include <hopgrad/ops/cpu/loops.h>

namespace hg::cpu {

namespace {

// Does v attain y? Split by y's NaN-ness once per output, so that each loop is one vectorisable compare.
template <typename T> struct Equals {
  T y;
  bool operator()(T v) const { return v == y; }
};
template <typename T> struct IsNan {
  bool operator()(T v) const { return v != v; }
};
template <typename T, typename F> auto with_attains(T y, F&& f) { return y != y ? f(IsNan<T>{}) : f(Equals<T>{y}); }

// The same test where y differs from element to element (columns, short rows).
template <typename T> inline bool attains(T v, T y) { return v == y || (v != v && y != y); }
// Every use below turns the test into a number as `hit ? 1 : 0`: GCC 12 vectorises that, not a cast of the bool.

// ---- one run of a group's elements (n elements `stride` bytes apart) ------------------------------------------

template <typename T, typename Attains> int64_t count_run(const char* x, int64_t stride, int64_t n, Attains hit) {
  int64_t count = 0;
  if (stride == sizeof(T)) {
    const T* p = reinterpret_cast<const T*>(x);
#pragma omp simd reduction(+ : count)
    for (int64_t i = 0; i < n; ++i) count += hit(p[i]) ? 1 : 0;
  } else {
    for (int64_t i = 0; i < n; ++i) count += hit(*reinterpret_cast<const T*>(x + i * stride)) ? 1 : 0;
  }
  return count;
}

// dx = scale · [hit]: a product rather than a select, so that g's NaN/±inf and −0 come out as the composite's.
template <typename T, typename Attains>
void write_run(const char* x, int64_t x_stride, char* dx, int64_t dx_stride, int64_t n, Attains hit, T scale) {
  if (x_stride == sizeof(T) && dx_stride == sizeof(T)) {
    const T* p = reinterpret_cast<const T*>(x);
    T* q = reinterpret_cast<T*>(dx);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) q[i] = scale * (hit(p[i]) ? T(1) : T(0));
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const T v = *reinterpret_cast<const T*>(x + i * x_stride);
      *reinterpret_cast<T*>(dx + i * dx_stride) = scale * (hit(v) ? T(1) : T(0));
    }
  }
}

// ---- groups ---------------------------------------------------------------------------------------------------

// x, dx, g and y seen as [outputs] × [group elements]: the kept dims (coalesced over all four; g and y have them
// all) and the reduced dims (coalesced over x and dx).
struct Groups {
  StridedLayout<4> outputs;
  StridedLayout<2> elements;
  int64_t num_outputs = 1, group_size = 1;
};

Tensor view_of(const Tensor& t, const std::vector<int64_t>& dims) {
  Shape sizes, strides;
  for (int64_t d : dims) sizes.push_back(t.sizes()[d]), strides.push_back(t.strides()[d]);
  return make_tensor(t.storage(), sizes, strides, t.offset(), t.dtype());
}

Groups groups_of(const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& dx,
                 const std::vector<int64_t>& kept, const std::vector<int64_t>& reduced) {
  Shape kept_sizes, reduced_sizes;
  int64_t num_outputs = 1, group_size = 1;
  for (int64_t d : kept) kept_sizes.push_back(x.sizes()[d]), num_outputs *= x.sizes()[d];
  for (int64_t d : reduced) reduced_sizes.push_back(x.sizes()[d]), group_size *= x.sizes()[d];
  Tensor xk = view_of(x, kept), dxk = view_of(dx, kept), gk = view_of(g, kept), yk = view_of(y, kept);
  Tensor xr = view_of(x, reduced), dxr = view_of(dx, reduced);
  return {StridedLayout<4>(kept_sizes, {&xk, &dxk, &gk, &yk}), StridedLayout<2>(reduced_sizes, {&xr, &dxr}),
          num_outputs, group_size};
}

// Calls run(x, x_stride, dx, dx_stride, n) for the runs covering elements [b, e) of the group at (x, dx).
template <typename Run> void for_each_group_run(const StridedLayout<2>& L, const char* x, char* dx, int64_t b,
                                                int64_t e, Run&& run) {
  if (L.ndim == 1) {  // one run: skip for_each_run's index arithmetic, which would cost more than a short group
    run(x + b * L.strides[0][0], L.strides[0][0], dx + b * L.strides[1][0], L.strides[1][0], e - b);
    return;
  }
  for_each_run<2>(L, {const_cast<char*>(x), dx}, b, e, [&](std::array<char*, 2>& p, const std::array<int64_t, 2>& s,
                                                           int64_t n) { run(p[0], s[0], p[1], s[1], n); });
}

template <typename T> int64_t count_group(const StridedLayout<2>& L, const char* x, int64_t b, int64_t e, T y) {
  int64_t count = 0;
  char* unused = const_cast<char*>(x);  // dx's place in the walk; never written
  with_attains(y, [&](auto hit) {
    for_each_group_run(L, x, unused, b, e, [&](const char* p, int64_t s, char*, int64_t, int64_t n) {
      count += count_run<T>(p, s, n, hit);
    });
  });
  return count;
}

template <typename T>
void write_group(const StridedLayout<2>& L, const char* x, char* dx, int64_t b, int64_t e, T y, T scale) {
  with_attains(y, [&](auto hit) {
    for_each_group_run(L, x, dx, b, e, [&](const char* p, int64_t s, char* q, int64_t qs, int64_t n) {
      write_run<T>(p, s, q, qs, n, hit, scale);
    });
  });
}

// Calls f(x, dx, g, y) for outputs [b, e), with the pointers at each output's group.
template <typename T, typename F>
void for_each_output(const Groups& G, const std::array<char*, 4>& base, int64_t b, int64_t e, F&& f) {
  for_each_run<4>(G.outputs, base, b, e, [&](std::array<char*, 4>& p, const std::array<int64_t, 4>& s, int64_t n) {
    for (int64_t j = 0; j < n; ++j)
      f(p[0] + j * s[0], p[1] + j * s[1], *reinterpret_cast<const T*>(p[2] + j * s[2]),
        *reinterpret_cast<const T*>(p[3] + j * s[3]));
  });
}

template <typename T>
void split_groups(const Groups& G, const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) {
  const std::array<char*, 4> base{static_cast<char*>(x.data_ptr()), static_cast<char*>(dx.data_ptr()),
                                  static_cast<char*>(g.data_ptr()), static_cast<char*>(y.data_ptr())};
  const int64_t n = G.group_size;
  const int threads = omp_get_max_threads();
  if (G.num_outputs >= threads || n < kParallelGrain) {
    // Threads split the outputs; each group is counted and written in one visit.
    parallel_for(G.num_outputs, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t b, int64_t e) {
      for_each_output<T>(G, base, b, e, [&](const char* xo, char* dxo, T go, T yo) {
        const T scale = go / static_cast<T>(count_group<T>(G.elements, xo, 0, n, yo));
        write_group<T>(G.elements, xo, dxo, 0, n, yo, scale);
      });
    });
    return;
  }
  // Fewer outputs than threads, each a large group (max() of a whole tensor): threads split each group instead.
  // Counts are integers, so adding the per-thread counts in any order gives the same result.
  for_each_output<T>(G, base, 0, G.num_outputs, [&](const char* xo, char* dxo, T go, T yo) {
    std::vector<int64_t> partial(static_cast<size_t>(threads), 0);
    parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) {
      partial[static_cast<size_t>(omp_get_thread_num())] += count_group<T>(G.elements, xo, b, e, yo);
    });
    int64_t count = 0;
    for (int64_t c : partial) count += c;
    const T scale = go / static_cast<T>(count);
    parallel_for(n, kParallelGrain,
                 [&](int64_t b, int64_t e) { write_group<T>(G.elements, xo, dxo, b, e, yo, scale); });
  });
}

// ---- short rows -----------------------------------------------------------------------------------------------

// Groups shorter than this, back to back in memory, are split many at a time (split_short_rows).
constexpr int64_t kShortRow = 32;

// Outputs [b, e) of x, dx [outputs, n] and g, y [outputs], all contiguous, n < kShortRow (DeepRC's max over 12
// positions, for each of 1.3 M outputs): one row alone is too short for the vector lanes, and a loop per row
// spends more on its setup than on its elements. kBlock rows at a time: the counts take one lane per row
// (strided loads, the rows are in L1), and the write runs flat over the block's kBlock·n elements against
// y and g / count spread to each element.
template <typename T>
void split_short_rows(const T* g, const T* x, const T* y, int64_t b, int64_t e, int64_t n, T* dx) {
  constexpr int64_t kBlock = 16;
  alignas(64) T y_of[kBlock * kShortRow], scale_of[kBlock * kShortRow];  // y and scale at each element of a block
  int64_t o = b;
  for (; o + kBlock <= e; o += kBlock) {
    const T* rows = x + o * n;
    const T* yb = y + o;
    int64_t count[kBlock] = {};
    for (int64_t i = 0; i < n; ++i) {
#pragma omp simd
      for (int64_t l = 0; l < kBlock; ++l) count[l] += attains(rows[l * n + i], yb[l]) ? 1 : 0;
    }
    for (int64_t l = 0; l < kBlock; ++l) {
      std::fill_n(y_of + l * n, n, yb[l]);
      std::fill_n(scale_of + l * n, n, g[o + l] / static_cast<T>(count[l]));
    }
    T* out = dx + o * n;
#pragma omp simd
    for (int64_t j = 0; j < kBlock * n; ++j) out[j] = scale_of[j] * (attains(rows[j], y_of[j]) ? T(1) : T(0));
  }
  for (; o < e; ++o) {  // the last rows, fewer than a block
    with_attains(y[o], [&](auto hit) {
      const T scale = g[o] / static_cast<T>(count_run<T>(reinterpret_cast<const char*>(x + o * n), sizeof(T), n, hit));
      write_run<T>(reinterpret_cast<const char*>(x + o * n), sizeof(T), reinterpret_cast<char*>(dx + o * n), sizeof(T),
                   n, hit, scale);
    });
  }
}

// ---- columns --------------------------------------------------------------------------------------------------

// x, dx [outer, n, tail]; g, y [outer, tail]; all contiguous.
template <typename T>
void split_columns(const T* g, const T* x, const T* y, int64_t outer, int64_t n, int64_t tail, T* dx) {
  // scale [outer, tail] = g / count, the counts taken a row at a time across neighbouring outputs. Threads split
  // the outputs, so each count is the same whatever the thread count.
  std::vector<T> scale(static_cast<size_t>(outer * tail));
  parallel_for(outer * tail, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t b, int64_t e) {
    std::vector<int64_t> count;
    while (b < e) {
      const int64_t o = b / tail, t0 = b % tail, t1 = std::min(tail, t0 + (e - b)), w = t1 - t0;
      const T* yo = y + o * tail + t0;
      count.assign(static_cast<size_t>(w), 0);
      int64_t* c = count.data();
      for (int64_t r = 0; r < n; ++r) {
        const T* row = x + (o * n + r) * tail + t0;
#pragma omp simd
        for (int64_t t = 0; t < w; ++t) c[t] += attains(row[t], yo[t]) ? 1 : 0;
      }
      for (int64_t t = 0; t < w; ++t) {
        const int64_t at = o * tail + t0 + t;
        scale[static_cast<size_t>(at)] = g[at] / static_cast<T>(c[t]);
      }
      b += w;
    }
  });
  // dx, row by row.
  parallel_for(outer * n, std::max<int64_t>(1, kParallelGrain / tail), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t o = row / n;
      const T* xr = x + row * tail;
      const T* yo = y + o * tail;
      const T* so = scale.data() + o * tail;
      T* dr = dx + row * tail;
#pragma omp simd
      for (int64_t t = 0; t < tail; ++t) dr[t] = so[t] * (attains(xr[t], yo[t]) ? T(1) : T(0));
    }
  });
}

Tensor contiguous_copy(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = empty(t.sizes(), t.dtype(), kCPU);
  cpu_backend().copy(t, c);
  return c;
}

}  // namespace

void CpuBackend::split_among_ties(const Tensor& g, const Tensor& x, const Tensor& y, Tensor& dx) {
  HG_CHECK(is_floating(x.dtype()) && g.dtype() == x.dtype() && y.dtype() == x.dtype() && dx.dtype() == x.dtype(),
           "split_among_ties: expects one floating dtype, got g {}, x {}, y {}, dx {}", g.desc(), x.desc(), y.desc(),
           dx.desc());
  HG_CHECK(g.dim() == x.dim() && y.sizes() == g.sizes() && dx.sizes() == x.sizes() && dx.is_contiguous(),
           "split_among_ties: expects g and y of x's rank with one shape, and a contiguous dx of x's shape; got g {}, "
           "x {}, y {}, dx {}",
           g.desc(), x.desc(), y.desc(), dx.desc());
  std::vector<int64_t> kept, reduced;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t n = x.sizes()[d], m = y.sizes()[d];
    HG_CHECK(m == n || m == 1, "split_among_ties: y {} is not x {} reduced over some dims (dim {})", y.desc(),
             x.desc(), d);
    (m == 1 && n != 1 ? reduced : kept).push_back(d);
  }
  if (x.numel() == 0) return;
  HG_DISPATCH_FLOATING(x.dtype(), "split_among_ties", [&] {
    using T = scalar_t;
    // Columns: contiguous x whose reduced dims (ignoring size-1 dims) are one block followed by kept ones.
    int64_t outer = 1, n = 1, tail = 1;
    bool block = x.is_contiguous() && !reduced.empty();
    for (size_t i = 1; block && i < reduced.size(); ++i)
      for (int64_t d = reduced[i - 1] + 1; d < reduced[i]; ++d) block = block && x.sizes()[d] == 1;
    if (block) {
      for (int64_t d = 0; d < reduced.front(); ++d) outer *= x.sizes()[d];
      for (int64_t d : reduced) n *= x.sizes()[d];
      for (int64_t d = reduced.back() + 1; d < x.dim(); ++d) tail *= x.sizes()[d];
    }
    if (block && tail == 1 && n < kShortRow) {
      Tensor gc = contiguous_copy(g), yc = contiguous_copy(y);
      const T *pg = gc.data_ptr<T>(), *px = x.data_ptr<T>(), *py = yc.data_ptr<T>();
      T* pdx = dx.data_ptr<T>();
      parallel_for(outer, std::max<int64_t>(1, kParallelGrain / n),
                   [&](int64_t b, int64_t e) { split_short_rows<T>(pg, px, py, b, e, n, pdx); });
      return;
    }
    if (block && tail > 1) {
      Tensor gc = contiguous_copy(g), yc = contiguous_copy(y);
      split_columns<T>(gc.data_ptr<T>(), x.data_ptr<T>(), yc.data_ptr<T>(), outer, n, tail, dx.data_ptr<T>());
      return;
    }
    split_groups<T>(groups_of(g, x, y, dx, kept, reduced), g, x, y, dx);
  });
}

}  // namespace hg::cpu
