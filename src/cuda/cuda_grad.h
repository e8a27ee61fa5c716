// src/cuda/cuda_grad.h: the CUDA side of clipping (src/clip.cpp) and of the optimizers
// (src/optim.cpp): a GradNorm's device buffers and events, and a device scope.
// Plain C++: no CUDA header is needed to include it.
#pragma once

#include <cstdint>
#include <vector>

#include "../../kernels/reduce.h"
#include "recur/device.h"

namespace recur::detail {

// Makes CUDA device `index` current for a scope, then restores the caller's device.
class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(int index);
  ~CudaDeviceScope();
  CudaDeviceScope(const CudaDeviceScope&) = delete;
  CudaDeviceScope& operator=(const CudaDeviceScope&) = delete;

 private:
  int index_ = 0;
  int previous_ = 0;
};

// What a GradNorm keeps on one GPU: the partial sums (kNormMaxBlocks doubles) and the
// NormState in one device allocation; the spans' table in a device buffer and a pinned
// host staging buffer, both grown on demand; a pinned host mirror of the NormState; and
// one event that marks the end of the last run's work (kernels and the copy back).
class CudaNormWorkspace {
 public:
  explicit CudaNormWorkspace(int device);
  ~CudaNormWorkspace();
  CudaNormWorkspace(const CudaNormWorkspace&) = delete;
  CudaNormWorkspace& operator=(const CudaNormWorkspace&) = delete;

  int device() const { return device_; }

  // Queues on `stream` the norm of the spans in `table` (device pointers, sorted,
  // non-empty; `total` elements of `dtype` in all) and, when max_norm >= 0, the clip;
  // then the copy of the NormState to the host mirror. Never waits for the device,
  // except when the table differs from the last one uploaded (then for the last run).
  void run(const std::vector<kernels::SpanEntry>& table, std::int64_t total, DType dtype,
           double max_norm, void* stream);
  // Waits for the last run (only), then returns its NormState.
  kernels::NormState result() const;
  // The finite flag in device memory, for the optimizers' kernels.
  const int* finite_flag() const;
  // Makes `stream` wait, on the device, until the last run's work is done.
  void order_after(void* stream) const;

 private:
  void release() noexcept;

  int device_ = 0;
  void* buffer_ = nullptr;      // device: double partials[kNormMaxBlocks], then NormState
  void* host_state_ = nullptr;  // pinned: NormState
  void* table_ = nullptr;       // device: SpanEntry[capacity_]
  void* staging_ = nullptr;     // pinned: SpanEntry[capacity_]
  std::size_t capacity_ = 0;
  std::vector<kernels::SpanEntry> uploaded_;  // the table now in table_
  void* done_ = nullptr;                      // cudaEvent_t
};

}  // namespace recur::detail
