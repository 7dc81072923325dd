// Placeholders for the separation-function ops until their real definitions land (then this file goes).
#include <hopgrad/ops/ops.h>

namespace hg {

Tensor sparsemax(const Tensor&, int64_t) { HG_FAIL("sparsemax: not implemented yet"); }
Tensor entmax15(const Tensor&, int64_t) { HG_FAIL("entmax15: not implemented yet"); }
Tensor entmax_bisect(const Tensor&, const Tensor&, int64_t, int64_t) { HG_FAIL("entmax_bisect: not implemented yet"); }
Tensor softmax1(const Tensor&, int64_t) { HG_FAIL("softmax1: not implemented yet"); }

}  // namespace hg
