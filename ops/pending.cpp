// TEMPORARY: definitions not yet implemented; each helper deletes its entries when the real ones land.
#include <hopgrad/ops/cpu/cpu_backend.h>
#include <hopgrad/ops/ops.h>

#define PENDING(name) HG_FAIL("{} is not implemented yet", name)

namespace hg {
// unary
#define U(fn) Tensor fn(const Tensor&) { PENDING(#fn); }
U(neg) U(abs) U(sign) U(exp) U(log) U(log1p) U(expm1) U(sqrt) U(rsqrt) U(reciprocal) U(sin) U(cos) U(tanh)
U(sigmoid) U(erf) U(square) U(relu) U(selu) U(logical_not)
#undef U
Tensor gelu(const Tensor&, const std::string&) { PENDING("gelu"); }
Tensor elu(const Tensor&, double) { PENDING("elu"); }
Tensor softplus(const Tensor&, double, double) { PENDING("softplus"); }
Tensor clamp(const Tensor&, std::optional<double>, std::optional<double>) { PENDING("clamp"); }
Tensor clamp_min(const Tensor&, double) { PENDING("clamp_min"); }
Tensor clamp_max(const Tensor&, double) { PENDING("clamp_max"); }
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
// nn
Tensor softmax(const Tensor&, int64_t) { PENDING("softmax"); }
Tensor log_softmax(const Tensor&, int64_t) { PENDING("log_softmax"); }
Tensor layer_norm(const Tensor&, IntArrayRef, const Tensor&, const Tensor&, double) { PENDING("layer_norm"); }
Tensor dropout(const Tensor&, double, bool, Generator*) { PENDING("dropout"); }
Tensor embedding(const Tensor&, const Tensor&) { PENDING("embedding"); }
Tensor conv1d(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, int64_t) { PENDING("conv1d"); }
Tensor conv2d(const Tensor&, const Tensor&, const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef, int64_t) { PENDING("conv2d"); }
Tensor max_pool1d(const Tensor&, int64_t, int64_t, int64_t) { PENDING("max_pool1d"); }
Tensor max_pool2d(const Tensor&, IntArrayRef, IntArrayRef, IntArrayRef) { PENDING("max_pool2d"); }
Tensor cross_entropy(const Tensor&, const Tensor&, Reduction, int64_t, double) { PENDING("cross_entropy"); }
Tensor nll_loss(const Tensor&, const Tensor&, Reduction, int64_t) { PENDING("nll_loss"); }
Tensor binary_cross_entropy_with_logits(const Tensor&, const Tensor&, Reduction, const Tensor&) { PENDING("bce"); }
Tensor mse_loss(const Tensor&, const Tensor&, Reduction) { PENDING("mse_loss"); }
Tensor l1_loss(const Tensor&, const Tensor&, Reduction) { PENDING("l1_loss"); }
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
bool allclose(const Tensor&, const Tensor&, double, double) { PENDING("allclose"); }
double max_abs_diff(const Tensor&, const Tensor&) { PENDING("max_abs_diff"); }

namespace cpu {
void CpuBackend::unary(UnaryOp, const Tensor&, Tensor&, UnaryParams) { PENDING("cpu unary"); }
void CpuBackend::arg_reduce(bool, const Tensor&, int64_t, Tensor&, Tensor&) { PENDING("cpu arg_reduce"); }
void CpuBackend::cumsum(const Tensor&, int64_t, Tensor&) { PENDING("cpu cumsum"); }
void CpuBackend::sort(const Tensor&, int64_t, bool, Tensor&, Tensor&) { PENDING("cpu sort"); }
void CpuBackend::topk(const Tensor&, int64_t, int64_t, bool, Tensor&, Tensor&) { PENDING("cpu topk"); }
void CpuBackend::softmax(const Tensor&, int64_t, bool, Tensor&) { PENDING("cpu softmax"); }
void CpuBackend::layer_norm(const Tensor&, const Tensor*, const Tensor*, int64_t, double, Tensor&, Tensor&, Tensor&) { PENDING("cpu layer_norm"); }
void CpuBackend::conv2d(const Tensor&, const Tensor&, const Tensor*, const ConvParams&, Tensor&) { PENDING("cpu conv2d"); }
void CpuBackend::conv2d_backward_input(const Tensor&, const Tensor&, const ConvParams&, Tensor&) { PENDING("conv bwd"); }
void CpuBackend::conv2d_backward_weight(const Tensor&, const Tensor&, const ConvParams&, Tensor&) { PENDING("conv bwd"); }
void CpuBackend::max_pool2d(const Tensor&, const PoolParams&, Tensor&, Tensor&) { PENDING("cpu max_pool2d"); }
void CpuBackend::max_pool2d_backward(const Tensor&, const Tensor&, const PoolParams&, Tensor&) { PENDING("pool bwd"); }
void CpuBackend::index_select(const Tensor&, int64_t, const Tensor&, Tensor&) { PENDING("cpu index_select"); }
void CpuBackend::index_add(Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("cpu index_add"); }
void CpuBackend::gather(const Tensor&, int64_t, const Tensor&, Tensor&) { PENDING("cpu gather"); }
void CpuBackend::scatter_add(Tensor&, int64_t, const Tensor&, const Tensor&) { PENDING("cpu scatter_add"); }
}  // namespace cpu
}  // namespace hg
