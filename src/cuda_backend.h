// src/cuda_backend.h: everything the core asks of a GPU, as one interface. The CUDA
// backend implements it in its own shared library (librecur_cuda.so, src/cuda/), which
// the core loads the first time a CUDA device is asked for (cuda_backend.cpp); the core
// itself links no CUDA library and includes no CUDA header. Plain C++.
//
// Pointers are device memory of the device named by the call (or of the Ops/workspace's
// device), `stream` a cudaStream_t. Every call queues its work and returns; failures
// throw recur::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/convert.cuh"
#include "../kernels/joins.cuh"
#include "../kernels/loss_scale.cuh"
#include "../kernels/nn.cuh"
#include "../kernels/optim.cuh"
#include "../kernels/reduce.h"
#include "ops.h"
#include "recur/device.h"

namespace recur::detail {

// What a GradNorm keeps on one GPU between calls (src/clip.cpp): the reduction's
// buffers, the spans' table, the result's host mirror and an event.
class NormWorkspace {
 public:
  virtual ~NormWorkspace() = default;
  virtual int device() const = 0;
  // Queues the norm of the spans in `table` (device pointers, sorted, non-empty; `total`
  // elements of `dtype`) and, when max_norm >= 0, the clip; then the copy of the
  // NormState to the host mirror.
  virtual void run(const std::vector<kernels::SpanEntry>& table, std::int64_t total, DType dtype,
                   double max_norm, void* stream) = 0;
  // Waits for the last run (only), then returns its NormState.
  virtual kernels::NormState result() const = 0;
  // The finite flag in device memory, for the optimizers' kernels.
  virtual const int* finite_flag() const = 0;
  // Makes `stream` wait, on the device, until the last run's work is done.
  virtual void order_after(void* stream) const = 0;
  // The finite flag was just read by work queued on `stream` (an optimizer's step, a
  // loss scaler's update): the next run waits for that work before overwriting it.
  virtual void read_by(void* stream) = 0;
};

// One rank's NCCL communicator on its GPU (src/cuda/nccl_link.cpp). Sums reduce at rank 0
// and broadcast, as the MPI communicator's do, so every rank gets the same bits.
class NcclLink {
 public:
  virtual ~NcclLink() = default;
  // data[0, count) of `dtype` (Float32 or Float64) summed over the ranks, in place, queued
  // on `stream` after what is queued there.
  virtual void sum(void* data, std::int64_t count, DType dtype, void* stream) = 0;
  // The same on the link's own stream, after `stream`'s work so far (so that the
  // exchange overlaps later work on `stream`); returns a ticket for wait().
  virtual int sum_async(void* data, std::int64_t count, DType dtype, void* stream) = 0;
  // Makes `stream` wait, on the device, for ticket's sum.
  virtual void wait(int ticket, void* stream) = 0;
  virtual void broadcast(void* data, std::size_t bytes, int root, void* stream) = 0;
};

class CudaBackend {
 public:
  virtual ~CudaBackend() = default;

  // Devices that exist and can run this build's kernels; 0 without a driver or device.
  virtual int device_count() noexcept = 0;
  // Makes `index` the calling thread's current device; returns the previous one.
  virtual int set_device(int index) = 0;
  virtual void restore_device(int previous) noexcept = 0;

  // The device's memory in bytes; 0 where it cannot be told.
  virtual std::uint64_t total_memory(int device) noexcept = 0;
  // The device's UUID ("GPU-" and 32 hex digits, as nvidia-smi -L prints it), the same in
  // every process whatever CUDA_VISIBLE_DEVICES shows it as; "" where it cannot be told.
  virtual std::string device_uuid(int device) noexcept = 0;
  virtual void* allocate(int device, std::size_t bytes) = 0;
  virtual void free(int device, void* ptr) noexcept = 0;
  // Synchronous, after all work queued on the devices involved has finished.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device,
                    std::size_t bytes) = 0;
  virtual void zero(void* dst, int device, std::size_t bytes) = 0;

  // The RNN's backend on `device`, with a stream of its own.
  virtual std::unique_ptr<Ops<float>> make_ops_float(int device) = 0;
  virtual std::unique_ptr<Ops<double>> make_ops_double(int device) = 0;
  virtual std::unique_ptr<NormWorkspace> make_norm_workspace(int device) = 0;

  // The optimizers (kernels/optim.cuh): the step's decision, then the element updates.
  virtual void optimizer_begin(const kernels::StepBegin& begin, kernels::OptimCounters* counters,
                               const int* finite, void* stream) = 0;
  virtual void sgd_update(const kernels::SgdArgs<float>& a, const kernels::OptimCounters* c,
                          void* stream) = 0;
  virtual void sgd_update(const kernels::SgdArgs<double>& a, const kernels::OptimCounters* c,
                          void* stream) = 0;
  virtual void adam_update(const kernels::AdamArgs<float>& a, const kernels::OptimCounters* c,
                           void* stream) = 0;
  virtual void adam_update(const kernels::AdamArgs<double>& a, const kernels::OptimCounters* c,
                           void* stream) = 0;

