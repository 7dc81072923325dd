#pragma once
// Datasets: indexable collections of examples (size() and get(i)), the unit a DataLoader batches.
//
//   auto mnist = std::make_shared<hg::data::TensorDataset>(images, labels);  // images [N, 1, 28, 28], labels [N]
//   hg::data::Example e = mnist->get(0);                                      // {images[0], labels[0]}
//   auto first_half = hg::data::make_subset(mnist, indices);                  // a view: what splits produce
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include <hopgrad/core/error.h>
#include <hopgrad/core/tensor.h>

namespace hg::data {

/// An input and its target: the example type of supervised datasets. A batch of examples is again an Example
/// (inputs stacked to [B, ...], targets to [B, ...]). `target` is undefined for unlabelled data.
struct Example {
  Tensor input;
  Tensor target;
};

/// One multiple-instance bag: n instances of any shape [n, ...], the bag's label, and instance labels when known.
struct Bag {
  Tensor instances;        ///< [n, ...]
  Tensor label;            ///< the bag label (0-dim for binary MIL)
  Tensor instance_labels;  ///< [n], or undefined (most MIL data has no instance labels)
};

/// The dataset interface. A DataLoader calls get() from its worker threads while the training thread runs, so
/// get() must not mutate shared state without synchronisation (it is const for that reason).
template <typename ExampleT> class Dataset {
 public:
  using ExampleType = ExampleT;
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// Example `index` for 0 ≤ index < size(). The datasets here also take −size() ≤ index < 0, counting from the
  /// end as Python indexing does.
  virtual ExampleT get(int64_t index) const = 0;
};

/// `index` made non-negative against `size` (Python rules); throws naming `what` when out of range.
int64_t wrap_index(int64_t index, int64_t size, std::string_view what);

/// Tensors indexed along dim 0 (torch.utils.data.TensorDataset with an input and a target): example i is
/// {inputs[i], targets[i]}, views that share the tensors' storage.
class TensorDataset : public Dataset<Example> {
 public:
  /// `inputs` [N, ...] and `targets` [N, ...] (or undefined) must agree in N.
  explicit TensorDataset(Tensor inputs, Tensor targets = Tensor());
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
};

/// Examples held in memory, e.g. the bags a generator made.
template <typename ExampleT> class VectorDataset : public Dataset<ExampleT> {
 public:
  explicit VectorDataset(std::vector<ExampleT> examples) : examples_(std::move(examples)) {}
  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  ExampleT get(int64_t index) const override { return examples_[wrap_index(index, size(), "VectorDataset")]; }
  const std::vector<ExampleT>& examples() const { return examples_; }

 private:
  std::vector<ExampleT> examples_;
};

using BagDataset = VectorDataset<Bag>;

/// The examples of `dataset` at `indices`, in that order (torch.utils.data.Subset). Indices are checked and made
/// non-negative when the subset is made.
template <typename ExampleT> class Subset : public Dataset<ExampleT> {
 public:
  Subset(std::shared_ptr<const Dataset<ExampleT>> dataset, std::vector<int64_t> indices)
      : dataset_(std::move(dataset)), indices_(std::move(indices)) {
    HG_CHECK(dataset_ != nullptr, "Subset: the dataset is null");
    const int64_t n = dataset_->size();
    for (size_t i = 0; i < indices_.size(); ++i) {
      HG_CHECK(indices_[i] >= -n && indices_[i] < n,
               "Subset: index {} (position {} of the indices) is out of range for a dataset of {} examples",
               indices_[i], i, n);
      if (indices_[i] < 0) indices_[i] += n;
    }
  }
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  ExampleT get(int64_t index) const override { return dataset_->get(indices_[wrap_index(index, size(), "Subset")]); }
  const std::vector<int64_t>& indices() const { return indices_; }
  const std::shared_ptr<const Dataset<ExampleT>>& dataset() const { return dataset_; }

 private:
  std::shared_ptr<const Dataset<ExampleT>> dataset_;
  std::vector<int64_t> indices_;
};

/// A Subset of any dataset type, its example type deduced: `auto train = make_subset(mnist, fold.train);`.
template <typename D> std::shared_ptr<Subset<typename D::ExampleType>> make_subset(std::shared_ptr<D> dataset,
                                                                                 std::vector<int64_t> indices) {
  using E = typename D::ExampleType;
  return std::make_shared<Subset<E>>(std::shared_ptr<const Dataset<E>>(std::move(dataset)), std::move(indices));
}

}  // namespace hg::data
