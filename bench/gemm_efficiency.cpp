// gemm_efficiency: the GEMMs of vit_tiny's and deeprc's training steps on a GPU, hopgrad against cuBLAS's own best
// on the same shapes and layouts (issue 6: "report GEMM efficiency against cuBLAS's own peak for those shapes").
// Built only with the CUDA backend; needs a GPU to run.
//
// For each Linear y = x Wᵀ (x [M, K], W [N, K]) the three products of its training step, called as hopgrad's
// autograd calls them (ops/linalg.cpp):
//   forward       y  = x · Wᵀ      hg::linear(x, W)          row-major layout NT
//   grad-input    dx = dy · W      hg::matmul(dy, W)         NN
//   grad-weight   dW = dyᵀ · x     hg::matmul(dy.t(), x)     TN
// and the convolutions' forward as the implicit GEMM they are (hopgrad: hg::conv1d / hg::conv2d; cuBLAS: the GEMM of
// the same M, N, K on an already unfolded input, so the convolution's unfolding counts against hopgrad).
// Each is timed three ways on identical device buffers: hopgrad (op dispatch, output allocation from its caching
// allocator and the kernel: what a training step pays), cublasSgemm with the default algorithm, and cublasLt's
// heuristic candidates (up to 16, 32 MiB workspace), each timed, the fastest kept: "cuBLAS best". Every float32
// path is full-precision FMA (CUBLAS_COMPUTE_32F, no TF32), as hopgrad's GEMMs (ops/cuda/gemm.h). The largest of
// cuBLAS best's rates on square products (4096, 8192) is reported as the measured fp32 peak, beside the H200's
// datasheet 67 TFLOP/s (non-tensor fp32).
//
// Timing: CUDA events on the legacy default stream (where hopgrad and its cuBLAS handle launch) around a burst of
// back-to-back calls sized to ≥ 2 ms, after a warm-up; median and minimum per call over --samples bursts. Inputs are
// standard normal (never zeros); every result is checked against cuBLAS best's by ‖hopgrad − cuBLAS‖ / ‖cuBLAS‖
// (float32 lands far under 1e-4; a larger error fails the run).
//
//   bench_gemm_efficiency --vit-batches=64,512 --deeprc-bags=4,32 --csv=gemm.csv
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

// Throws hg::Error naming the call and file:line (the bench is outside the library, so it has its own checks).
#define BENCH_CUDA_CHECK(expr)                                                                                 \
  do {                                                                                                         \
    cudaError_t status_ = (expr);                                                                              \
    HG_CHECK(status_ == cudaSuccess, "{} failed: {} ({}:{})", #expr, cudaGetErrorString(status_), __FILE__, \
             __LINE__);                                                                                        \
  } while (0)
#define BENCH_CUBLAS_CHECK(expr)                                                                                  \
  do {                                                                                                            \
    cublasStatus_t status_ = (expr);                                                                              \
    HG_CHECK(status_ == CUBLAS_STATUS_SUCCESS, "{} failed: {} ({}:{})", #expr, cublasGetStatusString(status_), \
             __FILE__, __LINE__);                                                                                 \
  } while (0)

namespace {

constexpr double kDatasheetPeakTflops = 67.0;  // H200 SXM, fp32 without tensor cores (NVIDIA's datasheet)
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr double kMaxRelativeError = 1e-4;

enum class Kind { Linear, Conv1d, Conv2d, Square };

/// One row-major product C [m, n] = op(A) · op(B) with op(A) [m, k], op(B) [k, n]. A is stored [m, k], or [k, m]
/// when trans_a; B is stored [k, n], or [n, k] when trans_b.
struct Gemm {
  Gemm() = default;
  Gemm(std::string workload, std::string layer, std::string pass, int64_t m, int64_t n, int64_t k, bool trans_a,
       bool trans_b, Kind kind = Kind::Linear)
      : workload(std::move(workload)), layer(std::move(layer)), pass(std::move(pass)), m(m), n(n), k(k),
        trans_a(trans_a), trans_b(trans_b), kind(kind) {}

