// train_mlp: the main job — a multilayer perceptron learns to classify handwritten digits (MNIST), written the
// way a libtorch user would: nn:: layers, Adam with a cosine learning-rate schedule, a DataLoader, metrics, and
// the training toolkit's flags, progress bar, per-epoch CSV log and SVG plot of the curves.
//
//   logits = W₂ relu(W₁ x + b₁) + b₂        x [batch, 784], W₁ [hidden, 784], W₂ [10, hidden]
//   loss   = cross_entropy(logits, label)
//
// Data: the MNIST test set (t10k, the split in the shared data folder): the first --train-images for training,
// the rest held out for validation. Without MNIST in --data-dir (and with --dataset=spirals) it learns 2-D
// interleaved spirals instead, so the program runs anywhere.
//
//   train_mlp                                   # 5 epochs, ~10 s on 2 cores: ~96 % held-out accuracy
//   train_mlp --epochs=20 --hidden=512 --out-dir=runs/wide
//   train_mlp --dataset=spirals --classes=5 --device=cuda   # 30 epochs: ~99.9 %
//
// Writes <out-dir>/train_mlp.csv (one row per epoch), <out-dir>/train_mlp.svg (loss and accuracy curves) and,
// after every epoch, the checkpoint <out-dir>/train_mlp.ckpt (model, Adam state, schedule, data order and
// generator state, written atomically). --resume continues from it with exactly the losses an uninterrupted run
// has (tested: ctest -R train_mlp_resume).
// Exits with status 2 when training diverges (a non-finite loss, or a final loss no lower than the first
// epoch's) and 3 when the held-out accuracy ends below --min-accuracy.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numbers>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;

struct Options {
  hg::train::CommonFlags common;
  std::string dataset = "auto";
  int64_t train_images = 8000;
  int64_t hidden = 128;
  double weight_decay = 0.0;
  int64_t classes = 3;              ///< spirals only
  int64_t points_per_class = 5000;  ///< spirals only
  double noise = 0.2;               ///< spirals: standard deviation of the angle noise, in radians
  double min_accuracy = 0.0;
  bool resume = false;     ///< continue from <out-dir>/train_mlp.ckpt
  int stop_after = 0;      ///< stop (as if interrupted) after this epoch; 0: run every epoch
};

/// The settings a checkpoint must agree with to be resumed (JSON, stored in the checkpoint's metadata).
std::string config_json(const Options& opt, const std::string& dataset) {
  return fmt::format(R"({{"dataset": "{}", "train_images": {}, "hidden": {}, "classes": {}, "points_per_class": {}, )"
                     R"("noise": {}, "epochs": {}, "batch_size": {}, "lr": {}, "weight_decay": {}, "seed": {}}})",
                     dataset, opt.train_images, opt.hidden, opt.classes, opt.points_per_class, opt.noise,
                     opt.common.epochs, opt.common.batch_size, opt.common.lr, opt.weight_decay, opt.common.seed);
}

/// Inputs [n, features] and int64 labels [n], split into training and held-out parts.
struct Data {
  std::string description;
  hg::Tensor train_x, train_y, val_x, val_y;
  int64_t features = 0, classes = 0;
};

bool has_mnist(const fs::path& dir) {
  return fs::exists(dir / "t10k-images-idx3-ubyte.gz") || fs::exists(dir / "t10k-images-idx3-ubyte");
}

