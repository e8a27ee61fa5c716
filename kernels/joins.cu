// kernels/joins.cu: the CUDA side of the join functors (kernels/joins.cuh): one index per
// thread (kernels/functor_launch.cuh), calling the very functor the CPU loop calls.
#include <cuda_runtime.h>

#include <cstdint>

#include "functor_launch.cuh"
#include "joins.h"

namespace recur::kernels {

template <typename E>
void launch_block_copy(const BlockCopyArgs<E>& args, void* stream) {
  launch_functor<BlockCopy<E>>("BlockCopy", args.outer * args.width, args, stream);
}

template <typename T>
void launch_multiply(const MultiplyArgs<T>& args, void* stream) {
  launch_functor<Multiply<T>>("Multiply", args.n, args, stream);
}

template <typename T>
void launch_masked_mean(bool backward, const MaskedMeanArgs<T>& args, void* stream) {
  if (backward) {
    launch_functor<MaskedMeanBackward<T>>("MaskedMeanBackward",
                                          args.steps * args.batch * args.features, args, stream);
  } else {
    launch_functor<MaskedMeanForward<T>>("MaskedMeanForward", args.batch * args.features, args,
                                         stream);
  }
}

template <typename T>
void launch_argmax(bool count_correct, const ArgmaxArgs<T>& args, void* stream) {
  if (count_correct) {
    launch_functor<CountCorrect<T>>("CountCorrect", args.rows, args, stream);
  } else {
    launch_functor<ArgmaxRows<T>>("ArgmaxRows", args.rows, args, stream);
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
