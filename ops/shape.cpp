// Shape ops (torch semantics): cat, stack, split, split_with_sizes, chunk, unbind, pad, repeat, broadcast_to,
// flip, roll, tril, triu. split/chunk/unbind/broadcast_to are views (their gradients come from the view ops);
// cat, pad and repeat copy with one strided backend copy per piece, and their backwards are slices, pads and sums;
// flip, roll, tril and triu are composites of those and of index_select and where.
#include <algorithm>
#include <optional>
#include <vector>

#include <hopgrad/autograd/function.h>
#include <hopgrad/ops/backend.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

// Every tensor of a list defined and on the first one's device.
void check_tensor_list(const char* op, const Tensors& tensors) {
  HG_CHECK(!tensors.empty(), "{}: expects a non-empty list of tensors", op);
  for (size_t i = 0; i < tensors.size(); ++i) {
    HG_CHECK(tensors[i].defined(), "{}: input {} is undefined", op, i);
    HG_CHECK(tensors[i].device() == tensors[0].device(),
             "{}: input {} ({}) is on a different device than input 0 ({}); move it with .to()", op, i,
             tensors[i].desc(), tensors[0].desc());
  }
}

int64_t split_dim(const char* op, const Tensor& x, int64_t dim) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(x.dim() > 0, "{}: expects a tensor with at least one dimension, got a 0-dim tensor", op);
  return wrap_dim(dim, x.dim(), op);
}

}  // namespace

// y = [x₀, x₁, …] joined along dim ;  ∂L/∂xᵢ = g narrowed to xᵢ's slice
Tensor cat(const Tensors& tensors, int64_t dim) {
  check_tensor_list("cat", tensors);
  const Tensor& first = tensors[0];
  HG_CHECK(first.dim() > 0, "cat: input 0 is a 0-dim tensor and cannot be concatenated; unsqueeze it or use stack");
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape out_sizes = first.sizes();
  out_sizes[dim] = 0;
  DType dtype = first.dtype();
  std::vector<int64_t> lengths;
  std::vector<DType> dtypes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    HG_CHECK(t.dim() == first.dim(),
             "cat: input {} has shape {} but input 0 has shape {}; all inputs need the same number of dimensions", i,
             t.sizes(), first.sizes());
    for (int64_t d = 0; d < t.dim(); ++d) {
      HG_CHECK(d == dim || t.sizes()[d] == first.sizes()[d],
               "cat: input {} has shape {} but input 0 has shape {}; sizes must match except in dimension {}", i,
               t.sizes(), first.sizes(), dim);
    }
    out_sizes[dim] += t.sizes()[dim];
    dtype = promote_types(dtype, t.dtype());
    lengths.push_back(t.sizes()[dim]);
    dtypes.push_back(t.dtype());
  }
  Tensor out = empty(out_sizes, dtype, first.device());
  Backend& backend = backend_for(first.device());
  int64_t start = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].numel() > 0) {
      Tensor slot = out.narrow(dim, start, lengths[i]);
      backend.copy(tensors[i].detach(), slot);
    }
    start += lengths[i];
  }
  if (any_requires_grad(tensors)) {
    record_op("cat", tensors, out, [dim, lengths, dtypes](const Tensors& g, const BackwardContext& c) {
      Tensors r(lengths.size());
      int64_t begin = 0;
      for (size_t i = 0; i < lengths.size(); ++i) {
        if (c.needs_input_grad(i)) r[i] = g[0].narrow(dim, begin, lengths[i]).to(dtypes[i]);
        begin += lengths[i];
      }
      return r;
    });
  }
  return out;
}

// y = cat([x₀.unsqueeze(dim), x₁.unsqueeze(dim), …], dim)
Tensor stack(const Tensors& tensors, int64_t dim) {
  check_tensor_list("stack", tensors);
  for (size_t i = 1; i < tensors.size(); ++i) {
    HG_CHECK(tensors[i].sizes() == tensors[0].sizes(),
             "stack: input {} has shape {} but input 0 has shape {}; stack needs tensors of equal shape", i,
             tensors[i].sizes(), tensors[0].sizes());
  }
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  Tensors parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(dim));
  return cat(parts, dim);
}

// Views of consecutive pieces of `split_size` along dim; the last may be smaller.
Tensors split(const Tensor& x, int64_t split_size, int64_t dim) {
  dim = split_dim("split", x, dim);
  const int64_t n = x.sizes()[dim];
  HG_CHECK(split_size > 0 || (split_size == 0 && n == 0),
           "split: split_size must be positive (0 only for an empty dimension), got {} for dimension {} of size {} "
           "(input {})",
           split_size, dim, n, x.sizes());
  // An empty dimension still gives one (empty) piece, as torch.
  const int64_t pieces = split_size == 0 ? 1 : std::max<int64_t>((n + split_size - 1) / split_size, 1);
  Tensors out;
  out.reserve(static_cast<size_t>(pieces));
  for (int64_t p = 0; p < pieces; ++p) {
    int64_t start = p * split_size;
    out.push_back(x.narrow(dim, start, std::min(split_size, n - start)));
  }
  return out;
}

