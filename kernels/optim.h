// kernels/optim.h: launchers of the optimizer kernels in kernels/optim.cu (the math is in
// kernels/optim.cuh). Each queues its work on `stream` (a cudaStream_t) and checks the
// launch; a failure throws recur::Error. Plain C++: the CUDA types stay behind void*.
#pragma once

#include "optim.cuh"

namespace recur::kernels {

// StepBegin on one device thread: `counters` and `finite` (nullptr: always step) are
// device memory.
void launch_step_begin(const StepBegin& begin, OptimCounters* counters, const int* finite,
                       void* stream);

// The element updates; every thread returns at once unless counters->take is set.
template <typename T>
void launch_sgd_update(const SgdArgs<T>& args, const OptimCounters* counters, void* stream);
template <typename T>
void launch_adam_update(const AdamArgs<T>& args, const OptimCounters* counters, void* stream);

}  // namespace recur::kernels
