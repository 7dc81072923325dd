// The README's example, compiled and run by the test suite (ctest -R readme_example): it fails when the fit
// does not converge, so the README cannot silently go stale.
#include <hopgrad/hopgrad.h>

int main() {
  // Data: y = 2·x₁ − 3·x₂ + 1, plus noise of standard deviation 0.1.
  hg::manual_seed(0);
  hg::Tensor x = hg::randn({256, 2});
  hg::Tensor y = hg::matmul(x, hg::from_vector<float>({2, -3}, {2, 1})) + 1 + 0.1 * hg::randn({256, 1});

  // Model: y ≈ x wᵀ + b, fitted by gradient descent on the mean squared error.
  hg::Tensor w = hg::zeros({1, 2}).requires_grad_();
  hg::Tensor b = hg::zeros({1}).requires_grad_();
  float loss_value = 0;
  for (int step = 0; step <= 100; ++step) {
    hg::Tensor loss = hg::mse_loss(hg::linear(x, w, b), y);
    loss.backward();  // fills w.grad() and b.grad()
    {
      hg::NoGradGuard no_grad;  // the update itself is not recorded
      for (const hg::Tensor& p : {w, b}) {
        p.add_(p.grad(), -0.1);  // p ← p − 0.1·∂loss/∂p
        p.grad().zero_();
      }
    }
    loss_value = loss.item<float>();
    if (step % 20 == 0) fmt::print("step {:3d}  loss {:.4f}\n", step, loss_value);
  }
  fmt::print("w = {}\nb = {}\n", w, b);
  return loss_value < 0.02 ? 0 : 1;  // the noise alone gives 0.01
}
