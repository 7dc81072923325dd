// train_mlp: a two-layer perceptron learns to tell interleaved 2-D spirals apart — the whole training loop
// written out with hopgrad's ops and autograd (no nn:: layers), as a reference for what nn/ and optim/ wrap.
//
//   logits = W₂ relu(W₁ x + b₁) + b₂        x [batch, 2], W₁ [hidden, 2], W₂ [classes, hidden]
//   loss   = cross_entropy(logits, label)
//   SGD with momentum (torch.optim.SGD):   g ← ∇L + λ p;   v ← μ v + g;   p ← p − lr v
//
//   train_mlp                                  # 3 spirals × 1000 points, hidden 64, 100 epochs: ~99 % accuracy
//   train_mlp --classes=5 --hidden=128 --epochs=150 --csv=mlp.csv --device=cuda
//   train_mlp --threads=2 --points-per-class=20000 --batch-size=256
//
// Exits with status 2 when training diverges (a non-finite loss, or a final loss no lower than the first
// epoch's) and 3 when the test accuracy ends below --min-accuracy.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numbers>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>

namespace {

struct Options {
  int64_t classes = 3;
  int64_t points_per_class = 1000;
  double noise = 0.2;         ///< standard deviation of the angle noise, in radians
  double test_fraction = 0.2;
  int64_t hidden = 64;
  int epochs = 100;
  int64_t batch_size = 32;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  uint64_t seed = 0;
  int log_every = 10;  ///< epochs between progress lines
  double min_accuracy = 0.0;
  std::string device = "cpu";
  // One thread by default: this model's GEMMs ([32, 2]·[2, 64] and the like) take a few µs, less than waking a
  // second OpenMP thread, which on a busy machine may not be scheduled for milliseconds.
  int threads = 1;
  std::string csv;
};

/// Points with integer class labels.
struct Dataset {
  hg::Tensor x;      ///< float32 [n, 2]
  hg::Tensor label;  ///< int64 [n]
  int64_t size() const { return x.size(0); }
};

// `classes` spiral arms in the plane, each turning once around the origin as its radius r grows from 0 to 1:
//   class k, point i:  r = i / n,  θ = 2π k / K + 2π r + noise·ε,  x = (r cos θ, r sin θ),  ε ~ N(0, 1).
// Returned shuffled, then split into (train, test).
std::pair<Dataset, Dataset> make_spirals(const Options& opt, hg::Generator& gen, hg::Device device) {
  int64_t n = opt.points_per_class, total = opt.classes * n;
  std::vector<float> eps = hg::randn({total}, hg::kFloat32, &gen).to_vector<float>();
  std::vector<float> xy(2 * total);
  std::vector<int64_t> label(total);
  std::vector<int64_t> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(gen.seed()));
  for (int64_t k = 0; k < opt.classes; ++k)
    for (int64_t i = 0; i < n; ++i) {
      int64_t src = k * n + i, dst = order[src];
      double r = static_cast<double>(i + 1) / n;
      double theta = 2 * std::numbers::pi * (static_cast<double>(k) / opt.classes + r) + opt.noise * eps[src];
      xy[2 * dst] = static_cast<float>(r * std::cos(theta));
      xy[2 * dst + 1] = static_cast<float>(r * std::sin(theta));
      label[dst] = k;
    }
  hg::Tensor x = hg::from_vector(xy, {total, 2}).to(device);
  hg::Tensor y = hg::from_vector(label, {total}, hg::kInt64).to(device);
  int64_t n_test = std::clamp<int64_t>(std::llround(opt.test_fraction * total), 1, total - 1);
  int64_t n_train = total - n_test;
  return {{x.narrow(0, 0, n_train), y.narrow(0, 0, n_train)}, {x.narrow(0, n_train, n_test), y.narrow(0, n_train, n_test)}};
}

/// U(-1/√fan_in, 1/√fan_in): the initialisation of torch.nn.Linear's weight and bias.
hg::Tensor linear_init(hg::IntArrayRef shape, int64_t fan_in, hg::Generator& gen, hg::Device device) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return ((hg::rand(shape, hg::kFloat32, &gen) * 2.0 - 1.0) * bound).to(device).requires_grad_();
}

struct Mlp {
  hg::Tensor hidden_weight, hidden_bias;  ///< [hidden, 2], [hidden]
  hg::Tensor output_weight, output_bias;  ///< [classes, hidden], [classes]

