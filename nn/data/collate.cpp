// Collate functions (see collate.h).
#include <hopgrad/nn/data/collate.h>

#include <algorithm>
#include <string_view>

#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

// Example i's tensor agrees with example 0's in shape, dtype and device (`what` names the field for errors).
void check_same_layout(const std::vector<Tensor>& tensors, std::string_view what) {
  HG_CHECK(!tensors.empty(), "collate_stack: no examples to collate");
  const Tensor& first = tensors[0];
  HG_CHECK(first.defined(), "collate_stack: example 0 has an undefined {}", what);
  for (size_t i = 1; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    HG_CHECK(t.defined(), "collate_stack: example {} has an undefined {}", i, what);
    HG_CHECK(t.sizes() == first.sizes() && t.dtype() == first.dtype() && t.device() == first.device(),
             "collate_stack: example {} has {} {} but example 0 has {}; stacking needs equal shapes, dtypes and "
             "devices (use collate_bags for bags of different sizes)",
             i, what, t.desc(), first.desc());
  }
}

}  // namespace

Tensor collate_stack(const std::vector<Tensor>& examples) {
  check_same_layout(examples, "tensor");
  return stack(examples, 0);
}

Example collate_stack(const std::vector<Example>& examples) {
  HG_CHECK(!examples.empty(), "collate_stack: no examples to collate");
  Tensors inputs, targets;
  inputs.reserve(examples.size());
  const bool labelled = examples[0].target.defined();
  for (size_t i = 0; i < examples.size(); ++i) {
    HG_CHECK(examples[i].target.defined() == labelled, "collate_stack: example {} {} a target but example 0 {}", i,
             labelled ? "lacks" : "has", labelled ? "has one" : "does not");
    inputs.push_back(examples[i].input);
    if (labelled) targets.push_back(examples[i].target);
  }
  check_same_layout(inputs, "input");
  Example batch{stack(inputs, 0), Tensor()};
  if (labelled) {
    check_same_layout(targets, "target");
    batch.target = stack(targets, 0);
  }
  return batch;
}

Tensors collate_stack(const std::vector<Tensors>& examples) {
  HG_CHECK(!examples.empty(), "collate_stack: no examples to collate");
  const size_t fields = examples[0].size();
  Tensors out;
  out.reserve(fields);
  for (size_t i = 1; i < examples.size(); ++i) {
    HG_CHECK(examples[i].size() == fields, "collate_stack: example {} has {} tensors but example 0 has {}", i,
             examples[i].size(), fields);
  }
  std::vector<Tensor> column(examples.size());
  for (size_t k = 0; k < fields; ++k) {
    for (size_t i = 0; i < examples.size(); ++i) column[i] = examples[i][k];
    check_same_layout(column, fmt::format("tensor {}", k));
    out.push_back(stack(column, 0));
  }
  return out;
}

// instances[b, j] = bag_b[j] for j < n_b, padding_value after ;  padding_mask[b, j] = (j ≥ n_b)
BagBatch collate_bags(const std::vector<Bag>& bags, double padding_value) {
  HG_CHECK(!bags.empty(), "collate_bags: no bags to collate");
  const Tensor& first = bags[0].instances;
  HG_CHECK(first.defined(), "collate_bags: bag 0 has undefined instances");
  HG_CHECK(first.dim() >= 1, "collate_bags: bag 0 has 0-dim instances; a bag is [n, ...] with one row per instance");
  const std::vector<int64_t> feature_shape(first.sizes().begin() + 1, first.sizes().end());
  const bool has_labels = bags[0].label.defined();
  const bool has_instance_labels = bags[0].instance_labels.defined();
  int64_t max_n = 0;
  std::vector<int64_t> sizes;
  sizes.reserve(bags.size());
  for (size_t b = 0; b < bags.size(); ++b) {
    const Bag& bag = bags[b];
    const Tensor& x = bag.instances;
    HG_CHECK(x.defined(), "collate_bags: bag {} has undefined instances", b);
    HG_CHECK(x.dim() == first.dim() && std::equal(feature_shape.begin(), feature_shape.end(), x.sizes().begin() + 1),
             "collate_bags: bag {} has instances of shape {} but bag 0 has {}; the instance shape (all dims after the "
             "first) must match",
             b, x.sizes(), first.sizes());
    HG_CHECK(x.dtype() == first.dtype(), "collate_bags: bag {} has instances {} but bag 0 has {}; dtypes must match",
             b, x.desc(), first.desc());
    HG_CHECK(x.device() == first.device(),
             "collate_bags: bag {} has instances {} but bag 0 has {}; all bags must be on one device", b, x.desc(),
             first.desc());
    HG_CHECK(bag.label.defined() == has_labels, "collate_bags: bag {} {} a label but bag 0 {}", b,
             has_labels ? "lacks" : "has", has_labels ? "has one" : "does not");
    HG_CHECK(bag.instance_labels.defined() == has_instance_labels,
             "collate_bags: bag {} {} instance labels but bag 0 {}", b, has_instance_labels ? "lacks" : "has",
             has_instance_labels ? "has them" : "does not");
    if (has_instance_labels) {
      HG_CHECK(bag.instance_labels.dim() == 1 && bag.instance_labels.size(0) == x.size(0),
               "collate_bags: bag {} has {} instances but instance labels of shape {}; expected [{}]", b, x.size(0),
               bag.instance_labels.sizes(), x.size(0));
    }
    sizes.push_back(x.size(0));
    max_n = std::max(max_n, x.size(0));
  }

  // Each bag padded after its last instance: pad() lists (before, after) pairs from the last dim, so the trailing
  // feature dims get (0, 0) and dim 0 gets (0, max_n − n_b).
  const auto padded = [max_n](const Tensor& x, double value) {
    std::vector<int64_t> amounts(2 * static_cast<size_t>(x.dim()), 0);
    amounts.back() = max_n - x.size(0);
    return pad(x, amounts, value);
  };
  Tensors instances, labels, instance_labels;
  std::vector<bool> mask(bags.size() * static_cast<size_t>(max_n));
  for (size_t b = 0; b < bags.size(); ++b) {
    instances.push_back(padded(bags[b].instances, padding_value));
    if (has_labels) labels.push_back(bags[b].label);
    if (has_instance_labels) instance_labels.push_back(padded(bags[b].instance_labels, 0.0));
    for (int64_t j = sizes[b]; j < max_n; ++j) mask[b * static_cast<size_t>(max_n) + static_cast<size_t>(j)] = true;
  }
  const auto batch_size = static_cast<int64_t>(bags.size());
  BagBatch batch;
  batch.instances = stack(instances, 0);
  batch.padding_mask = from_vector(mask, {batch_size, max_n}).to(first.device());
  batch.sizes = from_vector(sizes, {batch_size}).to(first.device());
  if (has_labels) {
    for (size_t b = 1; b < labels.size(); ++b) {
      HG_CHECK(labels[b].sizes() == labels[0].sizes() && labels[b].dtype() == labels[0].dtype(),
               "collate_bags: bag {} has label {} but bag 0 has {}; labels must have one shape and dtype", b,
               labels[b].desc(), labels[0].desc());
    }
    batch.labels = stack(labels, 0);
  }
  if (has_instance_labels) batch.instance_labels = stack(instance_labels, 0);
  return batch;
}

}  // namespace hg::data
