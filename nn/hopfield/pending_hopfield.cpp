// Placeholders for the forgetting units and sub-quadratic association until their real definitions land
// (then this file goes).
#include <hopgrad/nn/hopfield/efficient_attention.h>
#include <hopgrad/nn/hopfield/forgetting.h>

namespace hg::nn {

Forgetting forget(const Tensor&, const ForgettingOptions&, bool, Generator*) { HG_FAIL("forget: not implemented yet"); }
std::string describe(const ForgettingOptions&) { HG_FAIL("describe(ForgettingOptions): not implemented yet"); }

Tensor window_attention(const Tensor&, const Tensor&, const Tensor&, int64_t, const Tensor&, const Tensor&, Tensor*) {
  HG_FAIL("window_attention: not implemented yet");
}
Tensor window_mask(int64_t, int64_t, int64_t, Device) { HG_FAIL("window_mask: not implemented yet"); }
Tensor kernel_attention(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double) {
  HG_FAIL("kernel_attention: not implemented yet");
}
Tensor elu_feature_map(const Tensor&) { HG_FAIL("elu_feature_map: not implemented yet"); }
Tensor orthogonal_random_features(int64_t, int64_t, Generator&, Device) {
  HG_FAIL("orthogonal_random_features: not implemented yet");
}
Tensor positive_random_features(const Tensor&, const Tensor&, bool) { HG_FAIL("positive_random_features: not implemented yet"); }
Tensor relu_random_features(const Tensor&, const Tensor&) { HG_FAIL("relu_random_features: not implemented yet"); }

}  // namespace hg::nn
