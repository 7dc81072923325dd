// mnist_bags: multiple-instance learning on bags of MNIST digits — a bag is positive when it holds the target
// digit (9) — with the nonparametric MNISTModel (spec C.4) and any separation function as its Hopfield pooling,
// optionally with LwPF's forgetting unit. Two bag forms (nn/data/mnist_bags.h):
//  - paired (NonparametricHopfield's mnist_mil_main.py, spec C.5): fixed-size bags in balanced pairs, one with
//    --positives target digits and one with none;
//  - ilse (Ilse et al. 2018, spec F.1): bag lengths ~ N(10, 2²), instances drawn with replacement, label = any 9.
//
//   h = LayerNorm(W_e x);  z = LayerNorm(GELU(HopfieldPooling_sep(h)));  logit = W z;  loss = BCE-with-logits
//
// Data: the MNIST test set (t10k, the only image file in the shared data folder): training bags are drawn from its
// first 8000 images, test bags from the last 2000, so no image is in both. Without MNIST the program says so and
// exits 0.
//
//   mnist_bags                                   # paired and Ilse bags, 4 poolings, 2 seeds, a few minutes
//   mnist_bags --form=paired --bag-size=50 --train-bags=4000 --test-bags=1000 --epochs=100 --batch-size=256 \
//              --d-model=256                     # mnist_mil_main.py's scale (spec C.5)
//   mnist_bags --models=softmax,topk --lwpf=both --seeds=5
//
// Writes <out-dir>/mnist_bags.csv (one row per form, model, seed and epoch) and <out-dir>/mnist_bags.svg (training
// loss and test AUC per model, mean over seeds). Exits 2 when a loss is not finite and 3 when the best model's mean
// test AUC is below --min-auc.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/nonparametric.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;
namespace models = hg::models;

struct Options {
  hg::train::CommonFlags common;
  std::string form = "both";
  std::string models = "softmax,sparsemax,topk,linear";
  std::string lwpf = "off";
  int seeds = 2;
  int64_t train_bags = 400;
  int64_t test_bags = 400;
  int64_t bag_size = 10;
  int64_t positives = 1;
  double prob = 0.5;  ///< the reference's `prob`: dropout (dense kinds), top-K fraction, random-mask probability
  int64_t d_model = 64;  ///< the reference's argparse default is 256 (its unused configs/*.json say 64)
  int64_t num_heads = 4;
  int64_t num_pattern = 2;
  double scale = 0.1;
  double weight_decay = 0.01;
  double min_auc = 0.0;
};

bool has_mnist(const fs::path& dir) {
  return fs::exists(dir / "t10k-images-idx3-ubyte.gz") || fs::exists(dir / "t10k-images-idx3-ubyte");
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

bool forms_scores(nn::SeparationKind kind) {
  return kind != nn::SeparationKind::Linear && kind != nn::SeparationKind::RandomFeatures &&
         kind != nn::SeparationKind::ReluFeatures;
}

/// The separation of a model name with the reference's `prob` where it applies (spec C.4: top-K keeps
/// ⌊prob·S⌋, the random mask drops with probability prob).
nn::SeparationOptions separation_for(const std::string& name, const Options& opt, bool lwpf) {
  nn::SeparationOptions s(nn::separation_kind_from_string(name));
  s.top_fraction(opt.prob).mask_prob(opt.prob);
  if (lwpf) s.forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU));
  return s;
}

struct Split {
  std::vector<hg::data::Bag> train, test;
  std::string description;
};

