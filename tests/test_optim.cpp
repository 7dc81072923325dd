// Optimizers, learning-rate schedulers and gradient clipping against PyTorch's torch.optim, read from
// tests/fixtures/optim_*.txt (written by scripts/make_optim_fixtures.py, which documents each configuration):
// a few steps of each optimizer on a tiny linear least-squares problem, scheduled learning rates, clipped
// gradients; then state_dict round trips and bad input.
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
using hg::Tensors;
namespace optim = hg::optim;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(Tensor W, Tensor b, Tensor unused)>;
using MakeScheduler = std::function<std::unique_ptr<optim::LRScheduler>(optim::Optimizer&)>;

// float64 differs from PyTorch only by rounding (a few ulps per step); float32 starts from rounded inputs.
double rtol_for(hg::DType dtype) { return dtype == hg::kFloat64 ? 1e-11 : 2e-4; }
double atol_for(hg::DType dtype) { return dtype == hg::kFloat64 ? 1e-13 : 2e-5; }

/// The fixtures' problem, loss = mse_loss(linear(x, W, b), y), on a device in a dtype; `unused` gets no gradient.
struct Problem {
  Tensor x, y, W, b, unused;
  Problem(const hgtest::Fixture& fixture, hg::Device device, hg::DType dtype)
      : x(fixture.tensor("x").to(device, dtype)),
        y(fixture.tensor("y").to(device, dtype)),
        W(fixture.tensor("W").to(device, dtype).requires_grad_()),
        b(fixture.tensor("b").to(device, dtype).requires_grad_()),
        unused(fixture.tensor("unused").to(device, dtype).requires_grad_()) {}
  Tensor loss() const { return hg::mse_loss(hg::linear(x, W, b), y); }
};

/// One zero_grad → loss → backward → step (→ scheduler step); returns the loss before the step.
Tensor train_step(const Problem& problem, optim::Optimizer& optimizer, optim::LRScheduler* scheduler) {
  optimizer.zero_grad();
  Tensor loss = problem.loss();
  loss.backward();
  optimizer.step();
  if (scheduler) scheduler->step();
  return loss.detach();
}

/// Runs configuration `config` of `fixture` for all its steps and compares the parameters after each step and
/// the losses with PyTorch's; checks that `unused` was skipped (unchanged, no state). Returns W and b per step.
Tensors check_training(const hgtest::Fixture& fixture, const std::string& config, hg::Device device,
                       hg::DType dtype, const MakeOptimizer& make_optimizer, const MakeScheduler& make_scheduler = {}) {
  INFO(fixture.origin() << " / " << config << " / " << hg::dtype_name(dtype));
  Problem problem(fixture, device, dtype);
  auto optimizer = make_optimizer(problem.W, problem.b, problem.unused);
  auto scheduler = make_scheduler ? make_scheduler(*optimizer) : nullptr;
  Tensor expected_W = fixture.tensor(config + "_W");
  Tensors Ws, bs, losses;
  for (int64_t step = 0; step < expected_W.size(0); ++step) {
    losses.push_back(train_step(problem, *optimizer, scheduler.get()));
    Ws.push_back(problem.W.detach().clone());
    bs.push_back(problem.b.detach().clone());
  }
  const double rtol = rtol_for(dtype), atol = atol_for(dtype);
  hgtest::check_close(hg::stack(Ws), expected_W, rtol, atol, config + "_W");
  hgtest::check_close(hg::stack(bs), fixture.tensor(config + "_b"), rtol, atol, config + "_b");
  hgtest::check_close(hg::stack(losses), fixture.tensor(config + "_loss"), rtol, atol, config + "_loss");
  CHECK(hg::max_abs_diff(problem.unused, fixture.tensor("unused").to(device, dtype)) == 0.0);
  // `unused` is parameter 2 (or 1 where it shares group 0 with W): it has no state keys at all.
  for (const auto& [key, value] : optimizer->state_dict().tensors) {
    CHECK_MESSAGE(!key.starts_with(fmt::format("state.{}.", config == "adam" || config == "sgd" ? 1 : 2)), key);
  }
  return {hg::stack(Ws), hg::stack(bs)};
}

template <typename Opt, typename Options>
MakeOptimizer plain(Options options) {
  return [options](Tensor W, Tensor b, Tensor unused) {
    return std::make_unique<Opt>(std::vector<Tensor>{W, b, unused}, options);
  };
}

