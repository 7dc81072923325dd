// TEMPORARY placeholders so the library links while the real definitions are written; the owner deletes this
// file when the real ones land.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/ops.h>

#define PENDING(name) HG_FAIL("{} is not implemented yet", name)

namespace hg {
// nn
Tensor softmax(const Tensor&, int64_t) { PENDING("softmax"); }
Tensor log_softmax(const Tensor&, int64_t) { PENDING("log_softmax"); }
Tensor layer_norm(const Tensor&, IntArrayRef, const Tensor&, const Tensor&, double) { PENDING("layer_norm"); }
Tensor dropout(const Tensor&, double, bool, Generator*) { PENDING("dropout"); }
Tensor cross_entropy(const Tensor&, const Tensor&, Reduction, int64_t, double) { PENDING("cross_entropy"); }
Tensor nll_loss(const Tensor&, const Tensor&, Reduction, int64_t) { PENDING("nll_loss"); }
Tensor binary_cross_entropy_with_logits(const Tensor&, const Tensor&, Reduction, const Tensor&) { PENDING("bce"); }
Tensor mse_loss(const Tensor&, const Tensor&, Reduction) { PENDING("mse_loss"); }
Tensor l1_loss(const Tensor&, const Tensor&, Reduction) { PENDING("l1_loss"); }
namespace cpu {
void CpuBackend::softmax(const Tensor&, int64_t, bool, Tensor&) { PENDING("cpu softmax"); }
void CpuBackend::layer_norm(const Tensor&, const Tensor*, const Tensor*, int64_t, double, Tensor&, Tensor&, Tensor&) { PENDING("cpu layer_norm"); }
}  // namespace cpu
}  // namespace hg
