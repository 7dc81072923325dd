// vit: image classification with a Vision Transformer, with and without LwPF partial forgetting in its
// attention (spec B.3–B.4), and with U-Hop's Vision Hopfield models, MHN against UMHN with its Stage I kernel
// training (spec D.4, D.6).
//
//   --model=vit       ViT (timm layout, models/vit.h) with --separation in every attention; variants "plain"
//                     and "lwpf" (the same network with the README's PFU: bias = threshold = global lower median,
//                     σ = 0.01)
//   --model=vih       U-Hop's ViH (one Hopfield association, CLS as the query, models/vih.h); variants "mhn" and
//                     "umhn" (LearnableHopfield, Stage I on the deep separation loss before training)
//   --model=deep_vih  the three-block ThreeLayerViH, same variants
//
// Data: CIFAR-10 binary batches when --data-dir has them (train on the first --train-images of data_batch_1..5,
// test on the first --test-images of test_batch; both normalised with the training set's channel means and stds,
// where the U-Hop reference normalises its test set with slightly different constants, spec D.4); else MNIST t10k (the first --train-images for training, the
// rest held out: the train split of MNIST is not in the shared data folder); else generated class-template images.
// The program says which it used.
//
//   vit                     # ViT-mini plain vs LwPF on MNIST: ~3 CPU-minutes on 2 cores, ~76-78 % held out
//   vit --model=vih         # ViH MHN vs UMHN: ~1 CPU-minute per run, ~66-67 % held out
//   vit --model=vih --dataset=cifar10 --patch=32 --embed-dim=512 --kernel-epochs=50 --epochs=25
//       --train-images=10000 --test-images=10000 --seeds=5                      # the U-Hop paper's setting
//   vit --preset=tiny --patch=4 --epochs=100 --dataset=cifar10 --train-images=50000 --device=cuda   # ViT-Tiny
//
// Writes per run (variant × seed) <out-dir>/<model>_<variant>_s<seed>.csv (one row per epoch), .svg (curves)
// and .ckpt (model, Adam, schedule, data order, generator state after each epoch; --resume continues every
// unfinished run from it and skips finished ones). Exits with status 2 when a run diverges and 3 when a variant's
// mean accuracy ends below --min-accuracy. The printed table also goes to <out-dir>/vit_results.csv (one row per
// variant: test accuracy in %, mean and std over seeds; scripts/make_results.py reads it).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/vih.h>
#include <hopgrad/models/vit.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;
namespace models = hg::models;

struct Options {
  hg::train::CommonFlags common;
  std::string model = "vit";
  std::string variants;  ///< empty: both of the model's variants
  std::string dataset = "auto";
  std::string preset = "mini";
  std::string separation = "softmax";
  int64_t train_images = 4000;
  int64_t test_images = 2000;
  int64_t patch = 0;  ///< 0: per dataset (see resolve_defaults)
  int64_t embed_dim = 0, depth = 0, heads = 0;  ///< 0: the preset's (ViT) or the defaults below (ViH)
  double attn_drop = 0.0, drop = 0.0, weight_decay = 0.0;
  int64_t kernel_epochs = 10, kernel_batch = 200;
  double kernel_lr = 0.1;
  int seeds = 1;
  bool resume = false;
  int stop_after = 0;
  double min_accuracy = 0.0;
};

struct Data {
  std::string name, description;
  hg::Tensor train_x, train_y, test_x, test_y;  ///< images [n, C, s, s], int64 labels [n]
  int64_t channels = 0, size = 0, classes = 10;
};

std::optional<fs::path> find_cifar(const fs::path& data_dir) {
  for (const fs::path& dir : {data_dir / "cifar10", data_dir / "cifar-10", data_dir})
    if (fs::exists(dir / "test_batch.bin") || fs::exists(dir / "cifar-10-batches-bin" / "test_batch.bin")) return dir;
  return std::nullopt;
}

bool has_mnist(const fs::path& dir) {
  return fs::exists(dir / "t10k-images-idx3-ubyte.gz") || fs::exists(dir / "t10k-images-idx3-ubyte");
}

