// TEMPORARY placeholders so the library links while the real definitions are written; the owner deletes this
// file when the real ones land.
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
bool allclose(const Tensor&, const Tensor&, double, double) { PENDING("allclose"); }
double max_abs_diff(const Tensor&, const Tensor&) { PENDING("max_abs_diff"); }
namespace cpu {
void CpuBackend::unary(UnaryOp, const Tensor&, Tensor&, UnaryParams) { PENDING("cpu unary"); }
}  // namespace cpu
}  // namespace hg
