// Placeholders for the forgetting units until their real definitions land (then this file goes).
#include <hopgrad/nn/hopfield/forgetting.h>

namespace hg::nn {

Forgetting forget(const Tensor&, const ForgettingOptions&, bool, Generator*) { HG_FAIL("forget: not implemented yet"); }
std::string describe(const ForgettingOptions&) { HG_FAIL("describe(ForgettingOptions): not implemented yet"); }

}  // namespace hg::nn