  std::string workload, layer, pass;  // e.g. "vit_tiny ×64", "fc1 192→768", "grad-weight"
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  Kind kind = Kind::Linear;
  // For the convolutions: the input and weight shapes and the stride hopgrad's op is called with.
  std::vector<int64_t> conv_input, conv_weight;
  int64_t conv_stride = 1;

  double flops() const { return 2.0 * static_cast<double>(m) * n * k; }
  std::string layout() const { return fmt::format("{}{}", trans_a ? 'T' : 'N', trans_b ? 'T' : 'N'); }
};

/// The three GEMMs of a Linear(in → out) applied to `rows` rows.
void add_linear(std::vector<Gemm>& out, const std::string& workload, const std::string& layer, int64_t rows,
                int64_t in, int64_t out_features) {
  out.emplace_back(workload, layer, "forward", rows, out_features, in, false, true);      // x · Wᵀ
  out.emplace_back(workload, layer, "grad-input", rows, in, out_features, false, false);  // dy · W
  out.emplace_back(workload, layer, "grad-weight", out_features, in, rows, true, false);  // dyᵀ · x
}

/// vit_tiny (bench/vit_tiny.cpp) at `batch` images: 65 tokens each, width 192, MLP 768, 3·192 qkv; the patch
/// embedding Conv2d(3→192, 4, stride 4) as the GEMM [batch·64, 48] · [48, 192].
std::vector<Gemm> vit_tiny_gemms(int64_t batch) {
  const std::string workload = fmt::format("vit_tiny ×{}", batch);
  const int64_t tokens = batch * 65, dim = 192, hidden = 768;
  std::vector<Gemm> g;
  Gemm patch(workload, "patch_embed conv 3→192 k4 s4", "forward", batch * 64, dim, 3 * 4 * 4, false, true,
             Kind::Conv2d);
  patch.conv_input = {batch, 3, 32, 32};
  patch.conv_weight = {dim, 3, 4, 4};
  patch.conv_stride = 4;
  g.push_back(patch);
  add_linear(g, workload, "qkv 192→576", tokens, dim, 3 * dim);
  add_linear(g, workload, "proj 192→192", tokens, dim, dim);
  add_linear(g, workload, "fc1 192→768", tokens, dim, hidden);
  add_linear(g, workload, "fc2 768→192", tokens, hidden, dim);
  return g;
}

/// deeprc (bench/deeprc.cpp) at `bags` repertoires of 10 000 sequences: the Conv1d(23→32, width 9) over length 20
/// as the GEMM [bags·10 000·12, 207] · [207, 32], and the attention net's Linear(32→32), Linear(32→1).
std::vector<Gemm> deeprc_gemms(int64_t bags) {
  const std::string workload = fmt::format("deeprc ×{}", bags);
  const int64_t sequences = bags * 10000;
  std::vector<Gemm> g;
  Gemm conv(workload, "embedding conv1d 23→32 k9", "forward", sequences * 12, 32, 23 * 9, false, true, Kind::Conv1d);
  conv.conv_input = {sequences, 23, 20};
  conv.conv_weight = {32, 23, 9};
  g.push_back(conv);
  add_linear(g, workload, "attention 32→32", sequences, 32, 32);
  add_linear(g, workload, "attention 32→1", sequences, 32, 1);
  return g;
}

struct Timing {
  double median_ms = 0, min_ms = 0;
};

/// Per-call milliseconds of `call`: bursts of back-to-back calls between two events on the legacy default stream.
Timing time_calls(const std::function<void()>& call, int samples) {
  cudaEvent_t start, stop;
  BENCH_CUDA_CHECK(cudaEventCreate(&start));
  BENCH_CUDA_CHECK(cudaEventCreate(&stop));
  auto burst_ms = [&](int calls) {
    BENCH_CUDA_CHECK(cudaEventRecord(start, nullptr));
    for (int i = 0; i < calls; ++i) call();
    BENCH_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    BENCH_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return static_cast<double>(ms);
  };
  burst_ms(3);  // warm-up: handles, allocator blocks, cuBLAS's kernel selection
  const double one = std::max(burst_ms(1), 1e-3);
  const int calls = std::clamp(static_cast<int>(std::ceil(2.0 / one)), 1, 1000);
  std::vector<double> per_call;
  for (int s = 0; s < samples; ++s) per_call.push_back(burst_ms(calls) / calls);
  BENCH_CUDA_CHECK(cudaEventDestroy(start));
  BENCH_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(per_call.begin(), per_call.end());
  const size_t n = per_call.size();
  const double median = n % 2 ? per_call[n / 2] : 0.5 * (per_call[n / 2 - 1] + per_call[n / 2]);
  return {median, per_call.front()};
}

/// cuBLAS on row-major operands: C [m, n] row-major is Cᵀ [n, m] column-major, so Cᵀ = op(B)ᵀ · op(A)ᵀ — cuBLAS is
/// called with the operands swapped (B first) and m, n exchanged; no data moves.
class Cublas {
 public:
  Cublas() {
    BENCH_CUBLAS_CHECK(cublasCreate(&handle_));
    BENCH_CUBLAS_CHECK(cublasSetStream(handle_, nullptr));
    // The default math mode: no TF32 for float32 (CUBLAS_TF32_TENSOR_OP_MATH would allow it).
    BENCH_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    BENCH_CUBLAS_CHECK(cublasLtCreate(&lt_));
    BENCH_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
  }
  ~Cublas() {
    (void)cudaFree(workspace_);
    (void)cublasLtDestroy(lt_);
    (void)cublasDestroy(handle_);
  }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;

