#pragma once
// MNIST bags: multiple-instance data made from digit images, in the two forms the papers use. Both take the
// images and labels as tensors (e.g. from load_mnist), so they run on any image set.
//
//   auto test = hg::data::load_mnist(dir, /*train=*/false,
//                                    hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
//   auto bags = std::make_shared<hg::data::BagDataset>(
//       hg::data::mnist_bags(test.images, test.labels, hg::data::MnistBagsOptions().num_bags(50)));
//   hg::data::Bag bag = bags->get(0);  // instances [n, 1, 28, 28], label 0-dim, instance_labels [n]
//
// Randomness: hg::data::Random (std::mt19937_64) seeded with `seed`; the references use numpy's RandomState
// (Ilse) and Python's unseeded global `random` (paired form), so the draws differ but the procedures do not.
#include <cstdint>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

/// Ilse et al. 2018 (spec F.1; AttentionDeepMIL dataloader.py): bag b has
/// n_b = max(1, trunc(N(mean_bag_length, std_bag_length²))) instances drawn uniformly *with replacement* from
/// all images; bag label = 1 when any instance is `target_digit`. Instance labels (1 = target digit) are kept.
/// The positive rate is not controlled: it is E[1 − (1 − p)^n] for a target frequency p (≈ 0.63 for digit 9
/// with mean 10).
/// Quirk, documented rather than changed: the reference calls the spread `var_bag_length` but passes it to
/// RandomState.normal as the standard deviation, so it is a standard deviation here too (default 2).
struct MnistBagsOptions {
  int64_t target_digit_ = 9;
  double mean_bag_length_ = 10.0;
  double std_bag_length_ = 2.0;  ///< the reference's `var_bag_length`
  int64_t num_bags_ = 250;
  uint64_t seed_ = 1;
  MnistBagsOptions& target_digit(int64_t v) { target_digit_ = v; return *this; }
  MnistBagsOptions& mean_bag_length(double v) { mean_bag_length_ = v; return *this; }
  MnistBagsOptions& std_bag_length(double v) { std_bag_length_ = v; return *this; }
  MnistBagsOptions& num_bags(int64_t v) { num_bags_ = v; return *this; }
  MnistBagsOptions& seed(uint64_t v) { seed_ = v; return *this; }
};

/// Bags as above from `images` [N, ...] (any device) and int64 `labels` [N]. Instances are copies
/// (index_select); labels are float32 (bag: 0-dim, instances: [n]).
std::vector<Bag> mnist_bags(const Tensor& images, const Tensor& labels, const MnistBagsOptions& options = {});

/// NonparametricHopfield's paired fixed-size form (spec C.5; datasets/mnist_bags.py): for each of `num_pairs`
/// draws, two bags of exactly `bag_size` instances, appended in this order:
///  - a negative bag: bag_size non-target images;
///  - a positive bag: positives_per_bag target images + (bag_size − positives_per_bag) non-target images.
/// Within a bag, target and non-target images are each drawn without replacement (random.sample), so 2·num_pairs
/// balanced bags. Two quirks of the reference are options, off by default:
///  - inverted_labels: the reference labels the negative bag 1 and the positive bag 0 (harmless for AUC and
///    accuracy, but the opposite of the MIL convention);
///  - targets_first: the reference puts the target images first in the positive bag; by default the bag's
///    instances are shuffled so position carries no signal.
struct PairedMnistBagsOptions {
  int64_t target_digit_ = 9;
  int64_t bag_size_ = 10;
  int64_t positives_per_bag_ = 1;
  int64_t num_pairs_ = 500;  ///< the reference's `num_bag`
  uint64_t seed_ = 1111;
  bool inverted_labels_ = false;
  bool targets_first_ = false;
  PairedMnistBagsOptions& target_digit(int64_t v) { target_digit_ = v; return *this; }
  PairedMnistBagsOptions& bag_size(int64_t v) { bag_size_ = v; return *this; }
  PairedMnistBagsOptions& positives_per_bag(int64_t v) { positives_per_bag_ = v; return *this; }
  PairedMnistBagsOptions& num_pairs(int64_t v) { num_pairs_ = v; return *this; }
  PairedMnistBagsOptions& seed(uint64_t v) { seed_ = v; return *this; }
  PairedMnistBagsOptions& inverted_labels(bool v) { inverted_labels_ = v; return *this; }
  PairedMnistBagsOptions& targets_first(bool v) { targets_first_ = v; return *this; }
};

/// Paired bags as above; throws when there are fewer than positives_per_bag target images or
/// bag_size − positives_per_bag non-target images.
std::vector<Bag> paired_mnist_bags(const Tensor& images, const Tensor& labels,
                                   const PairedMnistBagsOptions& options = {});

}  // namespace hg::data
