// src/memory.cpp: host memory here; device memory in cuda/cuda_runtime.cpp.
#include "memory.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "recur/error.h"
#if RECUR_HAS_CUDA
#include "cuda/cuda_runtime.h"
#endif

namespace recur::detail {
namespace {

constexpr std::size_t kAlignment = 256;

#if !RECUR_HAS_CUDA
[[noreturn]] void no_cuda() {
  throw Error(
      "recur: CUDA device memory requested, but recur was built without CUDA "
      "(configure with -DRECUR_CUDA=ON)");
}
#endif

}  // namespace

void* allocate(Device device, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (device.is_cpu()) {
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) {
      throw Error("recur: host allocation of " + std::to_string(bytes) + " bytes failed");
    }
    return p;
  }
#if RECUR_HAS_CUDA
  return cuda_allocate(device.index, bytes);
#else
  no_cuda();
#endif
}

void deallocate(Device device, void* ptr) noexcept {
  if (ptr == nullptr) return;
  if (device.is_cpu()) {
    std::free(ptr);
    return;
  }
#if RECUR_HAS_CUDA
  cuda_free(device.index, ptr);
#endif
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if RECUR_HAS_CUDA
  cuda_copy(dst, dst_device, src, src_device, bytes);
#else
  no_cuda();
#endif
}

void zero_bytes(void* dst, Device device, std::size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
#if RECUR_HAS_CUDA
  cuda_zero(dst, device.index, bytes);
#else
  no_cuda();
#endif
}

}  // namespace recur::detail
