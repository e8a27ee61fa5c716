// kernels/functor_launch.cuh: the launch of an element-wise functor f(i, args) over
// i in [0, n), as the CPU's loops call it (src/nn/functor_loop.h): a grid-stride loop, the
// launch checked. CUDA code only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "launch_check.h"

namespace recur::kernels {

constexpr int kFunctorThreads = 256;

template <class F, class Args>
__global__ void __launch_bounds__(kFunctorThreads) functor_kernel(F f, std::int64_t n, Args args) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kFunctorThreads;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kFunctorThreads + threadIdx.x;
       i < n; i += stride) {
    f(i, args);
  }
}

// Queues F{}(i, args) for every i < n on `stream`; `what` names it if the launch fails.
template <class F, class Args>
void launch_functor(const char* what, std::int64_t n, const Args& args, void* stream) {
  if (n == 0) return;
  functor_kernel<<<grid_stride_blocks(n, kFunctorThreads), kFunctorThreads, 0,
                   static_cast<cudaStream_t>(stream)>>>(F{}, n, args);
  check_launch(what);
}

}  // namespace recur::kernels
