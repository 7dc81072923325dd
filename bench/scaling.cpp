// bench_scaling: how the cost of Hopfield association grows with the sequence length L for each variant, and
// the cost of dense retrieval with the number N of stored patterns, as fitted growth exponents.
//
//  (a) Association out = sep(β q kᵀ) v on q, k, v [batch, heads, L, width/heads] (self-association, S = L,
//      β = 1/√d), one forward and one backward pass (gradients of Σ out to q, k, v), for
//        variant  what it computes                                        time       memory
//        softmax  all L² scores (fused attention: weights never stored)   O(L²·d)    O(L·d)
//        topk     dense scores, softmax over the k largest of each row    O(L²·d)    O(L²)
//        window   the band |i − j| ≤ w only (window_attention)            O(L·w·d)   O(L·(w + d))
//        linear   φ = elu + 1, φ(q) (Σ φ(k) vᵀ)                           O(L·d²)    O(L·d)
//        favor    positive orthogonal random features, m = ⌊d ln d⌋       O(L·m·d)   O(L·m)
//      The in/out projections of a full Hopfield layer cost O(L·width²) for every variant and are left out, so
//      the exponents are the association's own. Memory is the peak of hg::memory_stats above what the inputs
//      hold (every intermediate, saved tensor and gradient of the step), measured on the step after the timed
//      ones with the peak reset just before it.
//  (b) Retrieval ξ ← Xᵀ softmax(β X ξ), `steps` updates of `queries` state patterns against N stored patterns
//      of width 784, β = 1, no gradient (nn::retrieve): O(N) time for a fixed number of queries.
//
// Time: the median of --repeats steps after one warm-up, as process CPU time and as wall time; the table shows
// CPU time at one thread (immune to waiting for a core on a shared machine) and wall time otherwise.
// Exponent: the least-squares slope of log(time) (and of log(memory)) against log(size) over the upper half of
// the sizes, where fixed per-call costs no longer hide the growth (1: linear, 2: quadratic). A point whose
// fastest wall time or memory, extrapolated from the two before it, would exceed --max-ms or --max-mib is skipped
// (and every larger one of that variant), and marked so.
//
//   bench_scaling                                          # L = 64…8192, N = 250…16000, 1 thread: ~1.5 min
//   bench_scaling --max-length=2048 --variants=window,linear --window=32 --threads=2
//
// Writes <out-dir>/scaling.csv (one row per point), <out-dir>/scaling_exponents.csv and <out-dir>/scaling.svg
// (log-log curves). Exits 1 on bad flags or an error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <time.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

#include "timing.h"

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Options {
  std::vector<std::string> variants = {"softmax", "topk", "window", "linear", "favor"};
  int64_t min_length = 64, max_length = 8192;
  int64_t width = 64, heads = 1, batch = 1;
  int64_t top_k = 32, window = 16, features = 0;
  std::vector<int64_t> patterns = {250, 500, 1000, 2000, 4000, 8000, 16000};
  int64_t pattern_width = 784, queries = 256, steps = 3;
  int threads = 1, repeats = 5;
  double max_ms = 4000, max_mib = 2048;
  uint64_t seed = 2024;
  fs::path out_dir = "runs/scaling";
};

/// One measured (or skipped) point of a curve.
struct Point {
  int64_t size = 0;
  bool skipped = false;
  double cpu_ms = kNaN;    ///< median process CPU time per step
  double wall_ms = kNaN;   ///< median wall time per step
  double wall_min_ms = kNaN;  ///< fastest wall time (the least disturbed by other jobs)
  int repeats = 0;
  double peak_mib = kNaN;  ///< hg::memory_stats peak above the inputs during one step
};

/// Median wall and process-CPU milliseconds of `step` over `repeats` calls after one warm-up call. On a machine
/// shared with other jobs a single-threaded step's CPU time does not count the time it waited for a core, so
/// its growth is read from the CPU time; with several threads the CPU time adds up the threads (and their
/// spinning), and the wall time is the one to read.
void time_step(const std::function<void()>& step, int repeats, Point& point) {
  auto cpu_seconds = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  step();
  std::vector<double> wall, cpu;
  for (int r = 0; r < repeats; ++r) {
    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_seconds();
    step();
    cpu.push_back((cpu_seconds() - cpu_start) * 1e3);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count());
  }
  point.cpu_ms = median(cpu);
  point.wall_ms = median(wall);
  point.wall_min_ms = *std::min_element(wall.begin(), wall.end());
  point.repeats = repeats;
}

struct Curve {
  std::string study;  ///< "length" (association) or "patterns" (retrieval)
  std::string name;   ///< the variant
  std::vector<Point> points;
};

