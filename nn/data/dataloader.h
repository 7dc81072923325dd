#pragma once
// DataLoader: batches of a dataset, in a seeded order, optionally prepared ahead on worker threads.
//
//   auto loader = hg::data::make_data_loader(
//       train, hg::data::DataLoaderOptions().batch_size(64).shuffle(true).seed(1).num_workers(1));
//   for (int epoch = 0; epoch < 10; ++epoch) {
//     for (auto& batch : loader) {            // batch: hg::data::Example {input [64, ...], target [64]}
//       auto loss = hg::cross_entropy(model->forward(batch.input), batch.target);
//       ...
//     }
//   }
//
// Order: epoch e visits permutation(seed, e) (or 0..N-1 without shuffling). Each range-for (each begin()) runs
// the next epoch; set_epoch(e) makes a resumed run see the same orders as an uninterrupted one.
// Prefetch: with num_workers = W ≥ 1, W threads make batches ahead of the consumer, at most W·prefetch_factor
// of them at once; batches still arrive in order, and are made under the grad mode and with the kernel thread count
// (hg::set_num_threads) in effect at begin() (a loop under NoGradGuard gets no graph from its workers either), so
// the result equals num_workers = 0 (synchronous). An
// exception thrown while making batch k is rethrown by the iterator when it reaches batch k; the iterator then
// stands at batch k, with nothing to read, and ++ goes on with k + 1, so a loop that catches the error loses no
// batch. Destroying an iterator mid-epoch stops and joins its workers; an iterator keeps what it needs alive, so
// it may outlive its loader.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/core/error.h>
#include <hopgrad/core/threads.h>
#include <hopgrad/nn/data/collate.h>
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

struct DataLoaderOptions {
  int64_t batch_size_ = 1;
  bool shuffle_ = false;
  uint64_t seed_ = 0;         ///< with shuffle: epoch e's order is a function of (seed, e) only
  bool drop_last_ = false;    ///< drop the last batch when it has fewer than batch_size examples
  int64_t num_workers_ = 0;   ///< threads making batches ahead; 0 = make each batch when it is asked for
  int64_t prefetch_factor_ = 2;  ///< batches each worker may have ready or in progress (as PyTorch's)
  DataLoaderOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  DataLoaderOptions& shuffle(bool v) { shuffle_ = v; return *this; }
  DataLoaderOptions& seed(uint64_t v) { seed_ = v; return *this; }
  DataLoaderOptions& drop_last(bool v) { drop_last_ = v; return *this; }
  DataLoaderOptions& num_workers(int64_t v) { num_workers_ = v; return *this; }
  DataLoaderOptions& prefetch_factor(int64_t v) { prefetch_factor_ = v; return *this; }
};

/// Throws naming the bad option (batch_size ≥ 1, num_workers ≥ 0, prefetch_factor ≥ 1).
void check_options(const DataLoaderOptions& options);
/// Batches per epoch for `dataset_size` examples: ⌈N/B⌉, or ⌊N/B⌋ with drop_last.
int64_t num_batches(int64_t dataset_size, const DataLoaderOptions& options);
/// The order in which epoch `epoch` visits the examples: a permutation drawn from Random({seed, epoch}) with
/// shuffle, else 0..N-1.
std::vector<int64_t> epoch_order(int64_t dataset_size, const DataLoaderOptions& options, int64_t epoch);

