#pragma once
// The six networks of hflayers' bit-pattern demo (examples/bit_pattern; spec G.2): a Hopfield association, a
// HopfieldPooling and a HopfieldLayer lookup, each in the library's default form and in the demo's "adapted"
// form. The separation function (and with it an LwPF forgetting unit, spec G.4) is selectable for all six.
//
//   hg::models::BitPatternNet net(hg::models::BitPatternNetOptions(hg::models::BitNetKind::PoolingAdapted));
//   hg::Tensor logit = net(bags);                      // bags [B, 16, 8] of 0/1 → [B]
//   lookup_net->init_lookup(unique_training_instances);  // LookupAdapted: stored patterns = the instances
#include <cstdint>
#include <string_view>

#include <hopgrad/core/tensor.h>
#include <hopgrad/nn/hopfield/hopfield.h>
#include <hopgrad/nn/hopfield/hopfield_layer.h>
#include <hopgrad/nn/hopfield/hopfield_pooling.h>
#include <hopgrad/nn/hopfield/separation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::models {

enum class BitNetKind {
  Hopfield,         ///< Hopfield(input_size = bits) over the bag → flatten → Linear(N·bits → 1)
  HopfieldAdapted,  ///< the same with hidden_size 8, 8 heads, update_steps_max 3, β 0.25, dropout 0.5
  Pooling,          ///< HopfieldPooling(input_size = bits) → Linear(bits → 1)
  PoolingAdapted,   ///< the same with the adapted arguments
  Lookup,           ///< HopfieldLayer(input_size = bits, quantity) → flatten → Linear(N·bits → 1)
  LookupAdapted,    ///< hidden/pattern size 8, β 0.25, dropout 0.5, separate fixed targets; init_lookup()
};
/// "hopfield", "hopfield_adapted", "pooling", "pooling_adapted", "lookup", "lookup_adapted".
std::string_view to_string(BitNetKind kind);
/// The inverse of to_string; the error lists the accepted names.
BitNetKind bit_net_kind_from_string(std::string_view name);

struct BitPatternNetOptions {
  BitPatternNetOptions(BitNetKind kind = BitNetKind::PoolingAdapted) : kind_(kind) {}
  HG_ARG(BitNetKind, kind);
  HG_ARG(int64_t, num_bits) = 8;
  /// Instances per bag (the flattening networks need it).
  HG_ARG(int64_t, num_instances) = 16;
  /// Lookup: number of stored patterns (the demo: the number of unique training instances).
  HG_ARG(int64_t, quantity) = 64;
  /// Separation function of the Hopfield association (with any LwPF forgetting unit).
  HG_ARG(nn::SeparationOptions, separation);
};

/// logit = Linear(flatten(H(bags))) with H one of the three Hopfield modules (the other two are null).
class BitPatternNetImpl : public nn::Module {
 public:
  explicit BitPatternNetImpl(const BitPatternNetOptions& options = {});
  /// bags [B, num_instances, num_bits] → logits [B].
  Tensor forward(const Tensor& bags);
  /// Lookup kinds: copies `patterns` [quantity, num_bits] into the stored patterns (the adapted demo stores
  /// the unique training instances there; its separate targets stay random and frozen).
  void init_lookup(const Tensor& patterns);
  void pretty_print(std::ostream& stream) const override;

  BitPatternNetOptions options;
  nn::Hopfield hopfield{nullptr};
  nn::HopfieldPooling pooling{nullptr};
  nn::HopfieldLayer lookup{nullptr};
  nn::Linear out{nullptr};
};
HG_MODULE(BitPatternNet);

}  // namespace hg::models
