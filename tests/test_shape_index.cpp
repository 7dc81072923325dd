// Shape and indexing ops: cat, stack, split/chunk/unbind, pad, repeat, broadcast_to, flip, roll, tril/triu,
// index_select, gather, scatter_add, index_add, one_hot, embedding. Values against hand-computed cases, gradients
// against finite differences (with repeated indices and non-contiguous inputs), and the errors for bad input.
#include <numeric>

#include "testing.h"

using hg::Tensor;
using hg::Tensors;

namespace {

Tensor f64(const std::vector<double>& values, hg::IntArrayRef shape, hg::Device device = hg::kCPU) {
  return hg::from_vector<double>(values, shape, hg::TensorOptions(hg::kFloat64).device(device));
}
Tensor i64(const std::vector<int64_t>& values, hg::IntArrayRef shape, hg::Device device = hg::kCPU) {
  return hg::from_vector<int64_t>(values, shape, hg::TensorOptions(hg::kInt64).device(device));
}
// A float64 leaf on `device` that requires grad.
Tensor leaf(const std::vector<double>& values, hg::IntArrayRef shape, hg::Device device) {
  return f64(values, shape, device).requires_grad_();
}
// 1, 2, …, n as a float64 tensor of `shape`.
Tensor counting(hg::IntArrayRef shape, hg::Device device = hg::kCPU) {
  int64_t n = hg::Shape(shape).numel();
  return hg::arange(1.0, static_cast<double>(n) + 1.0, 1.0, hg::TensorOptions(hg::kFloat64).device(device))
      .reshape(shape);
}
// Gradients of Σ w ⊙ y with w = 1, 2, 3, … in y's row-major order, so that every output position is told apart.
Tensors grads_of(const Tensor& y, const Tensors& inputs) {
  return hg::grad({hg::sum(y * counting(y.sizes(), y.device()))}, inputs);
}
void check_values(const Tensor& got, const std::vector<double>& expected, hg::IntArrayRef shape,
                  const std::string& what) {
  hgtest::check_close(got, f64(expected, shape), 0, 0, what);
}
Tensors append(Tensors a, const Tensors& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

// ---- cat / stack --------------------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_cat_stack_values) {
  Tensor a = leaf({1, 2, 3, 4, 5, 6}, {2, 3}, device);
  Tensor b = leaf({7, 8}, {2, 1}, device);
  Tensor y = hg::cat({a, b}, 1);
  check_values(y, {1, 2, 3, 7, 4, 5, 6, 8}, {2, 4}, "cat dim 1");
  check_values(hg::cat({a, a * 2.0}, -2), {1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12}, {4, 3}, "cat dim -2");
  // Gradient: g (w = 1..8 over [2, 4]) narrowed back to each input.
  Tensors g = grads_of(y, {a, b});
  check_values(g[0], {1, 2, 3, 5, 6, 7}, {2, 3}, "cat grad a");
  check_values(g[1], {4, 8}, {2, 1}, "cat grad b");
  // Non-contiguous input, and an empty piece that contributes nothing.
  Tensor yt = hg::cat({a.transpose(0, 1), hg::zeros({3, 0}, hg::TensorOptions(hg::kFloat64).device(device)),
                       b.detach().reshape({1, 2}).expand({3, 2})},
                      1);
  check_values(yt, {1, 4, 7, 8, 2, 5, 7, 8, 3, 6, 7, 8}, {3, 4}, "cat transposed");
  // Mixed dtypes promote as torch.cat: int64 + float64 → float64.
  Tensor mixed = hg::cat({i64({1, 2}, {2}, device), f64({0.5}, {1}, device)});
  CHECK(mixed.dtype() == hg::kFloat64);
  check_values(mixed, {1, 2, 0.5}, {3}, "cat promoted");

  Tensor s0 = hg::stack({a, a * 10.0}, 0);
  CHECK(s0.sizes() == hg::Shape{2, 2, 3});
  check_values(s0, {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60}, {2, 2, 3}, "stack dim 0");
  Tensor s2 = hg::stack({a, a * 10.0}, -1);
  check_values(s2, {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60}, {2, 3, 2}, "stack dim -1");
  // d/da of Σ w ⊙ stack(a, 10a, -1) = w[..., 0] + 10 w[..., 1]
  Tensors gs = grads_of(s2, {a});
  check_values(gs[0], {21, 43, 65, 87, 109, 131}, {2, 3}, "stack grad");
  return append({y, yt, mixed, s0, s2}, append(g, gs));
}

TEST_CASE("shape: cat and stack gradcheck, gradgradcheck") {
  auto cat_mixed = [](const Tensors& t) {
    return hg::cat({t[0] * t[0], t[1], t[2].transpose(0, 1)}, 1);  // [2, 3] + [2, 1] + [4, 2]ᵀ
  };
  Tensors in = {hgtest::uniform({2, 3}, -1, 1, 1), hgtest::uniform({2, 1}, -1, 1, 2),
                hgtest::uniform({4, 2}, -1, 1, 3)};
  hgtest::gradcheck(cat_mixed, in);
  hgtest::gradgradcheck(cat_mixed, in);
  auto cat_dim0 = [](const Tensors& t) { return hg::cat({t[0], t[1] * t[1], t[0]}, 0); };  // t[0] twice: grads add
  Tensors in0 = {hgtest::uniform({2, 2, 3}, -1, 1, 4), hgtest::uniform({1, 2, 3}, -1, 1, 5)};
  hgtest::gradcheck(cat_dim0, in0);
  hgtest::gradgradcheck(cat_dim0, in0);
  auto stacked = [](const Tensors& t) { return hg::stack({t[0], t[1].transpose(0, 1) * t[0]}, 1); };
  hgtest::gradcheck(stacked, {hgtest::uniform({2, 3}, -1, 1, 6), hgtest::uniform({3, 2}, -1, 1, 7)});
}

// ---- split / chunk / unbind ----------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_split_chunk_unbind_values) {
  Tensor x = leaf({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 5}, device);
  Tensors pieces = hg::split(x, 2, 1);
  REQUIRE(pieces.size() == 3);
  check_values(pieces[0], {0, 1, 5, 6}, {2, 2}, "split 0");
  check_values(pieces[2], {4, 9}, {2, 1}, "split 2 (the smaller last piece)");
  CHECK(pieces[1].storage() == x.storage());  // views
  Tensors sized = hg::split_with_sizes(x, {1, 0, 4}, -1);
  REQUIRE(sized.size() == 3);
  CHECK(sized[1].sizes() == hg::Shape{2, 0});
  check_values(sized[2], {1, 2, 3, 4, 6, 7, 8, 9}, {2, 4}, "split_with_sizes 2");
  // chunk sizes as torch: ceil(n / chunks), fewer pieces when they run out.
  auto lengths = [](const Tensors& ts, int64_t dim) {
    std::vector<int64_t> n;
    for (const Tensor& t : ts) n.push_back(t.size(dim));
    return n;
  };
  CHECK(lengths(hg::chunk(x, 3, 1), 1) == std::vector<int64_t>{2, 2, 1});
  CHECK(lengths(hg::chunk(hg::zeros({6}), 4), 0) == std::vector<int64_t>{2, 2, 2});
  CHECK(lengths(hg::chunk(hg::zeros({0, 2}), 3), 0) == std::vector<int64_t>{0, 0, 0});
  CHECK(lengths(hg::split(hg::zeros({0}), 0), 0) == std::vector<int64_t>{0});
  CHECK(lengths(hg::split(hg::zeros({0}), 3), 0) == std::vector<int64_t>{0});
  Tensors rows = hg::unbind(x, 0), cols = hg::unbind(x, 1);
  REQUIRE(rows.size() == 2);
  REQUIRE(cols.size() == 5);
  check_values(rows[1], {5, 6, 7, 8, 9}, {5}, "unbind rows");
  check_values(cols[3], {3, 8}, {2}, "unbind cols");
  // Gradients flow back through the views: y = split₀ · 2 + chunk₁ (both [2, 2]) and a column of unbind.
  Tensor y = pieces[0] * 2.0 + hg::chunk(x, 3, 1)[1];
  Tensor g = grads_of(y, {x})[0];
  check_values(g, {2, 4, 1, 2, 0, 6, 8, 3, 4, 0}, {2, 5}, "split/chunk grad");
  Tensor gu = grads_of(cols[4], {x})[0];
  check_values(gu, {0, 0, 0, 0, 1, 0, 0, 0, 0, 2}, {2, 5}, "unbind grad");
  return {pieces[0], pieces[2], sized[2], rows[1], cols[3], g, gu};
}

