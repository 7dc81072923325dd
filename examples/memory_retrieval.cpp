// memory_retrieval: U-Hop's memory-retrieval experiment (Wu, Hu et al. 2024; spec D.3). M MNIST test images are
// stored as memories Ξ; each is queried in a corrupted form and retrieved in one step x̂ = Ξ sep(sim(Ξ, q)); the
// error is Σ_pixels (clamp01(ξ_μ) − clamp01(x̂))², averaged over the M memories. Methods: the modern Hopfield
// network (dot + softmax), sparse Hopfield (dot + sparsemax), the dense associative memory (dot + poly-10), −L2
// and −Manhattan similarity with softmax, and U-Hop (Stage I with the max separation loss, then the learned
// kernel ⟨Φξ, Φq⟩ with softmax).
//
//   memory_retrieval                                      # M ∈ {10,20,50,100}, masking and noise σ = 1, 2 seeds
//   memory_retrieval --query=noise --noise=0.1,0.5,1,2 --memories=100 --seeds=10
//   memory_retrieval --kernel-epochs=1000 --compat        # the reference code's kernel and distance quirks
//
// Queries (spec D.3): masking zeroes each pixel with probability 0.5 and doubles the survivors (torch dropout, as
// the reference code does; --no-rescale keeps them as they are); noise is clamp(|ξ + σ n̂|, 0, 1) with n̂ = n/‖n‖,
// n ~ N(0, I) — a perturbation of norm σ, as memory_retrieval_noise_max_loss.py, the script of this example's
// max-loss Stage I (--noise-model=gaussian is the plain script's σ n: norm σ√d ≈ 28σ on MNIST, which swamps
// every image at σ ≥ 0.5). Stage I is trained on the first half of the memories for masking and on all of them
// for noise, as the reference scripts do; --stage1-loss=average with --noise-model=gaussian is the plain scripts'
// pairing. With no MNIST under --data-dir the memories are random correlated patterns in [0, 1]
// (said so in the output). Writes <out-dir>/memory_retrieval.csv (one row per configuration and seed),
// <out-dir>/memory_retrieval_results.csv (the printed tables: mean and std over seeds per configuration, method
// and M; scripts/make_results.py reads it) and <out-dir>/memory_retrieval.svg (error vs M per method, one panel per query kind). Exit status 2 on an error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <omp.h>

#include <hopgrad/hopgrad.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;
using hg::Tensor;

// Float32 as the reference (and twice as fast as float64 for Stage I); poly-10 scores stay below 1e30.
const hg::TensorOptions kF32(hg::kFloat32);
const std::vector<std::string> kAllMethods = {"softmax", "sparsemax", "poly10", "l2", "manhattan", "uhop"};

struct Flags {
  fs::path out_dir = "runs/memory_retrieval";
  fs::path data_dir;
  std::vector<int64_t> memories = {10, 20, 50, 100};
  std::vector<std::string> queries = {"mask", "noise"};
  std::vector<double> noise = {1.0};
  std::vector<std::string> methods = kAllMethods;
  int seeds = 2;
  uint64_t seed = 0;
  double mask_prob = 0.5;
  bool rescale = true;        ///< masking: survivors × 1/(1 − p), as torch dropout (the reference)
  int64_t kernel_epochs = 100;
  bool compat = false;
  std::string noise_model = "unit";  ///< unit: σ n/‖n‖ (max-loss script); gaussian: σ n (plain script)
  std::string stage1_loss = "max";   ///< max (train_kernel_max) or average (train_kernel)
  std::string patterns = "auto";  ///< auto (MNIST when present), mnist, random
  int threads = hg::train::default_threads();
};

/// The pool the memories are drawn from: [N, d] in [0, 1], and what it is.
struct Pool {
  Tensor images;
  std::string name;
};

