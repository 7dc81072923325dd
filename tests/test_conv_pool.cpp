// Convolutions and max-pooling: hand-computed values and gradients, gradient checks (first and second order),
// the float32 oneDNN kernels against the float64 loop kernels at realistic sizes, padding Same/Valid and
// max-pooling dilation/ceil_mode against PyTorch (tests/fixtures/nn_conv_pool_modes.txt), and error messages.
#include <cmath>
#include <limits>
#include <thread>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
using hg::Tensors;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A leaf of `dtype` on `device` holding `values`, requiring grad.
Tensor leaf(const std::vector<double>& values, hg::IntArrayRef shape, hg::DType dtype, hg::Device device) {
  return hg::from_vector<double>(values, shape, hg::TensorOptions(dtype).device(device).requires_grad());
}

// A new leaf requiring grad with t's values in `dtype` on `device` (a detached alias when t already matches, so
// t itself is never marked).
Tensor leaf_copy(const Tensor& t, hg::DType dtype, hg::Device device) {
  return t.to(device, dtype).detach().requires_grad_();
}

Tensor expect(const std::vector<double>& values, hg::IntArrayRef shape) {
  return hg::from_vector<double>(values, shape, hg::kFloat64);
}

// Forward and backward of `op` (taking x, w, bias) with upstream gradient gy, inputs given in float64 on the CPU
// and run in `dtype` on `device`: {y, ∂L/∂x, ∂L/∂w, ∂L/∂b}.
Tensors conv_pass(const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& op, const Tensors& inputs,
                  const Tensor& gy, hg::DType dtype, hg::Device device) {
  Tensors leaves;
  for (const Tensor& t : inputs) leaves.push_back(leaf_copy(t, dtype, device));
  Tensor y = op(leaves[0], leaves[1], leaves[2]);
  y.backward(gy.to(device, dtype));
  return {y, leaves[0].grad(), leaves[1].grad(), leaves[2].grad()};
}

// Runs conv_pass in float32 (oneDNN on the CPU) and float64 (direct loops), checks that they agree, and returns
// the float32 results.
Tensors conv_f32_against_f64(const char* what, const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& op,
                             hg::IntArrayRef x_shape, hg::IntArrayRef w_shape, hg::Device device) {
  Tensor x = hgtest::uniform(x_shape, -1, 1, 11);
  Tensor w = hgtest::uniform(w_shape, -0.3, 0.3, 12);
  Tensor b = hgtest::uniform({w_shape[0]}, -1, 1, 13);
  Tensor y_shape_probe = op(x, w, b);
  Tensor gy = hgtest::uniform(y_shape_probe.sizes(), -1, 1, 14);
  Tensors f32 = conv_pass(op, {x, w, b}, gy, hg::kFloat32, device);
  Tensors f64 = conv_pass(op, {x, w, b}, gy, hg::kFloat64, device);
  const char* names[] = {"y", "grad_x", "grad_w", "grad_b"};
  for (size_t i = 0; i < f32.size(); ++i)
    hgtest::check_close(f32[i], f64[i], 1e-4, 2e-4, std::string(what) + " " + names[i] + ": float32 vs float64");
  return f32;
}

}  // namespace

// ---- hand-computed examples ------------------------------------------------------------------------------

// x = [[1 2 3] [4 5 6] [7 8 9]], w = [[1 2] [3 4]], b = 0.5
HG_BACKEND_TEST(conv2d_hand_computed_3x3_input_2x2_kernel) {
  Tensors results;
  const std::vector<double> x9{1, 2, 3, 4, 5, 6, 7, 8, 9}, w4{1, 2, 3, 4};
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    {  // stride 1, no padding: y[i, j] = Σ of the 2×2 window at (i, j) weighted by w, plus b
      Tensor x = leaf(x9, {1, 1, 3, 3}, dtype, device), w = leaf(w4, {1, 1, 2, 2}, dtype, device);
      Tensor b = leaf({0.5}, {1}, dtype, device);
      Tensor y = hg::conv2d(x, w, b);
      y.sum().backward();
      hgtest::check_close(y, expect({37.5, 47.5, 67.5, 77.5}, {1, 1, 2, 2}));
      // ∂Σy/∂w[kh, kw] = Σ of x over the four windows shifted by (kh, kw); ∂Σy/∂x = Σ of the w taps covering x
      hgtest::check_close(w.grad(), expect({12, 16, 24, 28}, {1, 1, 2, 2}));
      hgtest::check_close(x.grad(), expect({1, 3, 2, 4, 10, 6, 3, 7, 4}, {1, 1, 3, 3}));
      hgtest::check_close(b.grad(), expect({4}, {1}));
      results.insert(results.end(), {y, x.grad(), w.grad(), b.grad()});
    }
    {  // padding 1, stride 2: windows start at (-1,-1), (-1,1), (1,-1), (1,1)
      Tensor x = leaf(x9, {1, 1, 3, 3}, dtype, device), w = leaf(w4, {1, 1, 2, 2}, dtype, device);
      Tensor y = hg::conv2d(x, w, Tensor(), {2, 2}, {1, 1});
      y.sum().backward();
      hgtest::check_close(y, expect({1 * 4, 2 * 3 + 3 * 4, 4 * 2 + 7 * 4, 5 * 1 + 6 * 2 + 8 * 3 + 9 * 4}, {1, 1, 2, 2}));
      hgtest::check_close(x.grad(), expect({4, 3, 4, 2, 1, 2, 4, 3, 4}, {1, 1, 3, 3}));
      hgtest::check_close(w.grad(), expect({5, 4 + 6, 2 + 8, 1 + 3 + 7 + 9}, {1, 1, 2, 2}));
      results.insert(results.end(), {y, x.grad(), w.grad()});
    }
    {  // dilation 2: the kernel taps the four corners
      Tensor x = leaf(x9, {1, 1, 3, 3}, dtype, device), w = leaf(w4, {1, 1, 2, 2}, dtype, device);
      Tensor y = hg::conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {2, 2});
      y.sum().backward();
      hgtest::check_close(y, expect({1 * 1 + 3 * 2 + 7 * 3 + 9 * 4}, {1, 1, 1, 1}));
      hgtest::check_close(x.grad(), expect({1, 0, 2, 0, 0, 0, 3, 0, 4}, {1, 1, 3, 3}));
      hgtest::check_close(w.grad(), expect({1, 3, 7, 9}, {1, 1, 2, 2}));
      results.insert(results.end(), {y, x.grad(), w.grad()});
    }
    {  // groups 2: each output channel sees only its own input channel
      std::vector<double> x18(x9);
      x18.insert(x18.end(), x9.begin(), x9.end());
      Tensor x = leaf(x18, {1, 2, 3, 3}, dtype, device);
      Tensor w = leaf({1, 2, 3, 4, 1, 1, 1, 1}, {2, 1, 2, 2}, dtype, device);
      Tensor y = hg::conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 2);
      hgtest::check_close(y, expect({37, 47, 67, 77, 12, 16, 24, 28}, {1, 2, 2, 2}));
      results.push_back(y);
    }
    {  // unbatched input [Cin, H, W] gives an unbatched output
      Tensor y = hg::conv2d(leaf(x9, {1, 3, 3}, dtype, device), leaf(w4, {1, 1, 2, 2}, dtype, device));
      hgtest::check_close(y, expect({37, 47, 67, 77}, {1, 2, 2}));
    }
  }
  return results;
}