TEST_CASE("shape: split, chunk and unbind gradcheck") {
  hgtest::gradcheck(
      [](const Tensors& t) {
        Tensors p = hg::chunk(t[0].transpose(0, 1), 3, 1);  // [2, 6] → 3 × [2, 2]
        return p[0] * p[2] + p[1];
      },
      {hgtest::uniform({6, 2}, -1, 1, 1)});
  hgtest::gradcheck(
      [](const Tensors& t) {
        Tensors p = hg::split_with_sizes(t[0], {2, 1}, 0);
        return hg::cat({p[0] * p[0], p[1]}, 0);
      },
      {hgtest::uniform({3, 2}, -1, 1, 2)});
  hgtest::gradcheck(
      [](const Tensors& t) {
        Tensors u = hg::unbind(t[0], -1);
        return u[0] * u[1] + u[2];
      },
      {hgtest::uniform({2, 3}, -1, 1, 3)});
}

// ---- pad ------------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_pad_values) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2}, device);
  Tensor right = hg::pad(x, {1, 2});
  check_values(right, {0, 1, 2, 0, 0, 0, 3, 4, 0, 0}, {2, 5}, "pad last dim");
  check_values(hg::pad(x, {0, 0, 1, 0}, 9), {9, 9, 1, 2, 3, 4}, {3, 2}, "pad rows with 9");
  check_values(hg::pad(x, {-1, 1}), {2, 0, 4, 0}, {2, 2}, "crop left, pad right");
  Tensor sq = leaf({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}, device);
  Tensor mixed = hg::pad(sq.transpose(0, 1), {-1, -1, 1, -1}, -1);  // keep column 1, row above, crop last row
  check_values(mixed, {-1, 4, 5}, {3, 1}, "mixed pad/crop of a transposed input");
  check_values(hg::pad(i64({1, 2}, {1, 2}, device), {1, 0, 0, 1}, 7), {7, 1, 2, 7, 7, 7}, {2, 3}, "int64 pad");
  CHECK(hg::pad(x, {-2, 0}).sizes() == hg::Shape{2, 0});
  Tensor gx = grads_of(right, {x})[0];  // w over [2, 5] = 1..10; x sits at columns 1, 2
  check_values(gx, {2, 3, 7, 8}, {2, 2}, "pad grad");
  Tensor gm = grads_of(mixed, {sq})[0];  // mixed = [-1, sq[1][0], sq[1][1]], w = 1, 2, 3
  check_values(gm, {0, 0, 0, 2, 3, 0, 0, 0, 0}, {3, 3}, "crop grad");
  return {right, mixed, gx, gm};
}

TEST_CASE("shape: pad gradcheck, gradgradcheck") {
  auto padded = [](const Tensors& t) { return hg::pad(t[0] * t[0], {1, 2, 0, 1}, 0.5); };
  hgtest::gradcheck(padded, {hgtest::uniform({2, 3}, -1, 1, 1)});
  hgtest::gradgradcheck(padded, {hgtest::uniform({2, 3}, -1, 1, 1)});
  auto cropped = [](const Tensors& t) { return hg::pad(t[0].transpose(0, 2) * t[0].transpose(0, 2), {-1, 1, 2, -1}); };
  hgtest::gradcheck(cropped, {hgtest::uniform({3, 2, 3}, -1, 1, 2)});
  hgtest::gradgradcheck(cropped, {hgtest::uniform({3, 2, 3}, -1, 1, 2)});
}

