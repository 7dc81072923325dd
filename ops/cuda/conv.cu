// CUDA 2-D convolution as im2col + cuBLAS GEMM (no cuDNN). CPU reference: ops/cpu/conv.cpp (its float64 loops
// define the result; groups, stride, padding and dilation as PyTorch).
//
// Images are processed in chunks of nb, sized so that the column buffer stays below kColumnBytes. For a chunk,
//   col [G, CK, nb·P]   col[g, ck, n·P + p] = x[n, g·Cin_g + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw] (0 outside)
// with CK = Cin_g·KH·KW (ck = (c·KH + kh)·KW + kw) and P = OH·OW (p = oh·OW + ow). Then, per group g:
//   forward:          out[n, g] [Cout_g, P]  = w[g] [Cout_g, CK] · col[g, :, n·P : (n+1)·P]        (+ bias first)
//   backward input:   col[g, :, n·P : ...]   = w[g]ᵀ [CK, Cout_g] · grad_out[n, g] [Cout_g, P],  then col2im
//   backward weight:  grad_w[g] [Cout_g, CK] += grad_out[g] [Cout_g, nb·P] · col[g]ᵀ [nb·P, CK]   (one GEMM per
//                     group over the whole chunk; grad_out's chunk is first permuted to [Cout, nb·P])
// The per-image GEMMs run as one strided-batched cuBLAS call over images (or over groups, whichever is longer).
// Below kSmallImage output positions per image, per-image products are too small for cuBLAS (a DeepRC sequence
// of 20 positions: [32, 207]·[207, 20] each, 12 % of one GEMM's rate), so the whole chunk is one GEMM per group
// through a [Cout, nb·P] buffer, as the weight gradient always is:
//   forward:          rows[g] [Cout_g, nb·P] = w[g] · col[g];  out[n, c, p] = bias[c] + rows[c, n·P + p]
//   backward input:   rows = grad_out's chunk permuted to [Cout, nb·P];  col[g] = w[g]ᵀ · rows[g]
// col2im gathers (each input pixel sums the columns that read it), so no atomics and a deterministic result.
#include <hopgrad/ops/cuda/common.cuh>
#include <hopgrad/ops/cuda/gemm.h>

namespace hg::cuda {

namespace {

constexpr int64_t kColumnBytes = int64_t{256} << 20;
constexpr int64_t kSmallImage = 1024;  // output positions per image below which a chunk is one GEMM per group

// x [N, Cin, H, W], w [Cout, Cin_g, KH, KW], out [N, Cout, OH, OW].
struct ConvGeometry {
  int64_t N, Cin, H, W, Cout, KH, KW, OH, OW, G;
  ConvParams p;
  __host__ __device__ int64_t cin_g() const { return Cin / G; }
  __host__ __device__ int64_t cout_g() const { return Cout / G; }
  __host__ __device__ int64_t CK() const { return cin_g() * KH * KW; }
  __host__ __device__ int64_t P() const { return OH * OW; }
  // Images per chunk: as many as keep the column buffer of `element` bytes (and, with rows, the [Cout, nb·P] rows
  // buffer) under kColumnBytes each (at least one).
  int64_t chunk(int64_t element, bool rows = false) const {
    int64_t per_image = std::max<int64_t>(std::max(G * CK(), rows ? Cout : 0) * P() * element, 1);
    return std::clamp<int64_t>(kColumnBytes / per_image, 1, N);
  }
  bool small_images() const { return P() < kSmallImage; }
};

ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Shape& out, const ConvParams& p) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], out[2], out[3], p.groups, p};
}

