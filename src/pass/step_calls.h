// src/pass/step_calls.h: the backend calls of one Steps / StepsBackward op: per GEMM group
// a batched GEMM on the staged pointer tables, then one step kernel over all the op's
// units (each masks its own rows).
#pragma once

#include <vector>

#include "pass_context.h"
#include "staging.h"

namespace recur::detail {

// Appends the calls of `op` to `calls`.
template <typename T>
void forward_calls(const PassContext<T>& ctx, const PointerTables& tables, const PassOp& op,
                   std::vector<StepCall<T>>& calls);
template <typename T>
void backward_calls(const PassContext<T>& ctx, const PointerTables& tables, const PassOp& op,
                    std::vector<StepCall<T>>& calls);

}  // namespace recur::detail
