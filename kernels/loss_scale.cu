// kernels/loss_scale.cu: the CUDA side of kernels/loss_scale.cuh: the update on one thread,
// the scaling one element per thread in a grid-stride loop, each calling the functor the
// CPU loop calls.
#include <cuda_runtime.h>

#include <string>

#include "launch_check.h"
#include "loss_scale.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void scale_update_kernel(ScaleUpdate update, LossScaleState* state, const int* finite) {
  update(*state, finite);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scale_by_kernel(ScaleArgs<T> a) {
  const T factor = ScaleBy<T>::factor(a);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < a.n;
       i += stride) {
    ScaleBy<T>{}(i, a, factor);
  }
}

}  // namespace

void launch_scale_update(const ScaleUpdate& update, LossScaleState* state, const int* finite,
                         void* stream) {
  scale_update_kernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(update, state, finite);
  check_launch("scale_update_kernel");
}

template <typename T>
void launch_scale_by(const ScaleArgs<T>& a, void* stream) {
  if (a.n == 0) return;
  scale_by_kernel<T>
      <<<grid_stride_blocks(a.n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a);
  check_launch("scale_by_kernel");
}

template void launch_scale_by<float>(const ScaleArgs<float>&, void*);
template void launch_scale_by<double>(const ScaleArgs<double>&, void*);

}  // namespace recur::kernels