// MNIST t10k, normalised as torchvision's examples do, flattened to 784 features.
Data load_mnist(const Options& opt) {
  const fs::path dir = opt.common.data_dir / "mnist";
  hg::data::MnistSplit mnist = hg::data::load_mnist(
      dir, /*train=*/false, hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
  const int64_t n = mnist.images.size(0);
  HG_CHECK(opt.train_images < n, "train_mlp: --train-images {} leaves nothing held out of the {} images in {}",
           opt.train_images, n, dir.string());
  hg::Tensor x = mnist.images.reshape({n, -1});
  return {fmt::format("MNIST t10k from {}: {} training / {} held-out images", dir.string(), opt.train_images,
                      n - opt.train_images),
          x.narrow(0, 0, opt.train_images), mnist.labels.narrow(0, 0, opt.train_images),
          x.narrow(0, opt.train_images, n - opt.train_images),
          mnist.labels.narrow(0, opt.train_images, n - opt.train_images), x.size(1), 10};
}

// `classes` spiral arms in the plane, each turning once around the origin as its radius r grows from 0 to 1:
//   class k, point i:  r = i / n,  θ = 2π k / K + 2π r + noise·ε,  x = (r cos θ, r sin θ),  ε ~ N(0, 1).
// Shuffled with the seed, then split 80 / 20.
Data make_spirals(const Options& opt) {
  const int64_t n = opt.points_per_class, total = opt.classes * n;
  hg::Generator gen(opt.common.seed);
  std::vector<float> eps = hg::randn({total}, hg::kFloat32, &gen).to_vector<float>();
  std::vector<float> xy(2 * total);
  std::vector<int64_t> label(total), order(total);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(opt.common.seed));
  for (int64_t k = 0; k < opt.classes; ++k)
    for (int64_t i = 0; i < n; ++i) {
      int64_t src = k * n + i, dst = order[src];
      double r = static_cast<double>(i + 1) / n;
      double theta = 2 * std::numbers::pi * (static_cast<double>(k) / opt.classes + r) + opt.noise * eps[src];
      xy[2 * dst] = static_cast<float>(r * std::cos(theta));
      xy[2 * dst + 1] = static_cast<float>(r * std::sin(theta));
      label[dst] = k;
    }
  hg::Tensor x = hg::from_vector(xy, {total, 2}), y = hg::from_vector(label, {total}, hg::kInt64);
  const int64_t n_val = total / 5, n_train = total - n_val;
  return {fmt::format("{} spirals: {} training / {} held-out points", opt.classes, n_train, n_val),
          x.narrow(0, 0, n_train), y.narrow(0, 0, n_train), x.narrow(0, n_train, n_val), y.narrow(0, n_train, n_val),
          2, opt.classes};
}

// "mnist" or "spirals": auto picks MNIST when the data folder has it, and says so when it does not.
std::string resolve_dataset(const Options& opt) {
  if (opt.dataset != "auto") return opt.dataset;
  if (has_mnist(opt.common.data_dir / "mnist")) return "mnist";
  fmt::print("train_mlp: no MNIST under {} (scripts/fetch-data.sh downloads it; or pass --data-dir): "
             "training on spirals instead\n",
             (opt.common.data_dir / "mnist").string());
  return "spirals";
}

struct Evaluation {
  double loss = 0;
  hg::Tensor logits;  ///< [n, classes]
};

/// Mean cross-entropy and the logits over a whole split, in chunks that bound the activations' memory.
Evaluation evaluate(nn::Sequential& model, const hg::Tensor& x, const hg::Tensor& y) {
  hg::NoGradGuard no_grad;
  model->eval();
  constexpr int64_t kChunk = 4096;
  hg::Tensors logits;
  double loss_sum = 0;
  for (int64_t begin = 0; begin < x.size(0); begin += kChunk) {
    int64_t size = std::min(kChunk, x.size(0) - begin);
    logits.push_back(model(x.narrow(0, begin, size)));
    loss_sum += hg::cross_entropy(logits.back(), y.narrow(0, begin, size), hg::Reduction::Sum).item<double>();
  }
  model->train();
  return {loss_sum / static_cast<double>(x.size(0)), hg::cat(logits)};
}

