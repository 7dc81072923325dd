// Checkpoints (see checkpoint.h): a module, an optimizer and the training state in one safetensors file.
#include <hopgrad/nn/serialize/checkpoint.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/serialize/safetensors.h>

namespace hg::serialize {

namespace {

constexpr std::string_view kFormat = "hopgrad.checkpoint";
constexpr std::string_view kFormatVersion = "1";
constexpr std::string_view kModelPrefix = "model.";
constexpr std::string_view kOptimizerPrefix = "optim.";
constexpr std::string_view kSchedulerPrefix = "scheduler.";
constexpr std::string_view kCudaRngPrefix = "rng.cuda.";  // rng.cuda.<device index>.seed / .offset

std::string prefixed(std::string_view prefix, const std::string& key) { return std::string(prefix) + key; }

// fmt writes the shortest text that reads back to the same double (inf and nan included), so optimizer
// hyperparameters and step counts survive the trip through the metadata's strings exactly.
std::string format_double(double value) { return fmt::format("{}", value); }

// Parses all of `text` as a T (int64, uint64 or double), naming the metadata key when it is not one.
template <typename T> T parse_number(const std::string& text, const std::string& key, const std::string& where) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  HG_CHECK(!text.empty() && error == std::errc() && stop == end, "{}: metadata '{}' is '{}', expected {}", where, key,
           text, std::is_floating_point_v<T> ? "a number" : std::is_signed_v<T> ? "an integer" : "a non-negative integer");
  return value;
}

// Every metadata entry `prefix<key>`, as key → value.
std::map<std::string, std::string> with_prefix(const Metadata& metadata, std::string_view prefix) {
  std::map<std::string, std::string> out;
  for (auto it = metadata.lower_bound(std::string(prefix)); it != metadata.end() && it->first.starts_with(prefix); ++it)
    out.emplace(it->first.substr(prefix.size()), it->second);
  return out;
}

// The CUDA generators' states, rng.cuda.<i>.seed and rng.cuda.<i>.offset, by device index i. Checkpoints written
// before these keys existed have none: the map is then empty and restore() leaves the CUDA generators alone.
std::map<int, GeneratorState> cuda_rng_states(const Metadata& metadata, const std::string& where) {
  std::map<int, GeneratorState> states;
  std::map<int, int> fields;  // device index → bit 1: seed seen, bit 2: offset seen
  for (const auto& [rest, text] : with_prefix(metadata, kCudaRngPrefix)) {
    const std::string key = prefixed(kCudaRngPrefix, rest);
    const size_t dot = rest.find('.');
    const std::string field = dot == std::string::npos ? "" : rest.substr(dot + 1);
    HG_CHECK(field == "seed" || field == "offset",
             "{}: unexpected metadata '{}' (expected rng.cuda.<device index>.seed or rng.cuda.<device index>.offset)",
             where, key);
    const uint64_t parsed = parse_number<uint64_t>(rest.substr(0, dot), key + " (its device index)", where);
    const int index = static_cast<int>(std::min<uint64_t>(parsed, std::numeric_limits<int>::max()));
    try {
      (void)default_generator(Device::cuda(index));  // an index without a generator fails here, not in restore()
    } catch (const Error& e) {
      HG_FAIL("{}: metadata '{}': {}", where, key, e.what());
    }
    GeneratorState& state = states[index];
    (field == "seed" ? state.seed : state.offset) = parse_number<uint64_t>(text, key, where);
    fields[index] |= field == "seed" ? 1 : 2;
  }
  for (const auto& [index, seen] : fields)
    HG_CHECK(seen == 3, "{}: missing metadata '{}{}.{}' (a CUDA generator's state is a seed and an offset)", where,
             kCudaRngPrefix, index, seen == 1 ? "offset" : "seed");
  return states;
}

}  // namespace

RngState RngState::capture(const Generator& generator) {
  const auto [seed, offset] = generator.state();
  return {seed, offset, {}};
}

RngState RngState::capture() {
  RngState state = capture(default_generator());
  // Every device of this machine, used or not: an unused one is saved as (seed, 0), harmless to restore.
  for (int i = 0; i < std::min(cuda_device_count(), kMaxCudaGenerators); ++i) {
    const Generator& generator = default_generator(Device::cuda(i));
    const auto [seed, offset] = generator.state();
    state.cuda[i] = {seed, offset};
  }
  return state;
}

void RngState::restore(Generator& generator) const { generator.set_state(seed, offset); }

void RngState::restore() const {
  restore(default_generator());
  // The generator objects exist whether or not the device does, so a checkpoint from a machine with more GPUs
  // restores here too (the extra states are never drawn from).
  for (const auto& [index, state] : cuda) default_generator(Device::cuda(index)).set_state(state.seed, state.offset);
}

