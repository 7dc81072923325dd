#include "testing.h"

#include <cmath>

#include <sys/wait.h>
#include <unistd.h>

namespace hgtest {

hg::Tensor uniform(hg::IntArrayRef shape, double lo, double hi, uint64_t seed) {
  hg::Generator gen(seed);
  return hg::rand(shape, hg::kFloat64, &gen) * (hi - lo) + lo;
}

hg::nn::HopfieldOptions hopfield_options_without_norms(int64_t input_size) {
  return hg::nn::HopfieldOptions(input_size)
      .normalize_stored_pattern(false)
      .normalize_stored_pattern_affine(false)
      .normalize_state_pattern(false)
      .normalize_state_pattern_affine(false)
      .normalize_pattern_projection(false)
      .normalize_pattern_projection_affine(false);
}

void randomize_parameters(hg::nn::Module& module, uint64_t seed, double scale) {
  hg::NoGradGuard no_grad;
  hg::Generator gen(seed);
  for (const auto& [name, p] : module.named_parameters())
    p.copy_(hg::randn(p.sizes(), hg::TensorOptions(p.dtype()).device(p.device()), &gen) * scale);
}

void check_parameter_gradients(hg::nn::Module& module, const std::function<hg::Tensor()>& f, double eps, double atol,
                               double rtol) {
  module.zero_grad();
  hg::Tensor out = f();
  hg::Tensor w = uniform(out.sizes(), 0.5, 1.5, 99);
  hg::sum(out * w).backward();
  hg::NoGradGuard no_grad;
  for (const auto& [name, p] : module.named_parameters()) {
    if (!p.requires_grad()) continue;
    REQUIRE(p.dtype() == hg::kFloat64);
    std::vector<double> analytic = p.grad().defined() ? p.grad().to_vector<double>()
                                                      : std::vector<double>(static_cast<size_t>(p.numel()), 0.0);
    double* data = p.data_ptr<double>();
    int64_t bad = 0;
    std::string first;
    for (int64_t j = 0; j < p.numel(); ++j) {
      const double original = data[j];
      data[j] = original + eps;
      const double plus = hg::sum(f() * w).item<double>();
      data[j] = original - eps;
      const double minus = hg::sum(f() * w).item<double>();
      data[j] = original;
      const double numeric = (plus - minus) / (2 * eps), a = analytic[static_cast<size_t>(j)];
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric)) && bad++ == 0)
        first = fmt::format("element {}: backward {}, finite difference {}", j, a, numeric);
    }
    CHECK_MESSAGE(bad == 0, "parameter ", name, ": ", bad, " mismatches; first ", first);
  }
}

bool has_cuda() { return hg::cuda_is_available(); }

void check_close(const hg::Tensor& got, const hg::Tensor& expected, double rtol, double atol, const std::string& what) {
  REQUIRE_MESSAGE(got.sizes() == expected.sizes(), what << ": shape " << got.sizes().str() << " vs expected "
                                                        << expected.sizes().str());
  auto g = got.detach().to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
  auto e = expected.detach().to(hg::kCPU).to(hg::kFloat64).to_vector<double>();
  size_t bad = 0, worst = 0;
  double worst_err = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    bool both_nan = std::isnan(g[i]) && std::isnan(e[i]);
    bool same_inf = std::isinf(g[i]) && g[i] == e[i];
    double err = std::abs(g[i] - e[i]);
    if (both_nan || same_inf) continue;
    if (!(err <= atol + rtol * std::abs(e[i]))) {
      ++bad;
      if (!(err <= worst_err)) worst_err = err, worst = i;
    }
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << g.size() << " elements differ; worst at flat index "
                               << worst << ": got " << (g.empty() ? 0 : g[worst]) << ", expected "
                               << (e.empty() ? 0 : e[worst]));
}

namespace {
double weighted_sum(const hg::Tensor& out, const hg::Tensor& w) {
  return hg::sum(hg::mul(out.to(hg::kFloat64), w)).item<double>();
}
}  // namespace

