#pragma once
// Where a tensor's storage lives: the host, or one CUDA device.
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace hg {

enum class DeviceType : uint8_t { CPU, CUDA };

/// A device: `hg::Device::cpu()`, `hg::Device::cuda(0)`, or parsed from "cpu" / "cuda" / "cuda:1".
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  /// Parses "cpu", "cuda", "cuda:N"; throws hg::Error otherwise.
  explicit Device(const std::string& spec);

  static constexpr Device cpu() { return Device(DeviceType::CPU, 0); }
  static constexpr Device cuda(int i = 0) { return Device(DeviceType::CUDA, i); }

  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  constexpr bool operator==(const Device&) const = default;
  std::string str() const;
};

inline constexpr Device kCPU = Device::cpu();

/// Number of CUDA devices usable by this build (0 when built without CUDA or when no GPU is present).
int cuda_device_count();
/// True when at least one CUDA device is usable.
inline bool cuda_is_available() { return cuda_device_count() > 0; }

/// Waits until all work queued on `device` has finished, as torch.cuda.synchronize: CUDA kernels run
/// asynchronously, so a host clock read after an op measures only its launch unless this comes first. A no-op on
/// the CPU, whose ops return finished; throws hg::Error for a CUDA device this build or machine lacks.
///   hg::synchronize(device);  auto start = clock::now();  step();  hg::synchronize(device);  // then read the clock
/// Defined in ops/synchronize.cpp, beside the backends that do the waiting.
void synchronize(Device device);

}  // namespace hg

template <> struct fmt::formatter<hg::Device> : fmt::formatter<std::string> {
  auto format(const hg::Device& d, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};