void save(const std::filesystem::path& path, const nn::Module& module, const optim::Optimizer* optimizer,
          const TrainingState& state) {
  HG_CHECK(nlohmann::json::accept(state.config),
           "save: {}: the config is not valid JSON (TrainingState::config holds JSON text, e.g. \"{{}}\"): '{}'",
           path.string(), state.config.substr(0, 80));
  TensorMap tensors;
  for (const auto& [name, tensor] : module.named_parameters()) tensors.emplace(prefixed(kModelPrefix, name), tensor);
  for (const auto& [name, tensor] : module.named_buffers()) tensors.emplace(prefixed(kModelPrefix, name), tensor);

  Metadata metadata{{"format", std::string(kFormat)},
                    {"format_version", std::string(kFormatVersion)},
                    {"step", std::to_string(state.step)},
                    {"epoch", std::to_string(state.epoch)},
                    {"config", state.config},
                    {"rng.seed", std::to_string(state.rng.seed)},
                    {"rng.offset", std::to_string(state.rng.offset)}};
  for (const auto& [index, generator] : state.rng.cuda) {
    HG_CHECK(index >= 0, "save: {}: TrainingState::rng.cuda has the negative device index {}", path.string(), index);
    const std::string prefix = fmt::format("{}{}.", kCudaRngPrefix, index);
    metadata.emplace(prefix + "seed", std::to_string(generator.seed));
    metadata.emplace(prefix + "offset", std::to_string(generator.offset));
  }
  if (optimizer != nullptr) {
    const optim::OptimizerStateDict dict = optimizer->state_dict();
    metadata.emplace("optimizer", dict.optimizer);
    for (const auto& [key, tensor] : dict.tensors) tensors.emplace(prefixed(kOptimizerPrefix, key), tensor);
    for (const auto& [key, value] : dict.scalars) metadata.emplace(prefixed(kOptimizerPrefix, key), format_double(value));
  }
  if (state.scheduler)
    for (const auto& [key, value] : state.scheduler->to_map())
      metadata.emplace(prefixed(kSchedulerPrefix, key), format_double(value));
  save_safetensors(path, tensors, metadata);
}

TrainingState load(const std::filesystem::path& path, nn::Module& module, optim::Optimizer* optimizer) {
  const SafetensorsFile file = load_safetensors(path);
  const std::string where = fmt::format("load: {}", path.string());
  auto meta = [&](const std::string& key) -> const std::string& {
    auto it = file.metadata.find(key);
    HG_CHECK(it != file.metadata.end(), "{}: missing metadata '{}'", where, key);
    return it->second;
  };

  // ---- the training state ---------------------------------------------------------------------------
  auto format = file.metadata.find("format");
  HG_CHECK(format != file.metadata.end() && format->second == kFormat,
           "{}: not a hopgrad checkpoint (metadata 'format' is {}, expected '{}'); load_safetensors reads any "
           "safetensors file", where, format == file.metadata.end() ? "missing" : "'" + format->second + "'", kFormat);
  HG_CHECK(meta("format_version") == kFormatVersion, "{}: checkpoint format version '{}', this build reads '{}'",
           where, meta("format_version"), kFormatVersion);
  TrainingState state;
  state.step = parse_number<int64_t>(meta("step"), "step", where);
  state.epoch = parse_number<int64_t>(meta("epoch"), "epoch", where);
  state.config = meta("config");
  state.rng.seed = parse_number<uint64_t>(meta("rng.seed"), "rng.seed", where);
  state.rng.offset = parse_number<uint64_t>(meta("rng.offset"), "rng.offset", where);
  state.rng.cuda = cuda_rng_states(file.metadata, where);
  if (auto entries = with_prefix(file.metadata, kSchedulerPrefix); !entries.empty()) {
    std::map<std::string, double> values;
    for (const auto& [key, text] : entries)
      values[key] = parse_number<double>(text, prefixed(kSchedulerPrefix, key), where);
    try {
      state.scheduler = optim::SchedulerState::from_map(values);
    } catch (const Error& e) {
      HG_FAIL("{}: scheduler state: {}", where, e.what());
    }
  }

  // ---- the module: every parameter and buffer, each with its shape, and nothing else ------------------
  std::vector<std::pair<Tensor, Tensor>> copies;  // (module tensor, checkpoint value)
  std::set<std::string> used;
  auto expect = [&](const nn::Named<Tensor>& named, const char* kind) {
    for (const auto& [name, target] : named) {
      const std::string key = prefixed(kModelPrefix, name);
      auto it = file.tensors.find(key);
      HG_CHECK(it != file.tensors.end(), "{}: missing key '{}' (the module's {} '{}' is not in the checkpoint)", where,
               key, kind, name);
      HG_CHECK(it->second.sizes() == target.sizes(), "{}: shape mismatch for '{}': the checkpoint has {}, the module's "
               "{} is {}", where, key, it->second.sizes(), kind, target.sizes());
      copies.emplace_back(target, it->second);
      used.insert(key);
    }
  };
  expect(module.named_parameters(), "parameter");
  expect(module.named_buffers(), "buffer");
  for (const auto& [key, tensor] : file.tensors) {
    if (key.starts_with(kOptimizerPrefix)) continue;
    HG_CHECK(used.count(key), "{}: unexpected key '{}' ({})", where, key,
             key.starts_with(kModelPrefix) ? "the module has no parameter or buffer of that name"
                                           : "checkpoint tensors are named model.<name> or optim.<key>");
  }

  // ---- the optimizer (checks everything itself and changes nothing when it throws) --------------------
  if (optimizer != nullptr) {
    auto name = file.metadata.find("optimizer");
    HG_CHECK(name != file.metadata.end(), "{}: the checkpoint has no optimizer state (it was saved without an "
             "optimizer); pass a null optimizer to load the model alone", where);
    optim::OptimizerStateDict dict{name->second, {}, {}};
    for (const auto& [key, tensor] : file.tensors)
      if (key.starts_with(kOptimizerPrefix)) dict.tensors.emplace(key.substr(kOptimizerPrefix.size()), tensor);
    for (const auto& [key, text] : with_prefix(file.metadata, kOptimizerPrefix))
      dict.scalars.emplace(key, parse_number<double>(text, prefixed(kOptimizerPrefix, key), where));
    try {
      optimizer->load_state_dict(dict);
    } catch (const Error& e) {
      HG_FAIL("{}: optimizer state (keys optim.<key>): {}", where, e.what());
    }
  }

  // Only now, with every check passed, does the module change. Copying into the existing tensors keeps the
  // optimizer's (and any user's) handles to them valid.
  NoGradGuard no_grad;
  for (const auto& [target, value] : copies) target.detach().copy_(value);
  return state;
}

}  // namespace hg::serialize