// Views of consecutive pieces of the given sizes along dim (they must add up to the dim's size).
Tensors split_with_sizes(const Tensor& x, IntArrayRef sizes, int64_t dim) {
  dim = split_dim("split_with_sizes", x, dim);
  const int64_t n = x.sizes()[dim];
  int64_t total = 0;
  for (int64_t s : sizes) {
    HG_CHECK(s >= 0, "split_with_sizes: sizes must be non-negative, got {}", sizes);
    total += s;
  }
  HG_CHECK(total == n, "split_with_sizes: sizes {} add up to {} but dimension {} of the input {} has size {}", sizes,
           total, dim, x.sizes(), n);
  Tensors out;
  out.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return out;
}

// `chunks` pieces of ceil(n / chunks) along dim as torch.chunk: fewer pieces when they run out, e.g. 6 in 4
// chunks gives 3 pieces of 2.
Tensors chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  dim = split_dim("chunk", x, dim);
  HG_CHECK(chunks > 0, "chunk: the number of chunks must be positive, got {}", chunks);
  const int64_t n = x.sizes()[dim];
  // An empty dimension gives `chunks` empty pieces (split would give one).
  if (n == 0) return split_with_sizes(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);
  return split(x, (n + chunks - 1) / chunks, dim);
}

// Views x.select(dim, i) for every i.
Tensors unbind(const Tensor& x, int64_t dim) {
  dim = split_dim("unbind", x, dim);
  Tensors out;
  out.reserve(static_cast<size_t>(x.sizes()[dim]));
  for (int64_t i = 0; i < x.sizes()[dim]; ++i) out.push_back(x.select(dim, i));
  return out;
}

// y = x with `before`/`after` elements of `value` added on each side of the last pad.size()/2 dims; negative
// amounts crop ;  ∂L/∂x = pad(g, −pad): the same crop/pad in reverse
Tensor pad(const Tensor& x, IntArrayRef pad_sizes, double value) {
  HG_CHECK(x.defined(), "pad: got an undefined tensor");
  HG_CHECK(pad_sizes.size() % 2 == 0, "pad: pad must list (before, after) pairs, got an odd number of values {}",
           pad_sizes);
  const int64_t padded_dims = static_cast<int64_t>(pad_sizes.size() / 2);
  HG_CHECK(padded_dims <= x.dim(), "pad: {} pairs in pad {} but the input {} has only {} dimensions", padded_dims,
           pad_sizes, x.sizes(), x.dim());
  // Output extent and the input region that survives the crops, per dim.
  Shape out_sizes = x.sizes(), src_start(static_cast<size_t>(x.dim()), 0), src_len = x.sizes(),
        dst_start(static_cast<size_t>(x.dim()), 0);
  for (int64_t k = 0; k < padded_dims; ++k) {
    const int64_t d = x.dim() - 1 - k, before = pad_sizes[2 * k], after = pad_sizes[2 * k + 1];
    const int64_t n = x.sizes()[d];
    src_start[d] = std::max<int64_t>(-before, 0);
    src_len[d] = n - src_start[d] - std::max<int64_t>(-after, 0);
    HG_CHECK(src_len[d] >= 0,
             "pad: cropping ({}, {}) removes more than the {} elements of dimension {} (input {}, pad {})", before,
             after, n, d, x.sizes(), pad_sizes);
    dst_start[d] = std::max<int64_t>(before, 0);
    out_sizes[d] = n + before + after;
  }
  Tensor out = empty(out_sizes, x.dtype(), x.device());
  Backend& backend = backend_for(x.device());
  // Out = [padding before | surviving input | padding after] along each padded dim: fill the padding slabs,
  // then copy the input region (only corners are written twice).
  for (int64_t k = 0; k < padded_dims; ++k) {
    const int64_t d = x.dim() - 1 - k;
    const int64_t head = dst_start[d], tail = out_sizes[d] - dst_start[d] - src_len[d];
    for (auto [start, length] : {std::pair{int64_t{0}, head}, std::pair{out_sizes[d] - tail, tail}}) {
      if (length == 0 || out.numel() == 0) continue;
      Tensor slab = out.narrow(d, start, length);
      backend.fill(slab, value);
    }
  }
  Tensor src = x.detach(), dst = out;
  for (int64_t d = 0; d < x.dim(); ++d) {
    src = src.narrow(d, src_start[d], src_len[d]);
    dst = dst.narrow(d, dst_start[d], src_len[d]);
  }
  if (src.numel() > 0) backend.copy(src, dst);
  if (any_requires_grad(x)) {
    std::vector<int64_t> inverse;
    for (int64_t p : pad_sizes) inverse.push_back(-p);
    record_op("pad", {x}, out,
              [inverse](const Tensors& g, const BackwardContext&) { return Tensors{pad(g[0], inverse)}; });
  }
  return out;
}