/// check_training in float64 and float32 for each (config, optimizer) of a fixture.
Tensors check_fixture(const std::string& name, hg::Device device,
                      const std::vector<std::pair<std::string, MakeOptimizer>>& configs) {
  hgtest::Fixture fixture = hgtest::Fixture::load(name);
  Tensors results;
  for (const auto& [config, make] : configs)
    for (hg::DType dtype : {hg::kFloat64, hg::kFloat32})
      for (const Tensor& t : check_training(fixture, config, device, dtype, make)) results.push_back(t);
  return results;
}

void set_grads(const Tensors& params, const Tensors& grads) {
  for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i].clone());
}

}  // namespace

// ---- each optimizer against PyTorch -------------------------------------------------------------------
HG_BACKEND_TEST(sgd_matches_pytorch) {
  return check_fixture("optim_sgd", device,
                       {{"plain", plain<optim::SGD>(optim::SGDOptions(0.1))},
                        {"momentum", plain<optim::SGD>(optim::SGDOptions(0.05).momentum(0.9).dampening(0.1).weight_decay(0.01))},
                        {"nesterov", plain<optim::SGD>(optim::SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(0.01))}});
}

HG_BACKEND_TEST(adam_matches_pytorch) {
  return check_fixture(
      "optim_adam", device,
      {{"default", plain<optim::Adam>(optim::AdamOptions(0.01))},
       {"amsgrad", plain<optim::Adam>(
                       optim::AdamOptions(0.02).betas({0.8, 0.95}).eps(1e-4).weight_decay(0.1).amsgrad(true))}});
}

HG_BACKEND_TEST(adamw_matches_pytorch) {
  return check_fixture(
      "optim_adamw", device,
      {{"default", plain<optim::AdamW>(optim::AdamWOptions(0.01))},
       {"amsgrad", plain<optim::AdamW>(
                       optim::AdamWOptions(0.02).betas({0.85, 0.99}).eps(1e-6).weight_decay(0.1).amsgrad(true))}});
}

HG_BACKEND_TEST(param_groups_and_scheduled_training_match_pytorch) {
  MakeOptimizer adam = [](Tensor W, Tensor b, Tensor unused) {
    return std::make_unique<optim::Adam>(std::vector<optim::ParamGroup<optim::AdamOptions>>{
        {{W, unused}, optim::AdamOptions(0.01)}, {{b}, optim::AdamOptions(0.1).weight_decay(0.1)}});
  };
  MakeOptimizer sgd = [](Tensor W, Tensor b, Tensor unused) {
    return std::make_unique<optim::SGD>(std::vector<optim::ParamGroup<optim::SGDOptions>>{
        {{W, unused}, optim::SGDOptions(0.1).momentum(0.9)}, {{b}, optim::SGDOptions(0.2).momentum(0.5)}});
  };
  hgtest::Fixture fixture = hgtest::Fixture::load("optim_groups");
  Tensors results = check_fixture("optim_groups", device, {{"adam", adam}, {"sgd", sgd}});
  for (hg::DType dtype : {hg::kFloat64, hg::kFloat32}) {
    Tensors scheduled = check_training(
        fixture, "scheduled", device, dtype, plain<optim::SGD>(optim::SGDOptions(0.1).momentum(0.9)),
        [](optim::Optimizer& opt) { return std::make_unique<optim::CosineAnnealingLR>(opt, 4); });
    results.insert(results.end(), scheduled.begin(), scheduled.end());
  }
  return results;
}