void gradcheck(const std::function<hg::Tensor(const hg::Tensors&)>& f, hg::Tensors inputs, GradcheckOptions o) {
  for (auto& x : inputs) {
    if (!x.defined()) continue;
    REQUIRE_MESSAGE(x.dtype() == hg::kFloat64, "gradcheck needs float64 inputs, got " << x.desc());
    x = x.detach().contiguous().clone();
    x.requires_grad_(true);
  }
  hg::Tensor out = f(inputs);
  REQUIRE(out.defined());
  hg::Tensor w = uniform(out.sizes(), 0.5, 1.5, o.seed);
  hg::Tensor loss = hg::sum(hg::mul(out, w));
  loss.backward();

  // The incoming gradient in the layouts autograd hands to backward functions besides a contiguous one: W itself
  // read through doubled strides (a strided view), and a constant c expanded with stride 0 (sum's gradient),
  // whose result must be c times the gradient of Σ f. Both are compared with the gradients above, so every
  // backward kernel is also checked reading its incoming gradient through strides.
  {
    hg::Tensors wrt;
    for (const auto& x : inputs)
      if (x.defined()) wrt.push_back(x);
    const hg::Tensor w_strided = hg::stack({w, hg::zeros_like(w)}, -1).select(-1, 0);
    const double c = 0.75;
    const hg::Tensor c_expanded = hg::full({}, c, hg::kFloat64).expand(out.sizes());
    const hg::Tensors by_strided = hg::grad({f(inputs)}, wrt, {w_strided.to(out.dtype())}, false, false, true);
    const hg::Tensors by_expanded = hg::grad({f(inputs)}, wrt, {c_expanded.to(out.dtype())}, false, false, true);
    const hg::Tensors by_ones = hg::grad({hg::sum(f(inputs))}, wrt, {}, false, false, true);
    size_t k = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].defined()) continue;
      const hg::Tensor zero = hg::zeros_like(inputs[i]);
      const hg::Tensor reference = inputs[i].grad().defined() ? inputs[i].grad() : zero;
      const hg::Tensor ones_grad = by_ones[k].defined() ? by_ones[k] : zero;
      check_close(by_strided[k].defined() ? by_strided[k] : zero, reference, 1e-9, 1e-12,
                  "gradcheck input " + std::to_string(i) + ": backward of a strided incoming gradient");
      check_close(by_expanded[k].defined() ? by_expanded[k] : zero, hg::mul(ones_grad, c), 1e-9, 1e-12,
                  "gradcheck input " + std::to_string(i) + ": backward of an expanded (stride-0) incoming gradient");
      ++k;
    }
  }

  hg::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    hg::Tensor& x = inputs[i];
    if (!x.defined()) continue;
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector<double>()
                                                      : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    double* p = x.data_ptr<double>();
    size_t bad = 0;
    std::string first;
    for (int64_t j = 0; j < x.numel(); ++j) {
      double orig = p[j];
      p[j] = orig + o.eps;
      double plus = weighted_sum(f(inputs), w);
      p[j] = orig - o.eps;
      double minus = weighted_sum(f(inputs), w);
      p[j] = orig;
      double numeric = (plus - minus) / (2 * o.eps);
      double a = analytic[static_cast<size_t>(j)];
      if (!(std::abs(a - numeric) <= o.atol + o.rtol * std::abs(numeric))) {
        if (bad++ == 0)
          first = "element " + std::to_string(j) + ": backward " + std::to_string(a) + ", finite difference " +
                  std::to_string(numeric);
      }
    }
    CHECK_MESSAGE(bad == 0, "gradcheck input " << i << " " << x.desc() << ": " << bad << " mismatches; first "
                                               << first);
  }
}

void gradgradcheck(const std::function<hg::Tensor(const hg::Tensors&)>& f, hg::Tensors inputs, GradcheckOptions o) {
  // h(x) = Σ_i Σ V_i ⊙ ∂(Σ W ⊙ f(x))/∂x_i, differentiable because the inner gradient is built with create_graph.
  auto h = [&](const hg::Tensors& xs) {
    hg::Tensor out = f(xs);
    hg::Tensor w = uniform(out.sizes(), 0.5, 1.5, o.seed);
    hg::Tensors wrt;
    for (const auto& x : xs)
      if (x.defined()) wrt.push_back(x);
    hg::Tensor first = hg::sum(hg::mul(out, w));
    hg::Tensors grads;
    if (hg::GradMode::is_enabled()) {
      grads = hg::grad({first}, wrt, {}, true, true, true);
    } else {
      // Finite-difference evaluations run under NoGradGuard: rebuild the graph locally for the inner gradient.
      hg::AutoGradMode enable(true);
      hg::Tensors leaves;
      for (const auto& x : wrt) leaves.push_back(x.detach().requires_grad_(true));
      hg::Tensors shifted;
      size_t k = 0;
      for (const auto& x : xs) shifted.push_back(x.defined() ? leaves[k++] : hg::Tensor());
      hg::Tensor out2 = f(shifted);
      grads = hg::grad({hg::sum(hg::mul(out2, w))}, leaves, {}, false, false, true);
    }
    hg::Tensor total = hg::zeros({}, hg::kFloat64);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      total = total + hg::sum(hg::mul(grads[i], uniform(grads[i].sizes(), 0.5, 1.5, o.seed + 1 + i)));
    }
    return total;
  };
  gradcheck(h, std::move(inputs), o);
}

void compare_with_cpu(const char* name, const std::function<hg::Tensors(hg::Device)>& body, double rtol,
                      double atol) {
  hg::Tensors expected = body(hg::kCPU);
  for (int d = 0; d < hg::cuda_device_count(); ++d) {
    hg::Tensors got = body(hg::Device::cuda(d));
    REQUIRE_MESSAGE(got.size() == expected.size(), name << ": CUDA run returned " << got.size() << " tensors, CPU "
                                                        << expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (!expected[i].defined()) continue;
      CHECK_MESSAGE(got[i].device() == hg::Device::cuda(d), name << ": result " << i << " is on " << got[i].device().str());
      check_close(got[i], expected[i], rtol, atol, std::string(name) + " result " + std::to_string(i) + " on cuda");
    }
  }
}

int run_in_child_expecting_exit(const std::function<void()>& body, int exit_code) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      body();
    } catch (...) {
    }
    ::_exit(1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == exit_code);
  return child;
}

}  // namespace hgtest
