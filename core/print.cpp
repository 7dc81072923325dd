#include <hopgrad/core/print.h>

#include <cmath>

#include <hopgrad/autograd/grad_mode.h>
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

// What a summarised print shows (torch's get_summarized_data): along every dimension longer than 2·kEdgeItems,
// the first and the last kEdgeItems. Only these are formatted, so the hidden elements neither cost time (a
// 20 M-element tensor took seconds) nor choose the notation and the column width.
Tensor summarised_data(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor s = t.detach();
  for (int64_t d = 0; d < s.dim(); ++d) {
    const int64_t n = s.size(d);
    if (n > 2 * kEdgeItems) s = cat({s.narrow(d, 0, kEdgeItems), s.narrow(d, n - kEdgeItems, kEdgeItems)}, d);
  }
  return s;
}

// values: the row-major elements of a tensor of `sizes`; `elided[d]`: an ellipsis stands after the first
// kEdgeItems entries along dimension d.
void format_dim(std::string& out, const std::vector<std::string>& values, const Shape& sizes,
                const std::vector<bool>& elided, size_t dim, int64_t offset, size_t width, size_t indent) {
  if (sizes.empty()) {
    out += values[static_cast<size_t>(offset)];
    return;
  }
  const int64_t n = sizes[dim];
  int64_t stride = 1;
  for (size_t d = dim + 1; d < sizes.size(); ++d) stride *= sizes[d];
  const bool last = dim + 1 == sizes.size();
  const std::string separator = last ? ", " : fmt::format(",\n{:{}}", "", indent + 1);
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (elided[dim] && i == kEdgeItems) out += "..." + separator;
    if (last)
      out += fmt::format("{:>{}}", values[static_cast<size_t>(offset + i)], width);
    else
      format_dim(out, values, sizes, elided, dim + 1, offset + i * stride, width, indent + 1);
    if (i + 1 < n) out += separator;
  }
  out += ']';
}

}  // namespace

std::string to_string(const Tensor& t) {
  if (!t.defined()) return "tensor(undefined)";
  const bool summarise = t.numel() > kSummariseAbove;
  const Tensor shown = summarise ? summarised_data(t) : t;
  std::vector<bool> elided(static_cast<size_t>(t.dim()), false);
  for (int64_t d = 0; d < t.dim(); ++d) elided[static_cast<size_t>(d)] = summarise && t.size(d) > 2 * kEdgeItems;
  const std::vector<std::string> values = format_values(shown);
  size_t width = 0;
  for (const std::string& v : values) width = std::max(width, v.size());
  std::string body;
  format_dim(body, values, shown.sizes(), elided, 0, 0, width, 7);
  std::string out = fmt::format("tensor({}, shape={}, dtype={}, device={}", body, t.sizes(), t.dtype(), t.device());
  // The recorded state as it is (Tensor::requires_grad() would first bring a stale view's history up to date,
  // which may throw: printing never does).
  if (const AutogradMeta* m = autograd_meta_or_null(t); m && (m->requires_grad || m->grad_fn))
    out += m->grad_fn ? fmt::format(", grad_fn=<{}>", m->grad_fn->name()) : ", requires_grad=True";
  return out + ")";
}

}  // namespace hg
