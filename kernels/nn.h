// kernels/nn.h: launchers of the module kernels in kernels/nn.cu (the math is in
// kernels/nn.cuh). Each queues its work on `stream` (a cudaStream_t), returns at once
// when there is nothing to do, and checks the launch: a failure throws recur::Error.
// Plain C++: the CUDA types stay behind void*.
#pragma once

#include <cstddef>

#include "nn.cuh"

namespace recur::kernels {

// Forward: EmbeddingForward over rows*dim. Backward: EmbeddingKeys over rows, a stable
// radix sort of the (key, position) pairs (CUB) in `sort_temp`, EmbeddingBackward over
// rows*dim.
template <typename T>
void launch_embedding(bool backward, const EmbeddingArgs<T>& args, void* sort_temp,
                      std::size_t sort_temp_bytes, void* stream);
// The bytes of sort_temp that launch_embedding's backward needs for `rows` ids of a
// vocabulary of `vocab`.
std::size_t embedding_sort_bytes(std::int64_t rows, std::int64_t vocab);
// BiasBroadcast over rows*cols, or BiasGradient over cols.
template <typename T>
void launch_bias(bool backward, const BiasArgs<T>& args, void* stream);
// CrossEntropyClear, CrossEntropyCount over rows, a block per row (lane statistics, the
// merge tree, the outputs), then CrossEntropyPartial over the chunks of rows and
// CrossEntropyMean on one thread.
template <typename T>
void launch_cross_entropy(const CrossEntropyArgs<T>& args, void* stream);

// cudaStreamLegacy: the legacy default stream, as a handle that cuBLAS accepts too.
void* legacy_default_stream() noexcept;

}  // namespace recur::kernels
