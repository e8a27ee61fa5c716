// src/memory.cpp: host memory here; device memory through the CUDA backend.
#include "memory.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "cuda_backend.h"
#include "recur/error.h"

namespace recur::detail {
namespace {

constexpr std::size_t kAlignment = 256;

// The live blocks and their bytes, per side (0 the host, 1 all CUDA devices), and the
// largest byte count since the last reset. Allocations are rare (workspaces are pooled),
// so one lock is cheap; it also guards the sizes of live blocks, which free needs.
struct Ledger {
  std::mutex mutex;
  std::unordered_map<const void*, std::size_t> sizes;
  std::int64_t blocks[2] = {0, 0}, bytes[2] = {0, 0}, peak[2] = {0, 0};

  void add(const void* p, std::size_t n, int side) {
    std::lock_guard<std::mutex> lock(mutex);
    sizes.emplace(p, n);  // may throw std::bad_alloc: the caller frees p
    ++blocks[side];
    bytes[side] += static_cast<std::int64_t>(n);
    if (bytes[side] > peak[side]) peak[side] = bytes[side];
  }
  void remove(const void* p, int side) noexcept {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = sizes.find(p);
    if (it == sizes.end()) return;
    --blocks[side];
    bytes[side] -= static_cast<std::int64_t>(it->second);
    sizes.erase(it);
  }
};

Ledger& ledger() {
  static Ledger* l = new Ledger;  // never destroyed: frees may come during exit
  return *l;
}

// Records a fresh block, freeing it (and rethrowing) when even that fails.
void record(void* p, std::size_t bytes, Device device) {
  try {
    ledger().add(p, bytes, device.is_cpu() ? 0 : 1);
  } catch (...) {
    if (device.is_cpu()) {
      std::free(p);
    } else if (CudaBackend* cuda = cuda_backend()) {
      cuda->free(device.index, p);
    }
    throw;
  }
}

}  // namespace

LiveAllocations live_allocations() {
  Ledger& l = ledger();
  std::lock_guard<std::mutex> lock(l.mutex);
  LiveAllocations out;
  out.host = l.blocks[0];
  out.cuda = l.blocks[1];
  out.host_bytes = l.bytes[0];
  out.cuda_bytes = l.bytes[1];
  out.host_peak_bytes = l.peak[0];
  out.cuda_peak_bytes = l.peak[1];
  return out;
}

void reset_peak_bytes() {
  Ledger& l = ledger();
  std::lock_guard<std::mutex> lock(l.mutex);
  l.peak[0] = l.bytes[0];
  l.peak[1] = l.bytes[1];
}

std::uint64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

std::uint64_t device_memory_bytes(Device device) {
  if (device.is_cpu()) return host_memory_bytes();
  CudaBackend* cuda = cuda_backend();
  return cuda != nullptr ? cuda->total_memory(device.index) : 0;
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
    record(p, bytes, device);
    return p;
  }
  void* p = require_cuda_backend("device memory").allocate(device.index, bytes);
  if (p != nullptr) record(p, bytes, device);
  return p;
}

void deallocate(Device device, void* ptr) noexcept {
  if (ptr == nullptr) return;
  ledger().remove(ptr, device.is_cpu() ? 0 : 1);
  if (device.is_cpu()) {
    std::free(ptr);
    return;
  }
  // Only memory allocate() gave comes here, so the backend is loaded.
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
