#pragma once
// Dataset splits: random splits, stratified k-fold, and repeated nested cross-validation (the MIL protocol of
// Ramsauer et al.: outer folds for testing, inner folds of each outer training part for choosing
// hyper-parameters, everything repeated with different seeds).
//
//   auto folds = hg::data::stratified_k_fold(bag_labels, 5, /*seed=*/1111);
//   auto train = hg::data::make_subset(bags, folds[0].train);
//   auto test = hg::data::make_subset(bags, folds[0].test);
//
//   for (const auto& split : hg::data::repeated_nested_cv(bag_labels, hg::data::NestedCVOptions().outer_folds(10)))
//     ... split.inner[j].train / split.inner[j].test (validation) choose the config; split.train / split.test score it
//
// All indices are positions in the original dataset, sorted ascending. Seeds go through hg::data::Random.
#include <cstdint>
#include <memory>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

/// One split of 0..N-1: disjoint train and test indices that together cover every index.
struct Fold {
  std::vector<int64_t> train;
  std::vector<int64_t> test;
};

/// k folds whose test parts partition 0..N-1 and keep the class proportions: within every fold, each class has
/// ⌊n_c/k⌋ or ⌈n_c/k⌉ members, and fold sizes differ by at most one (as sklearn's StratifiedKFold). With `shuffle`,
/// each class's members are dealt out in an order drawn from Random({seed, class}); without, in index order.
/// `labels` are class ids (any integers). Needs 2 ≤ k ≤ N, and k ≤ the size of the largest class.
std::vector<Fold> stratified_k_fold(const std::vector<int64_t>& labels, int64_t k, uint64_t seed = 0,
                                    bool shuffle = true);
/// The same for a 1-D tensor of labels (integer, bool or integral-valued floating point, e.g. ±1 or 0/1).
std::vector<Fold> stratified_k_fold(const Tensor& labels, int64_t k, uint64_t seed = 0, bool shuffle = true);

struct NestedCVOptions {
  int64_t outer_folds_ = 10;  ///< Ramsauer et al. F.2: 10-fold outer CV…
  int64_t inner_folds_ = 5;   ///< …with inner folds on each outer training part for model selection…
  int64_t repetitions_ = 5;   ///< …repeated 5 times with different splits
  uint64_t seed_ = 0;
  NestedCVOptions& outer_folds(int64_t v) { outer_folds_ = v; return *this; }
  NestedCVOptions& inner_folds(int64_t v) { inner_folds_ = v; return *this; }
  NestedCVOptions& repetitions(int64_t v) { repetitions_ = v; return *this; }
  NestedCVOptions& seed(uint64_t v) { seed_ = v; return *this; }
};

/// One outer fold of one repetition.
struct NestedFold {
  int64_t repetition = 0;
  int64_t outer_fold = 0;
  std::vector<int64_t> train;  ///< the outer training part (union of inner[j].train and inner[j].test, for any j)
  std::vector<int64_t> test;   ///< held out until the configuration is chosen
  std::vector<Fold> inner;     ///< stratified folds of `train`: inner[j].test is the validation part
};

/// repetitions × outer_folds nested folds, repetition-major. Repetition r splits with
/// stratified_k_fold(labels, outer_folds, seed = Random({seed, r})'s first draw); the inner folds of outer fold f
/// use seed Random({seed, r, f})'s first draw. The NonparametricHopfield protocol (C.5) is outer_folds 5,
/// inner_folds 5 using only inner[0] (an 80/20 train/validation split), repetitions 1.
std::vector<NestedFold> repeated_nested_cv(const std::vector<int64_t>& labels, const NestedCVOptions& options = {});
std::vector<NestedFold> repeated_nested_cv(const Tensor& labels, const NestedCVOptions& options = {});

/// Class ids from a 1-D label tensor (see stratified_k_fold); throws for non-integral values.
std::vector<int64_t> class_labels(const Tensor& labels, const char* op);

/// A random partition of 0..N-1 into parts of the given sizes (they must sum to N), from Random(seed)
/// (torch.utils.data.random_split with lengths). Each part's indices keep the permutation's order.
std::vector<std::vector<int64_t>> random_split_indices(int64_t dataset_size, const std::vector<int64_t>& lengths,
                                                       uint64_t seed);
/// Subsets of `dataset` from random_split_indices.
template <typename D>
std::vector<std::shared_ptr<Subset<typename D::ExampleType>>> random_split(std::shared_ptr<D> dataset,
                                                                           const std::vector<int64_t>& lengths,
                                                                           uint64_t seed) {
  HG_CHECK(dataset != nullptr, "random_split: the dataset is null");
  std::vector<std::shared_ptr<Subset<typename D::ExampleType>>> parts;
  for (auto& indices : random_split_indices(dataset->size(), lengths, seed)) {
    parts.push_back(make_subset(dataset, std::move(indices)));
  }
  return parts;
}

}  // namespace hg::data
