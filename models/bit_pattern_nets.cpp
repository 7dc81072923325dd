// The networks of hflayers' bit-pattern demo (see bit_pattern_nets.h; spec G.2).
#include <hopgrad/models/bit_pattern_nets.h>

#include <array>
#include <ostream>
#include <string>

#include <fmt/format.h>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/core/error.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {

namespace {

constexpr std::array<std::pair<BitNetKind, std::string_view>, 6> kNames{{
    {BitNetKind::Hopfield, "hopfield"},
    {BitNetKind::HopfieldAdapted, "hopfield_adapted"},
    {BitNetKind::Pooling, "pooling"},
    {BitNetKind::PoolingAdapted, "pooling_adapted"},
    {BitNetKind::Lookup, "lookup"},
    {BitNetKind::LookupAdapted, "lookup_adapted"},
}};

bool adapted(BitNetKind kind) {
  return kind == BitNetKind::HopfieldAdapted || kind == BitNetKind::PoolingAdapted ||
         kind == BitNetKind::LookupAdapted;
}

// The demo's Hopfield arguments: input_size only, or the adapted set.
nn::HopfieldOptions hopfield_options(const BitPatternNetOptions& o) {
  nn::HopfieldOptions h = nn::HopfieldOptions(o.num_bits()).separation(o.separation());
  if (!adapted(o.kind())) return h;
  if (o.kind() == BitNetKind::LookupAdapted) return h.hidden_size(8).pattern_size(8).scaling(0.25).dropout(0.5);
  return h.hidden_size(8).num_heads(8).update_steps_max(3).scaling(0.25).dropout(0.5);
}

}  // namespace

std::string_view to_string(BitNetKind kind) {
  for (const auto& [k, name] : kNames)
    if (k == kind) return name;
  return "?";
}

BitNetKind bit_net_kind_from_string(std::string_view name) {
  std::string accepted;
  for (const auto& [k, n] : kNames) {
    if (n == name) return k;
    accepted += (accepted.empty() ? "" : ", ") + std::string(n);
  }
  HG_FAIL("BitPatternNet: unknown network '{}'; expected one of {}", name, accepted);
}

BitPatternNetImpl::BitPatternNetImpl(const BitPatternNetOptions& options_)
    : Module("BitPatternNet"), options(options_) {
  const int64_t bits = options.num_bits(), n = options.num_instances();
  HG_CHECK(bits > 0 && n > 0 && options.quantity() > 0,
           "BitPatternNet: num_bits, num_instances and quantity must be positive, got {}, {}, {}", bits, n,
           options.quantity());
  switch (options.kind()) {
    case BitNetKind::Hopfield:
    case BitNetKind::HopfieldAdapted:
      hopfield = register_module("hopfield", nn::Hopfield(hopfield_options(options)));
      out = register_module("out", nn::Linear(n * hopfield->output_dim(), 1));
      break;
    case BitNetKind::Pooling:
    case BitNetKind::PoolingAdapted:
      pooling = register_module("pooling", nn::HopfieldPooling(nn::HopfieldPoolingOptions(hopfield_options(options))));
      out = register_module("out", nn::Linear(pooling->hopfield->output_dim(), 1));
      break;
    case BitNetKind::Lookup:
    case BitNetKind::LookupAdapted: {
      auto lookup_options = nn::HopfieldLayerOptions(hopfield_options(options)).quantity(options.quantity());
      if (options.kind() == BitNetKind::LookupAdapted)
        lookup_options.lookup_weights_as_separated(true).lookup_targets_as_trainable(false);
      lookup = register_module("lookup", nn::HopfieldLayer(lookup_options));
      out = register_module("out", nn::Linear(n * lookup->hopfield->output_dim(), 1));
      break;
    }
  }
}

// logit = W flatten(H(bags)) + b
Tensor BitPatternNetImpl::forward(const Tensor& bags) {
  const int64_t bits = options.num_bits(), n = options.num_instances();
  const bool pools = static_cast<bool>(pooling);
  HG_CHECK(bags.defined() && bags.dim() == 3 && bags.size(2) == bits && (pools || bags.size(1) == n),
           "BitPatternNet({}): expected bags [B, {}, {}], got {}", to_string(options.kind()), pools ? "N" : std::to_string(n),
           bits, bags.defined() ? bags.desc() : "undefined");
  Tensor h = hopfield ? hopfield(bags) : pools ? pooling(bags) : lookup(bags);
  return out(h.flatten(1)).squeeze(1);
}

void BitPatternNetImpl::init_lookup(const Tensor& patterns) {
  HG_CHECK(lookup, "BitPatternNet({}): init_lookup needs a lookup network", to_string(options.kind()));
  const Tensor& stored = lookup->lookup_weights;
  HG_CHECK(patterns.defined() && patterns.dim() == 2 && patterns.size(0) == options.quantity() &&
               patterns.size(1) == stored.size(2),
           "BitPatternNet({}): init_lookup expected patterns [{}, {}], got {}", to_string(options.kind()),
           options.quantity(), stored.size(2), patterns.defined() ? patterns.desc() : "undefined");
  NoGradGuard no_grad;
  // The demo's targets (separate and frozen) keep their random initialisation.
  stored.copy_(patterns.to(stored.device()).to(stored.dtype()).unsqueeze(0));
}

void BitPatternNetImpl::pretty_print(std::ostream& stream) const {
  stream << fmt::format("BitPatternNet({}, bits={}, instances={}, separation={})", to_string(options.kind()),
                        options.num_bits(), options.num_instances(), nn::to_string(options.separation().kind()));
}

}  // namespace hg::models
