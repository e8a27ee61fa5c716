// src/cpu/cpu_grad.h: the CPU side of clipping and of the optimizers: plain loops, the
// optimizers over the same functors (kernels/optim.cuh) the CUDA kernels run.
#pragma once

#include <cstdint>
#include <vector>

#include "../../kernels/optim.cuh"
#include "../../kernels/reduce.h"

namespace recur::detail {

// Sum of g^2 over the spans (host pointers), in double and in a fixed order: blocks of
// kCpuNormBlock elements summed with four accumulators, the block sums added with
// Neumaier's compensation. Deterministic, and accurate to a few units of double rounding
// at any length (10^9 elements included).
constexpr std::int64_t kCpuNormBlock = 4096;
template <typename T>
double cpu_sum_squares(const std::vector<kernels::SpanEntry>& spans);

// Every element of every span times `scale` (rounded to T first, as on the GPU).
template <typename T>
void cpu_scale(const std::vector<kernels::SpanEntry>& spans, double scale);

// The element updates of one step (after StepBegin decided to take it).
template <typename T>
void cpu_sgd_update(const kernels::SgdArgs<T>& args, const kernels::OptimCounters& counters);
template <typename T>
void cpu_adam_update(const kernels::AdamArgs<T>& args, const kernels::OptimCounters& counters);

}  // namespace recur::detail
