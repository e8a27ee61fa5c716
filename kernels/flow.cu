// kernels/flow.cu: the CUDA side of the gradient-flow reduction (kernels/flow.cuh): one
// block of kFlowLanes threads per unit, the lanes and the tree of the shared functions.
#include <cuda_runtime.h>

#include <string>

#include "flow.h"
#include "launch_check.h"

namespace recur::kernels {
namespace {

// ---- CUDA kernel ----

template <typename T>
struct FlowUnits {
  FlowArgs<T> unit[kMaxFlowUnitsPerLaunch];
};

// blockIdx.x picks the unit; thread k is lane k.
template <typename T>
__global__ void __launch_bounds__(kFlowLanes) flow_kernel(FlowUnits<T> units) {
  __shared__ double lanes[kFlowLanes];
  const FlowArgs<T>& f = units.unit[blockIdx.x];
  const int k = static_cast<int>(threadIdx.x);
  lanes[k] = flow_lane_sum(f, k);
  __syncthreads();
  for (int stride = kFlowLanes / 2; stride > 0; stride /= 2) {
    if (k < stride) flow_tree_step(lanes, k, stride);
    __syncthreads();
  }
  if (k == 0) *f.out = lanes[0];
}

}  // namespace

// ---- kernel launcher ----

template <typename T>
void launch_flow(const FlowArgs<T>* units, int count, void* stream) {
  for (int first = 0; first < count; first += kMaxFlowUnitsPerLaunch) {
    const int here =
        count - first < kMaxFlowUnitsPerLaunch ? count - first : kMaxFlowUnitsPerLaunch;
    FlowUnits<T> args{};
    for (int u = 0; u < here; ++u) args.unit[u] = units[first + u];
    flow_kernel<T>
        <<<static_cast<unsigned>(here), kFlowLanes, 0, static_cast<cudaStream_t>(stream)>>>(args);
    check_launch("flow_kernel");
  }
}

template void launch_flow<float>(const FlowArgs<float>*, int, void*);
template void launch_flow<double>(const FlowArgs<double>*, int, void*);

}  // namespace recur::kernels
