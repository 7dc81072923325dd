#pragma once
// Parameter initialisers, as torch.nn.init: each fills a tensor in place (without recording a graph) from
// `gen` or the tensor's device's default generator, and returns it.
//
//   hg::nn::init::kaiming_normal_(conv->weight, 0.0, hg::nn::init::FanMode::FanOut,
//                                 hg::nn::init::Nonlinearity::ReLU);
//   hg::nn::init::trunc_normal_(vit->pos_embed, 0.0, 0.02);
#include <cstdint>
#include <utility>

#include <hopgrad/core/generator.h>
#include <hopgrad/core/tensor.h>

namespace hg::nn::init {

enum class Nonlinearity { Linear, Conv1D, Conv2D, Conv3D, Sigmoid, Tanh, ReLU, LeakyReLU, SELU };
enum class FanMode { FanIn, FanOut };

/// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain): 1 for linear/conv/sigmoid, 5/3 for
/// tanh, √2 for ReLU, √(2 / (1 + slope²)) for leaky ReLU with negative slope `param`, 3/4 for SELU.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);
/// (fan_in, fan_out) of a weight [out, in, k...]: in·∏k and out·∏k. Needs at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor);

/// x ~ U(a, b)
Tensor uniform_(const Tensor& tensor, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
/// x ~ N(mean, std²)
Tensor normal_(const Tensor& tensor, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
/// x = value
Tensor constant_(const Tensor& tensor, double value);
Tensor zeros_(const Tensor& tensor);
Tensor ones_(const Tensor& tensor);
/// x ~ U(−a, a), a = gain·√(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)
Tensor xavier_uniform_(const Tensor& tensor, double gain = 1.0, Generator* gen = nullptr);
/// x ~ N(0, σ²), σ = gain·√(2 / (fan_in + fan_out))
Tensor xavier_normal_(const Tensor& tensor, double gain = 1.0, Generator* gen = nullptr);
/// x ~ U(−b, b), b = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a)  (He et al. 2015)
Tensor kaiming_uniform_(const Tensor& tensor, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyReLU, Generator* gen = nullptr);
/// x ~ N(0, σ²), σ = gain / √fan
Tensor kaiming_normal_(const Tensor& tensor, double a = 0.0, FanMode mode = FanMode::FanIn,
                       Nonlinearity nonlinearity = Nonlinearity::LeakyReLU, Generator* gen = nullptr);
/// x ~ N(mean, std²) conditioned on a ≤ x ≤ b (inverse-CDF sampling, as torch.nn.init.trunc_normal_).
Tensor trunc_normal_(const Tensor& tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                     Generator* gen = nullptr);

}  // namespace hg::nn::init
