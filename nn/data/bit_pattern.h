#pragma once
// BitPatternSet (spec G.1; hflayers auxiliary/data.py, identical in NonparametricHopfield datasets/synthetic.py):
// a binary multiple-instance task. Every bag holds `num_instances` random bit vectors; positive bags contain
// `num_signals_per_bag` implanted signal patterns, negative bags none.
//
//   auto bits = std::make_shared<hg::data::BitPatternSet>(
//       hg::data::BitPatternOptions(2048, 16, 8).num_bits(8));        // hflayers' demo (G.2)
//   std::vector<int64_t> indices(1536);
//   std::iota(indices.begin(), indices.end(), 256);
//   auto train = hg::data::make_subset(bits, indices);                 // G.2's train split: bags 256..1791
//   hg::data::Example bag = bits->get(0);   // input float32 [16, 8] of 0/1, target float32 0-dim (1 = positive)
//
// Randomness: hg::data::Random (std::mt19937_64), not torch's generator, so the bits differ from the Python
// reference (the spec does not require equality) while every step and invariant is the same:
//  1. signals (seed_signals): num_signals random bit rows; repeat {sort and deduplicate rows (torch.unique),
//     drop all-zero rows, append fresh random rows for the missing ones} until num_signals distinct non-zero
//     signals remain. They end up sorted lexicographically.
//  2. data (seed_data): random bits [num_bags, num_instances, num_bits]; the first
//     n_t = min(num_bags, max(1, ⌈num_bags·fraction_targets⌉)) bags are the positives (target 1).
//  3. redraw every instance that is all-zero or equals a signal, until none is.
//  4. in each positive bag, draw num_signals_per_bag distinct positions and write a uniformly chosen signal at
//     each (the same signal may be drawn twice).
// Quirk kept from the reference: positives are the first n_t bags, not scattered (shuffle in the loader).
#include <cstdint>

#include <hopgrad/core/dtype.h>
#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/data/dataset.h>

namespace hg::data {

struct BitPatternOptions {
  BitPatternOptions(int64_t num_bags, int64_t num_instances, int64_t num_signals)
      : num_bags_(num_bags), num_instances_(num_instances), num_signals_(num_signals) {}
  int64_t num_bags_;
  int64_t num_instances_;
  int64_t num_signals_;             ///< distinct signal patterns; must be < 2^num_bits − 1
  int64_t num_signals_per_bag_ = 1;  ///< implanted per positive bag, at distinct positions (≤ num_instances)
  double fraction_targets_ = 0.5;   ///< in (0, 1): share of positive bags
  int64_t num_bits_ = 8;
  DType dtype_ = kFloat32;
  uint64_t seed_signals_ = 43;
  uint64_t seed_data_ = 44;
  BitPatternOptions& num_signals_per_bag(int64_t v) { num_signals_per_bag_ = v; return *this; }
  BitPatternOptions& fraction_targets(double v) { fraction_targets_ = v; return *this; }
  BitPatternOptions& num_bits(int64_t v) { num_bits_ = v; return *this; }
  BitPatternOptions& dtype(DType v) { dtype_ = v; return *this; }
  BitPatternOptions& seed_signals(uint64_t v) { seed_signals_ = v; return *this; }
  BitPatternOptions& seed_data(uint64_t v) { seed_data_ = v; return *this; }
};

class BitPatternSet : public Dataset<Example> {
 public:
  /// Generates the set; throws naming the option for values outside the reference's asserts.
  explicit BitPatternSet(const BitPatternOptions& options);

  int64_t size() const override { return options_.num_bags_; }
  /// {bags[i] [num_instances, num_bits], targets[i] 0-dim}, views of the generated tensors.
  Example get(int64_t index) const override;

  const BitPatternOptions& options() const { return options_; }
  const Tensor& bags() const { return bags_; }        ///< [num_bags, num_instances, num_bits] of 0/1
  const Tensor& targets() const { return targets_; }  ///< [num_bags]: 1 for the first num_targets_high() bags
  const Tensor& signals() const { return signals_; }  ///< [num_signals, num_bits], distinct, non-zero, sorted
  int64_t num_targets_high() const { return num_targets_; }
  int64_t num_targets_low() const { return options_.num_bags_ - num_targets_; }

 private:
  BitPatternOptions options_;
  int64_t num_targets_ = 0;
  Tensor bags_, targets_, signals_;
};

}  // namespace hg::data
