// TEMPORARY placeholders so the library links while the real definitions are written; the owner deletes this
// file when the real ones land.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/ops.h>

#define PENDING(name) HG_FAIL("{} is not implemented yet", name)

namespace hg {
Tensor conv1d(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, int64_t) { PENDING("conv1d"); }
Tensor conv2d(const Tensor&, const Tensor&, const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef, int64_t) { PENDING("conv2d"); }
Tensor max_pool1d(const Tensor&, int64_t, int64_t, int64_t) { PENDING("max_pool1d"); }
Tensor max_pool2d(const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef) { PENDING("max_pool2d"); }
namespace cpu {
void CpuBackend::conv2d(const Tensor&, const Tensor&, const Tensor*, const ConvParams&, Tensor&) { PENDING("cpu conv2d"); }
void CpuBackend::conv2d_backward_input(const Tensor&, const Tensor&, const ConvParams&, Tensor&) { PENDING("conv bwd"); }
void CpuBackend::conv2d_backward_weight(const Tensor&, const Tensor&, const ConvParams&, Tensor&) { PENDING("conv bwd"); }
void CpuBackend::max_pool2d(const Tensor&, const PoolParams&, Tensor&, Tensor&) { PENDING("cpu max_pool2d"); }
void CpuBackend::max_pool2d_backward(const Tensor&, const Tensor&, const PoolParams&, Tensor&) { PENDING("pool bwd"); }
}  // namespace cpu
}  // namespace hg
