// CPU 2-D convolution: forward, backward data and backward weights.
//
// float32 runs on oneDNN 2.6 primitives. oneDNN is asked to choose its own memory layouts (format_tag::any,
// usually channel-blocked such as nChw16c), and each call reorders hopgrad's plain NCHW / OIHW buffers into
// and out of them: on the DeepRC (23 channels, kernel 9) and ViT patch-embedding (3 channels, 4×4 stride 4)
// shapes that is faster, reorders included, than forcing plain layouts, which select oneDNN's im2col + GEMM
// implementation. Primitives and their reorders are built once per geometry and cached.
//
// The input x may be any dense permutation of NCHW, described to oneDNN by its strides: DeepRC's sequences
// [n, length, features] transposed to [n, features, 1, length] are channels-last in memory, and one reorder
// takes them straight into the blocked layout (a contiguous() copy first would read and write them once more).
// The blocked staging buffers come from hopgrad's caching allocator: a oneDNN-allocated memory object would
// be a fresh mmap (and page faults on every 4 KiB) on each call.
//
// float64 (gradient checks) runs direct OpenMP loops: oneDNN 2.6 has no f64 convolution. The loops are also
// the reference the oneDNN path is tested against.
#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/cpu/loops.h>
#include <hopgrad/ops/cpu/onednn.h>

namespace hg::cpu {

namespace {

// Sizes of one convolution: x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW], out [N, Cout, OH, OW].
struct ConvGeometry {
  int64_t N, Cin, H, W, Cout, KH, KW, OH, OW;
  ConvParams p;
  int64_t cin_per_group() const { return Cin / p.groups; }
  int64_t cout_per_group() const { return Cout / p.groups; }
};

ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Shape& out, const ConvParams& p) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], out[2], out[3], p};
}

// ---- float64: direct loops ----------------------------------------------------------------------------

constexpr int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// The output positions o ∈ [0, out) whose input position o·stride + offset falls inside [0, in).
struct Range {
  int64_t begin, end;
};
Range valid_outputs(int64_t out, int64_t in, int64_t stride, int64_t offset) {
  int64_t begin = std::max<int64_t>(0, ceil_div(-offset, stride));
  int64_t end = std::min<int64_t>(out, ceil_div(in - offset, stride));
  return {begin, std::max(begin, end)};
}

// Kernel tap (kh, kw) reads input row oh·sh + kh·dh − ph: `offset` of the tap along each dim.
struct Tap {
  int64_t offset_h, offset_w;
  Range rows, cols;
};
Tap tap(const ConvGeometry& g, int64_t kh, int64_t kw) {
  const ConvParams& p = g.p;
  Tap t{kh * p.dilation[0] - p.padding[0], kw * p.dilation[1] - p.padding[1], {}, {}};
  t.rows = valid_outputs(g.OH, g.H, p.stride[0], t.offset_h);
  t.cols = valid_outputs(g.OW, g.W, p.stride[1], t.offset_w);
  return t;
}

// How many independent units of `work_per_unit` multiply-adds each a thread should get at least (small
// gradient-check convolutions stay on one thread).
int64_t grain_for(int64_t work_per_unit) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work_per_unit, 1));
}

// out[n, oc] = bias[oc] + Σ_{ic ∈ group(oc), kh, kw} w[oc, ic, kh, kw] · x[n, ic, oh·sh + kh·dh − ph, ow·sw + kw·dw − pw]
// One (n, oc) output plane per task; the innermost loop runs along an output row.
template <typename T>
void conv2d_forward_loops(const T* x, const T* w, const T* bias, T* out, const ConvGeometry& g) {
  const int64_t cin_g = g.cin_per_group(), cout_g = g.cout_per_group(), sw = g.p.stride[1];
  parallel_for(g.N * g.Cout, grain_for(g.OH * g.OW * cin_g * g.KH * g.KW), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.Cout, oc = plane % g.Cout, group = oc / cout_g;
      T* o = out + plane * g.OH * g.OW;
      std::fill(o, o + g.OH * g.OW, bias ? bias[oc] : T(0));
      for (int64_t icl = 0; icl < cin_g; ++icl) {
        const T* xin = x + (n * g.Cin + group * cin_g + icl) * g.H * g.W;
        const T* wk = w + (oc * cin_g + icl) * g.KH * g.KW;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const T wv = wk[kh * g.KW + kw];
            const Tap t = tap(g, kh, kw);
            for (int64_t oh = t.rows.begin; oh < t.rows.end; ++oh) {
              const T* xrow = xin + (oh * g.p.stride[0] + t.offset_h) * g.W + t.offset_w;
              T* orow = o + oh * g.OW;
              for (int64_t ow = t.cols.begin; ow < t.cols.end; ++ow) orow[ow] += wv * xrow[ow * sw];
            }
          }
        }
      }
    }
  });
}

