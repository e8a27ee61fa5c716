// kernels/flow.h: the launcher of the gradient-flow reduction (kernels/flow.cuh).
// Plain C++: the CUDA types stay behind void*.
#pragma once

#include "flow.cuh"

namespace recur::kernels {

// For each of `count` units, *units[u].out = sum of (a + b)^2 over its block (device
// memory), queued on `stream`; one block per unit, kMaxFlowUnitsPerLaunch units a launch.
constexpr int kMaxFlowUnitsPerLaunch = 16;
template <typename T>
void launch_flow(const FlowArgs<T>* units, int count, void* stream);

}  // namespace recur::kernels