// x = [1 2 3 4 5], w = [1 0 −1]: with padding 1, y[i] = x[i−1] − x[i+1]
HG_BACKEND_TEST(conv1d_hand_computed) {
  Tensors results;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    Tensor x = leaf({1, 2, 3, 4, 5}, {1, 1, 5}, dtype, device), w = leaf({1, 0, -1}, {1, 1, 3}, dtype, device);
    Tensor y = hg::conv1d(x, w, Tensor(), 1, 1);
    y.sum().backward();
    hgtest::check_close(y, expect({-2, -2, -2, -2, 4}, {1, 1, 5}));
    // ∂Σy/∂x[j] = [j ≤ 3] − [j ≥ 1]: x[j] is read by tap 0 of output j + 1 and by tap 2 of output j − 1
    hgtest::check_close(x.grad(), expect({1, 0, 0, 0, -1}, {1, 1, 5}));
    hgtest::check_close(w.grad(), expect({1 + 2 + 3 + 4, 15, 2 + 3 + 4 + 5}, {1, 1, 3}));
    Tensor y2 = hg::conv1d(x, w, Tensor(), 2, 1);
    hgtest::check_close(y2, expect({-2, -2, 4}, {1, 1, 3}));
    Tensor y3 = hg::conv1d(x.detach().view({1, 5}), w, leaf({10}, {1}, dtype, device), 1, 0, 2);
    hgtest::check_close(y3, expect({1 - 5 + 10}, {1, 1}));
    results.insert(results.end(), {y, x.grad(), w.grad(), y2, y3});
  }
  return results;
}

// x = [[1 5 2] [7 3 9] [4 8 6]]
HG_BACKEND_TEST(conv_pool_max_pool_hand_computed) {
  Tensors results;
  const std::vector<double> x9{1, 5, 2, 7, 3, 9, 4, 8, 6};
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    {  // kernel 2, stride 1: the 9 wins two windows, so it collects two gradients
      Tensor x = leaf(x9, {1, 1, 3, 3}, dtype, device);
      Tensor y = hg::max_pool2d(x, {2, 2}, {1, 1});
      y.sum().backward();
      hgtest::check_close(y, expect({7, 9, 8, 9}, {1, 1, 2, 2}));
      hgtest::check_close(x.grad(), expect({0, 0, 0, 1, 0, 2, 0, 1, 0}, {1, 1, 3, 3}));
      results.insert(results.end(), {y, x.grad()});
    }
    {  // kernel 2, stride defaults to 2, padding 1: windows clipped to the input; padding never wins
      Tensor x = leaf(x9, {1, 1, 3, 3}, dtype, device);
      Tensor y = hg::max_pool2d(x, {2}, {}, {1});
      y.sum().backward();
      hgtest::check_close(y, expect({1, 5, 7, 9}, {1, 1, 2, 2}));
      hgtest::check_close(x.grad(), expect({1, 1, 0, 1, 0, 1, 0, 0, 0}, {1, 1, 3, 3}));
      results.insert(results.end(), {y, x.grad()});
    }
    {  // all-negative input with padding: the result is the input's max, not the padding's
      Tensor x = leaf({-5, -3, -4, -1}, {1, 1, 2, 2}, dtype, device);
      hgtest::check_close(hg::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}), expect({-1, -1, -1, -1}, {1, 1, 2, 2}));
    }
    {  // ties: the first maximum in row-major window order takes the whole gradient
      Tensor x = leaf(std::vector<double>(9, 3.0), {1, 1, 3, 3}, dtype, device);
      Tensor y = hg::max_pool2d(x, {2, 2}, {1, 1});
      y.sum().backward();
      hgtest::check_close(x.grad(), expect({1, 1, 0, 1, 1, 0, 0, 0, 0}, {1, 1, 3, 3}));
      results.push_back(x.grad());
    }
    {  // NaN propagates to the output and takes the gradient; −inf windows give −inf
      double inf = std::numeric_limits<double>::infinity();
      Tensor x = leaf({1, kNaN, 3, 2, -inf, -inf, -inf, -inf}, {1, 2, 2, 2}, dtype, device);
      Tensor y = hg::max_pool2d(x, {2, 2});
      y.sum().backward();
      hgtest::check_close(y, expect({kNaN, -inf}, {1, 2, 1, 1}));
      hgtest::check_close(x.grad(), expect({0, 1, 0, 0, 1, 0, 0, 0}, {1, 2, 2, 2}));
      results.insert(results.end(), {y, x.grad()});
    }
    {  // 1-D: kernel 2 (stride 2), and kernel 3 stride 1 padding 1
      Tensor x = leaf({1, 3, 2, 5, 4, 0}, {1, 1, 6}, dtype, device);
      Tensor y = hg::max_pool1d(x, 2);
      Tensor y2 = hg::max_pool1d(x, 3, 1, 1);
      (y.sum() + y2.sum()).backward();
      hgtest::check_close(y, expect({3, 5, 4}, {1, 1, 3}));
      hgtest::check_close(y2, expect({3, 3, 5, 5, 5, 4}, {1, 1, 6}));
      hgtest::check_close(x.grad(), expect({0, 1 + 2, 0, 1 + 3, 1 + 1, 0}, {1, 1, 6}));
      hgtest::check_close(hg::max_pool1d(x.detach().view({1, 6}), 3), expect({3, 5}, {1, 2}));  // unbatched
      results.insert(results.end(), {y, y2, x.grad()});
    }
  }
  return results;
}