// col [G, CK, nb·P] of images [n0, n0 + nb) of x, read through its strides (DeepRC's one-hot sequences arrive as a
// [N, L, 23] buffer seen as [N, 23, 1, L]: a contiguous copy of it cost more than the convolution's GEMM). A
// thread owns one column position l (its image and output pixel found once) and `rows` consecutive rows ck of one
// group (blockIdx.y), walking (c, kh, kw) by increments (one thread per element, each decoding its indices with
// six divisions, ran at a tenth of the memory's bandwidth), kIm2colUnroll loads before their stores. Index is
// int32_t when every offset fits: half the integer work of int64_t.
struct Im2colStrides {
  int64_t n, c, h, w;
};
constexpr int kIm2colUnroll = 4;
template <typename T, typename Index>
__global__ void im2col_kernel(const T* x, Im2colStrides xs, ConvGeometry g, int64_t n0, int64_t nb, int64_t rows,
                              T* col) {
  const Index P = static_cast<Index>(g.P()), L = static_cast<Index>(nb * g.P()), CK = static_cast<Index>(g.CK());
  const Index OW = static_cast<Index>(g.OW), KW = static_cast<Index>(g.KW), KH = static_cast<Index>(g.KH);
  const Index H = static_cast<Index>(g.H), W = static_cast<Index>(g.W);
  const Index sh = static_cast<Index>(g.p.stride[0]), sw = static_cast<Index>(g.p.stride[1]);
  const Index dh = static_cast<Index>(g.p.dilation[0]), dw = static_cast<Index>(g.p.dilation[1]);
  const Index xc = static_cast<Index>(xs.c), xh = static_cast<Index>(xs.h), xw = static_cast<Index>(xs.w);
  const Index row_blocks = (CK + static_cast<Index>(rows) - 1) / static_cast<Index>(rows);
  const Index group = static_cast<Index>(blockIdx.y) / row_blocks;
  const Index ck0 = (static_cast<Index>(blockIdx.y) % row_blocks) * static_cast<Index>(rows);
  const Index ck_end = min(CK, ck0 + static_cast<Index>(rows));
  for (Index l = static_cast<Index>(blockIdx.x * blockDim.x + threadIdx.x); l < L;
       l += static_cast<Index>(blockDim.x * gridDim.x)) {
    const Index n = l / P, p = l - n * P, oh = p / OW, ow = p - oh * OW;
    Index kw = ck0 % KW, kh = (ck0 / KW) % KH, c = ck0 / (KW * KH);
    const Index top = oh * sh - static_cast<Index>(g.p.padding[0]), left = ow * sw - static_cast<Index>(g.p.padding[1]);
    const T* image = x + (n0 + n) * xs.n + group * static_cast<Index>(g.cin_g()) * xc;
    T* dst = col + (group * CK + ck0) * L + l;
    for (Index ck = ck0; ck < ck_end; ck += kIm2colUnroll, dst += kIm2colUnroll * L) {
      T v[kIm2colUnroll];
#pragma unroll
      for (int u = 0; u < kIm2colUnroll; ++u) {
        if (ck + u >= ck_end) break;
        const Index h = top + kh * dh, w = left + kw * dw;
        v[u] = h >= 0 && h < H && w >= 0 && w < W ? image[c * xc + h * xh + w * xw] : T(0);
        if (++kw == KW) {
          kw = 0;
          if (++kh == KH) kh = 0, ++c;
        }
      }
#pragma unroll
      for (int u = 0; u < kIm2colUnroll; ++u)
        if (ck + u < ck_end) dst[u * L] = v[u];
    }
  }
}

// grad_x[n0 + n, ic, h, w] = Σ over taps (kh, kw) whose output position (oh, ow) reads (h, w) of
// col[g, ck, n·P + oh·OW + ow]; one thread per input element of the chunk (grad_x overwritten there).
template <typename T> __global__ void col2im_kernel(const T* col, ConvGeometry g, int64_t n0, int64_t nb, T* grad_x) {
  const int64_t P = g.P(), L = nb * P, CK = g.CK(), HW = g.H * g.W;
  const int64_t sh = g.p.stride[0], sw = g.p.stride[1], ph = g.p.padding[0], pw = g.p.padding[1];
  const int64_t dh = g.p.dilation[0], dw = g.p.dilation[1];
  HG_GRID_STRIDE_LOOP(i, nb * g.Cin * HW) {
    int64_t w = i % g.W, h = (i / g.W) % g.H, ic = (i / HW) % g.Cin, n = i / (HW * g.Cin);
    int64_t group = ic / g.cin_g(), c = ic % g.cin_g();
    const T* col_g = col + group * CK * L + n * P;
    T acc = T(0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      int64_t top = h + ph - kh * dh;  // = oh·sh
      if (top < 0 || top % sh != 0 || top / sh >= g.OH) continue;
      int64_t oh = top / sh;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        int64_t left = w + pw - kw * dw;  // = ow·sw
        if (left < 0 || left % sw != 0 || left / sw >= g.OW) continue;
        int64_t ck = (c * g.KH + kh) * g.KW + kw;
        acc += col_g[ck * L + oh * g.OW + left / sw];
      }
    }
    grad_x[n0 * g.Cin * HW + i] = acc;
  }
}

