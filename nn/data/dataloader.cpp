// DataLoader order and options (see dataloader.h; the loader itself is a template there).
#include <hopgrad/nn/data/dataloader.h>

#include <numeric>

#include <hopgrad/nn/data/random.h>

namespace hg::data {

void check_options(const DataLoaderOptions& options) {
  HG_CHECK(options.batch_size_ >= 1, "DataLoader: batch_size must be at least 1, got {}", options.batch_size_);
  HG_CHECK(options.num_workers_ >= 0, "DataLoader: num_workers must be non-negative (0 = synchronous), got {}",
           options.num_workers_);
  HG_CHECK(options.prefetch_factor_ >= 1, "DataLoader: prefetch_factor must be at least 1, got {}",
           options.prefetch_factor_);
  // The workers fill num_workers × prefetch_factor batch slots ahead of the consumer (allocated up front).
  constexpr int64_t kMaxSlots = 1 << 16;
  HG_CHECK(options.num_workers_ <= kMaxSlots && options.prefetch_factor_ <= kMaxSlots / std::max<int64_t>(1, options.num_workers_),
           "DataLoader: num_workers × prefetch_factor ({} × {}) must be at most {} batches held ahead", options.num_workers_,
           options.prefetch_factor_, kMaxSlots);
}

int64_t num_batches(int64_t dataset_size, const DataLoaderOptions& options) {
  check_options(options);
  HG_CHECK(dataset_size >= 0, "DataLoader: the dataset size must be non-negative, got {}", dataset_size);
  const int64_t b = options.batch_size_;
  // Not (n + b − 1) / b, which overflows for a batch size near INT64_MAX.
  return dataset_size / b + (!options.drop_last_ && dataset_size % b != 0 ? 1 : 0);
}

std::vector<int64_t> epoch_order(int64_t dataset_size, const DataLoaderOptions& options, int64_t epoch) {
  HG_CHECK(dataset_size >= 0, "DataLoader: the dataset size must be non-negative, got {}", dataset_size);
  if (options.shuffle_) return Random({options.seed_, static_cast<uint64_t>(epoch)}).permutation(dataset_size);
  std::vector<int64_t> order(static_cast<size_t>(dataset_size));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

}  // namespace hg::data
