// Synthetic dataset generators: BitPatternSet (spec G.1), MNIST bags in Ilse's and the paired form (F.1, C.5),
// and simulated repertoires with implanted motifs (E). Each is checked for its invariants and statistics, for
// same seed → same data and different seed → different data, and for its errors.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>  // getpid

#include <hopgrad/hopgrad.h>
#include <hopgrad/nn/data/bit_pattern.h>
#include <hopgrad/nn/data/dataloader.h>
#include <hopgrad/nn/data/deeprc.h>
#include <hopgrad/nn/data/mnist.h>
#include <hopgrad/nn/data/mnist_bags.h>
#include <hopgrad/nn/data/simulated_repertoires.h>

namespace fs = std::filesystem;
using namespace hg::data;

namespace {

// The shared data folder: $HOPGRAD_DATA_DIR, else <source>/../shared/data when it exists.
std::optional<fs::path> data_dir() {
  if (const char* env = std::getenv("HOPGRAD_DATA_DIR"); env && *env) {
    if (fs::is_directory(env)) return fs::path(env);
    return std::nullopt;
  }
  const fs::path fallback = fs::path(HG_SOURCE_DIR) / ".." / "shared" / "data";
  if (fs::is_directory(fallback)) return fallback;
  return std::nullopt;
}

// Rows of a [R, D] 0/1 tensor as strings of '0'/'1'.
std::vector<std::string> rows(const hg::Tensor& t) {
  const int64_t d = t.size(-1);
  const auto v = t.to(hg::kFloat32).contiguous().to_vector<float>();
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); i += static_cast<size_t>(d)) {
    std::string r;
    for (int64_t j = 0; j < d; ++j) r += v[i + static_cast<size_t>(j)] == 1.0f ? '1' : '0';
    out.push_back(r);
  }
  return out;
}

// Images whose pixels encode their own index (pixel = index / 1000), and labels index mod 10: a bag's instances
// tell which images were drawn.
struct NumberedImages {
  hg::Tensor images, labels;
  explicit NumberedImages(int64_t n) {
    std::vector<float> pixels;
    std::vector<int64_t> digits;
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0; k < 4; ++k) pixels.push_back(static_cast<float>(i) / 1000.0f);
      digits.push_back(i % 10);
    }
    images = hg::from_vector(pixels, {n, 1, 2, 2});
    labels = hg::from_vector(digits, {n});
  }
  // The image index of each instance of a bag.
  static std::vector<int64_t> indices(const Bag& bag) {
    std::vector<int64_t> out;
    const auto v = bag.instances.contiguous().to_vector<float>();
    for (size_t i = 0; i < v.size(); i += 4) out.push_back(std::lround(v[i] * 1000.0f));
    return out;
  }
};

}  // namespace

// ================================================================================================
// BitPatternSet
// ================================================================================================