// A grid-stride loop over [0, total) giving a thread kPermuteUnroll indices a grid stride apart, all loaded
// (load(i)) before any is stored (store(i, v)): that many loads in flight per thread instead of one.
constexpr int kPermuteUnroll = 4;
template <typename T, typename Load, typename Store>
__device__ __forceinline__ void unrolled_grid_loop(int64_t total, Load load, Store store) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; first < total;
       first += kPermuteUnroll * step) {
    T v[kPermuteUnroll];
#pragma unroll
    for (int u = 0; u < kPermuteUnroll; ++u)
      if (first + u * step < total) v[u] = load(first + u * step);
#pragma unroll
    for (int u = 0; u < kPermuteUnroll; ++u)
      if (first + u * step < total) store(first + u * step, v[u]);
  }
}

// out[n0 + n, c, p] = bias[c · bias_stride] (0 without one) + rows[c, n·P + p], over the chunk's outputs in order
// (coalesced along p on both sides).
template <typename T>
__global__ void rows_to_output_kernel(const T* rows, const T* bias, int64_t bias_stride, ConvGeometry g, int64_t n0,
                                      int64_t nb, T* out) {
  const int64_t P = g.P(), L = nb * P, Cout = g.Cout;
  T* chunk = out + n0 * Cout * P;
  unrolled_grid_loop<T>(
      nb * Cout * P,
      [=] __device__(int64_t i) {
        int64_t rest, p, n, c;
        divmod(i, P, rest, p);
        divmod(rest, Cout, n, c);
        return (bias ? bias[c * bias_stride] : T(0)) + rows[c * L + n * P + p];
      },
      [=] __device__(int64_t i, T v) { chunk[i] = v; });
}

// rows[c, n·P + p] = grad_out[n0 + n, c, p]: grad_out's chunk [nb, Cout, P] as rows [Cout, nb·P].
template <typename T>
__global__ void output_to_rows_kernel(const T* grad_out, ConvGeometry g, int64_t n0, int64_t nb, T* rows) {
  const int64_t P = g.P(), L = nb * P, Cout = g.Cout;
  const T* chunk = grad_out + n0 * Cout * P;
  unrolled_grid_loop<T>(
      Cout * L,
      [=] __device__(int64_t i) {
        int64_t c, l, n, p;
        divmod(i, L, c, l);
        divmod(l, P, n, p);
        return chunk[(n * Cout + c) * P + p];
      },
      [=] __device__(int64_t i, T v) { rows[i] = v; });
}

template <typename T>
void output_to_rows(const T* grad_out, const ConvGeometry& g, int64_t n0, int64_t nb, T* rows, int device) {
  output_to_rows_kernel<T><<<grid_for(g.Cout * nb * g.P(), device), kBlockSize>>>(grad_out, g, n0, nb, rows);
  HG_CUDA_CHECK_LAUNCH();
}

// One-dimensional convolutions (H = KH = OH = 1, no height padding; DeepRC's sequence embedding): a block stages
// the [images, Cin_g, W] slices its kRowTile column positions read into shared memory, reading x in the order of
// its smallest stride (DeepRC's channels-last buffer: the channels), then writes every row ck of those positions
// from there. Reading x through its strides straight from global memory took a 32-sector load per warp (92 bytes
// between neighbouring positions) for each of the CK rows.
constexpr int kRowTile = kBlockSize;
constexpr int64_t kStageBytes = 48 << 10;

