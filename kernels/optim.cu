// kernels/optim.cu: the CUDA side of the optimizers. StepBegin runs on one thread; the
// element update runs the very functor the CPU loop runs, one element per thread, and
// reads the skip decision from device memory, so a skipped step costs no host round trip.
#include <cuda_runtime.h>

#include <string>

#include "launch_check.h"
#include "optim.h"

namespace recur::kernels {
namespace {

constexpr int kThreads = 256;

// ---- CUDA kernels ----

__global__ void step_begin_kernel(StepBegin begin, OptimCounters* counters, const int* finite) {
  begin(*counters, finite);
}

template <class F, class Args>
__global__ void __launch_bounds__(kThreads)
    update_kernel(F f, Args args, const OptimCounters* __restrict__ counters) {
  const OptimCounters c = *counters;
  if (!c.take) return;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < args.n;
       i += stride) {
    f(i, args, c);
  }
}

// ---- kernel launchers ----

template <class F, class Args>
void launch_update(F f, const Args& args, const OptimCounters* counters, void* stream) {
  if (args.n == 0) return;
  update_kernel<<<grid_stride_blocks(args.n, kThreads), kThreads, 0,
                  static_cast<cudaStream_t>(stream)>>>(f, args, counters);
  check_launch("optimizer update_kernel");
}

}  // namespace

void launch_step_begin(const StepBegin& begin, OptimCounters* counters, const int* finite,
                       void* stream) {
  step_begin_kernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(begin, counters, finite);
  check_launch("step_begin_kernel");
}

template <typename T>
void launch_sgd_update(const SgdArgs<T>& args, const OptimCounters* counters, void* stream) {
  launch_update(SgdUpdate<T>{}, args, counters, stream);
}

template <typename T>
void launch_adam_update(const AdamArgs<T>& args, const OptimCounters* counters, void* stream) {
  launch_update(AdamUpdate<T>{}, args, counters, stream);
}

template void launch_sgd_update<float>(const SgdArgs<float>&, const OptimCounters*, void*);
template void launch_sgd_update<double>(const SgdArgs<double>&, const OptimCounters*, void*);
template void launch_adam_update<float>(const AdamArgs<float>&, const OptimCounters*, void*);
template void launch_adam_update<double>(const AdamArgs<double>&, const OptimCounters*, void*);

}  // namespace recur::kernels