TEST_CASE("data BitPatternSet: the invariants of spec G.1") {
  const auto options = BitPatternOptions(200, 16, 8).num_signals_per_bag(2).num_bits(8);
  BitPatternSet set(options);
  CHECK(set.size() == 200);
  CHECK(set.bags().sizes() == hg::Shape{200, 16, 8});
  CHECK(set.num_targets_high() == 100);
  CHECK(set.num_targets_low() == 100);
  const auto targets = set.targets().to_vector<float>();
  for (int64_t b = 0; b < 200; ++b) CHECK(targets[static_cast<size_t>(b)] == (b < 100 ? 1.0f : 0.0f));

  // Signals: distinct, non-zero, sorted (torch.unique's order).
  const auto signals = rows(set.signals());
  REQUIRE(signals.size() == 8);
  CHECK(std::is_sorted(signals.begin(), signals.end()));
  CHECK(std::set<std::string>(signals.begin(), signals.end()).size() == 8);
  for (const auto& s : signals) CHECK(s != "00000000");
  const std::set<std::string> signal_set(signals.begin(), signals.end());

  // Negatives hold no signal and no all-zero instance; positives hold exactly num_signals_per_bag signals and
  // no all-zero instance.
  std::map<std::string, int> signal_use;
  int64_t ones = 0, bits = 0;
  for (int64_t b = 0; b < 200; ++b) {
    const Example e = set.get(b);
    CHECK(e.input.sizes() == hg::Shape{16, 8});
    int64_t carrying = 0;
    for (const auto& instance : rows(e.input)) {
      CHECK(instance != "00000000");
      if (signal_set.contains(instance)) {
        ++carrying;
        ++signal_use[instance];
      }
      ones += std::count(instance.begin(), instance.end(), '1');
      bits += 8;
    }
    CHECK(carrying == (b < 100 ? 2 : 0));
    CHECK(e.target.item<float>() == (b < 100 ? 1.0f : 0.0f));
  }
  // Statistics: signals drawn uniformly (200 implants over 8 signals), background bits fair.
  CHECK(signal_use.size() == 8);
  for (const auto& [s, count] : signal_use) CHECK((count > 5 && count < 50));
  CHECK(std::abs(static_cast<double>(ones) / static_cast<double>(bits) - 0.5) < 0.02);

  // Same seeds, same data; a new data seed changes the bags but not the signals; a new signal seed the signals.
  BitPatternSet again(options);
  CHECK(hg::max_abs_diff(again.bags(), set.bags()) == 0.0);
  BitPatternSet other_data(BitPatternOptions(options).seed_data(45));
  CHECK(hg::max_abs_diff(other_data.signals(), set.signals()) == 0.0);
  CHECK(hg::max_abs_diff(other_data.bags(), set.bags()) > 0.0);
  BitPatternSet other_signals(BitPatternOptions(options).seed_signals(42));
  CHECK(rows(other_signals.signals()) != signals);

  // The hflayers demo's configuration (G.2): 2048 bags of 16 instances, float64 on request.
  BitPatternSet demo(BitPatternOptions(2048, 16, 8).dtype(hg::kFloat64));
  CHECK(demo.bags().dtype() == hg::kFloat64);
  CHECK(demo.targets().sum().item<double>() == 1024.0);
  // ⌈num_bags · fraction⌉ positives, at least one: 10 · 0.25 → 3; 3 · 0.1 → 1.
  CHECK(BitPatternSet(BitPatternOptions(10, 4, 2).fraction_targets(0.25).num_bits(4)).num_targets_high() == 3);
  CHECK(BitPatternSet(BitPatternOptions(3, 4, 2).fraction_targets(0.1).num_bits(4)).num_targets_high() == 1);
  // The tightest alphabet: 2 bits, 2 signals of the 3 non-zero patterns; every background instance is the third.
  BitPatternSet tight(BitPatternOptions(4, 5, 2).num_bits(2));
  const auto tight_signals = rows(tight.signals());
  for (int64_t b = 2; b < 4; ++b) {
    for (const auto& r : rows(tight.get(b).input)) {
      CHECK(std::find(tight_signals.begin(), tight_signals.end(), r) == tight_signals.end());
    }
  }
}

TEST_CASE("data BitPatternSet: option errors as the reference's asserts") {
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(0, 4, 2)), doctest::Contains("num_bags must be positive, got 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(4, 4, 3).num_bits(2)),
                       doctest::Contains("num_signals (3) must be smaller than 2^num_bits − 1 = 3"), hg::Error);
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(4, 4, 2).num_signals_per_bag(5)),
                       doctest::Contains("num_signals_per_bag must be in [0, num_instances = 4], got 5"), hg::Error);
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(4, 4, 2).fraction_targets(1.0)),
                       doctest::Contains("fraction_targets must be in the open interval (0, 1), got 1"), hg::Error);
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(4, 4, 2).dtype(hg::kInt64)),
                       doctest::Contains("dtype must be float32 or float64"), hg::Error);
  // Sizes whose product wraps around int64 (2^21 · 2^21 · 2^22 = 2^64 → 0: an empty buffer, then a segfault).
  CHECK_THROWS_WITH_AS(BitPatternSet(BitPatternOptions(1 << 21, 1 << 21, 2).num_bits(1 << 22)),
                       doctest::Contains("is too large; expected at most 2^40 bits"), hg::Error);
}

// ================================================================================================
// MNIST bags
// ================================================================================================

