// MNIST bags (see mnist_bags.h).
#include <hopgrad/nn/data/mnist_bags.h>

#include <cmath>

#include <hopgrad/nn/data/random.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

// The labels as host integers, after checking them against the images.
std::vector<int64_t> checked_labels(const char* op, const Tensor& images, const Tensor& labels) {
  HG_CHECK(images.defined() && labels.defined(), "{}: images and labels must be defined", op);
  HG_CHECK(images.dim() >= 1, "{}: images must be [N, ...], got a 0-dim tensor", op);
  HG_CHECK(labels.dim() == 1 && labels.dtype() == kInt64, "{}: labels must be int64 [N], got {}", op, labels.desc());
  HG_CHECK(labels.size(0) == images.size(0), "{}: {} images but {} labels (images {}, labels {})", op, images.size(0),
           labels.size(0), images.desc(), labels.desc());
  HG_CHECK(images.size(0) > 0, "{}: no images to draw bags from", op);
  return labels.to_vector<int64_t>();
}

// One bag: the images at `indices`, its label, and 1/0 instance labels for "is the target digit".
Bag make_bag(const Tensor& images, const std::vector<int64_t>& all_labels, const std::vector<int64_t>& indices,
             int64_t target_digit, float bag_label) {
  std::vector<float> is_target;
  is_target.reserve(indices.size());
  for (int64_t i : indices) is_target.push_back(all_labels[static_cast<size_t>(i)] == target_digit ? 1.0f : 0.0f);
  const auto n = static_cast<int64_t>(indices.size());
  return Bag{index_select(images, 0, from_vector(indices, {n}).to(images.device())),
             scalar_tensor(bag_label), from_vector(is_target, {n})};
}

}  // namespace

std::vector<Bag> mnist_bags(const Tensor& images, const Tensor& labels, const MnistBagsOptions& options) {
  const std::vector<int64_t> all_labels = checked_labels("mnist_bags", images, labels);
  HG_CHECK(options.num_bags_ >= 0, "mnist_bags: num_bags must be non-negative, got {}", options.num_bags_);
  HG_CHECK(std::isfinite(options.mean_bag_length_) && std::isfinite(options.std_bag_length_) &&
               options.std_bag_length_ >= 0.0,
           "mnist_bags: bag lengths ~ N(mean {}, std {}) need a finite mean and a finite, non-negative std",
           options.mean_bag_length_, options.std_bag_length_);
  const int64_t num_images = images.size(0);
  Random rng(options.seed_);
  std::vector<Bag> bags;
  bags.reserve(static_cast<size_t>(options.num_bags_));
  for (int64_t b = 0; b < options.num_bags_; ++b) {
    // np.int(normal(mean, std)) truncates toward zero; lengths below 1 become 1.
    const double length = std::trunc(rng.normal(options.mean_bag_length_, options.std_bag_length_));
    constexpr double kMaxBagLength = 1 << 20;  // also keeps the cast to int64 defined
    HG_CHECK(length <= kMaxBagLength, "mnist_bags: bag {} drew a length of {} (mean {}, std {}); expected at most {}",
             b, length, options.mean_bag_length_, options.std_bag_length_, kMaxBagLength);
    const auto n = static_cast<int64_t>(std::max(length, 1.0));
    std::vector<int64_t> indices;
    indices.reserve(static_cast<size_t>(n));
    bool positive = false;
    for (int64_t i = 0; i < n; ++i) {
      indices.push_back(rng.integer(0, num_images));
      positive = positive || all_labels[static_cast<size_t>(indices.back())] == options.target_digit_;
    }
    bags.push_back(make_bag(images, all_labels, indices, options.target_digit_, positive ? 1.0f : 0.0f));
  }
  return bags;
}

std::vector<Bag> paired_mnist_bags(const Tensor& images, const Tensor& labels, const PairedMnistBagsOptions& options) {
  const std::vector<int64_t> all_labels = checked_labels("paired_mnist_bags", images, labels);
  const auto& o = options;
  HG_CHECK(o.num_pairs_ >= 0, "paired_mnist_bags: num_pairs must be non-negative, got {}", o.num_pairs_);
  HG_CHECK(o.bag_size_ >= 1, "paired_mnist_bags: bag_size must be at least 1, got {}", o.bag_size_);
  HG_CHECK(o.positives_per_bag_ >= 1 && o.positives_per_bag_ <= o.bag_size_,
           "paired_mnist_bags: positives_per_bag must be in [1, bag_size = {}], got {}", o.bag_size_,
           o.positives_per_bag_);
  std::vector<int64_t> target_images, other_images;
  for (size_t i = 0; i < all_labels.size(); ++i) {
    (all_labels[i] == o.target_digit_ ? target_images : other_images).push_back(static_cast<int64_t>(i));
  }
  const auto num_targets = static_cast<int64_t>(target_images.size());
  const auto num_others = static_cast<int64_t>(other_images.size());
  HG_CHECK(num_targets >= o.positives_per_bag_,
           "paired_mnist_bags: {} images of digit {} but each positive bag needs {}", num_targets, o.target_digit_,
           o.positives_per_bag_);
  HG_CHECK(num_others >= o.bag_size_, "paired_mnist_bags: {} images of other digits but each negative bag needs {}",
           num_others, o.bag_size_);
  const float negative_label = o.inverted_labels_ ? 1.0f : 0.0f;
  const float positive_label = o.inverted_labels_ ? 0.0f : 1.0f;
  Random rng(o.seed_);
  const auto draw = [&rng](const std::vector<int64_t>& pool, int64_t k, std::vector<int64_t>& out) {
    for (int64_t j : rng.sample(static_cast<int64_t>(pool.size()), k)) out.push_back(pool[static_cast<size_t>(j)]);
  };
  std::vector<Bag> bags;
  bags.reserve(2 * static_cast<size_t>(o.num_pairs_));
  for (int64_t p = 0; p < o.num_pairs_; ++p) {
    // The reference draws the positive bag's indices first, then the negative bag's.
    std::vector<int64_t> positive, negative;
    draw(target_images, o.positives_per_bag_, positive);
    draw(other_images, o.bag_size_ - o.positives_per_bag_, positive);
    if (!o.targets_first_) rng.shuffle(positive);
    draw(other_images, o.bag_size_, negative);
    bags.push_back(make_bag(images, all_labels, negative, o.target_digit_, negative_label));
    bags.push_back(make_bag(images, all_labels, positive, o.target_digit_, positive_label));
  }
  return bags;
}

}  // namespace hg::data
