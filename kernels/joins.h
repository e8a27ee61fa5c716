// kernels/joins.h: launchers of the join kernels in kernels/joins.cu (the math is in
// kernels/joins.cuh). Each queues its work on `stream` (a cudaStream_t), returns at once
// when there is nothing to do, and checks the launch. Plain C++.
#pragma once

#include <cstdint>

#include "joins.cuh"

namespace recur::kernels {

// BlockCopy over outer*width, for elements of 2, 4 or 8 bytes.
template <typename E>
void launch_block_copy(const BlockCopyArgs<E>& args, void* stream);
template <typename T>
void launch_multiply(const MultiplyArgs<T>& args, void* stream);
// MaskedMeanForward over batch*features, or MaskedMeanBackward over steps*batch*features.
template <typename T>
void launch_masked_mean(bool backward, const MaskedMeanArgs<T>& args, void* stream);
// ArgmaxRows, or CountCorrect, over rows.
template <typename T>
void launch_argmax(bool count_correct, const ArgmaxArgs<T>& args, void* stream);

}  // namespace recur::kernels
