// Uses an installed hopgrad through <hopgrad/hopgrad.h> only: a forward op on the CPU backend, a backward,
// and a check of the gradient against its closed form, so a broken install fails here rather than compiling
// and printing nonsense.
#include <cmath>
#include <vector>

#include <hopgrad/hopgrad.h>

int main() {
  // L = Σ (x ⊙ x) · 3   ⇒   ∂L/∂x = 6x
  hg::Tensor x = hg::from_vector<float>({1, -2, 3, 0.5f}, {2, 2}).requires_grad_();
  hg::Tensor loss = (x * x * 3.0).sum();
  loss.backward();
  std::vector<float> grad = x.grad().to_vector<float>(), value = x.detach().to_vector<float>();
  for (size_t i = 0; i < grad.size(); ++i) {
    if (std::abs(grad[i] - 6 * value[i]) > 1e-5f) {
      fmt::print(stderr, "installed hopgrad: wrong gradient {} at {} (expected {})\n", grad[i], i, 6 * value[i]);
      return 1;
    }
  }
  fmt::print("installed hopgrad works: loss {} and gradient {}\n", loss.item<float>(), x.grad());
  return 0;
}