// ---- schedulers -------------------------------------------------------------------------------------
TEST_CASE("lr schedulers match pytorch for twelve steps over two groups") {
  hgtest::Fixture fixture = hgtest::Fixture::load("optim_schedulers");
  std::vector<std::pair<std::string, MakeScheduler>> schedules = {
      {"step", [](optim::Optimizer& o) { return std::make_unique<optim::StepLR>(o, 3, 0.5); }},
      {"exponential", [](optim::Optimizer& o) { return std::make_unique<optim::ExponentialLR>(o, 0.9); }},
      {"cosine", [](optim::Optimizer& o) { return std::make_unique<optim::CosineAnnealingLR>(o, 5, 0.001); }},
      {"warmup", [](optim::Optimizer& o) { return std::make_unique<optim::LinearWarmupCosine>(o, 3, 10, 0.001); }},
  };
  for (const auto& [name, make] : schedules) {
    INFO(name);
    Tensor p0 = hg::zeros({1}).requires_grad_(), p1 = hg::zeros({1}).requires_grad_();
    optim::SGD opt({{{p0}, optim::SGDOptions(0.1)}, {{p1}, optim::SGDOptions(0.01)}});
    auto scheduler = make(opt);
    Tensor expected = fixture.tensor(name + "_lrs");
    std::vector<double> got;
    for (int64_t step = 0; step < expected.size(0); ++step) {
      if (step > 0) {
        opt.step();
        scheduler->step();
      }
      CHECK(scheduler->last_epoch() == step);
      for (size_t g = 0; g < 2; ++g) {
        CHECK(scheduler->get_last_lr()[g] == opt.lr(g));
        got.push_back(opt.lr(g));
      }
    }
    hgtest::check_close(hg::from_vector(got, {expected.size(0), 2}), expected, 1e-13, 0.0, name);
    CHECK(scheduler->base_lrs() == std::vector<double>{0.1, 0.01});
  }
}

TEST_CASE("LinearWarmupCosine: zero at step 0, the base lr after warm-up, min_lr from total_steps on") {
  Tensor p = hg::zeros({1}).requires_grad_();
  optim::AdamW opt({p}, optim::AdamWOptions(0.4));
  optim::LinearWarmupCosine schedule(opt, 4, 8, 0.1);
  std::vector<double> lrs{opt.lr(0)};
  for (int i = 0; i < 10; ++i) {
    schedule.step();
    lrs.push_back(opt.lr(0));
  }
  // warm-up 0.4·t/4, then 0.1 + 0.3·(1 + cos(π(t − 4)/4))/2, then 0.1
  const double pi = std::numbers::pi;
  const double half = 0.1 + 0.3 * (1 + std::cos(pi / 4)) / 2, quarter = 0.1 + 0.3 * (1 + std::cos(3 * pi / 4)) / 2;
  std::vector<double> expected{0.0, 0.1, 0.2, 0.3, 0.4, half, 0.25, quarter, 0.1, 0.1, 0.1};
  for (size_t t = 0; t < lrs.size(); ++t) CHECK_MESSAGE(lrs[t] == doctest::Approx(expected[t]).epsilon(1e-14), t);
  // no warm-up: the cosine starts at the lr the optimizer has (here the previous schedule's floor)
  optim::LinearWarmupCosine no_warmup(opt, 0, 8, 0.0);
  CHECK(opt.lr(0) == 0.1);
}

