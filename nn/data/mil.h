#pragma once
// The classic multiple-instance-learning benchmarks of Andrews et al. 2002 (Elephant, Fox, Tiger from Corel;
// Musk1/Musk2 from UCI), as distributed in their MATLAB files: `bag_ids` (1 × N, bag of each instance),
// `labels` (1 × N, ±1 per instance, sparse) and `features` (N × D, sparse CSC).
//
//   auto elephant = hg::data::load_mil(data_dir / "mil", "elephant");
//   elephant.num_bags();        // 200
//   hg::Tensor x = elephant.bag(0);  // float32 [n_0, 230]: the instances of the first bag
//   elephant.bag_labels;        // int64 [200], 1 = positive
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/matlab.h>

namespace hg::data {

struct MilOptions {
  DType dtype_ = kFloat32;  ///< dtype of `features`
  MilOptions& dtype(DType d) { dtype_ = d; return *this; }
};

/// Bags of instances. Instances of a bag are adjacent rows of `features`, bags in the file's order.
struct MilDataset {
  std::string name;
  Tensor features;                   ///< [N, D] every instance, bag after bag
  Tensor instance_labels;            ///< int64 [N]: 1 where the file's label is positive, else 0
  Tensor bag_labels;                 ///< int64 [B]: max of the bag's instance labels (the MIL assumption)
  Tensor bag_ids;                    ///< int64 [B]: the file's id of each bag
  std::vector<int64_t> bag_offsets;  ///< B + 1 entries: bag b is rows [bag_offsets[b], bag_offsets[b + 1])

  int64_t num_bags() const { return static_cast<int64_t>(bag_offsets.size()) - 1; }
  int64_t num_instances() const { return features.size(0); }
  int64_t num_features() const { return features.size(1); }
  int64_t num_positive_bags() const;
  int64_t bag_size(int64_t b) const;
  /// The instances of bag b: a [bag_size(b), D] view of `features`.
  Tensor bag(int64_t b) const;
};

/// Builds the dataset from a parsed MAT-file holding `bag_ids`, `labels` and `features`. Checks that the sizes
/// agree, that bag ids are positive integers whose instances are adjacent, and that labels are −1, 0 or +1.
MilDataset mil_from_mat(const MatFile& mat, const MilOptions& options = {});
/// Reads one MIL benchmark .mat file.
MilDataset read_mil_mat(const std::filesystem::path& path, const MilOptions& options = {});
/// One of the benchmarks by name ("elephant", "fox", "tiger", "musk1", "musk2") from `dir`, which holds the
/// original file names (elephant_100x100_matlab.mat, musk1norm_matlab.mat, …).
MilDataset load_mil(const std::filesystem::path& dir, std::string_view name, const MilOptions& options = {});

}  // namespace hg::data
