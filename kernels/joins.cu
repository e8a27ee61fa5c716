// kernels/joins.cu: the CUDA side of the join functors (kernels/joins.cuh): one index per
// thread (a grid-stride loop), calling the very functor the CPU loop calls.
#include <cuda_runtime.h>

#include <cstdint>

#include "joins.h"
#include "launch_check.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

template <class F, class Args>
__global__ void __launch_bounds__(kThreads) joins_apply_kernel(F f, std::int64_t n, Args args) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += stride) {
    f(i, args);
  }
}

template <class F, class Args>
void apply(const char* what, std::int64_t n, const Args& args, void* stream) {
  if (n == 0) return;
  joins_apply_kernel<<<grid_stride_blocks(n, kThreads), kThreads, 0,
                       static_cast<cudaStream_t>(stream)>>>(F{}, n, args);
  check_launch(what);
}

}  // namespace

template <typename E>
void launch_block_copy(const BlockCopyArgs<E>& args, void* stream) {
  apply<BlockCopy<E>>("BlockCopy", args.outer * args.width, args, stream);
}

template <typename T>
void launch_multiply(const MultiplyArgs<T>& args, void* stream) {
  apply<Multiply<T>>("Multiply", args.n, args, stream);
}

template <typename T>
void launch_masked_mean(bool backward, const MaskedMeanArgs<T>& args, void* stream) {
  if (backward) {
    apply<MaskedMeanBackward<T>>("MaskedMeanBackward", args.steps * args.batch * args.features,
                                 args, stream);
  } else {
    apply<MaskedMeanForward<T>>("MaskedMeanForward", args.batch * args.features, args, stream);
  }
}

template <typename T>
void launch_argmax(bool count_correct, const ArgmaxArgs<T>& args, void* stream) {
  if (count_correct) {
    apply<CountCorrect<T>>("CountCorrect", args.rows, args, stream);
  } else {
    apply<ArgmaxRows<T>>("ArgmaxRows", args.rows, args, stream);
  }
}

template void launch_block_copy<std::uint16_t>(const BlockCopyArgs<std::uint16_t>&, void*);
template void launch_block_copy<std::uint32_t>(const BlockCopyArgs<std::uint32_t>&, void*);
template void launch_block_copy<std::uint64_t>(const BlockCopyArgs<std::uint64_t>&, void*);
template void launch_multiply<float>(const MultiplyArgs<float>&, void*);
template void launch_multiply<double>(const MultiplyArgs<double>&, void*);
template void launch_masked_mean<float>(bool, const MaskedMeanArgs<float>&, void*);
template void launch_masked_mean<double>(bool, const MaskedMeanArgs<double>&, void*);
template void launch_argmax<float>(bool, const ArgmaxArgs<float>&, void*);
template void launch_argmax<double>(bool, const ArgmaxArgs<double>&, void*);

}  // namespace recur::kernels
