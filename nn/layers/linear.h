#pragma once
// Linear and Identity layers.
//
//   hg::nn::Linear fc(hg::nn::LinearOptions(784, 10).bias(false));
//   hg::Tensor logits = fc(x);   // x [..., 784] → [..., 10]
#include <cstdint>

#include <hopgrad/nn/module.h>
#include <hopgrad/nn/options.h>

namespace hg::nn {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  HG_ARG(int64_t, in_features);
  HG_ARG(int64_t, out_features);
  HG_ARG(bool, bias) = true;
};

/// y = x Wᵀ + b, W [out, in], b [out]; x [..., in].
class LinearImpl : public Module {
 public:
  explicit LinearImpl(const LinearOptions& options);
  LinearImpl(int64_t in_features, int64_t out_features) : LinearImpl(LinearOptions(in_features, out_features)) {}

  Tensor forward(const Tensor& x);
  /// PyTorch's default: W ~ kaiming_uniform(a = √5) = U(±1/√in), b ~ U(±1/√in).
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  LinearOptions options;
  Tensor weight;  ///< [out_features, in_features]
  Tensor bias;    ///< [out_features], undefined without bias
};
HG_MODULE(Linear);

/// y = x (a placeholder that keeps a model's structure, e.g. a disabled projection).
class IdentityImpl : public Module {
 public:
  IdentityImpl() : Module("Identity") {}
  Tensor forward(const Tensor& x) { return x; }
  void pretty_print(std::ostream& stream) const override;
};
HG_MODULE(Identity);

}  // namespace hg::nn
