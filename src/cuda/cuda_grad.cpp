// src/cuda/cuda_grad.cpp: a GradNorm's device buffers, the upload of the spans' table,
// and the events that order the optimizers after the norm without a host round trip.
#include "cuda_grad.h"

#include <cuda_runtime.h>

#include <cstring>
#include <new>

#include "check.h"
#include "device_memory.h"

namespace recur::detail {
namespace {

kernels::NormState* state_in(void* buffer) {
  return reinterpret_cast<kernels::NormState*>(static_cast<double*>(buffer) +
                                               kernels::kNormMaxBlocks);
}

bool same_table(const std::vector<kernels::SpanEntry>& a,
                const std::vector<kernels::SpanEntry>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].data != b[i].data || a[i].begin != b[i].begin || a[i].count != b[i].count) {
      return false;
    }
  }
  return true;
}

}  // namespace

CudaNormWorkspace::CudaNormWorkspace(int device) : device_(device) {
  DeviceGuard scope(device_);
  buffer_ =
      make_device_memory(kernels::kNormMaxBlocks * sizeof(double) + sizeof(kernels::NormState));
  host_state_ = make_pinned_memory(sizeof(kernels::NormState));
  new (host_state_.get()) kernels::NormState();
  done_ = make_event(cudaEventDisableTiming);
  read_ = make_event(cudaEventDisableTiming);
}

CudaNormWorkspace::~CudaNormWorkspace() {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  cudaSetDevice(device_);
  // Work in flight may still read the buffers (the flag's readers too).
  if (done_) cudaEventSynchronize(done_.get());
  if (read_) cudaEventSynchronize(read_.get());
  table_.reset();
  staging_.reset();
  buffer_.reset();
  host_state_.reset();
  done_.reset();
  read_.reset();
  cudaSetDevice(previous);
}

void CudaNormWorkspace::run(const std::vector<kernels::SpanEntry>& table, std::int64_t total,
                            DType dtype, double max_norm, void* stream) {
  DeviceGuard scope(device_);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const cudaEvent_t done = done_.get();
  // The buffers are reused: this run starts after the last one, whatever its stream, and
  // after the kernels that read its finite flag (an event never recorded waits for nothing).
  RECUR_CUDA_CHECK(cudaStreamWaitEvent(s, done, 0));
  RECUR_CUDA_CHECK(cudaStreamWaitEvent(s, read_.get(), 0));
  try {
    enqueue(table, total, dtype, max_norm, s);
  } catch (...) {
    // Whatever was queued ends at `done` all the same, and the next run uploads its table
    // again (this one's upload may not have been queued).
    uploaded_.clear();
    cudaEventRecord(done, s);
    throw;
  }
}

void CudaNormWorkspace::enqueue(const std::vector<kernels::SpanEntry>& table, std::int64_t total,
                                DType dtype, double max_norm, cudaStream_t s) {
  const cudaEvent_t done = done_.get();
  if (!table.empty() && !same_table(table, uploaded_)) {
    // A new list of spans (the first call, or the trainer changed it): the staging
    // buffer may still be read by the last upload, so wait for the last run.
    RECUR_CUDA_CHECK(cudaEventSynchronize(done));
    if (table.size() > capacity_) {
      const std::size_t capacity = table.size() > 2 * capacity_ ? table.size() : 2 * capacity_;
      DeviceMemory device_table = make_device_memory(capacity * sizeof(kernels::SpanEntry));
      PinnedMemory host_table = make_pinned_memory(capacity * sizeof(kernels::SpanEntry));
      table_ = std::move(device_table);
      staging_ = std::move(host_table);
      capacity_ = capacity;
    }
    uploaded_.clear();
    const std::size_t bytes = table.size() * sizeof(kernels::SpanEntry);
    std::memcpy(staging_.get(), table.data(), bytes);
    RECUR_CUDA_CHECK(
        cudaMemcpyAsync(table_.get(), staging_.get(), bytes, cudaMemcpyHostToDevice, s));
    uploaded_ = table;
  }
  const auto* device_table = static_cast<const kernels::SpanEntry*>(table_.get());
  double* partials = static_cast<double*>(buffer_.get());
  const int n = static_cast<int>(table.size());
  if (dtype == DType::Float32) {
    kernels::launch_global_norm<float>(device_table, n, total, partials, state_in(buffer_.get()),
                                       max_norm, s);
  } else {
    kernels::launch_global_norm<double>(device_table, n, total, partials, state_in(buffer_.get()),
                                        max_norm, s);
  }
  RECUR_CUDA_CHECK(cudaMemcpyAsync(host_state_.get(), state_in(buffer_.get()),
                                   sizeof(kernels::NormState), cudaMemcpyDeviceToHost, s));
  RECUR_CUDA_CHECK(cudaEventRecord(done, s));
}

kernels::NormState CudaNormWorkspace::result() const {
  DeviceGuard scope(device_);
  RECUR_CUDA_CHECK(cudaEventSynchronize(done_.get()));
  kernels::NormState out;
  std::memcpy(&out, host_state_.get(), sizeof(out));
  return out;
}

const int* CudaNormWorkspace::finite_flag() const { return &state_in(buffer_.get())->finite; }

void CudaNormWorkspace::order_after(void* stream) const {
  DeviceGuard scope(device_);
  RECUR_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), done_.get(), 0));
}

void CudaNormWorkspace::read_by(void* stream) {
  DeviceGuard scope(device_);
  const auto s = static_cast<cudaStream_t>(stream);
  // Readers on several streams: each new one first waits for the ones before, so that
  // read_ ends after all of them.
  RECUR_CUDA_CHECK(cudaStreamWaitEvent(s, read_.get(), 0));
  RECUR_CUDA_CHECK(cudaEventRecord(read_.get(), s));
}

}  // namespace recur::detail
