// Real MIL datasets as bags (see bag_datasets.h).
#include <hopgrad/nn/data/bag_datasets.h>

#include <algorithm>

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

}  // namespace hg::data
