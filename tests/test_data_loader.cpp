// Datasets, the DataLoader (order, reproducibility, drop_last, prefetch, worker errors, shutdown), collates
// (stacking, padded bags), splits (stratified k-fold, repeated nested CV, random_split), and the real MIL and
// DeepRC datasets as bags.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/nn/data/bag_datasets.h>
#include <hopgrad/nn/data/collate.h>
#include <hopgrad/nn/data/dataloader.h>
#include <hopgrad/nn/data/dataset.h>
#include <hopgrad/nn/data/simulated_repertoires.h>
#include <hopgrad/nn/data/splits.h>

#include "testing.h"

using namespace hg::data;

namespace {

// Example i is {[i, 10·i] as float32, i as int64}: a batch tells which examples it holds.
std::shared_ptr<TensorDataset> numbered(int64_t n) {
  std::vector<float> inputs;
  for (int64_t i = 0; i < n; ++i) {
    inputs.push_back(static_cast<float>(i));
    inputs.push_back(static_cast<float>(10 * i));
  }
  return std::make_shared<TensorDataset>(hg::from_vector(inputs, {n, 2}), hg::arange(0, static_cast<double>(n), 1,
                                                                                     hg::TensorOptions(hg::kInt64)));
}

// Example ids of every batch of one epoch.
template <typename Loader> std::vector<std::vector<int64_t>> epoch_ids(Loader& loader) {
  std::vector<std::vector<int64_t>> ids;
  for (auto& batch : loader) {
    REQUIRE(batch.input.size(0) == batch.target.size(0));
    ids.push_back(batch.target.template to_vector<int64_t>());
    // The inputs travelled with their targets.
    const auto inputs = batch.input.template to_vector<float>();
    for (size_t j = 0; j < ids.back().size(); ++j) CHECK(inputs[2 * j + 1] == 10.0f * static_cast<float>(ids.back()[j]));
  }
  return ids;
}

std::vector<int64_t> flatten_ids(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// A dataset that counts get() calls, can sleep in get(), and throws at one index.
class ProbeDataset : public Dataset<hg::Tensor> {
 public:
  ProbeDataset(int64_t n, int64_t throw_at = -1, std::chrono::microseconds delay = {})
      : n_(n), throw_at_(throw_at), delay_(delay) {}
  int64_t size() const override { return n_; }
  hg::Tensor get(int64_t index) const override {
    ++calls;
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (index == throw_at_) throw std::runtime_error("probe: example " + std::to_string(index) + " is broken");
    return hg::full({1}, static_cast<double>(index));
  }
  mutable std::atomic<int64_t> calls{0};

 private:
  int64_t n_, throw_at_;
  std::chrono::microseconds delay_;
};

}  // namespace

// ================================================================================================
// Datasets
// ================================================================================================

TEST_CASE("data TensorDataset and Subset: views along dim 0, Python-style negative indices, checked ranges") {
  auto ds = numbered(5);
  CHECK(ds->size() == 5);
  Example e = ds->get(3);
  CHECK(e.input.sizes() == hg::Shape{2});
  CHECK(e.input.to_vector<float>() == std::vector<float>{3, 30});
  CHECK(e.target.item<int64_t>() == 3);
  CHECK(ds->get(-1).target.item<int64_t>() == 4);
  CHECK_THROWS_WITH_AS(ds->get(5), doctest::Contains("TensorDataset: index 5 is out of range for 5 examples"),
                       hg::Error);

  auto sub = make_subset(ds, {4, -5, 2});
  CHECK(sub->size() == 3);
  CHECK(sub->indices() == std::vector<int64_t>{4, 0, 2});
  CHECK(sub->get(1).target.item<int64_t>() == 0);
  CHECK(sub->get(-1).target.item<int64_t>() == 2);
  CHECK_THROWS_WITH_AS(make_subset(ds, {1, 7}),
                       doctest::Contains("Subset: index 7 (position 1 of the indices) is out of range for a dataset of 5"),
                       hg::Error);

  CHECK_THROWS_WITH_AS(TensorDataset(hg::zeros({4, 2}), hg::zeros({3})),
                       doctest::Contains("disagree in the number of examples (dim 0: 4 vs 3)"), hg::Error);
  CHECK_THROWS_WITH_AS(TensorDataset(hg::scalar_tensor(1.0)), doctest::Contains("got a 0-dim tensor"), hg::Error);
  // Unlabelled data: targets stay undefined through the collate.
  auto unlabelled = std::make_shared<TensorDataset>(hg::zeros({3, 2}));
  auto loader = make_data_loader(unlabelled, DataLoaderOptions().batch_size(3));
  for (auto& batch : loader) {
    CHECK(batch.input.sizes() == hg::Shape{3, 2});
    CHECK_FALSE(batch.target.defined());
  }
}

// ================================================================================================
// DataLoader
// ================================================================================================

TEST_CASE("data DataLoader: sequential order, batch sizes, last partial batch, drop_last") {
  auto ds = numbered(10);
  auto loader = make_data_loader(ds, DataLoaderOptions().batch_size(4));
  CHECK(loader.size() == 3);
  const auto batches = epoch_ids(loader);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0] == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(batches[1] == std::vector<int64_t>{4, 5, 6, 7});
  CHECK(batches[2] == std::vector<int64_t>{8, 9});  // the last, partial batch

  auto dropping = make_data_loader(ds, DataLoaderOptions().batch_size(4).drop_last(true));
  CHECK(dropping.size() == 2);
  const auto kept = epoch_ids(dropping);
  REQUIRE(kept.size() == 2);
  CHECK(kept[1] == std::vector<int64_t>{4, 5, 6, 7});