// Images whose slices a tile of kRowTile positions can touch: ⌈kRowTile / P⌉ + 1.
inline int64_t staged_images(const ConvGeometry& g) { return (kRowTile + g.P() - 1) / g.P() + 1; }
inline bool stages_rows(const ConvGeometry& g, int64_t element) {
  return g.H == 1 && g.KH == 1 && g.OH == 1 && g.p.padding[0] == 0 && g.G <= 65535 &&
         staged_images(g) * g.cin_g() * g.W * element <= kStageBytes;
}

template <typename T>
__global__ void __launch_bounds__(kRowTile) im2col_1d_staged_kernel(const T* x, Im2colStrides xs, ConvGeometry g,
                                                                    int64_t n0, int64_t nb, T* col) {
  extern __shared__ unsigned char stage_bytes[];
  T* stage = reinterpret_cast<T*>(stage_bytes);  // [images, Cin_g, W]
  const int P = static_cast<int>(g.P()), W = static_cast<int>(g.W), cin = static_cast<int>(g.cin_g());
  const int KW = static_cast<int>(g.KW), CK = static_cast<int>(g.CK());
  const int64_t L = nb * P;
  const int group = blockIdx.y;
  const int64_t l0 = static_cast<int64_t>(blockIdx.x) * kRowTile;
  const int64_t first = l0 / P, last = min(L - 1, l0 + kRowTile - 1) / P;
  const int images = static_cast<int>(last - first + 1);
  // stage, consecutive threads along x's smaller stride of (channel, position)
  const T* base = x + (n0 + first) * xs.n + static_cast<int64_t>(group) * cin * xs.c;
  const bool channels_inner = xs.c <= xs.w;
  for (int i = threadIdx.x; i < images * cin * W; i += kRowTile) {
    int image, c, w;
    if (channels_inner) c = i % cin, w = (i / cin) % W, image = i / (cin * W);
    else w = i % W, c = (i / W) % cin, image = i / (cin * W);
    stage[(image * cin + c) * W + w] = base[image * xs.n + c * xs.c + w * xs.w];
  }
  __syncthreads();
  const int64_t l = l0 + threadIdx.x;
  if (l >= L) return;
  const int image = static_cast<int>(l / P - first), ow = static_cast<int>(l % P);
  const int left = ow * static_cast<int>(g.p.stride[1]) - static_cast<int>(g.p.padding[1]);
  const int dw = static_cast<int>(g.p.dilation[1]);
  const T* slice = stage + image * cin * W;
  T* dst = col + static_cast<int64_t>(group) * CK * L + l;
  int c = 0, kw = 0;
  for (int ck = 0; ck < CK; ++ck, dst += L) {
    const int w = left + kw * dw;
    *dst = w >= 0 && w < W ? slice[c * W + w] : T(0);
    if (++kw == KW) kw = 0, ++c;
  }
}

