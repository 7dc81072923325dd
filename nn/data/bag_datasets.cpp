// Real MIL datasets as bags (see bag_datasets.h).
#include <hopgrad/nn/data/bag_datasets.h>

#include <algorithm>

#include <hopgrad/core/philox.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

std::vector<Bag> mil_bags(const MilDataset& mil) {
  const Tensor bag_labels = mil.bag_labels.to(kFloat32);
  const Tensor instance_labels = mil.instance_labels.to(kFloat32);
  std::vector<Bag> bags;
  bags.reserve(static_cast<size_t>(mil.num_bags()));
  for (int64_t b = 0; b < mil.num_bags(); ++b) {
    const int64_t begin = mil.bag_offsets[static_cast<size_t>(b)];
    bags.push_back(Bag{mil.bag(b), bag_labels.select(0, b), instance_labels.narrow(0, begin, mil.bag_size(b))});
  }
  return bags;
}

RepertoireDataset::RepertoireDataset(std::shared_ptr<const DeepRCDataset> data, Tensor targets,
                                     RepertoireEncodingOptions encoding)
    : data_(std::move(data)), targets_(std::move(targets)), encoding_(encoding) {
  HG_CHECK(data_ != nullptr, "RepertoireDataset: the dataset is null");
  HG_CHECK(targets_.defined() && targets_.dim() >= 1 && targets_.size(0) == data_->size(),
           "RepertoireDataset: expected one target per repertoire ([{}, ...]), got {}", data_->size(),
           targets_.defined() ? targets_.desc() : std::string("an undefined tensor"));
  int64_t longest = 0;
  for (const Repertoire& r : data_->repertoires) longest = std::max(longest, r.max_length());
  HG_CHECK(encoding_.max_length_ == 0 || encoding_.max_length_ >= longest,
           "RepertoireDataset: max_length {} is shorter than the dataset's longest sequence ({})", encoding_.max_length_,
           longest);
}

std::function<BagBatch(const std::vector<Bag>&)> RepertoireDataset::collate() const {
  return [normalize = encoding_.normalize_](const std::vector<Bag>& bags) { return collate_repertoires(bags, normalize); };
}

BagBatch collate_repertoires(const std::vector<Bag>& bags, bool normalize) {
  int64_t longest = 0;
  for (size_t b = 0; b < bags.size(); ++b) {
    const Tensor& x = bags[b].instances;
    HG_CHECK(x.defined() && x.dim() == 3 && x.size(2) == kDeepRCFeatures,
             "collate_repertoires: bag {} has instances {}; expected encoded sequences [n_seq, L, {}]", b,
             x.defined() ? x.desc() : std::string("undefined"), kDeepRCFeatures);
    longest = std::max(longest, x.size(1));
  }
  std::vector<Bag> padded = bags;
  for (Bag& bag : padded) {
    const int64_t length = bag.instances.size(1);
    if (length == longest) continue;
    bag.instances = pad(bag.instances, {0, 0, 0, longest - length}).contiguous();
    if (normalize) divide_by_std(bag.instances);
  }
  return collate_bags(padded);
}

Bag RepertoireDataset::get(int64_t index) const {
  index = wrap_index(index, size(), "RepertoireDataset");
  return Bag{encode_repertoire(data_->repertoires[static_cast<size_t>(index)], encoding_), targets_.select(0, index),
             Tensor()};
}

Bag RepertoireDataset::get(int64_t index, const std::vector<int64_t>& sequences) const {
  index = wrap_index(index, size(), "RepertoireDataset");
  const Repertoire& full = data_->repertoires[static_cast<size_t>(index)];
  Repertoire chosen;
  chosen.id = full.id;
  chosen.sequences.reserve(sequences.size());
  chosen.counts.reserve(sequences.size());
  for (size_t j = 0; j < sequences.size(); ++j) {
    const int64_t s = sequences[j];
    HG_CHECK(s >= 0 && s < full.size() && (j == 0 || s > sequences[j - 1]),
             "RepertoireDataset: sequence positions must be ascending and in [0, {}) for repertoire {} ('{}'), got {} "
             "at entry {}",
             full.size(), index, full.id, s, j);
    chosen.sequences.push_back(full.sequences[static_cast<size_t>(s)]);
    chosen.counts.push_back(full.counts[static_cast<size_t>(s)]);
  }
  return Bag{encode_repertoire(chosen, encoding_), targets_.select(0, index), Tensor()};
}

SubsampledRepertoireDataset::SubsampledRepertoireDataset(std::shared_ptr<const RepertoireDataset> base,
                                                         int64_t sequences, uint64_t seed)
    : base_(std::move(base)), sequences_(sequences), seed_(seed) {
  HG_CHECK(base_ != nullptr, "SubsampledRepertoireDataset: the dataset is null");
  HG_CHECK(sequences > 0, "SubsampledRepertoireDataset: the number of draws must be positive, got {}", sequences);
}

std::vector<int64_t> SubsampledRepertoireDataset::draw(int64_t index, int64_t epoch) const {
  index = wrap_index(index, size(), "SubsampledRepertoireDataset");
  HG_CHECK(epoch >= 0, "SubsampledRepertoireDataset: epoch must be ≥ 0, got {}", epoch);
  const int64_t n = base_->data().repertoires[static_cast<size_t>(index)].size();
  if (n == 0) return {};
  // Counters (epoch · R + index) · draws + j under a key of its own: no two (epoch, repertoire, draw) share one.
  const uint64_t key = seed_ ^ 0x5eb5a3b1c0de5eedull;
  const uint64_t first = (static_cast<uint64_t>(epoch) * static_cast<uint64_t>(size()) + static_cast<uint64_t>(index)) *
                         static_cast<uint64_t>(sequences_);
  std::vector<char> taken(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < sequences_; ++j)
    taken[philox::uniform_index(philox::philox4x32(key, first + static_cast<uint64_t>(j)), static_cast<uint64_t>(n))] = 1;
  std::vector<int64_t> positions;
  for (int64_t s = 0; s < n; ++s)
    if (taken[static_cast<size_t>(s)]) positions.push_back(s);
  return positions;
}

Bag SubsampledRepertoireDataset::get(int64_t index) const {
  return base_->get(index, draw(index, epoch_.load(std::memory_order_relaxed)));
}

}  // namespace hg::data