// grad_x[n, ic, ih, iw] = Σ over taps that read (ih, iw) of w[oc, ic, kh, kw] · grad_out[n, oc, oh, ow]
// One (n, ic) input plane per task, so the scattered adds never race.
template <typename T>
void conv2d_backward_input_loops(const T* grad_out, const T* w, T* grad_x, const ConvGeometry& g) {
  const int64_t cin_g = g.cin_per_group(), cout_g = g.cout_per_group(), sw = g.p.stride[1];
  parallel_for(g.N * g.Cin, grain_for(g.OH * g.OW * cout_g * g.KH * g.KW), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / g.Cin, ic = plane % g.Cin, group = ic / cin_g, icl = ic % cin_g;
      T* gx = grad_x + plane * g.H * g.W;
      std::fill(gx, gx + g.H * g.W, T(0));
      for (int64_t ocl = 0; ocl < cout_g; ++ocl) {
        const int64_t oc = group * cout_g + ocl;
        const T* gy = grad_out + (n * g.Cout + oc) * g.OH * g.OW;
        const T* wk = w + (oc * cin_g + icl) * g.KH * g.KW;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const T wv = wk[kh * g.KW + kw];
            const Tap t = tap(g, kh, kw);
            for (int64_t oh = t.rows.begin; oh < t.rows.end; ++oh) {
              T* gxrow = gx + (oh * g.p.stride[0] + t.offset_h) * g.W + t.offset_w;
              const T* gyrow = gy + oh * g.OW;
              for (int64_t ow = t.cols.begin; ow < t.cols.end; ++ow) gxrow[ow * sw] += wv * gyrow[ow];
            }
          }
        }
      }
    }
  });
}

// grad_w[oc, icl, kh, kw] = Σ_{n, oh, ow} grad_out[n, oc, oh, ow] · x[n, ic, oh·sh + kh·dh − ph, ow·sw + kw·dw − pw]
// One (oc, icl) filter slice per task.
template <typename T>
void conv2d_backward_weight_loops(const T* x, const T* grad_out, T* grad_w, const ConvGeometry& g) {
  const int64_t cin_g = g.cin_per_group(), cout_g = g.cout_per_group(), sw = g.p.stride[1];
  parallel_for(g.Cout * cin_g, grain_for(g.N * g.OH * g.OW * g.KH * g.KW), [&](int64_t begin, int64_t end) {
    for (int64_t slice = begin; slice < end; ++slice) {
      const int64_t oc = slice / cin_g, icl = slice % cin_g, ic = (oc / cout_g) * cin_g + icl;
      T* gw = grad_w + slice * g.KH * g.KW;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const Tap t = tap(g, kh, kw);
          T acc = 0;
          for (int64_t n = 0; n < g.N; ++n) {
            const T* xin = x + (n * g.Cin + ic) * g.H * g.W;
            const T* gy = grad_out + (n * g.Cout + oc) * g.OH * g.OW;
            for (int64_t oh = t.rows.begin; oh < t.rows.end; ++oh) {
              const T* xrow = xin + (oh * g.p.stride[0] + t.offset_h) * g.W + t.offset_w;
              const T* gyrow = gy + oh * g.OW;
              for (int64_t ow = t.cols.begin; ow < t.cols.end; ++ow) acc += gyrow[ow] * xrow[ow * sw];
            }
          }
          gw[kh * g.KW + kw] = acc;
        }
      }
    }
  });
}

// ---- float32: oneDNN ----------------------------------------------------------------------------------

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

// hopgrad's plain layouts of the operands, and the geometry in oneDNN's terms.
struct OnednnConvDescs {
  memory::desc src, weights, bias, dst;
  memory::dims strides, dilates, padding;
};

