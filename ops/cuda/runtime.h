#pragma once
// Host-side helpers around the CUDA runtime and cuBLAS, usable from .cpp and .cu files alike (no device code):
// error checks that turn every failed call into an hg::Error with file:line, a guard that makes a device current,
// and per-device facts and handles created once.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <mutex>

#include <hopgrad/core/tensor.h>

namespace hg::cuda {

namespace detail {
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line);
}  // namespace detail

/// Makes `device` current until the guard goes out of scope (kernels and cudaMalloc act on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;  // the device to restore, or -1 when the guard changed nothing
};

/// Streaming multiprocessors of a device (queried once).
int sm_count(int device);

/// The cuBLAS handle of a device, created on first use and bound to the legacy default stream. A cuBLAS handle
/// must not be used by two host threads at once: hold the lock for as long as the handle is in use.
struct CublasLease {
  cublasHandle_t handle;
  std::unique_lock<std::mutex> lock;
};
CublasLease cublas_handle(int device);

/// Throws hg::Error naming `op` unless every (non-null) tensor is on `device`.
void check_on_device(const char* op, Device device, std::initializer_list<const Tensor*> tensors);

}  // namespace hg::cuda

/// HG_CUDA_CHECK(cudaMemcpy(...)): throws hg::Error naming the call, the CUDA error and file:line.
#define HG_CUDA_CHECK(expr)                                                        \
  do {                                                                             \
    cudaError_t hg_status_ = (expr);                                               \
    if (hg_status_ != cudaSuccess) [[unlikely]]                                    \
      ::hg::cuda::detail::throw_cuda_error(hg_status_, #expr, __FILE__, __LINE__); \
  } while (0)

/// HG_CUBLAS_CHECK(cublasSgemm(...)): the same for cuBLAS status codes.
#define HG_CUBLAS_CHECK(expr)                                                        \
  do {                                                                               \
    cublasStatus_t hg_status_ = (expr);                                              \
    if (hg_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                            \
      ::hg::cuda::detail::throw_cublas_error(hg_status_, #expr, __FILE__, __LINE__); \
  } while (0)

/// After a kernel launch: reports a bad launch configuration, or a fault of earlier asynchronous work.
#define HG_CUDA_CHECK_LAUNCH() HG_CUDA_CHECK(cudaGetLastError())
