// lagrangian: the numbers behind docs/lagrangian.md — from the Lagrangian form of a modern Hopfield network to
// attention, partial forgetting (LwPF), sparse separations and U-Hop's learned kernel. Each section checks one
// claim of the derivation on random patterns, prints the evidence, and plots it to <out-dir>/lagrangian_<n>.svg:
//
//   1  the energy never increases along updates ξ ← X softmax(β Xᵀ ξ), for several β
//   2  one update with β = 1/√d_k, read through W_Q, W_K, W_V, is softmax attention (to 1e-6)
//   3  the three kinds of fixed points as β grows: global average, metastable (a cluster), single pattern
//   4  retrieval error vs number of stored patterns: dense softmax, sparsemax, polynomial (degree 10)
//   5  LwPF: the weights of one query sum to Σ_{h>a} eʰ / (Σ_{h>a} eʰ + n_forgotten·eᵇ), < 1 if it forgets any
//   6  U-Hop Stage I: gradient steps on Φ lower the separation loss of the memories
//
//   lagrangian                              # every section, about a second on 2 cores
//   lagrangian --section=3 --seed=7 --out-dir=runs/fixed_points
//   lagrangian --section=4 --patterns=mnist     # section 4 on MNIST test images (needs <data-dir>/mnist)
//
// Writes every claim to <out-dir>/lagrangian_results.csv (section, claim, holds; scripts/make_results.py reads
// it). Float64 throughout, so the tolerances are about the mathematics, not rounding. The exit status is 1 when a
// claim it prints fails (the test suite runs it), 2 on an error (e.g. an unwritable --out-dir), 0 otherwise.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
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

const hg::TensorOptions kF64(hg::kFloat64);

/// Records the claims a section makes, one CSV row each (section, claim, holds); main's exit status is whether
/// all held.
class Claims {
 public:
  explicit Claims(const fs::path& csv) : csv_(csv) {
    if (!csv_) throw hg::Error("could not write " + csv.string());
    csv_ << "section,claim,holds\n";
  }
  void begin_section(int section) { section_ = section; }
  void check(bool holds, const std::string& claim) {
    fmt::print("  [{}] {}\n", holds ? "ok" : "FAILED", claim);
    failures_ += holds ? 0 : 1;
    std::string quoted;  // RFC 4180: the claim in quotes, its quotes doubled
    for (char c : claim) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    csv_ << section_ << ",\"" << quoted << "\"," << (holds ? 1 : 0) << '\n' << std::flush;
  }
  int failures() const { return failures_; }

 private:
  std::ofstream csv_;
  int section_ = 0;
  int failures_ = 0;
};

struct Flags {
  fs::path out_dir = "runs/lagrangian";
  uint64_t seed = 0;
  int section = 0;       ///< 0: all
  int64_t dim = 16;      ///< d, the width of the stored patterns
  int64_t queries = 64;  ///< state patterns per measurement (sections 1, 4)
  int threads = hg::train::default_threads();
  std::string patterns = "random";  ///< section 4: "random" unit vectors in ℝᵈ, or "mnist" test images
  fs::path data_dir;                ///< where mnist/ is (see hg::train::default_data_dir)
};

double max_of(const Tensor& t) { return hg::max(t).item<double>(); }

std::vector<double> to_host(const Tensor& t) { return t.contiguous().to_vector<double>(); }

void plot(const Flags& flags, int section, const std::vector<hg::train::Panel>& panels, const std::string& title) {
  const fs::path path = flags.out_dir / fmt::format("lagrangian_{}.svg", section);
  hg::train::write_svg_plot(path, panels, title);
  fmt::print("  plot: {}\n", path.string());
}