Data load_cifar(const Options& opt, const fs::path& dir) {
  const auto norm = hg::data::Cifar10Options().mean(hg::data::kCifar10Mean).std(hg::data::kCifar10Std);
  hg::data::Cifar10Batch train = hg::data::load_cifar10(dir, /*train=*/true, norm);
  hg::data::Cifar10Batch test = hg::data::load_cifar10(dir, /*train=*/false, norm);
  const int64_t n = std::min(opt.train_images, train.images.size(0)), m = std::min(opt.test_images, test.images.size(0));
  return {"CIFAR-10",
          fmt::format("CIFAR-10 from {}: the first {} training images (data_batch_1..5), {} test images", dir.string(),
                      n, m),
          train.images.narrow(0, 0, n), train.labels.narrow(0, 0, n), test.images.narrow(0, 0, m),
          test.labels.narrow(0, 0, m), 3, 32, 10};
}

Data load_mnist(const Options& opt, const fs::path& dir) {
  hg::data::MnistSplit mnist = hg::data::load_mnist(
      dir, /*train=*/false, hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
  const int64_t total = mnist.images.size(0);
  HG_CHECK(opt.train_images < total, "vit: --train-images {} leaves nothing held out of the {} MNIST images in {}",
           opt.train_images, total, dir.string());
  const int64_t m = std::min(opt.test_images, total - opt.train_images);
  return {"MNIST t10k",
          fmt::format("MNIST t10k from {} (the train split is not available): {} training / {} held-out images",
                      dir.string(), opt.train_images, m),
          mnist.images.narrow(0, 0, opt.train_images), mnist.labels.narrow(0, 0, opt.train_images),
          mnist.images.narrow(0, opt.train_images, m), mnist.labels.narrow(0, opt.train_images, m), 1, 28, 10};
}

// Ten classes, each a fixed random 16×16 template (smoothed by 2×2 blocks), seen through N(0, 1) noise:
//   x = template[label] + ε,  ε ~ N(0, 1).
Data make_synthetic(const Options& opt) {
  constexpr int64_t kSize = 16, kClasses = 10;
  hg::Generator gen(opt.common.seed + 1000);
  hg::Tensor coarse = hg::randn({kClasses, 1, kSize / 2, kSize / 2}, hg::kFloat32, &gen);
  hg::Tensor templates = coarse.unsqueeze(3).unsqueeze(5)
                             .expand({kClasses, 1, kSize / 2, 2, kSize / 2, 2})
                             .reshape({kClasses, 1, kSize, kSize});
  auto make = [&](int64_t n) {
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = (i * 7 + i / kClasses) % kClasses;
    hg::Tensor y = hg::from_vector(labels, {n}, hg::kInt64);
    hg::Tensor x = hg::index_select(templates, 0, y) + hg::randn({n, 1, kSize, kSize}, hg::kFloat32, &gen);
    return std::pair{x, y};
  };
  auto [train_x, train_y] = make(opt.train_images);
  auto [test_x, test_y] = make(opt.test_images);
  return {"synthetic", fmt::format("generated 16×16 class-template images: {} training / {} test",
                                   opt.train_images, opt.test_images),
          train_x, train_y, test_x, test_y, 1, kSize, kClasses};
}

Data load_data(Options& opt) {
  const fs::path dir = opt.common.data_dir;
  std::string which = opt.dataset;
  if (which == "auto") {
    if (find_cifar(dir)) which = "cifar10";
    else if (has_mnist(dir / "mnist")) which = "mnist";
    else {
      fmt::print("vit: neither CIFAR-10 binary batches nor MNIST under {} (or pass --data-dir): using generated "
                 "images\n", dir.string());
      which = "synthetic";
    }
  }
  if (which == "cifar10") {
    auto found = find_cifar(dir);
    HG_CHECK(found.has_value(), "vit: --dataset=cifar10: no test_batch.bin under {} (or its cifar10/ or "
             "cifar-10-batches-bin/)", dir.string());
    return load_cifar(opt, *found);
  }
  if (which == "mnist") {
    HG_CHECK(has_mnist(dir / "mnist"), "vit: --dataset=mnist: no t10k idx files in {}", (dir / "mnist").string());
    return load_mnist(opt, dir / "mnist");
  }
  return make_synthetic(opt);
}

/// One trainable network behind a common face.
struct Network {
  std::shared_ptr<nn::Module> module;
  std::function<hg::Tensor(const hg::Tensor&)> forward;
  std::function<std::vector<double>(const hg::Tensor&)> stage_one;  ///< UMHN only
  std::string description;
};

int64_t patch_size(const Options& opt, const Data& data) {
  if (opt.patch > 0) return opt.patch;
  if (opt.model == "vit") return data.size == 28 ? 7 : 4;
  return data.size == 28 ? 7 : data.size == 32 ? 8 : 4;
}

Network make_network(const Options& opt, const Data& data, const std::string& variant) {
  const int64_t patch = patch_size(opt, data);
  HG_CHECK(data.size % patch == 0, "vit: --patch {} must divide the image size {} of {}", patch, data.size, data.name);
  if (opt.model == "vit") {
    models::ViTOptions o = opt.preset == "tiny"    ? models::ViTOptions::tiny(data.size, patch, data.classes)
                           : opt.preset == "small" ? models::ViTOptions::small(data.size, patch, data.classes)
                                                   : models::ViTOptions::mini(data.size, patch, data.classes);
    o.in_channels(data.channels).attn_drop_rate(opt.attn_drop).drop_rate(opt.drop);
    if (opt.embed_dim > 0) o.embed_dim(opt.embed_dim);
    if (opt.depth > 0) o.depth(opt.depth);
    if (opt.heads > 0) o.num_heads(opt.heads);
    nn::SeparationOptions sep(nn::separation_kind_from_string(opt.separation));
    if (variant == "lwpf") sep.forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU));
    o.separation(sep);
    models::ViT vit(o);
    return {vit.ptr(), [vit](const hg::Tensor& x) { return vit(x); }, nullptr,
            fmt::format("ViT-{} (width {}, depth {}, {} heads, patch {}, {}{})", opt.preset, o.embed_dim(), o.depth(),
                        o.num_heads(), patch, opt.separation, variant == "lwpf" ? " + LwPF PFU" : "")};
  }
  const bool deep = opt.model == "deep_vih";
  models::ViHOptions o = deep ? models::ViHOptions::deep(data.size, patch, data.classes)
                              : models::ViHOptions(data.size, patch, data.classes);
  o.in_channels(data.channels).embed_dim(opt.embed_dim > 0 ? opt.embed_dim : deep ? 64 : 128);
  if (opt.heads > 0) o.num_heads(opt.heads);
  if (opt.depth > 0) o.depth(opt.depth);
  o.memory(variant == "umhn" ? models::HopfieldMemory::UMHN : models::HopfieldMemory::MHN)
      .separation(nn::SeparationOptions(nn::separation_kind_from_string(opt.separation)))
      .attention_dropout(opt.attn_drop);
  const auto stage = models::ViHStageIOptions()
                         .epochs(opt.kernel_epochs)
                         .batch_size(opt.kernel_batch)
                         .lr(opt.kernel_lr)
                         .seed(opt.common.seed);
  std::string what = fmt::format("{} {} (width {}, {} head{}, patch {}, {})", deep ? "DeepViH" : "ViH",
                                 variant == "umhn" ? "UMHN" : "MHN", o.embed_dim(), o.num_heads(),
                                 o.num_heads() > 1 ? "s" : "", patch, opt.separation);
  if (deep) {
    models::DeepViH m(o);
    return {m.ptr(), [m](const hg::Tensor& x) { return m(x); },
            variant == "umhn" ? std::function([m, stage](const hg::Tensor& x) { return vih_stage_one(*m, x, stage); })
                              : nullptr,
            what};
  }
  models::ViH m(o);
  return {m.ptr(), [m](const hg::Tensor& x) { return m(x); },
          variant == "umhn" ? std::function([m, stage](const hg::Tensor& x) { return vih_stage_one(*m, x, stage); })
                            : nullptr,
          what};
}

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// In chunks of the training batch size: the LwPF global-median threshold is batch-coupled (spec B.3), so the
// test batches look like the training ones.
Evaluation evaluate(Network& net, const hg::Tensor& x, const hg::Tensor& y, int64_t chunk) {
  hg::NoGradGuard no_grad;
  net.module->eval();
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < x.size(0); begin += chunk) {
    const int64_t size = std::min(chunk, x.size(0) - begin);
    hg::Tensor target = y.narrow(0, begin, size), logits = net.forward(x.narrow(0, begin, size));
    loss_sum += hg::cross_entropy(logits, target, hg::Reduction::Sum).item<double>();
    correct += (hg::argmax(logits, 1) == target).sum().item<int64_t>();
  }
  net.module->train();
  const double n = static_cast<double>(x.size(0));
  return {loss_sum / n, static_cast<double>(correct) / n};
}

