// src/memory.cpp: host memory here; device memory through the CUDA backend.
#include "memory.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "cuda_backend.h"
#include "recur/error.h"

namespace recur::detail {
namespace {

constexpr std::size_t kAlignment = 256;

std::atomic<std::int64_t> live_host{0}, live_cuda{0};

}  // namespace

LiveAllocations live_allocations() {
  LiveAllocations out;
  out.host = live_host.load();
  out.cuda = live_cuda.load();
  return out;
}

std::uint64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

void expect_fits(const char* where, const char* argument, Device device, std::uint64_t bytes,
                 const std::string& what) {
  if (!device.is_cpu()) return;  // a CUDA allocation that fails says so itself
  const std::uint64_t have = host_memory_bytes();
  if (have > 0 && bytes > have) {
    throw Error(where, argument,
                "sizes whose memory fits in the host's " + std::to_string(have) + " bytes",
                what + ": " + std::to_string(bytes) + " bytes");
  }
}

void* allocate(Device device, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (device.is_cpu()) {
    // More than the machine has is refused before malloc sees it: the kernel may grant
    // such a request lazily and fail only when the memory is touched.
    const std::uint64_t have = host_memory_bytes();
    if (have > 0 && bytes > have) {
      throw Error("recur: host allocation of " + std::to_string(bytes) +
                  " bytes: more than the host's " + std::to_string(have) + " bytes of memory");
    }
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      throw Error("recur: host allocation of " + std::to_string(bytes) + " bytes failed");
    }
    ++live_host;
    return p;
  }
  void* p = require_cuda_backend("device memory").allocate(device.index, bytes);
  if (p != nullptr) ++live_cuda;
  return p;
}

void deallocate(Device device, void* ptr) noexcept {
  if (ptr == nullptr) return;
  if (device.is_cpu()) {
    --live_host;
    std::free(ptr);
    return;
  }
  // Only memory allocate() gave comes here, so the backend is loaded.
  --live_cuda;
  if (CudaBackend* cuda = cuda_backend()) cuda->free(device.index, ptr);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  require_cuda_backend("a copy").copy(dst, dst_device, src, src_device, bytes);
}

void zero_bytes(void* dst, Device device, std::size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
  require_cuda_backend("a fill").zero(dst, device.index, bytes);
}

}  // namespace recur::detail