  /// cublasSgemm with its default algorithm.
  void sgemm(const Gemm& g, const float* a, const float* b, float* c) const {
    const float alpha = 1, beta = 0;
    const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS's "A" is our B
    const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
    BENCH_CUBLAS_CHECK(cublasSgemm(handle_, op_first, op_second, n, m, k, &alpha, b, g.trans_b ? k : n, a,
                                   g.trans_a ? m : k, &beta, c, n));
  }

  /// cublasLt's heuristic candidates for `g`, each timed; returns the fastest's timing and leaves its result in c.
  Timing best(const Gemm& g, const float* a, const float* b, float* c, int samples, int& candidates) const {
    cublasLtMatmulDesc_t op;
    BENCH_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS's "A" is our B
    const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    BENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
    BENCH_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
    // Column-major layouts of the buffers as stored: B is [k, n] row-major = [n, k] column-major (ld n), or
    // [n, k] row-major = [k, n] column-major (ld k) when trans_b; likewise A; C is [n, m] column-major.
    cublasLtMatrixLayout_t first, second, out;
    BENCH_CUBLAS_CHECK(g.trans_b ? cublasLtMatrixLayoutCreate(&first, CUDA_R_32F, g.k, g.n, g.k)
                                 : cublasLtMatrixLayoutCreate(&first, CUDA_R_32F, g.n, g.k, g.n));
    BENCH_CUBLAS_CHECK(g.trans_a ? cublasLtMatrixLayoutCreate(&second, CUDA_R_32F, g.m, g.k, g.m)
                                 : cublasLtMatrixLayoutCreate(&second, CUDA_R_32F, g.k, g.m, g.k));
    BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out, CUDA_R_32F, g.n, g.m, g.n));
    cublasLtMatmulPreference_t preference;
    BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    const size_t workspace = kWorkspaceBytes;
    BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                            &workspace, sizeof workspace));
    cublasLtMatmulHeuristicResult_t results[16];
    int returned = 0;
    BENCH_CUBLAS_CHECK(
        cublasLtMatmulAlgoGetHeuristic(lt_, op, first, second, out, out, preference, 16, results, &returned));
    HG_CHECK(returned > 0, "cublasLt offers no algorithm for {} ({}×{}×{}, {})", g.layer, g.m, g.n,
             g.k, g.layout());
    const float alpha = 1, beta = 0;
    Timing fastest{std::numeric_limits<double>::infinity(), 0};
    int fastest_index = -1;
    candidates = 0;
    for (int i = 0; i < returned; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > kWorkspaceBytes) continue;
      ++candidates;
      auto run = [&, i] {
        BENCH_CUBLAS_CHECK(cublasLtMatmul(lt_, op, &alpha, b, first, a, second, &beta, c, out, c, out,
                                          &results[i].algo, workspace_, kWorkspaceBytes, nullptr));
      };
      const Timing t = time_calls(run, samples);
      if (t.median_ms < fastest.median_ms) {
        fastest = t;
        fastest_index = i;
      }
    }
    HG_CHECK(fastest_index >= 0, "none of cublasLt's {} algorithms for {} ran", returned, g.layer);
    // The fastest's result is what c holds last, for the accuracy check.
    BENCH_CUBLAS_CHECK(cublasLtMatmul(lt_, op, &alpha, b, first, a, second, &beta, c, out, c, out,
                                      &results[fastest_index].algo, workspace_, kWorkspaceBytes, nullptr));
    BENCH_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
    BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(out));
    BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(second));
    BENCH_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(first));
    BENCH_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
    return fastest;
  }

 private:
  cublasHandle_t handle_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
};