// x = [1 2 3 4], w = [1 1]: Same pads dilation·(k − 1) = 1 zero, on the right (as torch), so y[i] = x[i] + x[i+1]
HG_BACKEND_TEST(conv_pool_padding_same_valid_hand_computed) {
  Tensors results;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    Tensor x = leaf({1, 2, 3, 4}, {1, 1, 4}, dtype, device), w = leaf({1, 1}, {1, 1, 2}, dtype, device);
    Tensor y = hg::conv1d(x, w, Tensor(), 1, hg::Padding::Same);
    y.sum().backward();
    hgtest::check_close(y, expect({3, 5, 7, 4}, {1, 1, 4}));
    hgtest::check_close(x.grad(), expect({1, 2, 2, 2}, {1, 1, 4}));
    hgtest::check_close(w.grad(), expect({10, 9}, {1, 1, 2}));
    // dilation 2 with k = 2: total 2, one zero on each side: y[i] = x[i−1] + x[i+1]
    Tensor y2 = hg::conv1d(x.detach(), w.detach(), Tensor(), 1, hg::Padding::Same, 2);
    hgtest::check_close(y2, expect({2, 4, 6, 3}, {1, 1, 4}));
    // Valid: no padding
    Tensor y3 = hg::conv1d(x.detach(), w.detach(), Tensor(), 1, hg::Padding::Valid);
    hgtest::check_close(y3, expect({3, 5, 7}, {1, 1, 3}));
    // 2-D, [[1 2] [3 4]] with a 2×2 kernel of ones: the extra row and column go below and to the right
    Tensor x2 = leaf({1, 2, 3, 4}, {1, 2, 2}, dtype, device);  // unbatched [Cin, H, W]
    Tensor y4 = hg::conv2d(x2, leaf({1, 1, 1, 1}, {1, 1, 2, 2}, dtype, device), Tensor(), {1}, hg::Padding::Same);
    hgtest::check_close(y4, expect({10, 6, 7, 4}, {1, 2, 2}));
    results.insert(results.end(), {y, x.grad(), w.grad(), y2, y3, y4});
  }
  return results;
}

// x = [1 3 2 5 4 0]
HG_BACKEND_TEST(conv_pool_max_pool_dilation_and_ceil_mode_hand_computed) {
  Tensors results;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    CAPTURE(dtype);
    Tensor x = leaf({1, 3, 2, 5, 4, 0}, {1, 1, 6}, dtype, device);
    // dilation 2: windows {0, 2}, {1, 3}, {2, 4}, {3, 5}
    Tensor dilated = hg::max_pool1d(x, 2, 1, 0, 2);
    hgtest::check_close(dilated, expect({2, 5, 4, 5}, {1, 1, 4}));
    // kernel 4 stride 4: floor keeps [1 3 2 5]; ceil adds the window [4 0] that runs past the end
    Tensor floor = hg::max_pool1d(x, 4);
    Tensor ceil = hg::max_pool1d(x, 4, 4, 0, 1, true);
    hgtest::check_close(floor, expect({5}, {1, 1, 1}));
    hgtest::check_close(ceil, expect({5, 4}, {1, 1, 2}));
    (dilated.sum() + ceil.sum()).backward();
    hgtest::check_close(x.grad(), expect({0, 0, 1, 2 + 1, 1 + 1, 0}, {1, 1, 6}));
    // ceil with padding 1, kernel 2, stride 2 over 5 values: ⌈(5 + 2 − 2) / 2⌉ + 1 = 4 windows, but the 4th would
    // start at 6 − 1 = 5, past the input, so torch keeps 3: [pad 1] [3 2] [5 4]
    Tensor x5 = leaf({1, 3, 2, 5, 4}, {1, 5}, dtype, device);
    hgtest::check_close(hg::max_pool1d(x5, 2, 2, 1, 1, true), expect({1, 3, 5}, {1, 3}));
    // 2-D: kernel 2, stride (2, 3), dilation (1, 2), ceil_mode over [[1 3 2 5 4] [0 6 1 7 2] [8 1 9 0 3]]:
    // window rows {0, 1} and {2}; columns {0, 2} and {3} (floor mode would keep only the first of each)
    Tensor x2 = leaf({1, 3, 2, 5, 4, 0, 6, 1, 7, 2, 8, 1, 9, 0, 3}, {1, 1, 3, 5}, dtype, device);
    Tensor y2 = hg::max_pool2d(x2, {2}, {2, 3}, {0}, {1, 2}, true);
    hgtest::check_close(y2, expect({2, 7, 9, 0}, {1, 1, 2, 2}));
    hgtest::check_close(hg::max_pool2d(x2, {2}, {2, 3}, {0}, {1, 2}), expect({2}, {1, 1, 1, 1}));
    results.insert(results.end(), {dilated, floor, ceil, x.grad(), y2});
  }
  return results;
}

namespace {

// Copies `<case>.<name>` into each parameter of a float64 `module` on `device`, runs y = module(<case>.x) and
// backward with <case>.grad_y, and checks y and every gradient against PyTorch.
template <typename Holder>
Tensors check_against_pytorch(Holder module, const hgtest::Fixture& fixture, const std::string& name,
                              hg::Device device) {
  CAPTURE(name);
  module->to(device, hg::kFloat64);
  {
    hg::NoGradGuard no_grad;
    for (auto& [parameter, value] : module->named_parameters())
      value.copy_(fixture.tensor(name + "." + parameter).to(device));
  }
  Tensor x = fixture.tensor(name + ".x").to(device).requires_grad_();
  Tensor y = module(x);
  hgtest::check_close(y, fixture.tensor(name + ".y"), 1e-10, 1e-12, name);
  y.backward(fixture.tensor(name + ".grad_y").to(device));
  Tensors results{y, x.grad()};
  hgtest::check_close(x.grad(), fixture.tensor("d" + name + ".y/" + name + ".x"), 1e-10, 1e-12, name + " grad x");
  for (auto& [parameter, value] : module->named_parameters()) {
    hgtest::check_close(value.grad(), fixture.tensor("d" + name + ".y/" + name + "." + parameter), 1e-10, 1e-12,
                        name + " grad " + parameter);
    results.push_back(value.grad());
  }
  return results;
}

}  // namespace