Pool load_pool(const Flags& flags) {
  const fs::path dir = flags.data_dir / "mnist";
  const bool have_mnist = fs::exists(dir / "t10k-images-idx3-ubyte.gz") || fs::exists(dir / "t10k-images-idx3-ubyte");
  if (flags.patterns == "mnist" || (flags.patterns == "auto" && have_mnist)) {
    // ToTensor's [0, 1] (no normalisation, as the reference); the test split, since only it is in shared/data.
    const auto split = hg::data::load_mnist(dir, /*train=*/false);
    return {split.images.reshape({split.images.size(0), -1}).to(hg::kFloat32), "MNIST test images (d = 784)"};
  }
  if (flags.patterns == "auto")
    fmt::print("No MNIST under {}: using random correlated patterns instead.\n", dir.string());
  // Correlated like images: a shared template plus per-pattern variation, in [0, 1], d = 784.
  hg::Generator gen(12345);
  const Tensor base = hg::rand({1, 784}, kF32, &gen);
  const Tensor pool = hg::clamp(0.6 * base + 0.4 * hg::rand({1000, 784}, kF32, &gen), 0.0, 1.0);
  return {pool, "random correlated patterns in [0, 1] (d = 784; no MNIST)"};
}

/// M memories drawn without replacement from the pool, in a seeded order.
Tensor draw_memories(const Pool& pool, int64_t m, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(pool.images.size(0)));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(static_cast<size_t>(m));
  return hg::index_select(pool.images, 0, hg::from_vector(order, {m}, hg::kInt64));
}

/// The corrupted queries of every memory (rows of Ξ).
Tensor make_queries(const Flags& flags, const Tensor& memories, const std::string& kind, double sigma,
                    hg::Generator& gen) {
  if (kind == "mask") {
    const Tensor dropped = hg::dropout(memories, flags.mask_prob, /*train=*/true, &gen);  // survivors ×1/(1−p)
    return flags.rescale ? dropped : dropped * (1.0 - flags.mask_prob);
  }
  Tensor n = hg::randn(memories.sizes(), kF32, &gen);
  // unit: each query's perturbation has norm σ (F.normalize(n, dim=0) per memory in the max-loss script).
  if (flags.noise_model == "unit") n = n / hg::clamp_min(hg::sqrt(hg::sum(hg::square(n), {-1}, true)), 1e-12);
  return hg::clamp(hg::abs(memories + sigma * n), 0.0, 1.0);
}

/// mean_μ Σ_pixels (clamp01(ξ_μ) − clamp01(x̂_μ))² (the reference's metric: a sum over pixels, not a mean).
double retrieval_error(const Tensor& memories, const Tensor& retrieved) {
  const Tensor diff = hg::clamp(memories, 0.0, 1.0) - hg::clamp(retrieved, 0.0, 1.0);
  return hg::mean(hg::sum(hg::square(diff), {-1})).item<double>();
}

/// One retrieval step x̂ = Ξ sep(sim(Ξ, q)) with `method`; U-Hop uses the Stage-I-trained map.
Tensor retrieve(const Flags& flags, const std::string& method, const Tensor& memories, const Tensor& queries,
                const nn::KernelMap& phi) {
  auto options = nn::KernelRetrievalOptions().compat(flags.compat);
  if (method == "softmax") options.similarity(nn::Similarity::Dot);
  if (method == "sparsemax")
    options.similarity(nn::Similarity::Dot).separation(nn::SeparationOptions(nn::SeparationKind::Sparsemax));
  if (method == "poly10")
    options.similarity(nn::Similarity::Dot)
        .separation(nn::SeparationOptions(nn::SeparationKind::Polynomial).degree(10));
  if (method == "l2") options.similarity(nn::Similarity::NegativeL2);
  if (method == "manhattan") options.similarity(nn::Similarity::NegativeManhattan);
  if (method == "uhop") return nn::kernel_retrieve(memories, queries, options.similarity(nn::Similarity::Kernel), phi);
  return nn::kernel_retrieve(memories, queries, options);
}

struct Stats {
  double mean = 0, std = 0;
};