  Mlp(int64_t in, int64_t hidden, int64_t classes, hg::Generator& gen, hg::Device device)
      : hidden_weight(linear_init({hidden, in}, in, gen, device)),
        hidden_bias(linear_init({hidden}, in, gen, device)),
        output_weight(linear_init({classes, hidden}, hidden, gen, device)),
        output_bias(linear_init({classes}, hidden, gen, device)) {}

  /// logits [batch, classes] from x [batch, in]
  hg::Tensor forward(const hg::Tensor& x) const {
    return hg::linear(hg::relu(hg::linear(x, hidden_weight, hidden_bias)), output_weight, output_bias);
  }
  hg::Tensors parameters() const { return {hidden_weight, hidden_bias, output_weight, output_bias}; }
};

/// torch.optim.SGD(momentum=μ, weight_decay=λ, dampening=0, nesterov=False), written out.
class SgdMomentum {
 public:
  SgdMomentum(hg::Tensors parameters, double lr, double momentum, double weight_decay)
      : parameters_(std::move(parameters)), lr_(lr), momentum_(momentum), weight_decay_(weight_decay) {
    for (const hg::Tensor& p : parameters_) velocity_.push_back(hg::zeros_like(p));
  }

  void step() {
    hg::NoGradGuard no_grad;  // the update is not part of any graph, and may write into leaves in place
    for (size_t i = 0; i < parameters_.size(); ++i) {
      const hg::Tensor& p = parameters_[i];
      if (!p.grad().defined()) continue;
      hg::Tensor g = weight_decay_ != 0 ? hg::add(p.grad(), p, weight_decay_) : p.grad();  // g = ∇ + λ p
      velocity_[i].mul_(momentum_).add_(g);                                                // v = μ v + g
      p.add_(velocity_[i], -lr_);                                                          // p = p − lr v
    }
  }

  /// Drops the gradients (set_to_none, as PyTorch's default): the next backward writes instead of adding.
  void zero_grad() {
    for (const hg::Tensor& p : parameters_) p.set_grad(hg::Tensor());
  }

 private:
  hg::Tensors parameters_, velocity_;
  double lr_, momentum_, weight_decay_;
};

/// Fraction of points whose highest logit is their label.
double accuracy(const Mlp& model, const Dataset& data) {
  hg::NoGradGuard no_grad;
  hg::Tensor predicted = hg::argmax(model.forward(data.x), 1);
  return (predicted == data.label).to(hg::kFloat32).mean().item<float>();
}

/// A fresh random order of 0..n-1 each epoch, from the experiment's seed.
hg::Tensor permutation(int64_t n, std::mt19937_64& rng, hg::Device device) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  return hg::from_vector(order, {n}, hg::kInt64).to(device);
}

/// A flag that must be a number > 0 (CLI11 2.1's PositiveNumber accepts 0 and reports a range up to DBL_MAX).
const CLI::Validator kPositive(
    [](std::string& value) -> std::string {
      double v = 0;
      return CLI::detail::lexical_cast(value, v) && v > 0 ? "" : "must be a number > 0, got " + value;
    },
    "> 0");