HG_BACKEND_TEST(conv_pool_padding_modes_dilation_and_ceil_mode_match_pytorch) {
  namespace nn = hg::nn;
  auto fixture = hgtest::Fixture::load("nn_conv_pool_modes");
  const hg::Padding same = hg::Padding::Same, valid = hg::Padding::Valid;
  Tensors r;
  auto add = [&r](const Tensors& results) { r.insert(r.end(), results.begin(), results.end()); };
  add(check_against_pytorch(nn::Conv1d(nn::Conv1dOptions(3, 4, 4).padding(same)), fixture, "conv1d_same_even",
                            device));
  add(check_against_pytorch(nn::Conv1d(nn::Conv1dOptions(3, 2, 2).padding(same).dilation(3)), fixture,
                            "conv1d_same_dilated", device));
  add(check_against_pytorch(nn::Conv1d(nn::Conv1dOptions(4, 4, 3).padding(same).dilation(2).groups(2)), fixture,
                            "conv1d_same_odd", device));
  add(check_against_pytorch(nn::Conv1d(nn::Conv1dOptions(3, 2, 3).padding(valid).stride(2)), fixture,
                            "conv1d_valid", device));
  add(check_against_pytorch(nn::Conv2d(nn::Conv2dOptions(4, 6, {4, 3}).padding(same).dilation({1, 2}).groups(2)),
                            fixture, "conv2d_same", device));
  add(check_against_pytorch(nn::Conv2d(nn::Conv2dOptions(2, 3, {2, 4}).padding(same).dilation({3, 1})), fixture,
                            "conv2d_same_both", device));
  add(check_against_pytorch(nn::Conv2d(nn::Conv2dOptions(2, 2, 2).padding(same)), fixture,
                            "conv2d_same_unbatched", device));
  add(check_against_pytorch(nn::Conv2d(nn::Conv2dOptions(2, 3, 3).padding(valid).stride(2)), fixture,
                            "conv2d_valid", device));
  add(check_against_pytorch(nn::MaxPool1d(nn::MaxPool1dOptions(3).stride(2).padding(1).dilation(2)), fixture,
                            "max_pool1d_dilated", device));
  add(check_against_pytorch(nn::MaxPool1d(nn::MaxPool1dOptions(3).stride(2).ceil_mode(true)), fixture,
                            "max_pool1d_ceil", device));
  add(check_against_pytorch(nn::MaxPool1d(nn::MaxPool1dOptions(4).stride(3).padding(2).dilation(2).ceil_mode(true)),
                            fixture, "max_pool1d_ceil_dilated", device));
  add(check_against_pytorch(
      nn::MaxPool2d(nn::MaxPool2dOptions({3, 2}).stride({2, 3}).padding(1).dilation({2, 1}).ceil_mode(true)), fixture,
      "max_pool2d_dilated_ceil", device));
  add(check_against_pytorch(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2).padding(1).ceil_mode(true)), fixture,
                            "max_pool2d_ceil_dropped", device));
  return r;
}

TEST_CASE("conv_pool: padding Same/Valid modules and max-pooling dilation/ceil_mode: printing and errors") {
  namespace nn = hg::nn;
  CHECK(fmt::format("{}", *nn::Conv1d(nn::Conv1dOptions(2, 4, 4).padding(hg::Padding::Same))) ==
        "Conv1d(2, 4, kernel_size=(4), stride=(1), padding=same)");
  CHECK(fmt::format("{}", *nn::Conv2d(nn::Conv2dOptions(2, 4, 3).padding(hg::Padding::Valid).stride(2))) ==
        "Conv2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=valid)");
  CHECK(fmt::format("{}", *nn::MaxPool2d(nn::MaxPool2dOptions(3).dilation({2, 1}).ceil_mode(true))) ==
        "MaxPool2d(kernel_size=(3, 3), stride=(3, 3), padding=(0, 0), dilation=(2, 1), ceil_mode=true)");
  CHECK(fmt::format("{}", *nn::MaxPool1d(nn::MaxPool1dOptions(3).dilation(2))) ==
        "MaxPool1d(kernel_size=3, stride=3, padding=0, dilation=2)");
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(2, 4, 3).padding(hg::Padding::Same).stride({1, 2})),
                       doctest::Contains("Conv2d: padding Same is not supported for strided convolutions (stride=(1, "
                                         "2)), as in torch"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::MaxPool1d(nn::MaxPool1dOptions(2).dilation(0))(hg::zeros({1, 2, 6})),
                       doctest::Contains("max_pool1d: dilation must be positive, got [0]"), hg::Error);
}

TEST_CASE("conv_pool: empty batches give empty outputs and zero weight and bias gradients") {
  Tensor x = hg::zeros({0, 2, 5, 5}, hg::kFloat32);
  Tensor w = hg::ones({3, 2, 3, 3}).requires_grad_(), b = hg::ones({3}).requires_grad_();
  Tensor y = hg::conv2d(x, w, b);
  CHECK(y.sizes() == hg::Shape{0, 3, 3, 3});
  y.sum().backward();
  hgtest::check_close(w.grad(), hg::zeros({3, 2, 3, 3}));
  hgtest::check_close(b.grad(), hg::zeros({3}));
  CHECK(hg::max_pool2d(x, {2, 2}).sizes() == hg::Shape{0, 2, 2, 2});
}

// ---- gradient checks --------------------------------------------------------------------------------------

