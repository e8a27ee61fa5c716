// src/cuda/handles.h: owners for the CUDA and cuBLAS handles the backend keeps (streams,
// events, cuBLAS handles, graphs and their executables, device and pinned memory), so that none is
// released by hand and an exception half-way through making several leaks none. Move-only; reset()
// releases early, where the order or the current device matters (CudaOps' destructor).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "check.h"

namespace recur::detail {

template <class Handle, class Release>
class Owned {
 public:
  Owned() = default;
  explicit Owned(Handle handle) : handle_(handle) {}
  ~Owned() { reset(); }
  Owned(Owned&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, Handle{});
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != Handle{}; }
  void reset() noexcept {
    if (handle_ != Handle{}) Release{}(handle_);
    handle_ = Handle{};
  }

 private:
  Handle handle_{};
};

struct ReleaseStream {
  void operator()(cudaStream_t s) const noexcept { cudaStreamDestroy(s); }
};
struct ReleaseEvent {
  void operator()(cudaEvent_t e) const noexcept { cudaEventDestroy(e); }
};
struct ReleaseBlas {
  void operator()(cublasHandle_t h) const noexcept { cublasDestroy(h); }
};
struct ReleaseGraph {
  void operator()(cudaGraph_t g) const noexcept { cudaGraphDestroy(g); }
};
struct ReleaseGraphExec {
  void operator()(cudaGraphExec_t g) const noexcept { cudaGraphExecDestroy(g); }
};
struct ReleaseDeviceMemory {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
struct ReleasePinnedMemory {
  void operator()(void* p) const noexcept { cudaFreeHost(p); }
};

using Stream = Owned<cudaStream_t, ReleaseStream>;
using Event = Owned<cudaEvent_t, ReleaseEvent>;
using BlasHandle = Owned<cublasHandle_t, ReleaseBlas>;
using Graph = Owned<cudaGraph_t, ReleaseGraph>;
using GraphExec = Owned<cudaGraphExec_t, ReleaseGraphExec>;
using DeviceMemory = Owned<void*, ReleaseDeviceMemory>;
using PinnedMemory = Owned<void*, ReleasePinnedMemory>;  // page-locked host memory

inline Stream make_stream(unsigned flags) {
  cudaStream_t s = nullptr;
  RECUR_CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags));
  return Stream(s);
}

// Whether `stream` is capturing a graph (recur's own recording, or a caller's).
inline bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  RECUR_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

inline Event make_event(unsigned flags) {
  cudaEvent_t e = nullptr;
  RECUR_CUDA_CHECK(cudaEventCreateWithFlags(&e, flags));
  return Event(e);
}

// A cuBLAS handle on `stream`, in full-precision FP32 math (no TF32), so that CPU/GPU
// parity holds to float32 rounding.
inline BlasHandle make_blas(cudaStream_t stream) {
  cublasHandle_t h = nullptr;
  RECUR_CUBLAS_CHECK(cublasCreate(&h));
  BlasHandle owned(h);
  RECUR_CUBLAS_CHECK(cublasSetStream(h, stream));
  RECUR_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  return owned;
}

inline DeviceMemory make_device_memory(std::size_t bytes) {
  void* p = nullptr;
  RECUR_CUDA_CHECK(cudaMalloc(&p, bytes));
  return DeviceMemory(p);
}

inline PinnedMemory make_pinned_memory(std::size_t bytes) {
  void* p = nullptr;
  RECUR_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return PinnedMemory(p);
}

}  // namespace recur::detail