// ---- 1. E(ξ) = −lse(β, Xᵀξ) + ½ξᵀξ + β⁻¹ log N + ½M² never increases under ξ ← X softmax(β Xᵀ ξ) -------------
void energy_descent(const Flags& flags, hg::Generator& gen, Claims& claims) {
  fmt::print("\n1. Energy along updates (CCCP: each update minimises a convex upper bound of E)\n");
  const int64_t n = 32, steps = 12;
  const Tensor stored = hg::randn({n, flags.dim}, kF64, &gen);  // X as rows x_μ
  const Tensor start = hg::randn({flags.queries, flags.dim}, kF64, &gen);
  const double m2 = max_of(hg::sum(hg::square(stored), {-1}));  // M² = max_μ ‖x_μ‖²

  hg::train::Panel panel{"mean energy E(ξ_t)", {}, "update t"};
  double worst_increase = -INFINITY, lowest = INFINITY, highest = -INFINITY;
  for (double beta : {0.02, 0.1, 0.5, 2.0}) {
    hg::train::Series series{fmt::format("β = {}", beta), {}, {}};
    Tensor xi = start;
    Tensor e = nn::energy(xi, stored, beta);
    for (int64_t t = 0; t <= steps; ++t) {
      series.x.push_back(static_cast<double>(t));
      series.y.push_back(hg::mean(e).item<double>());
      lowest = std::min(lowest, hg::min(e).item<double>());
      // E ≤ 2M² needs ‖ξ‖ ≤ M (Ramsauer et al., Lemma A1: ξ in the patterns' convex hull), which every updated
      // state satisfies; a start state need not (E ≤ ½(‖ξ‖ + M)² in general).
      if (t > 0) highest = std::max(highest, max_of(e));
      if (t == steps) break;
      xi = nn::retrieve(stored, xi, beta, 1);
      Tensor next = nn::energy(xi, stored, beta);
      worst_increase = std::max(worst_increase, max_of(next - e));
      e = next;
    }
    fmt::print("  β = {:<5}  E: {:9.4f} → {:9.4f} (mean over {} states)\n", beta, series.y.front(), series.y.back(),
               flags.queries);
    panel.series.push_back(std::move(series));
  }
  fmt::print("  largest single-step increase of any state's energy: {:.3e} (rounding); lowest E {:.4f}, highest E "
             "after an update {:.4f}, 2M² = {:.4f}\n",
             worst_increase, lowest, highest, 2 * m2);
  claims.check(worst_increase <= 1e-10, "E(ξ_{t+1}) ≤ E(ξ_t) for every state, step and β (to 1e-10)");
  claims.check(lowest >= -1e-10, "E ≥ 0 (Ramsauer et al., eq. 2)");
  claims.check(highest <= 2 * m2, "E ≤ 2M² once ξ is in the patterns' convex hull: after any update (Lemma A1)");
  plot(flags, 1, {panel}, "Energy never increases along Hopfield updates");
}

// ---- 2. ξ_new W_V = softmax(β Q Kᵀ) V with Q = R W_Q, K = Y W_K, V = Y W_K W_V, β = 1/√d_k ---------------------
void attention_equivalence(const Flags& flags, hg::Generator& gen, Claims& claims) {
  fmt::print("\n2. One update with β = 1/√d_k is softmax attention\n");
  const int64_t l = 5, s = 7, d_model = flags.dim, d_k = 8, d_v = 6;
  const Tensor r = hg::randn({l, d_model}, kF64, &gen);  // state patterns R (queries' source)
  const Tensor y = hg::randn({s, d_model}, kF64, &gen);  // raw stored patterns Y (keys' and values' source)
  const Tensor w_q = hg::randn({d_model, d_k}, kF64, &gen) / std::sqrt(static_cast<double>(d_model));
  const Tensor w_k = hg::randn({d_model, d_k}, kF64, &gen) / std::sqrt(static_cast<double>(d_model));
  const Tensor w_v = hg::randn({d_k, d_v}, kF64, &gen) / std::sqrt(static_cast<double>(d_k));
  const double beta = 1.0 / std::sqrt(static_cast<double>(d_k));

  // Hopfield: state patterns ξ = R W_Q (rows), stored patterns X = Y W_K, one update, then W_V.
  const Tensor hopfield = hg::matmul(nn::retrieve(hg::matmul(y, w_k), hg::matmul(r, w_q), beta, 1), w_v);

  // Attention as a transformer writes it, with the softmax spelled out (no Hopfield code involved).
  const Tensor q = hg::matmul(r, w_q), k = hg::matmul(y, w_k), v = hg::matmul(k, w_v);
  const Tensor scores = hg::matmul(q, k.transpose(0, 1)) * beta;
  const Tensor p = hg::exp(scores - hg::amax(scores, {-1}, true));
  const Tensor attention = hg::matmul(p / hg::sum(p, {-1}, true), v);

  const double diff = max_of(hg::abs(hopfield - attention));
  fmt::print("  R [{}, {}], Y [{}, {}], d_k = {}, d_v = {}: max |Hopfield − attention| = {:.3e}\n", l, d_model, s,
             d_model, d_k, d_v, diff);
  claims.check(diff <= 1e-6, "X softmax(β Xᵀξ) W_V = softmax(Q Kᵀ/√d_k) V to 1e-6");

  // The plot: the one output matrix computed both ways, element by element.
  hg::train::Series a{"Hopfield update", {}, to_host(hopfield.reshape({-1}))};
  hg::train::Series b{"attention", {}, to_host(attention.reshape({-1})), true};
  for (size_t i = 0; i < a.y.size(); ++i) a.x.push_back(static_cast<double>(i)), b.x.push_back(static_cast<double>(i));
  plot(flags, 2, {hg::train::Panel{"output entries", {a, b}, "entry (row-major)"}},
       "One Hopfield update = softmax attention");
}