// ---- repeat / broadcast_to ------------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_repeat_broadcast_values) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2}, device);
  Tensor rows = hg::repeat(x, {2, 1});
  check_values(rows, {1, 2, 3, 4, 1, 2, 3, 4}, {4, 2}, "repeat rows");
  check_values(hg::repeat(x, {1, 2}), {1, 2, 1, 2, 3, 4, 3, 4}, {2, 4}, "repeat columns");
  Tensor lead = hg::repeat(x, {2, 1, 2});
  CHECK(lead.sizes() == hg::Shape{2, 2, 4});
  check_values(lead, {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4}, {2, 2, 4}, "repeat with a new leading dim");
  CHECK(hg::repeat(x, {0, 1}).sizes() == hg::Shape{0, 2});
  check_values(hg::repeat(i64({5, 6}, {2}, device), {3}), {5, 6, 5, 6, 5, 6}, {6}, "int64 repeat");
  Tensor v = leaf({1, 2}, {2}, device);
  Tensor tiled = hg::repeat(v.unsqueeze(1).transpose(0, 1), {3, 1}).reshape({6});  // [1, 2] tiles of a view
  check_values(tiled, {1, 2, 1, 2, 1, 2}, {6}, "repeat of a view");
  check_values(grads_of(tiled, {v})[0], {1 + 3 + 5, 2 + 4 + 6}, {2}, "repeat grad sums the tiles");
  Tensor g_lead = grads_of(lead, {x})[0];  // w = 1..16 over [2, 2, 4]
  check_values(g_lead, {1 + 3 + 9 + 11, 2 + 4 + 10 + 12, 5 + 7 + 13 + 15, 6 + 8 + 14 + 16}, {2, 2}, "repeat grad");

  Tensor c = leaf({1, 2, 3}, {3, 1}, device);
  Tensor b = hg::broadcast_to(c, {2, 3, -1});
  CHECK(b.sizes() == hg::Shape{2, 3, 1});
  Tensor wide = hg::broadcast_to(c, {2, 3, 2});
  check_values(wide, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, {2, 3, 2}, "broadcast_to");
  CHECK(wide.storage() == c.storage());  // a view, as torch.broadcast_to
  Tensor gc = grads_of(wide, {c})[0];  // w = 1..12 over [2, 3, 2]
  check_values(gc, {1 + 2 + 7 + 8, 3 + 4 + 9 + 10, 5 + 6 + 11 + 12}, {3, 1}, "broadcast_to grad");
  return {rows, lead, tiled, g_lead, wide, gc};
}

TEST_CASE("shape: repeat of a rank-5 tensor tiled along every dim matches the definition") {
  // Ten interleaved dims exceed kMaxDims: repeat tiles one dim at a time.
  Tensor x = hgtest::uniform({2, 3, 2, 2, 2}, -1, 1, 3).permute({0, 1, 2, 4, 3});
  Tensor y = hg::repeat(x, {2, 2, 3, 2, 2});
  REQUIRE(y.sizes() == hg::Shape{4, 6, 6, 4, 4});
  std::vector<double> xv = x.contiguous().to_vector<double>(), yv = y.to_vector<double>();
  hg::Shape xs = x.sizes(), ys = y.sizes();
  size_t bad = 0;
  for (int64_t i = 0; i < ys.numel(); ++i) {
    int64_t rest = i, src = 0, scale = 1;
    for (int d = 4; d >= 0; --d) {
      int64_t pos = rest % ys[d];
      rest /= ys[d];
      src += (pos % xs[d]) * scale;
      scale *= xs[d];
    }
    bad += yv[static_cast<size_t>(i)] != xv[static_cast<size_t>(src)];
  }
  CHECK(bad == 0);
  hgtest::gradcheck(
      [&](const Tensors& t) {
        return hg::repeat(t[0].transpose(1, 4), {2, 2, 2, 2, 2});
      },
      {hgtest::uniform({2, 2, 1, 2, 2}, -1, 1, 4)});
}

TEST_CASE("shape: repeat and broadcast_to gradcheck") {
  hgtest::gradcheck(
      [](const Tensors& t) {
        return hg::repeat(t[0].transpose(0, 1), {2, 3});
      },
      {hgtest::uniform({3, 2}, -1, 1, 1)});
  hgtest::gradcheck([](const Tensors& t) { return hg::repeat(t[0], {2, 1, 2}); }, {hgtest::uniform({2, 3}, -1, 1, 2)});
  hgtest::gradgradcheck(
      [](const Tensors& t) {
        return hg::repeat(t[0] * t[0], {3, 1});
      },
      {hgtest::uniform({2, 2}, -1, 1, 3)});
  hgtest::gradcheck(
      [](const Tensors& t) {
        return hg::broadcast_to(t[0], {2, 3, 4}) * t[1];
      },
      {hgtest::uniform({3, 1}, -1, 1, 4), hgtest::uniform({3, 4}, -1, 1, 5)});
}

