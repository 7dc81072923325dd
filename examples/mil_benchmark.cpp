// mil_benchmark: the real-world multiple-instance benchmark of Ramsauer et al. 2021 (Table 1; spec F.2) —
// Elephant, Fox, Tiger (Corel images as bags of segments, 230 features) and Musk1 (molecules as bags of
// conformations, 166 features) — with Hopfield pooling, attention MIL and the nonparametric variants.
//
//   bag [n, d] → model (models/mil.h) → logit;   loss = BCE-with-logits(logit, bag label)
//
// Protocol (repeated nested cross-validation): each repetition splits the bags into --outer-folds stratified
// folds; each outer fold is the test set once. Its training part is split again (stratified, 1/--inner-folds
// held out for validation); every configuration of the grid trains on the inner training part with AdamW, a
// cosine learning rate and gradient clipping; the configuration and epoch with the best validation ROC-AUC are
// chosen, and the test ROC-AUC at that epoch is the fold's result (the NonparametricHopfield protocol, spec C.5;
// the paper's full protocol is --paper-protocol: 10 outer folds × 5 repetitions, 160 epochs, a larger grid).
// Features are standardised with the mean and standard deviation of the outer training part's instances.
//
//   mil_benchmark                      # all four datasets, Hopfield pooling, 5 folds × 3 repetitions: ~3 min, 1 core
//   mil_benchmark --dataset=fox --model=gated
//   mil_benchmark --model=nph-sparsemax --grid-lr=1e-3,1e-4
//   mil_benchmark --paper-protocol --dataset=tiger   # 10 × 5 folds, 160 epochs, 24 configurations: hours
//
// Writes, under --out-dir: <dataset>_<model>_folds.csv (one row per outer fold: the chosen configuration, its
// validation and test AUC; --resume continues it, skipping finished folds, and refuses it when
// <dataset>_<model>_config.json records other settings), and per fold
// <dataset>_<model>_r<rep>_f<fold>.csv/.svg (the chosen configuration's curves). Prints a table of the mean
// ± std test ROC-AUC over folds and repetitions beside the paper's numbers, and writes it to
// mil_benchmark_results.csv (AUC × 100; one row per dataset; scripts/make_results.py reads it).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/mil.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;
namespace models = hg::models;

struct Options {
  hg::train::CommonFlags common;
  std::vector<std::string> datasets = {"elephant", "fox", "tiger", "musk1"};
  std::string model = "hopfield";
  std::string separation = "softmax";
  int64_t outer_folds = 5, inner_folds = 5, repetitions = 3;
  // The grid (every combination is tried on each outer fold).
  std::vector<double> grid_lr;  ///< default {--lr}
  bool may_skip_missing_data = true;  ///< hg::train::may_skip_missing_data, decided in main
  std::vector<double> grid_beta = {1.0};
  std::vector<double> grid_bag_dropout = {0.0, 0.75};
  std::vector<int64_t> grid_width = {64};
  int64_t embedding_layers = 1, heads = 4, head_size = 16, hidden = 32;
  double prob = 0.2;  ///< nph-topk / nph-random: the kept fraction / mask probability (the reference MILModel's prob)
  double weight_decay = 1e-2, clip = 1.0;
  bool resume = false;
  bool paper_protocol = false;
};

/// One point of the grid.
struct Config {
  double lr, beta, bag_dropout;
  int64_t width;
  std::string describe() const {
    return fmt::format("lr {:g}, beta {:g}, bag dropout {:g}, width {}", lr, beta, bag_dropout, width);
  }
};

std::vector<Config> grid(const Options& opt) {
  std::vector<Config> configs;
  for (double lr : opt.grid_lr)
    for (double beta : opt.grid_beta)
      for (double p : opt.grid_bag_dropout)
        for (int64_t width : opt.grid_width) configs.push_back({lr, beta, p, width});
  return configs;
}

/// The paper's Hopfield numbers (Table 1, AUC × 100, mean ± std); Musk1 is not in that table.
std::string paper_number(const std::string& dataset) {
  if (dataset == "tiger") return "91.3 ± 0.5";
  if (dataset == "fox") return "64.05 ± 0.4";
  if (dataset == "elephant") return "94.9 ± 0.3";
  return "—";
}

