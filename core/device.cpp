#include <hopgrad/core/device.h>

#include <hopgrad/core/error.h>

namespace hg {

Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::CPU;
    index = 0;
    return;
  }
  if (spec.rfind("cuda", 0) == 0) {
    type = DeviceType::CUDA;
    index = 0;
    if (spec.size() == 4) return;
    if (spec.size() > 5 && spec[4] == ':') {
      try {
        size_t used = 0;
        index = std::stoi(spec.substr(5), &used);
        if (used == spec.size() - 5 && index >= 0) return;
      } catch (const std::exception&) {
      }
    }
  }
  HG_FAIL("Device: cannot parse '{}'; expected 'cpu', 'cuda' or 'cuda:N'", spec);
}

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

}  // namespace hg
