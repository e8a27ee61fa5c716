// kernels/convert.cu: the CUDA side of kernels/convert.cuh, one element per thread in a
// grid-stride loop.
#include <cuda_runtime.h>

#include "convert.h"
#include "launch_check.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) convert_kernel(ConvertArgs a) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < a.n;
       i += stride) {
    ConvertElement{}(i, a);
  }
}

}  // namespace

void launch_convert(const ConvertArgs& a, void* stream) {
  if (a.n == 0) return;
  convert_kernel<<<grid_stride_blocks(a.n, kThreads), kThreads, 0,
                   static_cast<cudaStream_t>(stream)>>>(a);
  check_launch("convert_kernel");
}

}  // namespace recur::kernels