int train(const Options& opt) {
  omp_set_num_threads(opt.threads);
  hg::Device device(opt.device);
  hg::Generator gen(opt.seed);
  auto [train_set, test_set] = make_spirals(opt, gen, device);
  Mlp model(2, opt.hidden, opt.classes, gen, device);
  SgdMomentum optimizer(model.parameters(), opt.lr, opt.momentum, opt.weight_decay);
  std::mt19937_64 shuffle_rng(opt.seed + 1);

  std::ofstream csv;
  if (!opt.csv.empty()) {
    csv.open(opt.csv);
    HG_CHECK(csv, "train_mlp: cannot write {}", opt.csv);
    csv << "epoch,train_loss,train_accuracy,test_accuracy,seconds\n";
  }
  fmt::print("train_mlp: {} spirals, {} train / {} test points, MLP 2-{}-{}, SGD lr {} momentum {}, on {} ({} thread{})\n",
             opt.classes, train_set.size(), test_set.size(), opt.hidden, opt.classes, opt.lr, opt.momentum, device,
             opt.threads, opt.threads > 1 ? "s" : "");

  auto start = std::chrono::steady_clock::now();
  double first_loss = 0, loss_sum = 0;
  for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
    hg::Tensor order = permutation(train_set.size(), shuffle_rng, device);
    hg::Tensor x = hg::index_select(train_set.x, 0, order), label = hg::index_select(train_set.label, 0, order);
    loss_sum = 0;
    for (int64_t begin = 0; begin < train_set.size(); begin += opt.batch_size) {
      int64_t size = std::min(opt.batch_size, train_set.size() - begin);
      hg::Tensor loss = hg::cross_entropy(model.forward(x.narrow(0, begin, size)), label.narrow(0, begin, size));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      double value = loss.item<float>();
      if (!std::isfinite(value)) {
        fmt::print(stderr, "train_mlp: diverged: loss is {} in epoch {} (try a smaller --lr)\n", value, epoch);
        return 2;
      }
      loss_sum += value * static_cast<double>(size);
    }
    double epoch_loss = loss_sum / static_cast<double>(train_set.size());
    if (epoch == 1) first_loss = epoch_loss;
    bool log = epoch % opt.log_every == 0 || epoch == 1 || epoch == opt.epochs;
    if (log || csv.is_open()) {
      double train_acc = accuracy(model, train_set), test_acc = accuracy(model, test_set);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (log)
        fmt::print("epoch {:>4}/{}  loss {:.4f}  train accuracy {:5.1f}%  test accuracy {:5.1f}%  ({:.1f} s)\n",
                   epoch, opt.epochs, epoch_loss, 100 * train_acc, 100 * test_acc, seconds);
      if (csv.is_open()) csv << fmt::format("{},{:.6f},{:.4f},{:.4f},{:.3f}\n", epoch, epoch_loss, train_acc, test_acc, seconds);
    }
  }

  double final_loss = loss_sum / static_cast<double>(train_set.size());
  double test_acc = accuracy(model, test_set);
  fmt::print("final: loss {:.4f} (first epoch {:.4f}), test accuracy {:.1f}%\n", final_loss, first_loss,
             100 * test_acc);
  if (opt.epochs > 1 && !(final_loss < first_loss)) {
    fmt::print(stderr, "train_mlp: diverged: the loss did not fall ({:.4f} → {:.4f})\n", first_loss, final_loss);
    return 2;
  }
  if (test_acc < opt.min_accuracy) {
    fmt::print(stderr, "train_mlp: test accuracy {:.1f}% is below --min-accuracy {:.1f}%\n", 100 * test_acc,
               100 * opt.min_accuracy);
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"Train a two-layer MLP on 2-D spirals with hopgrad's autograd and a hand-written SGD"};
  app.add_option("--classes", opt.classes, "number of spiral arms (classes)")->check(CLI::Range(2, 1000));
  app.add_option("--points-per-class", opt.points_per_class, "points per arm")->check(CLI::Range(5, 10000000));
  app.add_option("--noise", opt.noise, "angle noise (standard deviation, radians)")->check(CLI::Range(0.0, 10.0));
  app.add_option("--test-fraction", opt.test_fraction, "share of points held out")->check(CLI::Range(0.01, 0.99));
  app.add_option("--hidden", opt.hidden, "hidden units")->check(CLI::Range(1, 1 << 20));
  app.add_option("--epochs", opt.epochs, "passes over the training set")->check(CLI::Range(1, 1000000));
  app.add_option("--batch-size", opt.batch_size, "points per SGD step")->check(CLI::Range(1, 1 << 30));
  app.add_option("--lr", opt.lr, "learning rate (> 0)")->check(kPositive);
  app.add_option("--momentum", opt.momentum, "SGD momentum μ")->check(CLI::Range(0.0, 0.999));
  app.add_option("--weight-decay", opt.weight_decay, "L2 penalty λ added to the gradient")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", opt.seed, "seed for data, initialisation and shuffling");
  app.add_option("--log-every", opt.log_every, "epochs between progress lines")->check(CLI::Range(1, 1000000));
  app.add_option("--min-accuracy", opt.min_accuracy, "fail (exit 3) below this final test accuracy, in [0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--device", opt.device, "cpu, cuda or cuda:N");
  app.add_option("--threads", opt.threads, "CPU threads (OpenMP)")->check(CLI::Range(1, 1024));
  app.add_option("--csv", opt.csv, "write per-epoch loss and accuracy to this CSV file");
  CLI11_PARSE(app, argc, argv);
  try {
    return train(opt);
  } catch (const hg::Error& e) {
    fmt::print(stderr, "train_mlp: {}\n", e.what());
    return 1;
  }
}