  // Exact multiples: drop_last changes nothing; a batch larger than the dataset gives one batch (or none).
  CHECK(make_data_loader(numbered(8), DataLoaderOptions().batch_size(4).drop_last(true)).size() == 2);
  CHECK(make_data_loader(ds, DataLoaderOptions().batch_size(32)).size() == 1);
  CHECK(make_data_loader(ds, DataLoaderOptions().batch_size(32).drop_last(true)).size() == 0);
  auto empty_epoch = make_data_loader(ds, DataLoaderOptions().batch_size(32).drop_last(true).num_workers(2));
  CHECK(epoch_ids(empty_epoch).empty());
  // An empty dataset: zero batches, no error.
  auto none = make_data_loader(std::make_shared<TensorDataset>(hg::zeros({0, 2}), hg::zeros({0})));
  CHECK(none.size() == 0);
  CHECK(none.begin() == none.end());
  // Batch sizes near INT64_MAX: one batch ((n + b − 1) / b overflowed to 0 or a negative count).
  for (int64_t b : {INT64_MAX, INT64_MAX - 2}) {
    auto huge = make_data_loader(ds, DataLoaderOptions().batch_size(b).num_workers(1));
    CHECK(huge.size() == 1);
    CHECK(epoch_ids(huge) == std::vector<std::vector<int64_t>>{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}});
    CHECK(make_data_loader(ds, DataLoaderOptions().batch_size(b).drop_last(true)).size() == 0);
  }
}

TEST_CASE("data DataLoader: batches are made under the grad mode and thread count of the loop, with or without workers") {
  // Grad mode is thread-local and worker threads start with it on: under NoGradGuard a batch computed from a
  // tensor requiring grad must not record a graph on a worker either (it did, racing on the leaf's accumulator).
  hg::Tensor w = hg::ones({8, 3}).requires_grad_(true);
  auto ds = std::make_shared<TensorDataset>(w * 2.0, hg::zeros({8}));  // get(i) is a view: recorded, with grad on
  for (int64_t workers : {0, 1, 3}) {
    CAPTURE(workers);
    auto loader = make_data_loader(ds, DataLoaderOptions().batch_size(2).num_workers(workers));
    {
      hg::NoGradGuard no_grad;
      int64_t n = 0;
      for (auto& batch : loader) {
        CHECK_FALSE(batch.input.requires_grad());
        ++n;
      }
      CHECK(n == 4);
    }
    for (auto& batch : loader) CHECK(batch.input.requires_grad());
  }
  // The kernels' thread count is per thread too: a worker takes the consumer's (a new thread starts at OpenMP's
  // default, which oversubscribed a process that had asked for fewer).
  const int before = hg::get_num_threads();
  hg::set_num_threads(1);
  DataLoader<int> counts(4, [](std::span<const int64_t>) { return hg::get_num_threads(); },
                         DataLoaderOptions().batch_size(1).num_workers(2));
  for (int n : counts) CHECK(n == 1);
  hg::set_num_threads(before);
}

TEST_CASE("data DataLoader: shuffled orders are permutations, new each epoch, reproducible from (seed, epoch)") {
  auto ds = numbered(23);
  const auto options = DataLoaderOptions().batch_size(5).shuffle(true).seed(7);
  auto loader = make_data_loader(ds, options);
  const auto e0 = flatten_ids(epoch_ids(loader));
  const auto e1 = flatten_ids(epoch_ids(loader));
  CHECK(loader.epoch() == 2);
  std::vector<int64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(23);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);
  CHECK(e0 != all);  // P(identity) = 1/23!
  CHECK(e0 != e1);
  CHECK(e0 == loader.order(0));
  CHECK(e1 == loader.order(1));

  // A resumed run: a fresh loader with the same seed, told to start at epoch 1, sees epoch 1's order.
  auto resumed = make_data_loader(ds, options);
  resumed.set_epoch(1);
  CHECK(flatten_ids(epoch_ids(resumed)) == e1);
  // Another seed, another order.
  auto other = make_data_loader(ds, DataLoaderOptions(options).seed(8));
  CHECK(flatten_ids(epoch_ids(other)) != e0);
  // Without shuffle every epoch is 0..N-1.
  auto plain = make_data_loader(ds, DataLoaderOptions().batch_size(5));
  epoch_ids(plain);
  CHECK(flatten_ids(epoch_ids(plain)) == all);
}