  // Dynamic loss scaling (kernels/loss_scale.cuh): the update, and scaling in place.
  virtual void loss_scale_update(const kernels::ScaleUpdate& update, kernels::LossScaleState* state,
                                 const int* finite, void* stream) = 0;
  virtual void scale_by(const kernels::ScaleArgs<float>& a, void* stream) = 0;
  virtual void scale_by(const kernels::ScaleArgs<double>& a, void* stream) = 0;

  // Tensor::to on a device (kernels/convert.cuh); returns once it is done, so that it is
  // ordered with every stream, non-blocking ones too.
  virtual void convert(const kernels::ConvertArgs& a, void* stream) = 0;

  // The modules' kernels (kernels/nn.cuh). Embedding's backward sorts its ids in
  // `sort_temp`, of embedding_sort_bytes(a.rows, a.vocab) bytes.
  virtual void embedding(bool backward, const kernels::EmbeddingArgs<float>& a, void* sort_temp,
                         std::size_t sort_temp_bytes, void* stream) = 0;
  virtual void embedding(bool backward, const kernels::EmbeddingArgs<double>& a, void* sort_temp,
                         std::size_t sort_temp_bytes, void* stream) = 0;
  virtual std::size_t embedding_sort_bytes(std::int64_t rows, std::int64_t vocab) = 0;
  virtual void bias(bool backward, const kernels::BiasArgs<float>& a, void* stream) = 0;
  virtual void bias(bool backward, const kernels::BiasArgs<double>& a, void* stream) = 0;
  virtual void cross_entropy(const kernels::CrossEntropyArgs<float>& a, void* stream) = 0;
  virtual void cross_entropy(const kernels::CrossEntropyArgs<double>& a, void* stream) = 0;
  // The joins' kernels (kernels/joins.cuh).
  virtual void block_copy(const kernels::BlockCopyArgs<std::uint16_t>& a, void* stream) = 0;
  virtual void block_copy(const kernels::BlockCopyArgs<std::uint32_t>& a, void* stream) = 0;
  virtual void block_copy(const kernels::BlockCopyArgs<std::uint64_t>& a, void* stream) = 0;
  virtual void multiply(const kernels::MultiplyArgs<float>& a, void* stream) = 0;
  virtual void multiply(const kernels::MultiplyArgs<double>& a, void* stream) = 0;
  virtual void masked_mean(bool backward, const kernels::MaskedMeanArgs<float>& a,
                           void* stream) = 0;
  virtual void masked_mean(bool backward, const kernels::MaskedMeanArgs<double>& a,
                           void* stream) = 0;
  virtual void argmax(bool count_correct, const kernels::ArgmaxArgs<float>& a, void* stream) = 0;
  virtual void argmax(bool count_correct, const kernels::ArgmaxArgs<double>& a, void* stream) = 0;
  // NCCL, loaded the first time it is asked for (libnccl.so.2): false, with the reason in
  // `why`, where it cannot be had. nccl_usable: whether this rank could make its link on
  // `device` (NCCL loads, the device can be made current), asked of every rank before any
  // enters NCCL's setup, where the others would wait for it forever. The unique id is rank
  // 0's, for every rank's link. Neither throws.
  virtual bool nccl_usable(int device, std::string* why) = 0;
  virtual bool nccl_unique_id(std::vector<char>* id, std::string* why) = 0;
  virtual std::unique_ptr<NcclLink> nccl_link(int device, const std::vector<char>& id, int rank,
                                              int ranks) = 0;
  // cudaStreamLegacy, as a handle cuBLAS accepts too.
  virtual void* legacy_default_stream() noexcept = 0;
};

// The CUDA backend, loaded on first use; nullptr where it cannot be had, and then
// `why` (if given) says why: recur built without it, the library or one of CUDA's missing.
CudaBackend* cuda_backend(std::string* why = nullptr);
// The backend, or a recur::Error from `where` saying why there is none.
CudaBackend& require_cuda_backend(const std::string& where);
// Whether this build made a CUDA backend (librecur_cuda.so), loadable or not.
bool cuda_backend_built();

// Makes CUDA device `index` current for a scope, then restores the caller's device.
class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(int index);
  ~CudaDeviceScope();
  CudaDeviceScope(const CudaDeviceScope&) = delete;
  CudaDeviceScope& operator=(const CudaDeviceScope&) = delete;

 private:
  CudaBackend& backend_;
  int previous_ = 0;
};

}  // namespace recur::detail

// The one symbol librecur_cuda.so exports: its backend, built for interface version
// `abi` (kCudaBackendAbi); nullptr when the versions differ.
extern "C" __attribute__((visibility("default"))) recur::detail::CudaBackend* recur_cuda_backend(
    int abi);

namespace recur::detail {
// Raised whenever CudaBackend changes, so that a core and a CUDA library of different
// builds never call each other.
constexpr int kCudaBackendAbi = 7;
}  // namespace recur::detail
