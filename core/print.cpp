#include <hopgrad/core/print.h>

#include <cmath>

#include <hopgrad/autograd/meta.h>
#include <hopgrad/autograd/node.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

constexpr int64_t kSummariseAbove = 1000;  // elements; as torch's print threshold
constexpr int64_t kEdgeItems = 3;

std::string format_value(double v, DType dt, bool use_sci) {
  if (dt == kBool) return v != 0.0 ? "True" : "False";
  if (dt == kInt64) return fmt::format("{}", static_cast<int64_t>(v));
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return use_sci ? fmt::format("{:.4e}", v) : fmt::format("{:.4f}", v);
}

void format_dim(std::string& out, const std::vector<double>& values, const Shape& sizes, size_t dim, int64_t offset,
                DType dt, bool use_sci, bool summarise, size_t width, size_t indent) {
  if (sizes.empty()) {
    out += format_value(values[static_cast<size_t>(offset)], dt, use_sci);
    return;
  }
  int64_t n = sizes[dim];
  int64_t stride = 1;
  for (size_t d = dim + 1; d < sizes.size(); ++d) stride *= sizes[d];
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && n > 2 * kEdgeItems && i == kEdgeItems) {
      out += dim + 1 == sizes.size() ? "..., " : fmt::format("...,\n{:{}}", "", indent + 1);
      i = n - kEdgeItems - 1;
      continue;
    }
    if (dim + 1 == sizes.size()) {
      std::string v = format_value(values[static_cast<size_t>(offset + i)], dt, use_sci);
      out += fmt::format("{:>{}}", v, width);
    } else {
      format_dim(out, values, sizes, dim + 1, offset + i * stride, dt, use_sci, summarise, width, indent + 1);
    }
    if (i + 1 < n) out += dim + 1 == sizes.size() ? ", " : fmt::format(",\n{:{}}", "", indent + 1);
  }
  out += ']';
}

}  // namespace

std::string to_string(const Tensor& t) {
  if (!t.defined()) return "tensor(undefined)";
  std::vector<double> values = t.detach().to(kCPU).to(kFloat64).to_vector<double>();
  if (t.dtype() == kBool) values = [&] {
    std::vector<double> v;
    for (bool b : t.detach().to_vector<bool>()) v.push_back(b ? 1.0 : 0.0);
    return v;
  }();
  double max_abs = 0.0;
  for (double v : values)
    if (std::isfinite(v)) max_abs = std::max(max_abs, std::abs(v));
  bool use_sci = is_floating(t.dtype()) && (max_abs >= 1e8 || (max_abs > 0 && max_abs < 1e-4));
  size_t width = 0;
  for (double v : values) width = std::max(width, format_value(v, t.dtype(), use_sci).size());
  std::string body;
  format_dim(body, values, t.sizes(), 0, 0, t.dtype(), use_sci, t.numel() > kSummariseAbove, width, 7);
  std::string out = fmt::format("tensor({}, shape={}, dtype={}, device={}", body, t.sizes(), t.dtype(), t.device());
  // The recorded state as it is (Tensor::requires_grad() would first bring a stale view's history up to date,
  // which may throw: printing never does).
  if (const AutogradMeta* m = autograd_meta_or_null(t); m && (m->requires_grad || m->grad_fn))
    out += m->grad_fn ? fmt::format(", grad_fn=<{}>", m->grad_fn->name()) : ", requires_grad=True";
  return out + ")";
}

}  // namespace hg