// ---- 3. Fixed points ξ* = X softmax(β Xᵀ ξ*) as β grows -------------------------------------------------------
void fixed_points(const Flags& flags, hg::Generator& gen, Claims& claims) {
  // Clustered patterns make the middle regime visible: a metastable state averages one cluster.
  const int64_t clusters = 4, per_cluster = 4, n = clusters * per_cluster;
  fmt::print("\n3. Fixed points as β grows (patterns in {} clusters of {})\n", clusters, per_cluster);
  const Tensor centres = hg::randn({clusters, 1, flags.dim}, kF64, &gen);
  const Tensor stored = (centres + 0.25 * hg::randn({clusters, per_cluster, flags.dim}, kF64, &gen))
                            .reshape({n, flags.dim});
  const Tensor query = stored.narrow(0, 0, 1) + 0.1 * hg::randn({1, flags.dim}, kF64, &gen);  // near pattern 0

  hg::train::Series counts{"patterns with weight > 0.01", {}, {}};
  hg::train::Series entropies{"entropy of the weights (nats)", {}, {}};
  int global = 0, metastable = 0, single = 0;
  double worst_residual = 0.0;
  for (int i = 0; i <= 24; ++i) {
    const double log10_beta = -3.0 + 0.25 * i;  // β from 10⁻³ to 10³
    const double beta = std::pow(10.0, log10_beta);
    // Iterate the update to its fixed point (it converges: E is bounded below and never increases); near a
    // bifurcation convergence slows down, hence rounds of 50 updates until the state stops moving.
    Tensor xi = query;
    double residual = INFINITY;
    for (int round = 0; round < 100 && residual > 1e-12; ++round) {
      Tensor next = nn::retrieve(stored, xi, beta, 50);
      residual = max_of(hg::abs(nn::retrieve(stored, next, beta, 1) - next));
      xi = next;
    }
    worst_residual = std::max(worst_residual, residual);
    const Tensor w = hg::softmax(hg::matmul(xi, stored.transpose(0, 1)) * beta, -1);
    const auto count = hg::sum(hg::gt(w, 0.01)).item<int64_t>();
    // Σ w log w with 0 log 0 = 0 (a weight can underflow to zero at large β).
    // Rounding can leave −1e-16 for a one-hot w; the entropy is ≥ 0.
    const double entropy =
        std::max(0.0, -hg::sum(w * hg::log(hg::clamp(w, 1e-300, std::nullopt))).item<double>());
    counts.x.push_back(log10_beta), counts.y.push_back(static_cast<double>(count));
    entropies.x.push_back(log10_beta), entropies.y.push_back(entropy);
    const char* kind = count == n ? "global average" : count == 1 ? "single pattern" : "metastable";
    global += count == n, single += count == 1, metastable += count > 1 && count < n;
    fmt::print("  β = {:10.4f}  patterns > 0.01: {:2d}  entropy {:.3f}  residual {:.1e}  {}\n", beta, count,
               entropy, residual, kind);
  }
  claims.check(worst_residual <= 1e-8, fmt::format("every ξ* is a fixed point: ‖T(ξ*) − ξ*‖∞ ≤ 1e-8 (worst {:.1e})",
                                                   worst_residual));
  claims.check(counts.y.front() == n && counts.y.back() == 1,
               "the smallest β averages all patterns, the largest retrieves a single one");
  claims.check(global > 0 && metastable > 0 && single > 0,
               fmt::format("all three kinds occur: {} global-average, {} metastable, {} single-pattern β values",
                           global, metastable, single));
  plot(flags, 3,
       {hg::train::Panel{"patterns with weight > 0.01 at ξ*", {counts}, "log10 β"},
        hg::train::Panel{"entropy of softmax(β Xᵀξ*)", {entropies}, "log10 β"}},
       "Fixed points: global average → metastable → single pattern");
}