std::string config_json(const Options& opt, const std::string& dataset, const std::string& variant, int seed) {
  return fmt::format(R"({{"model": "{}", "variant": "{}", "dataset": "{}", "preset": "{}", "separation": "{}", )"
                     R"("train_images": {}, "test_images": {}, "patch": {}, "embed_dim": {}, "depth": {}, "heads": {}, )"
                     R"("attn_drop": {}, "drop": {}, "kernel_epochs": {}, "kernel_batch": {}, "kernel_lr": {}, )"
                     R"("epochs": {}, "batch_size": {}, "lr": {}, "weight_decay": {}, "seed": {}}})",
                     opt.model, variant, dataset, opt.preset, opt.separation, opt.train_images, opt.test_images,
                     opt.patch, opt.embed_dim, opt.depth, opt.heads, opt.attn_drop, opt.drop, opt.kernel_epochs,
                     opt.kernel_batch, opt.kernel_lr, opt.common.epochs, opt.common.batch_size, opt.common.lr,
                     opt.weight_decay, seed);
}

struct RunResult {
  int status = 0;  ///< 0, 2 (diverged) or 1 (stopped by --stop-after)
  double accuracy = 0;
};

RunResult train_run(const Options& opt, const Data& data, const std::string& variant, int seed, hg::Device device) {
  hg::manual_seed(static_cast<uint64_t>(seed));
  Network net = make_network(opt, data, variant);
  net.module->to(device);
  const std::string run = fmt::format("{}_{}_s{}", opt.model, variant, seed);
  const fs::path csv_path = opt.common.out_dir / (run + ".csv"), svg_path = opt.common.out_dir / (run + ".svg"),
                 checkpoint_path = opt.common.out_dir / (run + ".ckpt");
  const hg::Tensor train_x = data.train_x.to(device), train_y = data.train_y.to(device);
  const hg::Tensor test_x = data.test_x.to(device), test_y = data.test_y.to(device);

  hg::optim::Adam optimizer(net.module->parameters(),
                            hg::optim::AdamOptions(opt.common.lr).weight_decay(opt.weight_decay));
  hg::optim::CosineAnnealingLR schedule(optimizer, /*T_max=*/opt.common.epochs);
  auto train_set = std::make_shared<hg::data::TensorDataset>(train_x, train_y);
  auto loader = hg::data::make_data_loader(
      train_set, hg::data::DataLoaderOptions().batch_size(opt.common.batch_size).shuffle(true).seed(
                     opt.common.seed + static_cast<uint64_t>(seed)));
  const std::string config = config_json(opt, data.name, variant, seed);

  int start_epoch = 1;
  const bool resuming = opt.resume && fs::exists(checkpoint_path);
  if (resuming) {
    hg::serialize::TrainingState state = hg::serialize::load(checkpoint_path, *net.module, &optimizer);
    HG_CHECK(state.config == config,
             "vit: --resume: {} was written by a run with other settings:\n  checkpoint: {}\n  this run:   {}",
             checkpoint_path.string(), state.config, config);
    state.rng.restore();
    if (state.scheduler) schedule.load_state(*state.scheduler);
    start_epoch = static_cast<int>(state.epoch) + 1;
    loader.set_epoch(state.epoch);
    fmt::print("  {}: resuming from {} after epoch {}\n", run, checkpoint_path.string(), state.epoch);
  } else if (net.stage_one) {
    // U-Hop Stage I (once, before training): SGD on the deep separation loss over every parameter.
    std::vector<double> losses = net.stage_one(train_x);
    if (!losses.empty())
      fmt::print("  {}: Stage I, {} epochs of SGD lr {} on the separation loss: {:.4f} → {:.4f}\n", run,
                 losses.size(), opt.kernel_lr, losses.front(), losses.back());
  }
  hg::train::CsvLog log(csv_path,
                        {"epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy", "lr", "seconds"},
                        /*append=*/resuming);
  // Killed after logging an epoch but before its checkpoint: that row goes, and the epoch runs again.
  if (resuming && log.rows() >= static_cast<size_t>(start_epoch))
    log.drop_last(log.rows() - static_cast<size_t>(start_epoch - 1));
  double seconds = log.rows() > 0 ? log.column("seconds").back() : 0.0;
  Evaluation test;
  if (start_epoch > opt.common.epochs) {
    // Finished before (--resume): its result is the log's last row. Not evaluated again: a random separation
    // (--separation=random) draws its masks in eval mode too, so a new evaluation would differ from the logged one.
    if (log.rows() > 0) test.accuracy = log.column("test_accuracy").back(), test.loss = log.column("test_loss").back();
    else test = evaluate(net, test_x, test_y, opt.common.batch_size);
  }
  // Nothing is evaluated before the first epoch that runs: it would draw from the generator just restored, and
  // shift every later draw of a resumed run away from the uninterrupted run's.
  for (int epoch = start_epoch; epoch <= opt.common.epochs; ++epoch) {
    const double lr = optimizer.lr(0);
    hg::train::ProgressBar bar(fmt::format("{} epoch {}/{}", run, epoch, opt.common.epochs), loader.size(),
                               opt.common.show_progress());
    int64_t correct = 0;
    for (const hg::data::Example& batch : loader) {
      hg::Tensor logits = net.forward(batch.input);
      hg::Tensor loss = hg::cross_entropy(logits, batch.target);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      const double value = loss.item<float>();
      if (!std::isfinite(value)) {
        bar.finish(fmt::format("{} epoch {}: diverged", run, epoch));
        fmt::print(stderr, "vit: {} diverged: loss {} in epoch {} (try a smaller --lr)\n", run, value, epoch);
        return {2, 0.0};
      }
      correct += (hg::argmax(logits.detach(), 1) == batch.target).sum().item<int64_t>();
      bar.update(value, batch.input.size(0));
    }
    schedule.step();
    const double train_loss = bar.mean_loss();
    const double train_accuracy = static_cast<double>(correct) / static_cast<double>(train_set->size());
    test = evaluate(net, test_x, test_y, opt.common.batch_size);
    seconds += bar.elapsed_seconds();
    bar.finish(fmt::format("  {} epoch {:>3}/{}  loss {:.4f}  test loss {:.4f}  train {:5.2f}%  test {:5.2f}%  "
                           "lr {:.2e}  ({:.1f} s)",
                           run, epoch, opt.common.epochs, train_loss, test.loss, 100 * train_accuracy,
                           100 * test.accuracy, lr, seconds));
    log.write({static_cast<double>(epoch), train_loss, test.loss, train_accuracy, test.accuracy, lr, seconds});
    hg::train::write_svg_plot(svg_path, hg::train::panels_from_log(log, "epoch", {"lr", "seconds"}),
                              fmt::format("{}: {} on {}", run, net.description, data.name));
    hg::serialize::TrainingState state;
    state.step = epoch * static_cast<int64_t>(loader.size());
    state.epoch = epoch;
    state.config = config;
    state.rng = hg::serialize::RngState::capture();
    state.scheduler = schedule.state();
    hg::serialize::save(checkpoint_path, *net.module, &optimizer, state);
    if (epoch == opt.stop_after && epoch < opt.common.epochs) {
      fmt::print("vit: {} stopped after epoch {} (--stop-after); continue with --resume\n", run, epoch);
      return {1, test.accuracy};
    }
  }
  return {0, test.accuracy};
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The papers' numbers beside ours: U-Hop Table 1 (spec D.6) for CIFAR-10; LwPF reports none (spec B.4).
std::string paper_number(const Options& opt, const std::string& dataset, const std::string& variant) {
  if (opt.model == "vit") return "none published (spec B.4)";
  if (dataset != "CIFAR-10") return "CIFAR-10 only";
  const bool sparse = opt.separation == "sparsemax";
  if (variant == "mhn") return sparse ? "52.0 (Sparse MHM)" : "52.2 (MHM)";
  return sparse ? "55.4 (Sparse MHM + U-Hop)" : "55.2 (MHM + U-Hop)";
}

int run(Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  const Data data = load_data(opt);
  std::vector<std::string> variants = split_list(opt.variants);
  if (variants.empty())
    variants = opt.model == "vit" ? std::vector<std::string>{"plain", "lwpf"} : std::vector<std::string>{"mhn", "umhn"};
  for (const std::string& v : variants) {
    const bool ok = opt.model == "vit" ? (v == "plain" || v == "lwpf") : (v == "mhn" || v == "umhn");
    HG_CHECK(ok, "vit: --variants: '{}' is not a variant of --model={} (expected {})", v, opt.model,
             opt.model == "vit" ? "plain, lwpf" : "mhn, umhn");
  }
  fmt::print("vit: {}\n", data.description);
  fmt::print("vit: {}; variants {}; Adam lr {} (cosine), batch {}, {} epochs, {} seed{}, on {} ({} thread{})\n",
             make_network(opt, data, variants.front()).description, fmt::join(variants, ", "), opt.common.lr,
             opt.common.batch_size, opt.common.epochs, opt.seeds, opt.seeds > 1 ? "s" : "", device,
             opt.common.threads, opt.common.threads > 1 ? "s" : "");

  struct Row {
    std::string variant;
    std::vector<double> accuracies;
  };
  std::vector<Row> rows;
  for (const std::string& variant : variants) {
    Row row{variant, {}};
    for (int seed = 0; seed < opt.seeds; ++seed) {
      RunResult r = train_run(opt, data, variant, seed, device);
      if (r.status == 2) return 2;
      if (r.status == 1) return 0;
      row.accuracies.push_back(r.accuracy);
    }
    rows.push_back(row);
  }

  fmt::print("\n{} on {} ({} training / {} test images, {} epochs, {} seed{}): test accuracy, mean ± std over seeds\n",
             opt.model, data.name, data.train_x.size(0), data.test_x.size(0), opt.common.epochs, opt.seeds,
             opt.seeds > 1 ? "s" : "");
  fmt::print("  {:<8} {:>16}   {}\n", "variant", "ours (%)", "paper (%)");
  const fs::path results_path = opt.common.out_dir / "vit_results.csv";
  std::vector<std::vector<std::string>> table = {{"model", "variant", "data", "train_images", "test_images", "epochs",
                                                  "seeds", "accuracy_mean", "accuracy_std", "paper"}};
  int status = 0;
  for (const Row& row : rows) {
    const double n = static_cast<double>(row.accuracies.size());
    const double mean = std::accumulate(row.accuracies.begin(), row.accuracies.end(), 0.0) / n;
    double var = 0;
    for (double a : row.accuracies) var += (a - mean) * (a - mean);
    const double sd = row.accuracies.size() > 1 ? std::sqrt(var / (n - 1)) : 0.0;
    fmt::print("  {:<8} {:>9.2f} ± {:<4.2f}   {}\n", row.variant, 100 * mean, 100 * sd,
               paper_number(opt, data.name, row.variant));
    table.push_back({opt.model, row.variant, data.name, std::to_string(data.train_x.size(0)),
                     std::to_string(data.test_x.size(0)), std::to_string(opt.common.epochs), std::to_string(opt.seeds),
                     fmt::format("{}", 100 * mean), fmt::format("{}", 100 * sd),
                     paper_number(opt, data.name, row.variant)});
    if (mean < opt.min_accuracy) {
      fmt::print(stderr, "vit: {} mean accuracy {:.2f}% is below --min-accuracy {:.2f}%\n", row.variant, 100 * mean,
                 100 * opt.min_accuracy);
      status = 3;
    }
  }
  hg::train::write_results_csv("vit", results_path, table);
  fmt::print("wrote {} and the per-run CSV logs, SVG plots and checkpoints to {}\n", results_path.string(),
             opt.common.out_dir.string());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.common.epochs = 6;
  opt.common.batch_size = 64;
  opt.common.lr = 2e-3;
  opt.common.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  opt.common.out_dir = "runs/vit";
  CLI::App app{"Image classification with a ViT (with and without LwPF) or U-Hop's ViH models (MHN vs UMHN)"};
  hg::train::add_common_flags(app, opt.common);
  app.add_option("--model", opt.model, "vit, vih or deep_vih")
      ->type_name("NAME")
      ->check(CLI::IsMember({"vit", "vih", "deep_vih"}).description(""));
  app.add_option("--variants", opt.variants,
                 "comma-separated: plain,lwpf for vit; mhn,umhn for vih / deep_vih (empty: both)")
      ->type_name("LIST");
  app.add_option("--dataset", opt.dataset, "cifar10, mnist, synthetic, or auto (the first found, in that order)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"auto", "cifar10", "mnist", "synthetic"}).description(""));
  app.add_option("--preset", opt.preset, "vit size: mini (64 wide, 2 blocks, 4 heads), tiny or small (timm's)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"mini", "tiny", "small"}).description(""));
  app.add_option("--separation", opt.separation,
                 "separation function of every attention: softmax, softmax1, sparsemax, entmax15, entmax, topk, "
                 "random, window, linear, favor, relu_features")
      ->type_name("NAME");
  app.add_option("--train-images", opt.train_images, "training images (MNIST: from t10k, the rest held out)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e6));
  app.add_option("--test-images", opt.test_images, "test images (at most)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e6));
  app.add_option("--patch", opt.patch, "patch size (0: 7 for 28×28; vit 4, vih 8 for 32×32; 4 for 16×16)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1024));
  app.add_option("--embed-dim", opt.embed_dim, "token width (0: the preset's; vih 128, deep_vih 64)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1 << 16));
  app.add_option("--depth", opt.depth, "blocks (0: the preset's; deep_vih 3)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1000));
  app.add_option("--heads", opt.heads, "attention heads (0: the preset's; vih 1, deep_vih 4)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1024));
  app.add_option("--attn-drop", opt.attn_drop,
                 "dropout on the attention weights, in [0, 1] (vih, deep_vih: 0.1 unless given, U-Hop's default)")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--drop", opt.drop, "vit: dropout after the embedding, each residual branch and before the head")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--weight-decay", opt.weight_decay, "L2 penalty (Adam), in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--kernel-epochs", opt.kernel_epochs, "UMHN Stage I epochs (the reference: 50; deep: 20)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1e6));
  app.add_option("--kernel-batch", opt.kernel_batch, "UMHN Stage I batch size (the reference: 200; deep: 2048)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e7));
  app.add_option("--kernel-lr", opt.kernel_lr, "UMHN Stage I SGD learning rate")
      ->type_name("X")
      ->check(hg::train::positive());
  app.add_option("--seeds", opt.seeds, "runs per variant (seeds 0, 1, ...)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1000));
  app.add_flag("--resume", opt.resume, "continue every run from its checkpoint in --out-dir (same settings)");
  app.add_option("--stop-after", opt.stop_after, "stop the first run after this epoch, as if interrupted (0: never)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1e6));
  app.add_option("--min-accuracy", opt.min_accuracy, "fail (exit 3) when a variant's mean accuracy is below, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  CLI11_PARSE(app, argc, argv);
  if (app.count("--attn-drop") == 0 && (opt.model == "vih" || opt.model == "deep_vih"))
    opt.attn_drop = models::ViHOptions(32, 4, 10).attention_dropout();  // U-Hop's layers' default
  try {
    return run(opt);
  } catch (const hg::Error& e) {
    hg::train::print_error("vit", e);
    return 1;
  }
}