// ---- index_select / gather --------------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_index_select_values) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}, device);
  Tensor idx = i64({2, 0, 2}, {3}, device);
  Tensor rows = hg::index_select(x, 0, idx);
  check_values(rows, {7, 8, 9, 1, 2, 3, 7, 8, 9}, {3, 3}, "index_select rows");
  Tensor cols = hg::index_select(x, -1, idx);
  check_values(cols, {3, 1, 3, 6, 4, 6, 9, 7, 9}, {3, 3}, "index_select columns");
  check_values(hg::index_select(x.transpose(0, 1), 0, idx), {3, 6, 9, 1, 4, 7, 3, 6, 9}, {3, 3},
               "index_select of a transposed input");
  Tensor one = hg::index_select(x, 0, i64({1}, {}, device));  // a 0-dim index selects one row, kept as a dim
  check_values(one, {4, 5, 6}, {1, 3}, "0-dim index");
  // A strided index (every other element of [2, 9, 0, 9]).
  Tensor strided = i64({2, 9, 0, 9}, {4}, device).slice(0, 0, 4, 2);
  check_values(hg::index_select(x, 1, strided), {3, 1, 6, 4, 9, 7}, {3, 2}, "strided index");
  check_values(hg::index_select(i64({10, 20, 30}, {3}, device), 0, idx), {30, 10, 30}, {3}, "int64 values");
  CHECK(hg::index_select(x, 0, i64({}, {0}, device)).sizes() == hg::Shape{0, 3});
  // Row 2 picked twice: its gradient is the sum of both output rows' weights.
  Tensor g = grads_of(rows, {x})[0];
  check_values(g, {4, 5, 6, 0, 0, 0, 1 + 7, 2 + 8, 3 + 9}, {3, 3}, "index_select grad");
  return {rows, cols, one, g};
}

TEST_CASE("shape: index_select gradcheck, gradgradcheck") {
  Tensor idx = i64({3, 0, 3, 1, 3}, {5});
  auto rows = [&](const Tensors& t) { return hg::index_select(t[0], 0, idx); };
  hgtest::gradcheck(rows, {hgtest::uniform({4, 3}, -1, 1, 1)});
  Tensor idx2 = i64({2, 2, 0}, {3});
  auto cols = [&](const Tensors& t) { return hg::index_select(t[0].transpose(0, 1), 1, idx2); };  // [2, 3] view
  hgtest::gradcheck(cols, {hgtest::uniform({3, 2}, -1, 1, 2)});
  auto squared = [&](const Tensors& t) {
    Tensor s = hg::index_select(t[0], 1, idx2);
    return s * s * hg::index_select(t[1], 0, idx);
  };
  hgtest::gradcheck(squared, {hgtest::uniform({5, 3}, -1, 1, 3), hgtest::uniform({4, 3}, -1, 1, 4)});
  hgtest::gradgradcheck(squared, {hgtest::uniform({5, 3}, -1, 1, 3), hgtest::uniform({4, 3}, -1, 1, 4)});
}

HG_BACKEND_TEST(shape_gather_values) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2}, device);
  Tensor y1 = hg::gather(x, 1, i64({0, 0, 1, 0}, {2, 2}, device));  // torch.gather's documented example
  check_values(y1, {1, 1, 4, 3}, {2, 2}, "gather dim 1");
  Tensor y0 = hg::gather(x, 0, i64({1, 0, 0, 0, 1, 1}, {3, 2}, device));  // the index may be longer along dim
  check_values(y0, {3, 2, 1, 2, 3, 4}, {3, 2}, "gather dim 0");
  Tensor sq = leaf({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}, device);
  Tensor small = hg::gather(sq, 1, i64({2, 0}, {2, 1}, device));  // index smaller than the input elsewhere
  check_values(small, {3, 4}, {2, 1}, "gather with a smaller index");
  check_values(hg::gather(sq.transpose(0, 1), 0, i64({2, 1, 0}, {1, 3}, device)), {3, 5, 7}, {1, 3},
               "gather from a transposed input");
  // Repeated index in row 0: x[0][0] gets both weights of that row.
  Tensor g1 = grads_of(y1, {x})[0];
  check_values(g1, {1 + 2, 0, 4, 3}, {2, 2}, "gather grad");
  Tensor g0 = grads_of(y0, {x})[0];  // w = 1..6 over [3, 2]
  check_values(g0, {3, 2 + 4, 1 + 5, 6}, {2, 2}, "gather grad dim 0");
  return {y1, y0, small, g1, g0};
}

TEST_CASE("shape: gather gradcheck, gradgradcheck") {
  Tensor idx = i64({0, 2, 2, 1, 1, 1, 0, 0}, {2, 4});
  auto along1 = [&](const Tensors& t) { return hg::gather(t[0], 1, idx); };  // [2, 5] input, index [2, 4]
  hgtest::gradcheck(along1, {hgtest::uniform({2, 5}, -1, 1, 1)});
  Tensor idx0 = i64({2, 0, 1, 2, 2, 2}, {3, 2});
  auto along0 = [&](const Tensors& t) { return hg::gather(t[0].transpose(0, 1), 0, idx0); };  // [3, 3] view
  hgtest::gradcheck(along0, {hgtest::uniform({3, 3}, -1, 1, 2)});
  auto squared = [&](const Tensors& t) {
    Tensor g = hg::gather(t[0], 1, idx);
    return g * g;
  };
  hgtest::gradgradcheck(squared, {hgtest::uniform({2, 5}, -1, 1, 3)});
  Tensor idx3 = i64({1, 0, 1, 1, 0, 0}, {1, 3, 2});
  hgtest::gradgradcheck([&](const Tensors& t) { return hg::gather(t[0] * t[0], 2, idx3); },
                        {hgtest::uniform({2, 3, 2}, -1, 1, 4)});
}

