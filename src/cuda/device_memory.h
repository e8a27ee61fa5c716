// src/cuda/cuda_runtime.h: device memory and device discovery, for src/memory.cpp and
// src/device.cpp. Plain C++: no CUDA header is needed to include it.
#pragma once

#include <cstddef>

#include "recur/device.h"

namespace recur::detail {

void* cuda_allocate(int device, std::size_t bytes);
void cuda_free(int device, void* ptr) noexcept;
// Synchronous copy between any two devices, after all work queued on them has finished.
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
void cuda_zero(void* dst, int device, std::size_t bytes);
// Devices that exist and can run this build's kernels; 0 when the runtime reports no
// device or no driver. Computed once.
int cuda_usable_device_count() noexcept;

}  // namespace recur::detail