TEST_CASE("data mnist_bags (Ilse et al.): bag lengths, sampling with replacement, labels, seeded") {
  NumberedImages data(500);  // digit 9 is every tenth image: p = 0.1
  const auto options = MnistBagsOptions().num_bags(2000).seed(3);
  const auto bags = mnist_bags(data.images, data.labels, options);
  REQUIRE(bags.size() == 2000);
  double length_sum = 0.0, expected_positive = 0.0;
  int64_t positives = 0, repeated = 0;
  std::map<int64_t, int64_t> lengths;
  for (const Bag& bag : bags) {
    const auto idx = NumberedImages::indices(bag);
    const auto n = static_cast<int64_t>(idx.size());
    CHECK(n >= 1);
    CHECK(bag.instances.sizes() == hg::Shape{n, 1, 2, 2});
    ++lengths[n];
    length_sum += static_cast<double>(n);
    const auto instance_labels = bag.instance_labels.to_vector<float>();
    bool any = false;
    for (int64_t j = 0; j < n; ++j) {
      const bool is_nine = idx[static_cast<size_t>(j)] % 10 == 9;
      CHECK(instance_labels[static_cast<size_t>(j)] == (is_nine ? 1.0f : 0.0f));
      any = any || is_nine;
    }
    CHECK(bag.label.item<float>() == (any ? 1.0f : 0.0f));
    positives += any;
    expected_positive += 1.0 - std::pow(0.9, static_cast<double>(n));
    repeated += static_cast<int64_t>(std::set<int64_t>(idx.begin(), idx.end()).size()) < n;
  }
  // Lengths: trunc(N(10, 2²)) has mean ≈ 9.5 (truncation toward zero), spread over about 4..16.
  CHECK(length_sum / 2000.0 == doctest::Approx(9.5).epsilon(0.03));
  CHECK(lengths.begin()->first >= 1);
  CHECK(lengths.rbegin()->first <= 20);
  // The positive rate matches E[1 − 0.9^n] given the drawn lengths (≈ 0.63), within 3 standard errors.
  CHECK(std::abs(static_cast<double>(positives) - expected_positive) < 3.0 * std::sqrt(2000 * 0.25));
  CHECK(repeated > 0);  // with replacement: ~9 % of bags of 10 from 500 images repeat one

  // Short bags are clamped to one instance.
  for (const Bag& bag : mnist_bags(data.images, data.labels, MnistBagsOptions().mean_bag_length(-3).num_bags(5))) {
    CHECK(bag.instances.size(0) == 1);
  }
  const auto again = mnist_bags(data.images, data.labels, options);
  const auto other = mnist_bags(data.images, data.labels, MnistBagsOptions(options).seed(4));
  CHECK(NumberedImages::indices(again[1999]) == NumberedImages::indices(bags[1999]));
  CHECK(NumberedImages::indices(other[0]) != NumberedImages::indices(bags[0]));

  CHECK_THROWS_WITH_AS(mnist_bags(data.images, data.labels.narrow(0, 0, 10)),
                       doctest::Contains("mnist_bags: 500 images but 10 labels"), hg::Error);
  CHECK_THROWS_WITH_AS(mnist_bags(data.images, data.labels.to(hg::kFloat32)),
                       doctest::Contains("labels must be int64 [N], got float32[500] cpu"), hg::Error);
  CHECK_THROWS_WITH_AS(mnist_bags(data.images, data.labels, MnistBagsOptions().std_bag_length(-1)),
                       doctest::Contains("finite, non-negative std"), hg::Error);
  CHECK_THROWS_WITH_AS(mnist_bags(data.images, data.labels, MnistBagsOptions().mean_bag_length(1e30)),
                       doctest::Contains("mnist_bags: bag 0 drew a length of 1e+30"), hg::Error);
}

