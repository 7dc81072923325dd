// BitPatternSet (see bit_pattern.h for the steps, which follow spec G.1).
#include <hopgrad/nn/data/bit_pattern.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <hopgrad/nn/data/random.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

// Random bits drawn 64 at a time.
class BitSource {
 public:
  explicit BitSource(uint64_t seed) : rng_(seed) {}
  char next() {
    if (left_ == 0) {
      word_ = rng_.bits();
      left_ = 64;
    }
    --left_;
    const auto bit = static_cast<char>(word_ & 1u);
    word_ >>= 1;
    return bit;
  }
  void fill(char* row, int64_t n) {
    for (int64_t i = 0; i < n; ++i) row[i] = next();
  }
  Random& rng() { return rng_; }

 private:
  Random rng_;
  uint64_t word_ = 0;
  int left_ = 0;
};

// A pattern is a row of num_bits bytes, each 0 or 1; rows compare lexicographically like torch.unique's.
using Pattern = std::string;

bool all_zero(std::string_view row) {
  return std::all_of(row.begin(), row.end(), [](char b) { return b == 0; });
}

Tensor to_tensor(const std::vector<char>& bits, IntArrayRef sizes, DType dtype) {
  std::vector<float> values(bits.begin(), bits.end());
  return from_vector(values, sizes).to(dtype);
}

}  // namespace

BitPatternSet::BitPatternSet(const BitPatternOptions& options) : options_(options) {
  const auto& o = options_;
  HG_CHECK(o.num_bags_ > 0, "BitPatternSet: num_bags must be positive, got {}", o.num_bags_);
  HG_CHECK(o.num_instances_ > 0, "BitPatternSet: num_instances must be positive, got {}", o.num_instances_);
  HG_CHECK(o.num_signals_ > 0, "BitPatternSet: num_signals must be positive, got {}", o.num_signals_);
  HG_CHECK(o.num_signals_per_bag_ >= 0 && o.num_signals_per_bag_ <= o.num_instances_,
           "BitPatternSet: num_signals_per_bag must be in [0, num_instances = {}], got {}", o.num_instances_,
           o.num_signals_per_bag_);
  HG_CHECK(o.fraction_targets_ > 0.0 && o.fraction_targets_ < 1.0,
           "BitPatternSet: fraction_targets must be in the open interval (0, 1), got {}", o.fraction_targets_);
  HG_CHECK(o.num_bits_ > 0, "BitPatternSet: num_bits must be positive, got {}", o.num_bits_);
  HG_CHECK(o.num_bits_ >= 63 || o.num_signals_ < (int64_t{1} << o.num_bits_) - 1,
           "BitPatternSet: num_signals ({}) must be smaller than 2^num_bits − 1 = {} (num_bits = {})", o.num_signals_,
           o.num_bits_ >= 63 ? 0 : (int64_t{1} << o.num_bits_) - 1, o.num_bits_);
  HG_CHECK(o.dtype_ == kFloat32 || o.dtype_ == kFloat64, "BitPatternSet: dtype must be float32 or float64, got {}",
           o.dtype_);
  // The bits are drawn into one buffer of bags × instances × bits bytes (and signals × bits): bounded before
  // any product is formed, so that no size wraps around.
  constexpr int64_t kMaxBits = int64_t{1} << 40;
  HG_CHECK(o.num_instances_ <= kMaxBits / o.num_bags_ && o.num_bits_ <= kMaxBits / (o.num_bags_ * o.num_instances_) &&
               o.num_signals_ <= kMaxBits / o.num_bits_,
           "BitPatternSet: {} bags × {} instances × {} bits (and {} signals) is too large; expected at most 2^40 bits",
           o.num_bags_, o.num_instances_, o.num_bits_, o.num_signals_);
  const int64_t bags = o.num_bags_, instances = o.num_instances_, bits = o.num_bits_;
  num_targets_ = std::min(bags, std::max<int64_t>(1, static_cast<int64_t>(
                                                         std::ceil(static_cast<double>(bags) * o.fraction_targets_))));

  // 1. Distinct, non-zero signals, sorted.
  BitSource signal_bits(o.seed_signals_);
  std::vector<Pattern> signals;
  const auto draw_signals = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      Pattern row(static_cast<size_t>(bits), 0);
      signal_bits.fill(row.data(), bits);
      signals.push_back(std::move(row));
    }
  };
  draw_signals(o.num_signals_);
  for (;;) {
    std::sort(signals.begin(), signals.end());
    signals.erase(std::unique(signals.begin(), signals.end()), signals.end());
    std::erase_if(signals, [](const Pattern& row) { return all_zero(row); });
    const int64_t missing = o.num_signals_ - static_cast<int64_t>(signals.size());
    if (missing == 0) break;
    draw_signals(missing);
  }
  const std::unordered_set<std::string_view> signal_set(signals.begin(), signals.end());

  // 2. Random instances; 3. redraw the all-zero ones and those equal to a signal (a redraw is a fresh draw, so
  // redrawing one instance until it is valid has the reference's distribution).
  BitSource data_bits(o.seed_data_);
  std::vector<char> data(static_cast<size_t>(bags * instances * bits));
  data_bits.fill(data.data(), static_cast<int64_t>(data.size()));
  for (int64_t i = 0; i < bags * instances; ++i) {
    char* row = data.data() + i * bits;
    for (;;) {
      const std::string_view view(row, static_cast<size_t>(bits));
      if (!all_zero(view) && !signal_set.contains(view)) break;
      data_bits.fill(row, bits);
    }
  }

  // 4. Implant signals into the positive bags at distinct positions.
  Random& rng = data_bits.rng();
  for (int64_t b = 0; b < num_targets_; ++b) {
    std::vector<int64_t> positions;
    for (int64_t s = 0; s < o.num_signals_per_bag_; ++s) {
      int64_t position;
      do {
        position = rng.integer(0, instances);
      } while (std::find(positions.begin(), positions.end(), position) != positions.end());
      positions.push_back(position);
      const Pattern& signal = signals[rng.below(signals.size())];
      std::copy(signal.begin(), signal.end(), data.begin() + (b * instances + position) * bits);
    }
  }

  bags_ = to_tensor(data, {bags, instances, bits}, o.dtype_);
  std::vector<char> targets(static_cast<size_t>(bags), 0);
  std::fill(targets.begin(), targets.begin() + num_targets_, 1);
  targets_ = to_tensor(targets, {bags}, o.dtype_);
  std::vector<char> signal_data;
  for (const Pattern& s : signals) signal_data.insert(signal_data.end(), s.begin(), s.end());
  signals_ = to_tensor(signal_data, {o.num_signals_, bits}, o.dtype_);
}

Example BitPatternSet::get(int64_t index) const {
  index = wrap_index(index, size(), "BitPatternSet");
  return {bags_.select(0, index), targets_.select(0, index)};
}

}  // namespace hg::data