Split make_bags(const std::string& form, const hg::data::MnistSplit& mnist, const Options& opt, uint64_t seed) {
  const int64_t n = mnist.images.size(0), n_train = n * 4 / 5;
  hg::Tensor train_images = mnist.images.narrow(0, 0, n_train), train_labels = mnist.labels.narrow(0, 0, n_train);
  hg::Tensor test_images = mnist.images.narrow(0, n_train, n - n_train),
             test_labels = mnist.labels.narrow(0, n_train, n - n_train);
  Split s;
  if (form == "paired") {
    auto options = hg::data::PairedMnistBagsOptions().bag_size(opt.bag_size).positives_per_bag(opt.positives);
    s.train = hg::data::paired_mnist_bags(train_images, train_labels,
                                          options.num_pairs(opt.train_bags / 2).seed(seed));
    s.test = hg::data::paired_mnist_bags(test_images, test_labels, options.num_pairs(opt.test_bags / 2).seed(seed + 1));
    s.description = fmt::format("paired bags of {} ({} target digit{} in the positive one)", opt.bag_size,
                                opt.positives, opt.positives > 1 ? "s" : "");
  } else {
    auto options = hg::data::MnistBagsOptions();
    s.train = hg::data::mnist_bags(train_images, train_labels, options.num_bags(opt.train_bags).seed(seed));
    s.test = hg::data::mnist_bags(test_images, test_labels, options.num_bags(opt.test_bags).seed(seed + 1));
    s.description = "Ilse bags (length ~ N(10, 2²), with replacement)";
  }
  double positives = 0;
  for (const auto& bag : s.train) positives += bag.label.item<float>();
  s.description += fmt::format(": {} training bags ({:.0f}% positive) from t10k[0, {}), {} test bags from t10k[{}, {})",
                               s.train.size(), 100 * positives / static_cast<double>(s.train.size()), n_train,
                               s.test.size(), n_train, n);
  return s;
}

struct Run {
  std::vector<double> train_loss, test_auc, test_accuracy;
};

std::string mean_std(const std::vector<double>& v, double scale) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  const double sd = v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0;
  return scale == 1 ? fmt::format("{:.3f} ± {:.3f}", mean, sd) : fmt::format("{:5.1f} ± {:3.1f}", scale * mean, scale * sd);
}

