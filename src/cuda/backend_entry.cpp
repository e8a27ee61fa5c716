// src/cuda/backend_entry.cpp: the CUDA backend behind src/cuda_backend.h, and the one
// symbol librecur_cuda.so exports to the core that loads it.
#include <cuda_runtime.h>

#include "../../kernels/convert.h"
#include "../../kernels/joins.h"
#include "../../kernels/loss_scale.h"
#include "../../kernels/nn.h"
#include "../../kernels/optim.h"
#include "../cuda_backend.h"
#include "check.h"
#include "cuda_grad.h"
#include "cuda_ops.h"
#include "device_memory.h"
#include "nccl_link.h"

namespace recur::detail {
namespace {

class Backend final : public CudaBackend {
 public:
  int device_count() noexcept override { return cuda_usable_device_count(); }
  int set_device(int index) override {
    int previous = 0;
    RECUR_CUDA_CHECK(cudaGetDevice(&previous));
    if (previous != index) RECUR_CUDA_CHECK(cudaSetDevice(index));
    return previous;
  }
  void restore_device(int previous) noexcept override {
    int now = previous;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous) cudaSetDevice(previous);
  }

  std::uint64_t total_memory(int device) noexcept override {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return 0;
    return prop.totalGlobalMem;
  }
  std::string device_uuid(int device) noexcept override {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
      cudaGetLastError();
      return "";
    }
    static const char digits[] = "0123456789abcdef";
    std::string id = "GPU-";
    for (int i = 0; i < 16; ++i) {
      const auto byte = static_cast<unsigned char>(prop.uuid.bytes[i]);
      if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
      id += digits[byte >> 4];
      id += digits[byte & 15];
    }
    return id;
  }
  void* allocate(int device, std::size_t bytes) override { return cuda_allocate(device, bytes); }
  void free(int device, void* ptr) noexcept override { cuda_free(device, ptr); }
  void copy(void* dst, Device dst_device, const void* src, Device src_device,
            std::size_t bytes) override {
    cuda_copy(dst, dst_device, src, src_device, bytes);
  }
  void zero(void* dst, int device, std::size_t bytes) override { cuda_zero(dst, device, bytes); }

  std::unique_ptr<Ops<float>> make_ops_float(int device) override {
    return make_cuda_ops<float>(device);
  }
  std::unique_ptr<Ops<double>> make_ops_double(int device) override {
    return make_cuda_ops<double>(device);
  }
  std::unique_ptr<NormWorkspace> make_norm_workspace(int device) override {
    return std::make_unique<CudaNormWorkspace>(device);
  }

  void optimizer_begin(const kernels::StepBegin& begin, kernels::OptimCounters* counters,
                       const int* finite, void* stream) override {
    kernels::launch_step_begin(begin, counters, finite, stream);
  }
  // Synchronous, as a copy: after all queued work, also that of non-blocking streams (a
  // model's own, NCCL's) that may still be writing the source.
  void convert(const kernels::ConvertArgs& a, void* stream) override {
    RECUR_CUDA_CHECK(cudaDeviceSynchronize());
    kernels::launch_convert(a, stream);
    RECUR_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
  }
  void loss_scale_update(const kernels::ScaleUpdate& update, kernels::LossScaleState* state,
                         const int* finite, void* stream) override {
    kernels::launch_scale_update(update, state, finite, stream);
  }
  void scale_by(const kernels::ScaleArgs<float>& a, void* stream) override {
    kernels::launch_scale_by(a, stream);
  }
  void scale_by(const kernels::ScaleArgs<double>& a, void* stream) override {
    kernels::launch_scale_by(a, stream);
  }
  void sgd_update(const kernels::SgdArgs<float>& a, const kernels::OptimCounters* c,
                  void* stream) override {
    kernels::launch_sgd_update(a, c, stream);
  }
  void sgd_update(const kernels::SgdArgs<double>& a, const kernels::OptimCounters* c,
                  void* stream) override {
    kernels::launch_sgd_update(a, c, stream);
  }
  void adam_update(const kernels::AdamArgs<float>& a, const kernels::OptimCounters* c,
                   void* stream) override {
    kernels::launch_adam_update(a, c, stream);
  }
  void adam_update(const kernels::AdamArgs<double>& a, const kernels::OptimCounters* c,
                   void* stream) override {
    kernels::launch_adam_update(a, c, stream);
  }