// x: [N, Cin, H, W] with any strides (non-negative: a view of a buffer, as the autograd passes it).
template <typename T> void im2col(const Tensor& x, const ConvGeometry& g, int64_t n0, int64_t nb, T* col, int device) {
  const Im2colStrides xs{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  if (stages_rows(g, sizeof(T))) {
    const size_t bytes = static_cast<size_t>(staged_images(g) * g.cin_g() * g.W) * sizeof(T);
    dim3 grid(static_cast<unsigned>((nb * g.P() + kRowTile - 1) / kRowTile), static_cast<unsigned>(g.G));
    im2col_1d_staged_kernel<T><<<grid, kRowTile, bytes>>>(x.data_ptr<T>(), xs, g, n0, nb, col);
    HG_CUDA_CHECK_LAUNCH();
    return;
  }
  // 32 rows per thread, more where the grid's y would pass its limit of 65535 (groups × row blocks)
  int64_t rows = 32;
  while (g.G * ((g.CK() + rows - 1) / rows) > 65535) rows *= 2;
  dim3 grid(grid_for(nb * g.P(), device), static_cast<unsigned>(g.G * ((g.CK() + rows - 1) / rows)));
  // the furthest element of x and of the chunk's col, both below 2^31 for 32-bit offsets
  int64_t x_extent = 0;
  for (int64_t d = 0; d < 4; ++d) x_extent += (x.size(d) - 1) * x.stride(d);
  const bool narrow = x_extent < (int64_t{1} << 31) && g.G * g.CK() * nb * g.P() < (int64_t{1} << 31);
  if (narrow)
    im2col_kernel<T, int32_t><<<grid, kBlockSize>>>(x.data_ptr<T>(), xs, g, n0, nb, rows, col);
  else
    im2col_kernel<T, int64_t><<<grid, kBlockSize>>>(x.data_ptr<T>(), xs, g, n0, nb, rows, col);
  HG_CUDA_CHECK_LAUNCH();
}

// For each group g and image n of a chunk: C[g, n] = alpha·A[g]·B[g, n] + beta·C[g, n], where each operand's
// position is base + g·(group step) + n·(image step). One batched call over images per group, or over groups per
// image, whichever batch is longer.
struct GroupImageOperand {
  GemmOperand base;
  int64_t group_step, image_step;  // elements
};
template <typename T>
void gemm_groups_images(const ConvGeometry& g, int64_t nb, int64_t M, int64_t N, int64_t K, GroupImageOperand a,
                        GroupImageOperand b, T beta, T* c, int64_t ldc, int64_t c_group_step, int64_t c_image_step,
                        int device) {
  auto shifted = [](const GroupImageOperand& o, int64_t elements, int64_t batch_stride) {
    GemmOperand r = o.base;
    r.ptr = static_cast<const T*>(o.base.ptr) + elements;
    r.batch_stride = batch_stride;
    return r;
  };
  if (g.G <= nb) {
    for (int64_t group = 0; group < g.G; ++group)
      gemm<T>(device, nb, M, N, K, T(1), shifted(a, group * a.group_step, a.image_step),
              shifted(b, group * b.group_step, b.image_step), beta, c + group * c_group_step, ldc, c_image_step);
  } else {
    for (int64_t n = 0; n < nb; ++n)
      gemm<T>(device, g.G, M, N, K, T(1), shifted(a, n * a.image_step, a.group_step),
              shifted(b, n * b.image_step, b.group_step), beta, c + n * c_image_step, ldc, c_group_step);
  }
}

void check_conv(const char* kernel, Device device, std::initializer_list<const Tensor*> tensors) {
  check_on_device(kernel, device, tensors);
  DType dtype = (*tensors.begin())->dtype();
  for (const Tensor* t : tensors)
    HG_CHECK(!t || t->dtype() == dtype, "{} (cuda): operands must share one dtype, got {} and {}", kernel, dtype,
             t->dtype());
  HG_CHECK(dtype == kFloat32 || dtype == kFloat64, "{} (cuda): dtype {} is not supported (expected float32 or float64)",
           kernel, dtype);
}

}  // namespace