// ---- scatter_add / index_add ---------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_scatter_add_values) {
  // torch.scatter_add_'s documented example: ones [2, 5] into zeros [3, 5] along dim 0.
  Tensor index = i64({0, 1, 2, 0, 0, 0, 1, 2, 2, 2}, {2, 5}, device);
  Tensor y = hg::scatter_add(hg::zeros({3, 5}, hg::TensorOptions(hg::kFloat64).device(device)), 0, index,
                             hg::ones({2, 5}, hg::TensorOptions(hg::kFloat64).device(device)));
  check_values(y, {2, 0, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 2, 1, 1}, {3, 5}, "scatter_add dim 0");
  // Along dim 1 into a non-zero self, with a src larger than the index (its extra entries take no part).
  Tensor self = leaf({1, 2, 3, 4, 5, 6}, {2, 3}, device);
  Tensor src = leaf({10, 20, 30, 40, 50, 60}, {2, 3}, device);
  Tensor idx = i64({2, 2, 0, 1}, {2, 2}, device);
  Tensor z = hg::scatter_add(self, 1, idx, src);
  check_values(z, {1, 2, 3 + 10 + 20, 4 + 40, 5 + 50, 6}, {2, 3}, "scatter_add dim 1");
  check_values(hg::scatter_add(i64({0, 0}, {2}, device), 0, i64({1, 1, 0}, {3}, device), i64({5, 6, 7}, {3}, device)),
               {7, 11}, {2}, "int64 scatter_add");
  Tensors g = grads_of(z, {self, src});  // w = 1..6 over [2, 3]
  check_values(g[0], {1, 2, 3, 4, 5, 6}, {2, 3}, "scatter_add grad self");
  check_values(g[1], {3, 3, 0, 4, 5, 0}, {2, 3}, "scatter_add grad src (0 where the index does not reach)");
  return append({y, z}, g);
}

TEST_CASE("shape: scatter_add gradcheck, gradgradcheck") {
  Tensor idx = i64({1, 0, 1, 1, 2, 2, 0, 0}, {2, 4});
  auto dim0 = [&](const Tensors& t) { return hg::scatter_add(t[0], 0, idx, t[1]); };
  hgtest::gradcheck(dim0, {hgtest::uniform({3, 4}, -1, 1, 1), hgtest::uniform({2, 4}, -1, 1, 2)});
  hgtest::gradcheck(dim0, {hgtest::uniform({3, 5}, -1, 1, 3), hgtest::uniform({3, 6}, -1, 1, 4)});  // bigger src
  Tensor idx1 = i64({0, 0, 0, 1, 1, 0}, {3, 2});
  auto dim1 = [&](const Tensors& t) { return hg::scatter_add(t[0].transpose(0, 1), 1, idx1, t[1] * t[1]); };
  hgtest::gradcheck(dim1, {hgtest::uniform({2, 3}, -1, 1, 5), hgtest::uniform({3, 2}, -1, 1, 6)});
  hgtest::gradgradcheck(dim1, {hgtest::uniform({2, 3}, -1, 1, 5), hgtest::uniform({3, 2}, -1, 1, 6)});
}

