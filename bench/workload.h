#pragma once
// The frame every bench/<workload>.cpp program shares with its PyTorch twin bench/torch/<workload>.py:
// the same flags, the same timing scheme (timing.h) and the same CSV row, so bench/run.sh can run the two
// sides alternately and bench/report.py can join them on (workload, threads).
//
// A workload program is its model, written with hopgrad's public API as a user would, plus
//
//   int main(int argc, char** argv) {
//     return hgbench::run_workload(argc, argv, {"mlp_small", "784→256→10 MLP, batch 128, Adam"},
//                                  [](const hgbench::Setup& setup) -> hgbench::Step {
//                                    ...build on setup.device...;
//                                    return {step, flops};
//                                  });
//   }
//
// `make` builds the model and data once per thread count and returns the step to time (one training step:
// zero-grad, forward, backward, optimizer step — or whatever the workload's definition in
// ../shared/docs/benchmarks.md says) and its floating-point operations (0 when not meaningful). It draws data and
// initial weights on the host from `Setup::gen`, so every device starts from the same numbers, then moves the
// model (before its optimizer is made, so the optimizer state lives there too) and the data to `Setup::device`;
// its batch is the definition's times `Setup::batch_scale`.
//
// --device=cuda: every timed step ends with hg::synchronize, so the clock reads finished work, not launches;
// peak memory is then the device's as well (the CUDA caching allocator's peak of live blocks and what it holds
// from cudaMalloc, hg::memory_stats), beside the process's resident memory. --batch-scale=N runs N× the batch and
// names the row <workload>_x<N>, so one CSV can hold both sizes.
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

/// What a workload is built with.
struct Setup {
  hg::Generator& gen;        ///< data and initialisation, drawn on the host
  hg::Device device;         ///< where the model, its optimizer state and the data live
  int64_t batch_scale = 1;   ///< the definition's batch times this (--batch-scale)
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
  std::string device = "cpu";   ///< "cpu" or "cuda" (the device type: one GPU per run)
  /// On a GPU (empty on the CPU): the caching allocator's peak of live blocks during this row's build and steps
  /// (as torch.cuda.max_memory_allocated), and what it held from the driver at the end — it returns nothing by
  /// itself, so that is its peak too (as torch.cuda.max_memory_reserved).
  double device_peak_allocated_mib = -1;
  double device_reserved_mib = -1;
};

// The last three columns came with --device; bench/report.py reads a CSV without them as CPU rows.
inline const char* kCsvHeader =
    "workload,framework,threads,median_ms,min_ms,repeats,gflops,baseline_rss_mib,peak_rss_mib,"
    "device,device_peak_allocated_mib,device_reserved_mib\n";