namespace {

// repeat views its output [r₀·s₀, r₁·s₁, …] as the interleaved shape [r₀, s₀, r₁, s₁, …] (tile index, then
// position in the tile, per dim) in which x is broadcast along every r: the forward is one broadcast copy, the
// backward one sum over the r's. Entries of size 1 are left out and neighbours of the same kind merged, which
// keeps the view within kMaxDims except for high-rank tensors tiled along many dims.
struct TileLayout {
  Shape sizes;                     // the interleaved shape
  std::vector<bool> is_tile;       // per entry of `sizes`: an r (true) or a block of x (false)
  Shape blocks;                    // the x entries alone: x reshaped to these is x in the layout
  std::vector<int64_t> tile_dims;  // positions of the r entries in `sizes`
};

std::optional<TileLayout> tile_layout(const Shape& x_sizes, IntArrayRef repeats) {
  std::vector<std::pair<int64_t, bool>> entries;  // (size, is_tile)
  for (size_t d = 0; d < repeats.size(); ++d) {
    for (auto [size, tile] : {std::pair{repeats[d], true}, std::pair{x_sizes[d], false}}) {
      if (size == 1) continue;
      if (!entries.empty() && entries.back().second == tile)
        entries.back().first *= size;
      else
        entries.emplace_back(size, tile);
    }
  }
  if (entries.size() > static_cast<size_t>(kMaxDims)) return std::nullopt;
  TileLayout layout;
  for (auto [size, tile] : entries) {
    if (tile) layout.tile_dims.push_back(static_cast<int64_t>(layout.sizes.size()));
    layout.sizes.push_back(size);
    layout.is_tile.push_back(tile);
    if (!tile) layout.blocks.push_back(size);
  }
  return layout;
}

}  // namespace

// y = x tiled repeats[d] times along each dim d (x gets leading 1s up to repeats.size() dims)
// ∂L/∂x = Σ over the tiles of g: g viewed as [r₀, s₀, r₁, s₁, …] summed over the r's
Tensor repeat(const Tensor& x, IntArrayRef repeats) {
  HG_CHECK(x.defined(), "repeat: got an undefined tensor");
  HG_CHECK(repeats.size() >= static_cast<size_t>(x.dim()),
           "repeat: repeats {} has fewer entries than the input {} has dimensions", repeats, x.sizes());
  HG_CHECK(repeats.size() <= static_cast<size_t>(kMaxDims), "repeat: repeats {} has more than {} entries", repeats,
           kMaxDims);
  Shape x_sizes(repeats.size() - static_cast<size_t>(x.dim()), 1), out_sizes;
  for (int64_t s : x.sizes()) x_sizes.push_back(s);
  for (size_t d = 0; d < repeats.size(); ++d) {
    HG_CHECK(repeats[d] >= 0, "repeat: repeats must be non-negative, got {}", repeats);
    out_sizes.push_back(repeats[d] * x_sizes[d]);
  }
  std::optional<TileLayout> layout = tile_layout(x_sizes, repeats);
  if (!layout) {
    // Too many interleaved dims for one view: tile one dim at a time (each step fits, and records its backward).
    Tensor y = x.reshape(x_sizes);
    for (size_t d = 0; d < repeats.size(); ++d) {
      if (repeats[d] == 1) continue;
      std::vector<int64_t> one(repeats.size(), 1);
      one[d] = repeats[d];
      y = repeat(y, one);
    }
    return y;
  }
  Tensor out = empty(out_sizes, x.dtype(), x.device());
  if (out.numel() > 0) {
    Tensor blocks = x.detach().reshape(layout->blocks);
    Shape strides(layout->sizes.size(), 0);  // 0 along the r's: every tile reads the same x
    for (size_t i = 0, b = 0; i < layout->sizes.size(); ++i)
      if (!layout->is_tile[i]) strides[i] = blocks.strides()[b++];
    Tensor src = make_tensor(blocks.storage(), layout->sizes, strides, blocks.offset(), blocks.dtype());
    Tensor dst = out.view(layout->sizes);
    backend_for(x.device()).copy(src, dst);
  }
  if (any_requires_grad(x)) {
    record_op("repeat", {x}, out, [tiles = *layout, x_shape = x.sizes()](const Tensors& g, const BackwardContext&) {
      if (tiles.tile_dims.empty()) return Tensors{g[0].reshape(x_shape)};  // nothing repeated
      return Tensors{sum(g[0].reshape(tiles.sizes), tiles.tile_dims).reshape(x_shape)};
    });
  }
  return out;
}