struct Result {
  Gemm gemm;
  Timing hopgrad, sgemm, best;
  int candidates = 0;
  double relative_error = 0;
};

double tflops(const Gemm& g, double ms) { return ms > 0 ? g.flops() / (ms * 1e-3) / 1e12 : 0; }

/// ‖got − expected‖ / ‖expected‖, in float64 on the tensors' device.
double relative_error(const hg::Tensor& got, const hg::Tensor& expected) {
  const hg::Tensor g = got.to(hg::kFloat64), e = expected.to(hg::kFloat64);
  return hg::sqrt(hg::sum(hg::square(g - e))).item<double>() /
         std::max(hg::sqrt(hg::sum(hg::square(e))).item<double>(), 1e-300);
}

Result measure(const Gemm& g, const Cublas& cublas, hg::Device device, hg::Generator& gen, int samples) {
  hg::NoGradGuard no_grad;
  Result r;
  r.gemm = g;
  // The stored operands, standard normal (drawn on the device), and cuBLAS's output buffer.
  const hg::Tensor a = hg::randn(g.trans_a ? hg::Shape{g.k, g.m} : hg::Shape{g.m, g.k}, device, &gen);
  const hg::Tensor b = hg::randn(g.trans_b ? hg::Shape{g.n, g.k} : hg::Shape{g.k, g.n}, device, &gen);
  const hg::Tensor c = hg::empty({g.m, g.n}, hg::kFloat32, device);
  std::function<hg::Tensor()> hopgrad;
  hg::Tensor conv_input;  // the convolutions' own input (cuBLAS multiplies its unfolded form, `a`)
  switch (g.kind) {
    case Kind::Linear:
    case Kind::Square:
      if (g.pass == "forward" && !g.trans_a && g.trans_b) {
        hopgrad = [&] { return hg::linear(a, b); };
      } else {
        hopgrad = [&] { return hg::matmul(g.trans_a ? a.t() : a, g.trans_b ? b.t() : b); };
      }
      break;
    case Kind::Conv1d:
      conv_input = hg::randn(g.conv_input, device, &gen);
      hopgrad = [&] { return hg::conv1d(conv_input, b.view(g.conv_weight), {}, g.conv_stride); };
      break;
    case Kind::Conv2d:
      conv_input = hg::randn(g.conv_input, device, &gen);
      hopgrad = [&] {
        return hg::conv2d(conv_input, b.view(g.conv_weight), {}, {g.conv_stride, g.conv_stride});
      };
      break;
  }
  r.hopgrad = time_calls([&] { (void)hopgrad(); }, samples);
  r.sgemm = time_calls([&] { cublas.sgemm(g, a.data_ptr<float>(), b.data_ptr<float>(), c.data_ptr<float>()); },
                       samples);
  r.best = cublas.best(g, a.data_ptr<float>(), b.data_ptr<float>(), c.data_ptr<float>(), samples, r.candidates);
  if (g.kind == Kind::Linear || g.kind == Kind::Square) {
    r.relative_error = relative_error(hopgrad(), c);
  } else {
    // The convolution multiplies its own input: check its first samples against hg::matmul of that input unfolded
    // (row (sample, output position) holds the receptive field in (channel, tap) order, the weight's order).
    const int64_t checked = std::min<int64_t>(g.conv_input[0], 64);
    const hg::Tensor x = conv_input.slice(0, 0, checked);
    hg::Tensor unfolded;
    if (g.kind == Kind::Conv1d) {  // x [s, C, L], taps `width`, stride 1
      const int64_t width = g.conv_weight[2], positions = g.conv_input[2] - width + 1;
      hg::Tensors windows;
      for (int64_t p = 0; p < positions; ++p) windows.push_back(x.slice(2, p, p + width).reshape({checked, 1, -1}));
      unfolded = hg::cat(windows, 1).reshape({-1, g.k});
    } else {  // x [s, C, H, W], kernel = stride: the windows tile the image
      const int64_t kernel = g.conv_weight[2], side = g.conv_input[2] / kernel, channels = g.conv_input[1];
      unfolded = x.reshape({checked, channels, side, kernel, side, kernel})
                     .permute({0, 2, 4, 1, 3, 5})
                     .reshape({-1, g.k});
    }
    const hg::Tensor expected = hg::matmul(unfolded, b.t());  // [s·positions, n]
    const hg::Tensor got = hopgrad().slice(0, 0, checked).reshape({checked, g.n, -1}).transpose(1, 2);
    r.relative_error = relative_error(got.reshape({-1, g.n}), expected);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> vit_batches{64, 512}, deeprc_bags{4, 32}, square{4096, 8192};
  int samples = 15;
  uint64_t seed = 2024;
  std::string csv, device_spec = "cuda";
  CLI::App app{"hopgrad benchmark gemm_efficiency: vit_tiny's and deeprc's GEMMs, hopgrad vs cuBLAS's best"};
  app.add_option("--vit-batches", vit_batches, "vit_tiny batch sizes (65 tokens each)")->delimiter(',');
  app.add_option("--deeprc-bags", deeprc_bags, "deeprc repertoire counts (10 000 sequences each)")->delimiter(',');
  app.add_option("--square", square, "square sizes whose cuBLAS best rate gives the measured peak")->delimiter(',');
  app.add_option("--samples", samples, "timed bursts per candidate")->check(CLI::Range(3, 1000));
  app.add_option("--seed", seed, "seed for the operands");
  app.add_option("--device", device_spec, "the GPU: cuda or cuda:N");
  app.add_option("--csv", csv, "write the rows to this CSV file");
  CLI11_PARSE(app, argc, argv);

  try {
    const hg::Device device(device_spec);
    HG_CHECK(device.is_cuda(), "--device={}: expected cuda or cuda:N", device_spec);
    HG_CHECK(device.index < hg::cuda_device_count(), "--device={} requested, but this machine has {} "
             "CUDA devices", device_spec, hg::cuda_device_count());
    BENCH_CUDA_CHECK(cudaSetDevice(device.index));
    cudaDeviceProp properties{};
    BENCH_CUDA_CHECK(cudaGetDeviceProperties(&properties, device.index));
    fmt::print("{} ({} SMs, {} MiB); cuBLAS {}; float32, no TF32\n", properties.name, properties.multiProcessorCount,
               properties.totalGlobalMem >> 20, cublasLtGetVersion());

    std::vector<Gemm> gemms;
    for (int64_t s : square) {
      gemms.emplace_back("peak", fmt::format("square {}", s), "forward", s, s, s, false, false, Kind::Square);
    }
    for (int64_t batch : vit_batches) {
      const auto g = vit_tiny_gemms(batch);
      gemms.insert(gemms.end(), g.begin(), g.end());
    }
    for (int64_t bags : deeprc_bags) {
      const auto g = deeprc_gemms(bags);
      gemms.insert(gemms.end(), g.begin(), g.end());
    }

    Cublas cublas;
    hg::Generator gen(seed);
    std::vector<Result> results;
    double peak = 0;
    fmt::print("{:<14} {:<30} {:<11} {:>8} {:>5} {:>5} {:>3}  {:>9} {:>9} {:>9}  {:>7} {:>7} {:>7}  {:>6}  {:>8}\n",
               "workload", "GEMM", "pass", "M", "N", "K", "op", "hg ms", "sgemm ms", "best ms", "hg TF/s",
               "sgemm", "best", "hg/best", "rel err");
    for (const Gemm& g : gemms) {
      const Result r = measure(g, cublas, device, gen, samples);
      results.push_back(r);
      if (g.kind == Kind::Square) peak = std::max(peak, tflops(g, r.best.median_ms));
      fmt::print("{:<14} {:<30} {:<11} {:>8} {:>5} {:>5} {:>3}  {:>9.4f} {:>9.4f} {:>9.4f}  "
                 "{:>7.2f} {:>7.2f} {:>7.2f}  {:>5.0f} %  {:>8.1e}\n",
                 g.workload, g.layer, g.pass, g.m, g.n, g.k, g.layout(), r.hopgrad.median_ms, r.sgemm.median_ms,
                 r.best.median_ms, tflops(g, r.hopgrad.median_ms), tflops(g, r.sgemm.median_ms),
                 tflops(g, r.best.median_ms), 100 * r.best.median_ms / r.hopgrad.median_ms, r.relative_error);
      std::fflush(stdout);
    }
    fmt::print("measured fp32 peak (cuBLAS best, square): {:.1f} TFLOP/s = {:.0f} % of the datasheet's {:.0f}\n", peak,
               100 * peak / kDatasheetPeakTflops, kDatasheetPeakTflops);

    if (!csv.empty()) {
      std::ofstream out(csv);
      HG_CHECK(out, "cannot write {}", csv);
      out << "workload,gemm,pass,m,n,k,layout,hopgrad_median_ms,hopgrad_min_ms,sgemm_median_ms,sgemm_min_ms,"
             "best_median_ms,best_min_ms,best_candidates,hopgrad_tflops,sgemm_tflops,best_tflops,relative_error,"
             "measured_peak_tflops,datasheet_peak_tflops,gpu\n";
      for (const Result& r : results) {
        const Gemm& g = r.gemm;
        out << fmt::format("{},{},{},{},{},{},{},{:.5f},{:.5f},{:.5f},{:.5f},{:.5f},{:.5f},{},{:.3f},{:.3f},{:.3f},"
                           "{:.2e},{:.2f},{:.1f},{}\n",
                           g.workload, g.layer, g.pass, g.m, g.n, g.k, g.layout(), r.hopgrad.median_ms,
                           r.hopgrad.min_ms, r.sgemm.median_ms, r.sgemm.min_ms, r.best.median_ms, r.best.min_ms,
                           r.candidates, tflops(g, r.hopgrad.median_ms), tflops(g, r.sgemm.median_ms),
                           tflops(g, r.best.median_ms), r.relative_error, peak, kDatasheetPeakTflops, properties.name);
      }
    }
    const auto bad = std::count_if(results.begin(), results.end(),
                                   [](const Result& r) { return !(r.relative_error <= kMaxRelativeError); });
    HG_CHECK(bad == 0, "{} of {} products differ from cuBLAS's by more than {:g} (column 'rel err')",
             bad, results.size(), kMaxRelativeError);
  } catch (const hg::Error& e) {
    std::fprintf(stderr, "bench gemm_efficiency: %s\n", e.what());
    return 1;
  }
  return 0;
}