TEST_CASE("data DataLoader: prefetching on worker threads gives the same batches as the synchronous loader") {
  auto ds = numbered(37);
  const auto base = DataLoaderOptions().batch_size(4).shuffle(true).seed(3);
  auto sync = make_data_loader(ds, base);
  const auto expected = epoch_ids(sync);
  for (int64_t workers : {1, 2, 5}) {
    for (int64_t prefetch : {1, 3}) {
      CAPTURE(workers);
      CAPTURE(prefetch);
      auto async = make_data_loader(ds, DataLoaderOptions(base).num_workers(workers).prefetch_factor(prefetch));
      CHECK(epoch_ids(async) == expected);
      CHECK(flatten_ids(epoch_ids(async)) == async.order(1));  // the second epoch too
    }
  }
  // With a slow dataset the workers really run ahead: they have made batches the consumer has not asked for.
  auto slow = std::make_shared<ProbeDataset>(40, -1, std::chrono::microseconds(200));
  auto loader = make_data_loader(slow, DataLoaderOptions().batch_size(2).num_workers(2).prefetch_factor(2));
  auto it = loader.begin();
  for (int wait = 0; wait < 500 && slow->calls.load() <= 2; ++wait) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(slow->calls.load() > 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(slow->calls.load() <= 2 * (1 + 2 * 2));  // the batch held + at most workers·prefetch_factor ahead
  CHECK(it->to_vector<float>() == std::vector<float>{0, 1});
}

TEST_CASE("data DataLoader: an exception while making batch k is rethrown at batch k, then iteration moves on") {
  for (int64_t workers : {0, 1, 3}) {
    CAPTURE(workers);
    // Example 13 is in batch 3 (batch size 4).
    auto ds = std::make_shared<ProbeDataset>(20, 13);
    auto loader = make_data_loader(ds, DataLoaderOptions().batch_size(4).num_workers(workers));
    std::vector<float> seen;
    bool thrown = false;
    try {
      for (auto& batch : loader) {
        for (float v : batch.to_vector<float>()) seen.push_back(v);
      }
    } catch (const std::runtime_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "probe: example 13 is broken");
    }
    CHECK(thrown);
    CHECK(seen.size() == 12);  // batches 0, 1, 2 arrived before the failure

    // Caught by hand: the iterator then stands at the failed batch — not at end(), with nothing to read — and ++
    // continues with batch 4, so the usual `while (it != end)` loop that catches the error loses no batch.
    auto it = loader.begin();
    ++it;
    ++it;
    CHECK_THROWS_WITH_AS(++it, "probe: example 13 is broken", std::runtime_error);
    CHECK(it != loader.end());
    CHECK_THROWS_WITH_AS(*it, doctest::Contains("making this batch threw; ++ goes on with the next one"), hg::Error);
    ++it;
    REQUIRE(it != loader.end());
    CHECK(it->to_vector<float>() == std::vector<float>{16, 17, 18, 19});
    ++it;
    CHECK(it == loader.end());
  }
  // The first batch failing makes begin() throw.
  auto first = make_data_loader(std::make_shared<ProbeDataset>(4, 0), DataLoaderOptions().num_workers(1));
  CHECK_THROWS_WITH_AS(first.begin(), "probe: example 0 is broken", std::runtime_error);
  // hg::Error keeps its type across the thread.
  auto bad_collate = make_data_loader(numbered(4), DataLoaderOptions().batch_size(2).num_workers(1),
                                      [](const std::vector<Example>& examples) -> Example {
                                        HG_CHECK(examples.size() > 2, "collate wants more than {} examples",
                                                 examples.size());
                                        return examples[0];
                                      });
  CHECK_THROWS_WITH_AS(bad_collate.begin(), doctest::Contains("collate wants more than 2 examples"), hg::Error);
}