int run(const Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  const fs::path dir = opt.common.data_dir / "mnist";
  const hg::data::MnistSplit mnist = hg::data::load_mnist(
      dir, /*train=*/false, hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));

  struct Config {
    std::string form, model;
    bool lwpf;
    std::string label() const { return fmt::format("{} {}{}", form, model, lwpf ? " + LwPF" : ""); }
  };
  std::vector<Config> configs;
  for (const std::string& form : opt.form == "both" ? std::vector<std::string>{"paired", "ilse"}
                                                    : std::vector<std::string>{opt.form})
    for (const std::string& name : split_list(opt.models)) {
      if (opt.lwpf != "on") configs.push_back({form, name, false});
      if (opt.lwpf != "off" && forms_scores(nn::separation_kind_from_string(name))) configs.push_back({form, name, true});
    }
  fmt::print("mnist_bags: MNIST t10k from {}; {} configuration(s) × {} seed(s), {} epochs, MNISTModel(d_model {}, {} "
             "heads, {} patterns, β {}), AdamW lr {} (cosine) wd {}, batch {}, on {}\n",
             dir.string(), configs.size(), opt.seeds, opt.common.epochs, opt.d_model, opt.num_heads, opt.num_pattern,
             opt.scale, opt.common.lr, opt.weight_decay, opt.common.batch_size, device);

  const fs::path csv_path = opt.common.out_dir / "mnist_bags.csv", svg_path = opt.common.out_dir / "mnist_bags.svg";
  hg::train::CsvLog log(csv_path, {"config", "seed", "epoch", "train_loss", "test_auc", "test_accuracy", "seconds"});
  hg::train::Panel loss_panel{"train loss", {}}, auc_panel{"test AUC", {}};
  std::vector<std::vector<Run>> runs(configs.size());
  const bool show_progress = opt.common.show_progress();
  std::string last_form;
  for (size_t k = 0; k < configs.size(); ++k) {
    const Config& c = configs[k];
    fmt::print("[{}] {}\n", k, c.label());
    for (int s = 0; s < opt.seeds; ++s) {
      const uint64_t seed = opt.common.seed + static_cast<uint64_t>(s);
      const Split bags = make_bags(c.form, mnist, opt, seed);  // the bags change with the seed, too
      if (c.form != last_form || s == 0) fmt::print("  seed {}: {}\n", seed, bags.description), last_form = c.form;
      const hg::data::BagBatch test = hg::data::collate_bags(bags.test);
      const hg::Tensor test_x = test.instances.to(device), test_mask = test.padding_mask.to(device);
      hg::manual_seed(seed);
      models::MNISTModel model(models::MNISTModelOptions().pooling(models::PoolingOptions(opt.d_model)
                                                                       .num_heads(opt.num_heads)
                                                                       .scale(opt.scale)
                                                                       .num_pattern(opt.num_pattern)
                                                                       .dropout(opt.prob)
                                                                       .separation(separation_for(c.model, opt, c.lwpf))));
      model->to(device);
      hg::optim::AdamW optimizer(model->parameters(),
                                 hg::optim::AdamWOptions(opt.common.lr).weight_decay(opt.weight_decay));
      hg::optim::CosineAnnealingLR schedule(optimizer, /*T_max=*/opt.common.epochs);
      auto loader = hg::data::make_data_loader(
          std::make_shared<hg::data::BagDataset>(bags.train),
          hg::data::DataLoaderOptions().batch_size(opt.common.batch_size).shuffle(true).seed(seed));
      Run r;
      double seconds = 0;
      for (int epoch = 1; epoch <= opt.common.epochs; ++epoch) {
        model->train();
        hg::train::ProgressBar bar(fmt::format("  seed {} epoch {}/{}", seed, epoch, opt.common.epochs), loader.size(),
                                   show_progress);
        for (const hg::data::BagBatch& batch : loader) {
          hg::Tensor x = batch.instances.to(device), mask = batch.padding_mask.to(device);
          hg::Tensor loss = hg::binary_cross_entropy_with_logits(model(x, mask), batch.labels.to(device));
          optimizer.zero_grad();
          loss.backward();
          optimizer.step();
          const double value = loss.item<float>();
          if (!std::isfinite(value)) {
            fmt::print(stderr, "mnist_bags: {} diverged: loss {} in epoch {} (try a smaller --lr)\n", c.label(), value,
                       epoch);
            return 2;
          }
          bar.update(value, x.size(0));
        }
        schedule.step();
        hg::Tensor logits;
        {
          hg::NoGradGuard no_grad;
          model->eval();
          logits = model(test_x, test_mask);
        }
        const double auc = hg::metrics::roc_auc(logits, test.labels);
        const double accuracy = (hg::gt(logits.to(hg::kCPU), 0.0).to(hg::kFloat32) == test.labels)
                                    .to(hg::kFloat64)
                                    .mean()
                                    .item<double>();
        seconds += bar.elapsed_seconds();
        if (show_progress || epoch % 5 == 0 || epoch == opt.common.epochs)
          bar.finish(fmt::format("  seed {} epoch {:>3}/{}  loss {:.4f}  test AUC {:.4f}  accuracy {:5.1f}%  ({:.1f} s)",
                                 seed, epoch, opt.common.epochs, bar.mean_loss(), auc, 100 * accuracy, seconds));
        r.train_loss.push_back(bar.mean_loss());
        r.test_auc.push_back(auc);
        r.test_accuracy.push_back(accuracy);
        log.write({static_cast<double>(k), static_cast<double>(seed), static_cast<double>(epoch), bar.mean_loss(), auc,
                   accuracy, seconds});
      }
      runs[k].push_back(std::move(r));
    }
    hg::train::Series loss{configs[k].label(), {}, {}}, auc{configs[k].label(), {}, {}, true};
    for (int e = 0; e < opt.common.epochs; ++e) {
      double l = 0, a = 0;
      for (const Run& r : runs[k]) l += r.train_loss[static_cast<size_t>(e)], a += r.test_auc[static_cast<size_t>(e)];
      loss.x.push_back(e + 1), auc.x.push_back(e + 1);
      loss.y.push_back(l / opt.seeds), auc.y.push_back(a / opt.seeds);
    }
    loss_panel.series.push_back(std::move(loss));
    auc_panel.series.push_back(std::move(auc));
    hg::train::write_svg_plot(svg_path, std::vector<hg::train::Panel>{loss_panel, auc_panel}, "mnist_bags");
  }

  fmt::print("\nTest ROC-AUC and accuracy (logit > 0) at the last epoch, mean ± std over {} seed(s). The references "
             "publish no number for these settings (spec C.5: plots and a sentence; F.1's hflayers demo: none)\n",
             opt.seeds);
  fmt::print("| {:<30} | {:>13} | {:>13} | {:>13} | {:>8} |\n", "bags, pooling", "test AUC", "max AUC", "accuracy %",
             "paper");
  fmt::print("|{:-<32}|{:-<15}|{:-<15}|{:-<15}|{:-<10}|\n", "", "", "", "", "");
  double best = 0;
  for (size_t k = 0; k < configs.size(); ++k) {
    std::vector<double> auc, max_auc, accuracy;
    for (const Run& r : runs[k]) {
      auc.push_back(r.test_auc.back());
      max_auc.push_back(*std::max_element(r.test_auc.begin(), r.test_auc.end()));
      accuracy.push_back(r.test_accuracy.back());
    }
    best = std::max(best, std::accumulate(auc.begin(), auc.end(), 0.0) / static_cast<double>(auc.size()));
    fmt::print("| {:<30} | {:>13} | {:>13} | {:>13} | {:>8} |\n", configs[k].label(), mean_std(auc, 1),
               mean_std(max_auc, 1), mean_std(accuracy, 100), "–");
  }
  fmt::print("wrote {} and {}\n", csv_path.string(), svg_path.string());
  if (best < opt.min_auc) {
    fmt::print(stderr, "mnist_bags: the best mean test AUC {:.3f} is below --min-auc {:.3f}\n", best, opt.min_auc);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.common.epochs = 10;
  opt.common.batch_size = 16;  // the reference: 256, with 10× the bags and 10× the epochs
  opt.common.lr = 1e-3;
  opt.common.seed = 1111;
  opt.common.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  opt.common.out_dir = "runs/mnist_bags";
  CLI::App app{"MNIST-bags multiple-instance learning with nonparametric Hopfield pooling (MNISTModel)"};
  hg::train::add_common_flags(app, opt.common);
  app.add_option("--form", opt.form, "paired (NonparametricHopfield), ilse (Ilse et al.), or both")
      ->type_name("NAME")
      ->check(CLI::IsMember({"paired", "ilse", "both"}).description(""));
  app.add_option("--models", opt.models,
                 "comma-separated separation functions of the pooling: softmax, sparsemax, entmax15, topk, random, "
                 "linear, favor, relu_features (the reference's 'favor'), ...")
      ->type_name("LIST");
  app.add_option("--lwpf", opt.lwpf, "off, on, or both: each pooling without and with a PFU forgetting unit")
      ->type_name("MODE")
      ->check(CLI::IsMember({"off", "on", "both"}).description(""));
  app.add_option("--seeds", opt.seeds, "runs per model (bags and initialisation from --seed, --seed + 1, ...)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1000));
  app.add_option("--train-bags", opt.train_bags, "training bags (paired: rounded down to pairs)")
      ->type_name("N")
      ->check(hg::train::in_range(2, 1e6));
  app.add_option("--test-bags", opt.test_bags, "test bags (paired: rounded down to pairs)")
      ->type_name("N")
      ->check(hg::train::in_range(2, 1e6));
  app.add_option("--bag-size", opt.bag_size, "paired: instances per bag")->type_name("N")->check(hg::train::in_range(1, 1e4));
  app.add_option("--positives", opt.positives, "paired: target digits in a positive bag")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e4));
  app.add_option("--prob", opt.prob,
                 "the reference's prob: attention dropout of the dense kinds, top-K fraction, random-mask probability")
      ->type_name("X")
      ->check(hg::train::in_range(0, 0.99));
  app.add_option("--d-model", opt.d_model, "embedding width")->type_name("N")->check(hg::train::in_range(1, 1e5));
  app.add_option("--heads", opt.num_heads, "pooling heads (must divide --d-model)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e4));
  app.add_option("--num-pattern", opt.num_pattern, "learned pooling queries (the reference: 4 for bag size 100)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1e4));
  app.add_option("--scale", opt.scale, "β of the pooling")->type_name("X")->check(hg::train::positive());
  app.add_option("--weight-decay", opt.weight_decay, "AdamW's decoupled weight decay, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--min-auc", opt.min_auc, "fail (exit 3) when the best mean test AUC is below this, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  CLI11_PARSE(app, argc, argv);
  if (!has_mnist(opt.common.data_dir / "mnist")) {
    fmt::print("mnist_bags: skipped: no MNIST t10k under {} (scripts/fetch-data.sh downloads it; or pass "
               "--data-dir)\n",
               (opt.common.data_dir / "mnist").string());
    return 0;
  }
  try {
    for (const std::string& name : split_list(opt.models)) nn::separation_kind_from_string(name);  // typos first
    return run(opt);
  } catch (const hg::Error& e) {
    fmt::print(stderr, "mnist_bags: {}\n", e.what());
    return 1;
  }
}
