// nn::Module and containers: registration, dotted names in nested modules, traversal, train/eval, dtype and
// device moves, zero_grad, apply, printing, holders; and the initialisers of nn::init (statistics, bounds, errors).
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;
namespace init = hg::nn::init;

namespace {

// A transformer-like block: attention, a norm, a counter buffer.
class BlockImpl : public nn::Module {
 public:
  BlockImpl() {
    attn = register_module("attn", nn::MultiheadAttention(nn::MultiheadAttentionOptions(4, 2).batch_first(true)));
    norm = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({4})));
    steps = register_buffer("steps", hg::zeros({}, hg::kInt64));
    running = register_buffer("running", hg::zeros({4}));
  }
  Tensor forward(const Tensor& x) { return norm(x + std::get<0>(attn(x, x, x))); }
  nn::MultiheadAttention attn{nullptr};
  nn::LayerNorm norm{nullptr};
  Tensor steps, running;
};
HG_MODULE(Block);

class EncoderImpl : public nn::Module {
 public:
  EncoderImpl() {
    layers = register_module("layers", nn::ModuleList(Block(), Block()));
    dropout = register_module("dropout", nn::Dropout(0.1));
  }
  Tensor forward(Tensor x) {
    for (const auto& layer : *layers) x = std::dynamic_pointer_cast<BlockImpl>(layer)->forward(x);
    return dropout(x);
  }
  nn::ModuleList layers{nullptr};
  nn::Dropout dropout{nullptr};
};
HG_MODULE(Encoder);

class ModelImpl : public nn::Module {
 public:
  ModelImpl() {
    encoder = register_module("encoder", Encoder());
    head = register_module("head", nn::Sequential(nn::Linear(4, 3), nn::ReLU(), nn::Linear(3, 2)));
    scale = register_parameter("scale", hg::ones({1}));
  }
  Tensor forward(const Tensor& x) { return head(encoder(x)) * scale; }
  Encoder encoder{nullptr};
  nn::Sequential head{nullptr};
  Tensor scale;
};
HG_MODULE(Model);

std::vector<std::string> names_of(const nn::Named<Tensor>& named) {
  std::vector<std::string> names;
  for (const auto& entry : named) names.push_back(entry.first);
  return names;
}

}  // namespace

TEST_CASE("module: dotted names and counts of parameters, buffers and modules in nested modules") {
  Model model;
  std::vector<std::string> expected{
      "scale",
      "encoder.layers.0.attn.in_proj_weight", "encoder.layers.0.attn.in_proj_bias",
      "encoder.layers.0.attn.out_proj.weight", "encoder.layers.0.attn.out_proj.bias",
      "encoder.layers.0.norm.weight", "encoder.layers.0.norm.bias",
      "encoder.layers.1.attn.in_proj_weight", "encoder.layers.1.attn.in_proj_bias",
      "encoder.layers.1.attn.out_proj.weight", "encoder.layers.1.attn.out_proj.bias",
      "encoder.layers.1.norm.weight", "encoder.layers.1.norm.bias",
      "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"};
  CHECK(names_of(model->named_parameters()) == expected);
  CHECK(model->parameters().size() == expected.size());
  int64_t count = 0;
  for (const Tensor& p : model->parameters()) count += p.numel();
  // per block: 3·4·4 + 3·4 + 4·4 + 4 + 4 + 4 = 88; head: 4·3 + 3 + 3·2 + 2 = 23; scale 1
  CHECK(count == 2 * 88 + 23 + 1);
  CHECK(names_of(model->named_parameters(/*recurse=*/false)) == std::vector<std::string>{"scale"});
  CHECK(names_of(model->named_buffers()) ==
        std::vector<std::string>{"encoder.layers.0.steps", "encoder.layers.0.running", "encoder.layers.1.steps",
                                 "encoder.layers.1.running"});
  CHECK(model->buffers().size() == 4);
  CHECK(model->children().size() == 2);
  CHECK(model->named_children()[1].first == "head");

  std::vector<std::string> module_names;
  for (const auto& [name, module] : model->named_modules()) module_names.push_back(name + ":" + module->name());
  CHECK(module_names == std::vector<std::string>{
                            ":Model", "encoder:Encoder", "encoder.layers:ModuleList", "encoder.layers.0:Block",
                            "encoder.layers.0.attn:MultiheadAttention", "encoder.layers.0.attn.out_proj:Linear",
                            "encoder.layers.0.norm:LayerNorm", "encoder.layers.1:Block",
                            "encoder.layers.1.attn:MultiheadAttention", "encoder.layers.1.attn.out_proj:Linear",
                            "encoder.layers.1.norm:LayerNorm", "encoder.dropout:Dropout", "head:Sequential",
                            "head.0:Linear", "head.1:ReLU", "head.2:Linear"});
  CHECK(model->modules().size() == 16);
  CHECK(model->modules(/*include_self=*/false).size() == 15);

  // the handles held by layers are the registered tensors
  CHECK(model->head->at<nn::LinearImpl>(0).weight.is_same(model->named_parameters()[13].second));
  CHECK(model->head->ptr<nn::ReLUImpl>(1) != nullptr);
  CHECK(Tensor(model(hg::randn({2, 5, 4}))).sizes() == hg::Shape{2, 5, 2});
}

