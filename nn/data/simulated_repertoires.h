#pragma once
// Simulated immune repertoires with implanted motifs: the "implanted signals" setting of DeepRC (Widrich et al.,
// NeurIPS 2020; spec E), so DeepRC can be trained and tested without downloading anything.
//
//   auto sim = hg::data::simulate_repertoires(
//       hg::data::SimulatedRepertoireOptions().num_repertoires(200).witness_rate(0.01).num_motifs(1));
//   hg::Tensor y = sim.dataset.binary_targets("status", "True");        // as for a real DeepRC dataset
//   hg::Tensor x = hg::data::encode_repertoire(sim.dataset.repertoires[0]);   // [n_seq, L, 23]
//   hg::data::write_deeprc(sim.dataset, dir);                            // metadata.tsv + repertoires/*.tsv
//
// The generator (randomness: hg::data::Random, i.e. std::mt19937_64 seeded with `seed`):
//  - motifs: num_motifs distinct strings of motif_length letters drawn uniformly from the 20 amino acids
//    (one motif = the paper's "OM" datasets, several = "MM");
//  - every repertoire has sequences_per_repertoire sequences with lengths uniform in
//    [min_sequence_length, max_sequence_length] and letters uniform over the 20 amino acids; a background
//    sequence that happens to contain a motif is redrawn, so only implanted sequences carry one;
//  - round(fraction_positive · num_repertoires) repertoires, at random positions, are positive ("status" True);
//  - in a positive repertoire, max(1, round(witness_rate · n)) sequences chosen at random are witnesses: each gets
//    one motif, drawn uniformly, written over its letters at a uniform position. Negative repertoires have none.
//    The witness rate is thus exact, which makes it a testable property;
//  - counts (`templates`) are all 1: DeepRC ignores counts on the implanted-signal datasets (spec E.4).
// Simplification against the paper: motifs are implanted verbatim (the paper's data also has noisy and gapped
// variants of the motifs and real CMV background sequences).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <hopgrad/nn/data/deeprc.h>

namespace hg::data {

struct SimulatedRepertoireOptions {
  int64_t num_repertoires_ = 200;
  int64_t sequences_per_repertoire_ = 1000;
  double fraction_positive_ = 0.5;
  double witness_rate_ = 0.01;  ///< in (0, 1]: share of a positive repertoire's sequences that carry a motif
  int64_t num_motifs_ = 1;
  int64_t motif_length_ = 4;
  int64_t min_sequence_length_ = 10;  ///< the example dataset's CDR3 lengths are 10..19
  int64_t max_sequence_length_ = 19;
  uint64_t seed_ = 0;
  SimulatedRepertoireOptions& num_repertoires(int64_t v) { num_repertoires_ = v; return *this; }
  SimulatedRepertoireOptions& sequences_per_repertoire(int64_t v) { sequences_per_repertoire_ = v; return *this; }
  SimulatedRepertoireOptions& fraction_positive(double v) { fraction_positive_ = v; return *this; }
  SimulatedRepertoireOptions& witness_rate(double v) { witness_rate_ = v; return *this; }
  SimulatedRepertoireOptions& num_motifs(int64_t v) { num_motifs_ = v; return *this; }
  SimulatedRepertoireOptions& motif_length(int64_t v) { motif_length_ = v; return *this; }
  SimulatedRepertoireOptions& sequence_length(int64_t min, int64_t max) {
    min_sequence_length_ = min;
    max_sequence_length_ = max;
    return *this;
  }
  SimulatedRepertoireOptions& seed(uint64_t v) { seed_ = v; return *this; }
};

struct SimulatedRepertoires {
  /// What load_deeprc returns for the same data: metadata columns `ID` (rep_00000.tsv, …) and `status`
  /// ("True"/"False"), repertoires in metadata row order.
  DeepRCDataset dataset;
  std::vector<std::string> motifs;
  /// Per repertoire, the ascending indices of its witness sequences (empty for negatives): the ground truth for
  /// checking which sequences a model attends to.
  std::vector<std::vector<int64_t>> witnesses;
};

SimulatedRepertoires simulate_repertoires(const SimulatedRepertoireOptions& options = {});

/// Writes a dataset in DeepRC's text layout: `root`/metadata.tsv and one `root`/repertoires/<ID> per repertoire
/// with columns amino_acid and templates (LF line endings). load_deeprc(root) reads it back.
void write_deeprc(const DeepRCDataset& dataset, const std::filesystem::path& root);

}  // namespace hg::data