/// Least-squares slope of log(y) against log(x) over the points with x ≥ from and y measured; NaN when fewer
/// than two such points.
double growth_exponent(const Curve& curve, int64_t from, const std::function<double(const Point&)>& y) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const Point& p : curve.points) {
    if (p.skipped || p.size < from || !(y(p) > 0)) continue;
    const double lx = std::log(static_cast<double>(p.size)), ly = std::log(y(p));
    n += 1, sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
  }
  if (n < 2) return kNaN;
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/// The value at `size` extrapolated from the last two measured points of `points` (power law through them,
/// never shrinking); quadratic growth from a single point; 0 with none.
double extrapolate(const std::vector<Point>& points, int64_t size, const std::function<double(const Point&)>& y) {
  std::vector<const Point*> measured;
  for (const Point& p : points)
    if (!p.skipped) measured.push_back(&p);
  if (measured.empty()) return 0;
  const Point& last = *measured.back();
  double exponent = 2;
  if (measured.size() >= 2) {
    const Point& before = *measured[measured.size() - 2];
    if (y(before) > 0)
      exponent = std::max(0.0, std::log(y(last) / y(before)) /
                                 std::log(static_cast<double>(last.size) / static_cast<double>(before.size)));
  }
  return y(last) * std::pow(static_cast<double>(size) / static_cast<double>(last.size), exponent);
}

/// Measures `curve` at `sizes`: `make(size)` builds the inputs and returns the step (which leaves nothing alive
/// when it returns); skips what would exceed the budgets.
void measure(Curve& curve, const std::vector<int64_t>& sizes, const Options& opt,
             const std::function<std::function<void()>(int64_t)>& make, hgbench::Progress& progress) {
  // The budget is judged on the fastest wall time: one step slowed down by another job must not end the curve.
  auto ms = [](const Point& p) { return p.wall_min_ms; };
  auto mib = [](const Point& p) { return p.peak_mib; };
  for (int64_t size : sizes) {
    progress.step(fmt::format("{} {} = {}", curve.name, curve.study == "length" ? "L" : "N", size));
    const bool over = (!curve.points.empty() && curve.points.back().skipped) ||
                      extrapolate(curve.points, size, ms) > opt.max_ms ||
                      extrapolate(curve.points, size, mib) > opt.max_mib;
    if (over) {
      curve.points.push_back({.size = size, .skipped = true});
      continue;
    }
    std::function<void()> step = make(size);
    Point point{.size = size};
    time_step(step, opt.repeats, point);
    const hg::MemoryStats before = hg::memory_stats(hg::kCPU);
    hg::reset_peak_memory_stats(hg::kCPU);
    step();
    point.peak_mib = static_cast<double>(hg::memory_stats(hg::kCPU).peak_allocated_bytes - before.allocated_bytes) / kMiB;
    curve.points.push_back(point);
  }
}

nn::SeparationOptions separation_options(const std::string& variant, const Options& opt) {
  const nn::SeparationKind kind = nn::separation_kind_from_string(variant);
  nn::SeparationOptions o(kind);
  switch (kind) {
    case nn::SeparationKind::TopK: o.top_k(opt.top_k); break;
    case nn::SeparationKind::Window: o.window(opt.window); break;
    case nn::SeparationKind::RandomFeatures:
    case nn::SeparationKind::ReluFeatures: o.feature_dim(opt.width / opt.heads).num_features(opt.features).seed(opt.seed); break;
    default: break;
  }
  return o;
}

/// One forward + backward of the association on inputs [batch, heads, L, d]; the gradients are dropped after.
std::function<void()> association_step(nn::Separation sep, int64_t L, const Options& opt, hg::Generator& gen) {
  const int64_t d = opt.width / opt.heads;
  const hg::Shape shape = {opt.batch, opt.heads, L, d};
  hg::Tensor q = hg::randn(shape, hg::kFloat32, &gen).requires_grad_();
  hg::Tensor k = hg::randn(shape, hg::kFloat32, &gen).requires_grad_();
  hg::Tensor v = hg::randn(shape, hg::kFloat32, &gen).requires_grad_();
  const hg::Tensor beta = hg::scalar_tensor(1.0 / std::sqrt(static_cast<double>(d)), hg::kFloat32);
  return [=]() mutable {
    sep->attend(q, k, v, beta).sum().backward();
    for (hg::Tensor* t : {&q, &k, &v}) t->set_grad({});  // the next step starts from the inputs alone
  };
}

/// `steps` dense retrieval updates of `queries` states against N stored patterns, without gradients.
std::function<void()> retrieval_step(int64_t N, const Options& opt, hg::Generator& gen) {
  hg::Tensor stored = hg::randn({N, opt.pattern_width}, hg::kFloat32, &gen);
  hg::Tensor state = hg::randn({opt.queries, opt.pattern_width}, hg::kFloat32, &gen);
  return [=] {
    hg::NoGradGuard no_grad;
    hg::Tensor retrieved = nn::retrieve(stored, state, /*beta=*/1.0, opt.steps);
    (void)retrieved.data_ptr();
  };
}

