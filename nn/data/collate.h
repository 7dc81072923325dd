#pragma once
// Collate functions: a list of examples → one batch.
//
//   hg::data::Example batch = hg::data::collate_stack(examples);   // inputs [B, ...], targets [B, ...]
//   hg::data::BagBatch bags = hg::data::collate_bags(bags_list);   // bags of different sizes, padded + mask
//   hopfield_pooling(bags.instances, /*key_padding_mask=*/bags.padding_mask);
#include <cstdint>
#include <vector>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

/// Stacks equal-shaped tensors along a new dim 0: [B, ...]. Errors name the first example that differs in shape,
/// dtype or device from example 0.
Tensor collate_stack(const std::vector<Tensor>& examples);
/// Inputs and targets stacked separately; targets must be defined in all examples or in none.
Example collate_stack(const std::vector<Example>& examples);
/// Position k of every list stacked: k → [B, ...]. All lists must have the same length.
Tensors collate_stack(const std::vector<Tensors>& examples);

/// Bags of different sizes, padded to the largest: the input of attention pooling over instances.
struct BagBatch {
  Tensor instances;        ///< [B, max_n, ...]: bag b's instances in rows 0..n_b-1, `padding_value` after
  Tensor padding_mask;     ///< bool [B, max_n]: true = padding (key_padding_mask of nn::MultiheadAttention)
  Tensor sizes;            ///< int64 [B]: n_b
  Tensor labels;           ///< bag labels stacked: [B, ...] (undefined when the bags have none)
  Tensor instance_labels;  ///< [B, max_n], padded with 0 (undefined when the bags have none)
};

/// Pads and stacks bags. Every bag's instances must have the same trailing shape, dtype and device (errors name
/// the bag index and both shapes); empty bags are allowed (their mask row is all true). The batch is built with
/// differentiable ops (pad, stack), on the bags' device.
BagBatch collate_bags(const std::vector<Bag>& bags, double padding_value = 0.0);

/// The collate a DataLoader uses when none is given: stacking for tensors, tensor lists and Examples, padding
/// for bags.
struct DefaultCollate {
  Tensor operator()(const std::vector<Tensor>& examples) const { return collate_stack(examples); }
  Tensors operator()(const std::vector<Tensors>& examples) const { return collate_stack(examples); }
  Example operator()(const std::vector<Example>& examples) const { return collate_stack(examples); }
  BagBatch operator()(const std::vector<Bag>& bags) const { return collate_bags(bags); }
};

}  // namespace hg::data
