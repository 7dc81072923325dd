// matmul: square float32 GEMM C = A B, A and B [n, n] standard normal, n = 256, 512, 1024, 2048
// (../shared/docs/benchmarks.md workload 7), one CSV row `matmul_n<n>` per size and thread count, in the row
// format of workload.h, so bench/report.py puts it beside its PyTorch twin (bench/torch/matmul.py) and the
// measured FMA peak (bench/fma_peak.cpp). 2·n³ FLOP per call; C is allocated by every call, as in torch.matmul.
// --device=cuda: A and B on the GPU, each timed call ends with hg::synchronize (see workload.h).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

#include "timing.h"
#include "workload.h"

int main(int argc, char** argv) {
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  std::vector<int> threads{1, 2};
  int min_repeats = 10, warmup = 3;
  uint64_t seed = 2024;
  std::string csv, device_spec = "cpu";
  CLI::App app{"hopgrad benchmark matmul: square float32 GEMM, one row matmul_n<n> per size"};
  app.add_option("--sizes", sizes, "matrix sizes n, e.g. 256,512")->delimiter(',')->check(CLI::Range(1, 16384));
  app.add_option("--threads", threads, "thread counts to run at, e.g. 1,2")->delimiter(',')->check(CLI::Range(1, 1024));
  app.add_option("--min-repeats", min_repeats, "timed calls at least, after the warm-up")->check(CLI::Range(3, 100000));
  app.add_option("--warmup", warmup, "untimed calls first")->check(CLI::Range(1, 1000));
  app.add_option("--seed", seed, "seed for the matrices");
  app.add_option("--csv", csv, "append the result rows to this CSV file (header written when it is new)");
  app.add_option("--device", device_spec, "where A, B and C live: cpu, cuda or cuda:N");
  CLI11_PARSE(app, argc, argv);

  try {
    const hg::Device device = hgbench::parse_device(device_spec);
    const hgbench::Resident baseline = hgbench::resident_memory();
    std::vector<hgbench::Row> rows;
    for (int t : threads) {
      hg::set_num_threads(t);
      for (int64_t n : sizes) {
        hg::Generator gen(seed);
        const hg::Tensor a = hg::randn({n, n}, {}, &gen).to(device), b = hg::randn({n, n}, {}, &gen).to(device);
        if (device.is_cuda()) hg::reset_peak_memory_stats(device);
        hgbench::TimingPlan plan;
        plan.warmup_repeats = warmup;
        plan.min_repeats = min_repeats;
        std::function<void()> call = [&] { hg::matmul(a, b); };
        if (device.is_cuda()) call = [&] { hg::matmul(a, b); hg::synchronize(device); };
        const hgbench::Stats stats = hgbench::time_interleaved({call}, plan)[0];
        const double flops = 2.0 * static_cast<double>(n) * n * n;
        hgbench::Row row{fmt::format("matmul_n{}", n), "hopgrad", t, stats, flops, baseline.now_mib,
                         hgbench::resident_memory().peak_mib};
        const std::string device_memory = hgbench::record_device_memory(row, device);
        rows.push_back(row);
        const hgbench::Row& r = rows.back();
        fmt::print("{:<20} hopgrad {} thread{}  median {:9.3f} ms  min {:9.3f} ms  ({} calls)  {:7.1f} GFLOP/s  "
                   "peak RSS {:.0f} MiB{}\n",
                   r.workload, t, t > 1 ? "s" : " ", stats.median * 1e3, stats.min * 1e3, stats.repeats,
                   flops / stats.median / 1e9, r.peak_rss_mib, device_memory);
        std::fflush(stdout);
      }
    }
    if (!csv.empty()) hgbench::append_csv(csv, "matmul", rows);
  } catch (const hg::Error& e) {
    std::fprintf(stderr, "bench matmul: %s\n", e.what());
    return 1;
  }
  return 0;
}