TEST_CASE("data paired_mnist_bags (NonparametricHopfield): fixed sizes, balanced pairs, quirks as options") {
  NumberedImages data(300);
  const auto options = PairedMnistBagsOptions().bag_size(6).positives_per_bag(2).num_pairs(40).seed(5);
  const auto bags = paired_mnist_bags(data.images, data.labels, options);
  REQUIRE(bags.size() == 80);
  int64_t targets_at_front = 0;
  for (size_t b = 0; b < bags.size(); ++b) {
    const auto idx = NumberedImages::indices(bags[b]);
    REQUIRE(idx.size() == 6);
    CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() == 6);  // without replacement within a bag
    const auto nines = std::count_if(idx.begin(), idx.end(), [](int64_t i) { return i % 10 == 9; });
    const bool positive = b % 2 == 1;  // negative first, then positive, per pair
    CHECK(nines == (positive ? 2 : 0));
    CHECK(bags[b].label.item<float>() == (positive ? 1.0f : 0.0f));
    CHECK(bags[b].instance_labels.sum().item<float>() == static_cast<float>(nines));
    if (positive) targets_at_front += idx[0] % 10 == 9 && idx[1] % 10 == 9;
  }
  CHECK(targets_at_front < 20);  // shuffled: both targets in front for 1/15 of the bags

  // The reference's quirks: labels inverted, targets first.
  const auto reference = paired_mnist_bags(data.images, data.labels,
                                           PairedMnistBagsOptions(options).inverted_labels(true).targets_first(true));
  for (size_t b = 0; b < reference.size(); ++b) {
    const bool positive_content = b % 2 == 1;
    CHECK(reference[b].label.item<float>() == (positive_content ? 0.0f : 1.0f));
    if (positive_content) {
      const auto idx = NumberedImages::indices(reference[b]);
      CHECK(idx[0] % 10 == 9);
      CHECK(idx[1] % 10 == 9);
    }
  }
  const auto other = paired_mnist_bags(data.images, data.labels, PairedMnistBagsOptions(options).seed(6));
  CHECK(NumberedImages::indices(other[3]) != NumberedImages::indices(bags[3]));
  CHECK(NumberedImages::indices(paired_mnist_bags(data.images, data.labels, options)[3]) ==
        NumberedImages::indices(bags[3]));

  CHECK_THROWS_WITH_AS(paired_mnist_bags(data.images.narrow(0, 0, 15), data.labels.narrow(0, 0, 15),
                                         PairedMnistBagsOptions().positives_per_bag(2)),
                       doctest::Contains("1 images of digit 9 but each positive bag needs 2"), hg::Error);
  CHECK_THROWS_WITH_AS(paired_mnist_bags(data.images, data.labels, PairedMnistBagsOptions().bag_size(3).positives_per_bag(4)),
                       doctest::Contains("positives_per_bag must be in [1, bag_size = 3], got 4"), hg::Error);
}

TEST_CASE("data MNIST bags from the real MNIST test set (shared data)") {
  const auto root = data_dir();
  if (!root) {
    MESSAGE("skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding mnist/)");
    return;
  }
  const auto test = load_mnist(*root / "mnist", /*train=*/false, MnistOptions().mean(kMnistMean).std(kMnistStd));
  // Ilse: 1009 nines in 10000 images (p ≈ 0.1009); over 1000 bags the positive rate is ≈ 0.62.
  const auto bags = mnist_bags(test.images, test.labels, MnistBagsOptions().num_bags(1000).seed(1));
  double positives = 0.0, expected = 0.0;
  for (const Bag& bag : bags) {
    CHECK(bag.instances.sizes()[1] == 1);
    positives += bag.label.item<float>();
    expected += 1.0 - std::pow(1.0 - 0.1009, static_cast<double>(bag.instances.size(0)));
  }
  CHECK(std::abs(positives - expected) < 3.0 * std::sqrt(1000 * 0.25));
  // Paired (mnist_mil_main.py defaults: bag_size 10, one target per positive bag), through the bag collate.
  auto paired = std::make_shared<BagDataset>(
      paired_mnist_bags(test.images, test.labels, PairedMnistBagsOptions().num_pairs(8)));
  auto loader = make_data_loader(paired, DataLoaderOptions().batch_size(16));
  for (BagBatch& batch : loader) {
    CHECK(batch.instances.sizes() == hg::Shape{16, 10, 1, 28, 28});
    CHECK(batch.labels.sum().item<float>() == 8.0f);
    CHECK(batch.instance_labels.sum().item<float>() == 8.0f);
    CHECK_FALSE(batch.padding_mask.to(hg::kFloat32).sum().item<float>() > 0.0f);
  }
}

// ================================================================================================
// Simulated repertoires
// ================================================================================================

