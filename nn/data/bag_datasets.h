#pragma once
// The real multiple-instance datasets as bags, ready for splits, the DataLoader and collate_bags.
//
//   auto elephant = hg::data::load_mil(data_dir / "mil", "elephant");
//   auto bags = std::make_shared<hg::data::BagDataset>(hg::data::mil_bags(elephant));   // 200 bags of [n, 230]
//
//   auto rc = std::make_shared<const hg::data::DeepRCDataset>(hg::data::load_deeprc(data_dir / "deeprc_example"));
//   auto repertoires = std::make_shared<hg::data::RepertoireDataset>(rc, rc->binary_targets("binary_target_1", "+"));
//   auto loader = hg::data::make_data_loader(repertoires, hg::data::DataLoaderOptions().batch_size(4),
//                                            repertoires->collate());
//   // BagBatch: instances [4, max_n, L_max, 23], padding_mask [4, max_n], labels [4]
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/collate.h>
#include <hopgrad/nn/data/dataset.h>
#include <hopgrad/nn/data/deeprc.h>
#include <hopgrad/nn/data/mil.h>

namespace hg::data {

/// One Bag per MIL bag: instances = mil.bag(b) (a view of the features), label = bag_labels[b] as a float32
/// 0-dim tensor (1 = positive, ready for BCE-with-logits), instance labels as the file gives them, float32 [n]
/// (the Corel and Musk files repeat the bag label on every instance: they are not true instance labels).
std::vector<Bag> mil_bags(const MilDataset& mil);

/// DeepRC repertoires as bags: instances = encode_repertoire(repertoire, encoding) [n_seq, L, 23], label =
/// targets[i]. Repertoires are encoded when fetched (on the loader's workers). L is the repertoire's own longest
/// sequence — DeepRC's input for a batch of one, its evaluation — unless the encoding fixes max_length for all;
/// collate() then pads a minibatch to its longest, as DeepRC does (spec E.2).
class RepertoireDataset : public Dataset<Bag> {
 public:
  /// `targets` [R, ...] holds one label per repertoire (e.g. binary_targets(column, positive)).
  RepertoireDataset(std::shared_ptr<const DeepRCDataset> data, Tensor targets,
                    RepertoireEncodingOptions encoding = {});
  int64_t size() const override { return data_->size(); }
  Bag get(int64_t index) const override;
  const DeepRCDataset& data() const { return *data_; }
  const RepertoireEncodingOptions& encoding() const { return encoding_; }
  /// The collate for a DataLoader over these bags (or a subset of them): collate_repertoires with this encoding's
  /// normalisation.
  std::function<BagBatch(const std::vector<Bag>&)> collate() const;

 private:
  std::shared_ptr<const DeepRCDataset> data_;
  Tensor targets_;
  RepertoireEncodingOptions encoding_;
};

/// A minibatch of repertoires as DeepRC forms it (spec E.2): every bag's sequences padded with zeros to the
/// minibatch's longest sequence L_max, and — with `normalize`, for bags encoded with normalisation — each bag
/// divided again by its standard deviation over the padded [n_seq, L_max, 23] tensor, which makes it the bag
/// encoded at L_max and normalised there (padding included, as DeepRC's std). Then collate_bags (bags of
/// different sizes pad and mask). Bags already L_max long are left as they are.
BagBatch collate_repertoires(const std::vector<Bag>& bags, bool normalize = true);

}  // namespace hg::data