namespace detail {

/// One pass over the data: makes batches 0..num_batches-1 in order, synchronously or on worker threads.
template <typename Batch> class EpochRun {
 public:
  using MakeBatch = std::function<Batch(std::span<const int64_t>)>;

  EpochRun(std::shared_ptr<const MakeBatch> make_batch, std::vector<int64_t> order, const DataLoaderOptions& options,
           int64_t num_batches)
      : make_batch_(std::move(make_batch)),
        order_(std::move(order)),
        batch_size_(options.batch_size_),
        num_batches_(num_batches),
        grad_enabled_(GradMode::is_enabled()),
        num_threads_(get_num_threads()),
        capacity_(options.num_workers_ * options.prefetch_factor_),
        slots_(static_cast<size_t>(capacity_)) {
    const int64_t workers = std::min(options.num_workers_, num_batches_);
    workers_.reserve(static_cast<size_t>(workers));
    try {
      for (int64_t w = 0; w < workers; ++w) workers_.emplace_back([this] { work(); });
    } catch (...) {  // a thread could not be started: stop those that were (the destructor will not run)
      shutdown();
      throw;
    }
  }
  EpochRun(const EpochRun&) = delete;
  EpochRun& operator=(const EpochRun&) = delete;

  ~EpochRun() { shutdown(); }

  /// The next batch in order, or nullopt after the last. Rethrows the exception that making it raised.
  std::optional<Batch> next() {
    if (consumed_ >= num_batches_) return std::nullopt;
    const int64_t k = consumed_++;
    if (workers_.empty()) return make(k);
    Slot slot;
    {
      std::unique_lock lock(mutex_);
      Slot& ready = slots_[static_cast<size_t>(k % capacity_)];
      ready_.wait(lock, [&] { return ready.filled; });
      slot = std::move(ready);
      ready = Slot();
      released_ = consumed_;  // the slot is free: workers may claim batch k + capacity
    }
    space_.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(slot.batch);
  }

 private:
  struct Slot {
    bool filled = false;
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  // Workers finish the batch they are making (a batch cannot be interrupted), see stop_ and exit.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    space_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  // Under the grad mode of the thread that began the epoch (grad mode is thread-local, and worker threads
  // start with it enabled): with or without workers, a batch made under NoGradGuard records no graph.
  Batch make(int64_t k) const {
    const AutoGradMode grad_mode(grad_enabled_);
    const int64_t begin = k * batch_size_;
    const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(order_.size()));
    return (*make_batch_)(std::span<const int64_t>(order_.data() + begin, static_cast<size_t>(end - begin)));
  }

  // Claims batches in order while fewer than `capacity_` are ahead of the consumer.
  void work() {
    set_num_threads(num_threads_);  // the kernels' thread count is per thread: take the consumer's
    for (;;) {
      int64_t k;
      {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [&] { return stop_ || claimed_ >= num_batches_ || claimed_ < released_ + capacity_; });
        if (stop_ || claimed_ >= num_batches_) return;
        k = claimed_++;
      }
      Slot slot;
      try {
        slot.batch.emplace(make(k));
      } catch (...) {
        slot.error = std::current_exception();
      }
      slot.filled = true;
      {
        std::lock_guard lock(mutex_);
        slots_[static_cast<size_t>(k % capacity_)] = std::move(slot);
      }
      ready_.notify_all();
    }
  }

  const std::shared_ptr<const MakeBatch> make_batch_;
  const std::vector<int64_t> order_;
  const int64_t batch_size_, num_batches_;
  const bool grad_enabled_;  // GradMode::is_enabled() where the epoch began
  const int num_threads_;    // get_num_threads() there: a new thread would start at OpenMP's default
  const int64_t capacity_;
  int64_t consumed_ = 0;  // batches handed out (consumer thread only)

