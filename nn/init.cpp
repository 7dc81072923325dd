// Parameter initialisers (torch.nn.init), written with hg ops under NoGradGuard.
#include <hopgrad/nn/init.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/ops/ops.h>

namespace hg::nn::init {

namespace {

void check_fillable(const Tensor& tensor, const char* op) {
  HG_CHECK(tensor.defined(), "init::{}: the tensor is undefined", op);
  HG_CHECK(is_floating(tensor.dtype()), "init::{}: expected a floating-point tensor, got {}", op, tensor.desc());
}

TensorOptions options_like(const Tensor& tensor) { return TensorOptions(tensor.dtype()).device(tensor.device()); }

int64_t fan(const Tensor& tensor, FanMode mode) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  return mode == FanMode::FanIn ? fan_in : fan_out;
}

// erf⁻¹(y) for y in (−1, 1): Giles' single-precision polynomial ("Approximating the erfinv function", GPU
// Computing Gems 2011) refined by two Newton steps on erf(x) − y, which bring it to double precision.
double erfinv(double y) {
  if (y <= -1.0) return -std::numeric_limits<double>::infinity();
  if (y >= 1.0) return std::numeric_limits<double>::infinity();
  double w = -std::log((1.0 - y) * (1.0 + y));
  double p;
  if (w < 5.0) {
    w -= 2.5;
    p = 2.81022636e-08;
    for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941})
      p = c + p * w;
  } else {
    w = std::sqrt(w) - 3.0;
    p = -0.000200214257;
    for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                     0.00943887047, 1.00167406, 2.83297682})
      p = c + p * w;
  }
  double x = p * y;
  for (int step = 0; step < 2; ++step) {
    double slope = 2.0 / std::sqrt(std::numbers::pi) * std::exp(-x * x);  // d erf(x)/dx
    if (slope == 0.0) break;
    x -= (std::erf(x) - y) / slope;
  }
  return x;
}

// Φ(x), the standard normal CDF.
double normal_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::numbers::sqrt2)); }

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv1D:
    case Nonlinearity::Conv2D:
    case Nonlinearity::Conv3D:
    case Nonlinearity::Sigmoid: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::ReLU: return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::SELU: return 3.0 / 4.0;  // PyTorch's choice, for self-normalising networks
  }
  HG_FAIL("init::calculate_gain: unknown nonlinearity {}", static_cast<int>(nonlinearity));
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor) {
  HG_CHECK(tensor.defined() && tensor.dim() >= 2,
           "init::calculate_fan_in_and_fan_out: fan in and fan out need a tensor with at least 2 dims, got {}",
           tensor.defined() ? tensor.desc() : std::string("an undefined tensor"));
  int64_t receptive_field = 1;
  for (int64_t d = 2; d < tensor.dim(); ++d) receptive_field *= tensor.size(d);
  return {tensor.size(1) * receptive_field, tensor.size(0) * receptive_field};
}

Tensor uniform_(const Tensor& tensor, double a, double b, Generator* gen) {
  check_fillable(tensor, "uniform_");
  HG_CHECK(a <= b, "init::uniform_: expected a <= b, got a = {}, b = {}", a, b);
  NoGradGuard no_grad;
  tensor.copy_(rand(tensor.sizes(), options_like(tensor), gen) * (b - a) + a);
  return tensor;
}

Tensor normal_(const Tensor& tensor, double mean, double std, Generator* gen) {
  check_fillable(tensor, "normal_");
  HG_CHECK(std >= 0.0, "init::normal_: expected std >= 0, got {}", std);
  NoGradGuard no_grad;
  tensor.copy_(randn(tensor.sizes(), options_like(tensor), gen) * std + mean);
  return tensor;
}

Tensor constant_(const Tensor& tensor, double value) {
  HG_CHECK(tensor.defined(), "init::constant_: the tensor is undefined");
  NoGradGuard no_grad;
  tensor.fill_(value);
  return tensor;
}
Tensor zeros_(const Tensor& tensor) { return constant_(tensor, 0.0); }
Tensor ones_(const Tensor& tensor) { return constant_(tensor, 1.0); }

Tensor xavier_uniform_(const Tensor& tensor, double gain, Generator* gen) {
  check_fillable(tensor, "xavier_uniform_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(tensor, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& tensor, double gain, Generator* gen) {
  check_fillable(tensor, "xavier_normal_");
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  return normal_(tensor, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

Tensor kaiming_uniform_(const Tensor& tensor, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  check_fillable(tensor, "kaiming_uniform_");
  if (tensor.numel() == 0) return tensor;  // as PyTorch: initialising a zero-element tensor is a no-op
  int64_t n = fan(tensor, mode);
  double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / static_cast<double>(n));
  return uniform_(tensor, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& tensor, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  check_fillable(tensor, "kaiming_normal_");
  if (tensor.numel() == 0) return tensor;
  int64_t n = fan(tensor, mode);
  return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(n)), gen);
}

// x = mean + std·√2·erf⁻¹(u), u ~ U(2Φ(α) − 1, 2Φ(β) − 1), α = (a − mean)/std, β = (b − mean)/std; then clamped
// to [a, b] against rounding at the ends.
Tensor trunc_normal_(const Tensor& tensor, double mean, double std, double a, double b, Generator* gen) {
  check_fillable(tensor, "trunc_normal_");
  HG_CHECK(std > 0.0 && a < b, "init::trunc_normal_: expected std > 0 and a < b, got std = {}, a = {}, b = {}",
           std, a, b);
  NoGradGuard no_grad;
  double low = 2.0 * normal_cdf((a - mean) / std) - 1.0;
  double high = 2.0 * normal_cdf((b - mean) / std) - 1.0;
  // Uniforms come from the tensor's device generator; erf⁻¹ has no op, so it is applied on the host.
  std::vector<double> u =
      rand(tensor.sizes(), TensorOptions(kFloat64).device(tensor.device()), gen).to_vector<double>();
  for (double& x : u) {
    x = mean + std * std::numbers::sqrt2 * erfinv(low + (high - low) * x);
    x = std::fmin(std::fmax(x, a), b);
  }
  tensor.copy_(from_vector(u, tensor.sizes()));
  return tensor;
}

}  // namespace hg::nn::init
