// src/cuda/cuda_ops.h: the CUDA backend: cuBLAS for GEMMs, the fused step kernels of
// kernels/step_kernels.cu for the gate math, all queued on one stream per model.
// Plain C++: no CUDA header is needed to include it.
#pragma once

#include <memory>

#include "../ops.h"

namespace recur::detail {

// A CudaOps on device `index`, with a stream of its own until set_stream() replaces it.
template <typename T>
std::unique_ptr<Ops<T>> make_cuda_ops(int index);

}  // namespace recur::detail