/// A model of the kind --model names: hopfield (Ramsauer F.2), attention / gated (Ilse et al.), nph-<separation>
/// (the nonparametric MILModel of C.4 with that separation).
struct AnyMIL {
  std::shared_ptr<nn::Module> module;  // the model, for parameters(), train()/eval(), to()
  std::function<models::MILOutput(const hg::Tensor&, const hg::Tensor&)> forward;
};

AnyMIL make_model(const Options& opt, const Config& c, int64_t features) {
  std::vector<int64_t> embedding(static_cast<size_t>(opt.embedding_layers), c.width);
  if (opt.model == "hopfield") {
    models::HopfieldMIL m(models::HopfieldMILOptions(features)
                              .embedding(embedding)
                              .num_heads(opt.heads)
                              .head_size(opt.head_size)
                              .beta(c.beta)
                              .hidden_size(opt.hidden)
                              .bag_dropout(c.bag_dropout)
                              .separation(nn::SeparationOptions(nn::separation_kind_from_string(opt.separation))));
    return {m.ptr(), [m](const hg::Tensor& x, const hg::Tensor& mask) mutable { return m(x, mask); }};
  }
  if (opt.model == "attention" || opt.model == "gated") {
    models::AttentionMIL m(models::AttentionMILOptions(features)
                               .embedding(embedding)
                               .attention_size(opt.hidden)
                               .gated(opt.model == "gated")
                               .bag_dropout(c.bag_dropout)
                               .separation(nn::SeparationOptions(nn::separation_kind_from_string(opt.separation))));
    return {m.ptr(), [m](const hg::Tensor& x, const hg::Tensor& mask) mutable { return m(x, mask); }};
  }
  HG_CHECK(opt.model.rfind("nph-", 0) == 0, "mil_benchmark: unknown --model '{}'", opt.model);
  // The reference MILModel's NPHPooling takes prob = 0.2 as its top-K fraction or mask probability.
  nn::SeparationOptions separation(nn::separation_kind_from_string(opt.model.substr(4)));
  separation.top_fraction(opt.prob).mask_prob(opt.prob);
  models::MILModel m(models::MILModelOptions(features)
                         .d_model(c.width)
                         .num_heads(opt.heads)
                         .scale(c.beta)
                         .dropout(c.bag_dropout)
                         .separation(separation));
  return {m.ptr(), [m](const hg::Tensor& x, const hg::Tensor& mask) mutable { return m(x, mask); }};
}

/// The bags at `indices`, padded into one batch, on `device`.
hg::data::BagBatch batch_of(const std::vector<hg::data::Bag>& bags, const std::vector<int64_t>& indices,
                            hg::Device device) {
  std::vector<hg::data::Bag> chosen;
  chosen.reserve(indices.size());
  for (int64_t i : indices) chosen.push_back(bags[static_cast<size_t>(i)]);
  hg::data::BagBatch batch = hg::data::collate_bags(chosen);
  batch.instances = batch.instances.to(device);
  batch.padding_mask = batch.padding_mask.to(device);
  batch.labels = batch.labels.to(device);
  return batch;
}

/// ROC-AUC of the model on one full batch (eval mode: no dropout).
double evaluate_auc(AnyMIL& model, const hg::data::BagBatch& batch) {
  hg::NoGradGuard no_grad;
  model.module->eval();
  hg::Tensor logits = model.forward(batch.instances, batch.padding_mask).logits;
  model.module->train();
  return hg::metrics::roc_auc(logits, batch.labels);
}

struct RunResult {
  double val_auc = -1, test_auc = 0;
  int best_epoch = 0;
  std::vector<std::vector<double>> curve;  ///< epoch, train_loss, val_auc, test_auc, lr
};

