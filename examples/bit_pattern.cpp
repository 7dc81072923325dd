// bit_pattern: hflayers' bit-pattern demo (spec G.2) and the nonparametric Hopfield variant of it (BITModel,
// spec C.4–C.5, G.3), with and without LwPF's partial forgetting unit (spec G.4). A bag of random bit vectors is
// positive when it holds one of a few implanted signal patterns (BitPatternSet, spec G.1); every network pools or
// associates the bag with a Hopfield layer and reads out one logit.
//
//   loss = BCE-with-logits(net(bag), label);   AdamW, gradient norm clipped to 1, accuracy = 1[logit > 0]
//
// Networks (--nets, comma separated): the demo's six — hopfield, hopfield_adapted, pooling, pooling_adapted,
// lookup, lookup_adapted (models/bit_pattern_nets.h) — and np_<separation> for the nonparametric BITModel with
// any separation function (np_softmax, np_sparsemax, np_topk, np_random, np_linear, np_favor, np_entmax15, ...).
// --lwpf=both runs each network also with a PFU forgetting unit (global median threshold) in its separation.
//
// Data (--setting): demo = G.2 (2048 bags of 16 instances, 8 signals, 8 bits; train 256..1791, eval the rest,
// batch 32); nonparametric = C.5 (1000 bags of --instances (150) instances, 4 signals, 4 bits, seeds 1111;
// train 200..799, eval the rest, batch 128). The references publish plots only, so the table has no paper number;
// it reports the final eval accuracy and, as the nonparametric reference does, the maximum over epochs.
//
//   bit_pattern                                      # demo data, 8 networks × 2 (LwPF) × 2 seeds, 20 epochs, lr 5e-3
//   bit_pattern --epochs=250 --lr=1e-3 --seeds=5     # the demo's length and learning rate (G.2)
//   bit_pattern --setting=nonparametric --nets=np_softmax,np_sparsemax --epochs=300 --seeds=15 --lr=1e-3
//
// Writes <out-dir>/bit_pattern.csv (one row per network, LwPF, seed and epoch), <out-dir>/bit_pattern.svg
// (training loss and eval accuracy per network, mean over seeds), <out-dir>/bit_pattern_results.csv (the printed
// table) and a checkpoint per run, bit_pattern_<net>[_lwpf]_s<seed>.ckpt (model, AdamW, data order, generator
// after each epoch). --resume continues the run in --out-dir: finished runs are read back from the log, the
// interrupted one continues from its checkpoint, with the uninterrupted run's numbers (ctest -R
// bit_pattern_resume). Exits 2 when a loss is not finite and 3 when the best network's mean final eval accuracy
// is below --min-accuracy.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/bit_pattern_nets.h>
#include <hopgrad/models/nonparametric.h>

