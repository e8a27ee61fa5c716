// kernels/loss_scale.h: launchers of the loss-scaling kernels in kernels/loss_scale.cu (the
// math is in kernels/loss_scale.cuh). Each queues its work on `stream` (a cudaStream_t) and
// checks the launch; a failure throws recur::Error. Plain C++.
#pragma once

#include "loss_scale.cuh"

namespace recur::kernels {

// ScaleUpdate on one device thread; `state` and `finite` (nullptr: finite) device memory.
void launch_scale_update(const ScaleUpdate& update, LossScaleState* state, const int* finite,
                         void* stream);

// a.data[i] *= the state's scale (or inverse), for i < a.n.
template <typename T>
void launch_scale_by(const ScaleArgs<T>& a, void* stream);

}  // namespace recur::kernels