TEST_CASE("scheduler state round trip: a restored scheduler continues identically") {
  Tensor p = hg::zeros({1}).requires_grad_(), q = hg::zeros({1}).requires_grad_();
  optim::SGD a({p}, optim::SGDOptions(0.1)), b({q}, optim::SGDOptions(0.5));
  optim::CosineAnnealingLR sa(a, 5, 0.01);
  for (int i = 0; i < 3; ++i) sa.step();
  optim::CosineAnnealingLR sb(b, 5, 0.01);
  b.load_state_dict(a.state_dict());  // the current lr comes with the optimizer state
  sb.load_state(optim::SchedulerState::from_map(sa.state().to_map()));
  CHECK(sb.last_epoch() == 3);
  for (int i = 0; i < 9; ++i) {
    sa.step();
    sb.step();
    CHECK(a.lr(0) == b.lr(0));
  }
  CHECK(sb.get_last_lr() == sa.get_last_lr());
  CHECK_THROWS_WITH_AS(sb.load_state({2, {0.1, 0.1}, {0.1, 0.1}}), doctest::Contains("optimizer has 1 parameter groups"),
                       hg::Error);

  // The other order: the optimizer's state first, then a new warm-up scheduler (which sets its step-0 lr, 0),
  // then the scheduler's state: the optimizer gets the lr the schedule had reached, not 0.
  {
    Tensor r = hg::zeros({1}).requires_grad_(), s = hg::zeros({1}).requires_grad_();
    optim::SGD c({r}, optim::SGDOptions(0.1)), d({s}, optim::SGDOptions(0.1));
    optim::LinearWarmupCosine sc(c, 4, 20);
    for (int i = 0; i < 2; ++i) sc.step();
    d.load_state_dict(c.state_dict());
    optim::LinearWarmupCosine sd(d, 4, 20);
    CHECK(d.lr(0) == 0.0);
    sd.load_state(sc.state());
    CHECK(d.lr(0) == c.lr(0));
    CHECK(c.lr(0) > 0.0);
  }

  // A step whose lr would be negative (a recursive cosine following an lr set by hand below eta_min) is an
  // error naming the scheduler; it sets no group and is not counted.
  {
    Tensor r = hg::zeros({1}).requires_grad_(), s = hg::zeros({1}).requires_grad_();
    optim::SGD c(std::vector<optim::ParamGroup<optim::SGDOptions>>{{{r}, optim::SGDOptions(0.1)},
                                                                   {{s}, optim::SGDOptions(0.1)}});
    optim::CosineAnnealingLR sc(c, 4, 0.2);
    for (int i = 0; i < 5; ++i) sc.step();
    c.set_lr(0, 0.05);
    c.set_lr(1, 0.3);
    CHECK_THROWS_WITH_AS(sc.step(), doctest::Contains("CosineAnnealingLR: step 6 gives parameter group 0 the learning rate -"),
                         hg::Error);
    CHECK(sc.last_epoch() == 5);
    CHECK(c.lr(0) == 0.05);
    CHECK(c.lr(1) == 0.3);
  }
  CHECK_THROWS_WITH_AS(optim::SchedulerState::from_map({{"base_lrs.0", 0.1}}), doctest::Contains("'last_epoch'"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(
      optim::SchedulerState::from_map({{"last_epoch", 2}, {"base_lrs.0", 0.1}, {"last_lrs.0", 0.1}, {"x", 1}}),
      doctest::Contains("unexpected key 'x'"), hg::Error);
}

// ---- gradient clipping ------------------------------------------------------------------------------
HG_BACKEND_TEST(clip_grad_norm_and_value_match_pytorch) {
  hgtest::Fixture fixture = hgtest::Fixture::load("optim_clip");
  Tensor W = fixture.tensor("W").to(device).requires_grad_(), b = fixture.tensor("b").to(device).requires_grad_();
  Tensor unused = hg::zeros({2}, hg::kFloat64).to(device).requires_grad_();  // no gradient: ignored
  Tensors grads{fixture.tensor("grad_W").to(device), fixture.tensor("grad_b").to(device)};
  Tensors results;
  const double inf = std::numeric_limits<double>::infinity();
  for (auto [name, max_norm, norm_type] : {std::tuple{"norm2", 0.5, 2.0}, std::tuple{"norminf", 0.5, inf},
                                           std::tuple{"norm1", 0.1, 1.0}, std::tuple{"loose", 100.0, 2.0}}) {
    INFO(name);
    set_grads({W, b}, grads);
    Tensor total = optim::clip_grad_norm_({W, unused, b}, max_norm, norm_type);
    CHECK(total.dim() == 0);
    CHECK(total.device() == device);
    hgtest::check_close(total, fixture.tensor(std::string(name) + "_total"), 1e-12, 0.0, "total norm");
    hgtest::check_close(W.grad(), fixture.tensor(std::string(name) + "_W"), 1e-12, 1e-15, "clipped W");
    hgtest::check_close(b.grad(), fixture.tensor(std::string(name) + "_b"), 1e-12, 1e-15, "clipped b");
    CHECK(!unused.grad().defined());
    results.insert(results.end(), {total, W.grad(), b.grad()});
  }
  set_grads({W, b}, grads);
  optim::clip_grad_value_({W, b, unused}, 0.05);
  hgtest::check_close(W.grad(), fixture.tensor("value_W"), 0.0, 0.0, "clip_grad_value_ W");
  hgtest::check_close(b.grad(), fixture.tensor("value_b"), 0.0, 0.0, "clip_grad_value_ b");
  results.insert(results.end(), {W.grad(), b.grad()});

  // float32 gradients give a float32 norm
  Tensor w32 = hg::zeros({3}).to(device).requires_grad_();
  w32.set_grad(hg::from_vector<float>({3, 0, 4}, {3}).to(device));
  Tensor total32 = optim::clip_grad_norm_({w32}, 1.0);
  CHECK(total32.dtype() == hg::kFloat32);
  CHECK(total32.item<float>() == doctest::Approx(5.0));
  hgtest::check_close(w32.grad(), hg::from_vector<double>({0.6, 0, 0.8}, {3}), 1e-6, 1e-6, "float32 clip");
  return results;
}

TEST_CASE("clip_grad_norm_: no gradients, non-finite norms, bad arguments") {
  Tensor p = hg::zeros({2}, hg::kFloat64).requires_grad_();
  Tensor none = optim::clip_grad_norm_({p}, 1.0);
  CHECK(none.item<double>() == 0.0);  // as torch: tensor(0.) when nothing has a gradient

  p.set_grad(hg::from_vector<double>({std::nan(""), 1.0}, {2}));
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p}, 1.0, 2.0, /*error_if_nonfinite=*/true),
                       doctest::Contains("total norm of order 2 of the gradients is nan"), hg::Error);
  CHECK(p.grad().to_vector<double>()[1] == 1.0);  // left untouched by the refused clip
  p.set_grad(hg::from_vector<double>({INFINITY, 1.0}, {2}));
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p}, 1.0, INFINITY, true), doctest::Contains("is inf"), hg::Error);
  // without the flag, PyTorch scales by the non-finite norm: max_norm / (inf + 1e-6) = 0
  Tensor total = optim::clip_grad_norm_({p}, 1.0);
  CHECK(std::isinf(total.item<double>()));
  CHECK(std::isnan(p.grad().to_vector<double>()[0]));  // inf · 0
  CHECK(p.grad().to_vector<double>()[1] == 0.0);

  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p}, -1.0), doctest::Contains("max_norm must be >= 0, got -1"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::clip_grad_value_({p}, -0.5), doctest::Contains("clip_value must be >= 0"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({Tensor()}, 1.0), doctest::Contains("parameter 0 is an undefined"),
                       hg::Error);
}

