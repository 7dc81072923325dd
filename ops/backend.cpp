// Backend dispatch, storage allocation and the default generators.
#include <hopgrad/ops/backend.h>

#include <hopgrad/core/generator.h>

namespace hg {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Log1p: return "log1p";
    case UnaryOp::Expm1: return "expm1";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Rsqrt: return "rsqrt";
    case UnaryOp::Reciprocal: return "reciprocal";
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Erf: return "erf";
    case UnaryOp::Square: return "square";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Gelu: return "gelu";
    case UnaryOp::GeluTanh: return "gelu(tanh)";
    case UnaryOp::GeluDerivative: return "gelu_derivative";
    case UnaryOp::Selu: return "selu";
    case UnaryOp::Elu: return "elu";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::LogicalNot: return "logical_not";
  }
  return "?";
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
#ifdef HG_WITH_CUDA
  HG_CHECK(device.index < cuda_device_count(), "no CUDA device {} (this machine has {} CUDA devices)", device,
           cuda_device_count());
  return cuda_backend();
#else
  HG_FAIL("tensor on {}: this build of hopgrad has no CUDA backend (configure with -DHOPGRAD_CUDA=ON)", device);
#endif
}

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device) {
  return backend_for(device).allocate(nbytes, device);
}

#ifndef HG_WITH_CUDA
int cuda_device_count() { return 0; }
#endif

Generator& default_generator(Device device) {
  // One generator per device (up to kMaxCudaGenerators CUDA devices), created on first use and never destroyed
  // early.
  static Generator cpu;
  static Generator cuda[kMaxCudaGenerators];
  if (device.is_cpu()) return cpu;
  HG_CHECK(device.index >= 0 && device.index < kMaxCudaGenerators,
           "default_generator: CUDA device index {} out of range (0 to {})", device.index, kMaxCudaGenerators - 1);
  return cuda[device.index];
}

void manual_seed(uint64_t seed) {
  default_generator(kCPU).manual_seed(seed);
  for (int i = 0; i < kMaxCudaGenerators; ++i) default_generator(Device::cuda(i)).manual_seed(seed);
}

}  // namespace hg