/// The step time the table shows and the time exponent is fitted to: CPU time at one thread, wall time otherwise
/// (see time_step).
double step_ms(const Point& p, bool cpu_clock) { return cpu_clock ? p.cpu_ms : p.wall_ms; }

void print_table(const std::vector<Curve>& curves, const std::string& study, const char* size_name, bool cpu_clock) {
  std::vector<const Curve*> rows;
  for (const Curve& c : curves)
    if (c.study == study) rows.push_back(&c);
  if (rows.empty()) return;
  std::string header = fmt::format("{:>8}", size_name);
  for (const Curve* c : rows) header += fmt::format(" {:>22}", c->name + " ms (MiB)");
  fmt::print("{}\n", header);
  for (size_t i = 0; i < rows.front()->points.size(); ++i) {
    std::string line = fmt::format("{:>8}", rows.front()->points[i].size);
    for (const Curve* c : rows) {
      const Point& p = c->points[i];
      line += fmt::format(" {:>22}", p.skipped ? std::string("skipped")
                                               : fmt::format("{:.3f} ({:.2f})", step_ms(p, cpu_clock), p.peak_mib));
    }
    fmt::print("{}\n", line);
  }
}

int run(const Options& opt) {
  HG_CHECK(opt.width % opt.heads == 0, "bench_scaling: --width {} is not divisible by --heads {}", opt.width, opt.heads);
  HG_CHECK(opt.min_length <= opt.max_length, "bench_scaling: --min-length {} is above --max-length {}", opt.min_length,
           opt.max_length);
  hg::set_num_threads(opt.threads);
  const bool cpu_clock = opt.threads == 1;
  std::vector<int64_t> lengths;
  for (int64_t L = opt.min_length; L <= opt.max_length; L *= 2) lengths.push_back(L);
  std::vector<int64_t> patterns = opt.patterns;
  std::sort(patterns.begin(), patterns.end());

  fmt::print("bench_scaling: association forward + backward on q, k, v [{}, {}, L, {}] (top-k {}, window {}), "
             "retrieval of {} queries × {} against N patterns ({} update{}), {} thread{}\n",
             opt.batch, opt.heads, opt.width / opt.heads, opt.top_k, opt.window, opt.queries, opt.pattern_width,
             opt.steps, opt.steps == 1 ? "" : "s", opt.threads, opt.threads == 1 ? "" : "s");
  hgbench::Progress progress(static_cast<int>(opt.variants.size() * lengths.size() + patterns.size()));
  hg::Generator gen(opt.seed);
  std::vector<Curve> curves;
  for (const std::string& variant : opt.variants) {
    nn::Separation sep(separation_options(variant, opt));
    curves.push_back({"length", variant, {}});
    measure(curves.back(), lengths, opt, [&](int64_t L) { return association_step(sep, L, opt, gen); }, progress);
  }
  if (!patterns.empty()) {
    curves.push_back({"patterns", "retrieval", {}});
    measure(curves.back(), patterns, opt, [&](int64_t N) { return retrieval_step(N, opt, gen); }, progress);
  }
  progress.finish();

  const char* clock = cpu_clock ? "CPU" : "wall";
  fmt::print("\nforward + backward, median {} ms per step (peak memory above the inputs, MiB)\n", clock);
  print_table(curves, "length", "L", cpu_clock);
  fmt::print("\nretrieval, median {} ms per call (peak memory above the inputs, MiB)\n", clock);
  print_table(curves, "patterns", "N", cpu_clock);

  fs::create_directories(opt.out_dir);
  std::ofstream points(opt.out_dir / "scaling.csv"), exponents(opt.out_dir / "scaling_exponents.csv");
  HG_CHECK(points && exponents, "bench_scaling: cannot write to {}", opt.out_dir.string());
  points << "study,variant,size,threads,cpu_ms,wall_ms,wall_min_ms,repeats,peak_mib,skipped\n";
  exponents << "study,variant,from_size,to_size,threads,cpu_time_exponent,wall_time_exponent,memory_exponent\n";
  fmt::print("\ngrowth exponents (least-squares slope on log-log over the upper half of the sizes)\n"
             "{:<10} {:>14} {:>9} {:>9} {:>8}\n", "variant", "sizes", "CPU time", "wall time", "memory");
  std::vector<hg::train::Panel> panels = {{fmt::format("log10 {} ms, association", clock), {}, "log2 L"},
                                          {"log10 peak memory (MiB), association", {}, "log2 L"},
                                          {fmt::format("log10 {} ms, retrieval", clock), {}, "log2 N"},
                                          {"log10 peak memory (MiB), retrieval", {}, "log2 N"}};
  for (const Curve& c : curves) {
    const std::vector<int64_t>& sizes = c.study == "length" ? lengths : patterns;
    const int64_t from = sizes[sizes.size() / 2], to = sizes.back();
    const double cpu_exponent = growth_exponent(c, from, [](const Point& p) { return p.cpu_ms; });
    const double wall_exponent = growth_exponent(c, from, [](const Point& p) { return p.wall_ms; });
    const double memory_exponent = growth_exponent(c, from, [](const Point& p) { return p.peak_mib; });
    int64_t last = 0;
    for (const Point& p : c.points) {
      points << fmt::format("{},{},{},{},{:.5f},{:.5f},{:.5f},{},{:.4f},{}\n", c.study, c.name, p.size, opt.threads,
                            p.cpu_ms, p.wall_ms, p.wall_min_ms, p.repeats, p.peak_mib, p.skipped ? 1 : 0);
      if (!p.skipped) last = p.size;
    }
    exponents << fmt::format("{},{},{},{},{},{:.3f},{:.3f},{:.3f}\n", c.study, c.name, from, last, opt.threads,
                             cpu_exponent, wall_exponent, memory_exponent);
    auto shown = [](double e) { return std::abs(e) < 0.005 ? 0.0 : e; };  // a flat curve prints 0.00, not -0.00
    fmt::print("{:<10} {:>14} {:>9.2f} {:>9.2f} {:>8.2f}{}\n", c.name,
               last >= from ? fmt::format("{}…{}", from, last) : std::string("none measured"),
               shown(cpu_exponent), shown(wall_exponent), shown(memory_exponent),
               last < to ? "  (larger sizes skipped: over budget)" : "");

    hg::train::Series time{c.name, {}, {}}, memory{c.name, {}, {}};
    for (const Point& p : c.points) {
      const double x = std::log2(static_cast<double>(p.size));
      time.x.push_back(x);
      time.y.push_back(std::log10(step_ms(p, cpu_clock)));
      memory.x.push_back(x);
      memory.y.push_back(std::log10(p.peak_mib));
    }
    const size_t panel = c.study == "length" ? 0 : 2;
    panels[panel].series.push_back(time);
    panels[panel + 1].series.push_back(memory);
  }
  hg::train::write_svg_plot(opt.out_dir / "scaling.svg", panels, "Hopfield association and retrieval: cost against size");
  fmt::print("wrote {}, {} and {}\n", (opt.out_dir / "scaling.csv").string(),
             (opt.out_dir / "scaling_exponents.csv").string(), (opt.out_dir / "scaling.svg").string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Time and memory of Hopfield association against the sequence length, and of retrieval against the "
               "number of stored patterns, with fitted growth exponents"};
  app.add_option("--variants", opt.variants, "association variants (softmax, topk, window, linear, favor, or any "
                                             "name nn::separation_kind_from_string accepts)")
      ->delimiter(',');
  app.add_option("--min-length", opt.min_length, "smallest L (then doubling)")->check(CLI::Range(1, 1 << 24));
  app.add_option("--max-length", opt.max_length, "largest L")->check(CLI::Range(1, 1 << 24));
  app.add_option("--width", opt.width, "pattern width (heads × head dim)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--heads", opt.heads, "heads")->check(CLI::Range(1, 1 << 10));
  app.add_option("--batch", opt.batch, "batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--top-k", opt.top_k, "topk: keys kept per query")->check(CLI::Range(1, 1 << 24));
  app.add_option("--window", opt.window, "window: half-width w of the band |i − j| ≤ w")->check(CLI::Range(0, 1 << 24));
  app.add_option("--features", opt.features, "favor: random features m (0: ⌊d ln d⌋)")->check(CLI::Range(0, 1 << 20));
  app.add_option("--patterns", opt.patterns, "retrieval: numbers of stored patterns N (empty: no retrieval study)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--pattern-width", opt.pattern_width, "retrieval: pattern width")->check(CLI::Range(1, 1 << 16));
  app.add_option("--queries", opt.queries, "retrieval: state patterns per call")->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", opt.steps, "retrieval: updates per call")->check(CLI::Range(1, 1000));
  app.add_option("--threads", opt.threads, "CPU threads")->check(CLI::Range(1, 1024));
  app.add_option("--repeats", opt.repeats, "timed steps per point, after one warm-up (the median is reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--max-ms", opt.max_ms, "skip points whose step would take longer (extrapolated)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-mib", opt.max_mib, "skip points whose peak memory would be larger (extrapolated)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", opt.seed, "seed for the inputs and the random features");
  app.add_option("--out-dir", opt.out_dir, "where scaling.csv, scaling_exponents.csv and scaling.svg go");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const hg::Error& e) {
    fmt::print(stderr, "bench_scaling: {}\n", e.what());
    return 1;
  }
}