TEST_CASE("conv_pool: conv2d gradcheck with stride, padding, dilation, groups, bias and non-contiguous inputs") {
  using hgtest::uniform;
  auto conv = [](hg::IntArrayRef s, hg::IntArrayRef p, hg::IntArrayRef d, int64_t groups) {
    return [=, s = s.vec(), p = p.vec(), d = d.vec()](const Tensors& t) {
      return hg::conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), s, p, d, groups);
    };
  };
  hgtest::gradcheck(conv({1}, {0}, {1}, 1), {uniform({2, 2, 4, 5}, -1, 1, 1), uniform({3, 2, 2, 3}, -1, 1, 2),
                                             uniform({3}, -1, 1, 3)});
  hgtest::gradcheck(conv({2}, {1}, {1}, 1), {uniform({1, 2, 5, 5}, -1, 1, 4), uniform({2, 2, 3, 3}, -1, 1, 5)});
  hgtest::gradcheck(conv({1}, {1, 2}, {2}, 1), {uniform({1, 2, 5, 6}, -1, 1, 6), uniform({2, 2, 2, 2}, -1, 1, 7),
                                                uniform({2}, -1, 1, 8)});
  hgtest::gradcheck(conv({1, 2}, {0}, {1}, 2), {uniform({1, 4, 4, 4}, -1, 1, 9), uniform({4, 2, 2, 2}, -1, 1, 10),
                                                uniform({4}, -1, 1, 11)});
  // a stride that leaves the last input row unread: its gradient must be exactly zero
  hgtest::gradcheck(conv({2}, {0}, {1}, 1), {uniform({1, 1, 6, 7}, -1, 1, 12), uniform({2, 1, 3, 3}, -1, 1, 13)});
  // non-contiguous input and weight
  hgtest::gradcheck(
      [](const Tensors& t) { return hg::conv2d(t[0].transpose(2, 3), t[1].transpose(2, 3), t[2], {2, 1}, {1, 0}); },
      {uniform({1, 2, 5, 4}, -1, 1, 14), uniform({3, 2, 3, 2}, -1, 1, 15), uniform({3}, -1, 1, 16)});
  // unbatched
  hgtest::gradcheck(conv({1}, {1}, {1}, 1), {uniform({2, 3, 4}, -1, 1, 17), uniform({2, 2, 2, 2}, -1, 1, 18)});
}

TEST_CASE("conv_pool: conv2d gradgradcheck through the input- and weight-gradient ops") {
  using hgtest::uniform;
  hgtest::gradgradcheck(
      [](const Tensors& t) { return hg::conv2d(t[0], t[1], t[2], {2, 2}, {1, 1}, {1, 1}, 2); },
      {uniform({1, 2, 4, 4}, -1, 1, 21), uniform({2, 1, 3, 3}, -1, 1, 22), uniform({2}, -1, 1, 23)});
  hgtest::gradgradcheck([](const Tensors& t) { return hg::conv2d(t[0].transpose(2, 3), t[1], Tensor(), {1}, {1}, {2}); },
                        {uniform({1, 1, 5, 4}, -1, 1, 24), uniform({2, 1, 2, 2}, -1, 1, 25)});
}

TEST_CASE("conv_pool: conv1d gradcheck and gradgradcheck") {
  using hgtest::uniform;
  hgtest::gradcheck([](const Tensors& t) { return hg::conv1d(t[0], t[1], t[2], 2, 1, 2); },
                    {uniform({2, 3, 7}, -1, 1, 31), uniform({4, 3, 3}, -1, 1, 32), uniform({4}, -1, 1, 33)});
  hgtest::gradcheck([](const Tensors& t) { return hg::conv1d(t[0].transpose(1, 2), t[1], Tensor(), 1, 0, 1, 3); },
                    {uniform({2, 6, 3}, -1, 1, 34), uniform({3, 1, 2}, -1, 1, 35)});
  hgtest::gradcheck([](const Tensors& t) { return hg::conv1d(t[0], t[1], t[2], 1, 1); },
                    {uniform({3, 5}, -1, 1, 36), uniform({2, 3, 3}, -1, 1, 37), uniform({2}, -1, 1, 38)});
  hgtest::gradgradcheck([](const Tensors& t) { return hg::conv1d(t[0], t[1], t[2], 2, 1, 1, 2); },
                        {uniform({1, 2, 6}, -1, 1, 39), uniform({2, 1, 3}, -1, 1, 40), uniform({2}, -1, 1, 41)});
}

TEST_CASE("conv_pool: max_pool2d and max_pool1d gradcheck and gradgradcheck") {
  using hgtest::uniform;
  // Uniform random inputs have no ties, so the max is differentiable at them.
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool2d(t[0], {2, 2}); }, {uniform({1, 2, 5, 6}, -1, 1, 51)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool2d(t[0], {3, 2}, {2, 1}, {1, 1}); },
                    {uniform({2, 1, 5, 4}, -1, 1, 52)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool2d(t[0].transpose(2, 3), {2}, {1}); },
                    {uniform({1, 2, 4, 3}, -1, 1, 53)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool1d(t[0], 3, 2, 1); }, {uniform({2, 2, 7}, -1, 1, 54)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool1d(t[0].transpose(0, 1), 2); },
                    {uniform({6, 2}, -1, 1, 55)});
  // The gradient of max-pooling is linear in the incoming gradient; its own gradient gathers at the argmax.
  hgtest::gradgradcheck([](const Tensors& t) { return hg::max_pool2d(t[0], {2, 2}, {1, 1}) * t[0].sum(); },
                        {uniform({1, 2, 3, 4}, -1, 1, 56)});
  hgtest::gradgradcheck([](const Tensors& t) { return hg::max_pool1d(t[0], 2, 1) * t[1]; },
                        {uniform({1, 2, 5}, -1, 1, 57), uniform({1, 2, 4}, -1, 1, 58)});
}

