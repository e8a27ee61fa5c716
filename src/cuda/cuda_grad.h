// src/cuda/cuda_grad.h: the CUDA side of clipping (src/clip.cpp): a GradNorm's device
// buffers and events.
#pragma once

#include <cstdint>
#include <vector>

#include "../../kernels/reduce.h"
#include "../cuda_backend.h"
#include "handles.h"
#include "recur/device.h"

namespace recur::detail {

// What a GradNorm keeps on one GPU: the partial sums (kNormMaxBlocks doubles) and the
// NormState in one device allocation; the spans' table in a device buffer and a pinned
// host staging buffer, both grown on demand; a pinned host mirror of the NormState; and
// one event that marks the end of the last run's work (kernels and the copy back).
class CudaNormWorkspace final : public NormWorkspace {
 public:
  explicit CudaNormWorkspace(int device);
  ~CudaNormWorkspace() override;
  CudaNormWorkspace(const CudaNormWorkspace&) = delete;
  CudaNormWorkspace& operator=(const CudaNormWorkspace&) = delete;

  int device() const override { return device_; }

  // Queues on `stream` the norm of the spans in `table` (device pointers, sorted,
  // non-empty; `total` elements of `dtype` in all) and, when max_norm >= 0, the clip;
  // then the copy of the NormState to the host mirror. Never waits for the device,
  // except when the table differs from the last one uploaded (then for the last run).
  void run(const std::vector<kernels::SpanEntry>& table, std::int64_t total, DType dtype,
           double max_norm, void* stream) override;
  // Waits for the last run (only), then returns its NormState.
  kernels::NormState result() const override;
  // The finite flag in device memory, for the optimizers' kernels.
  const int* finite_flag() const override;
  // Makes `stream` wait, on the device, until the last run's work is done.
  void order_after(void* stream) const override;
  // Adds the work queued so far on `stream` to what the next run waits for (read_).
  void read_by(void* stream) override;

 private:
  int device_ = 0;
  DeviceMemory buffer_;      // double partials[kNormMaxBlocks], then NormState
  PinnedMemory host_state_;  // NormState
  DeviceMemory table_;       // SpanEntry[capacity_]
  PinnedMemory staging_;     // SpanEntry[capacity_]
  std::size_t capacity_ = 0;
  std::vector<kernels::SpanEntry> uploaded_;  // the table now in table_
  Event done_;
  Event read_;  // the last of the readers of the finite flag since the last run (read_by)

  // run()'s work, after it waits: the upload where the table changed, the reduction, the
  // clip, the mirror's copy, `done`.
  void enqueue(const std::vector<kernels::SpanEntry>& table, std::int64_t total, DType dtype,
               double max_norm, cudaStream_t stream);
};

}  // namespace recur::detail