/// Trains one configuration on `train`, following validation and test AUC each epoch.
RunResult train_config(const Options& opt, const Config& c, const std::vector<hg::data::Bag>& bags,
                       const std::vector<int64_t>& train, const hg::data::BagBatch& val,
                       const hg::data::BagBatch& test, int64_t features, hg::Device device, uint64_t seed) {
  hg::manual_seed(seed);
  AnyMIL model = make_model(opt, c, features);
  model.module->to(device);
  hg::optim::AdamW optimizer(model.module->parameters(), hg::optim::AdamWOptions(c.lr).weight_decay(opt.weight_decay));
  hg::optim::CosineAnnealingLR schedule(optimizer, /*T_max=*/opt.common.epochs);
  std::mt19937_64 shuffle(seed);
  std::vector<int64_t> order = train;
  RunResult result;
  for (int epoch = 1; epoch <= opt.common.epochs; ++epoch) {
    const double lr = optimizer.lr(0);
    std::shuffle(order.begin(), order.end(), shuffle);
    double loss_sum = 0;
    for (size_t begin = 0; begin < order.size(); begin += static_cast<size_t>(opt.common.batch_size)) {
      const size_t end = std::min(order.size(), begin + static_cast<size_t>(opt.common.batch_size));
      hg::data::BagBatch batch =
          batch_of(bags, std::vector<int64_t>(order.begin() + static_cast<ptrdiff_t>(begin),
                                              order.begin() + static_cast<ptrdiff_t>(end)),
                   device);
      hg::Tensor loss =
          hg::binary_cross_entropy_with_logits(model.forward(batch.instances, batch.padding_mask).logits, batch.labels);
      optimizer.zero_grad();
      loss.backward();
      hg::optim::clip_grad_norm_(model.module->parameters(), opt.clip);
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(end - begin);
    }
    schedule.step();
    const double train_loss = loss_sum / static_cast<double>(order.size());
    HG_CHECK(std::isfinite(train_loss), "mil_benchmark: training diverged (loss {} in epoch {} with {})",
             train_loss, epoch, c.describe());
    const double val_auc = evaluate_auc(model, val), test_auc = evaluate_auc(model, test);
    // Model selection: the first epoch with the best validation AUC (the test AUC is only read there).
    if (val_auc > result.val_auc) {
      result.val_auc = val_auc;
      result.test_auc = test_auc;
      result.best_epoch = epoch;
    }
    result.curve.push_back({static_cast<double>(epoch), train_loss, val_auc, test_auc, lr});
  }
  return result;
}

/// Standardises features with the training instances' mean and std (features constant there are left as 0).
std::vector<hg::data::Bag> standardised(const std::vector<hg::data::Bag>& bags, const std::vector<int64_t>& train) {
  hg::Tensors instances;
  for (int64_t i : train) instances.push_back(bags[static_cast<size_t>(i)].instances);
  hg::Tensor all = hg::cat(instances, 0);
  hg::Tensor mean = hg::mean(all, {0}, true);
  hg::Tensor std = hg::sqrt(hg::mean((all - mean) * (all - mean), {0}, true));
  hg::Tensor scale = hg::where(std > 1e-8, 1.0 / hg::clamp_min(std, 1e-8), 0.0);
  std::vector<hg::data::Bag> out = bags;
  for (auto& bag : out) bag.instances = (bag.instances - mean) * scale;
  return out;
}

// Every setting that changes a dataset's fold results (the dataset itself is in the file's name), as JSON: a
// --resume must find the same in <dataset>_<model>_config.json before it reuses the folds logged there.
std::string config_json(const Options& opt, const std::string& dataset) {
  auto list = [](const auto& values) { return fmt::format("[{}]", fmt::join(values, ", ")); };
  return fmt::format(
      R"({{"dataset": "{}", "model": "{}", "separation": "{}", "outer_folds": {}, "inner_folds": {}, )"
      R"("repetitions": {}, "grid_lr": {}, "grid_beta": {}, "grid_bag_dropout": {}, "grid_width": {}, )"
      R"("embedding_layers": {}, "heads": {}, "head_size": {}, "hidden": {}, "prob": {}, "weight_decay": {}, )"
      R"("clip": {}, "epochs": {}, "batch_size": {}, "seed": {}}})",
      dataset, opt.model, opt.separation, opt.outer_folds, opt.inner_folds, opt.repetitions, list(opt.grid_lr),
      list(opt.grid_beta), list(opt.grid_bag_dropout), list(opt.grid_width), opt.embedding_layers, opt.heads,
      opt.head_size, opt.hidden, opt.prob, opt.weight_decay, opt.clip, opt.common.epochs, opt.common.batch_size,
      opt.common.seed);
}

struct Summary {
  std::string dataset;
  std::vector<double> test_auc;
};

