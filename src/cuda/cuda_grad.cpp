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
  try {
    RECUR_CUDA_CHECK(cudaMalloc(
        &buffer_, kernels::kNormMaxBlocks * sizeof(double) + sizeof(kernels::NormState)));
    RECUR_CUDA_CHECK(cudaMallocHost(&host_state_, sizeof(kernels::NormState)));
    new (host_state_) kernels::NormState();
    cudaEvent_t done = nullptr;
    RECUR_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    done_ = done;
  } catch (...) {
    release();
    throw;
  }
}

CudaNormWorkspace::~CudaNormWorkspace() {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  cudaSetDevice(device_);
  // Work in flight may still read the buffers.
  if (done_ != nullptr) cudaEventSynchronize(static_cast<cudaEvent_t>(done_));
  release();
  cudaSetDevice(previous);
}

void CudaNormWorkspace::release() noexcept {
  if (table_ != nullptr) cudaFree(table_);
  if (staging_ != nullptr) cudaFreeHost(staging_);
  if (buffer_ != nullptr) cudaFree(buffer_);
  if (host_state_ != nullptr) cudaFreeHost(host_state_);
  if (done_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(done_));
  table_ = staging_ = buffer_ = host_state_ = done_ = nullptr;
  capacity_ = 0;
  uploaded_.clear();
}

void CudaNormWorkspace::run(const std::vector<kernels::SpanEntry>& table, std::int64_t total,
                            DType dtype, double max_norm, void* stream) {
  DeviceGuard scope(device_);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const cudaEvent_t done = static_cast<cudaEvent_t>(done_);
  // The buffers are reused: this run starts after the last one, whatever its stream.
  RECUR_CUDA_CHECK(cudaStreamWaitEvent(s, done, 0));
  if (!table.empty() && !same_table(table, uploaded_)) {
    // A new list of spans (the first call, or the trainer changed it): the staging
    // buffer may still be read by the last upload, so wait for the last run.
    RECUR_CUDA_CHECK(cudaEventSynchronize(done));
    if (table.size() > capacity_) {
      const std::size_t capacity = table.size() > 2 * capacity_ ? table.size() : 2 * capacity_;
      void *device_table = nullptr, *host_table = nullptr;
      RECUR_CUDA_CHECK(cudaMalloc(&device_table, capacity * sizeof(kernels::SpanEntry)));
      const cudaError_t status = cudaMallocHost(&host_table, capacity * sizeof(kernels::SpanEntry));
      if (status != cudaSuccess) {
        cudaFree(device_table);
        RECUR_CUDA_CHECK(status);
      }
      if (table_ != nullptr) cudaFree(table_);
      if (staging_ != nullptr) cudaFreeHost(staging_);
      table_ = device_table;
      staging_ = host_table;
      capacity_ = capacity;
    }
    uploaded_.clear();
    const std::size_t bytes = table.size() * sizeof(kernels::SpanEntry);
    std::memcpy(staging_, table.data(), bytes);
    RECUR_CUDA_CHECK(cudaMemcpyAsync(table_, staging_, bytes, cudaMemcpyHostToDevice, s));
    uploaded_ = table;
  }
  const auto* device_table = static_cast<const kernels::SpanEntry*>(table_);
  double* partials = static_cast<double*>(buffer_);
  const int n = static_cast<int>(table.size());
  if (dtype == DType::Float32) {
    kernels::launch_global_norm<float>(device_table, n, total, partials, state_in(buffer_),
                                       max_norm, s);
  } else {
    kernels::launch_global_norm<double>(device_table, n, total, partials, state_in(buffer_),
                                        max_norm, s);
  }
  RECUR_CUDA_CHECK(cudaMemcpyAsync(host_state_, state_in(buffer_), sizeof(kernels::NormState),
                                   cudaMemcpyDeviceToHost, s));
  RECUR_CUDA_CHECK(cudaEventRecord(done, s));
}

kernels::NormState CudaNormWorkspace::result() const {
  DeviceGuard scope(device_);
  RECUR_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(done_)));
  kernels::NormState out;
  std::memcpy(&out, host_state_, sizeof(out));
  return out;
}

const int* CudaNormWorkspace::finite_flag() const { return &state_in(buffer_)->finite; }

void CudaNormWorkspace::order_after(void* stream) const {
  DeviceGuard scope(device_);
  RECUR_CUDA_CHECK(
      cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(done_), 0));
}

}  // namespace recur::detail
