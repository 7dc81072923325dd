#pragma once
// Flatten: merges dims start_dim..end_dim into one (by default all but the batch dim).
//
//   hg::nn::Flatten flatten;   // [N, C, H, W] → [N, C·H·W]
#include <cstdint>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct FlattenOptions {
  HG_ARG(int64_t, start_dim) = 1;
  HG_ARG(int64_t, end_dim) = -1;
};

/// y = x.flatten(start_dim, end_dim)
class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(const FlattenOptions& options = {}) : Module("Flatten"), options(options) {}
  Tensor forward(const Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  FlattenOptions options;
};
HG_MODULE(Flatten);

}  // namespace hg::nn