Summary run_dataset(const Options& opt, const std::string& name, hg::Device device) {
  const hg::data::MilDataset mil = hg::data::load_mil(opt.common.data_dir / "mil", name);
  const std::vector<hg::data::Bag> bags = hg::data::mil_bags(mil);
  const std::vector<Config> configs = grid(opt);
  const std::string stem = fmt::format("{}_{}", name, opt.model);
  fmt::print("{}: {} bags ({} positive), {} instances, {} features; {} configuration{} × {} outer folds × {} "
             "repetition{}\n",
             name, mil.num_bags(), mil.num_positive_bags(), mil.num_instances(), mil.num_features(), configs.size(),
             configs.size() > 1 ? "s" : "", opt.outer_folds, opt.repetitions, opt.repetitions > 1 ? "s" : "");

  // A dataset the interrupted run never reached has no folds log yet: it starts afresh. One it reached must have
  // been run with these settings.
  const fs::path folds_path = opt.common.out_dir / (stem + "_folds.csv");
  const bool resume = opt.resume && fs::exists(folds_path);
  hg::train::check_resume_config("mil_benchmark", opt.common.out_dir / (stem + "_config.json"),
                                 config_json(opt, name), resume);
  hg::train::CsvLog folds(folds_path, {"repetition", "fold", "config", "best_epoch", "val_auc", "test_auc", "seconds"},
                          resume);
  Summary summary{name, {}};
  std::vector<double> done_rep = folds.column("repetition"), done_fold = folds.column("fold"),
                      done_auc = folds.column("test_auc");
  const auto splits = hg::data::repeated_nested_cv(mil.bag_labels, hg::data::NestedCVOptions()
                                                                       .outer_folds(opt.outer_folds)
                                                                       .inner_folds(opt.inner_folds)
                                                                       .repetitions(opt.repetitions)
                                                                       .seed(opt.common.seed));
  for (const hg::data::NestedFold& split : splits) {
    bool finished = false;
    for (size_t i = 0; i < done_rep.size(); ++i)
      if (done_rep[i] == static_cast<double>(split.repetition) &&
          done_fold[i] == static_cast<double>(split.outer_fold)) {
        summary.test_auc.push_back(done_auc[i]);
        finished = true;
      }
    if (finished) continue;
    hg::train::ProgressBar bar(fmt::format("{} rep {} fold {}", name, split.repetition + 1, split.outer_fold + 1),
                               static_cast<int64_t>(configs.size()), opt.common.show_progress());
    const std::vector<hg::data::Bag> scaled = standardised(bags, split.train);
    const hg::data::BagBatch val = batch_of(scaled, split.inner[0].test, device),
                             test = batch_of(scaled, split.test, device);
    RunResult best;
    size_t best_config = 0;
    for (size_t c = 0; c < configs.size(); ++c) {
      RunResult r = train_config(opt, configs[c], scaled, split.inner[0].train, val, test, mil.num_features(), device,
                                 opt.common.seed + 1000 * static_cast<uint64_t>(split.repetition) +
                                     static_cast<uint64_t>(split.outer_fold));
      bar.update(r.val_auc, 1);
      if (r.val_auc > best.val_auc) {
        best = std::move(r);
        best_config = c;
      }
    }
    const double seconds = bar.elapsed_seconds();
    bar.finish(fmt::format("{} rep {} fold {}: {} → epoch {}, val AUC {:.3f}, test AUC {:.3f} ({:.1f} s)", name,
                           split.repetition + 1, split.outer_fold + 1, configs[best_config].describe(),
                           best.best_epoch, best.val_auc, best.test_auc, seconds));
    const std::string run = fmt::format("{}_r{}_f{}", stem, split.repetition, split.outer_fold);
    hg::train::CsvLog curve(opt.common.out_dir / (run + ".csv"), {"epoch", "train_loss", "val_auc", "test_auc", "lr"});
    for (const auto& row : best.curve) curve.write(row);
    hg::train::write_svg_plot(opt.common.out_dir / (run + ".svg"), hg::train::panels_from_log(curve, "epoch", {"lr"}),
                              fmt::format("mil_benchmark {} ({}): {}", name, opt.model,
                                          configs[best_config].describe()));
    folds.write({static_cast<double>(split.repetition), static_cast<double>(split.outer_fold),
                 static_cast<double>(best_config), static_cast<double>(best.best_epoch), best.val_auc, best.test_auc,
                 seconds});
    summary.test_auc.push_back(best.test_auc);
  }
  return summary;
}