  std::mutex mutex_;
  std::condition_variable ready_;  // a slot was filled
  std::condition_variable space_;  // a slot was freed, or stop
  std::vector<Slot> slots_;        // batch k lives in slot k mod capacity
  int64_t claimed_ = 0;            // next batch a worker will make
  int64_t released_ = 0;           // batches the consumer has taken out of their slots
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace detail

template <typename Batch> class DataLoader {
 public:
  /// Fetches the examples at some indices and collates them; runs on the worker threads.
  using MakeBatch = typename detail::EpochRun<Batch>::MakeBatch;

  /// A loader over `dataset` whose batches are `collate(std::vector<Example>)`. See make_data_loader, which
  /// deduces Batch.
  template <typename ExampleT, typename Collate>
  DataLoader(std::shared_ptr<const Dataset<ExampleT>> dataset, DataLoaderOptions options, Collate collate)
      : DataLoader(dataset ? dataset->size() : 0,
                   [dataset, collate = std::move(collate)](std::span<const int64_t> indices) -> Batch {
                     std::vector<ExampleT> examples;
                     examples.reserve(indices.size());
                     for (int64_t i : indices) examples.push_back(dataset->get(i));
                     return collate(std::move(examples));
                   },
                   options) {
    HG_CHECK(dataset != nullptr, "DataLoader: the dataset is null");
  }

  /// A loader over indices 0..dataset_size-1, batches made by `make_batch(indices)`.
  DataLoader(int64_t dataset_size, MakeBatch make_batch, DataLoaderOptions options)
      : make_batch_(std::make_shared<const MakeBatch>(std::move(make_batch))),
        dataset_size_(dataset_size),
        options_(options) {
    check_options(options_);
  }

  /// Batches per epoch.
  int64_t size() const { return num_batches(dataset_size_, options_); }
  int64_t dataset_size() const { return dataset_size_; }
  const DataLoaderOptions& options() const { return options_; }
  /// The epoch the next begin() runs; each begin() advances it by one.
  int64_t epoch() const { return epoch_; }
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  /// The example order of epoch `epoch`.
  std::vector<int64_t> order(int64_t epoch) const { return epoch_order(dataset_size_, options_, epoch); }

  struct Sentinel {};

  /// A single-pass iterator over one epoch's batches (move-only: it owns the epoch's worker threads).
  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    Iterator() = default;
    Batch& operator*() const { return batch(); }
    Batch* operator->() const { return &batch(); }
    /// Moves to the next batch. When making it throws, the iterator stands at that batch (not at end()), with
    /// nothing to read, and the next ++ goes on with the batch after it.
    Iterator& operator++() {
      current_.reset();  // release the batch before making the consumer wait for the next one
      current_ = run_->next();
      done_ = !current_.has_value();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& it, Sentinel) { return it.done_; }

   private:
    friend class DataLoader;
    explicit Iterator(std::unique_ptr<detail::EpochRun<Batch>> run) : run_(std::move(run)), done_(false) { ++*this; }
    Batch& batch() const {
      HG_CHECK(current_.has_value(), "DataLoader: no batch to read here: {}",
               done_ ? "the iterator is at end()" : "making this batch threw; ++ goes on with the next one");
      return *current_;
    }
    std::unique_ptr<detail::EpochRun<Batch>> run_;
    mutable std::optional<Batch> current_;
    bool done_ = true;  ///< past the last batch (a default-constructed iterator is at the end)
  };

  /// Starts epoch `epoch()` (and advances the counter); throws what making batch 0 throws.
  Iterator begin() {
    const int64_t epoch = epoch_++;
    return Iterator(std::make_unique<detail::EpochRun<Batch>>(make_batch_, order(epoch), options_, size()));
  }
  Sentinel end() const { return {}; }

 private:
  std::shared_ptr<const MakeBatch> make_batch_;
  int64_t dataset_size_;
  DataLoaderOptions options_;
  int64_t epoch_ = 0;
};

/// A DataLoader whose batch type is what `collate` returns for a std::vector of the dataset's examples
/// (DefaultCollate: stacked Examples/tensors, padded bags).
template <typename D, typename Collate = DefaultCollate>
auto make_data_loader(std::shared_ptr<D> dataset, DataLoaderOptions options = {}, Collate collate = {}) {
  using E = typename D::ExampleType;
  using Batch = std::decay_t<std::invoke_result_t<const Collate&, std::vector<E>>>;
  return DataLoader<Batch>(std::shared_ptr<const Dataset<E>>(std::move(dataset)), options, std::move(collate));
}

}  // namespace hg::data
