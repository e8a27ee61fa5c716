// src/memory.h: raw allocation and copies on any device. Tensor and the workspaces are
// built on these; nothing else calls malloc or cudaMalloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "recur/device.h"

namespace recur::detail {

// The host's physical memory in bytes; 0 where it cannot be told.
std::uint64_t host_memory_bytes();

// The memory of `device` in bytes (the host's physical memory, or a GPU's total memory);
// 0 where it cannot be told.
std::uint64_t device_memory_bytes(Device device);

// Throws recur::Error naming `where` and `argument` when `bytes` (described by `what`)
// exceed the host's memory, for a CPU device: so that sizes which could never fit fail
// before anything is allocated, and not later, when lazily granted memory is touched.
void expect_fits(const char* where, const char* argument, Device device, std::uint64_t bytes,
                 const std::string& what);

// Blocks allocate() gave and deallocate() has not yet taken back, and their bytes (as
// asked for), on the host and on all CUDA devices together; and the most bytes live at
// once since reset_peak_bytes() (for tests and the memory model: what a model holds, when
// it lets go, and a step's peak).
struct LiveAllocations {
  std::int64_t host = 0;
  std::int64_t cuda = 0;
  std::int64_t host_bytes = 0, cuda_bytes = 0;
  std::int64_t host_peak_bytes = 0, cuda_peak_bytes = 0;
};
LiveAllocations live_allocations();
// Starts the peaks again from the bytes live now.
void reset_peak_bytes();

// Memory for `bytes` bytes on `device`, aligned to 256 bytes; nullptr when bytes == 0.
void* allocate(Device device, std::size_t bytes);
void deallocate(Device device, void* ptr) noexcept;
// Copies `bytes` bytes between any two devices. Synchronous: when it returns, the data
// has arrived and all work queued before on the devices involved has finished.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);
// dst[0..bytes) = 0 on `device`, synchronously.
void zero_bytes(void* dst, Device device, std::size_t bytes);

}  // namespace recur::detail