int run(const Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  const fs::path dir = opt.common.data_dir / "mil";
  fmt::print("mil_benchmark: model {}{}, {} epochs, batch {}, AdamW (weight decay {:g}) + cosine, grad clip {:g}, "
             "on {} ({} thread{})\n",
             opt.model, opt.model.rfind("nph-", 0) == 0 ? "" : fmt::format(" ({})", opt.separation),
             opt.common.epochs, opt.common.batch_size, opt.weight_decay, opt.clip, device, opt.common.threads,
             opt.common.threads > 1 ? "s" : "");
  std::vector<Summary> summaries;
  for (const std::string& name : opt.datasets) {
    if (!fs::exists(dir) || !fs::is_directory(dir)) {
      // Skipped only where the data folder is the default one (the smoke test, where the data is absent).
      fmt::print(opt.may_skip_missing_data ? stdout : stderr,
                 "mil_benchmark: {}no MIL data under {} (scripts/fetch-data.sh, or pass --data-dir)\n",
                 opt.may_skip_missing_data ? "skipped: " : "", dir.string());
      return opt.may_skip_missing_data ? 0 : 1;
    }
    summaries.push_back(run_dataset(opt, name, device));
  }
  fmt::print("\nROC-AUC × 100 on the test folds (mean ± std over {} outer folds × {} repetition{}), model {}:\n",
             opt.outer_folds, opt.repetitions, opt.repetitions > 1 ? "s" : "", opt.model);
  // The paper's ± is over repetitions of the whole cross-validation; over single folds it is much larger.
  fmt::print("| dataset | ours (± std over folds) | ours (± std over repetitions) | Ramsauer et al. 2021 (Hopfield) "
             "|\n|---|---|---|---|\n");
  std::vector<std::vector<std::string>> table = {{"dataset", "model", "outer_folds", "repetitions", "auc_mean",
                                                  "auc_std_folds", "auc_std_repetitions", "paper"}};
  auto mean_std = [](const std::vector<double>& v) {
    const double n = static_cast<double>(v.size());
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
    double var = 0;
    for (double a : v) var += (a - mean) * (a - mean);
    return std::pair{mean, v.size() > 1 ? std::sqrt(var / (n - 1)) : 0.0};
  };
  for (const Summary& s : summaries) {
    std::vector<double> per_repetition;
    for (size_t begin = 0; begin < s.test_auc.size(); begin += static_cast<size_t>(opt.outer_folds))
      per_repetition.push_back(
          mean_std(std::vector<double>(s.test_auc.begin() + static_cast<ptrdiff_t>(begin),
                                       s.test_auc.begin() + static_cast<ptrdiff_t>(std::min(
                                                                s.test_auc.size(), begin + opt.outer_folds))))
              .first);
    const auto [mean, fold_sd] = mean_std(s.test_auc);
    const auto [rep_mean, rep_sd] = mean_std(per_repetition);
    fmt::print("| {} | {:.1f} ± {:.1f} | {} | {} |\n", s.dataset, 100 * mean, 100 * fold_sd,
               per_repetition.size() > 1 ? fmt::format("{:.1f} ± {:.1f}", 100 * rep_mean, 100 * rep_sd) : "—",
               paper_number(s.dataset));
    table.push_back({s.dataset, opt.model, std::to_string(opt.outer_folds), std::to_string(per_repetition.size()),
                     fmt::format("{}", 100 * mean), fmt::format("{}", 100 * fold_sd),
                     fmt::format("{}", per_repetition.size() > 1 ? 100 * rep_sd : NAN), paper_number(s.dataset)});
  }
  hg::train::write_results_csv("mil_benchmark", opt.common.out_dir / "mil_benchmark_results.csv", table);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.common.epochs = 30;
  opt.common.batch_size = 16;
  opt.common.lr = 1e-3;  // the grid's one learning rate unless --grid-lr lists several
  opt.common.data_dir = hg::train::default_data_dir(HG_SOURCE_DIR);
  opt.common.out_dir = "runs/mil_benchmark";
  opt.common.threads = 1;  // bags of a few instances: one thread is faster than the OpenMP start-up per op
  CLI::App app{"Multiple-instance learning on Elephant, Fox, Tiger and Musk1 with nested cross-validation"};
  hg::train::add_common_flags(app, opt.common);
  app.add_option("--dataset", opt.datasets, "datasets to run: elephant, fox, tiger, musk1 (comma-separated)")
      ->delimiter(',')
      ->type_name("NAMES")
      ->check(CLI::IsMember({"elephant", "fox", "tiger", "musk1"}).description(""));
  app.add_option("--model", opt.model,
                 "hopfield (Ramsauer et al.), attention or gated (Ilse et al.), nph-<separation> (nonparametric "
                 "MILModel, e.g. nph-softmax, nph-sparsemax, nph-topk, nph-random, nph-linear, nph-favor; the "
                 "reference MILModel runs FavorPooling with the ReLU kernel for both its 'favor' and 'linear': "
                 "nph-relu_features)")
      ->type_name("NAME");
  app.add_option("--separation", opt.separation,
                 "separation of the hopfield/attention pooling: softmax, sparsemax, entmax15, topk, ...")
      ->type_name("NAME");
  app.add_option("--outer-folds", opt.outer_folds, "outer (test) folds, ≥ 2")->check(hg::train::in_range(2, 100));
  app.add_option("--inner-folds", opt.inner_folds, "inner folds: 1/k of the training part validates, ≥ 2")
      ->check(hg::train::in_range(2, 100));
  app.add_option("--repetitions", opt.repetitions, "repetitions with different splits, ≥ 1")
      ->check(hg::train::in_range(1, 100));
  app.add_option("--grid-lr", opt.grid_lr, "learning rates to try, each > 0 (default: --lr)")
      ->delimiter(',')
      ->type_name("X,...")
      ->check(hg::train::positive());
  app.add_option("--grid-beta", opt.grid_beta, "β of the pooling (nph: its scale) to try, each > 0")
      ->delimiter(',')
      ->type_name("X,...")
      ->check(hg::train::positive());
  app.add_option("--grid-bag-dropout", opt.grid_bag_dropout,
                 "instance dropout in [0, 1) to try (nph: its dropout)")
      ->delimiter(',')
      ->type_name("X,...")
      ->check(hg::train::in_range(0, 0.999));
  app.add_option("--grid-width", opt.grid_width, "embedding widths to try (nph: d_model)")
      ->delimiter(',')
      ->type_name("N,...")
      ->check(hg::train::in_range(1, 1 << 16));
  app.add_option("--embedding-layers", opt.embedding_layers, "Linear-ReLU embedding layers (hopfield, attention)")
      ->check(hg::train::in_range(0, 8));
  app.add_option("--heads", opt.heads, "Hopfield heads")->check(hg::train::in_range(1, 64));
  app.add_option("--head-size", opt.head_size, "width of one head (hopfield)")->check(hg::train::in_range(1, 1024));
  app.add_option("--hidden", opt.hidden, "output block hidden width (hopfield; 0 = none), attention width (attention)")
      ->check(hg::train::in_range(0, 4096));
  app.add_option("--prob", opt.prob, "nph-topk: the fraction of scores kept; nph-random: the mask probability")
      ->check(hg::train::in_range(0.001, 1));
  app.add_option("--weight-decay", opt.weight_decay, "AdamW weight decay")->check(hg::train::in_range(0, 1));
  app.add_option("--clip", opt.clip, "gradient norm clip")->check(hg::train::positive());
  app.add_flag("--resume", opt.resume, "continue <out-dir>/<dataset>_<model>_folds.csv, skipping finished folds");
  app.add_flag("--paper-protocol", opt.paper_protocol,
               "Ramsauer et al.'s protocol: 10 outer folds × 5 repetitions, 160 epochs, grid lr {1e-3, 1e-5}, "
               "β {0.1, 1, 10}, bag dropout {0, 0.75}, width {32, 256} (flags given explicitly still win)");
  CLI11_PARSE(app, argc, argv);
  if (opt.paper_protocol) {
    if (app.count("--outer-folds") == 0) opt.outer_folds = 10;
    if (app.count("--repetitions") == 0) opt.repetitions = 5;
    if (app.count("--epochs") == 0) opt.common.epochs = 160;
    if (app.count("--grid-lr") == 0 && app.count("--lr") == 0) opt.grid_lr = {1e-3, 1e-5};
    if (app.count("--grid-beta") == 0) opt.grid_beta = {0.1, 1.0, 10.0};
    if (app.count("--grid-width") == 0) opt.grid_width = {32, 256};
  }
  if (app.count("--grid-lr") == 0 && !(opt.paper_protocol && app.count("--lr") == 0)) opt.grid_lr = {opt.common.lr};
  opt.may_skip_missing_data = hg::train::may_skip_missing_data(app);
  try {
    if (opt.model.rfind("nph-", 0) == 0) hg::nn::separation_kind_from_string(opt.model.substr(4));
    hg::nn::separation_kind_from_string(opt.separation);
    return run(opt);
  } catch (const hg::Error& e) {
    hg::train::print_error("mil_benchmark", e);
    return 1;
  }
}