int train(const Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  const Data data = opt.dataset == "mnist" ? load_mnist(opt) : make_spirals(opt);
  const hg::Tensor val_x = data.val_x.to(device), val_y = data.val_y.to(device);

  nn::Sequential model(nn::Linear(data.features, opt.hidden), nn::ReLU(), nn::Linear(opt.hidden, data.classes));
  model->to(device);
  hg::optim::Adam optimizer(model->parameters(), hg::optim::AdamOptions(opt.common.lr).weight_decay(opt.weight_decay));
  hg::optim::CosineAnnealingLR schedule(optimizer, /*T_max=*/opt.common.epochs);
  auto train_set = std::make_shared<hg::data::TensorDataset>(data.train_x.to(device), data.train_y.to(device));
  auto loader = hg::data::make_data_loader(
      train_set, hg::data::DataLoaderOptions().batch_size(opt.common.batch_size).shuffle(true).seed(opt.common.seed));

  const fs::path csv_path = opt.common.out_dir / "train_mlp.csv", svg_path = opt.common.out_dir / "train_mlp.svg",
                 checkpoint_path = opt.common.out_dir / "train_mlp.ckpt";
  const std::string config = config_json(opt, opt.dataset);
  int start_epoch = 1;
  if (opt.resume) {
    HG_CHECK(fs::exists(checkpoint_path), "train_mlp: --resume: there is no checkpoint {}", checkpoint_path.string());
    hg::serialize::TrainingState state = hg::serialize::load(checkpoint_path, *model, &optimizer);
    HG_CHECK(state.config == config,
             "train_mlp: --resume: {} was written by a run with other settings:\n  checkpoint: {}\n  this run:   {}",
             checkpoint_path.string(), state.config, config);
    state.rng.restore();
    if (state.scheduler) schedule.load_state(*state.scheduler);
    start_epoch = static_cast<int>(state.epoch) + 1;
    loader.set_epoch(state.epoch);  // the next epoch sees the order an uninterrupted run would
    fmt::print("train_mlp: resuming from {} after epoch {}\n", checkpoint_path.string(), state.epoch);
  }
  hg::train::CsvLog log(csv_path,
                        {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "seconds"},
                        /*append=*/opt.resume);
  // Killed after logging an epoch but before its checkpoint: that row goes, and the epoch runs again.
  if (opt.resume && log.rows() >= static_cast<size_t>(start_epoch))
    log.drop_last(log.rows() - static_cast<size_t>(start_epoch - 1));
  fmt::print("train_mlp: {}; MLP {}-{}-{}, Adam lr {} (cosine), batch {}, {} epochs, on {} ({} thread{})\n",
             data.description, data.features, opt.hidden, data.classes, opt.common.lr, opt.common.batch_size,
             opt.common.epochs, device, opt.common.threads, opt.common.threads > 1 ? "s" : "");

  const bool show_progress = opt.common.show_progress();
  double first_loss = 0, train_loss = 0, seconds = 0;
  if (log.rows() > 0) {  // resumed: the curves so far come from the log
    first_loss = log.column("train_loss").front();
    train_loss = log.column("train_loss").back();
    seconds = log.column("seconds").back();
  }
  Evaluation val;
  for (int epoch = start_epoch; epoch <= opt.common.epochs; ++epoch) {
    const double lr = optimizer.lr(0);
    hg::train::ProgressBar bar(fmt::format("epoch {}/{}", epoch, opt.common.epochs), loader.size(), show_progress);
    int64_t correct = 0;
    for (const hg::data::Example& batch : loader) {
      hg::Tensor logits = model(batch.input);
      hg::Tensor loss = hg::cross_entropy(logits, batch.target);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      const double value = loss.item<float>();
      if (!std::isfinite(value)) {
        bar.finish(fmt::format("epoch {}: diverged", epoch));
        fmt::print(stderr, "train_mlp: diverged: loss is {} in epoch {} (try a smaller --lr)\n", value, epoch);
        return 2;
      }
      correct += (hg::argmax(logits.detach(), 1) == batch.target).sum().item<int64_t>();
      bar.update(value, batch.input.size(0));
    }
    schedule.step();
    train_loss = bar.mean_loss();
    if (epoch == 1) first_loss = train_loss;
    const double train_accuracy = static_cast<double>(correct) / static_cast<double>(train_set->size());
    val = evaluate(model, val_x, val_y);
    const double val_accuracy = hg::metrics::accuracy(val.logits, val_y);
    seconds += bar.elapsed_seconds();
    bar.finish(fmt::format("epoch {:>3}/{}  loss {:.4f}  val loss {:.4f}  train accuracy {:5.2f}%  "
                           "val accuracy {:5.2f}%  lr {:.2e}  ({:.1f} s)",
                           epoch, opt.common.epochs, train_loss, val.loss, 100 * train_accuracy, 100 * val_accuracy,
                           lr, seconds));
    log.write({static_cast<double>(epoch), train_loss, val.loss, train_accuracy, val_accuracy, lr, seconds});
    // Redrawn every epoch, so the curves can be watched while the run goes on.
    hg::train::write_svg_plot(svg_path, hg::train::panels_from_log(log, "epoch", {"lr", "seconds"}),
                              "train_mlp: " + data.description);
    hg::serialize::TrainingState state;
    state.step = epoch * static_cast<int64_t>(loader.size());
    state.epoch = epoch;
    state.config = config;
    state.rng = hg::serialize::RngState::capture();
    state.scheduler = schedule.state();
    hg::serialize::save(checkpoint_path, *model, &optimizer, state);
    if (epoch == opt.stop_after && epoch < opt.common.epochs) {
      fmt::print("train_mlp: stopped after epoch {} (--stop-after); continue with --resume\n", epoch);
      return 0;
    }
  }

  if (!val.logits.defined()) val = evaluate(model, val_x, val_y);  // resumed after the last epoch: no epoch ran
  const double val_accuracy = hg::metrics::accuracy(val.logits, val_y);
  fmt::print("final: loss {:.4f} (first epoch {:.4f}); held out: accuracy {:.2f}%, balanced accuracy {:.2f}%, "
             "macro F1 {:.4f}\n",
             train_loss, first_loss, 100 * val_accuracy, 100 * hg::metrics::balanced_accuracy(val.logits, val_y),
             hg::metrics::f1_score(val.logits, val_y, hg::metrics::Average::Macro));
  fmt::print("confusion matrix (rows: true class, columns: predicted):\n{}\n",
             hg::metrics::confusion_matrix(val.logits, val_y, data.classes));
  fmt::print("wrote {} and {}\n", csv_path.string(), svg_path.string());
  if (opt.common.epochs > 1 && !(train_loss < first_loss)) {
    fmt::print(stderr, "train_mlp: diverged: the loss did not fall ({:.4f} → {:.4f})\n", first_loss, train_loss);
    return 2;
  }
  if (val_accuracy < opt.min_accuracy) {
    fmt::print(stderr, "train_mlp: held-out accuracy {:.2f}% is below --min-accuracy {:.2f}%\n", 100 * val_accuracy,
               100 * opt.min_accuracy);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.common.epochs = 5;
  opt.common.batch_size = 64;
  opt.common.lr = 2e-3;
  opt.common.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  opt.common.out_dir = "runs/train_mlp";
  CLI::App app{"Train an MLP classifier on MNIST (or 2-D spirals) with hopgrad"};
  hg::train::add_common_flags(app, opt.common);
  app.add_option("--dataset", opt.dataset,
                 "mnist, spirals, or auto: MNIST when --data-dir has it (spirals train for 30 epochs at lr 0.01 "
                 "unless --epochs and --lr say otherwise)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"auto", "mnist", "spirals"}).description(""));
  app.add_option("--train-images", opt.train_images, "MNIST: training images from t10k; the rest are held out")
      ->type_name("N")
      ->check(hg::train::in_range(1, 9999));
  app.add_option("--hidden", opt.hidden, "hidden units (≥ 1)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1 << 20));
  app.add_option("--weight-decay", opt.weight_decay, "L2 penalty added to the gradient (Adam), in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--classes", opt.classes, "spirals: number of arms (classes), ≥ 2")
      ->type_name("N")
      ->check(hg::train::in_range(2, 1000));
  app.add_option("--points-per-class", opt.points_per_class, "spirals: points per arm (≥ 5)")
      ->type_name("N")
      ->check(hg::train::in_range(5, 1e7));
  app.add_option("--noise", opt.noise, "spirals: angle noise (standard deviation, radians)")
      ->type_name("X")
      ->check(hg::train::in_range(0, 10));
  app.add_option("--min-accuracy", opt.min_accuracy, "fail (exit 3) below this held-out accuracy, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_flag("--resume", opt.resume, "continue from the checkpoint <out-dir>/train_mlp.ckpt (same settings)");
  app.add_option("--stop-after", opt.stop_after, "stop after this epoch, as if interrupted (0: never)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1e6));
  CLI11_PARSE(app, argc, argv);
  opt.dataset = resolve_dataset(opt);
  if (opt.dataset == "spirals") {  // a small problem: more, faster epochs than MNIST needs
    if (app.count("--epochs") == 0) opt.common.epochs = 30;
    if (app.count("--lr") == 0) opt.common.lr = 1e-2;
  }
  try {
    return train(opt);
  } catch (const hg::Error& e) {
    hg::train::print_error("train_mlp", e);
    return 1;
  }
}
