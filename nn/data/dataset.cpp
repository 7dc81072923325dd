// Datasets (see dataset.h).
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

int64_t wrap_index(int64_t index, int64_t size, std::string_view what) {
  HG_CHECK(index >= -size && index < size, "{}: index {} is out of range for {} examples (valid: {} to {})", what,
           index, size, -size, size - 1);
  return index < 0 ? index + size : index;
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  HG_CHECK(inputs_.defined(), "TensorDataset: the inputs tensor is undefined");
  HG_CHECK(inputs_.dim() >= 1, "TensorDataset: inputs must have a leading example dimension, got a 0-dim tensor");
  if (targets_.defined()) {
    HG_CHECK(targets_.dim() >= 1, "TensorDataset: targets must have a leading example dimension, got a 0-dim tensor");
    HG_CHECK(targets_.size(0) == inputs_.size(0),
             "TensorDataset: inputs {} and targets {} disagree in the number of examples (dim 0: {} vs {})",
             inputs_.desc(), targets_.desc(), inputs_.size(0), targets_.size(0));
  }
}

Example TensorDataset::get(int64_t index) const {
  index = wrap_index(index, size(), "TensorDataset");
  return {inputs_.select(0, index), targets_.defined() ? targets_.select(0, index) : Tensor()};
}

}  // namespace hg::data