// ---- state_dict ---------------------------------------------------------------------------------------
TEST_CASE("state_dict round trip: a restored optimizer continues exactly like the original") {
  using Factory = std::function<std::unique_ptr<optim::Optimizer>(const Tensors&, double lr)>;
  std::vector<std::tuple<std::string, std::string, Factory>> cases = {
      {"optim_sgd", "momentum",
       [](const Tensors& p, double lr) {
         return std::make_unique<optim::SGD>(p, optim::SGDOptions(lr).momentum(0.9).dampening(0.1).weight_decay(0.01));
       }},
      {"optim_adam", "amsgrad",
       [](const Tensors& p, double lr) {
         return std::make_unique<optim::Adam>(
             p, optim::AdamOptions(lr).betas({0.8, 0.95}).eps(1e-4).weight_decay(0.1).amsgrad(true));
       }},
      {"optim_adamw", "amsgrad",
       [](const Tensors& p, double lr) {
         return std::make_unique<optim::AdamW>(
             p, optim::AdamWOptions(lr).betas({0.85, 0.99}).eps(1e-6).weight_decay(0.1).amsgrad(true));
       }},
  };
  for (const auto& [name, config, make] : cases) {
    INFO(name);
    hgtest::Fixture fixture = hgtest::Fixture::load(name);
    const double lr = name == "optim_sgd" ? 0.05 : 0.02;
    Problem original(fixture, hg::kCPU, hg::kFloat64);
    auto first = make({original.W, original.b, original.unused}, lr);
    for (int i = 0; i < 3; ++i) train_step(original, *first, nullptr);

    optim::OptimizerStateDict saved = first->state_dict();
    CHECK(saved.optimizer == first->name());
    CHECK(saved.scalars.at("param_groups.0.lr") == lr);
    CHECK(saved.scalars.at("param_groups.0.num_params") == 3);
    CHECK(saved.scalars.at("param_groups.0.weight_decay") == (name == "optim_sgd" ? 0.01 : 0.1));
    if (name == "optim_sgd") {
      CHECK(saved.tensors.count("state.0.momentum_buffer") == 1);
      CHECK(saved.scalars.at("param_groups.0.nesterov") == 0.0);
    } else {
      CHECK(saved.scalars.at("state.1.step") == 3);
      CHECK(saved.scalars.at("param_groups.0.amsgrad") == 1.0);
      CHECK(saved.tensors.at("state.1.max_exp_avg_sq").sizes() == hg::Shape{3});
    }
    CHECK(saved.tensors.count(fmt::format("state.2.{}", name == "optim_sgd" ? "momentum_buffer" : "exp_avg")) == 0);

    // The copy starts from the same parameter values, a different lr and no state; loading brings both back.
    Problem resumed(fixture, hg::kCPU, hg::kFloat64);
    resumed.W.detach().copy_(original.W.detach());
    resumed.b.detach().copy_(original.b.detach());
    auto second = make({resumed.W, resumed.b, resumed.unused}, 123.0);
    second->load_state_dict(saved);
    CHECK(second->lr(0) == lr);
    for (int i = 0; i < 3; ++i) {
      train_step(original, *first, nullptr);
      train_step(resumed, *second, nullptr);
      CHECK(hg::max_abs_diff(original.W, resumed.W) == 0.0);
      CHECK(hg::max_abs_diff(original.b, resumed.b) == 0.0);
    }
    hgtest::check_close(resumed.W, fixture.tensor(config + "_W").select(0, 5), 1e-11, 1e-13, "resumed W");
    // the loaded buffers are copies: the two optimizers do not share state
    const std::string buffer = name == "optim_sgd" ? "state.0.momentum_buffer" : "state.0.exp_avg";
    CHECK(second->state_dict().tensors.at(buffer).data_ptr() != first->state_dict().tensors.at(buffer).data_ptr());
  }
}

