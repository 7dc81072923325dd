// TEMPORARY placeholders so the library links while the real definitions are written; the owner deletes this
// file when the real ones land.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/ops.h>

#define PENDING(name) HG_FAIL("{} is not implemented yet", name)

namespace hg {
// shape / index
Tensor cat(const Tensors&, int64_t) { PENDING("cat"); }
Tensor stack(const Tensors&, int64_t) { PENDING("stack"); }
Tensors split(const Tensor&, int64_t, int64_t) { PENDING("split"); }
Tensors split_with_sizes(const Tensor&, IntArrayRef, int64_t) { PENDING("split_with_sizes"); }
Tensors chunk(const Tensor&, int64_t, int64_t) { PENDING("chunk"); }
Tensors unbind(const Tensor&, int64_t) { PENDING("unbind"); }
Tensor index_select(const Tensor&, int64_t, const Tensor&) { PENDING("index_select"); }
Tensor gather(const Tensor&, int64_t, const Tensor&) { PENDING("gather"); }
Tensor scatter_add(const Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("scatter_add"); }
Tensor index_add(const Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("index_add"); }
Tensor pad(const Tensor&, IntArrayRef, double) { PENDING("pad"); }
Tensor repeat(const Tensor&, IntArrayRef) { PENDING("repeat"); }
Tensor broadcast_to(const Tensor&, IntArrayRef) { PENDING("broadcast_to"); }

Tensor embedding(const Tensor&, const Tensor&) { PENDING("embedding"); }
namespace cpu {
void CpuBackend::index_select(const Tensor&, int64_t, const Tensor&, Tensor&) { PENDING("cpu index_select"); }
void CpuBackend::index_add(Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("cpu index_add"); }
void CpuBackend::gather(const Tensor&, int64_t, const Tensor&, Tensor&) { PENDING("cpu gather"); }
void CpuBackend::scatter_add(Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("cpu scatter_add"); }
}  // namespace cpu
}  // namespace hg
