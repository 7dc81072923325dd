// efficiency: time and memory of one Hopfield association against the sequence length L, for every separation
// function — the counterpart of the NonparametricHopfield repository's efficiency_main.py (spec C.5).
//
//   out = sep(β q kᵀ) v         q, k, v [batch 4, heads 4, L, head dim 4]   (d_model 16 = 4 heads × 4)
//
// What runs: Separation::attend directly on random q, k, v of shape [4, 4, L, 4] (self-association, S = L), the
// association the reference's bare layer (d_model 16, 4 heads, update_steps 1) performs once; the projections
// around it are O(L·d²) for every kind and would only blur the comparison. Each measurement is one forward and
// one backward pass (gradients of Σ out to q, k and v), timed on the wall clock; the median of --repeats runs
// after one warm-up run is reported.
//
// Memory, two numbers per point: the bytes of each kind's largest intermediate, computed from its algorithm (as
// the reference's FLOP counts are): the dense kinds materialise the scores [B, H, L, L] — O(L²) —, window the
// chunked band scores [B, H, L/c, c, c + 2w] (c = max(w, 16), as window_attention does) — O(L·w) —, linear the
// key-value summary [B, H, d, d] or the inputs [B, H, L, d] — O(L·d) —, and random features φ(q) [B, H, L, m],
// m = ⌊d ln d⌋ — O(L·m); and the measured peak of hg::memory_stats during one forward + backward above what
// q, k and v hold (every intermediate, saved tensor and gradient at once, so several times the largest one).
// Kinds: softmax, sparsemax, entmax15, topk (half the keys), random (each key excluded with probability 0.1),
// window (w per L as the reference: 4, 6, 8, 12, 14, 18, 30, 48 for L = 24 … 2880), linear (φ = elu + 1), favor
// (positive random features).
//
//   efficiency                                    # L ≤ 720, 5 repeats, 1 thread: ~10 s
//   efficiency --max-length=2880 --repeats=20     # the reference's full range (dense kinds need ~0.5 GB per score)
//   efficiency --kinds=softmax,window,linear --device=cuda
//
// Writes <out-dir>/efficiency.csv (one row per L: the window, then per kind milliseconds, analytic MiB and
// measured peak MiB) and
// <out-dir>/efficiency.svg (time and memory against L, one curve per kind). Exits 1 on bad flags.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;

// The reference's shapes: input (4, L, 16) split into 4 heads of width 4.
constexpr int64_t kBatch = 4, kHeads = 4, kHeadDim = 4;
// The reference's lengths and the window half-width it uses at each (each satisfies L mod 2w = 0).
const std::vector<int64_t> kReferenceLengths = {24, 48, 96, 192, 336, 720, 1440, 2880};
const std::vector<int64_t> kReferenceWindows = {4, 6, 8, 12, 14, 18, 30, 48};

struct Options {
  hg::train::CommonFlags common;
  std::vector<std::string> kinds = {"softmax", "sparsemax", "entmax15", "topk", "random", "window", "linear", "favor"};
  std::vector<int64_t> lengths = kReferenceLengths;
  std::vector<int64_t> windows = kReferenceWindows;
  int64_t max_length = 720;
  int repeats = 5;
};

nn::SeparationOptions separation_options(nn::SeparationKind kind, int64_t window) {
  nn::SeparationOptions o(kind);
  switch (kind) {
    case nn::SeparationKind::TopK: o.top_fraction(0.5); break;
    case nn::SeparationKind::RandomMask: o.mask_prob(0.1); break;
    case nn::SeparationKind::Window: o.window(window); break;
    case nn::SeparationKind::RandomFeatures: o.feature_dim(kHeadDim); break;
    default: break;
  }
  return o;
}

/// Bytes of the kind's largest intermediate for self-association of length L (see the file comment).
double largest_intermediate_bytes(nn::SeparationKind kind, int64_t L, int64_t window) {
  const double bh = static_cast<double>(kBatch * kHeads), d = kHeadDim, bytes = sizeof(float);
  switch (kind) {
    case nn::SeparationKind::Window: {
      // As window_attention: chunks of c = min(max(w, 16), L) queries, each scored against c + 2w keys.
      const int64_t w = std::min(window, std::max<int64_t>(L - 1, 0));
      const int64_t chunk = std::min(std::max<int64_t>(w, 16), L), chunks = (L + chunk - 1) / chunk;
      const double scores = static_cast<double>(chunks * chunk * (chunk + 2 * w));
      const double keys = static_cast<double>(chunks * (chunk + 2 * w)) * d;
      return bh * std::max(scores, keys) * bytes;
    }
    case nn::SeparationKind::Linear: return bh * std::max(static_cast<double>(L) * d, d * d) * bytes;
    case nn::SeparationKind::RandomFeatures: {
      const double m = std::max(1.0, std::floor(d * std::log(d)));
      return bh * static_cast<double>(L) * std::max(m, d) * bytes;
    }
    default: return bh * static_cast<double>(L) * static_cast<double>(L) * bytes;  // the scores [B, H, L, L]
  }
}

