#pragma once
// The frame every bench/<workload>.cpp program shares with its PyTorch twin bench/torch/<workload>.py:
// the same flags, the same timing scheme (timing.h) and the same CSV row, so bench/run.sh can run the two
// sides alternately and bench/report.py can join them on (workload, threads).
//
// A workload program is its model, written with hopgrad's public API as a user would, plus
//
//   int main(int argc, char** argv) {
//     return hgbench::run_workload(argc, argv, {"mlp_small", "784→256→10 MLP, batch 128, Adam"},
//                                  [](hg::Generator& gen) -> hgbench::Step { ...build...; return {step, flops}; });
//   }
//
// `make` builds the model and data once per thread count and returns the step to time (one training step:
// zero-grad, forward, backward, optimizer step — or whatever the workload's definition in
// ../shared/docs/benchmarks.md says) and its floating-point operations (0 when not meaningful).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

#include "timing.h"

namespace hgbench {

struct Workload {
  std::string name;         ///< the key both sides share, e.g. "mlp_small"
  std::string description;  ///< one line for --help and the table
};

struct Step {
  std::function<void()> run;  ///< one timed step
  double flops = 0;           ///< floating-point operations per step (multiply-add = 2); 0: not reported
};

/// Resident memory now and at its peak, in MiB, from /proc/self/status (VmRSS, VmHWM).
struct Resident {
  double now_mib = 0;
  double peak_mib = 0;
};

inline Resident resident_memory() {
  Resident r;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      long kib = 0;
      if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) r.now_mib = kib / 1024.0;
      if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) r.peak_mib = kib / 1024.0;
    }
    std::fclose(f);
  }
  return r;
}

/// One row of the CSV both sides write.
struct Row {
  std::string workload;
  std::string framework;
  int threads = 1;
  Stats stats;
  double flops = 0;
  double baseline_rss_mib = 0;  ///< resident memory before the workload was built (the runtime's own cost)
  double peak_rss_mib = 0;      ///< the process's peak so far (bench/run.sh runs one thread count per process)
};

inline const char* kCsvHeader =
    "workload,framework,threads,median_ms,min_ms,repeats,gflops,baseline_rss_mib,peak_rss_mib\n";

inline std::string csv_line(const Row& r) {
  return fmt::format("{},{},{},{:.5f},{:.5f},{},{},{:.1f},{:.1f}\n", r.workload, r.framework, r.threads,
                     r.stats.median * 1e3, r.stats.min * 1e3, r.stats.repeats,
                     r.flops > 0 ? fmt::format("{:.2f}", r.flops / r.stats.median / 1e9) : "", r.baseline_rss_mib,
                     r.peak_rss_mib);
}

/// Appends `rows` to the CSV file at `path`, with the header first when the file is new or empty; `program`
/// names the benchmark in the error.
inline void append_csv(const std::string& path, const std::string& program, const std::vector<Row>& rows) {
  std::ifstream probe(path);
  const bool fresh = !probe.good() || probe.peek() == std::ifstream::traits_type::eof();
  std::ofstream out(path, std::ios::app);
  HG_CHECK(out, "bench {}: cannot write {}", program, path);
  if (fresh) out << kCsvHeader;
  for (const Row& r : rows) out << csv_line(r);
}

/// Parses the shared flags, then for each thread count builds the workload, times its step and prints a row;
/// appends the rows to --csv. Returns main's exit status (errors are printed, naming the workload).
inline int run_workload(int argc, char** argv, const Workload& workload,
                        const std::function<Step(hg::Generator&)>& make) {
  std::vector<int> threads{1, 2};
  int min_repeats = 10, warmup = 3;
  std::string csv;
  uint64_t seed = 2024;
  CLI::App app{fmt::format("hopgrad benchmark {}: {}", workload.name, workload.description)};
  app.add_option("--threads", threads, "thread counts to run at, e.g. 1,2")->delimiter(',')->check(CLI::Range(1, 1024));
  app.add_option("--min-repeats", min_repeats, "timed steps at least, after the warm-up")->check(CLI::Range(3, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(1, 1000));
  app.add_option("--seed", seed, "seed for the data and the initialisation");
  app.add_option("--csv", csv, "append the result rows to this CSV file (header written when it is new)");
  CLI11_PARSE(app, argc, argv);

  try {
    const Resident baseline = resident_memory();
    std::vector<Row> rows;
    for (int t : threads) {
      hg::set_num_threads(t);
      hg::Generator gen(seed);
      hg::manual_seed(seed);
      Step step = make(gen);
      TimingPlan plan;
      plan.warmup_repeats = warmup;
      plan.min_repeats = min_repeats;
      Stats stats = time_interleaved({step.run}, plan)[0];
      rows.push_back({workload.name, "hopgrad", t, stats, step.flops, baseline.now_mib, resident_memory().peak_mib});
      const Row& r = rows.back();
      fmt::print("{:<20} hopgrad {} thread{}  median {:9.3f} ms  min {:9.3f} ms  ({} steps){}  peak RSS {:.0f} MiB\n",
                 r.workload, t, t > 1 ? "s" : " ", r.stats.median * 1e3, r.stats.min * 1e3, r.stats.repeats,
                 r.flops > 0 ? fmt::format("  {:7.1f} GFLOP/s", r.flops / r.stats.median / 1e9) : "", r.peak_rss_mib);
      std::fflush(stdout);
    }
    if (!csv.empty()) append_csv(csv, workload.name, rows);
  } catch (const hg::Error& e) {
    std::fprintf(stderr, "bench %s: %s\n", workload.name.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace hgbench