namespace {

namespace fs = std::filesystem;
namespace nn = hg::nn;
namespace models = hg::models;

struct Options {
  hg::train::CommonFlags common;
  std::string setting = "demo";
  std::string nets = "hopfield,hopfield_adapted,pooling,pooling_adapted,lookup,lookup_adapted,np_softmax,"
                     "np_sparsemax";
  std::string lwpf = "both";
  int seeds = 2;
  int64_t instances = 150;  ///< nonparametric setting: instances per bag
  double weight_decay = 0.01;
  double clip = 1.0;
  double min_accuracy = 0.0;
  bool resume = false;     ///< continue <out-dir>: finished runs from the log, the interrupted one from its checkpoint
  int64_t stop_after = 0;  ///< stop (as if interrupted) after this many epochs, counted over the runs; 0: never
};

/// The data and split of one setting.
struct Data {
  std::string description;
  hg::Tensor train_x, train_y, eval_x, eval_y;
  hg::Tensor unique_train_instances;  ///< [U, bits]: the lookup networks' stored patterns
  int64_t bits = 0, instances = 0;
};

hg::Tensor rows(const hg::Tensor& x, const std::vector<int64_t>& index) {
  return hg::index_select(x, 0, hg::from_vector(index, {static_cast<int64_t>(index.size())}, hg::kInt64));
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> r(static_cast<size_t>(end - begin));
  std::iota(r.begin(), r.end(), begin);
  return r;
}

Data make_data(const Options& opt) {
  const bool demo = opt.setting == "demo";
  auto options = demo ? hg::data::BitPatternOptions(2048, 16, 8).num_bits(8)
                      : hg::data::BitPatternOptions(1000, opt.instances, 4).num_bits(4).seed_signals(1111).seed_data(1111);
  hg::data::BitPatternSet set(options);
  const int64_t n = options.num_bags_, lo = demo ? 256 : 200, hi = demo ? 1792 : 800;
  std::vector<int64_t> train = range(lo, hi), eval = range(0, lo);
  for (int64_t i = hi; i < n; ++i) eval.push_back(i);
  Data d;
  d.bits = options.num_bits_;
  d.instances = options.num_instances_;
  d.train_x = rows(set.bags(), train);
  d.train_y = rows(set.targets(), train);
  d.eval_x = rows(set.bags(), eval);
  d.eval_y = rows(set.targets(), eval);
  // The distinct training instances, sorted (torch.unique), for the lookup networks.
  std::vector<float> bits = d.train_x.contiguous().to_vector<float>();
  std::set<std::vector<float>> unique;
  for (size_t i = 0; i < bits.size(); i += static_cast<size_t>(d.bits))
    unique.emplace(bits.begin() + static_cast<std::ptrdiff_t>(i),
                   bits.begin() + static_cast<std::ptrdiff_t>(i) + d.bits);
  std::vector<float> flat;
  for (const auto& row : unique) flat.insert(flat.end(), row.begin(), row.end());
  d.unique_train_instances = hg::from_vector(flat, {static_cast<int64_t>(unique.size()), d.bits});
  d.description = fmt::format("BitPatternSet ({} setting): {} bags of {} instances, {} signals of {} bits; {} train / "
                              "{} eval bags, {} distinct training instances",
                              opt.setting, n, d.instances, options.num_signals_, d.bits, train.size(), eval.size(),
                              unique.size());
  return d;
}

/// A network by name: a demo network or np_<separation>; LwPF adds a PFU forgetting unit to its separation.
struct Net {
  std::string name;
  bool lwpf = false;
  std::string label() const { return lwpf ? name + " + LwPF" : name; }
};

std::shared_ptr<nn::Module> build(const Net& net, const Data& data, std::function<hg::Tensor(const hg::Tensor&)>& fn) {
  const bool nonparametric = net.name.starts_with("np_");
  nn::SeparationOptions separation =
      nonparametric ? nn::SeparationOptions(nn::separation_kind_from_string(net.name.substr(3))) : nn::SeparationOptions();
  if (net.lwpf) separation.forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU));
  if (nonparametric) {
    models::BITModelOptions options(data.bits);  // bit_pattern.py: 8 heads of 8, 3 updates, β 0.25, dropout 0.1
    models::PoolingOptions pooling = options.pooling();
    models::BITModel model(options.pooling(pooling.separation(separation)));
    fn = [model](const hg::Tensor& x) { return model(x); };
    return model.ptr();
  }
  const models::BitNetKind kind = models::bit_net_kind_from_string(net.name);
  models::BitPatternNet model(models::BitPatternNetOptions(kind)
                                  .num_bits(data.bits)
                                  .num_instances(data.instances)
                                  .quantity(data.unique_train_instances.size(0))
                                  .separation(separation));
  if (kind == models::BitNetKind::LookupAdapted) model->init_lookup(data.unique_train_instances);
  fn = [model](const hg::Tensor& x) { return model(x); };
  return model.ptr();
}

bool forms_scores(nn::SeparationKind kind) {
  return kind != nn::SeparationKind::Linear && kind != nn::SeparationKind::RandomFeatures &&
         kind != nn::SeparationKind::ReluFeatures;
}

