// fma_peak: the machine's float32 FMA peak, measured — the ceiling the other benchmarks' GFLOP/s are a fraction
// of (bench/report.py). Each OpenMP thread runs independent FMA chains on registers, acc ← acc · a + b, with
// more chains in flight than FMA latency × FMA ports (4 cycles × 2 ports on current x86 cores), so the FMA units
// never wait; nothing touches memory. AVX-512 when the CPU has it, else AVX2 + FMA (chosen at run time; both
// are compiled in with target attributes, whatever -march says). One CSV row `fma_peak` per thread count, in
// workload.h's format; the framework column names the instruction set.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <immintrin.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

#include "timing.h"
#include "workload.h"

#if !defined(__x86_64__)
#error "bench/fma_peak.cpp measures x86 AVX-512 / AVX2 FMA units"
#endif

namespace {

// Independent accumulators per thread. AVX-512 has 32 vector registers: 16 chains and 2 constants leave room;
// AVX2 has 16: 12 chains and 2 constants. Both are ≥ 1.5 × the 8 that 2 ports × 4 cycles of latency need.
constexpr int kChainsAvx512 = 16;
constexpr int kChainsAvx2 = 12;

// a ≈ 1 and b small keep every accumulator finite and normal for any number of iterations (no denormal
// slow-down, no overflow): acc converges to b / (1 − a) = 1.
constexpr float kA = 0.999999f, kB = 1e-6f;

// Σ of the lanes, through memory (GCC 12's _mm512_reduce_add_ps warns of an uninitialised temporary).
template <typename Vector> float horizontal_sum(Vector v) {
  float lanes[sizeof(Vector) / sizeof(float)];
  std::memcpy(lanes, &v, sizeof v);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iterations) {
  __m512 acc[kChainsAvx512];
  for (int c = 0; c < kChainsAvx512; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  const __m512 a = _mm512_set1_ps(kA), b = _mm512_set1_ps(kB);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChainsAvx512; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  __m512 total = acc[0];
  for (int c = 1; c < kChainsAvx512; ++c) total = _mm512_add_ps(total, acc[c]);
  return horizontal_sum(total);  // consumed by the caller, so no chain is dead code
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iterations) {
  __m256 acc[kChainsAvx2];
  for (int c = 0; c < kChainsAvx2; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  const __m256 a = _mm256_set1_ps(kA), b = _mm256_set1_ps(kB);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChainsAvx2; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 total = acc[0];
  for (int c = 1; c < kChainsAvx2; ++c) total = _mm256_add_ps(total, acc[c]);
  return horizontal_sum(total);
}

struct Kernel {
  std::string isa;                 ///< "avx512" or "avx2"
  float (*run)(int64_t iterations);
  double flops_per_iteration;      ///< chains × lanes × 2 (an FMA is a multiply and an add)
};

Kernel best_kernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512", fma_chains_avx512, kChainsAvx512 * 16 * 2.0};
  HG_CHECK(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
           "fma_peak: this CPU has neither AVX-512 nor AVX2 with FMA");
  return {"avx2", fma_chains_avx2, kChainsAvx2 * 8 * 2.0};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads{1, 2};
  int min_repeats = 10, warmup = 3;
  // Short calls: on a shared machine a few of them run without being preempted, and the best is the ceiling.
  double seconds_per_call = 0.002;
  std::string csv;
  CLI::App app{"fp32 FMA peak of this machine (independent FMA chains on registers), per thread count"};
  app.add_option("--threads", threads, "thread counts to run at, e.g. 1,2")->delimiter(',')->check(CLI::Range(1, 1024));
  app.add_option("--min-repeats", min_repeats, "timed calls at least, after the warm-up")->check(CLI::Range(3, 100000));
  app.add_option("--warmup", warmup, "untimed calls first (they also let the clock frequency settle)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--seconds-per-call", seconds_per_call, "length of one timed call")->check(CLI::Range(1e-3, 10.0));
  app.add_option("--csv", csv, "append the result rows to this CSV file (header written when it is new)");
  CLI11_PARSE(app, argc, argv);

  try {
    const Kernel kernel = best_kernel();
    const hgbench::Resident baseline = hgbench::resident_memory();
    // Calibrate the iterations of one call on one thread: each thread runs them all, so a call lasts about
    // seconds_per_call at any thread count (one core per thread).
    int64_t iterations = 1 << 16;
    for (;;) {
      hgbench::Stats probe = hgbench::time_interleaved({[&] { kernel.run(iterations); }},
                                                         {.warmup_repeats = 1, .min_repeats = 3, .max_repeats = 3})[0];
      if (probe.min >= seconds_per_call / 4) {
        iterations = static_cast<int64_t>(iterations * seconds_per_call / probe.min);
        break;
      }
      iterations *= 4;
    }

    std::vector<hgbench::Row> rows;
    volatile float sink = 0;
    const int repeats = std::max(min_repeats, static_cast<int>(0.3 / seconds_per_call));
    for (int t : threads) {
      // Each thread times its own chains, and a call's rate is the sum of the threads' rates: the wake-up of
      // the team and a thread preempted by another job on a shared machine then cost that thread's share of one
      // call, not the whole call. The call's effective time is its FLOPs over that rate.
      const double flops = kernel.flops_per_iteration * static_cast<double>(iterations) * t;
      std::vector<double> seconds(warmup + repeats);
      for (double& call_seconds : seconds) {
        double rate = 0, total = 0;
#pragma omp parallel num_threads(t) reduction(+ : rate, total)
        {
          const auto start = std::chrono::steady_clock::now();
          total += kernel.run(iterations);
          const double own = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          rate += kernel.flops_per_iteration * static_cast<double>(iterations) / own;
        }
        sink = sink + static_cast<float>(total);
        call_seconds = flops / rate;
      }
      std::vector<double> timed(seconds.begin() + warmup, seconds.end());  // the warm-up settles the clock
      std::sort(timed.begin(), timed.end());
      const size_t n = timed.size();
      const hgbench::Stats stats{n % 2 ? timed[n / 2] : 0.5 * (timed[n / 2 - 1] + timed[n / 2]), timed.front(),
                                 static_cast<int>(n)};
      rows.push_back({"fma_peak", kernel.isa, t, stats, flops, baseline.now_mib, hgbench::resident_memory().peak_mib});
      fmt::print("{:<20} {:<7} {} thread{}  {:7.1f} GFLOP/s median  {:7.1f} GFLOP/s best  ({:.1f} per thread)\n",
                 "fma_peak", kernel.isa, t, t > 1 ? "s" : " ", flops / stats.median / 1e9, flops / stats.min / 1e9,
                 flops / stats.min / 1e9 / t);
      std::fflush(stdout);
    }
    if (!csv.empty()) hgbench::append_csv(csv, "fma_peak", rows);
  } catch (const hg::Error& e) {
    std::fprintf(stderr, "bench fma_peak: %s\n", e.what());
    return 1;
  }
  return 0;
}
