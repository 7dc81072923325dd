#pragma once
// Checkpoints: a model, its optimizer and where training stood, in one safetensors file, written atomically,
// so that a run can stop and resume with exactly the losses it would have had without stopping.
//
//   namespace ser = hg::serialize;
//   ser::TrainingState state;
//   state.step = step;  state.epoch = epoch;  state.config = config_json;
//   state.rng = ser::RngState::capture();  state.scheduler = schedule.state();
//   ser::save("run/last.safetensors", *model, &optimizer, state);
//   ...
//   ser::TrainingState resumed = ser::load("run/last.safetensors", *model, &optimizer);
//   resumed.rng.restore();                     // dropout masks and shuffles continue as before
//   schedule.load_state(*resumed.scheduler);
//
// What the file holds (keys; see docs/serialize.md):
//   tensors   model.<name>         every parameter and buffer, under its dotted name ("model.fc1.weight")
//             optim.<key>          the optimizer's tensors under its state_dict key ("optim.state.0.exp_avg")
//   metadata  format               "hopgrad.checkpoint"; format_version "1"
//             step, epoch          decimal integers
//             config               the run's configuration, JSON text
//             rng.seed, rng.offset the CPU generator's state (decimal)
//             rng.cuda.<i>.seed, rng.cuda.<i>.offset   CUDA device i's generator (one pair per device; none
//                                  without a GPU, and none in older checkpoints: those still load)
//             optimizer            "SGD", "Adam" or "AdamW" (only with an optimizer)
//             optim.<key>          the optimizer's scalars ("optim.param_groups.0.lr"), shortest round-trip text
//             scheduler.<key>      SchedulerState::to_map() (only with a scheduler state)
// The optimizer keys follow the convention at the top of nn/optim/optimizer.h.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <hopgrad/core/generator.h>
#include <hopgrad/nn/module.h>
#include <hopgrad/nn/optim/lr_scheduler.h>
#include <hopgrad/nn/optim/optimizer.h>

namespace hg::serialize {

/// A generator's (seed, offset).
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool operator==(const GeneratorState&) const = default;
};

/// The random-number state of a run: the CPU default generator's (seed, offset) and, by CUDA device index, the
/// CUDA default generators' (rand, randn and dropout on a CUDA tensor draw from its device's). With it, the random
/// numbers after a resume are the ones an uninterrupted run would have drawn, on every device.
struct RngState {
  uint64_t seed = 0;    ///< the CPU generator's
  uint64_t offset = 0;
  std::map<int, GeneratorState> cuda;  ///< device index → its default generator's state (empty without a GPU)

  /// The CPU default generator and the default generator of every CUDA device of this machine.
  static RngState capture();
  /// `generator` alone (`cuda` stays empty).
  static RngState capture(const Generator& generator);
  /// Puts the CPU default generator and every CUDA generator in `cuda` back in this state. The CUDA generators
  /// absent from `cuda` (a checkpoint written before they were saved, or on a machine with fewer GPUs) keep
  /// their state.
  void restore() const;
  /// Puts `generator` in the CPU generator's state (`cuda` is not used).
  void restore(Generator& generator) const;
};

/// Where training stood when the checkpoint was written.
struct TrainingState {
  int64_t step = 0;
  int64_t epoch = 0;
  std::string config = "{}";  ///< the run's configuration as JSON text (checked to be JSON when saving)
  RngState rng;
  std::optional<optim::SchedulerState> scheduler;  ///< a learning-rate scheduler's state, when there is one
};

/// Writes `module`'s parameters and buffers, `optimizer`'s state (when not null) and `state` to `path`
/// atomically: a crash during save leaves the previous file at `path` intact. CUDA tensors are copied to the
/// host one at a time.
void save(const std::filesystem::path& path, const nn::Module& module, const optim::Optimizer* optimizer,
          const TrainingState& state);

/// Loads a checkpoint written by save() into `module` and `optimizer` (when not null; a null optimizer loads
/// the model alone) and returns the training state. Every key and shape is checked before anything changes:
/// a missing key, an unexpected key or a shape mismatch throws hg::Error naming the first one, and leaves the
/// module and optimizer as they were. Values are copied into the module's tensors (converted to their dtype
/// and device, as torch's load_state_dict does), so handles to its parameters stay valid.
TrainingState load(const std::filesystem::path& path, nn::Module& module, optim::Optimizer* optimizer);

}  // namespace hg::serialize
