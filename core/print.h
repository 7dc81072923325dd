#pragma once
// Printing tensors through fmt, in PyTorch's style:
//   fmt::print("{}\n", t);   →   tensor([[1.0000, 2.0000],
//                                        [3.0000, 4.0000]], shape=[2, 2], dtype=float32, device=cpu)
#include <string>

#include <hopgrad/core/tensor.h>

namespace hg {
/// The text fmt prints for `t` (values are summarised with "..." beyond 1000 elements).
std::string to_string(const Tensor& t);
}  // namespace hg

template <> struct fmt::formatter<hg::Tensor> : fmt::formatter<std::string> {
  auto format(const hg::Tensor& t, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(hg::to_string(t), ctx);
  }
};