TEST_CASE("load_state_dict converts buffers to the parameters' dtype") {
  Tensor p64 = hg::ones({2}, hg::kFloat64).requires_grad_(), p32 = hg::ones({2}).requires_grad_();
  optim::Adam a({p64}), b({p32});
  p64.set_grad(hg::ones({2}, hg::kFloat64));
  a.step();
  b.load_state_dict(a.state_dict());
  CHECK(b.state_dict().tensors.at("state.0.exp_avg").dtype() == hg::kFloat32);
  p32.set_grad(hg::ones({2}));
  b.step();  // continues at step 2
  CHECK(b.state_dict().scalars.at("state.0.step") == 2);
}

TEST_CASE("load_state_dict names the first mismatch and leaves the optimizer unchanged") {
  Tensor W = hg::ones({2, 3}, hg::kFloat64).requires_grad_(), b = hg::ones({2}, hg::kFloat64).requires_grad_();
  optim::Adam opt({W, b}, optim::AdamOptions(0.1));
  W.set_grad(hg::ones({2, 3}, hg::kFloat64));
  b.set_grad(hg::ones({2}, hg::kFloat64));
  opt.step();
  const optim::OptimizerStateDict good = opt.state_dict();
  auto expect_error = [&](optim::OptimizerStateDict dict, const std::string& message) {
    Tensor W2 = hg::ones({2, 3}, hg::kFloat64).requires_grad_(), b2 = hg::ones({2}, hg::kFloat64).requires_grad_();
    optim::Adam target({W2, b2}, optim::AdamOptions(0.5));
    CHECK_THROWS_WITH_AS(target.load_state_dict(dict), doctest::Contains(message.c_str()), hg::Error);
    CHECK(target.lr(0) == 0.5);
    CHECK(target.state_dict().tensors.empty());
  };
  auto dict = good;
  dict.optimizer = "SGD";
  expect_error(dict, "Adam.load_state_dict: the state is from a SGD optimizer, expected Adam");
  dict = good;
  dict.tensors["state.0.exp_avg"] = hg::zeros({3, 2}, hg::kFloat64);
  expect_error(dict, "'state.0.exp_avg' has shape [3, 2], its parameter has shape [2, 3]");
  dict = good;
  dict.tensors.erase("state.1.exp_avg_sq");
  expect_error(dict, "missing key 'state.1.exp_avg_sq' (parameter 1 has other state)");
  dict = good;
  dict.scalars.erase("param_groups.0.beta2");
  expect_error(dict, "missing key 'param_groups.0.beta2'");
  dict = good;
  dict.scalars["param_groups.0.num_params"] = 3;
  expect_error(dict, "param_groups.0 has 3 parameters in the state, 2 in this optimizer");
  dict = good;
  dict.scalars["param_groups.1.lr"] = 0.1;
  expect_error(dict, "unexpected key 'param_groups.1.lr' (this optimizer has 2 parameters in 1 groups)");
  dict = good;
  dict.tensors["state.2.exp_avg"] = hg::zeros({2}, hg::kFloat64);
  expect_error(dict, "unexpected key 'state.2.exp_avg'");
  dict = good;
  dict.scalars["param_groups.0.amsgrad"] = 0.5;
  expect_error(dict, "'param_groups.0.amsgrad' is 0.5, expected 0 or 1");
  dict = good;
  dict.scalars["param_groups.0.beta1"] = 1.5;
  expect_error(dict, "invalid beta parameter at index 0: 1.5");
  dict = good;
  dict.scalars["state.0.step"] = -1;
  expect_error(dict, "'state.0.step' is -1, expected a count of steps");
  dict = good;
  dict.tensors["state.0.exp_avg"] = hg::zeros({2, 3}, hg::kInt64);
  expect_error(dict, "'state.0.exp_avg' has dtype int64, expected a floating-point dtype");
}

