// Simulated repertoires with implanted motifs (see simulated_repertoires.h).
#include <hopgrad/nn/data/simulated_repertoires.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include <hopgrad/nn/data/random.h>

namespace hg::data {

namespace {

std::string random_letters(Random& rng, int64_t length) {
  std::string s(static_cast<size_t>(length), 'A');
  for (char& c : s) c = kAminoAcids[rng.below(kAminoAcids.size())];
  return s;
}

bool contains_motif(const std::string& sequence, const std::vector<std::string>& motifs) {
  return std::any_of(motifs.begin(), motifs.end(),
                     [&](const std::string& m) { return sequence.find(m) != std::string::npos; });
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  HG_CHECK(out.good(), "write_deeprc: could not write {}", path.string());
}

}  // namespace

SimulatedRepertoires simulate_repertoires(const SimulatedRepertoireOptions& options) {
  const auto& o = options;
  HG_CHECK(o.num_repertoires_ >= 1, "simulate_repertoires: num_repertoires must be at least 1, got {}",
           o.num_repertoires_);
  HG_CHECK(o.sequences_per_repertoire_ >= 1, "simulate_repertoires: sequences_per_repertoire must be at least 1, got {}",
           o.sequences_per_repertoire_);
  HG_CHECK(o.fraction_positive_ >= 0.0 && o.fraction_positive_ <= 1.0,
           "simulate_repertoires: fraction_positive must be in [0, 1], got {}", o.fraction_positive_);
  HG_CHECK(o.witness_rate_ > 0.0 && o.witness_rate_ <= 1.0,
           "simulate_repertoires: witness_rate must be in (0, 1], got {}", o.witness_rate_);
  HG_CHECK(o.motif_length_ >= 1, "simulate_repertoires: motif_length must be at least 1, got {}", o.motif_length_);
  HG_CHECK(o.min_sequence_length_ >= o.motif_length_ && o.max_sequence_length_ >= o.min_sequence_length_,
           "simulate_repertoires: sequence lengths [{}, {}] must satisfy motif_length ({}) ≤ min ≤ max",
           o.min_sequence_length_, o.max_sequence_length_, o.motif_length_);
  // Background sequences that contain a motif by chance are redrawn; keep that rare so generation stays fast:
  // the expected number of chance occurrences per sequence, m·(L_max − k + 1)/20^k, must be at most 1/2
  // (4-mers: up to ~10⁴ motifs).
  HG_CHECK(o.num_motifs_ >= 1, "simulate_repertoires: num_motifs must be at least 1, got {}", o.num_motifs_);
  const double chance_hits = static_cast<double>(o.num_motifs_) *
                             static_cast<double>(o.max_sequence_length_ - o.motif_length_ + 1) /
                             std::pow(20.0, static_cast<double>(o.motif_length_));
  HG_CHECK(chance_hits <= 0.5,
           "simulate_repertoires: {} motifs of length {} would occur by chance {:.3g} times per background sequence "
           "of length {} (at most 0.5 allowed); use longer or fewer motifs",
           o.num_motifs_, o.motif_length_, chance_hits, o.max_sequence_length_);

  Random rng(o.seed_);
  SimulatedRepertoires sim;
  std::set<std::string> distinct;
  while (static_cast<int64_t>(sim.motifs.size()) < o.num_motifs_) {
    std::string motif = random_letters(rng, o.motif_length_);
    if (distinct.insert(motif).second) sim.motifs.push_back(std::move(motif));
  }

  const int64_t R = o.num_repertoires_, n = o.sequences_per_repertoire_;
  const auto num_positive = static_cast<int64_t>(std::llround(o.fraction_positive_ * static_cast<double>(R)));
  std::vector<bool> positive(static_cast<size_t>(R), false);
  for (int64_t r : rng.sample(R, num_positive)) positive[static_cast<size_t>(r)] = true;
  const int64_t num_witnesses =
      std::clamp<int64_t>(std::llround(o.witness_rate_ * static_cast<double>(n)), 1, n);

  DeepRCDataset& data = sim.dataset;
  data.metadata.source = "simulate_repertoires";
  data.metadata.columns = {"ID", "status"};
  for (int64_t r = 0; r < R; ++r) {
    Repertoire rep;
    rep.id = fmt::format("rep_{:05d}.tsv", r);
    rep.sequences.reserve(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; ++s) {
      std::string sequence;
      do {
        sequence = random_letters(rng, rng.integer(o.min_sequence_length_, o.max_sequence_length_ + 1));
      } while (contains_motif(sequence, sim.motifs));
      rep.sequences.push_back(std::move(sequence));
    }
    rep.counts.assign(static_cast<size_t>(n), 1);
    std::vector<int64_t> witnesses;
    if (positive[static_cast<size_t>(r)]) {
      witnesses = rng.sample(n, num_witnesses);
      std::sort(witnesses.begin(), witnesses.end());
      for (int64_t w : witnesses) {
        std::string& sequence = rep.sequences[static_cast<size_t>(w)];
        const std::string& motif = sim.motifs[rng.below(sim.motifs.size())];
        const int64_t at = rng.integer(0, static_cast<int64_t>(sequence.size()) - o.motif_length_ + 1);
        sequence.replace(static_cast<size_t>(at), motif.size(), motif);
      }
    }
    data.metadata.rows.push_back({rep.id, positive[static_cast<size_t>(r)] ? "True" : "False"});
    data.metadata.row_lines.push_back(r + 2);  // line 1 is the header
    data.repertoires.push_back(std::move(rep));
    sim.witnesses.push_back(std::move(witnesses));
  }
  return sim;
}

void write_deeprc(const DeepRCDataset& dataset, const std::filesystem::path& root) {
  const auto& meta = dataset.metadata;
  HG_CHECK(meta.rows.size() == dataset.repertoires.size(),
           "write_deeprc: the metadata has {} rows but the dataset {} repertoires", meta.rows.size(),
           dataset.repertoires.size());
  const int64_t id_column = meta.column_index("ID");
  std::filesystem::create_directories(root / "repertoires");
  std::string text = fmt::format("{}\n", fmt::join(meta.columns, "\t"));
  for (size_t r = 0; r < meta.rows.size(); ++r) {
    const Repertoire& rep = dataset.repertoires[r];
    HG_CHECK(meta.rows[r][static_cast<size_t>(id_column)] == rep.id,
             "write_deeprc: metadata row {} names '{}' but repertoire {} is '{}'", r,
             meta.rows[r][static_cast<size_t>(id_column)], r, rep.id);
    HG_CHECK(rep.counts.size() == rep.sequences.size(), "write_deeprc: repertoire '{}' has {} sequences but {} counts",
             rep.id, rep.sequences.size(), rep.counts.size());
    text += fmt::format("{}\n", fmt::join(meta.rows[r], "\t"));
    std::string rows = "amino_acid\ttemplates\n";
    for (size_t s = 0; s < rep.sequences.size(); ++s) rows += fmt::format("{}\t{}\n", rep.sequences[s], rep.counts[s]);
    write_text(root / "repertoires" / rep.id, rows);
  }
  write_text(root / "metadata.tsv", text);
}

}  // namespace hg::data
