// kernels/nn.cu: the CUDA side of the module functors (kernels/nn.cuh): one index per
// thread, calling the very functor the CPU loop calls.
#include <cuda_runtime.h>

#include <string>

#include "launch_check.h"
#include "nn.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

// ---- CUDA kernels ----

template <class F, class Args>
__global__ void __launch_bounds__(kThreads) nn_apply_kernel(F f, std::int64_t n, Args args) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) f(i, args);
}

// ---- kernel launchers ----

template <class F, class Args>
void apply(const char* what, std::int64_t n, const Args& args, void* stream) {
  if (n == 0) return;
  const auto blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  nn_apply_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(F{}, n, args);
  check_launch(what);
}

}  // namespace

template <typename T>
void launch_embedding(bool backward, const EmbeddingArgs<T>& args, void* stream) {
  if (backward) {
    apply<EmbeddingBackward<T>>("EmbeddingBackward", args.unique * args.dim, args, stream);
  } else {
    apply<EmbeddingForward<T>>("EmbeddingForward", args.rows * args.dim, args, stream);
  }
}

template <typename T>
void launch_bias(bool backward, const BiasArgs<T>& args, void* stream) {
  if (backward) {
    apply<BiasGradient<T>>("BiasGradient", args.cols, args, stream);
  } else {
    apply<BiasBroadcast<T>>("BiasBroadcast", args.rows * args.cols, args, stream);
  }
}

template <typename T>
void launch_cross_entropy(const CrossEntropyArgs<T>& args, void* stream) {
  apply<CrossEntropyRows<T>>("CrossEntropyRows", args.rows, args, stream);
  apply<CrossEntropyMean<T>>("CrossEntropyMean", 1, args, stream);
}

void* legacy_default_stream() noexcept { return static_cast<void*>(cudaStreamLegacy); }

template void launch_embedding<float>(bool, const EmbeddingArgs<float>&, void*);
template void launch_embedding<double>(bool, const EmbeddingArgs<double>&, void*);
template void launch_bias<float>(bool, const BiasArgs<float>&, void*);
template void launch_bias<double>(bool, const BiasArgs<double>&, void*);
template void launch_cross_entropy<float>(const CrossEntropyArgs<float>&, void*);
template void launch_cross_entropy<double>(const CrossEntropyArgs<double>&, void*);

}  // namespace recur::kernels