TEST_CASE("conv_pool: padding Same gradcheck and gradgradcheck (even kernels pad one more zero on the right)") {
  using hgtest::uniform;
  const hg::Padding same = hg::Padding::Same;
  hgtest::gradcheck([&](const Tensors& t) { return hg::conv1d(t[0], t[1], t[2], 1, same); },
                    {uniform({2, 2, 5}, -1, 1, 81), uniform({3, 2, 4}, -1, 1, 82), uniform({3}, -1, 1, 83)});
  hgtest::gradcheck([&](const Tensors& t) { return hg::conv1d(t[0].transpose(1, 2), t[1], Tensor(), 1, same, 3); },
                    {uniform({1, 5, 2}, -1, 1, 84), uniform({2, 2, 2}, -1, 1, 85)});
  hgtest::gradcheck(
      [&](const Tensors& t) { return hg::conv2d(t[0].transpose(2, 3), t[1], t[2], {1}, same, {1, 2}, 2); },
      {uniform({1, 2, 4, 3}, -1, 1, 86), uniform({2, 1, 2, 3}, -1, 1, 87), uniform({2}, -1, 1, 88)});
  hgtest::gradcheck([&](const Tensors& t) { return hg::conv2d(t[0], t[1], Tensor(), {2}, hg::Padding::Valid); },
                    {uniform({1, 1, 5, 5}, -1, 1, 89), uniform({2, 1, 2, 2}, -1, 1, 90)});
  hgtest::gradgradcheck(
      [&](const Tensors& t) { return hg::conv2d(t[0], t[1], t[2], {1}, same); },
      {uniform({1, 1, 3, 3}, -1, 1, 91), uniform({2, 1, 2, 2}, -1, 1, 92), uniform({2}, -1, 1, 93)});
}

TEST_CASE("conv_pool: max-pooling with dilation and ceil_mode, gradcheck and gradgradcheck") {
  using hgtest::uniform;
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool1d(t[0], 3, 2, 1, 2); },
                    {uniform({2, 2, 9}, -1, 1, 94)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool1d(t[0].transpose(0, 1), 2, 2, 1, 1, true); },
                    {uniform({6, 2}, -1, 1, 95)});
  hgtest::gradcheck([](const Tensors& t) { return hg::max_pool2d(t[0], {3, 2}, {2}, {1, 0}, {2, 1}, true); },
                    {uniform({1, 2, 6, 5}, -1, 1, 96)});
  hgtest::gradgradcheck([](const Tensors& t) { return hg::max_pool2d(t[0], {2}, {2}, {1}, {2}, true) * t[1]; },
                        {uniform({1, 1, 5, 4}, -1, 1, 97), uniform({1, 1, 3, 3}, -1, 1, 98)});
}

// ---- float32 (oneDNN) against float64 (direct loops) at realistic sizes ----------------------------------

HG_BACKEND_TEST(conv_onednn_float32_matches_float64_loops) {
  Tensors r;
  // DeepRC's sequence convolution: 23 features per position, 32 filters of length 9.
  auto deeprc = conv_f32_against_f64("deeprc conv1d", [](auto& x, auto& w, auto& b) { return hg::conv1d(x, w, b); },
                                     {2, 23, 40}, {32, 23, 9}, device);
  // ViT patch embedding: 4×4 patches of a 3-channel 32×32 image.
  auto vit = conv_f32_against_f64(
      "vit patch embedding", [](auto& x, auto& w, auto& b) { return hg::conv2d(x, w, b, {4, 4}); }, {2, 3, 32, 32},
      {64, 3, 4, 4}, device);
  // Padding, dilation and groups together, with a stride that does not divide the padded input.
  auto mixed = conv_f32_against_f64(
      "strided dilated grouped",
      [](auto& x, auto& w, auto& b) { return hg::conv2d(x, w, b, {2, 3}, {1, 2}, {2, 1}, 2); }, {2, 8, 13, 11},
      {12, 4, 3, 3}, device);
  // Stride 4 with a 3×3 kernel: input rows and columns 3, 7, 8, 9 are never read and get zero gradient.
  auto gaps = conv_f32_against_f64(
      "gaps between windows", [](auto& x, auto& w, auto& b) { return hg::conv2d(x, w, b, {4, 4}); }, {2, 4, 10, 10},
      {6, 4, 3, 3}, device);
  hgtest::check_close(gaps[1].select(2, 3), hg::zeros({2, 4, 10}), 0, 0, "unread row gradient");
  // Depthwise (groups = channels), as in mobile-style blocks.
  auto depthwise = conv_f32_against_f64(
      "depthwise", [](auto& x, auto& w, auto& b) { return hg::conv2d(x, w, b, {1}, {1}, {1}, 6); }, {2, 6, 9, 9},
      {6, 1, 3, 3}, device);
  // Strided inputs go to oneDNN through their strides (no contiguous copy first). DeepRC's sequences
  // [n, length, features] transposed to [n, features, length] are channels-last in memory; so is an NHWC image
  // permuted to NCHW; a strided slice has gaps and takes the copy.
  auto deeprc_transposed = conv_f32_against_f64(
      "deeprc conv1d on transposed sequences",
      [](auto& x, auto& w, auto& b) { return hg::conv1d(x.transpose(1, 2), w, b); }, {3, 20, 23}, {32, 23, 9}, device);
  auto channels_last = conv_f32_against_f64(
      "conv2d on an NHWC image viewed as NCHW",
      [](auto& x, auto& w, auto& b) { return hg::conv2d(x.permute({0, 3, 1, 2}), w, b, {2, 1}, {1, 0}); },
      {2, 9, 7, 5}, {6, 5, 3, 3}, device);
  auto sliced = conv_f32_against_f64(
      "conv2d on every other column",
      [](auto& x, auto& w, auto& b) { return hg::conv2d(x.slice(3, 0, 12, 2), w, b); }, {2, 3, 8, 12}, {4, 3, 3, 3},
      device);
  for (auto* set : {&deeprc, &vit, &mixed, &gaps, &depthwise, &deeprc_transposed, &channels_last, &sliced})
    r.insert(r.end(), set->begin(), set->end());
  return r;
}

// A gradient penalty ‖∂L/∂x‖² differentiated with respect to w runs the oneDNN backward kernels inside double
// backward; float32 must agree with the float64 loops.
HG_BACKEND_TEST(conv_double_backward_float32_matches_float64) {
  Tensor x64 = hgtest::uniform({2, 3, 9, 9}, -1, 1, 61), w64 = hgtest::uniform({4, 3, 3, 3}, -0.5, 0.5, 62);
  Tensors per_dtype;
  for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
    Tensor x = leaf_copy(x64, dtype, device), w = leaf_copy(w64, dtype, device);
    Tensor y = hg::conv2d(x, w, Tensor(), {2, 2}, {1, 1});
    Tensor gx = hg::grad({(y * y).sum()}, {x}, {}, true, true)[0];
    (gx * gx).sum().backward();
    per_dtype.push_back(w.grad());
    per_dtype.push_back(x.grad());
  }
  hgtest::check_close(per_dtype[0], per_dtype[2], 1e-4, 1e-3, "penalty grad_w float32 vs float64");
  hgtest::check_close(per_dtype[1], per_dtype[3], 1e-4, 1e-3, "penalty grad_x float32 vs float64");
  return {per_dtype[0], per_dtype[1]};
}