double accuracy(const hg::Tensor& logits, const hg::Tensor& labels) {
  return (hg::gt(logits, 0.0).to(hg::kFloat32) == labels.to(hg::kFloat32)).to(hg::kFloat64).mean().item<double>();
}

struct Run {
  std::vector<double> train_loss, eval_accuracy;
};

/// Mean and sample standard deviation (ddof 1; 0 for one value).
struct MeanStd {
  double mean = 0, sd = 0;
};
MeanStd mean_std(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0};
}

/// The settings a resumed run must share with the run it continues (JSON; also in every checkpoint).
std::string config_json(const Options& opt) {
  return fmt::format(R"({{"setting": "{}", "nets": "{}", "lwpf": "{}", "seeds": {}, "instances": {}, )"
                     R"("weight_decay": {}, "clip": {}, "epochs": {}, "batch_size": {}, "lr": {}, "seed": {}}})",
                     opt.setting, opt.nets, opt.lwpf, opt.seeds, opt.instances, opt.weight_decay, opt.clip,
                     opt.common.epochs, opt.common.batch_size, opt.common.lr, opt.common.seed);
}

int run(const Options& opt) {
  const hg::Device device = hg::train::apply_common_flags(opt.common);
  const Data data = make_data(opt);
  const hg::Tensor eval_x = data.eval_x.to(device), eval_y = data.eval_y.to(device);
  auto train_set = std::make_shared<hg::data::TensorDataset>(data.train_x.to(device), data.train_y.to(device));

  std::vector<Net> nets;
  for (const std::string& name : hg::train::split_names(opt.nets, "--nets")) {
    if (opt.lwpf != "on") nets.push_back({name, false});
    if (opt.lwpf == "off") continue;
    // A forgetting unit acts on scores, which linear attention and random features never form.
    const bool has_scores = !name.starts_with("np_") || forms_scores(nn::separation_kind_from_string(name.substr(3)));
    if (has_scores)
      nets.push_back({name, true});
    else
      fmt::print("bit_pattern: no LwPF run for {}: a forgetting unit needs scores, which it never forms\n", name);
  }
  fmt::print("bit_pattern: {}\n  {} network(s) × {} seed(s), {} epochs, AdamW lr {} wd {}, batch {}, clip {}, on {}\n",
             data.description, nets.size(), opt.seeds, opt.common.epochs, opt.common.lr, opt.weight_decay,
             opt.common.batch_size, opt.clip, device);

  // The log is the record of every run: --resume reads finished runs back from it and continues the interrupted
  // one from its checkpoint.
  const std::string config = config_json(opt);
  hg::train::check_resume_config("bit_pattern", opt.common.out_dir / "bit_pattern_config.json", config, opt.resume);
  const fs::path csv_path = opt.common.out_dir / "bit_pattern.csv", svg_path = opt.common.out_dir / "bit_pattern.svg";
  hg::train::CsvLog log(csv_path, {"net", "lwpf", "seed", "epoch", "train_loss", "train_accuracy", "eval_accuracy",
                                   "seconds"},
                        opt.resume);
  std::vector<std::vector<Run>> runs(nets.size());
  hg::train::Panel loss_panel{"train loss", {}}, accuracy_panel{"eval accuracy", {}};
  const bool show_progress = opt.common.show_progress();
  for (size_t k = 0; k < nets.size(); ++k) {
    fmt::print("[{}] {}\n", k, nets[k].label());
    for (int s = 0; s < opt.seeds; ++s) {
      const uint64_t seed = opt.common.seed + static_cast<uint64_t>(s);
      // This run's epochs already in the log (a resumed run), and the rows they are in.
      Run r;
      double seconds = 0;
      std::vector<size_t> logged;
      const std::vector<double> logged_seconds = log.column("seconds");
      {
        const std::vector<double> net = log.column("net"), seeds = log.column("seed"),
                                  loss = log.column("train_loss"), acc = log.column("eval_accuracy");
        for (size_t i = 0; i < net.size(); ++i)
          if (net[i] == static_cast<double>(k) && seeds[i] == static_cast<double>(seed)) {
            logged.push_back(i);
            r.train_loss.push_back(loss[i]);
            r.eval_accuracy.push_back(acc[i]);
            seconds = logged_seconds[i];
          }
      }
      int done = static_cast<int>(r.train_loss.size());
      if (done >= opt.common.epochs) {
        fmt::print("  seed {}: finished before (--resume): eval {:6.2f}%\n", seed, 100 * r.eval_accuracy.back());
        runs[k].push_back(std::move(r));
        continue;
      }
      hg::manual_seed(seed);  // the initialisation and dropout of this run
      std::function<hg::Tensor(const hg::Tensor&)> net;
      std::shared_ptr<nn::Module> model = build(nets[k], data, net);
      model->to(device);
      hg::optim::AdamW optimizer(model->parameters(),
                                 hg::optim::AdamWOptions(opt.common.lr).weight_decay(opt.weight_decay));
      auto loader = hg::data::make_data_loader(
          train_set, hg::data::DataLoaderOptions().batch_size(opt.common.batch_size).shuffle(true).seed(seed));
      const fs::path checkpoint_path = opt.common.out_dir / fmt::format("bit_pattern_{}{}_s{}.ckpt", nets[k].name,
                                                                         nets[k].lwpf ? "_lwpf" : "", seed);
      int start_epoch = 1;
      if (done > 0) {
        hg::serialize::TrainingState state = hg::train::resume_logged_run(
            "bit_pattern", log, logged, checkpoint_path, config, *model, &optimizer);
        const int saved_epoch = static_cast<int>(state.epoch);
        if (saved_epoch < done) {  // killed after logging an epoch but before its checkpoint: those epochs run again
          r.train_loss.resize(static_cast<size_t>(saved_epoch));
          r.eval_accuracy.resize(static_cast<size_t>(saved_epoch));
          seconds = saved_epoch > 0 ? logged_seconds[logged[static_cast<size_t>(saved_epoch) - 1]] : 0.0;
          done = saved_epoch;
        }
        if (done > 0) {
          state.rng.restore();
          start_epoch = done + 1;
          loader.set_epoch(state.epoch);  // the next epoch sees the order an uninterrupted run would
          fmt::print("  seed {}: resuming from {} after epoch {}\n", seed, checkpoint_path.string(), done);
        }
      }
      for (int epoch = start_epoch; epoch <= opt.common.epochs; ++epoch) {
        model->train();
        hg::train::ProgressBar bar(fmt::format("  seed {} epoch {}/{}", seed, epoch, opt.common.epochs), loader.size(),
                                   show_progress);
        double correct = 0;
        for (const hg::data::Example& batch : loader) {
          hg::Tensor logits = net(batch.input);
          hg::Tensor loss = hg::binary_cross_entropy_with_logits(logits, batch.target);
          optimizer.zero_grad();
          loss.backward();
          if (opt.clip > 0) hg::optim::clip_grad_norm_(model->parameters(), opt.clip);
          optimizer.step();
          const double value = loss.item<float>();
          if (!std::isfinite(value)) {
            fmt::print(stderr, "bit_pattern: {} diverged: loss {} in epoch {} (try a smaller --lr)\n",
                       nets[k].label(), value, epoch);
            return 2;
          }
          correct += accuracy(logits.detach(), batch.target) * static_cast<double>(batch.input.size(0));
          bar.update(value, batch.input.size(0));
        }
        double eval_accuracy;
        {
          hg::NoGradGuard no_grad;
          model->eval();
          eval_accuracy = accuracy(net(eval_x), eval_y);
        }
        seconds += bar.elapsed_seconds();
        const double train_accuracy = correct / static_cast<double>(train_set->size());
        // Every epoch on a terminal; in a log, every fifth and the last.
        if (show_progress || epoch % 5 == 0 || epoch == opt.common.epochs)
          bar.finish(fmt::format("  seed {} epoch {:>3}/{}  loss {:.4f}  train {:6.2f}%  eval {:6.2f}%  ({:.1f} s)",
                                 seed, epoch, opt.common.epochs, bar.mean_loss(), 100 * train_accuracy,
                                 100 * eval_accuracy, seconds));
        r.train_loss.push_back(bar.mean_loss());
        r.eval_accuracy.push_back(eval_accuracy);
        log.write({static_cast<double>(k), nets[k].lwpf ? 1.0 : 0.0, static_cast<double>(seed),
                   static_cast<double>(epoch), bar.mean_loss(), train_accuracy, eval_accuracy, seconds});
        hg::serialize::TrainingState state;
        state.step = epoch * static_cast<int64_t>(loader.size());
        state.epoch = epoch;
        state.config = config;
        state.rng = hg::serialize::RngState::capture();
        hg::serialize::save(checkpoint_path, *model, &optimizer, state);
        const int64_t epochs_done = (static_cast<int64_t>(k) * opt.seeds + s) * opt.common.epochs + epoch;
        if (epochs_done == opt.stop_after &&
            epochs_done < static_cast<int64_t>(nets.size()) * opt.seeds * opt.common.epochs) {
          fmt::print("bit_pattern: stopped after epoch {} of {} seed {} (--stop-after); continue with --resume\n",
                     epoch, nets[k].label(), seed);
          return 0;
        }
      }
      runs[k].push_back(std::move(r));
    }
    // Mean curves over seeds, one series per network.
    hg::train::Series loss{nets[k].label(), {}, {}}, acc{nets[k].label(), {}, {}, true};
    for (int e = 0; e < opt.common.epochs; ++e) {
      double l = 0, a = 0;
      for (const Run& r : runs[k]) l += r.train_loss[static_cast<size_t>(e)], a += r.eval_accuracy[static_cast<size_t>(e)];
      loss.x.push_back(e + 1), acc.x.push_back(e + 1);
      loss.y.push_back(l / opt.seeds), acc.y.push_back(a / opt.seeds);
    }
    loss_panel.series.push_back(std::move(loss));
    accuracy_panel.series.push_back(std::move(acc));
    hg::train::write_svg_plot(svg_path, std::vector<hg::train::Panel>{loss_panel, accuracy_panel},
                              "bit_pattern: " + data.description);
  }

  fmt::print("\nEval accuracy (%), mean ± std over {} seed(s); the references publish plots only (no number)\n",
             opt.seeds);
  fmt::print("| {:<26} | {:>15} | {:>15} | {:>12} |\n", "network", "final", "max over epochs", "paper");
  fmt::print("|{:-<28}|{:-<17}|{:-<17}|{:-<14}|\n", "", "", "", "");
  std::vector<std::vector<std::string>> table = {
      {"network", "final_mean", "final_std", "max_mean", "max_std", "seeds", "paper"}};
  double best = 0;
  for (size_t k = 0; k < nets.size(); ++k) {
    std::vector<double> final_acc, max_acc;
    for (const Run& r : runs[k]) {
      final_acc.push_back(r.eval_accuracy.back());
      max_acc.push_back(*std::max_element(r.eval_accuracy.begin(), r.eval_accuracy.end()));
    }
    const MeanStd last = mean_std(final_acc), max = mean_std(max_acc);
    best = std::max(best, last.mean);
    auto percent = [](MeanStd m) { return fmt::format("{:6.2f} ± {:4.2f}", 100 * m.mean, 100 * m.sd); };
    fmt::print("| {:<26} | {:>15} | {:>15} | {:>12} |\n", nets[k].label(), percent(last), percent(max), "plots only");
    table.push_back({nets[k].label(), fmt::format("{:.4f}", 100 * last.mean), fmt::format("{:.4f}", 100 * last.sd),
                     fmt::format("{:.4f}", 100 * max.mean), fmt::format("{:.4f}", 100 * max.sd),
                     std::to_string(opt.seeds), "plots only"});
  }
  const fs::path results_path = opt.common.out_dir / "bit_pattern_results.csv";
  hg::train::write_results_csv("bit_pattern", results_path, table);
  fmt::print("wrote {}, {} and {}\n", results_path.string(), csv_path.string(), svg_path.string());
  if (best < opt.min_accuracy) {
    fmt::print(stderr, "bit_pattern: the best mean final eval accuracy {:.2f}% is below --min-accuracy {:.2f}%\n",
               100 * best, 100 * opt.min_accuracy);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  // A few minutes on 2 cores: the demo's 250 epochs at lr 1e-3 are --epochs=250 --lr=1e-3.
  opt.common.epochs = 20;
  opt.common.batch_size = 32;
  opt.common.lr = 5e-3;
  opt.common.seed = 42;
  opt.common.out_dir = "runs/bit_pattern";
  CLI::App app{"hflayers' bit-pattern demo and the nonparametric BITModel, with and without LwPF"};
  hg::train::add_common_flags(app, opt.common);
  app.add_option("--setting", opt.setting,
                 "demo (hflayers, spec G.2) or nonparametric (bit_pattern.py, spec C.5: batch 128 unless "
                 "--batch-size says otherwise)")
      ->type_name("NAME")
      ->check(CLI::IsMember({"demo", "nonparametric"}).description(""));
  app.add_option("--nets", opt.nets,
                 "comma-separated: hopfield, hopfield_adapted, pooling, pooling_adapted, lookup, lookup_adapted, "
                 "np_<separation> (softmax, sparsemax, entmax15, topk, random, window, linear, favor, ...)")
      ->type_name("LIST");
  app.add_option("--lwpf", opt.lwpf, "off, on, or both: each network without and with a PFU forgetting unit")
      ->type_name("MODE")
      ->check(CLI::IsMember({"off", "on", "both"}).description(""));
  app.add_option("--seeds", opt.seeds, "runs per network, seeds --seed, --seed + 1, ... (≥ 1)")
      ->type_name("N")
      ->check(hg::train::in_range(1, 1000));
  app.add_option("--instances", opt.instances, "nonparametric setting: instances per bag (150, 200, 300 in C.5)")
      ->type_name("N")
      ->check(hg::train::in_range(2, 100000));
  app.add_option("--weight-decay", opt.weight_decay, "AdamW's decoupled weight decay, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_option("--clip", opt.clip, "gradient-norm clipping (0: none)")->type_name("X")->check(hg::train::in_range(0, 1e9));
  app.add_option("--min-accuracy", opt.min_accuracy,
                 "fail (exit 3) when the best network's mean final eval accuracy is below this, in [0, 1]")
      ->type_name("X")
      ->check(hg::train::in_range(0, 1));
  app.add_flag("--resume", opt.resume,
               "continue the run in --out-dir (same settings): finished runs are read back from bit_pattern.csv, the "
               "interrupted one continues from its checkpoint");
  app.add_option("--stop-after", opt.stop_after,
                 "stop after this many epochs, counted over the runs (network × seed) in order, as if interrupted "
                 "(0: never)")
      ->type_name("N")
      ->check(hg::train::in_range(0, 1e9));
  CLI11_PARSE(app, argc, argv);
  if (opt.setting == "nonparametric" && app.count("--batch-size") == 0) opt.common.batch_size = 128;
  try {
    for (const std::string& name : hg::train::split_names(opt.nets, "--nets"))  // refuse a typo before any training
      if (name.starts_with("np_")) nn::separation_kind_from_string(name.substr(3));
      else models::bit_net_kind_from_string(name);
    return run(opt);
  } catch (const hg::Error& e) {
    hg::train::print_error("bit_pattern", e);
    return 1;
  }
}
