// Dataset splits (see splits.h).
#include <hopgrad/nn/data/splits.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <hopgrad/nn/data/random.h>

namespace hg::data {

namespace {

// The indices not in `test` (sorted), for a partition of 0..n-1.
std::vector<int64_t> complement(const std::vector<int64_t>& test, int64_t n) {
  std::vector<bool> in_test(static_cast<size_t>(n), false);
  for (int64_t i : test) in_test[static_cast<size_t>(i)] = true;
  std::vector<int64_t> rest;
  rest.reserve(static_cast<size_t>(n) - test.size());
  for (int64_t i = 0; i < n; ++i) {
    if (!in_test[static_cast<size_t>(i)]) rest.push_back(i);
  }
  return rest;
}

}  // namespace

std::vector<int64_t> class_labels(const Tensor& labels, const char* op) {
  HG_CHECK(labels.defined(), "{}: the labels tensor is undefined", op);
  HG_CHECK(labels.dim() == 1, "{}: expects 1-D labels, got {}", op, labels.desc());
  if (labels.dtype() == kInt64) return labels.to_vector<int64_t>();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(labels.numel()));
  const std::vector<double> values = labels.to(kFloat64).to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i) {
    HG_CHECK(std::isfinite(values[i]) && values[i] == std::round(values[i]),
             "{}: label {} is {}, expected integral class ids (labels {})", op, i, values[i], labels.desc());
    out.push_back(static_cast<int64_t>(values[i]));
  }
  return out;
}

// Every class's members in (shuffled) order, the classes in ascending id, dealt round-robin: position p of that
// concatenation goes to fold p mod k. A class of n_c members thus lands ⌊n_c/k⌋ or ⌈n_c/k⌉ times in each fold,
// and consecutive positions keep the fold sizes within one of each other.
std::vector<Fold> stratified_k_fold(const std::vector<int64_t>& labels, int64_t k, uint64_t seed, bool shuffle) {
  const auto n = static_cast<int64_t>(labels.size());
  HG_CHECK(k >= 2, "stratified_k_fold: needs at least 2 folds, got k = {}", k);
  HG_CHECK(k <= n, "stratified_k_fold: cannot make {} folds from {} examples", k, n);
  std::map<int64_t, std::vector<int64_t>> members;
  for (int64_t i = 0; i < n; ++i) members[labels[static_cast<size_t>(i)]].push_back(i);
  int64_t largest = 0;
  for (const auto& [label, idx] : members) largest = std::max(largest, static_cast<int64_t>(idx.size()));
  HG_CHECK(k <= largest, "stratified_k_fold: k = {} folds but the largest of the {} classes has only {} members", k,
           members.size(), largest);
  std::vector<Fold> folds(static_cast<size_t>(k));
  int64_t position = 0;
  for (auto& [label, idx] : members) {
    if (shuffle) Random({seed, static_cast<uint64_t>(label)}).shuffle(idx);
    for (int64_t i : idx) folds[static_cast<size_t>(position++ % k)].test.push_back(i);
  }
  for (Fold& fold : folds) {
    std::sort(fold.test.begin(), fold.test.end());
    fold.train = complement(fold.test, n);
  }
  return folds;
}

std::vector<Fold> stratified_k_fold(const Tensor& labels, int64_t k, uint64_t seed, bool shuffle) {
  return stratified_k_fold(class_labels(labels, "stratified_k_fold"), k, seed, shuffle);
}

std::vector<NestedFold> repeated_nested_cv(const std::vector<int64_t>& labels, const NestedCVOptions& options) {
  HG_CHECK(options.repetitions_ >= 1, "repeated_nested_cv: repetitions must be at least 1, got {}",
           options.repetitions_);
  std::vector<NestedFold> out;
  for (int64_t r = 0; r < options.repetitions_; ++r) {
    const uint64_t outer_seed = Random({options.seed_, static_cast<uint64_t>(r)}).bits();
    std::vector<Fold> outer = stratified_k_fold(labels, options.outer_folds_, outer_seed);
    for (int64_t f = 0; f < options.outer_folds_; ++f) {
      NestedFold nested;
      nested.repetition = r;
      nested.outer_fold = f;
      nested.train = std::move(outer[static_cast<size_t>(f)].train);
      nested.test = std::move(outer[static_cast<size_t>(f)].test);
      std::vector<int64_t> train_labels;
      train_labels.reserve(nested.train.size());
      for (int64_t i : nested.train) train_labels.push_back(labels[static_cast<size_t>(i)]);
      const uint64_t inner_seed =
          Random({options.seed_, static_cast<uint64_t>(r), static_cast<uint64_t>(f)}).bits();
      // Inner folds index the training part; map them back to dataset positions (still sorted, since
      // nested.train is).
      for (Fold& inner : stratified_k_fold(train_labels, options.inner_folds_, inner_seed)) {
        for (int64_t& i : inner.train) i = nested.train[static_cast<size_t>(i)];
        for (int64_t& i : inner.test) i = nested.train[static_cast<size_t>(i)];
        nested.inner.push_back(std::move(inner));
      }
      out.push_back(std::move(nested));
    }
  }
  return out;
}

std::vector<NestedFold> repeated_nested_cv(const Tensor& labels, const NestedCVOptions& options) {
  return repeated_nested_cv(class_labels(labels, "repeated_nested_cv"), options);
}

std::vector<std::vector<int64_t>> random_split_indices(int64_t dataset_size, const std::vector<int64_t>& lengths,
                                                       uint64_t seed) {
  int64_t total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    HG_CHECK(lengths[i] >= 0, "random_split: length {} (part {}) is negative", lengths[i], i);
    total += lengths[i];
  }
  HG_CHECK(total == dataset_size, "random_split: the lengths sum to {} but the dataset has {} examples", total,
           dataset_size);
  const std::vector<int64_t> order = Random(seed).permutation(dataset_size);
  std::vector<std::vector<int64_t>> parts;
  auto it = order.begin();
  for (int64_t length : lengths) {
    parts.emplace_back(it, it + length);
    it += length;
  }
  return parts;
}

}  // namespace hg::data
