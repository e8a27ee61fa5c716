// kernels/joins.cu: the CUDA side of the join functors (kernels/joins.cuh): one index per
// thread (kernels/functor_launch.cuh), calling the very functor the CPU loop calls; argmax
// and the count of correct predictions a block per row, a thread per lane.
#include <cuda_runtime.h>

#include <cstdint>

#include "functor_launch.cuh"
#include "joins.h"

namespace recur::kernels {
namespace {

// One block of row_lanes(classes) threads per row: each thread finds its part's best, the
// block merges them (a total order: the CPU's one-lane answer), thread 0 finishes the row.
template <typename T>
__global__ void __launch_bounds__(kMaxRowLanes)
    argmax_rows_kernel(ArgmaxArgs<T> a, bool count_correct) {
  __shared__ ArgmaxBest<T> part[kMaxRowLanes];
  const int lanes = static_cast<int>(blockDim.x), k = static_cast<int>(threadIdx.x);
  for (std::int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    part[k] = lane_best(a.logits + r * a.classes, a.classes, k, lanes);
    __syncthreads();
    for (int stride = lanes / 2; stride > 0; stride /= 2) {
      if (k < stride && beats(part[k + stride], part[k])) part[k] = part[k + stride];
      __syncthreads();
    }
    if (k == 0) a.finish(count_correct, r, part[0].index);
    __syncthreads();  // part[0] is read before the next row overwrites it
  }
}

}  // namespace

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
  if (args.rows == 0) return;
  argmax_rows_kernel<T>
      <<<row_blocks(args.rows), row_lanes(args.classes), 0, static_cast<cudaStream_t>(stream)>>>(
          args, count_correct);
  check_launch("argmax_rows_kernel");
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