void CudaBackend::conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor* bias_in, const ConvParams& p,
                         Tensor& out) {
  check_conv("conv2d", out.device(), {&out, &x_in, &w_in, bias_in});
  HG_CHECK(out.is_contiguous(), "conv2d (cuda): output must be contiguous, got {}", out.desc());
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device());
  if (bias_in) {
    HG_CHECK(bias_in->numel() == out.size(1), "conv2d (cuda): bias {} does not match {} output channels",
             bias_in->desc(), out.size(1));
    HG_CHECK(bias_in->dim() == 1, "conv2d (cuda): bias must be 1-D, got {}", bias_in->desc());
  }
  const ConvGeometry g = conv_geometry(x_in.sizes(), w_in.sizes(), out.sizes(), p);
  const bool small = g.small_images() && x_in.numel() > 0 && w_in.numel() > 0;
  // Per-image products add to out: the bias goes in first (beta = 1 below), or 0. The small-image path writes
  // bias + products itself.
  if (!small) {
    if (bias_in) {
      Tensor bias = make_tensor(bias_in->storage(), out.sizes(), Shape{0, bias_in->stride(0), 0, 0},
                                bias_in->offset(), bias_in->dtype());  // bias[c] at every (n, c, h, w)
      device_copy(bias, out);
    } else {
      fill(out, 0.0);
    }
    if (x_in.numel() == 0 || w_in.numel() == 0) return;  // nothing to sum: the bias alone (or 0)
  }
  const Tensor& x = x_in;  // im2col reads it through its strides
  Tensor w = as_contiguous(w_in);
  const int device = out.device().index;
  HG_CUDA_DISPATCH_FLOATING(out.dtype(), "conv2d", [&] {
    using T = scalar_t;
    const int64_t nb_max = g.chunk(sizeof(T), small), CK = g.CK(), P = g.P(), cout_g = g.cout_g();
    Tensor col = empty({g.G * CK * nb_max * P}, out.dtype(), out.device());
    Tensor rows = small ? empty({g.Cout * nb_max * P}, out.dtype(), out.device()) : Tensor();
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0), L = nb * P;
      im2col<T>(x, g, n0, nb, col.data_ptr<T>(), device);
      if (small) {
        // rows[g] [Cout_g, L] = w[g] [Cout_g, CK] · col[g] [CK, L], batched over groups; then bias + rows → out
        gemm<T>(device, g.G, cout_g, L, CK, T(1), GemmOperand{w.data_ptr<T>(), CK, false, cout_g * CK},
                GemmOperand{col.data_ptr<T>(), L, false, CK * L}, T(0), rows.data_ptr<T>(), L, cout_g * L);
        const T* bias = bias_in ? bias_in->data_ptr<T>() : nullptr;
        rows_to_output_kernel<T><<<grid_for(nb * g.Cout * P, device), kBlockSize>>>(
            rows.data_ptr<T>(), bias, bias_in ? bias_in->stride(0) : 0, g, n0, nb, out.data_ptr<T>());
        HG_CUDA_CHECK_LAUNCH();
        continue;
      }
      // out[n, g] [Cout_g, P] += w[g] [Cout_g, CK] · col[g, :, n·P ...] [CK, P]
      GroupImageOperand a{{w.data_ptr<T>(), CK, false, 0}, cout_g * CK, 0};
      GroupImageOperand b{{col.data_ptr<T>(), L, false, 0}, CK * L, P};
      gemm_groups_images<T>(g, nb, cout_g, P, CK, a, b, T(1), out.data_ptr<T>() + n0 * g.Cout * P, P, cout_g * P,
                            g.Cout * P, device);
    }
  });
}