HG_BACKEND_TEST(shape_index_add_values) {
  Tensor self = leaf(std::vector<double>(15, 1.0), {5, 3}, device);
  Tensor src = leaf({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3}, device);
  Tensor idx = i64({0, 4, 2, 0}, {4}, device);  // row 0 twice
  Tensor y = hg::index_add(self, 0, idx, src);
  check_values(y, {12, 14, 16, 1, 1, 1, 8, 9, 10, 1, 1, 1, 5, 6, 7}, {5, 3}, "index_add dim 0");
  // Both columns of src [[1, 4], [2, 5], [3, 6]] into column 3 of selfᵀ [3, 5].
  Tensor cols = hg::index_add(self.transpose(0, 1), 1, i64({3, 3}, {2}, device), src.slice(0, 0, 2).transpose(0, 1));
  check_values(cols, {1, 1, 1, 1 + 1 + 4, 1, 1, 1, 1, 1 + 2 + 5, 1, 1, 1, 1, 1 + 3 + 6, 1}, {3, 5},
               "index_add dim 1 into a transposed self");
  check_values(hg::index_add(i64({1, 1, 1}, {3}, device), 0, i64({2}, {}, device), i64({5}, {1}, device)), {1, 1, 6},
               {3}, "int64 index_add with a 0-dim index");
  Tensors g = grads_of(y, {self, src});  // w = 1..15 over [5, 3]
  check_values(g[0], {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {5, 3}, "index_add grad self");
  check_values(g[1], {1, 2, 3, 13, 14, 15, 7, 8, 9, 1, 2, 3}, {4, 3}, "index_add grad src");
  return append({y, cols}, g);
}

TEST_CASE("shape: index_add gradcheck, gradgradcheck") {
  Tensor idx = i64({0, 3, 0, 1, 0}, {5});
  auto dim0 = [&](const Tensors& t) { return hg::index_add(t[0], 0, idx, t[1]); };
  hgtest::gradcheck(dim0, {hgtest::uniform({4, 3}, -1, 1, 1), hgtest::uniform({5, 3}, -1, 1, 2)});
  auto dim1 = [&](const Tensors& t) {
    return hg::index_add(t[0], 1, idx, t[1].transpose(0, 1) * t[1].transpose(0, 1));
  };
  hgtest::gradcheck(dim1, {hgtest::uniform({3, 4}, -1, 1, 3), hgtest::uniform({5, 3}, -1, 1, 4)});
  hgtest::gradgradcheck(dim1, {hgtest::uniform({3, 4}, -1, 1, 3), hgtest::uniform({5, 3}, -1, 1, 4)});
}

// ---- embedding ------------------------------------------------------------------------------------------------

HG_BACKEND_TEST(shape_embedding_values) {
  Tensor weight = leaf({0, 1, 10, 11, 20, 21, 30, 31}, {4, 2}, device);
  Tensor indices = i64({1, 3, 1, 0, 0, 2}, {2, 3}, device);
  Tensor y = hg::embedding(weight, indices);
  CHECK(y.sizes() == hg::Shape{2, 3, 2});
  check_values(y, {10, 11, 30, 31, 10, 11, 0, 1, 0, 1, 20, 21}, {2, 3, 2}, "embedding");
  check_values(hg::embedding(weight, i64({2}, {}, device)), {20, 21}, {2}, "0-dim indices");
  // Rows 0 and 1 are looked up twice: their gradients accumulate (w = 1..12 over [2, 3, 2]).
  Tensor g = grads_of(y, {weight})[0];
  check_values(g, {7 + 9, 8 + 10, 1 + 5, 2 + 6, 11, 12, 3, 4}, {4, 2}, "embedding grad");
  return {y, g};
}

TEST_CASE("shape: embedding gradcheck, gradgradcheck") {
  Tensor indices = i64({4, 0, 4, 2, 2, 4}, {2, 3});
  auto lookup = [&](const Tensors& t) { return hg::embedding(t[0], indices); };
  hgtest::gradcheck(lookup, {hgtest::uniform({5, 3}, -1, 1, 1)});
  auto squared = [&](const Tensors& t) {
    Tensor e = hg::embedding(t[0].transpose(0, 1), indices);  // a non-contiguous table
    return e * e;
  };
  hgtest::gradcheck(squared, {hgtest::uniform({3, 5}, -1, 1, 2)});
  hgtest::gradgradcheck(squared, {hgtest::uniform({3, 5}, -1, 1, 2)});
}

// ---- large inputs: the parallel paths agree with plain loops ----------------------------------------------------

TEST_CASE("shape: indexing kernels on large inputs match plain loops") {
  hg::Generator gen(11);
  const int64_t rows = 300, width = 16, n = 40000;
  Tensor table = hg::randn({rows, width}, hg::kFloat64, &gen);
  Tensor idx = hg::randint(0, rows, {n}, hg::kInt64, &gen);
  std::vector<double> t = table.to_vector<double>();
  std::vector<int64_t> iv = idx.to_vector<int64_t>();

  Tensor picked = hg::index_select(table, 0, idx);  // [n, width]: rows copied in parallel
  std::vector<double> pv = picked.to_vector<double>();
  size_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < width; ++j) bad += pv[i * width + j] != t[iv[i] * width + j];
  CHECK(bad == 0);

  // index_add of integer-valued rows: exact, and each column sums in index order whatever the thread count.
  Tensor src = hg::randint(-5, 5, {n, width}, hg::kInt64, &gen).to(hg::kFloat32);
  Tensor acc = hg::index_add(hg::zeros({rows, width}), 0, idx, src);
  std::vector<float> sv = src.to_vector<float>(), expect(static_cast<size_t>(rows * width), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < width; ++j) expect[iv[i] * width + j] += sv[i * width + j];
  hgtest::check_close(acc, hg::from_vector<float>(expect, {rows, width}), 0, 0, "large index_add");

  // gather / scatter_add along the last dim of a transposed table.
  Tensor cols = hg::randint(0, rows, {width, 4000}, hg::kInt64, &gen);
  Tensor g = hg::gather(table.t(), 1, cols);
  std::vector<double> gv = g.to_vector<double>();
  std::vector<int64_t> cv = cols.to_vector<int64_t>();
  bad = 0;
  for (int64_t r = 0; r < width; ++r)
    for (int64_t k = 0; k < 4000; ++k) bad += gv[r * 4000 + k] != t[cv[r * 4000 + k] * width + r];
  CHECK(bad == 0);
  Tensor back = hg::scatter_add(hg::zeros({width, rows}, hg::kFloat64), 1, cols, hg::ones({width, 4000}, hg::kFloat64));
  std::vector<double> counts(static_cast<size_t>(width * rows), 0.0);
  for (int64_t r = 0; r < width; ++r)
    for (int64_t k = 0; k < 4000; ++k) counts[r * rows + cv[r * 4000 + k]] += 1.0;
  hgtest::check_close(back, f64(counts, {width, rows}), 0, 0, "large scatter_add");
}

// ---- errors -----------------------------------------------------------------------------------------------------

