// kernels/nn.cu: the CUDA side of the module functors (kernels/nn.cuh): one index per
// thread (kernels/functor_launch.cuh), calling the very functor the CPU loop calls.
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>
#include <string>

#include "functor_launch.cuh"
#include "launch_check.h"
#include "nn.h"

namespace recur::kernels {
namespace {

// The key bits the sort must look at: enough for keys in [0, vocab].
int key_bits(std::int64_t vocab) {
  int bits = 1;
  while (bits < 31 && (std::int64_t{1} << bits) <= vocab) ++bits;
  return bits;
}

// One block of `lanes` threads per row (kernels/nn.cuh): each thread gathers its part's
// statistics, the block merges them in the CPU's tree order, then writes the row.
template <typename T>
__global__ void __launch_bounds__(kMaxRowLanes) cross_entropy_rows_kernel(CrossEntropyArgs<T> a) {
  __shared__ SoftmaxStats<T> part[kMaxRowLanes];
  const int lanes = static_cast<int>(blockDim.x), k = static_cast<int>(threadIdx.x);
  for (std::int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const T* x = a.logits + r * a.classes;
    part[k] = lane_stats(x, a.classes, k, lanes);
    __syncthreads();
    for (int stride = lanes / 2; stride > 0; stride /= 2) {
      if (k < stride) part[k] = merge(part[k], part[k + stride]);
      __syncthreads();
    }
    const CrossEntropyRow<T> row(a, r, part[0]);
    if (k == 0) a.row_loss[r] = row.loss(x);
    if (a.dlogits != nullptr) {
      T* d = a.dlogits + r * a.classes;
      for (std::int64_t j = k; j < a.classes; j += lanes) d[j] = row.grad(x, j);
    }
    __syncthreads();  // part[0] is read before the next row overwrites it
  }
}

}  // namespace

std::size_t embedding_sort_bytes(std::int64_t rows, std::int64_t vocab) {
  std::size_t bytes = 0;
  const cudaError_t e = cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const std::int32_t*>(nullptr),
      static_cast<std::int32_t*>(nullptr), static_cast<const std::int32_t*>(nullptr),
      static_cast<std::int32_t*>(nullptr), static_cast<int>(rows), 0, key_bits(vocab));
  check_status(e, "cub::DeviceRadixSort::SortPairs (size query)");
  return bytes;
}

template <typename T>
void launch_embedding(bool backward, const EmbeddingArgs<T>& args, void* sort_temp,
                      std::size_t sort_temp_bytes, void* stream) {
  if (!backward) {
    launch_functor<EmbeddingForward<T>>("EmbeddingForward", args.rows * args.dim, args, stream);
    return;
  }
  if (args.rows == 0) return;
  launch_functor<EmbeddingKeys<T>>("EmbeddingKeys", args.rows, args, stream);
  std::size_t bytes = sort_temp_bytes;
  // Radix sorting is stable: positions stay increasing within one id.
  const cudaError_t e = cub::DeviceRadixSort::SortPairs(
      sort_temp, bytes, args.keys_in, const_cast<std::int32_t*>(args.keys), args.positions_in,
      const_cast<std::int32_t*>(args.positions), static_cast<int>(args.rows), 0,
      key_bits(args.vocab), static_cast<cudaStream_t>(stream));
  check_status(e, "cub::DeviceRadixSort::SortPairs");
  launch_functor<EmbeddingBackward<T>>("EmbeddingBackward", args.rows * args.dim, args, stream);
}

template <typename T>
void launch_bias(bool backward, const BiasArgs<T>& args, void* stream) {
  if (backward) {
    launch_functor<BiasGradient<T>>("BiasGradient", args.cols, args, stream);
  } else {
    launch_functor<BiasBroadcast<T>>("BiasBroadcast", args.rows * args.cols, args, stream);
  }
}

template <typename T>
void launch_cross_entropy(const CrossEntropyArgs<T>& args, void* stream) {
  launch_functor<CrossEntropyClear<T>>("CrossEntropyClear", 1, args, stream);
  launch_functor<CrossEntropyCount<T>>("CrossEntropyCount", args.rows, args, stream);
  if (args.rows > 0) {
    cross_entropy_rows_kernel<T>
        <<<row_blocks(args.rows), row_lanes(args.classes), 0, static_cast<cudaStream_t>(stream)>>>(
            args);
    check_launch("cross_entropy_rows_kernel");
  }
  launch_functor<CrossEntropyPartial<T>>("CrossEntropyPartial", cross_entropy_chunks(args.rows),
                                         args, stream);
  launch_functor<CrossEntropyMean<T>>("CrossEntropyMean", 1, args, stream);
}

void* legacy_default_stream() noexcept { return static_cast<void*>(cudaStreamLegacy); }

template void launch_embedding<float>(bool, const EmbeddingArgs<float>&, void*, std::size_t, void*);
template void launch_embedding<double>(bool, const EmbeddingArgs<double>&, void*, std::size_t,
                                       void*);
template void launch_bias<float>(bool, const BiasArgs<float>&, void*);
template void launch_bias<double>(bool, const BiasArgs<double>&, void*);
template void launch_cross_entropy<float>(const CrossEntropyArgs<float>&, void*);
template void launch_cross_entropy<double>(const CrossEntropyArgs<double>&, void*);

}  // namespace recur::kernels
