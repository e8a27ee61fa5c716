// src/cuda/device_memory.h: device memory and device discovery, for the backend entry
// (backend_entry.cpp). Plain C++: no CUDA header is needed to include it.
#pragma once

#include <cstddef>

#include "recur/device.h"

namespace recur::detail {

// Makes `device` current for the scope and restores the caller's device afterwards, so
// recur never changes which device the application's own code is using.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

void* cuda_allocate(int device, std::size_t bytes);
void cuda_free(int device, void* ptr) noexcept;
// Synchronous copy between any two devices, after all work queued on them has finished.
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
void cuda_zero(void* dst, int device, std::size_t bytes);
// Devices that exist and can run this build's kernels; 0 when the runtime reports no
// device or no driver. Computed once.
int cuda_usable_device_count() noexcept;

}  // namespace recur::detail