Stats stats(const std::vector<double>& v) {
  Stats s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

int run(const Flags& flags) {
  fs::create_directories(flags.out_dir);
  const Pool pool = load_pool(flags);
  for (int64_t m : flags.memories)
    if (m > pool.images.size(0)) throw hg::Error(fmt::format("--memories={} exceeds the {} patterns", m, pool.images.size(0)));
  fmt::print("Memories: {}; queries: {} (noise {}); methods: {}; seeds {}..{}; Stage I: {} loss, {} steps{}\n",
             pool.name, fmt::join(flags.queries, ", "),
             flags.noise_model == "unit" ? "σ n/‖n‖" : "σ n, n ~ N(0, I)", fmt::join(flags.methods, ", "),
             flags.seed, flags.seed + static_cast<uint64_t>(flags.seeds) - 1, flags.stage1_loss, flags.kernel_epochs,
             flags.compat ? " (reference-code compat)" : "");

  // Configurations: (query kind, level); masking has one level, its drop probability.
  std::vector<std::pair<std::string, double>> configs;
  for (const auto& q : flags.queries) {
    if (q == "mask") configs.emplace_back(q, flags.mask_prob);
    else for (double s : flags.noise) configs.emplace_back(q, s);
  }

  std::ofstream csv(flags.out_dir / "memory_retrieval.csv");
  csv << "query,level,method,memories,seed,error,stage1_loss_before,stage1_loss_after\n";
  // errors[(config index, method, M)] over seeds
  std::map<std::tuple<size_t, std::string, int64_t>, std::vector<double>> errors;
  const auto start = std::chrono::steady_clock::now();
  const bool uhop = std::find(flags.methods.begin(), flags.methods.end(), "uhop") != flags.methods.end();
  for (int64_t m : flags.memories) {
    for (int s = 0; s < flags.seeds; ++s) {
      const uint64_t seed = flags.seed + static_cast<uint64_t>(s);
      const Tensor memories = draw_memories(pool, m, seed);
      // Stage I once per training set: the first half of the memories (masking) or all of them (noise).
      std::map<std::string, std::pair<nn::KernelMap, nn::StageIResult>> kernels;
      for (const std::string kind : {"mask", "noise"}) {
        if (!uhop || std::find(flags.queries.begin(), flags.queries.end(), kind) == flags.queries.end()) continue;
        hg::Generator init(seed * 1000003 + 17);
        nn::KernelMap phi(nn::KernelMapOptions(memories.size(1)).compat(flags.compat));
        phi->reset_parameters(&init);
        const Tensor train = kind == "mask" ? memories.narrow(0, 0, std::max<int64_t>(2, m / 2)) : memories;
        const auto loss = flags.stage1_loss == "max" ? nn::SeparationLossKind::Max : nn::SeparationLossKind::Average;
        auto result = nn::train_kernel(phi, train, nn::StageIOptions().loss(loss).steps(flags.kernel_epochs));
        kernels.emplace(kind, std::make_pair(phi, std::move(result)));
      }
      for (size_t c = 0; c < configs.size(); ++c) {
        const auto& [kind, level] = configs[c];
        hg::Generator gen(seed * 7919 + c);
        const Tensor queries = make_queries(flags, memories, kind, level, gen);
        for (const auto& method : flags.methods) {
          const auto it = kernels.find(kind);
          const nn::KernelMap phi = method == "uhop" ? it->second.first : nullptr;
          const double error = retrieval_error(memories, retrieve(flags, method, memories, queries, phi));
          errors[{c, method, m}].push_back(error);
          const bool k = method == "uhop";
          csv << fmt::format("{},{},{},{},{},{},{},{}\n", kind, level, method, m, seed, error,
                             k ? it->second.second.losses.front() : NAN, k ? it->second.second.final_loss : NAN);
        }
      }
    }
    fmt::print("  M = {:4d} done ({:.1f} s)\n", m,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  csv.flush();

  // The table: one block per query configuration, methods × M, mean ± std over seeds.
  std::vector<hg::train::Panel> panels;
  std::vector<std::vector<std::string>> table = {
      {"query", "noise_model", "level", "method", "memories", "seeds", "error_mean", "error_std"}};
  for (size_t c = 0; c < configs.size(); ++c) {
    const auto& [kind, level] = configs[c];
    const std::string title = kind == "mask" ? fmt::format("masked {:.0f} % of pixels", 100 * level)
                              : flags.noise_model == "unit" ? fmt::format("noise σ n/‖n‖, σ = {}", level)
                                                            : fmt::format("noise σ n, σ = {}", level);
    fmt::print("\nRetrieval error Σ_pixels (ξ − x̂)², {}; mean ± std over {} seeds\n{:<10}", title, flags.seeds,
               "method");
    for (int64_t m : flags.memories) fmt::print(" {:>17}", fmt::format("M = {}", m));
    fmt::print("\n");
    hg::train::Panel panel{fmt::format("error, {}", title), {}, "memories M"};
    for (const auto& method : flags.methods) {
      fmt::print("{:<10}", method);
      hg::train::Series series{method, {}, {}, method != "uhop"};
      for (int64_t m : flags.memories) {
        const Stats st = stats(errors[{c, method, m}]);
        fmt::print(" {:>17}", fmt::format("{:.2f} ± {:.2f}", st.mean, st.std));
        table.push_back({kind, kind == "noise" ? flags.noise_model : "", fmt::format("{}", level), method,
                         std::to_string(m), std::to_string(flags.seeds), fmt::format("{}", st.mean),
                         fmt::format("{}", st.std)});
        series.x.push_back(static_cast<double>(m));
        series.y.push_back(st.mean);
      }
      fmt::print("\n");
      panel.series.push_back(std::move(series));
    }
    panels.push_back(std::move(panel));
  }
  fmt::print("\nPaper (U-Hop, Wu, Hu et al. 2024, Fig. 2-3): figures only, no numbers; claims U-Hop's kernel gives "
             "the lowest error of the baselines and that low separation loss goes with low retrieval error.\n");
  hg::train::write_results_csv("memory_retrieval", flags.out_dir / "memory_retrieval_results.csv", table);
  hg::train::write_svg_plot(flags.out_dir / "memory_retrieval.svg", panels, "Memory retrieval error vs memories");
  fmt::print("CSV: {}\nplot: {}\n", (flags.out_dir / "memory_retrieval.csv").string(),
             (flags.out_dir / "memory_retrieval.svg").string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"U-Hop memory retrieval: error vs number of memories and corruption, per similarity/separation"};
  app.option_defaults()->always_capture_default();
  app.add_option("--out-dir", flags.out_dir, "CSV and SVG go here");
  flags.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  app.add_option("--data-dir", flags.data_dir, "the datasets folder (holding mnist/)");
  app.add_option("--patterns", flags.patterns, "memories: auto (MNIST when present), mnist or random")
      ->check(CLI::IsMember({"auto", "mnist", "random"}));
  app.add_option("--memories", flags.memories, "numbers of memories M to sweep (each ≥ 2)")
      ->check(hg::train::in_range(2, 10000))->delimiter(',');
  app.add_option("--query", flags.queries, "query corruptions: mask, noise")
      ->check(CLI::IsMember({"mask", "noise"}))->delimiter(',');
  app.add_option("--noise", flags.noise, "noise levels σ to sweep (≥ 0)")
      ->check(hg::train::in_range(0, 1e6))->delimiter(',');
  app.add_option("--noise-model", flags.noise_model,
                 "noise: unit (σ n/‖n‖, the max-loss noise script) or gaussian (σ n per pixel, the plain script)")
      ->check(CLI::IsMember({"unit", "gaussian"}));
  app.add_option("--mask-prob", flags.mask_prob, "masking: probability a pixel is zeroed (in [0, 1))")
      ->check(hg::train::in_range(0, 0.999));
  app.add_flag("!--no-rescale", flags.rescale, "masking: keep survivors as they are (the reference doubles them)");
  app.add_option("--methods", flags.methods, "methods: softmax, sparsemax, poly10, l2, manhattan, uhop")
      ->check(CLI::IsMember(kAllMethods))->delimiter(',');
  app.add_option("--seeds", flags.seeds, "repeats per configuration (≥ 1)")->check(hg::train::in_range(1, 1000));
  app.add_option("--seed", flags.seed, "first seed");
  app.add_option("--kernel-epochs", flags.kernel_epochs, "U-Hop Stage I gradient steps (≥ 0)")
      ->check(hg::train::in_range(0, 1e7));
  app.add_option("--stage1-loss", flags.stage1_loss,
                 "U-Hop Stage I loss: max (train_kernel_max, step 10) or average (train_kernel, step 1/√(i!))")
      ->check(CLI::IsMember({"max", "average"}));
  app.add_flag("--compat", flags.compat,
               "the reference code's quirks: d × d map without row normalisation, distances with a positive sign");
  app.add_option("--threads", flags.threads, "CPU (OpenMP) threads (≥ 1)")->check(CLI::Range(1, 1024));
  CLI11_PARSE(app, argc, argv);
  omp_set_num_threads(flags.threads);
  try {
    return run(flags);
  } catch (const std::exception& e) {
    fmt::print(stderr, "memory_retrieval: {}\n", e.what());
    return 2;
  }
}
