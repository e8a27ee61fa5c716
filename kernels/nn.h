// kernels/nn.h: launchers of the module kernels in kernels/nn.cu (the math is in
// kernels/nn.cuh). Each queues its work on `stream` (a cudaStream_t), returns at once
// when there is nothing to do, and checks the launch: a failure throws recur::Error.
// Plain C++: the CUDA types stay behind void*.
#pragma once

#include "nn.cuh"

namespace recur::kernels {

// EmbeddingForward over rows*dim, or EmbeddingBackward over unique*dim.
template <typename T>
void launch_embedding(bool backward, const EmbeddingArgs<T>& args, void* stream);
// BiasBroadcast over rows*cols, or BiasGradient over cols.
template <typename T>
void launch_bias(bool backward, const BiasArgs<T>& args, void* stream);
// CrossEntropyRows over rows, then CrossEntropyMean on one thread.
template <typename T>
void launch_cross_entropy(const CrossEntropyArgs<T>& args, void* stream);

// cudaStreamLegacy: the legacy default stream, as a handle that cuBLAS accepts too.
void* legacy_default_stream() noexcept;

}  // namespace recur::kernels