// x_strides: the input's element strides (NCHW-contiguous or another dense permutation of it).
OnednnConvDescs onednn_descs(const ConvGeometry& g, const Shape& x_strides) {
  const ConvParams& p = g.p;
  OnednnConvDescs d;
  d.src = memory::desc({g.N, g.Cin, g.H, g.W}, kF32, memory::dims(x_strides.begin(), x_strides.end()));
  // Grouped weights are 5-D in oneDNN; [Cout, Cin/groups, KH, KW] row-major is exactly goihw.
  d.weights = p.groups == 1 ? memory::desc({g.Cout, g.Cin, g.KH, g.KW}, kF32, Tag::oihw)
                            : memory::desc({p.groups, g.cout_per_group(), g.cin_per_group(), g.KH, g.KW}, kF32,
                                           Tag::goihw);
  d.bias = memory::desc({g.Cout}, kF32, Tag::x);
  d.dst = memory::desc({g.N, g.Cout, g.OH, g.OW}, kF32, Tag::nchw);
  d.strides = {p.stride[0], p.stride[1]};
  // oneDNN counts dilation as the gap between kernel taps: torch's dilation − 1.
  d.dilates = {p.dilation[0] - 1, p.dilation[1] - 1};
  // torch pads both sides equally; oneDNN takes left and right paddings separately and, like torch, floors
  // the output size, so the same padding on the right is valid even when the last input rows go unused.
  d.padding = {p.padding[0], p.padding[1]};
  return d;
}

memory::desc any_layout(const memory::desc& plain) { return memory::desc(plain.dims(), kF32, Tag::any); }

// How one primitive argument reaches a plain hopgrad buffer: directly when the primitive chose the plain
// layout, otherwise through a reorder into (inputs) or out of (outputs) a temporary in the chosen layout.
struct OnednnArgument {
  int id;  // DNNL_ARG_*
  memory::desc plain, chosen;
  bool is_output;
  ScratchpadPrimitive convert;  // empty when chosen == plain
};

OnednnArgument onednn_argument(int id, const memory::desc& plain, const memory::desc& chosen, bool is_output) {
  OnednnArgument a{id, plain, chosen, is_output, {}};
  if (plain != chosen) a.convert = is_output ? make_reorder(chosen, plain) : make_reorder(plain, chosen);
  return a;
}

// A cached convolution primitive with its arguments, in the order run_plan() takes their buffers.
struct OnednnConvPlan {
  ScratchpadPrimitive primitive;
  std::vector<OnednnArgument> arguments;
};

void run_plan(const OnednnConvPlan& plan, const std::vector<void*>& buffers) {
  dnnl::engine& engine = onednn_engine();
  std::unordered_map<int, memory> args;
  std::vector<std::pair<const OnednnArgument*, std::pair<memory, memory>>> outputs_to_convert;
  Tensors staging;  // owns the staged buffers until the stream is done with them
  for (size_t i = 0; i < plan.arguments.size(); ++i) {
    const OnednnArgument& a = plan.arguments[i];
    memory user(a.plain, engine, buffers[i]);
    if (!a.convert) {
      args.emplace(a.id, user);
      continue;
    }
    const auto floats = static_cast<int64_t>((a.chosen.get_size() + sizeof(float) - 1) / sizeof(float));
    staging.push_back(empty({floats}, kFloat32, kCPU));
    memory staged(a.chosen, engine, staging.back().data_ptr());
    if (a.is_output)
      outputs_to_convert.push_back({&a, {staged, user}});
    else
      a.convert.execute({{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, staged}});
    args.emplace(a.id, staged);
  }
  plan.primitive.execute(std::move(args));
  for (auto& [a, mems] : outputs_to_convert) a->convert.execute({{DNNL_ARG_FROM, mems.first}, {DNNL_ARG_TO, mems.second}});
}

// The forward primitive descriptor, also the hint the backward primitives need.
dnnl::convolution_forward::primitive_desc forward_pd(const OnednnConvDescs& d, bool with_bias) {
  using fwd = dnnl::convolution_forward;
  auto desc = with_bias ? fwd::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                    any_layout(d.src), any_layout(d.weights), d.bias, any_layout(d.dst), d.strides,
                                    d.dilates, d.padding, d.padding)
                        : fwd::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                    any_layout(d.src), any_layout(d.weights), any_layout(d.dst), d.strides, d.dilates,
                                    d.padding, d.padding);
  return fwd::primitive_desc(desc, user_scratchpad_attr(), onednn_engine());
}