inline std::string csv_line(const Row& r) {
  auto mib = [](double v) { return v >= 0 ? fmt::format("{:.1f}", v) : std::string(); };
  return fmt::format("{},{},{},{:.5f},{:.5f},{},{},{:.1f},{:.1f},{},{},{}\n", r.workload, r.framework, r.threads,
                     r.stats.median * 1e3, r.stats.min * 1e3, r.stats.repeats,
                     r.flops > 0 ? fmt::format("{:.2f}", r.flops / r.stats.median / 1e9) : "", r.baseline_rss_mib,
                     r.peak_rss_mib, r.device, mib(r.device_peak_allocated_mib), mib(r.device_reserved_mib));
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

/// The device named by --device, checked against this build and machine before anything is built, so a missing
/// GPU is one clear line rather than an error from deep inside the first op (the caller prints it after the
/// program's name).
inline hg::Device parse_device(const std::string& spec) {
  const hg::Device device(spec);
  if (device.is_cuda()) {
#ifndef HG_WITH_CUDA
    HG_FAIL("--device={} requested, but this build of hopgrad has no CUDA backend (configure with "
            "-DHOPGRAD_CUDA=ON)", spec);
#endif
    HG_CHECK(device.index < hg::cuda_device_count(), "--device={} requested, but this machine has {} CUDA device{} "
             "(nvidia-smi lists what the driver sees)", spec, hg::cuda_device_count(),
             hg::cuda_device_count() == 1 ? "" : "s");
  }
  return device;
}

/// Fills `row`'s device columns from `device`'s allocator statistics (nothing on the CPU, whose memory is the
/// process's resident memory); returns them as "  device peak … MiB (reserved …)" for the printed line.
inline std::string record_device_memory(Row& row, hg::Device device) {
  if (!device.is_cuda()) return "";
  const hg::MemoryStats memory = hg::memory_stats(device);
  row.device = "cuda";
  row.device_peak_allocated_mib = memory.peak_allocated_bytes / 1048576.0;
  row.device_reserved_mib = memory.reserved_bytes / 1048576.0;
  return fmt::format("  device peak {:.0f} MiB (reserved {:.0f})", row.device_peak_allocated_mib,
                     row.device_reserved_mib);
}

/// "vit_tiny", or "vit_tiny_x8" at --batch-scale=8: the row's key, which both sides derive alike.
inline std::string scaled_name(const std::string& name, int64_t batch_scale) {
  return batch_scale == 1 ? name : fmt::format("{}_x{}", name, batch_scale);
}

/// Parses the shared flags, then for each thread count builds the workload, times its step and prints a row;
/// appends the rows to --csv. Returns main's exit status (errors are printed, naming the workload).
inline int run_workload(int argc, char** argv, const Workload& workload,
                        const std::function<Step(const Setup&)>& make) {
  std::vector<int> threads{1, 2};
  int min_repeats = 10, warmup = 3;
  int64_t batch_scale = 1;
  std::string csv, device_spec = "cpu";
  uint64_t seed = 2024;
  CLI::App app{fmt::format("hopgrad benchmark {}: {}", workload.name, workload.description)};
  app.add_option("--threads", threads, "thread counts to run at, e.g. 1,2")->delimiter(',')->check(CLI::Range(1, 1024));
  app.add_option("--min-repeats", min_repeats, "timed steps at least, after the warm-up")->check(CLI::Range(3, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(1, 1000));
  app.add_option("--seed", seed, "seed for the data and the initialisation");
  app.add_option("--csv", csv, "append the result rows to this CSV file (header written when it is new)");
  app.add_option("--device", device_spec, "where the model, optimizer state and data live: cpu, cuda or cuda:N");
  app.add_option("--batch-scale", batch_scale, "run the batch times N (row named <workload>_xN)")
      ->check(CLI::Range(1, 4096));
  std::string attention = "auto";
  app.add_option("--attention", attention,
                 "scaled_dot_product_attention's route (hg::AttentionImpl): auto, fused or composite (rows named "
                 "<workload>_fused_attention / _composite_attention when not auto)")
      ->check(CLI::IsMember({"auto", "fused", "composite"}));
  CLI11_PARSE(app, argc, argv);

  try {
    const hg::Device device = parse_device(device_spec);
    hg::set_attention_impl(attention == "fused"       ? hg::AttentionImpl::Fused
                           : attention == "composite" ? hg::AttentionImpl::Composite
                                                      : hg::AttentionImpl::Auto);
    const std::string name =
        scaled_name(workload.name, batch_scale) + (attention == "auto" ? "" : "_" + attention + "_attention");
    const Resident baseline = resident_memory();
    std::vector<Row> rows;
    for (int t : threads) {
      hg::set_num_threads(t);
      hg::Generator gen(seed);
      hg::manual_seed(seed);
      if (device.is_cuda()) hg::reset_peak_memory_stats(device);
      Step step = make({gen, device, batch_scale});
      TimingPlan plan;
      plan.warmup_repeats = warmup;
      plan.min_repeats = min_repeats;
      // On a GPU the step only queues kernels: the clock stops once they have run.
      std::function<void()> timed = step.run;
      if (device.is_cuda()) timed = [&step, device] { step.run(); hg::synchronize(device); };
      Stats stats = time_interleaved({timed}, plan)[0];
      Row row{name, "hopgrad", t, stats, step.flops, baseline.now_mib, resident_memory().peak_mib};
      const std::string device_memory = record_device_memory(row, device);
      rows.push_back(row);
      const Row& r = rows.back();
      fmt::print("{:<20} hopgrad {} thread{}  median {:9.3f} ms  min {:9.3f} ms  ({} steps){}  peak RSS {:.0f} MiB{}\n",
                 r.workload, t, t > 1 ? "s" : " ", r.stats.median * 1e3, r.stats.min * 1e3, r.stats.repeats,
                 r.flops > 0 ? fmt::format("  {:7.1f} GFLOP/s", r.flops / r.stats.median / 1e9) : "", r.peak_rss_mib,
                 device_memory);
      std::fflush(stdout);
    }
    if (!csv.empty()) append_csv(csv, name, rows);
  } catch (const hg::Error& e) {
    std::fprintf(stderr, "bench %s: %s\n", workload.name.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace hgbench
