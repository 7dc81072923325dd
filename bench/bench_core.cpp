// bench_core: the two costs every workload is made of, side by side with their ceilings in one run.
//  (a) fp32 GEMM throughput: hg::matmul against oneDNN's own dnnl_sgemm on the same buffers and against the
//      machine's FMA peak, as GFLOP/s and ratios;
//  (b) per-op framework overhead: a tiny hg::add, and a tiny hg::linear forward + backward.
//
//   bench_core                                   # threads 1,2; n = 256…2048
//   bench_core --threads=2 --sizes=1024 --csv=hopgrad.csv
//
// bench/run_core.sh runs this and bench/torch_core.py and prints the PyTorch numbers next to these.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.h>

#include <hopgrad/hopgrad.h>

#include "timing.h"

namespace {

struct Options {
  std::vector<int> threads{1, 2};
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  int min_repeats = 10;
  double peak_gflops_per_core = 175.0;  // AVX-512 FMA at ~2.7 GHz under load (docs/benchmarks.md)
  std::string csv;
};

/// One result row; the CSV has the same columns, keyed by (benchmark, threads), which bench/compare.py joins
/// with bench/torch_core.py's output.
struct Row {
  std::string benchmark;
  int threads;
  hgbench::Stats stats;
  double flops = 0;  // per call; 0 for overhead rows
  double gflops() const { return flops / stats.median / 1e9; }
  double best_gflops() const { return flops / stats.min / 1e9; }
};

/// Largest |x - y| relative to the largest |y|: the two GEMMs must agree before their speeds mean anything.
double relative_difference(const hg::Tensor& x, const hg::Tensor& y) {
  std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(xv[i] - yv[i])));
    scale = std::max(scale, static_cast<double>(std::abs(yv[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// C = A·B, n×n fp32: hg::matmul (allocates C, as a framework op does) and dnnl_sgemm into a fixed buffer.
std::vector<Row> bench_matmul(int64_t n, int threads, int min_repeats, hg::Generator& gen) {
  hg::Tensor a = hg::randn({n, n}, {}, &gen), b = hg::randn({n, n}, {}, &gen);
  hg::Tensor c_hg, c_dnnl = hg::empty({n, n}, hg::kFloat32);
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* pc = c_dnnl.data_ptr<float>();
  auto hg_matmul = [&] { c_hg = hg::matmul(a, b); };
  auto dnnl_matmul = [&] {
    dnnl_status_t status = dnnl_sgemm('N', 'N', n, n, n, 1.0f, pa, n, pb, n, 0.0f, pc, n);
    HG_CHECK(status == dnnl_success, "bench_core: dnnl_sgemm failed with status {} for n={}", int(status), n);
  };
  hgbench::TimingPlan plan;
  plan.min_repeats = min_repeats;
  std::vector<hgbench::Stats> stats = hgbench::time_interleaved({hg_matmul, dnnl_matmul}, plan);
  double error = relative_difference(c_hg, c_dnnl);
  HG_CHECK(error < 1e-5, "bench_core: hg::matmul and dnnl_sgemm disagree for n={} (relative difference {:.3g})", n,
           error);
  double flops = 2.0 * n * n * n;
  return {{fmt::format("matmul_n{}", n), threads, stats[0], flops},
          {fmt::format("dnnl_sgemm_n{}", n), threads, stats[1], flops}};
}

// The smallest ops, where the time is all framework: dispatch, checks, allocation, graph recording.
std::vector<Row> bench_overhead(int threads, int min_repeats, hg::Generator& gen) {
  hg::Tensor a1 = hg::randn({1}, {}, &gen), b1 = hg::randn({1}, {}, &gen);
  hg::Tensor a8 = hg::randn({8}, {}, &gen), b8 = hg::randn({8}, {}, &gen);
  hg::Tensor x = hg::randn({1, 8}, {}, &gen);
  hg::Tensor weight = hg::randn({8, 8}, {}, &gen).requires_grad_();
  hg::Tensor bias = hg::randn({8}, {}, &gen).requires_grad_();
  constexpr int kAddCalls = 2000, kLinearCalls = 200;
  hg::Tensor sink;
  auto add1 = [&] {
    for (int i = 0; i < kAddCalls; ++i) sink = hg::add(a1, b1);
  };
  auto add8 = [&] {
    for (int i = 0; i < kAddCalls; ++i) sink = hg::add(a8, b8);
  };
  // One tiny training iteration's autograd work: forward, sum, backward (gradients accumulate, as in PyTorch
  // without zero_grad, which torch_core.py mirrors).
  auto linear = [&] {
    for (int i = 0; i < kLinearCalls; ++i) hg::linear(x, weight, bias).sum().backward();
  };
  hgbench::TimingPlan plan;
  plan.min_repeats = min_repeats;
  plan.target_seconds = 0.2;
  plan.calls_per_repeat = kAddCalls;
  std::vector<hgbench::Stats> adds = hgbench::time_interleaved({add1, add8}, plan);
  plan.calls_per_repeat = kLinearCalls;
  std::vector<hgbench::Stats> lin = hgbench::time_interleaved({linear}, plan);
  return {{"add_1", threads, adds[0]}, {"add_8", threads, adds[1]}, {"linear_fwd_bwd", threads, lin[0]}};
}

const Row* find(const std::vector<Row>& rows, const std::string& benchmark, int threads) {
  for (const Row& r : rows)
    if (r.benchmark == benchmark && r.threads == threads) return &r;
  return nullptr;
}

void print_tables(const std::vector<Row>& rows, const Options& opt) {
  const dnnl_version_t* v = dnnl_version();
  fmt::print("hopgrad bench_core: {} hardware threads, oneDNN {}.{}.{}, assumed FMA peak {:.0f} GFLOP/s per core\n\n",
             std::thread::hardware_concurrency(), v->major, v->minor, v->patch, opt.peak_gflops_per_core);
  fmt::print("fp32 matmul C = A·B (n×n); GFLOP/s from the median time (best time in brackets)\n");
  fmt::print("{:>6} {:>4}  {:>16}  {:>16}  {:>7}  {:>8}  {:>9}  {:>8}\n", "n", "thr", "hg::matmul", "dnnl_sgemm",
             "hg/dnnl", "hg/peak", "dnnl/peak", "repeats");
  for (int t : opt.threads)
    for (int64_t n : opt.sizes) {
      const Row* h = find(rows, fmt::format("matmul_n{}", n), t);
      const Row* d = find(rows, fmt::format("dnnl_sgemm_n{}", n), t);
      double peak = opt.peak_gflops_per_core * t;
      fmt::print("{:>6} {:>4}  {:>7.1f} ({:>6.1f})  {:>7.1f} ({:>6.1f})  {:>7.2f}  {:>8.2f}  {:>9.2f}  {:>8}\n", n, t,
                 h->gflops(), h->best_gflops(), d->gflops(), d->best_gflops(), h->gflops() / d->gflops(),
                 h->gflops() / peak, d->gflops() / peak, h->stats.repeats);
    }
  fmt::print("\nper-op overhead (fp32, CPU); µs per call\n");
  fmt::print("{:<44} {:>4}  {:>9}  {:>9}\n", "op", "thr", "median", "min");
  const std::pair<const char*, const char*> overhead[] = {
      {"add_1", "hg::add, 1 element"},
      {"add_8", "hg::add, 8 elements"},
      {"linear_fwd_bwd", "hg::linear [1,8]x[8,8]+bias, .sum().backward()"}};
  for (int t : opt.threads)
    for (auto [key, label] : overhead) {
      const Row* r = find(rows, key, t);
      fmt::print("{:<44} {:>4}  {:>9.2f}  {:>9.2f}\n", label, t, r->stats.median * 1e6, r->stats.min * 1e6);
    }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("\npeak resident memory: {:.0f} MiB\n", usage.ru_maxrss / 1024.0);
}

void write_csv(const std::vector<Row>& rows, const std::string& path) {
  std::ofstream out(path);
  HG_CHECK(out, "bench_core: cannot write {}", path);
  out << "benchmark,threads,median_us,min_us,gflops\n";
  for (const Row& r : rows)
    out << fmt::format("{},{},{:.4f},{:.4f},{}\n", r.benchmark, r.threads, r.stats.median * 1e6, r.stats.min * 1e6,
                       r.flops > 0 ? fmt::format("{:.2f}", r.gflops()) : "");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"hopgrad core benchmark: fp32 matmul vs dnnl_sgemm and the FMA peak; per-op overhead"};
  app.add_option("--threads", opt.threads, "OpenMP thread counts to run at")->delimiter(',')->check(CLI::Range(1, 1024));
  app.add_option("--sizes", opt.sizes, "square matmul sizes n")->delimiter(',')->check(CLI::Range(1, 16384));
  app.add_option("--min-repeats", opt.min_repeats, "timed repeats at least (after warm-up)")->check(CLI::Range(3, 10000));
  app.add_option("--peak-gflops-per-core", opt.peak_gflops_per_core, "the machine's fp32 FMA peak per core")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--csv", opt.csv, "also write the results to this CSV file");
  CLI11_PARSE(app, argc, argv);

  try {
    hg::Generator gen(2024);
    std::vector<Row> rows;
    hgbench::Progress progress(static_cast<int>(opt.threads.size() * (opt.sizes.size() + 1)));
    for (int t : opt.threads) {
      omp_set_num_threads(t);
      for (int64_t n : opt.sizes) {
        progress.step(fmt::format("matmul n={}, {} thread{}", n, t, t > 1 ? "s" : ""));
        for (Row& r : bench_matmul(n, t, opt.min_repeats, gen)) rows.push_back(r);
      }
      progress.step(fmt::format("per-op overhead, {} thread{}", t, t > 1 ? "s" : ""));
      for (Row& r : bench_overhead(t, opt.min_repeats, gen)) rows.push_back(r);
    }
    progress.finish();
    print_tables(rows, opt);
    if (!opt.csv.empty()) write_csv(rows, opt.csv);
  } catch (const hg::Error& e) {
    fmt::print(stderr, "bench_core: {}\n", e.what());
    return 1;
  }
  return 0;
}