// y = x broadcast to `shape` (a view with stride 0 along the broadcast dims, as torch.broadcast_to; -1 keeps a
// size) ;  ∂L/∂x = sum_to(g, x's shape)
Tensor broadcast_to(const Tensor& x, IntArrayRef shape) {
  HG_CHECK(x.defined(), "broadcast_to: got an undefined tensor");
  HG_CHECK(shape.size() >= static_cast<size_t>(x.dim()),
           "broadcast_to: cannot broadcast {} to {}, which has fewer dimensions", x.sizes(), shape);
  const size_t lead = shape.size() - static_cast<size_t>(x.dim());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      HG_CHECK(shape[i] >= 0, "broadcast_to: invalid size {} for new leading dimension {} in {}", shape[i], i, shape);
      continue;
    }
    const int64_t have = x.sizes()[i - lead];
    HG_CHECK(shape[i] == -1 || shape[i] == have || have == 1,
             "broadcast_to: cannot broadcast {} to {}: dimension {} has size {}, which must be 1 or match {}",
             x.sizes(), shape, i, have, shape[i]);
  }
  return x.expand(shape);
}

// Reversed positions along each flipped dim, read with index_select (whose backward puts the gradient back in
// the original order). The result is a copy, as torch.flip's.
Tensor flip(const Tensor& x, IntArrayRef dims) {
  HG_CHECK(x.defined(), "flip: got an undefined tensor");
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), false);
  Tensor out = x;
  for (int64_t d : dims) {
    d = wrap_dim(d, x.dim(), "flip");
    HG_CHECK(!seen[static_cast<size_t>(d)], "flip: dimension {} appears more than once in {}", d, dims);
    seen[static_cast<size_t>(d)] = true;
    const int64_t n = x.dim() == 0 ? 1 : x.size(d);
    if (n <= 1) continue;
    out = index_select(out, d, arange(static_cast<double>(n - 1), -1.0, -1.0, TensorOptions(kInt64).device(x.device())));
  }
  return out.is_same(x) ? x.clone() : out;
}

// Each rolled dim is the concatenation of its last `shift` positions and the rest.
Tensor roll(const Tensor& x, IntArrayRef shifts, IntArrayRef dims) {
  HG_CHECK(x.defined(), "roll: got an undefined tensor");
  if (dims.empty()) {
    HG_CHECK(shifts.size() == 1, "roll: without dims, takes exactly one shift (for the flattened tensor), got {}",
             shifts);
    return roll(x.reshape({-1}), shifts, {0}).reshape(x.sizes());
  }
  HG_CHECK(shifts.size() == dims.size(), "roll: got {} shifts for {} dims ({} and {})", shifts.size(), dims.size(),
           shifts, dims);
  Tensor out = x;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = split_dim("roll", x, dims[i]);
    const int64_t n = x.size(d);
    if (n == 0) continue;
    const int64_t shift = ((shifts[i] % n) + n) % n;
    if (shift == 0) continue;
    out = cat({out.narrow(d, n - shift, shift), out.narrow(d, 0, n - shift)}, d);
  }
  return out.is_same(x) ? x.clone() : out;
}

namespace {
// The triangle of the last two dims where j − i ≤ diagonal (lower) or ≥ diagonal (upper); the rest is 0.
Tensor triangle(const char* op, const Tensor& x, int64_t diagonal, bool lower) {
  HG_CHECK(x.defined(), "{}: got an undefined tensor", op);
  HG_CHECK(x.dim() >= 2, "{}: expects a tensor with at least 2 dimensions, got shape {}", op, x.sizes());
  const TensorOptions index = TensorOptions(kInt64).device(x.device());
  const Tensor column_minus_row = sub(arange(static_cast<double>(x.size(-1)), index).unsqueeze(0),
                                      arange(static_cast<double>(x.size(-2)), index).unsqueeze(1));
  const double k = static_cast<double>(diagonal);
  const Tensor keep = lower ? le(column_minus_row, k) : ge(column_minus_row, k);
  if (x.dtype() == kBool) return logical_and(x, keep);
  // where, not a product with the mask: a NaN or inf outside the triangle becomes 0, as in torch.
  return where(keep, x, zeros({}, TensorOptions(x.dtype()).device(x.device())));
}
}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) { return triangle("tril", x, diagonal, true); }
Tensor triu(const Tensor& x, int64_t diagonal) { return triangle("triu", x, diagonal, false); }

}  // namespace hg
