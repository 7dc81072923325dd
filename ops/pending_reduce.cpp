// TEMPORARY placeholders so the library links while the real definitions are written; the owner deletes this
// file when the real ones land.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/ops.h>

#define PENDING(name) HG_FAIL("{} is not implemented yet", name)

namespace hg {
// reductions
Tensor prod(const Tensor&, IntArrayRef, bool) { PENDING("prod"); }
Tensor var(const Tensor&, IntArrayRef, bool, bool) { PENDING("var"); }
Tensor std(const Tensor&, IntArrayRef, bool, bool) { PENDING("std"); }
Tensor max(const Tensor&) { PENDING("max"); }
Tensor min(const Tensor&) { PENDING("min"); }
std::tuple<Tensor, Tensor> max(const Tensor&, int64_t, bool) { PENDING("max"); }
std::tuple<Tensor, Tensor> min(const Tensor&, int64_t, bool) { PENDING("min"); }
Tensor amax(const Tensor&, IntArrayRef, bool) { PENDING("amax"); }
Tensor amin(const Tensor&, IntArrayRef, bool) { PENDING("amin"); }
Tensor argmax(const Tensor&, int64_t, bool) { PENDING("argmax"); }
Tensor argmin(const Tensor&, int64_t, bool) { PENDING("argmin"); }
Tensor logsumexp(const Tensor&, IntArrayRef, bool) { PENDING("logsumexp"); }
Tensor norm(const Tensor&, double, IntArrayRef, bool) { PENDING("norm"); }
std::tuple<Tensor, Tensor> topk(const Tensor&, int64_t, int64_t, bool, bool) { PENDING("topk"); }
std::tuple<Tensor, Tensor> sort(const Tensor&, int64_t, bool) { PENDING("sort"); }
Tensor argsort(const Tensor&, int64_t, bool) { PENDING("argsort"); }
std::tuple<Tensor, Tensor> kthvalue(const Tensor&, int64_t, int64_t, bool) { PENDING("kthvalue"); }
std::tuple<Tensor, Tensor> median(const Tensor&, int64_t, bool) { PENDING("median"); }
Tensor median(const Tensor&) { PENDING("median"); }
Tensor cumsum(const Tensor&, int64_t) { PENDING("cumsum"); }
namespace cpu {
void CpuBackend::arg_reduce(bool, const Tensor&, int64_t, Tensor&, Tensor&) { PENDING("cpu arg_reduce"); }
void CpuBackend::cumsum(const Tensor&, int64_t, Tensor&) { PENDING("cpu cumsum"); }
void CpuBackend::sort(const Tensor&, int64_t, bool, Tensor&, Tensor&) { PENDING("cpu sort"); }
void CpuBackend::topk(const Tensor&, int64_t, int64_t, bool, Tensor&, Tensor&) { PENDING("cpu topk"); }
}  // namespace cpu
}  // namespace hg