OnednnConvPlan make_forward_plan(const ConvGeometry& g, const Shape& x_strides, bool with_bias) {
  OnednnConvDescs d = onednn_descs(g, x_strides);
  auto pd = forward_pd(d, with_bias);
  OnednnConvPlan plan{ScratchpadPrimitive::make<dnnl::convolution_forward>(pd), {}};
  plan.arguments.push_back(onednn_argument(DNNL_ARG_SRC, d.src, pd.src_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_WEIGHTS, d.weights, pd.weights_desc(), false));
  if (with_bias) plan.arguments.push_back(onednn_argument(DNNL_ARG_BIAS, d.bias, pd.bias_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_DST, d.dst, pd.dst_desc(), true));
  return plan;
}

OnednnConvPlan make_backward_data_plan(const ConvGeometry& g) {
  using bwd = dnnl::convolution_backward_data;
  OnednnConvDescs d = onednn_descs(g, contiguous_strides({g.N, g.Cin, g.H, g.W}));
  bwd::desc desc(dnnl::algorithm::convolution_direct, any_layout(d.src), any_layout(d.weights), any_layout(d.dst),
                 d.strides, d.dilates, d.padding, d.padding);
  bwd::primitive_desc pd(desc, user_scratchpad_attr(), onednn_engine(), forward_pd(d, false));
  OnednnConvPlan plan{ScratchpadPrimitive::make<bwd>(pd), {}};
  plan.arguments.push_back(onednn_argument(DNNL_ARG_DIFF_DST, d.dst, pd.diff_dst_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_WEIGHTS, d.weights, pd.weights_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_DIFF_SRC, d.src, pd.diff_src_desc(), true));
  return plan;
}

OnednnConvPlan make_backward_weights_plan(const ConvGeometry& g, const Shape& x_strides) {
  using bwd = dnnl::convolution_backward_weights;
  OnednnConvDescs d = onednn_descs(g, x_strides);
  bwd::desc desc(dnnl::algorithm::convolution_direct, any_layout(d.src), any_layout(d.weights), any_layout(d.dst),
                 d.strides, d.dilates, d.padding, d.padding);
  bwd::primitive_desc pd(desc, user_scratchpad_attr(), onednn_engine(), forward_pd(d, false));
  OnednnConvPlan plan{ScratchpadPrimitive::make<bwd>(pd), {}};
  plan.arguments.push_back(onednn_argument(DNNL_ARG_SRC, d.src, pd.src_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_DIFF_DST, d.dst, pd.diff_dst_desc(), false));
  plan.arguments.push_back(onednn_argument(DNNL_ARG_DIFF_WEIGHTS, d.weights, pd.diff_weights_desc(), true));
  return plan;
}

// The plan for `kind`, this geometry and input layout, built on first use.
std::shared_ptr<const OnednnConvPlan> cached_plan(const char* kind, const ConvGeometry& g, const Shape& x_strides,
                                                 bool with_bias, const std::function<OnednnConvPlan()>& make) {
  static PrimitiveCache<OnednnConvPlan> cache;
  const ConvParams& p = g.p;
  // The thread count is part of the key: a primitive's work split and scratchpad size are fixed when it is made.
  std::string key = fmt::format("{}:{}x{}x{}x{}:{}x{}x{}:s{}x{}:p{}x{}:d{}x{}:g{}:b{}:x{}:t{}", kind, g.N, g.Cin, g.H,
                                g.W, g.Cout, g.KH, g.KW, p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                                p.dilation[0], p.dilation[1], p.groups, with_bias, x_strides, omp_get_max_threads());
  return cache.get(key, [&] {
    OnednnConvPlan plan;
    HG_DNNL_CHECK(plan = make());
    return plan;
  });
}

// x itself when its elements fill their memory without gaps or overlaps in some dim order (NCHW, channels-last,
// ...), which oneDNN reads through strides; otherwise a contiguous copy.
Tensor dense_input(const Tensor& x) {
  std::vector<int64_t> order;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (x.size(d) != 1) order.push_back(d);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x.stride(a) < x.stride(b); });
  int64_t expected = 1;
  for (int64_t d : order) {
    if (x.stride(d) != expected) return x.contiguous();
    expected *= x.size(d);
  }
  return x;
}