TEST_CASE("data simulate_repertoires: exact witness rate, motif-free negatives, DeepRC's structures") {
  const auto options = SimulatedRepertoireOptions()
                           .num_repertoires(20)
                           .sequences_per_repertoire(300)
                           .witness_rate(0.02)
                           .num_motifs(3)
                           .sequence_length(12, 16)
                           .seed(8);
  const auto sim = simulate_repertoires(options);
  REQUIRE(sim.motifs.size() == 3);
  CHECK(std::set<std::string>(sim.motifs.begin(), sim.motifs.end()).size() == 3);
  const DeepRCDataset& data = sim.dataset;
  REQUIRE(data.size() == 20);
  CHECK(data.metadata.columns == std::vector<std::string>{"ID", "status"});
  const hg::Tensor y = data.binary_targets("status", "True");
  CHECK(y.sum().item<float>() == 10.0f);  // round(0.5 · 20)
  const auto labels = y.to_vector<float>();
  std::map<std::string, int64_t> motif_use;
  for (int64_t r = 0; r < 20; ++r) {
    const Repertoire& rep = data.repertoires[static_cast<size_t>(r)];
    CHECK(rep.id == fmt::format("rep_{:05d}.tsv", r));
    REQUIRE(rep.size() == 300);
    CHECK(rep.counts == std::vector<int64_t>(300, 1));
    std::vector<int64_t> carrying;
    for (int64_t s = 0; s < 300; ++s) {
      const std::string& seq = rep.sequences[static_cast<size_t>(s)];
      CHECK((seq.size() >= 12 && seq.size() <= 16));
      CHECK(seq.find_first_not_of(kAminoAcids) == std::string::npos);
      bool has = false;
      for (const auto& m : sim.motifs) {
        if (seq.find(m) != std::string::npos) {
          has = true;
          ++motif_use[m];
        }
      }
      if (has) carrying.push_back(s);
    }
    // Exactly round(0.02 · 300) = 6 witnesses in a positive repertoire, and they are the recorded ones.
    CHECK(carrying == sim.witnesses[static_cast<size_t>(r)]);
    CHECK(static_cast<int64_t>(carrying.size()) == (labels[static_cast<size_t>(r)] == 1.0f ? 6 : 0));
  }
  CHECK(motif_use.size() == 3);  // 60 implants spread over the 3 motifs

  // DeepRC's encoding works on it unchanged.
  const hg::Tensor x = encode_repertoire(data.repertoires[0], RepertoireEncodingOptions().max_length(16));
  CHECK(x.sizes() == hg::Shape{300, 16, kDeepRCFeatures});

  // Same seed, same data; another seed, other data.
  const auto again = simulate_repertoires(options);
  CHECK(again.motifs == sim.motifs);
  CHECK(again.dataset.repertoires[7].sequences == data.repertoires[7].sequences);
  const auto other = simulate_repertoires(SimulatedRepertoireOptions(options).seed(9));
  CHECK(other.dataset.repertoires[7].sequences != data.repertoires[7].sequences);

  // A tiny witness rate still implants one sequence per positive repertoire.
  const auto rare = simulate_repertoires(
      SimulatedRepertoireOptions().num_repertoires(4).sequences_per_repertoire(50).witness_rate(0.001));
  for (size_t r = 0; r < 4; ++r) {
    CHECK(rare.witnesses[r].size() == (rare.dataset.metadata.rows[r][1] == "True" ? 1u : 0u));
  }
}

TEST_CASE("data write_deeprc: simulated repertoires read back by load_deeprc unchanged") {
  const fs::path dir = fs::temp_directory_path() / ("hopgrad_sim_rep_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const auto sim = simulate_repertoires(SimulatedRepertoireOptions().num_repertoires(6).sequences_per_repertoire(25));
  write_deeprc(sim.dataset, dir);
  const DeepRCDataset loaded = load_deeprc(dir);
  REQUIRE(loaded.size() == 6);
  for (size_t r = 0; r < 6; ++r) {
    CHECK(loaded.repertoires[r].id == sim.dataset.repertoires[r].id);
    CHECK(loaded.repertoires[r].sequences == sim.dataset.repertoires[r].sequences);
    CHECK(loaded.repertoires[r].counts == sim.dataset.repertoires[r].counts);
  }
  CHECK(hg::max_abs_diff(loaded.binary_targets("status", "True"), sim.dataset.binary_targets("status", "True")) == 0.0);
  fs::remove_all(dir);
}

TEST_CASE("data simulate_repertoires: option errors") {
  CHECK_THROWS_WITH_AS(simulate_repertoires(SimulatedRepertoireOptions().witness_rate(0.0)),
                       doctest::Contains("witness_rate must be in (0, 1], got 0"), hg::Error);
  CHECK_THROWS_WITH_AS(simulate_repertoires(SimulatedRepertoireOptions().sequence_length(3, 8)),
                       doctest::Contains("sequence lengths [3, 8] must satisfy motif_length (4) ≤ min ≤ max"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(simulate_repertoires(SimulatedRepertoireOptions().motif_length(1).num_motifs(2)),
                       doctest::Contains("2 motifs of length 1 would occur by chance"), hg::Error);
  CHECK_THROWS_WITH_AS(simulate_repertoires(SimulatedRepertoireOptions().fraction_positive(1.5)),
                       doctest::Contains("fraction_positive must be in [0, 1], got 1.5"), hg::Error);
}
