// CUDA devices: how many there are, the backend object, device guards, per-device properties and cuBLAS
// handles, error reporting, and synchronize().
#include <array>
#include <atomic>
#include <vector>

#include <hopgrad/ops/cuda/cuda_backend.h>
#include <hopgrad/ops/cuda/runtime.h>

namespace hg {

int cuda_device_count() {
  // Without a driver or a GPU cudaGetDeviceCount fails (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...):
  // that means no usable device, not an error. The failure is cleared so that it is not reported later.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

Backend& cuda_backend() {
  static cuda::CudaBackend backend;
  return backend;
}

namespace cuda {

namespace {
// Devices this process has made current through a DeviceGuard: synchronize() waits for those only, since
// touching any other device would create a CUDA context there.
constexpr int kMaxDevices = 64;
std::atomic<uint64_t> used_devices{0};
}  // namespace

namespace detail {

void throw_cuda_error(cudaError_t status, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so that the next call is not blamed for it
  hg::detail::throw_error(
      file, line, fmt::format("CUDA error: {} ({}) in {}", cudaGetErrorString(status), cudaGetErrorName(status), expr));
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  hg::detail::throw_error(
      file, line,
      fmt::format("cuBLAS error: {} ({}) in {}", cublasGetStatusString(status), cublasGetStatusName(status), expr));
}

}  // namespace detail

DeviceGuard::DeviceGuard(Device device) {
  HG_CHECK(device.is_cuda() && device.index >= 0 && device.index < cuda_device_count(),
           "CUDA backend: {} is not a usable CUDA device (this machine has {})", device, cuda_device_count());
  int current = 0;
  HG_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device.index) {
    HG_CUDA_CHECK(cudaSetDevice(device.index));
    previous_ = current;
  }
  if (device.index < kMaxDevices) used_devices.fetch_or(uint64_t{1} << device.index, std::memory_order_relaxed);
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);  // cannot throw from a destructor; restoring cannot fail
}

int sm_count(int device) {
  static const std::vector<int> counts = [] {
    std::vector<int> c(static_cast<size_t>(cuda_device_count()), 1);
    for (int d = 0; d < cuda_device_count(); ++d)
      HG_CUDA_CHECK(cudaDeviceGetAttribute(&c[static_cast<size_t>(d)], cudaDevAttrMultiProcessorCount, d));
    return c;
  }();
  return counts.at(static_cast<size_t>(device));
}

CublasLease cublas_handle(int device) {
  struct Slot {
    std::mutex mutex;
    cublasHandle_t handle = nullptr;
  };
  // Never destroyed: handles must outlive every tensor, and at exit the driver reclaims them.
  static auto* slots = new std::array<Slot, kMaxDevices>();
  HG_CHECK(device >= 0 && device < kMaxDevices, "cuBLAS: device index {} out of range", device);
  Slot& slot = (*slots)[static_cast<size_t>(device)];
  std::unique_lock lock(slot.mutex);
  if (!slot.handle) {
    DeviceGuard guard(Device::cuda(device));
    HG_CUBLAS_CHECK(cublasCreate(&slot.handle));
    // Legacy default stream (see cuda_backend.h); full float32 precision (no TF32), as the CPU backend.
    HG_CUBLAS_CHECK(cublasSetStream(slot.handle, nullptr));
    HG_CUBLAS_CHECK(cublasSetMathMode(slot.handle, CUBLAS_DEFAULT_MATH));
  }
  return {slot.handle, std::move(lock)};
}

void check_on_device(const char* op, Device device, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (t == nullptr || !t->defined()) continue;
    HG_CHECK(t->device() == device, "{} (cuda): got {} on {}, expected every tensor on {}", op, t->desc(), t->device(),
             device);
  }
}

void CudaBackend::synchronize() {
  uint64_t used = used_devices.load(std::memory_order_relaxed);
  for (int d = 0; d < kMaxDevices; ++d) {
    if (!(used >> d & 1)) continue;
    DeviceGuard guard(Device::cuda(d));
    HG_CUDA_CHECK(cudaDeviceSynchronize());
  }
}

}  // namespace cuda
}  // namespace hg