// ---- 4. Retrieval error vs N: ξ_μ + noise → T(ξ) for T = dense, sparsemax, polynomial ------------------------------

/// Section 4's stored patterns: the first `n` of a fixed sequence of unit vectors — Gaussian directions in ℝᵈ, or
/// MNIST test images (normalised as torchvision, flattened to 784 values) in a seeded random order. Real images are
/// far more alike than random directions (overlaps around 0.3 rather than 0), so retrieval fails at smaller N.
class PatternSource {
 public:
  PatternSource(const Flags& flags, hg::Generator& gen) : gen_(gen), dim_(flags.dim) {
    if (flags.patterns != "mnist") return;
    const hg::data::MnistSplit test = hg::data::load_mnist(
        flags.data_dir / "mnist", /*train=*/false,
        hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
    images_ = test.images.reshape({test.images.size(0), -1}).to(hg::kFloat64);
    dim_ = images_.size(1);
    order_.resize(static_cast<size_t>(images_.size(0)));
    std::iota(order_.begin(), order_.end(), int64_t{0});
    std::shuffle(order_.begin(), order_.end(), std::mt19937_64(flags.seed));
  }
  int64_t dim() const { return dim_; }
  std::string describe() const {
    return images_.defined() ? std::string("MNIST test images as unit vectors, d = 784")
                             : fmt::format("unit patterns in d = {}", dim_);
  }
  /// [n, dim], every row of unit length.
  Tensor take(int64_t n) {
    const Tensor raw = images_.defined()
                           ? hg::index_select(images_, 0, hg::from_vector(std::vector<int64_t>(
                                                                 order_.begin(), order_.begin() + n), {n}))
                           : hg::randn({n, dim_}, kF64, &gen_);
    return raw / hg::norm(raw, 2.0, {-1}, true);
  }

 private:
  hg::Generator& gen_;
  int64_t dim_;
  Tensor images_;               ///< MNIST [10000, 784] float64, or undefined
  std::vector<int64_t> order_;  ///< a seeded permutation of the images
};

void retrieval_capacity(const Flags& flags, hg::Generator& gen, Claims& claims) {
  PatternSource source(flags, gen);
  fmt::print("\n4. Retrieval error vs number of stored patterns ({}, one update)\n", source.describe());
  // Unit-norm patterns keep the overlaps in [−1, 1], so one β (and the polynomial's unnormalised s^10) fits all N.
  // The polynomial's output is not normalised either (its length drifts with the overlaps), so the error compares
  // directions: ‖T(ξ)/‖T(ξ)‖ − ξ_μ‖, 0 for a perfect retrieval, √2 for an orthogonal one.
  const double beta = 8.0, noise = 0.5;
  struct Kind {
    std::string name;
    nn::SeparationOptions separation;
    double beta;
    hg::train::Series series;
  };
  std::vector<Kind> kinds = {
      {"softmax", nn::SeparationOptions(nn::SeparationKind::Softmax), beta, {}},
      {"sparsemax", nn::SeparationOptions(nn::SeparationKind::Sparsemax), beta, {}},
      {"polynomial (n = 10)", nn::SeparationOptions(nn::SeparationKind::Polynomial).degree(10), 1.0, {}},
  };
  fmt::print("  {:>5}", "N");
  for (const Kind& kind : kinds) fmt::print("  {:>20}", kind.name);
  fmt::print("   (mean ‖T(ξ)/‖T(ξ)‖ − ξ_μ‖ over {} queries ξ = ξ_μ + noise of norm {}, β = {})\n", flags.queries, noise,
             beta);
  // Sparsemax's exact retrieval (α > 1): p = e_μ exactly when z_μ − z_ν ≥ 1 for every ν ≠ μ, z = β Xᵀξ.
  int64_t exact_queries = 0, all_queries = 0;
  double worst_exact = 0.0, smallest_softmax = INFINITY;
  for (int64_t n = 4; n <= 256; n *= 2) {
    const Tensor stored = source.take(n);
    // Queries: the stored patterns in turn (repeated when N < queries) plus noise of norm `noise`.
    const Tensor targets = hg::repeat(stored, {(flags.queries + n - 1) / n, 1}).narrow(0, 0, flags.queries);
    const Tensor direction = hg::randn({flags.queries, source.dim()}, kF64, &gen);
    const Tensor noisy = targets + noise * direction / hg::norm(direction, 2.0, {-1}, true);
    fmt::print("  {:5d}", n);
    for (Kind& kind : kinds) {
      const Tensor out = nn::retrieve(stored, noisy, kind.beta, 1, kind.separation);
      const Tensor unit = out / hg::norm(out, 2.0, {-1}, true);
      const Tensor errors = hg::norm(unit - targets, 2.0, {-1});  // [queries]
      const double error = hg::mean(errors).item<double>();
      if (kind.separation.kind() == nn::SeparationKind::Softmax) {
        smallest_softmax = std::min(smallest_softmax, hg::min(errors).item<double>());
      } else if (kind.separation.kind() == nn::SeparationKind::Sparsemax) {
        // Query q targets pattern q mod N (see `targets`); its margin is z_target − max over the other patterns.
        const Tensor z = hg::matmul(noisy, stored.transpose(0, 1)) * kind.beta;  // [queries, N]
        std::vector<double> one_hot(static_cast<size_t>(flags.queries * n), 0.0);
        for (int64_t q = 0; q < flags.queries; ++q) one_hot[static_cast<size_t>(q * n + q % n)] = 1.0;
        const Tensor is_target = hg::gt(hg::from_vector(one_hot, {flags.queries, n}), 0.5);
        const Tensor margin = hg::sum(hg::where(is_target, z, 0.0), {-1}) -
                              hg::amax(hg::masked_fill(z, is_target, -INFINITY), {-1});
        const Tensor separated = hg::ge(margin, 1.0);
        exact_queries += hg::sum(separated).item<int64_t>();
        all_queries += flags.queries;
        worst_exact = std::max(worst_exact, max_of(hg::where(separated, errors, 0.0)));
      }
      kind.series.x.push_back(std::log2(static_cast<double>(n)));
      kind.series.y.push_back(error);
      fmt::print("  {:20.2e}", error);
    }
    fmt::print("\n");
  }
  for (Kind& kind : kinds) kind.series.name = kind.name;
  for (const Kind* kind : {&kinds[0], &kinds[2]}) {
    claims.check(kind->series.y.back() > kind->series.y.front(),
                 fmt::format("{}: more stored patterns, larger error ({:.2e} at N = 4 → {:.2e} at N = 256)",
                             kind->name, kind->series.y.front(), kind->series.y.back()));
  }
  fmt::print("  sparsemax: {} of {} queries had a score margin β(s_μ − max_ν≠μ s_ν) ≥ 1\n", exact_queries,
             all_queries);
  claims.check(exact_queries > 0 && worst_exact <= 1e-12,
               fmt::format("sparsemax retrieves exactly whenever the margin is ≥ 1 (worst error {:.1e})",
                           worst_exact));
  claims.check(smallest_softmax > 0.0,
               fmt::format("softmax never does: its error is positive for every query (smallest {:.1e})",
                           smallest_softmax));
  plot(flags, 4, {hg::train::Panel{"mean retrieval error", {kinds[0].series, kinds[1].series, kinds[2].series},
                                   "log2 N (stored patterns)"}},
       "Retrieval error vs number of stored patterns");
}

// ---- 5. LwPF: f_μ = D′(h_μ) e^{D(h_μ)} / Σ_ν e^{D(h_ν)} sums to Σ_{h>a} eʰ / (Σ_{h>a} eʰ + n_forgotten eᵇ) ----------
void forgetting_sums(const Flags& flags, hg::Generator& gen, Claims& claims) {
  fmt::print("\n5. LwPF: partial forgetting makes the weights of a query sum to less than one\n");
  const int64_t l = 12, s = 10;
  const Tensor scores = 2.0 * hg::randn({l, s}, kF64, &gen);  // memory-neuron pre-activations h (β included)
  const std::vector<double> h = to_host(scores);

  hg::train::Panel panel{"Σ_μ f_μ per query", {}, "query"};
  double worst = 0.0, largest_sum = 0.0, largest_forgetting_sum = 0.0;
  struct Unit {
    std::string name;
    nn::ForgettingOptions options;
  };
  const std::vector<Unit> units = {
      {"ReLU (a = b = 0)", nn::ForgettingOptions(nn::ForgettingKind::ReLU)},
      {"PFU (a = b = global lower median)", nn::ForgettingOptions(nn::ForgettingKind::PFU)},
  };
  for (const Unit& unit : units) {
    nn::Separation separation(nn::SeparationOptions().forgetting(unit.options));
    separation->eval();  // no threshold noise: the formula below sees the same a
    const nn::Association a = separation->weights(scores);
    const std::vector<double> sums = to_host(hg::sum(a.weights * a.keep, {-1}));

    // The threshold a and the value b of a forgotten memory, as B.1/B.2 define them.
    double threshold = 0.0;
    if (unit.options.kind() == nn::ForgettingKind::PFU) {
      std::vector<double> sorted = h;
      std::sort(sorted.begin(), sorted.end());
      threshold = sorted[(sorted.size() - 1) / 2];  // the lower median of every element
    }
    hg::train::Series measured{unit.name, {}, {}}, formula{unit.name + ": formula", {}, {}, true};
    for (int64_t i = 0; i < l; ++i) {
      double kept = 0.0;
      int64_t forgotten = 0;
      for (int64_t j = 0; j < s; ++j) {
        const double x = h[static_cast<size_t>(i * s + j)];
        if (x > threshold) kept += std::exp(x); else ++forgotten;
      }
      const double expected = kept / (kept + static_cast<double>(forgotten) * std::exp(threshold));
      worst = std::max(worst, std::abs(sums[static_cast<size_t>(i)] - expected));
      largest_sum = std::max(largest_sum, sums[static_cast<size_t>(i)]);
      if (forgotten > 0) largest_forgetting_sum = std::max(largest_forgetting_sum, sums[static_cast<size_t>(i)]);
      measured.x.push_back(static_cast<double>(i)), measured.y.push_back(sums[static_cast<size_t>(i)]);
      formula.x.push_back(static_cast<double>(i)), formula.y.push_back(expected);
    }
    fmt::print("  {:<36} sums: {:.4f} … {:.4f}\n", unit.name,
               *std::min_element(measured.y.begin(), measured.y.end()),
               *std::max_element(measured.y.begin(), measured.y.end()));
    panel.series.push_back(std::move(measured));
    panel.series.push_back(std::move(formula));
  }
  fmt::print("  max |Σ_μ f_μ − formula| = {:.3e}\n", worst);
  claims.check(worst <= 1e-12, "Σ_μ f_μ = Σ_{h>a} eʰ / (Σ_{h>a} eʰ + n_forgotten·eᵇ) for every query (to 1e-12)");
  claims.check(largest_sum <= 1.0 + 1e-12, fmt::format("every query's weights sum to at most one (largest {:.4f})",
                                                      largest_sum));
  claims.check(largest_forgetting_sum < 1.0,
               fmt::format("a query that forgets anything has weights summing to less than one (largest {:.4f})",
                           largest_forgetting_sum));
  plot(flags, 5, {panel}, "LwPF: weight sums vs the formula of the forgetting Lagrangian");
}

// ---- 6. U-Hop Stage I: W ← W − γ ∇_W L_Φ(Ξ), L_Φ = log mean_{μ<ν} exp(−2‖φ̂_μ − φ̂_ν‖²) -----------------------
void stage_one(const Flags& flags, hg::Generator& gen, Claims& claims) {
  fmt::print("\n6. U-Hop Stage I: the separation loss of the memories falls\n");
  // Correlated memories (one shared direction plus a little noise) are badly separated to start with.
  const int64_t m = 24;
  const Tensor shared = hg::randn({1, flags.dim}, kF64, &gen);
  const Tensor memories = shared + 0.5 * hg::randn({m, flags.dim}, kF64, &gen);
  hg::manual_seed(flags.seed);  // Φ's initialisation W ~ N(0, 1) draws from the default generator
  nn::KernelMap phi(nn::KernelMapOptions(flags.dim).feature_dim(2 * flags.dim));
  phi->to(hg::kFloat64);
  const double identity_loss = nn::separation_loss(memories).item<double>();
  const nn::StageIResult result = nn::train_kernel(phi, memories, nn::StageIOptions().steps(50));

  hg::train::Series series{"L_Φ(Ξ)", {}, result.losses};
  for (size_t i = 0; i < series.y.size(); ++i) series.x.push_back(static_cast<double>(i));
  fmt::print("  L(Ξ) without Φ {:.4f};  L_Φ(Ξ): {:.4f} at step 0 → {:.4f} at step {} → {:.4f} after the row "
             "normalisation\n",
             identity_loss, result.losses.front(), result.losses.back(), result.losses.size() - 1,
             result.final_loss);
  claims.check(result.losses.back() < result.losses.front(), "the gradient steps lower the separation loss");
  claims.check(result.losses.size() >= 2 &&
                   *std::max_element(result.losses.begin() + 1, result.losses.end()) < result.losses.front(),
               "every step ends below the starting loss");
  // Algorithm 1's row normalisation is not a descent step: it changes K(u, v) = uᵀWᵀWv, and it can give back part
  // of the gain (so no claim is made about the loss after it).
  fmt::print("  after the row normalisation of W: {:+.4f} relative to the last step\n",
             result.final_loss - result.losses.back());
  plot(flags, 6, {hg::train::Panel{"separation loss L_Φ(Ξ)", {series}, "Stage I step"}},
       "U-Hop Stage I: the memories spread out in feature space");
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"From the Lagrangian to attention: the numbers behind docs/lagrangian.md"};
  app.option_defaults()->always_capture_default();
  app.add_option("--out-dir", flags.out_dir, "SVG plots go here");
  app.add_option("--seed", flags.seed, "random patterns");
  app.add_option("--section", flags.section, "run one section (1-6); 0 runs all")->check(CLI::Range(0, 6));
  app.add_option("--dim", flags.dim, "d, the width of the patterns (≥ 2)")
      ->check(CLI::Range(int64_t{2}, int64_t{4096}));
  app.add_option("--queries", flags.queries, "state patterns per measurement (≥ 1)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--threads", flags.threads, "CPU (OpenMP) threads (≥ 1)")->check(CLI::Range(1, 1024));
  app.add_option("--patterns", flags.patterns, "section 4's stored patterns: random or mnist (from --data-dir)")
      ->check(CLI::IsMember({"random", "mnist"}));
  flags.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  app.add_option("--data-dir", flags.data_dir, "the datasets folder (holding mnist/)");
  CLI11_PARSE(app, argc, argv);
  omp_set_num_threads(flags.threads);

  using Section = void (*)(const Flags&, hg::Generator&, Claims&);
  const Section sections[] = {energy_descent, attention_equivalence, fixed_points,
                              retrieval_capacity, forgetting_sums, stage_one};
  int failures = 0;
  try {
    fs::create_directories(flags.out_dir);
    Claims claims(flags.out_dir / "lagrangian_results.csv");
    for (int i = 1; i <= 6; ++i) {
      if (flags.section != 0 && flags.section != i) continue;
      claims.begin_section(i);
      hg::Generator gen(flags.seed * 1000 + static_cast<uint64_t>(i));  // each section reproducible on its own
      sections[i - 1](flags, gen, claims);
    }
    failures = claims.failures();
  } catch (const std::exception& e) {  // an unwritable --out-dir, say: a message, not an abort
    fmt::print(stderr, "lagrangian: {}\n", e.what());
    return 2;
  }
  fmt::print("\n{}\n", failures == 0 ? "All claims hold." : fmt::format("{} claim(s) FAILED.", failures));
  return failures == 0 ? 0 : 1;
}