HG_BACKEND_TEST(conv_pool_max_pool_float32_matches_float64) {
  Tensor x64 = hgtest::uniform({2, 16, 32, 32}, -1, 1, 71);
  Tensors r;
  struct PoolCase {
    int64_t kernel, stride, padding, dilation = 1;
    bool ceil_mode = false;
  };
  for (PoolCase c : {PoolCase{2, 2, 0}, PoolCase{3, 2, 1}, PoolCase{3, 1, 1}, PoolCase{3, 2, 1, 2, true},
                     PoolCase{2, 3, 1, 3, true}}) {
    Tensors per_dtype;
    for (hg::DType dtype : {hg::kFloat32, hg::kFloat64}) {
      Tensor x = leaf_copy(x64, dtype, device);
      Tensor y = hg::max_pool2d(x, {c.kernel}, {c.stride}, {c.padding}, {c.dilation}, c.ceil_mode);
      y.backward(hgtest::uniform(y.sizes(), -1, 1, 72).to(device, dtype));
      per_dtype.insert(per_dtype.end(), {y, x.grad()});
    }
    hgtest::check_close(per_dtype[0], per_dtype[2], 0, 1e-7, "max_pool2d values float32 vs float64");
    hgtest::check_close(per_dtype[1], per_dtype[3], 0, 1e-6, "max_pool2d grad float32 vs float64");
    r.insert(r.end(), {per_dtype[0], per_dtype[1]});
  }
  return r;
}

// ---- errors -----------------------------------------------------------------------------------------------

