#pragma once
// Shared test machinery:
//  - gradcheck: central finite differences in float64 against backward, for any op;
//  - HG_BACKEND_TEST: one test body run on the CPU and, as a separate case, on every CUDA device with the
//    results compared against the CPU run (the CUDA case is reported as skipped when no GPU is present).
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include <hopgrad/hopgrad.h>

namespace hgtest {

struct GradcheckOptions {
  double eps = 1e-6;    ///< finite-difference step
  double atol = 1e-6;   ///< absolute tolerance on each gradient element
  double rtol = 1e-4;   ///< relative tolerance
  uint64_t seed = 1234;  ///< for the random output weighting
};

/// Checks backward of `f` at `inputs` (float64 CPU leaves; requires_grad is set here) against central
/// differences of L = Σ W ⊙ f(inputs) with a fixed random W. Undefined inputs are skipped. Reports every
/// mismatching element through doctest.
void gradcheck(const std::function<hg::Tensor(const hg::Tensors&)>& f, hg::Tensors inputs,
               GradcheckOptions options = {});

/// Checks second derivatives: gradcheck of x ↦ Σ V ⊙ ∂(Σ W ⊙ f(x))/∂x, built with create_graph=true.
void gradgradcheck(const std::function<hg::Tensor(const hg::Tensors&)>& f, hg::Tensors inputs,
                   GradcheckOptions options = {});

/// A float64 CPU tensor of the given shape with values uniform in [lo, hi), from a fixed seed.
hg::Tensor uniform(hg::IntArrayRef shape, double lo = -1.0, double hi = 1.0, uint64_t seed = 7);

/// Fills every parameter of `module` with N(0, scale²) values from a fixed seed, so gradient checks do not sit
/// at an initialiser's near-zero values.
void randomize_parameters(hg::nn::Module& module, uint64_t seed, double scale = 0.5);

/// Hopfield options with the three pattern LayerNorms (stored, state, projection) off: the plain multi-head
/// attention that hand computations and comparisons with PyTorch's attention assume.
hg::nn::HopfieldOptions hopfield_options_without_norms(int64_t input_size);

/// gradcheck for a module's parameters: central differences of L = Σ W ⊙ f() in every element of every trainable
/// parameter (float64) against backward, reporting the first mismatching element of each parameter.
void check_parameter_gradients(hg::nn::Module& module, const std::function<hg::Tensor()>& f, double eps = 1e-6,
                               double atol = 1e-6, double rtol = 1e-4);

/// True when CUDA tests can run (a CUDA build and at least one GPU).
bool has_cuda();

/// Compares `got` with `expected` elementwise (after moving both to CPU float64); reports the worst element.
void check_close(const hg::Tensor& got, const hg::Tensor& expected, double rtol = 1e-5, double atol = 1e-6,
                 const std::string& what = "");

/// Runs `body` in a forked child process, which is to end itself with `_exit(exit_code)` (from a write hook, say:
/// a process killed half-way through a write); checks that it did and returns its pid. `body` may throw (ignored,
/// and the child then exits with 1) but must not use doctest's assertions, which belong to the parent.
int run_in_child_expecting_exit(const std::function<void()>& body, int exit_code = 42);

/// Runs `body` on the CPU and on each CUDA device and checks that every returned tensor matches.
void compare_with_cpu(const char* name, const std::function<hg::Tensors(hg::Device)>& body, double rtol = 1e-4,
                      double atol = 1e-5);

}  // namespace hgtest

/// Defines a test body `hg::Tensors body(hg::Device device)` registered twice: "<name> [cpu]" runs it on the
/// CPU (its own CHECKs are the reference checks), "<name> [cuda]" runs it on CPU and CUDA and compares every
/// returned tensor. Build inputs on the CPU from fixed seeds, then move them with .to(device).
#define HG_BACKEND_TEST(name) HG_BACKEND_TEST_TOL(name, 1e-4, 1e-5)

/// HG_BACKEND_TEST with the CPU-against-CUDA comparison's tolerances given: for float32 results of long sums (deep
/// matrix products), whose value on each backend depends on its order of summation.
#define HG_BACKEND_TEST_TOL(name, rtol, atol)                                                   \
  static hg::Tensors name##_body(hg::Device device);                                            \
  TEST_CASE(#name " [cpu]") { name##_body(hg::kCPU); }                                          \
  TEST_CASE(#name " [cuda]" * doctest::skip(!hgtest::has_cuda())) {                             \
    hgtest::compare_with_cpu(#name, name##_body, rtol, atol);                                   \
  }                                                                                             \
  static hg::Tensors name##_body(hg::Device device)