// ---- zero_grad and skipping -----------------------------------------------------------------------------
TEST_CASE("zero_grad drops gradients or zeroes them in place") {
  Tensor p = hg::ones({3}, hg::kFloat64).requires_grad_();
  optim::SGD opt({p}, optim::SGDOptions(0.1));
  (p * p).sum().backward();
  opt.zero_grad();
  CHECK(!p.grad().defined());
  opt.step();  // no gradient: nothing happens
  CHECK(p.to_vector<double>() == std::vector<double>{1, 1, 1});

  (p * p).sum().backward();
  const void* storage = p.grad().data_ptr();
  opt.zero_grad(/*set_to_none=*/false);
  CHECK(p.grad().data_ptr() == storage);
  CHECK(p.grad().to_vector<double>() == std::vector<double>{0, 0, 0});

  // a gradient that carries a graph (create_graph) is detached before it is zeroed
  opt.zero_grad();
  (p * p * p).sum().backward(Tensor(), false, /*create_graph=*/true);
  REQUIRE(p.grad().requires_grad());
  opt.zero_grad(false);
  CHECK(!p.grad().requires_grad());
  CHECK(p.grad().to_vector<double>() == std::vector<double>{0, 0, 0});

  // Module::zero_grad(false) the same way: a second-order gradient after it sees only the new loss
  // (d/dw of 2w is 2; with the old graph left on the zeroed gradient it was 2 + 6w = 14 at w = 2).
  struct OneImpl : hg::nn::Module {
    OneImpl() { w = register_parameter("w", hg::full({1}, 2.0, hg::kFloat64)); }
    Tensor w;
  };
  auto module = std::make_shared<OneImpl>();
  module->w.pow(3.0).sum().backward(Tensor(), false, true);
  module->zero_grad(false);
  CHECK(!module->w.grad().requires_grad());
  module->w.pow(2.0).sum().backward(Tensor(), false, true);
  Tensor first = module->w.grad();
  module->w.set_grad({});
  first.sum().backward();
  CHECK(module->w.grad().item<double>() == 2.0);
}

