// src/cuda/device_memory.cpp: device memory, copies and discovery.
#include "device_memory.h"

#include <cuda_runtime.h>

#include <string>

#include "../../kernels/launch.h"
#include "check.h"

namespace recur::detail {

void throw_cuda_error(const char* call, cudaError_t status, const char* file, int line) {
  throw Error(std::string("recur: CUDA call ") + call + " failed with " + cudaGetErrorName(status) +
              " (" + cudaGetErrorString(status) + ") at " + file + ":" + std::to_string(line));
}

void throw_cublas_error(const char* call, cublasStatus_t status, const char* file, int line) {
  throw Error(std::string("recur: cuBLAS call ") + call + " failed with " +
              cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ") at " + file +
              ":" + std::to_string(line));
}

namespace {

int count_usable_devices() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  int usable = 0;
  for (int d = 0; d < count; ++d) {
    // A device counts only if this build carries code it can run (e.g. sm_90 code on an
    // older GPU does not).
    if (kernels::kernels_runnable_on(d)) ++usable;
  }
  return usable;
}

}  // namespace

DeviceGuard::DeviceGuard(int device) {
  RECUR_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) RECUR_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = previous_;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

void* cuda_allocate(int device, std::size_t bytes) {
  DeviceGuard guard(device);
  void* p = nullptr;
  RECUR_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void cuda_free(int device, void* ptr) noexcept {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  cudaSetDevice(device);
  cudaFree(ptr);
  cudaSetDevice(previous);
}

void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device,
               std::size_t bytes) {
  // Copies are rare and outside every hot loop; waiting for the device makes them safe
  // whichever stream produced or will consume the data.
  // After it, too, into device memory: a copy from pageable host memory or between device
  // memory returns before it is done, and work queued next on another stream would not wait
  // for it.
  const bool peer =
      dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index;
  auto wait_for = [&](int device) {
    DeviceGuard guard(device);
    RECUR_CUDA_CHECK(cudaDeviceSynchronize());
  };
  const int device = dst_device.is_cuda() ? dst_device.index : src_device.index;
  if (peer) wait_for(src_device.index);
  wait_for(device);
  DeviceGuard guard(device);
  if (peer) {
    RECUR_CUDA_CHECK(cudaMemcpyPeer(dst, dst_device.index, src, src_device.index, bytes));
  } else {
    RECUR_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  }
  if (dst_device.is_cuda()) {
    RECUR_CUDA_CHECK(cudaDeviceSynchronize());
    if (peer) wait_for(src_device.index);
  }
}

void cuda_zero(void* dst, int device, std::size_t bytes) {
  DeviceGuard guard(device);
  RECUR_CUDA_CHECK(cudaDeviceSynchronize());
  RECUR_CUDA_CHECK(cudaMemset(dst, 0, bytes));
  RECUR_CUDA_CHECK(cudaDeviceSynchronize());
}

int cuda_usable_device_count() noexcept {
  static const int count = count_usable_devices();
  return count;
}

}  // namespace recur::detail
