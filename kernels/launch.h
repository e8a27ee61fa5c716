// kernels/launch.h: host-callable launchers for the kernels in kernels/*.cu.
//
// Each launcher queues its kernel on `stream` (a cudaStream_t), sizes the grid from the
// element count, returns at once when there is nothing to do, and checks the launch:
// a failure throws recur::Error. Plain C++: the CUDA types stay behind void*.
#pragma once

#include <cstdint>

#include "dispatch.h"
#include "round_operand.cuh"
#include "step_args.h"

namespace recur::kernels {

// The fused step kernel of `kind` over the batch*hidden elements of one time step, for
// `count` units at once (one launch per kMaxUnitsPerLaunch units). All units share batch
// and hidden.
constexpr int kMaxUnitsPerLaunch = 8;
template <typename T>
void launch_step_forward(StepKind kind, const StepForward<T>* units, int count, void* stream);
template <typename T>
void launch_step_backward(StepKind kind, const StepBackward<T>* units, int count, void* stream);

// The connection kernel of `kind` over rows*width elements.
template <typename T>
void launch_connection(ConnectionKind kind, const ConnectionArgs<T>& args, void* stream);

// dst row r = src row index[r] (zeros where index[r] < 0); index in device memory.
template <typename T>
void launch_gather(const GatherArgs<T>& args, void* stream);

// dst = src^T (kernels/gather.cuh)
template <typename T>
void launch_transpose(const TransposeArgs<T>& args, void* stream);

// dst[0..n) = value
template <typename T>
void launch_fill(T* dst, std::int64_t n, T value, void* stream);

// The packed, rounded copy of a product's operand (kernels/round_operand.cuh); Out is float
// (TF32) or std::uint16_t (BF16, FP16).
template <typename Out>
void launch_round_operand(const RoundOperandArgs<Out>& args, void* stream);

// True when this build carries kernel code CUDA device `device` can run; makes no context.
bool kernels_runnable_on(int device) noexcept;

}  // namespace recur::kernels