TEST_CASE("shape: index out of range is reported with the value, the dim and the valid range") {
  Tensor x = hg::ones({3, 4});
  CHECK_THROWS_WITH_AS(hg::index_select(x, 0, i64({0, 5, 1}, {3})),
                       doctest::Contains("index_select: index 5 is out of range for dimension 0 of input [3, 4] "
                                         "(expected 0 <= index < 3)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(x, 1, i64({-1}, {1})), doctest::Contains("index -1 is out of range"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::gather(x, 1, i64({0, 4}, {1, 2})),
                       doctest::Contains("gather: index 4 is out of range for dimension 1 of input [3, 4]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scatter_add(x, 0, i64({3}, {1, 1}), hg::ones({1, 1})),
                       doctest::Contains("scatter_add: index 3 is out of range for dimension 0 of self [3, 4]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_add(x, 1, i64({-2}, {1}), hg::ones({3, 1})),
                       doctest::Contains("index_add: index -2 is out of range for dimension 1"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::embedding(hg::ones({4, 2}), i64({1, 7}, {2})),
                       doctest::Contains("embedding: index 7 is out of range for dimension 0 of weight [4, 2] "
                                         "(expected 0 <= index < 4)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(hg::ones({0, 2}), 0, i64({0}, {1})),
                       doctest::Contains("expected 0 <= index < 0"), hg::Error);
}

TEST_CASE("shape: wrong index dtype, shape or device") {
  Tensor x = hg::ones({3, 4});
  CHECK_THROWS_WITH_AS(hg::index_select(x, 0, hg::zeros({2})),
                       doctest::Contains("index_select: index must be int64, got float32[2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::gather(x, 0, hg::zeros({1, 1}, hg::kBool)), doctest::Contains("gather: index must be int64"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::embedding(hg::ones({4, 2}), hg::zeros({2})),
                       doctest::Contains("embedding: index must be int64"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(x, 0, i64({0, 1}, {1, 2})),
                       doctest::Contains("index_select: index must be 1-D (or 0-dim), got shape [1, 2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(x, 2, i64({0}, {1})),
                       doctest::Contains("index_select: dimension 2 out of range for a 2-D tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(hg::ones({}), 0, i64({0}, {1})), doctest::Contains("at least one dimension"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::gather(x, 1, i64({0}, {1})),
                       doctest::Contains("gather: index must have as many dimensions as the input, got index [1] for "
                                         "input [3, 4]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::gather(x, 1, i64({0, 0, 0, 0}, {4, 1})),
                       doctest::Contains("gather: index [4, 1] is larger than the input [3, 4] in dimension 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::scatter_add(x, 0, i64({0}, {1, 1}), hg::ones({1, 1}, hg::kFloat64)),
                       doctest::Contains("scatter_add: self (float32[3, 4] cpu) and src (float64[1, 1] cpu) must have "
                                         "the same dtype"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::scatter_add(x, 0, i64({0, 0}, {1, 2}), hg::ones({1, 1})),
                       doctest::Contains("scatter_add: index [1, 2] must be no larger than src [1, 1]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::scatter_add(x, 0, i64({0, 0, 0, 0, 0}, {1, 5}), hg::ones({1, 5})),
                       doctest::Contains("dimension 1 is not"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_add(x, 0, i64({0, 1}, {2}), hg::ones({3, 4})),
                       doctest::Contains("index_add: src must have self's shape [3, 4] except 2 (the number of "
                                         "indices) in dimension 0, i.e. [2, 4]; got src [3, 4]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_add(x, 0, i64({0}, {1}), hg::ones({1, 4}, hg::kInt64)),
                       doctest::Contains("must have the same dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(
      hg::embedding(hg::ones({4}), i64({0}, {1})),
      doctest::Contains("embedding: weight must be 2-D [num_embeddings, embedding_dim], got float32[4]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::index_select(x, 0, Tensor()), doctest::Contains("index_select: got an undefined tensor"),
                       hg::Error);
}

TEST_CASE("shape: cat and stack name the offending input") {
  Tensor a = hg::ones({2, 3});
  CHECK_THROWS_WITH_AS(hg::cat({a, a, hg::ones({3, 4})}, 1),
                       doctest::Contains("cat: input 2 has shape [3, 4] but input 0 has shape [2, 3]; sizes must match "
                                         "except in dimension 1"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::cat({a, hg::ones({6})}),
                       doctest::Contains("cat: input 1 has shape [6] but input 0 has shape "
                                         "[2, 3]; all inputs need the same number of dimensions"),
                       hg::Error);
  // No legacy skipping of 1-D empty tensors: they are rank mismatches like any other.
  CHECK_THROWS_WITH_AS(hg::cat({a, hg::zeros({0})}), doctest::Contains("cat: input 1 has shape [0]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cat({}), doctest::Contains("cat: expects a non-empty list of tensors"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cat({hg::ones({})}), doctest::Contains("cat: input 0 is a 0-dim tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cat({a, Tensor()}), doctest::Contains("cat: input 1 is undefined"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::cat({a}, 2), doctest::Contains("cat: dimension 2 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::stack({a, a, hg::ones({3, 2})}),
                       doctest::Contains("stack: input 2 has shape [3, 2] but input 0 has shape [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::stack({a}, 3), doctest::Contains("stack: dimension 3 out of range for a 3-D tensor"),
                       hg::Error);
}

TEST_CASE("shape: bad split, pad, repeat and broadcast_to arguments") {
  Tensor x = hg::ones({4, 3});
  CHECK_THROWS_WITH_AS(hg::split(x, 0),
                       doctest::Contains("split: split_size must be positive (0 only for an empty "
                                         "dimension), got 0 for dimension 0 of size 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::split(x, -1, 1), doctest::Contains("split: split_size must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::split(hg::ones({}), 1),
                       doctest::Contains("split: expects a tensor with at least one "
                                         "dimension"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::split_with_sizes(x, {1, 2}),
                       doctest::Contains("split_with_sizes: sizes [1, 2] add up to 3 "
                                         "but dimension 0 of the input [4, 3] has size 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::split_with_sizes(x, {5, -1}), doctest::Contains("must be non-negative"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::chunk(x, 0), doctest::Contains("chunk: the number of chunks must be positive, got 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::unbind(x, 2), doctest::Contains("unbind: dimension 2 out of range"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::pad(x, {1, 2, 3}), doctest::Contains("pad: pad must list (before, after) pairs"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::pad(x, {1, 1, 1, 1, 1, 1}),
                       doctest::Contains("pad: 3 pairs in pad [1, 1, 1, 1, 1, 1] but the input [4, 3] has only 2"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::pad(x, {-2, -2}),
                       doctest::Contains("pad: cropping (-2, -2) removes more than the 3 "
                                         "elements of dimension 1"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::repeat(x, {2}),
                       doctest::Contains("repeat: repeats [2] has fewer entries than the input "
                                         "[4, 3] has dimensions"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::repeat(x, {1, -1}), doctest::Contains("repeat: repeats must be non-negative"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::broadcast_to(x, {4, 2}),
                       doctest::Contains("broadcast_to: cannot broadcast [4, 3] to [4, 2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::broadcast_to(x, {3}), doctest::Contains("which has fewer dimensions"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::broadcast_to(x, {-1, 4, 3}), doctest::Contains("new leading dimension 0"), hg::Error);
}

// ---- flip / roll / tril / triu / one_hot ---------------------------------------------------------------------

HG_BACKEND_TEST(shape_flip_roll_values) {
  Tensor x = counting({2, 3, 4}, device).requires_grad_();
  // flip: y[i, j, k] = x[1 − i, j, 3 − k]
  Tensor y = hg::flip(x, {0, -1});
  std::vector<double> expected_flip;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) expected_flip.push_back(1 + ((1 - i) * 3 + j) * 4 + (3 - k));
  check_values(y, expected_flip, {2, 3, 4}, "flip dims 0, -1");
  // Its gradient is the weights flipped back: w[1 − i, j, 3 − k].
  check_values(grads_of(y, {x})[0], expected_flip, {2, 3, 4}, "flip grad");
  Tensor copy = hg::flip(x, {});
  CHECK(copy.storage() != x.storage());  // a copy, as torch.flip, even with nothing to flip
  // roll: y[i, (j + 1) mod 3, (k − 5) mod 4] = x[i, j, k]
  Tensor r = hg::roll(x, {1, -5}, {1, 2});
  std::vector<double> expected_roll(24);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) expected_roll[(i * 3 + (j + 1) % 3) * 4 + (k + 3) % 4] = 1 + (i * 3 + j) * 4 + k;
  check_values(r, expected_roll, {2, 3, 4}, "roll dims 1, 2");
  // Without dims: the flattened tensor rolls, then takes its shape back.
  std::vector<double> expected_flat(24);
  for (int f = 0; f < 24; ++f) expected_flat[(f + 3) % 24] = f + 1;
  Tensor rf = hg::roll(x, {3});
  check_values(rf, expected_flat, {2, 3, 4}, "roll flattened");
  return {y, r, rf, grads_of(r, {x})[0]};
}

TEST_CASE("shape: flip and roll gradcheck (non-contiguous input) and errors") {
  hgtest::gradcheck([](const Tensors& t) { return hg::flip(t[0].transpose(0, 1), {0, 1}) * t[0].transpose(0, 1); },
                    {hgtest::uniform({3, 4})});
  hgtest::gradcheck([](const Tensors& t) { return hg::roll(t[0].transpose(0, 1), {2, -1}, {0, 1}) * t[0].t(); },
                    {hgtest::uniform({3, 4})});
  Tensor x = counting({2, 3});
  CHECK_THROWS_WITH_AS(hg::flip(x, {1, -1}), doctest::Contains("flip: dimension 1 appears more than once"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::roll(x, {1, 2}, {0}), doctest::Contains("roll: got 2 shifts for 1 dims"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::roll(x, {1, 2}), doctest::Contains("roll: without dims, takes exactly one shift"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::flip(x, {2}), doctest::Contains("flip: dimension 2 out of range"), hg::Error);
}

HG_BACKEND_TEST(shape_tril_triu_values) {
  Tensor x = counting({2, 3, 4}, device).requires_grad_();
  Tensors out;
  for (int64_t diagonal : {-1, 0, 2}) {
    std::vector<double> lower, upper;
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) {
          const double v = 1 + (b * 3 + i) * 4 + j;
          lower.push_back(j - i <= diagonal ? v : 0.0);
          upper.push_back(j - i >= diagonal ? v : 0.0);
        }
    Tensor l = hg::tril(x, diagonal), u = hg::triu(x, diagonal);
    check_values(l, lower, {2, 3, 4}, "tril " + std::to_string(diagonal));
    check_values(u, upper, {2, 3, 4}, "triu " + std::to_string(diagonal));
    // The gradient is the weights' triangle, which is the same pattern over 1, 2, 3, …
    check_values(grads_of(l, {x})[0], lower, {2, 3, 4}, "tril grad " + std::to_string(diagonal));
    out.push_back(l);
    out.push_back(u);
  }
  // Outside the triangle a NaN becomes 0 too, as in torch (a product with a mask would keep it).
  Tensor nan = hg::full({2, 2}, std::nan(""), hg::TensorOptions(hg::kFloat64).device(device));
  Tensor tn = hg::tril(nan);
  const std::vector<double> tv = tn.to_vector<double>();
  CHECK(std::isnan(tv[0]));
  CHECK(tv[1] == 0.0);
  // dtypes are kept: a causal mask is tril of a bool matrix.
  Tensor mask = hg::tril(hg::ones({3, 3}, hg::TensorOptions(hg::kBool).device(device)));
  CHECK(mask.dtype() == hg::kBool);
  CHECK(mask.to_vector<bool>() == std::vector<bool>{true, false, false, true, true, false, true, true, true});
  CHECK(hg::triu(i64({1, 2, 3, 4}, {2, 2}, device)).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 0, 4});
  out.push_back(tn);
  return out;
}

TEST_CASE("shape: tril and triu gradcheck and errors") {
  hgtest::gradcheck([](const Tensors& t) { return hg::tril(t[0], 1) + hg::triu(t[0].transpose(-1, -2), -1); },
                    {hgtest::uniform({2, 4, 4})});
  CHECK_THROWS_WITH_AS(hg::tril(counting({3})), doctest::Contains("tril: expects a tensor with at least 2 dimensions"),
                       hg::Error);
}

HG_BACKEND_TEST(index_one_hot_values) {
  Tensor h = hg::one_hot(i64({2, 0, 1}, {3}, device), 4);
  CHECK(h.dtype() == hg::kInt64);
  CHECK(h.sizes() == hg::Shape{3, 4});
  CHECK(h.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0});
  // Classes inferred as the largest index + 1; any index shape gains a last dim.
  Tensor inferred = hg::one_hot(i64({1, 2, 2, 0}, {2, 2}, device));
  CHECK(inferred.sizes() == hg::Shape{2, 2, 3});
  CHECK(inferred.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0});
  CHECK(hg::one_hot(i64({}, {0}, device), 5).sizes() == hg::Shape{0, 5});
  return {h.to(hg::kFloat64), inferred.to(hg::kFloat64)};
}

TEST_CASE("index: one_hot refuses what it cannot encode") {
  CHECK_THROWS_WITH_AS(hg::one_hot(i64({0, 4}, {2}), 4), doctest::Contains("class index 4 is not below num_classes = 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::one_hot(i64({-1}, {1}), 4), doctest::Contains("must be non-negative, got -1"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::one_hot(i64({}, {0})), doctest::Contains("cannot infer the number of classes"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::one_hot(f64({1}, {1}), 2), doctest::Contains("expects int64 class indices"), hg::Error);
}