void check_dtypes(const char* kernel, std::initializer_list<const Tensor*> tensors) {
  DType dtype = (*tensors.begin())->dtype();
  for (const Tensor* t : tensors)
    HG_CHECK(t->dtype() == dtype, "{}: operands must share one dtype, got {} and {}", kernel, dtype, t->dtype());
  HG_CHECK(dtype == kFloat32 || dtype == kFloat64, "{}: dtype {} is not supported (expected float32 or float64)",
           kernel, dtype);
}

}  // namespace

void CpuBackend::conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor* bias_in, const ConvParams& p,
                        Tensor& out) {
  if (bias_in)
    check_dtypes("cpu conv2d", {&x_in, &w_in, bias_in, &out});
  else
    check_dtypes("cpu conv2d", {&x_in, &w_in, &out});
  if (out.numel() == 0) return;
  if (x_in.numel() == 0 || w_in.numel() == 0) {  // nothing to sum: the bias alone (or 0)
    if (bias_in)
      copy(bias_in->reshape({1, out.size(1), 1, 1}).expand(out.sizes()), out);
    else
      fill(out, 0.0);
    return;
  }
  Tensor w = w_in.contiguous(), bias = bias_in ? bias_in->contiguous() : Tensor();
  ConvGeometry g = conv_geometry(x_in.sizes(), w.sizes(), out.sizes(), p);
  if (out.dtype() == kFloat64) {
    Tensor x = x_in.contiguous();
    conv2d_forward_loops<double>(x.data_ptr<double>(), w.data_ptr<double>(),
                                 bias.defined() ? bias.data_ptr<double>() : nullptr, out.data_ptr<double>(), g);
    return;
  }
  Tensor x = dense_input(x_in);
  bool with_bias = bias.defined();
  std::vector<void*> buffers{x.data_ptr(), w.data_ptr()};
  if (with_bias) buffers.push_back(bias.data_ptr());
  buffers.push_back(out.data_ptr());
  run_plan(*cached_plan("conv_fwd", g, x.strides(), with_bias,
                       [&] { return make_forward_plan(g, x.strides(), with_bias); }),
           buffers);
}

void CpuBackend::conv2d_backward_input(const Tensor& grad_out_in, const Tensor& w_in, const ConvParams& p,
                                       Tensor& grad_x) {
  check_dtypes("cpu conv2d_backward_input", {&grad_out_in, &w_in, &grad_x});
  if (grad_x.numel() == 0) return;
  if (grad_out_in.numel() == 0 || w_in.numel() == 0) return fill(grad_x, 0.0);
  Tensor grad_out = grad_out_in.contiguous(), w = w_in.contiguous();
  ConvGeometry g = conv_geometry(grad_x.sizes(), w.sizes(), grad_out.sizes(), p);
  if (grad_x.dtype() == kFloat64)
    return conv2d_backward_input_loops<double>(grad_out.data_ptr<double>(), w.data_ptr<double>(),
                                               grad_x.data_ptr<double>(), g);
  run_plan(*cached_plan("conv_bwd_data", g, {}, false, [&] { return make_backward_data_plan(g); }),
           {grad_out.data_ptr(), w.data_ptr(), grad_x.data_ptr()});
}

void CpuBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& grad_out_in, const ConvParams& p,
                                        Tensor& grad_w) {
  check_dtypes("cpu conv2d_backward_weight", {&x_in, &grad_out_in, &grad_w});
  if (grad_w.numel() == 0) return;
  if (x_in.numel() == 0 || grad_out_in.numel() == 0) return fill(grad_w, 0.0);
  Tensor grad_out = grad_out_in.contiguous();
  ConvGeometry g = conv_geometry(x_in.sizes(), grad_w.sizes(), grad_out.sizes(), p);
  if (grad_w.dtype() == kFloat64) {
    Tensor x = x_in.contiguous();
    return conv2d_backward_weight_loops<double>(x.data_ptr<double>(), grad_out.data_ptr<double>(),
                                                grad_w.data_ptr<double>(), g);
  }
  Tensor x = dense_input(x_in);
  run_plan(*cached_plan("conv_bwd_weights", g, x.strides(), false,
                       [&] { return make_backward_weights_plan(g, x.strides()); }),
           {x.data_ptr(), grad_out.data_ptr(), grad_w.data_ptr()});
}

}  // namespace hg::cpu