TEST_CASE("an optimizer built from an empty parameter list is refused, as torch does") {
  CHECK_THROWS_WITH_AS(optim::SGD(std::vector<Tensor>{}, optim::SGDOptions(0.1)),
                       doctest::Contains("SGD: optimizer got an empty parameter list"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam(std::vector<Tensor>{}), doctest::Contains("Adam: optimizer got an empty parameter"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::AdamW(std::vector<Tensor>{}),
                       doctest::Contains("AdamW: optimizer got an empty parameter list"), hg::Error);
  // Explicit groups may be empty (as torch's param_groups).
  Tensor p = hg::zeros({1}, hg::kFloat64).requires_grad_();
  optim::SGD groups({optim::ParamGroup<optim::SGDOptions>{{p}, optim::SGDOptions(0.1)},
                     optim::ParamGroup<optim::SGDOptions>{{}, optim::SGDOptions(0.2)}});
  CHECK(groups.num_param_groups() == 2);
}

TEST_CASE("set_lr and options() change the hyperparameters between steps") {
  Tensor p = hg::zeros({1}, hg::kFloat64).requires_grad_();
  optim::SGD opt({p}, optim::SGDOptions(0.1));
  opt.set_lr(0, 0.5);
  p.set_grad(hg::ones({1}, hg::kFloat64));
  opt.step();
  CHECK(p.item<double>() == -0.5);
  opt.options(0).weight_decay(1.0);  // d = 1 + 1·(−0.5) = 0.5
  opt.step();
  CHECK(p.item<double>() == doctest::Approx(-0.75));
  opt.options(0).momentum(-1.0);
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("SGD: invalid momentum -1"), hg::Error);
  CHECK_THROWS_WITH_AS(opt.set_lr(0, -1.0), doctest::Contains("SGD: invalid learning rate -1"), hg::Error);
  CHECK_THROWS_WITH_AS(opt.set_lr(1, 0.1), doctest::Contains("SGD.set_lr: group 1 is out of range (the optimizer has 1 groups)"),
                       hg::Error);
  CHECK(opt.parameters().size() == 1);
}

// ---- bad options ----------------------------------------------------------------------------------------
TEST_CASE("optimizers and schedulers reject bad options") {
  Tensor p = hg::zeros({2}).requires_grad_();
  using optim::AdamOptions, optim::AdamWOptions, optim::SGDOptions;
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(-0.1)), doctest::Contains("SGD: invalid learning rate -0.1"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(0.1).momentum(-0.5)), doctest::Contains("invalid momentum -0.5"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(0.1).weight_decay(-1)), doctest::Contains("invalid weight_decay"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(0.1).nesterov(true)),
                       doctest::Contains("Nesterov momentum requires a momentum and zero dampening"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(0.1).nesterov(true).momentum(0.9).dampening(0.1)),
                       doctest::Contains("dampening 0.1"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p}, SGDOptions(std::nan(""))), doctest::Contains("invalid learning rate nan"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam({p}, AdamOptions(-1e-3)), doctest::Contains("Adam: invalid learning rate"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam({p}, AdamOptions().betas({1.0, 0.999})),
                       doctest::Contains("Adam: invalid beta parameter at index 0: 1 (expected 0 <= beta1 < 1)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam({p}, AdamOptions().betas({0.9, -0.1})),
                       doctest::Contains("invalid beta parameter at index 1: -0.1"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam({p}, AdamOptions().eps(-1e-8)), doctest::Contains("invalid epsilon"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::AdamW({p}, AdamWOptions().weight_decay(-0.01)),
                       doctest::Contains("AdamW: invalid weight_decay -0.01"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::AdamW({p}, AdamWOptions().betas({0.9, 1.0})),
                       doctest::Contains("AdamW: invalid beta parameter at index 1"), hg::Error);
  CHECK(AdamWOptions().weight_decay() == 0.01);
  CHECK(AdamOptions().weight_decay() == 0.0);

  // parameter lists
  CHECK_THROWS_WITH_AS(optim::Adam(std::vector<optim::ParamGroup<AdamOptions>>{}),
                       doctest::Contains("Adam: got an empty list of parameter groups"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::Adam({{{p}, AdamOptions()}, {{p}, AdamOptions()}}),
                       doctest::Contains("parameter 0 of group 1 (float32[2] cpu) appears more than once"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({p * 2.0}, SGDOptions(0.1)), doctest::Contains("is not a leaf tensor"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::SGD({Tensor()}, SGDOptions(0.1)),
                       doctest::Contains("SGD: parameter 0 of group 0 is an undefined tensor"), hg::Error);

  // schedulers
  optim::SGD opt({p}, SGDOptions(0.1));
  CHECK_THROWS_WITH_AS(optim::StepLR(opt, 0), doctest::Contains("StepLR: step_size must be positive, got 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::ExponentialLR(opt, -0.5), doctest::Contains("ExponentialLR: gamma must be positive"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::CosineAnnealingLR(opt, 0), doctest::Contains("T_max must be positive, got 0"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(optim::CosineAnnealingLR(opt, 5, -1.0), doctest::Contains("eta_min must be >= 0"), hg::Error);
  CHECK_THROWS_WITH_AS(optim::LinearWarmupCosine(opt, 10, 5),
                       doctest::Contains("expected 0 <= warmup_steps <= total_steps, got warmup_steps 10 and total_steps 5"),
                       hg::Error);
  CHECK(opt.lr(0) == 0.1);  // a refused scheduler leaves the lr alone
}