TEST_CASE("conv_pool: conv2d and conv1d reject bad input with clear errors") {
  Tensor x = hg::zeros({1, 3, 8, 8}), w = hg::zeros({4, 3, 3, 3});
  auto contains = [](const char* s) { return doctest::Contains(s); };
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({3, 8}), w), contains("conv2d: expected input [N, Cin, H, W]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, hg::zeros({4, 3, 3})), contains("expected weight [Cout, Cin/groups, KH, KW]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({1, 5, 8, 8}), w),
                       contains("has 5 channels, but weight [4, 3, 3, 3] with groups=1 expects 3"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({1, 2, 8, 8}), hg::zeros({3, 1, 3, 3}), Tensor(), {1}, {0}, {1}, 2),
                       contains("groups=2 must divide the weight's 3 output channels"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({1, 3, 2, 2}), w),
                       contains("the padded input [2, 2] is smaller than the dilated kernel [3, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({1, 3, 4, 4}), w, Tensor(), {1}, {0}, {2}),
                       contains("smaller than the dilated kernel [5, 5]"), hg::Error);
  // A 0-wide kernel made the output longer than the input (filled with the bias).
  CHECK_THROWS_WITH_AS(hg::conv2d(hg::zeros({1, 3, 4, 4}), hg::zeros({4, 3, 0, 2})),
                       contains("conv2d: kernel sizes must be positive, got weight [4, 3, 0, 2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(hg::zeros({2, 3, 8}), hg::zeros({4, 3, 0}), hg::zeros({4})),
                       contains("conv1d: kernel sizes must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::nn::MaxPool1d(hg::nn::MaxPool1dOptions(3).stride(0))->forward(hg::zeros({1, 1, 9})),
                       contains("MaxPool1d: stride must be positive, got 0"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w.to(hg::kFloat64)), contains("one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x.to(hg::kInt64), w.to(hg::kInt64)), contains("one floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, hg::zeros({2})), contains("expected bias [4] (one per output channel), got [2]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, hg::zeros({4}, hg::kFloat64)), contains("must have the input's dtype"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, Tensor(), {0}), contains("conv2d: stride must be positive, got [0, 0]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, Tensor(), {1}, {-1, 0}), contains("padding must be non-negative"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, Tensor(), {1}, {0}, {0}), contains("dilation must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, Tensor(), {1}, {0}, {1}, 0), contains("groups must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(x, w, Tensor(), {1, 2, 3}), contains("stride must have 1 or 2 values, got [1, 2, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv2d(Tensor(), w), contains("undefined"), hg::Error);

  CHECK_THROWS_WITH_AS(hg::conv1d(hg::zeros({1, 3, 2}), hg::zeros({2, 3, 5})),
                       contains("conv1d: the padded input [2] is smaller than the dilated kernel [5]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(x, hg::zeros({2, 3, 5})), contains("conv1d: expected input [N, Cin, L]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(hg::zeros({1, 3, 9}), hg::zeros({2, 3, 5}), Tensor(), 0),
                       contains("conv1d: stride must be positive, got [0]"), hg::Error);
  if (hgtest::has_cuda()) {
    CHECK_THROWS_WITH_AS(hg::conv2d(x.cuda(), w), contains("different devices"), hg::Error);
    CHECK_THROWS_WITH_AS(hg::conv2d(x.cuda(), w.cuda(), hg::zeros({4})), contains("must have the input's dtype and device"),
                         hg::Error);
  }
}

TEST_CASE("conv_pool: max_pool2d and max_pool1d reject bad input with clear errors") {
  Tensor x = hg::zeros({1, 2, 5, 5});
  auto contains = [](const char* s) { return doctest::Contains(s); };
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {3}, {1}, {2}),
                       contains("max_pool2d: padding must be non-negative and at most half the kernel size"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {0, 2}), contains("kernel_size must be positive, got [0, 2]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {2}, {0}), contains("stride must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {2, 2, 2}), contains("kernel_size must have 1 or 2 values"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(hg::zeros({5, 5}), {2}), contains("expected input [N, C, H, W]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x.to(hg::kInt64), {2}), contains("expected a float32 or float64 input"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {8, 2}, {1}, {1}), contains("kernel_size [8, 2] is larger than the padded input"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(hg::zeros({1, 0, 4, 4}), {2}), contains("empty channel or spatial dimension"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool1d(hg::zeros({1, 2, 6}), 2, -1), contains("max_pool1d: stride must be positive"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool1d(hg::zeros({1, 2, 6}), 3, 1, 2),
                       contains("padding must be non-negative and at most half the kernel size (as torch checks), got "
                                "padding [2] for kernel_size [3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool1d(x, 2), contains("max_pool1d: expected input [N, C, L]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {2}, {}, {0}, {1, -1}),
                       contains("max_pool2d: dilation must be positive, got [1, -1]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {2}, {}, {0}, {1, 2, 3}), contains("dilation must have 1 or 2 values"),
                       hg::Error);
  // dilation 4 stretches a 3-tap kernel over 9 positions: more than 5 + 2·1
  CHECK_THROWS_WITH_AS(hg::max_pool2d(x, {3}, {1}, {1}, {4}),
                       contains("max_pool2d: kernel_size [3, 3] is larger than the padded input (input [1, 2, 5, 5], "
                                "padding [1, 1], dilation [4, 4], ceil_mode false"),
                       hg::Error);
  // ceil_mode keeps a window that a short input would not fill, but not an empty output
  CHECK(hg::max_pool1d(hg::zeros({1, 1, 2}), 3, 2, 0, 1, true).sizes() == hg::Shape{1, 1, 1});
  CHECK_THROWS_WITH_AS(hg::max_pool1d(hg::zeros({1, 1, 2}), 3, 1, 0, 1, true),
                       contains("larger than the padded input"), hg::Error);
  // taps at −1 and 4 around a 2-long input: the window sees only padding (torch would return −inf and an index
  // outside the input)
  CHECK_THROWS_WITH_AS(hg::max_pool1d(hg::zeros({1, 1, 2}), 2, 10, 1, 5, true),
                       contains("max_pool1d: window 0 along spatial dim 0 covers only padding (input [1, 1, 2], "
                                "kernel_size [2], stride [10], padding [1], dilation [5])"),
                       hg::Error);
}

TEST_CASE("conv_pool: padding Same/Valid reject bad input with clear errors") {
  auto contains = [](const char* s) { return doctest::Contains(s); };
  Tensor x = hg::zeros({1, 3, 8}), w = hg::zeros({4, 3, 4});
  CHECK_THROWS_WITH_AS(hg::conv1d(x, w, Tensor(), 2, hg::Padding::Same),
                       contains("conv1d: padding Same is not supported for strided convolutions (stride [2]), as in "
                                "torch"),
                       hg::Error);
  Tensor x2 = hg::zeros({1, 3, 8, 8}), w2 = hg::zeros({4, 3, 3, 3});
  CHECK_THROWS_WITH_AS(hg::conv2d(x2, w2, Tensor(), {1, 2}, hg::Padding::Same),
                       contains("conv2d: padding Same is not supported for strided convolutions (stride [1, 2])"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(x, hg::zeros({4, 3}), Tensor(), 1, hg::Padding::Same),
                       contains("conv1d: expected weight [Cout, Cin/groups, K], got float32[4, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(x, w, Tensor(), 1, hg::Padding::Same, 0), contains("dilation must be positive"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(x, hg::zeros({4, 2, 4}), Tensor(), 1, hg::Padding::Same),
                       contains("has 3 channels, but weight [4, 2, 4] with groups=1 expects 2"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::conv1d(hg::zeros({1, 3, 3}), w, Tensor(), 1, hg::Padding::Valid),
                       contains("conv1d: the padded input [3] is smaller than the dilated kernel [4]"), hg::Error);
  // Same always fits: one input element and an even kernel give one output
  CHECK(hg::conv1d(hg::zeros({1, 3, 1}), w, Tensor(), 1, hg::Padding::Same).sizes() == hg::Shape{1, 4, 1});
}

// The convolution primitives are cached for the process and run by whichever thread asks (a DataLoader worker,
// a model trained per thread). oneDNN's own scratchpad may only be used on the thread that made the primitive:
// these shapes take its gemm implementation, whose backward segfaulted on a second thread. Each primitive now
// takes a user scratchpad from the host pool; the results on other threads, and on two at once, must match.
TEST_CASE("conv2d: cached primitives run on other threads, and on two at once, with the same results") {
  struct Case {
    int64_t N, C, H, W, Co, K, stride, pad, dilation, groups;
  };
  auto step = [](const Case& c) {
    hg::Generator gen(1);
    Tensor x = hg::randn({c.N, c.C, c.H, c.W}, {}, &gen).requires_grad_();
    Tensor w = hg::randn({c.Co, c.C / c.groups, c.K, c.K}, {}, &gen).requires_grad_();
    Tensor y = hg::conv2d(x, w, Tensor(), {c.stride, c.stride}, {c.pad, c.pad}, {c.dilation, c.dilation}, c.groups);
    hg::sum(y * y).backward();
    return Tensors{y.detach(), x.grad(), w.grad()};
  };
  const Case cases[] = {{2, 8, 20, 20, 8, 3, 1, 2, 2, 1},        // dilated
                        {2, 16, 12, 12, 16, 3, 1, 1, 1, 4},      // grouped
                        {2, 3, 64, 64, 32, 16, 16, 0, 1, 1}};    // a ViT-style patch embedding
  for (const Case& c : cases) {
    CAPTURE(c.dilation);
    CAPTURE(c.groups);
    const Tensors main_thread = step(c);  // makes and caches the primitives here
    Tensors other, first, second;
    std::thread([&] { other = step(c); }).join();
    std::thread t1([&] {
      for (int i = 0; i < 5; ++i) first = step(c);
    });
    std::thread t2([&] {
      for (int i = 0; i < 5; ++i) second = step(c);
    });
    t1.join();
    t2.join();
    for (size_t i = 0; i < main_thread.size(); ++i) {
      hgtest::check_close(other[i], main_thread[i], 0, 0, "on another thread");
      hgtest::check_close(first[i], main_thread[i], 0, 0, "on two threads at once");
      hgtest::check_close(second[i], main_thread[i], 0, 0, "on two threads at once");
    }
  }
}
