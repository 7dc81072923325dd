#include <hopgrad/core/print.h>

#include <cmath>

#include <hopgrad/autograd/meta.h>
#include <hopgrad/autograd/node.h>
#include <hopgrad/ops/ops.h>

namespace hg {

namespace {

constexpr int64_t kSummariseAbove = 1000;  // elements; as torch's print threshold
constexpr int64_t kEdgeItems = 3;

std::string format_float(double v, bool use_sci) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return use_sci ? fmt::format("{:.4e}", v) : fmt::format("{:.4f}", v);
}

// Every element as text, in row-major order. int64 is read as int64: through double, values beyond 2^53 were
// rounded (and INT64_MAX printed as INT64_MIN).
std::vector<std::string> format_values(const Tensor& t) {
  std::vector<std::string> out;
  Tensor host = t.detach().to(kCPU);
  if (t.dtype() == kBool) {
    for (bool b : host.to_vector<bool>()) out.push_back(b ? "True" : "False");
    return out;
  }
  if (t.dtype() == kInt64) {
    for (int64_t v : host.to_vector<int64_t>()) out.push_back(fmt::format("{}", v));
    return out;
  }
  const std::vector<double> values = host.to(kFloat64).to_vector<double>();
  // Scientific notation as torch chooses it: when the finite non-zero magnitudes reach 1e8, go below 1e-4, or
  // span more than three decades ([1e-10, 1] printed as [0.0000, 1.0000] otherwise).
  double max_abs = 0.0, min_abs = HUGE_VAL;
  for (double v : values)
    if (std::isfinite(v) && v != 0.0) {
      max_abs = std::max(max_abs, std::abs(v));
      min_abs = std::min(min_abs, std::abs(v));
    }
  const bool use_sci = max_abs > 0 && (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1000);
  for (double v : values) out.push_back(format_float(v, use_sci));
  return out;
}

void format_dim(std::string& out, const std::vector<std::string>& values, const Shape& sizes, size_t dim,
                int64_t offset, bool summarise, size_t width, size_t indent) {
  if (sizes.empty()) {
    out += values[static_cast<size_t>(offset)];
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
    if (dim + 1 == sizes.size())
      out += fmt::format("{:>{}}", values[static_cast<size_t>(offset + i)], width);
    else
      format_dim(out, values, sizes, dim + 1, offset + i * stride, summarise, width, indent + 1);
    if (i + 1 < n) out += dim + 1 == sizes.size() ? ", " : fmt::format(",\n{:{}}", "", indent + 1);
  }
  out += ']';
}

}  // namespace

std::string to_string(const Tensor& t) {
  if (!t.defined()) return "tensor(undefined)";
  const std::vector<std::string> values = format_values(t);
  size_t width = 0;
  for (const std::string& v : values) width = std::max(width, v.size());
  std::string body;
  format_dim(body, values, t.sizes(), 0, 0, t.numel() > kSummariseAbove, width, 7);
  std::string out = fmt::format("tensor({}, shape={}, dtype={}, device={}", body, t.sizes(), t.dtype(), t.device());
  // The recorded state as it is (Tensor::requires_grad() would first bring a stale view's history up to date,
  // which may throw: printing never does).
  if (const AutogradMeta* m = autograd_meta_or_null(t); m && (m->requires_grad || m->grad_fn))
    out += m->grad_fn ? fmt::format(", grad_fn=<{}>", m->grad_fn->name()) : ", requires_grad=True";
  return out + ")";
}

}  // namespace hg
