// kernels/convert.h: the launcher of kernels/convert.cu. Queues on `stream` (a
// cudaStream_t) and checks the launch; a failure throws recur::Error. Plain C++.
#pragma once

#include "convert.cuh"

namespace recur::kernels {

// a.dst[i] = a.src[i] converted, for i < a.n; both in device memory.
void launch_convert(const ConvertArgs& a, void* stream);

}  // namespace recur::kernels