void CudaBackend::conv2d_backward_input(const Tensor& grad_out_in, const Tensor& w_in, const ConvParams& p,
                                        Tensor& grad_x) {
  check_conv("conv2d_backward_input", grad_x.device(), {&grad_x, &grad_out_in, &w_in});
  HG_CHECK(grad_x.is_contiguous(), "conv2d_backward_input (cuda): grad_x must be contiguous, got {}", grad_x.desc());
  if (grad_x.numel() == 0) return;
  DeviceGuard guard(grad_x.device());
  if (grad_out_in.numel() == 0 || w_in.numel() == 0) return fill(grad_x, 0.0);
  Tensor grad_out = as_contiguous(grad_out_in), w = as_contiguous(w_in);
  ConvGeometry g = conv_geometry(grad_x.sizes(), w.sizes(), grad_out.sizes(), p);
  const int device = grad_x.device().index;
  HG_CUDA_DISPATCH_FLOATING(grad_x.dtype(), "conv2d_backward_input", [&] {
    using T = scalar_t;
    const bool small = g.small_images();
    const int64_t nb_max = g.chunk(sizeof(T), small), CK = g.CK(), P = g.P(), cout_g = g.cout_g();
    Tensor col = empty({g.G * CK * nb_max * P}, grad_x.dtype(), grad_x.device());
    Tensor rows = small ? empty({g.Cout * nb_max * P}, grad_x.dtype(), grad_x.device()) : Tensor();
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0), L = nb * P;
      if (small) {
        // col[g] [CK, L] = w[g]ᵀ [CK, Cout_g] · rows[g] [Cout_g, L], batched over groups
        output_to_rows<T>(grad_out.data_ptr<T>(), g, n0, nb, rows.data_ptr<T>(), device);
        gemm<T>(device, g.G, CK, L, cout_g, T(1), GemmOperand{w.data_ptr<T>(), CK, true, cout_g * CK},
                GemmOperand{rows.data_ptr<T>(), L, false, cout_g * L}, T(0), col.data_ptr<T>(), L, CK * L);
      } else {
        // col[g, :, n·P ...] [CK, P] = w[g]ᵀ [CK, Cout_g] · grad_out[n, g] [Cout_g, P]
        GroupImageOperand a{{w.data_ptr<T>(), CK, true, 0}, cout_g * CK, 0};
        GroupImageOperand b{{grad_out.data_ptr<T>() + n0 * g.Cout * P, P, false, 0}, cout_g * P, g.Cout * P};
        gemm_groups_images<T>(g, nb, CK, P, cout_g, a, b, T(0), col.data_ptr<T>(), L, CK * L, P, device);
      }
      col2im_kernel<T><<<grid_for(nb * g.Cin * g.H * g.W, device), kBlockSize>>>(col.data_ptr<T>(), g, n0, nb,
                                                                                 grad_x.data_ptr<T>());
      HG_CUDA_CHECK_LAUNCH();
    }
  });
}

void CudaBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& grad_out_in, const ConvParams& p,
                                         Tensor& grad_w) {
  check_conv("conv2d_backward_weight", grad_w.device(), {&grad_w, &x_in, &grad_out_in});
  HG_CHECK(grad_w.is_contiguous(), "conv2d_backward_weight (cuda): grad_w must be contiguous, got {}", grad_w.desc());
  if (grad_w.numel() == 0) return;
  DeviceGuard guard(grad_w.device());
  if (x_in.numel() == 0 || grad_out_in.numel() == 0) return fill(grad_w, 0.0);
  const Tensor& x = x_in;  // im2col reads it through its strides
  Tensor grad_out = as_contiguous(grad_out_in);
  ConvGeometry g = conv_geometry(x.sizes(), grad_w.sizes(), grad_out.sizes(), p);
  const int device = grad_w.device().index;
  HG_CUDA_DISPATCH_FLOATING(grad_w.dtype(), "conv2d_backward_weight", [&] {
    using T = scalar_t;
    const int64_t CK = g.CK(), P = g.P(), cout_g = g.cout_g();
    // The chunk also bounds grad_rows [Cout, nb·P], which outgrows the column buffer when Cout > G·CK (a 1×1
    // convolution from 3 to 512 channels: otherwise a second copy of the whole grad_out).
    const int64_t nb_max = g.chunk(sizeof(T), /*rows=*/true);
    Tensor col = empty({g.G * CK * nb_max * P}, x.dtype(), x.device());
    Tensor grad_rows = empty({g.Cout * nb_max * P}, x.dtype(), x.device());  // [Cout, nb·P]
    for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.N - n0), L = nb * P;
      im2col<T>(x, g, n0, nb, col.data_ptr<T>(), device);
      output_to_rows<T>(grad_out.data_ptr<T>(), g, n0, nb, grad_rows.data_ptr<T>(), device);
      // grad_w[g] [Cout_g, CK] (+)= grad_rows[g] [Cout_g, L] · col[g]ᵀ [L, CK], batched over groups
      gemm<T>(device, g.G, cout_g, CK, L, T(1), GemmOperand{grad_rows.data_ptr<T>(), L, false, cout_g * L},
              GemmOperand{col.data_ptr<T>(), L, true, CK * L}, n0 == 0 ? T(0) : T(1), grad_w.data_ptr<T>(), CK,
              cout_g * CK);
    }
  });
}

}  // namespace hg::cuda
