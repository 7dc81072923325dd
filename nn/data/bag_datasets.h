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
#include <atomic>
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
  /// Repertoire `index` with only the sequences at `sequences` (ascending positions in it), encoded as a
  /// repertoire of its own: its longest chosen sequence, normalised over the chosen ones.
  Bag get(int64_t index, const std::vector<int64_t>& sequences) const;
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

/// DeepRC's training-time sub-sampling (spec E.3; its training loader's sample_n_sequences): each fetch of
/// repertoire i draws `sequences` positions uniformly with replacement and keeps the distinct ones in the
/// repertoire's order — at most `sequences` of them, and (almost surely) all when the repertoire is several times
/// smaller. The draw is a function of (seed, epoch, i) alone (Philox counters), not of the worker, the thread
/// count or the fetches before it, so a run resumed at an epoch draws what the uninterrupted run drew. Training
/// calls set_epoch before each epoch; evaluation reads the RepertoireDataset itself, every sequence.
///
///   auto sampled = std::make_shared<hg::data::SubsampledRepertoireDataset>(repertoires, 10000, seed);
///   auto loader = hg::data::make_data_loader(hg::data::make_subset(sampled, train), options, repertoires->collate());
///   for (int epoch = 1; ...) { sampled->set_epoch(epoch); for (auto& batch : loader) ... }
class SubsampledRepertoireDataset : public Dataset<Bag> {
 public:
  SubsampledRepertoireDataset(std::shared_ptr<const RepertoireDataset> base, int64_t sequences, uint64_t seed);
  int64_t size() const override { return base_->size(); }
  Bag get(int64_t index) const override;
  void set_epoch(int64_t epoch) { epoch_.store(epoch, std::memory_order_relaxed); }
  /// The positions repertoire `index` gets at `epoch` (ascending, distinct).
  std::vector<int64_t> draw(int64_t index, int64_t epoch) const;

 private:
  std::shared_ptr<const RepertoireDataset> base_;
  int64_t sequences_;
  uint64_t seed_;
  std::atomic<int64_t> epoch_{0};
};

/// A minibatch of repertoires as DeepRC forms it (spec E.2): every bag's sequences padded with zeros to the
/// minibatch's longest sequence L_max, and — with `normalize`, for bags encoded with normalisation — each bag
/// divided again by its standard deviation over the padded [n_seq, L_max, 23] tensor, which makes it the bag
/// encoded at L_max and normalised there (padding included, as DeepRC's std). Then collate_bags (bags of
/// different sizes pad and mask). Bags already L_max long are left as they are.
BagBatch collate_repertoires(const std::vector<Bag>& bags, bool normalize = true);

}  // namespace hg::data