struct Cost {
  double ms = 0;        ///< median wall time of forward + backward
  double peak_mib = 0;  ///< hg::memory_stats peak during one forward + backward, above the inputs
};

/// Forward + backward through `sep` on fresh random q, k, v [4, 4, L, 4]: median time, then peak memory.
Cost measure_forward_backward(nn::Separation& sep, int64_t L, int repeats, hg::Device device, hg::Generator& gen) {
  const hg::Shape shape = {kBatch, kHeads, L, kHeadDim};
  hg::Tensor q = hg::randn(shape, hg::kFloat32, &gen).to(device).requires_grad_();
  hg::Tensor k = hg::randn(shape, hg::kFloat32, &gen).to(device).requires_grad_();
  hg::Tensor v = hg::randn(shape, hg::kFloat32, &gen).to(device).requires_grad_();
  const hg::Tensor beta = hg::scalar_tensor(1.0 / std::sqrt(static_cast<double>(kHeadDim)),
                                            hg::TensorOptions(hg::kFloat32).device(device));
  std::vector<double> ms;
  for (int run = 0; run <= repeats; ++run) {  // run 0 is the warm-up
    for (const hg::Tensor* t : {&q, &k, &v}) t->set_grad({});  // a fresh gradient, not an accumulation
    const auto start = std::chrono::steady_clock::now();
    sep->attend(q, k, v, beta, {}, {}, 0.0, nullptr, &gen).sum().backward();
    // Reading a number back waits for the device (CUDA runs asynchronously); on the CPU it costs O(L·d).
    const double check = (q.grad().sum() + k.grad().sum() + v.grad().sum()).item<double>();
    const auto stop = std::chrono::steady_clock::now();
    HG_CHECK(std::isfinite(check), "efficiency: {} produced non-finite gradients at L = {}",
             nn::to_string(sep->options.kind()), L);
    if (run > 0) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(ms.begin(), ms.end());
  const size_t mid = ms.size() / 2;
  Cost cost;
  cost.ms = ms.size() % 2 == 1 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
  // One more pass for the memory, its gradients dropped first so that only q, k and v are alive before it.
  for (const hg::Tensor* t : {&q, &k, &v}) t->set_grad({});
  const hg::MemoryStats before = hg::memory_stats(device);
  hg::reset_peak_memory_stats(device);
  sep->attend(q, k, v, beta, {}, {}, 0.0, nullptr, &gen).sum().backward();
  cost.peak_mib = static_cast<double>(hg::memory_stats(device).peak_allocated_bytes - before.allocated_bytes) / (1 << 20);
  return cost;
}

int run(const Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  HG_CHECK(opt.windows.size() == opt.lengths.size(),
           "efficiency: --windows needs one half-width per length: {} lengths, {} windows", opt.lengths.size(),
           opt.windows.size());
  std::vector<nn::SeparationKind> kinds;
  for (const std::string& name : opt.kinds) kinds.push_back(nn::separation_kind_from_string(name));
  std::vector<int64_t> lengths, windows;
  for (size_t i = 0; i < opt.lengths.size(); ++i)
    if (opt.lengths[i] <= opt.max_length) {
      lengths.push_back(opt.lengths[i]);
      windows.push_back(opt.windows[i]);
    }
  HG_CHECK(!lengths.empty(), "efficiency: no length in --lengths is <= --max-length {}", opt.max_length);

  std::vector<std::string> columns = {"length", "window"};
  for (nn::SeparationKind kind : kinds) columns.push_back(fmt::format("{}_ms", nn::to_string(kind)));
  for (nn::SeparationKind kind : kinds) columns.push_back(fmt::format("{}_mib", nn::to_string(kind)));
  for (nn::SeparationKind kind : kinds) columns.push_back(fmt::format("{}_peak_mib", nn::to_string(kind)));
  const fs::path csv_path = opt.common.out_dir / "efficiency.csv", svg_path = opt.common.out_dir / "efficiency.svg";
  hg::train::CsvLog log(csv_path, columns);
  fmt::print("efficiency: forward + backward of sep(β q kᵀ) v, q/k/v [{}, {}, L, {}], median of {} after a warm-up, "
             "on {} ({} thread{})\n",
             kBatch, kHeads, kHeadDim, opt.repeats, device, opt.common.threads, opt.common.threads > 1 ? "s" : "");

  hg::Generator gen(opt.common.seed);
  std::vector<std::vector<double>> ms(kinds.size()), mib(kinds.size()), peak_mib(kinds.size());
  hg::train::ProgressBar progress("measuring", static_cast<int64_t>(lengths.size() * kinds.size()),
                                  opt.common.show_progress());
  for (size_t i = 0; i < lengths.size(); ++i) {
    std::vector<double> row = {static_cast<double>(lengths[i]), static_cast<double>(windows[i])};
    for (size_t j = 0; j < kinds.size(); ++j) {
      nn::Separation sep(separation_options(kinds[j], windows[i]));
      sep->to(device);
      const Cost cost = measure_forward_backward(sep, lengths[i], opt.repeats, device, gen);
      ms[j].push_back(cost.ms);
      peak_mib[j].push_back(cost.peak_mib);
      mib[j].push_back(largest_intermediate_bytes(kinds[j], lengths[i], windows[i]) / (1 << 20));
      progress.advance();
    }
    for (size_t j = 0; j < kinds.size(); ++j) row.push_back(ms[j][i]);
    for (size_t j = 0; j < kinds.size(); ++j) row.push_back(mib[j][i]);
    for (size_t j = 0; j < kinds.size(); ++j) row.push_back(peak_mib[j][i]);
    log.write(row);
    if (!opt.common.show_progress())
      fmt::print("L = {}: measured, slowest {:.2f} ms\n", lengths[i],
                 std::max_element(row.begin() + 2, row.begin() + 2 + static_cast<std::ptrdiff_t>(kinds.size()))[0]);
  }
  progress.finish(fmt::format("measured {} kinds at {} lengths in {:.1f} s", kinds.size(), lengths.size(), progress.elapsed_seconds()));

  // The table: one row per kind, forward + backward ms, the largest intermediate's MiB and the measured peak MiB
  // per length.
  std::string header = fmt::format("{:<10}", "kind");
  for (size_t i = 0; i < lengths.size(); ++i) header += fmt::format(" {:>24}", fmt::format("L={} (w={})", lengths[i], windows[i]));
  fmt::print("\nforward + backward time, ms (largest intermediate / measured peak, MiB)\n{}\n", header);
  for (size_t j = 0; j < kinds.size(); ++j) {
    std::string line = fmt::format("{:<10}", nn::to_string(kinds[j]));
    for (size_t i = 0; i < lengths.size(); ++i)
      line += fmt::format(" {:>24}", fmt::format("{:.2f} ({:.3g} / {:.3g})", ms[j][i], mib[j][i], peak_mib[j][i]));
    fmt::print("{}\n", line);
  }
  fmt::print("paper: efficiency_main.py reports no numbers (it writes mts_cost.csv of CUDA times and FLOPs)\n");

  std::vector<double> x(lengths.begin(), lengths.end());
  hg::train::Panel time_panel{"forward + backward (ms)", {}, "sequence length L"};
  hg::train::Panel memory_panel{"largest intermediate (MiB)", {}, "sequence length L"};
  hg::train::Panel peak_panel{"measured peak memory (MiB)", {}, "sequence length L"};
  for (size_t j = 0; j < kinds.size(); ++j) {
    const std::string name(nn::to_string(kinds[j]));
    time_panel.series.push_back({name, x, ms[j]});
    memory_panel.series.push_back({name, x, mib[j]});
    peak_panel.series.push_back({name, x, peak_mib[j]});
  }
  hg::train::write_svg_plot(svg_path, {time_panel, memory_panel, peak_panel},
                            fmt::format("Separation functions: cost against L (median of {})", opt.repeats));
  fmt::print("wrote {} and {}\n", csv_path.string(), svg_path.string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.common.out_dir = "runs/efficiency";
  // One thread by default: on a shared machine, OpenMP threads that wait on a busy core turn sub-millisecond
  // kernels into tens of milliseconds and the curves into noise. --threads=N measures the parallel kernels.
  opt.common.threads = 1;
  CLI::App app{"Time and memory of one Hopfield association against the sequence length, per separation function"};
  hg::train::add_common_flags(app, opt.common);
  for (const char* unused : {"--epochs", "--batch-size", "--lr", "--data-dir"})  // nothing is trained or loaded
    app.remove_option(app.get_option(unused));
  app.add_option("--kinds", opt.kinds, "separation functions (softmax, sparsemax, entmax15, topk, random, window, "
                                       "linear, favor, or any other name nn::separation_kind_from_string accepts)")
      ->type_name("NAME,...")
      ->delimiter(',');
  app.add_option("--lengths", opt.lengths, "sequence lengths L (≥ 1)")
      ->type_name("L,...")
      ->delimiter(',')
      ->check(hg::train::in_range(1, 1 << 20));
  app.add_option("--windows", opt.windows, "window half-width w for each of --lengths (≥ 0)")
      ->type_name("W,...")
      ->delimiter(',')
      ->check(hg::train::in_range(0, 1 << 20));
  app.add_option("--max-length", opt.max_length, "measure only the lengths up to this (the reference goes to 2880)")
      ->type_name("L")
      ->check(hg::train::in_range(1, 1 << 20));
  app.add_option("--repeats", opt.repeats, "timed runs per measurement, after one warm-up (the median is reported)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e6));
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const hg::Error& e) {
    hg::train::print_error("efficiency", e);
    return 1;
  }
}