  void embedding(bool backward, const kernels::EmbeddingArgs<float>& a, void* sort_temp,
                 std::size_t sort_temp_bytes, void* stream) override {
    kernels::launch_embedding(backward, a, sort_temp, sort_temp_bytes, stream);
  }
  void embedding(bool backward, const kernels::EmbeddingArgs<double>& a, void* sort_temp,
                 std::size_t sort_temp_bytes, void* stream) override {
    kernels::launch_embedding(backward, a, sort_temp, sort_temp_bytes, stream);
  }
  std::size_t embedding_sort_bytes(std::int64_t rows, std::int64_t vocab) override {
    return kernels::embedding_sort_bytes(rows, vocab);
  }
  void bias(bool backward, const kernels::BiasArgs<float>& a, void* stream) override {
    kernels::launch_bias(backward, a, stream);
  }
  void bias(bool backward, const kernels::BiasArgs<double>& a, void* stream) override {
    kernels::launch_bias(backward, a, stream);
  }
  void cross_entropy(const kernels::CrossEntropyArgs<float>& a, void* stream) override {
    kernels::launch_cross_entropy(a, stream);
  }
  void cross_entropy(const kernels::CrossEntropyArgs<double>& a, void* stream) override {
    kernels::launch_cross_entropy(a, stream);
  }
  void block_copy(const kernels::BlockCopyArgs<std::uint16_t>& a, void* stream) override {
    kernels::launch_block_copy(a, stream);
  }
  void block_copy(const kernels::BlockCopyArgs<std::uint32_t>& a, void* stream) override {
    kernels::launch_block_copy(a, stream);
  }
  void block_copy(const kernels::BlockCopyArgs<std::uint64_t>& a, void* stream) override {
    kernels::launch_block_copy(a, stream);
  }
  void multiply(const kernels::MultiplyArgs<float>& a, void* stream) override {
    kernels::launch_multiply(a, stream);
  }
  void multiply(const kernels::MultiplyArgs<double>& a, void* stream) override {
    kernels::launch_multiply(a, stream);
  }
  void masked_mean(bool backward, const kernels::MaskedMeanArgs<float>& a, void* stream) override {
    kernels::launch_masked_mean(backward, a, stream);
  }
  void masked_mean(bool backward, const kernels::MaskedMeanArgs<double>& a, void* stream) override {
    kernels::launch_masked_mean(backward, a, stream);
  }
  void argmax(bool count_correct, const kernels::ArgmaxArgs<float>& a, void* stream) override {
    kernels::launch_argmax(count_correct, a, stream);
  }
  void argmax(bool count_correct, const kernels::ArgmaxArgs<double>& a, void* stream) override {
    kernels::launch_argmax(count_correct, a, stream);
  }
  bool nccl_usable(int device, std::string* why) override {
    return detail::nccl_usable(device, why);
  }
  bool nccl_unique_id(std::vector<char>* id, std::string* why) override {
    return detail::nccl_unique_id(id, why);
  }
  std::unique_ptr<NcclLink> nccl_link(int device, const std::vector<char>& id, int rank,
                                      int ranks) override {
    return make_nccl_link(device, id, rank, ranks);
  }
  void* legacy_default_stream() noexcept override { return kernels::legacy_default_stream(); }
};

}  // namespace
}  // namespace recur::detail

extern "C" __attribute__((visibility("default"))) recur::detail::CudaBackend* recur_cuda_backend(
    int abi) {
  if (abi != recur::detail::kCudaBackendAbi) return nullptr;
  static recur::detail::Backend backend;
  return &backend;
}