TEST_CASE("module: registration errors and shared parameters") {
  nn::Linear linear(2, 2);
  CHECK_THROWS_WITH_AS(linear->register_parameter("weight", hg::zeros({2})),
                       doctest::Contains("Linear::register_parameter: 'weight' is already registered"), hg::Error);
  CHECK_THROWS_WITH_AS(linear->register_buffer("a.b", hg::zeros({2})),
                       doctest::Contains("Linear::register_buffer: name 'a.b' must be non-empty and contain no '.'"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(linear->register_parameter("ids", hg::zeros({2}, hg::kInt64)),
                       doctest::Contains("'ids' is int64[2] cpu; only floating-point parameters can require grad"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(linear->register_module("child", std::shared_ptr<nn::LinearImpl>()),
                       doctest::Contains("'child' is an empty module"), hg::Error);
  Tensor counts = linear->register_parameter("counts", hg::zeros({2}, hg::kInt64), /*requires_grad=*/false);
  CHECK_FALSE(counts.requires_grad());

  // a parameter computed from others becomes a leaf of its own
  Tensor base = hg::ones({2}).requires_grad_();
  Tensor derived = linear->register_parameter("derived", base * 2.0);
  CHECK(derived.is_leaf());
  CHECK(derived.requires_grad());

  // tied weights: one parameter registered in two modules is listed once, under its first name
  nn::Sequential tied(nn::Linear(3, 3), nn::Linear(3, 3));
  tied->ptr<nn::LinearImpl>(1)->register_parameter("tied", tied->at<nn::LinearImpl>(0).weight);
  CHECK(names_of(tied->named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  tied->to(hg::kFloat64);  // converted once, still shared
  CHECK(tied->at<nn::LinearImpl>(1).direct_parameters()[2].second.is_same(tied->at<nn::LinearImpl>(0).weight));
  CHECK(tied->at<nn::LinearImpl>(0).weight.dtype() == hg::kFloat64);
}

TEST_CASE("module: train/eval propagate to every submodule; dropout follows the mode") {
  Model model;
  CHECK(model->is_training());
  model->eval();
  for (const auto& module : model->modules()) CHECK_FALSE(module->is_training());
  Tensor x = hg::randn({1, 3, 4});
  Tensor a = model(x), b = model(x);
  CHECK(hg::max_abs_diff(a, b) == 0.0);  // no dropout in evaluation
  model->train();
  for (const auto& module : model->modules()) CHECK(module->is_training());
  model->encoder->train(false);
  CHECK(model->is_training());
  CHECK_FALSE(model->encoder->dropout->is_training());
  CHECK_FALSE(model->encoder->layers->ptr(1)->is_training());
}

TEST_CASE("module: to(kFloat64) keeps leaves, names, handles and gradients; integer buffers keep their dtype") {
  Model model;
  auto before = model->named_parameters();
  Tensor x = hg::randn({2, 3, 4});
  model(x).sum().backward();
  Tensor grad_before = model->scale.grad().clone();

  model->to(hg::kFloat64);
  auto after = model->named_parameters();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    CHECK(after[i].first == before[i].first);
    CHECK(after[i].second.is_same(before[i].second));  // the same handles, now float64
    CHECK(after[i].second.dtype() == hg::kFloat64);
    CHECK(after[i].second.is_leaf());
    CHECK(after[i].second.requires_grad());
    REQUIRE(after[i].second.grad().defined());
    CHECK(after[i].second.grad().dtype() == hg::kFloat64);
  }
  hgtest::check_close(model->scale.grad(), grad_before);
  CHECK(model->head->at<nn::LinearImpl>(2).weight.dtype() == hg::kFloat64);
  CHECK(model->encoder->layers->at<BlockImpl>(0).steps.dtype() == hg::kInt64);
  CHECK(model->encoder->layers->at<BlockImpl>(0).running.dtype() == hg::kFloat64);

  // the converted model trains in float64
  model->zero_grad();
  Tensor y = model(x.to(hg::kFloat64));
  CHECK(y.dtype() == hg::kFloat64);
  y.sum().backward();
  CHECK(model->head->at<nn::LinearImpl>(0).weight.grad().dtype() == hg::kFloat64);

  model->to(hg::kCPU);  // already there: nothing changes
  CHECK(model->scale.dtype() == hg::kFloat64);

  // A frozen parameter's gradient moves with it (as torch's _apply); left float32 it broke the next step.
  nn::Linear frozen(2, 2);
  frozen(hg::ones({1, 2})).sum().backward();
  frozen->bias.requires_grad_(false);
  frozen->to(hg::kFloat64);
  REQUIRE(frozen->bias.grad().defined());
  CHECK(frozen->bias.grad().dtype() == hg::kFloat64);
  hg::optim::Adam adam(frozen->parameters(), hg::optim::AdamOptions(0.1));
  adam.step();
  CHECK_THROWS_WITH_AS(model->to(hg::kInt64), doctest::Contains("Model::to: only floating-point dtypes"), hg::Error);
}

TEST_CASE("module: to(cuda) moves parameters and buffers" * doctest::skip(!hgtest::has_cuda())) {
  Model model;
  Tensor x = hg::randn({2, 3, 4});
  model->eval();
  Tensor expected = model(x);
  model->to(hg::Device::cuda(0));
  for (const Tensor& p : model->parameters()) CHECK(p.is_cuda());
  for (const Tensor& b : model->buffers()) CHECK(b.is_cuda());
  hgtest::check_close(model(x.cuda()), expected, 1e-4, 1e-5);
}

TEST_CASE("module: zero_grad clears or zeroes every gradient") {
  nn::Sequential mlp(nn::Linear(3, 4), nn::ReLU(), nn::Linear(4, 1));
  mlp(hg::randn({5, 3})).sum().backward();
  for (const Tensor& p : mlp->parameters()) CHECK(p.grad().defined());
  mlp->zero_grad(/*set_to_none=*/false);
  for (const Tensor& p : mlp->parameters()) {
    REQUIRE(p.grad().defined());
    CHECK(hg::abs(p.grad()).max().item<float>() == 0.0f);
  }
  mlp->zero_grad();
  for (const Tensor& p : mlp->parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("module: apply visits every module, parents first") {
  Model model;
  std::vector<std::string> visited;
  model->apply([&](const std::string& name, nn::Module& module) { visited.push_back(name); });
  CHECK(visited.size() == 16);
  CHECK(visited.front().empty());
  CHECK(visited[1] == "encoder");
  // re-initialise every Linear: zero biases, as a user's init function would
  model->apply([](nn::Module& module) {
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(&module)) init::zeros_(linear->bias);
  });
  for (const auto& [name, p] : model->named_parameters())
    if (name.starts_with("head") && name.ends_with("bias")) CHECK(hg::abs(p).max().item<float>() == 0.0f);
}

TEST_CASE("module: printing the module tree") {
  nn::Sequential mlp(nn::Linear(4, 8), nn::ReLU(), nn::Dropout(0.25),
                     nn::Linear(nn::LinearOptions(8, 2).bias(false)));
  CHECK(fmt::format("{}", mlp) ==
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=true)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.25)\n"
        "  (3): Linear(in_features=8, out_features=2, bias=false)\n"
        ")");
  Block block;
  std::ostringstream stream;
  stream << block;
  CHECK(stream.str() ==
        "Block(\n"
        "  (attn): MultiheadAttention(\n"
        "    (out_proj): Linear(in_features=4, out_features=4, bias=true)\n"
        "  )\n"
        "  (norm): LayerNorm([4], eps=1e-05, elementwise_affine=true)\n"
        ")");
  CHECK(fmt::format("{}", nn::Embedding(nn::EmbeddingOptions(10, 3).padding_idx(0))) ==
        "Embedding(10, 3, padding_idx=0)");
  CHECK(fmt::format("{}", nn::Flatten()) == "Flatten(start_dim=1, end_dim=-1)");
  CHECK(fmt::format("{}", nn::GELU()) == "GELU(approximate=none)");
  CHECK(fmt::format("{}", nn::ELU()) == "ELU(alpha=1)");
  // With nothing to show, "Name()", as PyTorch prints it.
  CHECK(fmt::format("{}", nn::Sequential()) == "Sequential()");
  // An empty holder names its module type readably.
  nn::Linear empty{nullptr};
  CHECK_THROWS_WITH_AS(empty->weight, doctest::Contains("accessing an empty Linear holder"), hg::Error);
}

TEST_CASE("containers: Sequential, ModuleList, ModuleDict, Functional") {
  hg::manual_seed(1);
  nn::Sequential seq(nn::Linear(2, 3), nn::Functional([](const Tensor& x) { return hg::softmax(x, -1); }));
  seq->push_back("scale", nn::Functional([](const Tensor& x) { return x * 2.0; }));
  CHECK(seq->size() == 3);
  Tensor y = seq(hg::randn({4, 2}));
  hgtest::check_close(hg::sum(y, {-1}), hg::full({4}, 2.0));
  CHECK(seq->named_children()[2].first == "scale");
  CHECK(nn::Sequential()->forward(hg::ones({2})).sizes() == hg::Shape{2});  // empty: the identity
  CHECK_THROWS_WITH_AS(seq->at<nn::ReLUImpl>(0), doctest::Contains("Sequential: element 0 is a Linear"), hg::Error);
  CHECK_THROWS_WITH_AS(seq->ptr(3), doctest::Contains("Sequential: index 3 is out of range for 3 modules"), hg::Error);

  nn::ModuleList list;
  list->push_back(nn::Linear(2, 2));
  list->push_back(std::make_shared<nn::ReLUImpl>());
  CHECK(list->size() == 2);
  CHECK(names_of(list->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK(list[1]->name() == "ReLU");
  CHECK_THROWS_WITH_AS(list->ptr(2), doctest::Contains("ModuleList: index 2 is out of range for 2 modules"),
                       hg::Error);

  nn::ModuleDict heads;
  heads->insert("classify", nn::Linear(4, 10));
  heads->insert("regress", nn::Linear(4, 1));
  CHECK(heads->keys() == std::vector<std::string>{"classify", "regress"});
  CHECK(heads->contains("regress"));
  CHECK(heads->at<nn::LinearImpl>("regress").options.out_features() == 1);
  CHECK(names_of(heads->named_parameters()).front() == "classify.weight");
  CHECK_THROWS_WITH_AS(heads->ptr("missing"),
                       doctest::Contains("ModuleDict: no module under key 'missing' (keys: [classify, regress])"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(heads->insert("regress", nn::ReLU()), doctest::Contains("'regress' is already registered"),
                       hg::Error);

  nn::Linear empty{nullptr};
  CHECK(empty.is_empty());
  CHECK_THROWS_AS(empty->forward(hg::ones({2})), hg::Error);
}

// ---- initialisers ----------------------------------------------------------------------------------------

TEST_CASE("init: distributions have the right bounds, means and standard deviations") {
  hg::Generator gen(2024);
  Tensor t = hg::empty({200, 100}, hg::kFloat64);  // fan_in 100, fan_out 200
  auto mean = [](const Tensor& x) { return hg::mean(x).item<double>(); };
  auto stddev = [](const Tensor& x) { return hg::std(x).item<double>(); };
  auto lo = [](const Tensor& x) { return x.min().item<double>(); };
  auto hi = [](const Tensor& x) { return x.max().item<double>(); };

  init::uniform_(t, -2.0, 3.0, &gen);
  CHECK(lo(t) >= -2.0);
  CHECK(hi(t) < 3.0);
  CHECK(mean(t) == doctest::Approx(0.5).epsilon(0.02));
  CHECK(stddev(t) == doctest::Approx(5.0 / std::sqrt(12.0)).epsilon(0.02));

  init::normal_(t, 1.0, 0.5, &gen);
  CHECK(mean(t) == doctest::Approx(1.0).epsilon(0.01));
  CHECK(stddev(t) == doctest::Approx(0.5).epsilon(0.02));

  init::xavier_uniform_(t, 2.0, &gen);  // U(±2·√(6/300))
  double xavier = 2.0 * std::sqrt(6.0 / 300.0);
  CHECK(hi(t) <= xavier);
  CHECK(hi(t) > 0.99 * xavier);
  CHECK(stddev(t) == doctest::Approx(xavier / std::sqrt(3.0)).epsilon(0.02));

  init::xavier_normal_(t, 1.0, &gen);
  CHECK(stddev(t) == doctest::Approx(std::sqrt(2.0 / 300.0)).epsilon(0.02));

  init::kaiming_uniform_(t, 0.0, init::FanMode::FanIn, init::Nonlinearity::ReLU, &gen);  // U(±√2·√(3/100))
  CHECK(hi(t) <= std::sqrt(6.0 / 100.0));
  CHECK(stddev(t) == doctest::Approx(std::sqrt(2.0 / 100.0)).epsilon(0.02));

  init::kaiming_normal_(t, 0.0, init::FanMode::FanOut, init::Nonlinearity::ReLU, &gen);  // N(0, 2/200)
  CHECK(stddev(t) == doctest::Approx(std::sqrt(2.0 / 200.0)).epsilon(0.02));
  CHECK(mean(t) == doctest::Approx(0.0).epsilon(0.005));

  // N(0, 1) truncated to [−1, 2]: mean (φ(−1) − φ(2)) / Z, variance 1 + (−φ(−1) − 2φ(2)) / Z − mean²
  init::trunc_normal_(t, 0.0, 1.0, -1.0, 2.0, &gen);
  auto phi = [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); };
  auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  double z = cdf(2.0) - cdf(-1.0), truncated_mean = (phi(-1.0) - phi(2.0)) / z;
  double truncated_var = 1.0 + (-1.0 * phi(-1.0) - 2.0 * phi(2.0)) / z - truncated_mean * truncated_mean;
  CHECK(lo(t) >= -1.0);
  CHECK(hi(t) <= 2.0);
  CHECK(lo(t) < -0.99);
  CHECK(hi(t) > 1.95);
  CHECK(mean(t) == doctest::Approx(truncated_mean).epsilon(0.02));
  CHECK(stddev(t) == doctest::Approx(std::sqrt(truncated_var)).epsilon(0.02));
  // ViT's N(0, 0.02²) on [−2, 2] is in effect untruncated
  init::trunc_normal_(t, 0.0, 0.02, -2.0, 2.0, &gen);
  CHECK(stddev(t) == doctest::Approx(0.02).epsilon(0.02));

  init::constant_(t, 0.25);
  CHECK(lo(t) == 0.25);
  CHECK(hi(t) == 0.25);
  init::ones_(t);
  CHECK(mean(t) == 1.0);
  init::zeros_(t);
  CHECK(hi(t) == 0.0);

  // float32 tensors and a generator make the fill reproducible
  hg::Generator a(7), b(7);
  Tensor f = hg::empty({3, 4}), g = hg::empty({3, 4});
  init::kaiming_uniform_(f, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyReLU, &a);
  init::kaiming_uniform_(g, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyReLU, &b);
  CHECK(hg::max_abs_diff(f, g) == 0.0);
  CHECK(hi(f.to(hg::kFloat64)) <= 0.5);  // Linear's default: 1/√fan_in
}

TEST_CASE("init: gains, fans, no graph recorded, errors") {
  CHECK(init::calculate_gain(init::Nonlinearity::Linear) == 1.0);
  CHECK(init::calculate_gain(init::Nonlinearity::Tanh) == doctest::Approx(5.0 / 3.0));
  CHECK(init::calculate_gain(init::Nonlinearity::ReLU) == doctest::Approx(std::sqrt(2.0)));
  CHECK(init::calculate_gain(init::Nonlinearity::LeakyReLU, std::sqrt(5.0)) == doctest::Approx(std::sqrt(1.0 / 3.0)));
  CHECK(init::calculate_gain(init::Nonlinearity::SELU) == 0.75);
  auto [fan_in, fan_out] = init::calculate_fan_in_and_fan_out(hg::empty({16, 4, 3, 5}, hg::kFloat32));
  CHECK(fan_in == 60);
  CHECK(fan_out == 240);

  // filling a parameter is not recorded: it stays a leaf
  Tensor w = hg::zeros({3, 3}).requires_grad_();
  init::xavier_uniform_(w);
  CHECK(w.is_leaf());
  CHECK(w.grad_fn() == nullptr);

  CHECK_THROWS_WITH_AS(init::calculate_fan_in_and_fan_out(hg::zeros({5})),
                       doctest::Contains("at least 2 dims, got float32[5]"), hg::Error);
  CHECK_THROWS_WITH_AS(init::xavier_normal_(hg::zeros({5})), doctest::Contains("at least 2 dims"), hg::Error);
  CHECK_THROWS_WITH_AS(init::normal_(hg::zeros({2}, hg::kInt64)),
                       doctest::Contains("init::normal_: expected a floating-point tensor, got int64[2]"), hg::Error);
  CHECK_THROWS_WITH_AS(init::uniform_(hg::zeros({2}), 1.0, 0.0), doctest::Contains("expected a <= b"), hg::Error);
  CHECK_THROWS_WITH_AS(init::trunc_normal_(hg::zeros({2}), 0.0, 1.0, 2.0, -2.0),
                       doctest::Contains("expected std > 0 and a < b"), hg::Error);
  Tensor empty = hg::zeros({0, 3});
  CHECK(init::kaiming_uniform_(empty).numel() == 0);  // a no-op, as PyTorch
}