TEST_CASE("data DataLoader: stopping mid-epoch joins the workers and releases the dataset (no hang, no leak)") {
  auto slow = std::make_shared<ProbeDataset>(1000, -1, std::chrono::microseconds(2000));
  const auto start = std::chrono::steady_clock::now();
  {
    auto loader = make_data_loader(slow, DataLoaderOptions().batch_size(4).num_workers(3).prefetch_factor(2));
    int batches = 0;
    for (auto& batch : loader) {
      CHECK(batch.size(0) == 4);
      if (++batches == 2) break;  // the iterator (and its workers) die here
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // A full epoch takes 1000 · 2 ms / 3 workers ≈ 670 ms; stopping early waits for at most the 3 batches in
  // progress (≈ 8 ms).
  CHECK(elapsed < std::chrono::milliseconds(400));
  // Only the batches taken plus the bounded prefetch were made; nothing runs after the scope closed.
  const int64_t calls = slow->calls.load();
  CHECK(calls <= 4 * (2 + 3 * 2 + 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(slow->calls.load() == calls);
  CHECK(slow.use_count() == 1);  // the loader, its batch function and the workers let go of the dataset

  // An iterator may outlive its loader: it owns the epoch it runs.
  std::optional<DataLoader<hg::Tensor>::Iterator> it;
  {
    auto loader = make_data_loader(std::make_shared<ProbeDataset>(6), DataLoaderOptions().batch_size(2).num_workers(1));
    it.emplace(loader.begin());
  }
  std::vector<float> rest;
  for (; *it != DataLoader<hg::Tensor>::Sentinel{}; ++*it) {
    for (float v : (**it).to_vector<float>()) rest.push_back(v);
  }
  CHECK(rest == std::vector<float>{0, 1, 2, 3, 4, 5});
  // Destroying an iterator that was never advanced, with every worker blocked on a full queue.
  {
    auto loader = make_data_loader(std::make_shared<ProbeDataset>(100), DataLoaderOptions().num_workers(4));
    auto blocked = loader.begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST_CASE("data DataLoader: option and argument errors") {
  auto ds = numbered(4);
  CHECK_THROWS_WITH_AS(make_data_loader(ds, DataLoaderOptions().batch_size(0)),
                       doctest::Contains("DataLoader: batch_size must be at least 1, got 0"), hg::Error);
  CHECK_THROWS_WITH_AS(make_data_loader(ds, DataLoaderOptions().num_workers(-1)),
                       doctest::Contains("num_workers must be non-negative"), hg::Error);
  CHECK_THROWS_WITH_AS(make_data_loader(ds, DataLoaderOptions().num_workers(1).prefetch_factor(0)),
                       doctest::Contains("prefetch_factor must be at least 1, got 0"), hg::Error);
  // The slots ahead are allocated up front: a product that overflows (it crashed with SIGFPE) or is huge is refused.
  CHECK_THROWS_WITH_AS(make_data_loader(ds, DataLoaderOptions().num_workers(4).prefetch_factor(int64_t{1} << 62)),
                       doctest::Contains("num_workers × prefetch_factor (4 × 4611686018427387904) must be at most 65536"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(make_data_loader(std::shared_ptr<TensorDataset>()), doctest::Contains("the dataset is null"),
                       hg::Error);
}

TEST_CASE("data DataLoader: custom collate and a loader over plain indices") {
  // A collate that sums the inputs of a batch: Batch is deduced as hg::Tensor.
  auto loader = make_data_loader(numbered(6), DataLoaderOptions().batch_size(3),
                                 [](const std::vector<Example>& examples) {
                                   hg::Tensors inputs;
                                   for (const auto& e : examples) inputs.push_back(e.input);
                                   return hg::stack(inputs).sum(std::vector<int64_t>{0});
                                 });
  std::vector<std::vector<float>> sums;
  for (auto& s : loader) sums.push_back(s.to_vector<float>());
  CHECK(sums == std::vector<std::vector<float>>{{3, 30}, {12, 120}});

  DataLoader<std::vector<int64_t>> indices(
      5, [](std::span<const int64_t> idx) { return std::vector<int64_t>(idx.begin(), idx.end()); },
      DataLoaderOptions().batch_size(2).num_workers(1));
  std::vector<std::vector<int64_t>> got;
  for (auto& b : indices) got.push_back(b);
  CHECK(got == std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4}});
}

// ================================================================================================
// Collates
// ================================================================================================

TEST_CASE("data collate_stack: examples, tensor lists, and errors naming the example") {
  Example a{hg::zeros({2, 3}), hg::scalar_tensor(1.0, hg::kInt64)};
  Example b{hg::ones({2, 3}), hg::scalar_tensor(0.0, hg::kInt64)};
  Example batch = collate_stack(std::vector<Example>{a, b, a});
  CHECK(batch.input.sizes() == hg::Shape{3, 2, 3});
  CHECK(batch.target.sizes() == hg::Shape{3});
  CHECK(batch.target.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(batch.input.sum().item<float>() == 6.0f);

  hg::Tensors lists = collate_stack(std::vector<hg::Tensors>{{hg::zeros({2}), hg::ones({1})},
                                                             {hg::ones({2}), hg::zeros({1})}});
  REQUIRE(lists.size() == 2);
  CHECK(lists[0].sizes() == hg::Shape{2, 2});
  CHECK(lists[1].to_vector<float>() == std::vector<float>{1, 0});

  Example wide{hg::zeros({2, 4}), hg::scalar_tensor(1.0, hg::kInt64)};
  CHECK_THROWS_WITH_AS(collate_stack(std::vector<Example>{a, b, wide}),
                       doctest::Contains("collate_stack: example 2 has input float32[2, 4] cpu but example 0 has "
                                         "float32[2, 3] cpu"),
                       hg::Error);
  Example doubles{hg::zeros({2, 3}, hg::kFloat64), hg::scalar_tensor(1.0, hg::kInt64)};
  CHECK_THROWS_WITH_AS(collate_stack(std::vector<Example>{a, doubles}), doctest::Contains("example 1 has input float64"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(collate_stack(std::vector<Example>{a, Example{hg::zeros({2, 3}), hg::Tensor()}}),
                       doctest::Contains("example 1 lacks a target but example 0 has one"), hg::Error);
  CHECK_THROWS_WITH_AS(collate_stack(std::vector<hg::Tensors>{{hg::zeros({2})}, {}}),
                       doctest::Contains("example 1 has 0 tensors but example 0 has 1"), hg::Error);
  CHECK_THROWS_WITH_AS(collate_stack(std::vector<hg::Tensor>{}), doctest::Contains("no examples to collate"),
                       hg::Error);
}

HG_BACKEND_TEST(data_collate_bags_pads_and_masks) {
  // Three bags of 2, 4 and 0 instances with 3 features; instance j of bag b holds 100·b + 10·j + feature.
  std::vector<Bag> bags;
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t n = b == 0 ? 2 : b == 1 ? 4 : 0;
    std::vector<float> values;
    std::vector<float> instance_labels;
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t f = 0; f < 3; ++f) values.push_back(static_cast<float>(100 * b + 10 * j + f));
      instance_labels.push_back(static_cast<float>(j % 2));
    }
    bags.push_back(Bag{hg::from_vector(values, {n, 3}).to(device), hg::scalar_tensor(static_cast<double>(b % 2)).to(device),
                       hg::from_vector(instance_labels, {n}).to(device)});
  }
  BagBatch batch = collate_bags(bags, /*padding_value=*/-1.0);
  CHECK(batch.instances.sizes() == hg::Shape{3, 4, 3});
  CHECK(batch.instances.device() == device);
  CHECK(batch.padding_mask.sizes() == hg::Shape{3, 4});
  CHECK(batch.padding_mask.dtype() == hg::kBool);
  CHECK(batch.padding_mask.to(hg::kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 0, 1, 1, /**/ 0, 0, 0, 0, /**/ 1, 1, 1, 1});
  CHECK(batch.sizes.to_vector<int64_t>() == std::vector<int64_t>{2, 4, 0});
  CHECK(batch.labels.to_vector<float>() == std::vector<float>{0, 1, 0});
  CHECK(batch.instance_labels.to_vector<float>() == std::vector<float>{0, 1, 0, 0, /**/ 0, 1, 0, 1, /**/ 0, 0, 0, 0});
  const auto x = batch.instances.to_vector<float>();
  CHECK(x[0 * 12 + 1 * 3 + 2] == 12.0f);   // bag 0, instance 1, feature 2
  CHECK(x[0 * 12 + 2 * 3 + 0] == -1.0f);   // bag 0's padding
  CHECK(x[1 * 12 + 3 * 3 + 1] == 131.0f);  // bag 1, instance 3, feature 1
  CHECK(x[2 * 12 + 0] == -1.0f);           // the empty bag is all padding

  // Instances of any shape: [n, 1, 2, 2] images pad to [B, max_n, 1, 2, 2].
  BagBatch images = collate_bags({Bag{hg::ones({1, 1, 2, 2}).to(device), {}, {}},
                                  Bag{hg::ones({3, 1, 2, 2}).to(device), {}, {}}});
  CHECK(images.instances.sizes() == hg::Shape{2, 3, 1, 2, 2});
  CHECK(images.instances.sum().item<float>() == 16.0f);
  CHECK_FALSE(images.labels.defined());
  CHECK_FALSE(images.instance_labels.defined());
  return {batch.instances, batch.padding_mask.to(hg::kFloat32), batch.instance_labels, images.instances};
}

TEST_CASE("data collate_bags: errors name the bag and the shapes") {
  const Bag a{hg::zeros({2, 3}), hg::scalar_tensor(1.0), {}};
  CHECK_THROWS_WITH_AS(collate_bags({a, Bag{hg::zeros({5, 4}), hg::scalar_tensor(0.0), {}}}),
                       doctest::Contains("collate_bags: bag 1 has instances of shape [5, 4] but bag 0 has [2, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({a, a, Bag{hg::zeros({5, 3}, hg::kFloat64), hg::scalar_tensor(0.0), {}}}),
                       doctest::Contains("bag 2 has instances float64[5, 3] cpu but bag 0 has float32[2, 3] cpu"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({a, Bag{hg::zeros({5}), hg::scalar_tensor(0.0), {}}}),
                       doctest::Contains("bag 1 has instances of shape [5] but bag 0 has [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({a, Bag{hg::zeros({1, 3}), {}, {}}}),
                       doctest::Contains("bag 1 lacks a label but bag 0 has one"), hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({Bag{hg::zeros({2, 3}), {}, hg::zeros({3})}}),
                       doctest::Contains("bag 0 has 2 instances but instance labels of shape [3]"), hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({Bag{hg::scalar_tensor(1.0), {}, {}}}), doctest::Contains("0-dim instances"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(collate_bags({}), doctest::Contains("no bags to collate"), hg::Error);
}

TEST_CASE("data DataLoader over bags: the default collate pads, shuffled and prefetched") {
  std::vector<Bag> bags;
  for (int64_t b = 0; b < 9; ++b) {
    bags.push_back(Bag{hg::full({b % 4 + 1, 2}, static_cast<double>(b)), hg::scalar_tensor(static_cast<double>(b)), {}});
  }
  auto ds = std::make_shared<BagDataset>(bags);
  auto loader = make_data_loader(ds, DataLoaderOptions().batch_size(4).shuffle(true).seed(5).num_workers(2));
  std::vector<int64_t> seen;
  for (BagBatch& batch : loader) {
    const auto labels = batch.labels.to_vector<float>();
    const auto sizes = batch.sizes.to_vector<int64_t>();
    int64_t max_n = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const auto b = static_cast<int64_t>(labels[i]);
      seen.push_back(b);
      CHECK(sizes[i] == b % 4 + 1);
      max_n = std::max(max_n, sizes[i]);
    }
    CHECK(batch.instances.sizes() == hg::Shape{static_cast<int64_t>(labels.size()), max_n, 2});
    // Unmasked entries hold their bag's value, masked ones the padding 0.
    const auto mask = batch.padding_mask.unsqueeze(-1).expand(batch.instances.sizes());
    CHECK(hg::where(mask, hg::zeros({1}), batch.instances).sum().item<float>() ==
          doctest::Approx(batch.instances.sum().item<float>()));
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
}

// ================================================================================================
// Splits
// ================================================================================================

namespace {

// Every index 0..n-1 in exactly one test fold; train = the rest; per-class and total counts balanced.
void check_stratified(const std::vector<Fold>& folds, const std::vector<int64_t>& labels, int64_t k) {
  const auto n = static_cast<int64_t>(labels.size());
  REQUIRE(static_cast<int64_t>(folds.size()) == k);
  std::map<int64_t, int64_t> class_size;
  for (int64_t y : labels) ++class_size[y];
  std::vector<int> times_tested(static_cast<size_t>(n), 0);
  for (const Fold& fold : folds) {
    CHECK(std::is_sorted(fold.test.begin(), fold.test.end()));
    CHECK(std::is_sorted(fold.train.begin(), fold.train.end()));
    CHECK(static_cast<int64_t>(fold.train.size() + fold.test.size()) == n);
    CHECK((n / k <= static_cast<int64_t>(fold.test.size()) && static_cast<int64_t>(fold.test.size()) <= (n + k - 1) / k));
    std::vector<int64_t> both = fold.train;
    both.insert(both.end(), fold.test.begin(), fold.test.end());
    std::sort(both.begin(), both.end());
    for (int64_t i = 0; i < n; ++i) REQUIRE(both[static_cast<size_t>(i)] == i);
    std::map<int64_t, int64_t> in_fold;
    for (int64_t i : fold.test) {
      ++times_tested[static_cast<size_t>(i)];
      ++in_fold[labels[static_cast<size_t>(i)]];
    }
    for (const auto& [y, size] : class_size) {
      CAPTURE(y);
      CHECK(in_fold[y] >= size / k);
      CHECK(in_fold[y] <= (size + k - 1) / k);
    }
  }
  CHECK(std::all_of(times_tested.begin(), times_tested.end(), [](int t) { return t == 1; }));
}

std::vector<int64_t> make_labels(const std::vector<std::pair<int64_t, int64_t>>& class_counts, uint64_t seed) {
  std::vector<int64_t> labels;
  for (auto [y, count] : class_counts) labels.insert(labels.end(), static_cast<size_t>(count), y);
  Random(seed).shuffle(labels);
  return labels;
}

}  // namespace

TEST_CASE("data stratified_k_fold: a partition that keeps class proportions within one, seeded") {
  const std::vector<std::vector<std::pair<int64_t, int64_t>>> cases = {
      {{0, 100}, {1, 100}},           // Elephant/Fox/Tiger: 100 + 100 bags
      {{-1, 45}, {1, 47}},            // Musk1 with ±1 labels
      {{0, 13}, {1, 3}, {7, 9}},      // three unbalanced classes
      {{0, 58}, {1, 42}},             // the DeepRC example's 58/42
  };
  for (const auto& counts : cases) {
    const auto labels = make_labels(counts, 11);
    for (int64_t k : {2, 3, 5, 10}) {
      CAPTURE(k);
      if (k > static_cast<int64_t>(labels.size())) continue;
      check_stratified(stratified_k_fold(labels, k, 1111), labels, k);
      check_stratified(stratified_k_fold(labels, k, 0, /*shuffle=*/false), labels, k);
    }
  }
  const auto labels = make_labels({{0, 30}, {1, 20}}, 3);
  const auto a = stratified_k_fold(labels, 5, 1);
  CHECK(stratified_k_fold(labels, 5, 1)[2].test == a[2].test);  // same seed, same folds
  CHECK(stratified_k_fold(labels, 5, 2)[2].test != a[2].test);  // another seed, other folds
  // Tensor labels of any dtype: float ±1, bool.
  const auto from_float = stratified_k_fold(hg::from_vector(std::vector<double>{1, -1, 1, -1, 1, -1}, {6}), 3, 4);
  check_stratified(from_float, {1, -1, 1, -1, 1, -1}, 3);
  const auto from_bool =
      stratified_k_fold(hg::from_vector(std::vector<bool>{true, false, true, false}, {4}), 2, 4);
  check_stratified(from_bool, {1, 0, 1, 0}, 2);

  CHECK_THROWS_WITH_AS(stratified_k_fold(labels, 1), doctest::Contains("needs at least 2 folds, got k = 1"), hg::Error);
  CHECK_THROWS_WITH_AS(stratified_k_fold(std::vector<int64_t>{0, 1, 0}, 4),
                       doctest::Contains("cannot make 4 folds from 3 examples"), hg::Error);
  CHECK_THROWS_WITH_AS(stratified_k_fold(std::vector<int64_t>{0, 1, 2, 0, 1, 2}, 3),
                       doctest::Contains("k = 3 folds but the largest of the 3 classes has only 2 members"), hg::Error);
  CHECK_THROWS_WITH_AS(stratified_k_fold(hg::from_vector(std::vector<double>{0.5, 1.0}, {2}), 2),
                       doctest::Contains("label 0 is 0.5, expected integral class ids"), hg::Error);
  CHECK_THROWS_WITH_AS(stratified_k_fold(hg::zeros({2, 2}), 2), doctest::Contains("expects 1-D labels"), hg::Error);
}

TEST_CASE("data repeated_nested_cv: the MIL protocol's outer test folds, inner validation folds, repetitions") {
  const auto labels = make_labels({{0, 100}, {1, 100}}, 5);
  const auto options = NestedCVOptions().outer_folds(10).inner_folds(5).repetitions(3).seed(42);
  const auto splits = repeated_nested_cv(labels, options);
  REQUIRE(splits.size() == 30);
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<Fold> outer;
    for (int64_t f = 0; f < 10; ++f) {
      const NestedFold& s = splits[static_cast<size_t>(r * 10 + f)];
      CHECK(s.repetition == r);
      CHECK(s.outer_fold == f);
      outer.push_back(Fold{s.train, s.test});
      // Inner folds: a stratified partition of the outer training part, never touching the test part.
      std::vector<int64_t> train_labels;
      for (int64_t i : s.train) train_labels.push_back(labels[static_cast<size_t>(i)]);
      REQUIRE(s.inner.size() == 5);
      std::vector<Fold> local;  // inner folds in positions of s.train, to reuse check_stratified
      for (const Fold& inner : s.inner) {
        Fold l;
        for (int64_t i : inner.train) l.train.push_back(std::lower_bound(s.train.begin(), s.train.end(), i) - s.train.begin());
        for (int64_t i : inner.test) l.test.push_back(std::lower_bound(s.train.begin(), s.train.end(), i) - s.train.begin());
        for (int64_t i : inner.test) CHECK_FALSE(std::binary_search(s.test.begin(), s.test.end(), i));
        for (int64_t i : inner.train) CHECK(std::binary_search(s.train.begin(), s.train.end(), i));
        local.push_back(std::move(l));
      }
      check_stratified(local, train_labels, 5);
    }
    check_stratified(outer, labels, 10);
  }
  CHECK(splits[0].test != splits[10].test);  // repetitions use different splits
  CHECK(repeated_nested_cv(labels, options)[17].inner[3].test == splits[17].inner[3].test);  // reproducible
  CHECK(repeated_nested_cv(labels, NestedCVOptions(options).seed(43))[0].test != splits[0].test);
  // The NonparametricHopfield protocol: 5 outer folds, the first inner split as an 80/20 train/validation split.
  const auto np = repeated_nested_cv(hg::from_vector(labels, {200}), NestedCVOptions().outer_folds(5).repetitions(1));
  REQUIRE(np.size() == 5);
  CHECK(np[0].test.size() == 40);
  CHECK(np[0].inner[0].train.size() == 128);
  CHECK(np[0].inner[0].test.size() == 32);
}

TEST_CASE("data random_split: a seeded partition into the given sizes") {
  auto ds = numbered(10);
  auto parts = random_split(ds, {7, 3}, 9);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0]->size() == 7);
  CHECK(parts[1]->size() == 3);
  std::vector<int64_t> all = parts[0]->indices();
  all.insert(all.end(), parts[1]->indices().begin(), parts[1]->indices().end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(random_split(ds, {7, 3}, 9)[1]->indices() == parts[1]->indices());
  CHECK(parts[1]->get(0).target.item<int64_t>() == parts[1]->indices()[0]);
  CHECK_THROWS_WITH_AS(random_split(ds, {7, 2}, 9), doctest::Contains("the lengths sum to 9 but the dataset has 10"),
                       hg::Error);
}

// ================================================================================================
// Real datasets as bags
// ================================================================================================

namespace {

std::optional<std::filesystem::path> shared_data_dir() {
  if (const char* env = std::getenv("HOPGRAD_DATA_DIR"); env && *env) {
    if (std::filesystem::is_directory(env)) return std::filesystem::path(env);
    return std::nullopt;
  }
  const auto fallback = std::filesystem::path(HG_SOURCE_DIR) / ".." / "shared" / "data";
  if (std::filesystem::is_directory(fallback)) return fallback;
  return std::nullopt;
}

}  // namespace

TEST_CASE("data mil_bags: one bag per MIL bag, views of the features, float labels") {
  MilDataset mil;
  mil.features = hg::arange(0, 10, 1, hg::TensorOptions(hg::kFloat32)).reshape({5, 2});
  mil.instance_labels = hg::from_vector(std::vector<int64_t>{0, 0, 1, 1, 1}, {5});
  mil.bag_labels = hg::from_vector(std::vector<int64_t>{0, 1}, {2});
  mil.bag_ids = hg::from_vector(std::vector<int64_t>{1, 2}, {2});
  mil.bag_offsets = {0, 2, 5};
  const auto bags = mil_bags(mil);
  REQUIRE(bags.size() == 2);
  CHECK(bags[1].instances.sizes() == hg::Shape{3, 2});
  CHECK(bags[1].instances.to_vector<float>() == std::vector<float>{4, 5, 6, 7, 8, 9});
  CHECK(bags[1].label.item<float>() == 1.0f);
  CHECK(bags[0].instance_labels.to_vector<float>() == std::vector<float>{0, 0});
  const BagBatch batch = collate_bags(bags);
  CHECK(batch.instances.sizes() == hg::Shape{2, 3, 2});
  CHECK(batch.sizes.to_vector<int64_t>() == std::vector<int64_t>{2, 3});
}

TEST_CASE("data SubsampledRepertoireDataset: DeepRC's per-epoch draws with replacement, distinct, reproducible") {
  const auto sim = simulate_repertoires(
      SimulatedRepertoireOptions().num_repertoires(4).sequences_per_repertoire(200).sequence_length(10, 14).seed(3));
  auto data = std::make_shared<const DeepRCDataset>(sim.dataset);
  auto repertoires = std::make_shared<RepertoireDataset>(data, data->binary_targets("status", "True"));
  // A subset of positions is encoded as a repertoire of those sequences; all of them give the plain bag.
  Repertoire chosen;
  const Repertoire& full = data->repertoires[1];
  for (int64_t s : {3, 50, 199}) {
    chosen.sequences.push_back(full.sequences[static_cast<size_t>(s)]);
    chosen.counts.push_back(full.counts[static_cast<size_t>(s)]);
  }
  CHECK(hg::max_abs_diff(repertoires->get(1, {3, 50, 199}).instances, encode_repertoire(chosen)) == 0.0);
  std::vector<int64_t> every(200);
  std::iota(every.begin(), every.end(), 0);
  CHECK(hg::max_abs_diff(repertoires->get(1, every).instances, repertoires->get(1).instances) == 0.0);
  CHECK_THROWS_WITH_AS(repertoires->get(1, {5, 5}), doctest::Contains("must be ascending and in [0, 200)"), hg::Error);
  CHECK_THROWS_WITH_AS(repertoires->get(1, {200}), doctest::Contains("got 200 at entry 0"), hg::Error);

  // 10 000 draws from 200 sequences keep every one (a miss has probability 200·e⁻⁵⁰).
  SubsampledRepertoireDataset reference(repertoires, 10000, 7);
  CHECK(reference.draw(2, 1) == every);
  CHECK(hg::max_abs_diff(reference.get(2).instances, repertoires->get(2).instances) == 0.0);
  // 150 draws from 200: about 200·(1 − e^(−0.75)) = 106 distinct positions, ascending, a function of (seed, epoch,
  // repertoire) only.
  SubsampledRepertoireDataset few(repertoires, 150, 7);
  const std::vector<int64_t> a = few.draw(0, 1);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
  CHECK(a.size() >= 85);
  CHECK(a.size() <= 125);
  CHECK(few.draw(0, 1) == a);
  CHECK(SubsampledRepertoireDataset(repertoires, 150, 7).draw(0, 1) == a);
  CHECK(few.draw(0, 2) != a);
  CHECK(few.draw(1, 1) != a);
  CHECK(SubsampledRepertoireDataset(repertoires, 150, 8).draw(0, 1) != a);
  few.set_epoch(1);
  CHECK(few.get(0).instances.size(0) == static_cast<int64_t>(a.size()));
  CHECK(hg::max_abs_diff(few.get(0).instances, repertoires->get(0, a).instances) == 0.0);
  // Through a DataLoader with workers, the bags are the draws of the epoch set before it runs.
  auto sampled = std::make_shared<SubsampledRepertoireDataset>(repertoires, 150, 7);
  auto loader = make_data_loader(sampled, DataLoaderOptions().batch_size(1).num_workers(2), repertoires->collate());
  for (int64_t epoch : {3, 4}) {
    sampled->set_epoch(epoch);
    int64_t i = 0;
    for (BagBatch& batch : loader) {
      CHECK(batch.instances.size(1) == static_cast<int64_t>(few.draw(i, epoch).size()));
      ++i;
    }
    CHECK(i == 4);
  }
  CHECK_THROWS_WITH_AS(SubsampledRepertoireDataset(repertoires, 0, 7), doctest::Contains("must be positive, got 0"),
                       hg::Error);
}

TEST_CASE("data RepertoireDataset: DeepRC repertoires (simulated or read) as bags of encoded sequences") {
  const auto sim = simulate_repertoires(
      SimulatedRepertoireOptions().num_repertoires(6).sequences_per_repertoire(20).sequence_length(10, 14).seed(2));
  auto data = std::make_shared<const DeepRCDataset>(sim.dataset);
  const hg::Tensor y = data->binary_targets("status", "True");
  auto repertoires = std::make_shared<RepertoireDataset>(data, y);
  // A bag alone is its repertoire encoded at its own longest sequence (DeepRC's batch of one, its evaluation).
  for (int64_t i = 0; i < repertoires->size(); ++i) {
    const Bag bag = repertoires->get(i);
    CHECK(bag.instances.size(1) == data->repertoires[static_cast<size_t>(i)].max_length());
    CHECK(hg::max_abs_diff(bag.instances, encode_repertoire(data->repertoires[static_cast<size_t>(i)])) == 0.0);
  }
  // A minibatch is padded to its longest sequence and each bag normalised over that padded length: exactly the bag
  // encoded at L_max (spec E.2), up to float rounding — not at the dataset's longest.
  auto loader = make_data_loader(repertoires, DataLoaderOptions().batch_size(4).num_workers(1), repertoires->collate());
  std::vector<float> labels;
  int64_t first = 0;
  for (BagBatch& batch : loader) {
    const int64_t b = batch.instances.size(0);
    int64_t longest = 0;
    for (int64_t i = first; i < first + b; ++i)
      longest = std::max(longest, data->repertoires[static_cast<size_t>(i)].max_length());
    CHECK(batch.instances.sizes() == hg::Shape{b, 20, longest, hg::data::kDeepRCFeatures});
    CHECK(batch.padding_mask.to(hg::kFloat32).sum().item<float>() == 0.0f);
    for (int64_t i = 0; i < b; ++i)
      hgtest::check_close(batch.instances.select(0, i),
                          encode_repertoire(data->repertoires[static_cast<size_t>(first + i)],
                                            RepertoireEncodingOptions().max_length(longest)),
                          1e-5, 1e-6, "bag at the minibatch's longest");
    for (float v : batch.labels.to_vector<float>()) labels.push_back(v);
    first += b;
  }
  CHECK(labels == y.to_vector<float>());
  // A fixed max_length encodes every bag to it.
  RepertoireDataset fixed(data, y, RepertoireEncodingOptions().max_length(16));
  CHECK(fixed.get(0).instances.size(1) == 16);
  CHECK_THROWS_WITH_AS(collate_repertoires(std::vector<Bag>{Bag{hg::zeros({2, 3}), hg::zeros({}), hg::Tensor()}}),
                       doctest::Contains("collate_repertoires: bag 0 has instances float32[2, 3] cpu"), hg::Error);
  CHECK_THROWS_WITH_AS(RepertoireDataset(data, y.narrow(0, 0, 5)),
                       doctest::Contains("expected one target per repertoire ([6, ...]), got float32[5] cpu"), hg::Error);
  CHECK_THROWS_WITH_AS(RepertoireDataset(data, y, RepertoireEncodingOptions().max_length(12)),
                       doctest::Contains("max_length 12 is shorter than the dataset's longest sequence (14)"), hg::Error);

  const auto root = shared_data_dir();
  if (!root) {
    MESSAGE("skipped the real-data part: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding "
            "deeprc_example/)");
    return;
  }
  // The DeepRC example: 100 repertoires of 10..49 sequences; bags of different sizes pad and mask.
  auto example = std::make_shared<const DeepRCDataset>(load_deeprc(*root / "deeprc_example"));
  auto real = std::make_shared<RepertoireDataset>(example, example->binary_targets("binary_target_1", "+"));
  auto real_loader =
      make_data_loader(real, DataLoaderOptions().batch_size(8).shuffle(true).seed(1).num_workers(2), real->collate());
  int64_t sequences = 0;
  float positives = 0.0f;
  for (BagBatch& batch : real_loader) {
    const auto sizes = batch.sizes.to_vector<int64_t>();
    const int64_t max_n = *std::max_element(sizes.begin(), sizes.end());
    CHECK(batch.instances.size(0) == static_cast<int64_t>(sizes.size()));
    CHECK(batch.instances.size(1) == max_n);
    CHECK(batch.instances.size(2) <= 19);  // the minibatch's longest sequence (19 in the whole dataset)
    const int64_t padded = static_cast<int64_t>(sizes.size()) * max_n - std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    CHECK(batch.padding_mask.to(hg::kFloat32).sum().item<float>() == static_cast<float>(padded));
    sequences += std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    positives += batch.labels.sum().item<float>();
  }
  CHECK(sequences == example->num_sequences());
  CHECK(positives == 58.0f);
}

TEST_CASE("data MIL protocol on Elephant (shared data): bags, nested CV, loader") {
  const auto root = shared_data_dir();
  if (!root) {
    MESSAGE("skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding mil/)");
    return;
  }
  const MilDataset elephant = load_mil(*root / "mil", "elephant");
  auto bags = std::make_shared<BagDataset>(mil_bags(elephant));
  REQUIRE(bags->size() == 200);
  const auto splits = repeated_nested_cv(elephant.bag_labels, NestedCVOptions().outer_folds(10).repetitions(2).seed(3));
  REQUIRE(splits.size() == 20);
  const NestedFold& split = splits[0];
  CHECK(split.test.size() == 20);
  auto test = make_subset(bags, split.test);
  float positives = 0.0f;
  for (BagBatch& batch : make_data_loader(test, DataLoaderOptions().batch_size(8))) {
    CHECK(batch.instances.size(2) == 230);
    positives += batch.labels.sum().item<float>();
  }
  CHECK(positives == 10.0f);  // stratified: 100/100 bags → 10 positives in each test fold of 20
}
